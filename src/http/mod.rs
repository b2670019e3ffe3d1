//! The axum application: Leptos pages and server functions, the
//! OpenAI-compatible API (`/v1`), and `/healthz`. `build_app` is apart from
//! serving so tests can drive it with `oneshot` and no port.

pub mod admin_session;
mod export;
pub mod openai;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::limit::RequestBodyLimitLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::api::AppError;
use crate::app::{App, shell};
use crate::state::AppState;
use crate::store::sessions::PgSessionStore;

/// Request bodies larger than this are refused with 413.
const MAX_REQUEST_BODY: usize = 256 * 1024;

pub fn build_app(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let sessions = SessionManagerLayer::new(PgSessionStore::new(state.pool.clone()))
        .with_name("triage_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(30)));

    // leptos_axum provides the router state (`AppState`) as context to
    // every page and server function; nothing more to add here.
    let pages = Router::new()
        .route("/admin/export.csv", get(export::export_csv))
        .leptos_routes(&state, routes, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::map_response(server_fn_error_status))
        .layer(middleware::from_fn_with_state(state.clone(), admin_session::layer))
        .layer(RequestBodyLimitLayer::new(MAX_REQUEST_BODY))
        .layer(sessions);
    // `/v1` has its own body limit and OpenAI-shaped errors, and no cookies.
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(openai::routes())
        .merge(pages)
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    match crate::store::ping(&state.pool).await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"status": "database unavailable"})))
                .into_response()
        }
    }
}

/// Prometheus metrics. Behind a bearer token when `admin.metrics_token` is
/// set; otherwise open (bind Triage to a private network, or set a token).
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &state.config.admin.metrics_token {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.expose().as_str()) {
            return (StatusCode::UNAUTHORIZED, "metrics need the bearer token\n").into_response();
        }
    }
    let body = state.pipeline.call_log().metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Gives a server function's error the right status. The server-fn runtime
/// answers every error with 500, but a bad argument is the caller's fault
/// (400) and an unavailable dependency is a 503: `AppError::status` decides.
async fn server_fn_error_status(response: Response) -> Response {
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key(SERVER_FN_ERROR_HEADER)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    // Only our own error body is remapped; anything else stays a 500.
    if let Ok(error) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = error.status();
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Response::from_parts(parts, Body::from(bytes))
}
