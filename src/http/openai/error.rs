//! `ApiError`: every `/v1` failure, OpenAI-shaped:
//! `{"error": {"message", "type", "param", "code"}}`, status mapped here.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::engine::limits::LimitError;
use crate::engine::pipeline::PipelineError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<&'static str> },
    #[error("The body is larger than the limit of {0} bytes.")]
    TooLarge(usize),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("The model `{0}` does not exist. GET /v1/models lists the models.")]
    UnknownModel(String),
    #[error("{0}")]
    RateLimited(String, Duration),
    #[error("{0}")]
    BudgetExceeded(String),
    /// Every candidate failed or the deadline passed.
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError::InvalidRequest { message: message.into(), param }
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        match self {
            ApiError::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request_error", None),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", Some("body_too_large")),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "authentication_error", Some("invalid_api_key")),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_error", Some("forbidden")),
            ApiError::UnknownModel(_) => (StatusCode::NOT_FOUND, "invalid_request_error", Some("model_not_found")),
            ApiError::RateLimited(..) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", Some("rate_limit_exceeded"))
            }
            ApiError::BudgetExceeded(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", Some("budget_exceeded"))
            }
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "api_error", Some("upstream_unavailable")),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "api_error", Some("unavailable")),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The JSON body, also used inside a stream that fails part-way.
    pub fn body(&self) -> serde_json::Value {
        let (_, kind, code) = self.parts();
        let param = match self {
            ApiError::InvalidRequest { param, .. } => *param,
            ApiError::UnknownModel(_) => Some("model"),
            _ => None,
        };
        serde_json::json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let ApiError::RateLimited(_, wait) = &self {
            // whole seconds, rounded up: a client that waits this long gets in
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::InvalidRequest(m) => ApiError::invalid(m, Some("messages")),
            PipelineError::UnknownModel(m) => ApiError::UnknownModel(m),
            PipelineError::Limited(LimitError::RateLimited { scope, retry_after }) => ApiError::RateLimited(
                format!("Rate limit reached for {scope}. Retry in {:.1} s.", retry_after.as_secs_f64()),
                retry_after,
            ),
            PipelineError::Limited(LimitError::BudgetExceeded { scope, period }) => {
                ApiError::BudgetExceeded(format!("The {period} budget of {scope} is spent."))
            }
            PipelineError::Limited(LimitError::Store(e)) | PipelineError::Store(e) => e.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        ApiError::Unavailable("Storage is unavailable for a moment; please retry.".into())
    }
}
