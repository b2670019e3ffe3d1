//! The floor under Triage's gateway figures: the same stack (axum server,
//! reqwest client built as Triage builds it, mimalloc, Tokio's default
//! runtime) forwarding the body unchanged to the upstream and the answer
//! unchanged back. No auth, parsing, routing or call log. Run it on the
//! gateway harness beside Triage to tell the stack's share of the added
//! latency and CPU from Triage's own.
//!
//!   cargo build --release --features ssr --example bare_proxy
//!   BARE_ADDR=127.0.0.1:3400 UPSTREAM=http://127.0.0.1:18080/v1/chat/completions target/release/examples/bare_proxy

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: String,
}

async fn forward(State(up): State<Upstream>, body: Bytes) -> Response {
    let sent = up.client.post(&up.url).header(header::CONTENT_TYPE, "application/json").body(body).send().await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let kind = answer.headers().get(header::CONTENT_TYPE).cloned();
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            if let Some(kind) = kind {
                response.headers_mut().insert(header::CONTENT_TYPE, kind);
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() {
    let addr = std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:3400".into());
    let url = std::env::var("UPSTREAM").unwrap_or_else(|_| "http://127.0.0.1:18080/v1/chat/completions".into());
    let upstream = Upstream { client: triage::engine::providers::Providers::http_client(), url };
    let app = Router::new().route("/v1/chat/completions", post(forward)).with_state(upstream);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind BARE_ADDR");
    axum::serve(listener, app).await.expect("serve");
}
