//! The engine: one request's path through Triage as plain Rust, with no web
//! types inside. `pipeline` assembles the parts; each part is tested alone.

pub mod alerts;
pub mod cache;
pub mod call_log;
pub mod classify;
pub mod escalation;
pub mod experiments;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod pricing;
pub mod providers;
pub mod route;
pub mod stats;
