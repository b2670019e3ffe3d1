//! The engine: one request's path through Triage as plain Rust, with no web
//! types inside. `pipeline` assembles the parts; each part is tested alone.

pub mod cache;
pub mod call_log;
pub mod classify;
pub mod escalation;
pub mod limits;
pub mod pipeline;
pub mod pricing;
pub mod providers;
pub mod route;
