//! What every handler and server function shares.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use sqlx::PgPool;

use crate::config::Config;
use crate::engine::pipeline::Pipeline;

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub pipeline: Arc<Pipeline>,
    /// API keys recently looked up (`/v1`).
    pub keys: Arc<crate::http::openai::KeyCache>,
    /// The classifier retraining started from the dashboard.
    pub retrain: crate::api::review::RetrainState,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
