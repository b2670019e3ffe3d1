//! Real providers' wire formats, exact cost, retries, fallback and the
//! circuit breaker — against a fake upstream over real HTTP, on real Postgres.

mod common;
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{collect, engine_with, test_config};
use sqlx::PgPool;
use support::fake_upstream::{Behavior, FakeUpstream};
use triage::config::{Config, ModelConfig, ProviderKind, TierConfig};
use triage::engine::pipeline::{ChatEvent, ChatRequest, FailureKind, ModelChoice};
use triage::engine::providers::health::BreakerState;
use triage::engine::providers::{ChatMessage, Providers, Role, resolve_endpoints};
use triage::engine::route::SelectionPolicy;
use triage::store::llm_calls::{self, CallRow};

fn remote(provider: ProviderKind, id: &str, base_url: &str, prices: (f64, f64, f64)) -> ModelConfig {
    ModelConfig {
        provider,
        upstream_model: id.into(),
        base_url: Some(base_url.into()),
        api_key_env: Some("FAKE_KEY".into()),
        input_price_per_mtok: prices.0,
        output_price_per_mtok: prices.1,
        cached_input_price_per_mtok: Some(prices.2),
        context_window: 128_000,
    }
}

/// Budget tier = fake/a then fake/b (in order); balanced = fake/claude.
fn config(fake: &FakeUpstream) -> Config {
    let mut c = test_config();
    c.models.insert("fake/a".into(), remote(ProviderKind::Openai, "model-a", &fake.base_url, (2.5, 10.0, 1.25)));
    c.models.insert("fake/b".into(), remote(ProviderKind::Openai, "model-b", &fake.base_url, (0.15, 0.6, 0.075)));
    c.models
        .insert("fake/claude".into(), remote(ProviderKind::Anthropic, "claude-x", &fake.base_url, (3.0, 15.0, 0.3)));
    let tier = |candidates: &[&str]| TierConfig {
        candidates: candidates.iter().map(|s| s.to_string()).collect(),
        policy: SelectionPolicy::InOrder,
        fallback: vec![],
        weights: Default::default(),
    };
    c.routing.budget = tier(&["fake/a", "fake/b"]);
    c.routing.balanced = tier(&["fake/claude"]);
    c.routing.premium = tier(&["fake/claude"]);
    let r = &mut c.routing.resilience;
    r.first_byte_timeout_ms = 400;
    r.idle_timeout_ms = 400;
    r.deadline_ms = 10_000;
    r.max_attempts_per_model = 2;
    r.backoff_base_ms = 20;
    r.backoff_cap_ms = 60;
    r.max_retry_after_ms = 3_000;
    r.fallback_tier_up = false;
    r.breaker_failures = 3;
    r.breaker_cooldown_ms = 400;
    c
}

fn providers(config: &Config) -> Providers {
    let (endpoints, _) = resolve_endpoints(config, |var| (var == "FAKE_KEY").then(|| "sk-test".to_string()));
    Providers { local: None, http: Some(Providers::http_client()), endpoints }
}

fn ask(model: &str) -> ChatRequest {
    let mut r = ChatRequest::new(vec![ChatMessage::new(Role::User, "Where is my order?")]);
    if model != "auto" {
        r.model = ModelChoice::Named(model.into());
    }
    r
}

struct Run {
    events: Vec<ChatEvent>,
    rows: Vec<CallRow>,
}

impl Run {
    fn text(&self) -> String {
        self.events.iter().filter_map(|e| if let ChatEvent::Delta(d) = e { Some(d.as_str()) } else { None }).collect()
    }
    fn finished(&self) -> &triage::engine::pipeline::Outcome {
        match self.events.last() {
            Some(ChatEvent::Finished(o)) => o,
            other => panic!("expected an answer, got {other:?}"),
        }
    }
    fn failure(&self) -> (String, FailureKind) {
        match self.events.last() {
            Some(ChatEvent::Failed { message, kind }) => (message.clone(), *kind),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    /// (model, status) of each attempt, in order.
    fn attempts(&self) -> Vec<(String, String)> {
        self.rows.iter().map(|r| (r.model.clone(), r.status.clone())).collect()
    }
}

async fn run(pool: &PgPool, config: &Config, request: ChatRequest) -> Run {
    let e = engine_with(pool, config.clone(), providers(config));
    run_on(&e, pool, request).await
}

async fn run_on(e: &common::TestEngine, pool: &PgPool, request: ChatRequest) -> Run {
    let request_id = request.request_id;
    let started = Instant::now();
    let events = tokio::time::timeout(Duration::from_secs(20), collect(e.pipeline.run(request).await.unwrap()))
        .await
        .expect("no request may hang");
    assert!(started.elapsed() < Duration::from_secs(11), "the deadline bounds every request");
    e.call_log.flush().await;
    let rows = llm_calls::for_request(pool, request_id).await.unwrap();
    Run { events, rows }
}

fn s(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn openai_stream_cost_is_usage_times_catalog_price(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::answer("Your order ships today.", (1_000, 300, 400))]);
    let r = run(&pool, &config(&fake), ask("fake/a")).await;
    assert_eq!(r.text(), "Your order ships today.");
    let o = r.finished();
    assert_eq!((o.usage.input_tokens, o.usage.output_tokens, o.usage.cached_tokens), (1_000, 300, 400));
    // 600 × $2.50 + 400 × $1.25 + 300 × $10 per 1M tokens, in micro-dollars
    assert_eq!(o.cost_micros, 1_500 + 500 + 3_000);
    assert_eq!(r.attempts(), vec![s("fake/a", "ok")]);
    assert_eq!(r.rows[0].cost_micros, 5_000);
    assert_eq!((r.rows[0].input_tokens, r.rows[0].output_tokens), (1_000, 300));
    let call = &fake.calls()[0];
    assert_eq!(call.body["stream_options"]["include_usage"], true);
    assert_eq!(call.headers["authorization"], "Bearer sk-test");
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn anthropic_stream_cost_is_usage_times_catalog_price(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("claude-x", [Behavior::answer("Happy to help.", (2_000, 500, 1_000))]);
    let mut request = ask("fake/claude");
    request.messages.insert(0, ChatMessage::new(Role::System, "Be kind."));
    let r = run(&pool, &config(&fake), request).await;
    assert_eq!(r.text(), "Happy to help.");
    // 1000 × $3 + 1000 × $0.30 + 500 × $15 per 1M tokens
    assert_eq!(r.finished().cost_micros, 3_000 + 300 + 7_500);
    assert_eq!(r.rows[0].cost_micros, 10_800);
    let call = &fake.calls()[0];
    assert_eq!(call.path, "/v1/messages");
    assert_eq!(call.headers["x-api-key"], "sk-test");
    assert_eq!(call.headers["anthropic-version"], "2023-06-01");
    assert_eq!(call.body["system"], "Be kind.");
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_5xx_is_retried_with_bounded_backoff(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::Status(500)]);
    let r = run(&pool, &config(&fake), ask("fake/a")).await;
    assert_eq!(r.text(), "Hello from the fake upstream.");
    assert_eq!(r.attempts(), vec![s("fake/a", "error"), s("fake/a", "ok")]);
    assert!(r.rows[0].error.as_deref().unwrap().contains("500"));
    let calls = fake.calls();
    let gap = calls[1].at - calls[0].at;
    // backoff is capped at 60 ms; the rest is request time on a loaded CI machine
    assert!(gap <= Duration::from_millis(1_500), "backoff is bounded: {gap:?}");
    assert_eq!(r.finished().attempts, 2);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_429_waits_for_retry_after(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::RateLimited { retry_after_secs: 1 }]);
    let r = run(&pool, &config(&fake), ask("fake/a")).await;
    assert_eq!(r.attempts(), vec![s("fake/a", "error"), s("fake/a", "ok")]);
    let calls = fake.calls();
    assert!(calls[1].at - calls[0].at >= Duration::from_secs(1), "Retry-After is honoured");
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_long_retry_after_falls_back_instead_of_waiting(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::RateLimited { retry_after_secs: 60 }]);
    let r = run(&pool, &config(&fake), ask("auto")).await;
    assert_eq!(r.attempts(), vec![s("fake/a", "error"), s("fake/b", "ok")]);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn exhausted_retries_fall_back_in_candidate_order(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::Status(503), Behavior::Status(503)]);
    let r = run(&pool, &config(&fake), ask("auto")).await;
    assert_eq!(r.attempts(), vec![s("fake/a", "error"), s("fake/a", "error"), s("fake/b", "ok")]);
    let attempts: Vec<i32> = r.rows.iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert_eq!(r.finished().model, "fake/b");
    assert_eq!((fake.calls_for("model-a"), fake.calls_for("model-b")), (2, 1));
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_refused_key_falls_back_without_retry_and_a_bad_request_stops(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::Status(401)]);
    let r = run(&pool, &config(&fake), ask("auto")).await;
    assert_eq!(r.attempts(), vec![s("fake/a", "error"), s("fake/b", "ok")]);

    fake.script("model-a", [Behavior::Status(400)]);
    let r = run(&pool, &config(&fake), ask("auto")).await;
    assert_eq!(r.attempts(), vec![s("fake/a", "error")]);
    assert_eq!(r.failure().1, FailureKind::BadRequest);
    assert_eq!(fake.calls_for("model-b"), 1, "no other model is tried for a bad request");
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_slow_first_byte_times_out_and_is_retried(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::SlowFirstByte(Duration::from_secs(2))]);
    let r = run(&pool, &config(&fake), ask("fake/a")).await;
    assert_eq!(r.attempts(), vec![s("fake/a", "error"), s("fake/a", "ok")]);
    assert!(r.rows[0].error.as_deref().unwrap().contains("timed out"));
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn malformed_streams_and_bodies_are_retried(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::MalformedSse, Behavior::InvalidJson]);
    fake.script("model-b", [Behavior::Garbage]);
    let r = run(&pool, &config(&fake), ask("auto")).await;
    assert_eq!(r.attempts(), vec![s("fake/a", "error"), s("fake/a", "error"), s("fake/b", "error"), s("fake/b", "ok")]);
    for row in &r.rows[..3] {
        assert!(row.error.as_deref().unwrap().contains("bad response"), "{:?}", row.error);
        assert_eq!(row.cost_micros, 0, "a failed attempt with no output costs nothing");
    }
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_stream_dropped_after_tokens_ends_with_an_error_and_is_recorded(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::DropAfter(3)]);
    let r = run(&pool, &config(&fake), ask("auto")).await;
    let (message, kind) = r.failure();
    assert_eq!(kind, FailureKind::Interrupted);
    assert!(message.contains("interrupted"), "{message}");
    assert!(r.text().starts_with("part0 "), "tokens already sent stay sent: {}", r.text());
    assert_eq!(r.attempts(), vec![s("fake/a", "error")], "no retry once tokens went out");
    let row = &r.rows[0];
    assert!(row.output_tokens > 0, "cut-short output is counted with the tokenizer");
    let estimated: bool = sqlx::query_scalar("SELECT tokens_estimated FROM llm_calls WHERE id = $1")
        .bind(row.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(estimated);
    assert_eq!(fake.calls_for("model-b"), 0);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_caller_waiting_for_the_whole_answer_gets_a_cut_stream_retried(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::DropAfter(3)]);
    let mut request = ask("auto");
    request.buffered = true; // a non-streaming API call
    let r = run(&pool, &config(&fake), request).await;
    r.finished();
    // nothing of the cut attempt reached the caller: one whole answer
    assert!(!r.text().contains("part0"), "{}", r.text());
    assert_eq!(r.events.iter().filter(|e| matches!(e, ChatEvent::Answering { .. })).count(), 1);
    assert_eq!(r.attempts(), vec![s("fake/a", "error"), s("fake/a", "ok")]);
    assert!(r.rows[0].output_tokens > 0, "the cut attempt's output is still counted");
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn missing_usage_is_estimated_with_a_tokenizer(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script(
        "model-b",
        [Behavior::Answer { chunks: vec!["One ".into(), "two ".into(), "three.".into()], usage: None }],
    );
    let r = run(&pool, &config(&fake), ask("fake/b")).await;
    let o = r.finished();
    assert!(o.usage.estimated);
    assert!((2..=6).contains(&o.usage.output_tokens), "{:?}", o.usage);
    assert!(o.usage.input_tokens >= 5);
    assert_eq!(r.rows[0].status, "ok");
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn the_circuit_opens_skips_the_model_and_probes_after_cooldown(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let config = config(&fake);
    let e = engine_with(&pool, config.clone(), providers(&config));
    // 3 consecutive failures open fake/a's circuit (2 attempts per request).
    fake.script("model-a", (0..3).map(|_| Behavior::Status(500)));
    let r = run_on(&e, &pool, ask("auto")).await;
    assert_eq!(r.finished().model, "fake/b");
    let r = run_on(&e, &pool, ask("auto")).await;
    assert_eq!(r.attempts()[0], s("fake/a", "error"));
    assert_eq!(e.pipeline.health().state("fake/a"), BreakerState::Open);
    let calls_before = fake.calls_for("model-a");
    let r = run_on(&e, &pool, ask("auto")).await;
    assert_eq!(r.attempts(), vec![s("fake/b", "ok")], "an open circuit is skipped without a call");
    assert_eq!(fake.calls_for("model-a"), calls_before);
    // After the cool-down one probe goes through, and success closes it.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = run_on(&e, &pool, ask("auto")).await;
    assert_eq!(r.attempts(), vec![s("fake/a", "ok")]);
    assert_eq!(e.pipeline.health().state("fake/a"), BreakerState::Closed);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_failing_tier_falls_back_one_tier_up(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let mut config = config(&fake);
    config.routing.resilience.fallback_tier_up = true;
    config.routing.resilience.max_attempts_per_model = 1;
    fake.script("model-a", [Behavior::Status(503)]);
    fake.script("model-b", [Behavior::Status(503)]);
    let r = run(&pool, &config, ask("auto")).await;
    assert_eq!(r.attempts(), vec![s("fake/a", "error"), s("fake/b", "error"), s("fake/claude", "ok")]);
    let tiers: Vec<Option<String>> = r.rows.iter().map(|r| r.tier.clone()).collect();
    assert_eq!(tiers, vec![Some("budget".into()), Some("budget".into()), Some("balanced".into())]);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn every_fault_at_once_ends_in_a_clear_error_with_one_row_per_attempt(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    fake.script("model-a", [Behavior::Status(503), Behavior::Garbage]);
    fake.script("model-b", [Behavior::InvalidJson, Behavior::Status(500)]);
    let r = run(&pool, &config(&fake), ask("auto")).await;
    let (message, kind) = r.failure();
    assert_eq!(kind, FailureKind::Unavailable);
    assert!(message.contains("no model could answer"), "{message}");
    assert_eq!(r.rows.len(), fake.calls().len(), "exactly one row per upstream attempt");
    assert_eq!(r.rows.len(), 4);
    let by_status: HashMap<&str, usize> = r.rows.iter().fold(HashMap::new(), |mut m, row| {
        *m.entry(row.status.as_str()).or_default() += 1;
        m
    });
    assert_eq!(by_status.get("error"), Some(&4));
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn models_without_keys_are_left_out_and_the_local_model_remains(pool: PgPool) {
    let config = Config::default();
    let (endpoints, left_out) = resolve_endpoints(&config, |_| None);
    assert!(endpoints.is_empty());
    assert_eq!(left_out.len(), 7, "{left_out:?}");
    assert!(left_out.iter().any(|w| w.contains("OPENAI_API_KEY")));
    let (endpoints, _) = resolve_endpoints(&config, |var| (var == "ANTHROPIC_API_KEY").then(|| "k".into()));
    let mut names: Vec<&String> = endpoints.keys().collect();
    names.sort();
    assert_eq!(names, ["anthropic/claude-haiku-4-5", "anthropic/claude-opus-4-5", "anthropic/claude-sonnet-4-5"]);
    let _ = pool;
}
