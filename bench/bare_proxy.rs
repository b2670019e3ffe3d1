//! The floor under Triage's gateway figures: the same stack (axum server,
//! reqwest client built as Triage builds it, mimalloc, Tokio's default
//! runtime) forwarding the body unchanged to the upstream and the answer
//! unchanged back. No auth, parsing, routing or call log. Run it on the
//! gateway harness beside Triage to tell the stack's share of the added
//! latency and CPU from Triage's own.
//!
//!   cargo build --release --features ssr --example bare_proxy
//!   BARE_ADDR=127.0.0.1:3400 UPSTREAM=http://127.0.0.1:18080/v1/chat/completions target/release/examples/bare_proxy
//!
//! `BARE_THREADS=N` serves thread-per-core instead (see `main`).

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

fn app(url: String) -> Router {
    let upstream = Upstream { client: triage::engine::providers::Providers::http_client(), url };
    Router::new().route("/v1/chat/completions", post(forward)).with_state(upstream)
}

/// `BARE_THREADS=N` (N > 0) serves on N threads, each its own
/// current-thread runtime, listener (SO_REUSEPORT) and client, instead of
/// one work-stealing runtime: does thread-per-core move the floor?
fn main() {
    let addr: std::net::SocketAddr =
        std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:3400".into()).parse().expect("BARE_ADDR");
    let url = std::env::var("UPSTREAM").unwrap_or_else(|_| "http://127.0.0.1:18080/v1/chat/completions".into());
    let threads: usize = std::env::var("BARE_THREADS").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    if threads == 0 {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind BARE_ADDR");
            axum::serve(listener, app(url)).await.expect("serve");
        });
        return;
    }
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async {
                    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                    socket.set_reuseport(true).expect("SO_REUSEPORT");
                    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
                    socket.bind(addr).expect("bind BARE_ADDR");
                    let listener = socket.listen(1024).expect("listen");
                    axum::serve(listener, app(url)).await.expect("serve");
                });
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}
