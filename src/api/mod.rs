//! Server functions, thin: take `AppState` from context, call the engine or
//! the store, map to the DTOs the browser sees. Plus the types shared across
//! the wire.

pub mod admin;
pub mod alerts;
pub mod chat;
pub mod error;
pub mod experiments;
pub mod filter;
pub mod review;
pub mod types;

pub use error::AppError;

#[cfg(feature = "ssr")]
pub(crate) fn state() -> Result<crate::state::AppState, AppError> {
    leptos::prelude::use_context::<crate::state::AppState>().ok_or(AppError::Internal)
}
