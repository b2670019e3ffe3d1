//! What the provider layer adds over calling the upstream directly: the same
//! streamed completion from an in-process fake OpenAI upstream (loopback
//! HTTP), read to the end, (a) with a bare reqwest client and an SSE read,
//! (b) through `Providers::stream` (request building, SSE parsing, event
//! channel). Alternating, same process, same connection pool settings.
//! Run: `cargo bench --features ssr --bench provider_overhead`.

#[path = "../tests/support/fake_upstream.rs"]
mod fake_upstream;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fake_upstream::FakeUpstream;
use futures::StreamExt;
use triage::config::{ProviderKind, Secret};
use triage::engine::pricing::{ModelEntry, Price};
use triage::engine::providers::{AttemptLimits, ChatMessage, Endpoint, ProviderRequest, Providers, Role};

const RUNS: usize = 2_000;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let fake = FakeUpstream::start_with_delay(Duration::ZERO).await;
    let http = Providers::http_client();
    let providers = Providers {
        local: None,
        http: Some(http.clone()),
        endpoints: HashMap::from([(
            "fake".to_string(),
            Endpoint::new(ProviderKind::Openai, &fake.base_url, Secret::new("sk-bench".into())).expect("URL"),
        )]),
    };
    let model = ModelEntry {
        name: "fake".into(),
        provider: ProviderKind::Openai,
        upstream_model: "bench".into(),
        price: Price::default(),
        context_window: 8192,
    };
    let request = ProviderRequest {
        upstream_model: "bench".into(),
        messages: vec![ChatMessage::new(Role::User, "Where is my order?")],
        ..Default::default()
    };
    let limits = AttemptLimits { first_byte: Duration::from_secs(5), idle: Duration::from_secs(5) };
    let body = serde_json::to_vec(&triage::engine::providers::openai::request_body(&request)).unwrap();
    let url = providers.endpoints["fake"].url.clone();

    let direct = || {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        async move {
            let response = http
                .post(url)
                .bearer_auth("sk-bench")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            // read to the end, as the provider does (the connection is reused)
            let mut stream = response.bytes_stream();
            let mut seen = Vec::new();
            while let Some(chunk) = stream.next().await {
                seen.extend_from_slice(&chunk.unwrap());
            }
            assert!(seen.windows(12).any(|w| w == b"data: [DONE]"));
        }
    };
    let through = || {
        let (providers, model, request) = (providers.clone(), model.clone(), request.clone());
        async move {
            let mut rx = providers.stream(&model, request, limits).await.unwrap();
            let mut events = 0usize;
            while let Some(event) = rx.recv().await {
                event.unwrap();
                events += 1;
            }
            assert!(events > 0);
        }
    };
    for _ in 0..100 {
        direct().await;
        through().await;
    }
    let (mut d, mut t) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..RUNS {
        let s = Instant::now();
        direct().await;
        d.push(s.elapsed());
        let s = Instant::now();
        through().await;
        t.push(s.elapsed());
    }
    let (d50, d99) = (percentile(&mut d, 0.5), percentile(&mut d, 0.99));
    let (t50, t99) = (percentile(&mut t, 0.5), percentile(&mut t, 0.99));
    println!("direct reqwest + SSE read: p50 {:>6} µs  p99 {:>6} µs", d50.as_micros(), d99.as_micros());
    println!("through Providers::stream: p50 {:>6} µs  p99 {:>6} µs", t50.as_micros(), t99.as_micros());
    println!(
        "SUMMARY provider_overhead runs={RUNS} direct_p50_us={} provider_p50_us={} added_p50_us={} added_p99_us={}",
        d50.as_micros(),
        t50.as_micros(),
        t50.as_micros() as i128 - d50.as_micros() as i128,
        t99.as_micros() as i128 - d99.as_micros() as i128
    );
}
