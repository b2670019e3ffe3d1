//! `AppError`: the one error type of the server functions. It crosses the
//! wire as JSON, and `status()` maps it to an HTTP status in one place.
//! Database text never reaches the browser: it is logged, and the client
//! gets `Internal`.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum AppError {
    /// The input is wrong; the message says how, in words for a customer.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// No admin is signed in (or the session ended).
    #[error("Please sign in.")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// A rate limit: the customer may send again after this many seconds.
    #[error("You're sending messages faster than we can answer. You can send again in {0} s.")]
    RateLimited(u64),
    /// A budget or another limit; the message says when to try again.
    #[error("{0}")]
    TooManyRequests(String),
    /// A dependency is down or overloaded; trying again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The browser could not reach the server.
    #[error("Connection lost. Check your connection and try again.")]
    Network,
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) | ServerFnErrorErr::Deserialization(m) => {
                AppError::BadRequest(format!("The request could not be read: {m}"))
            }
            ServerFnErrorErr::Registration(m) => AppError::NotFound(format!("No such function: {m}")),
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => AppError::Network,
            other => {
                tracing::error!(error = %other, "server function failed");
                AppError::Internal
            }
        }
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::RateLimited(_) | AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::Network => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// The error as a server function would answer it, for middleware that
    /// refuses a request before any server function runs.
    pub fn into_response_with_status(self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let headers = [(leptos::server_fn::error::SERVER_FN_ERROR_HEADER, "1")];
        (self.status(), headers, axum::Json(self)).into_response()
    }
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        AppError::Unavailable("Our records are unavailable for a moment. Please try again shortly.".into())
    }
}

#[cfg(feature = "ssr")]
impl From<crate::engine::pipeline::PipelineError> for AppError {
    fn from(e: crate::engine::pipeline::PipelineError) -> Self {
        use crate::engine::pipeline::PipelineError;
        match e {
            PipelineError::InvalidRequest(m) => AppError::BadRequest(m),
            PipelineError::UnknownModel(m) => AppError::BadRequest(format!("Unknown model {m:?}")),
            PipelineError::Limited(crate::engine::limits::LimitError::BudgetExceeded { .. }) => {
                AppError::TooManyRequests("This conversation has reached its spending limit for now.".into())
            }
            PipelineError::Limited(crate::engine::limits::LimitError::RateLimited { retry_after, .. }) => {
                // whole seconds, never "0 s"
                AppError::RateLimited(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            PipelineError::Limited(crate::engine::limits::LimitError::Store(e)) => e.into(),
            PipelineError::Store(e) => e.into(),
        }
    }
}
