//! The response cache through `/v1`, on real Postgres, with a fake upstream
//! that counts calls: miss then hit, TTL, tenant isolation, bypasses,
//! the semantic guards with real MiniLM embeddings, and purge.

mod common;
mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{app_state, models_dir, test_config};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::fake_upstream::{Behavior, FakeUpstream};
use tower::ServiceExt;
use triage::config::{Config, ModelConfig, ProviderKind, TierConfig};
use triage::engine::cache::Cache;
use triage::engine::classify::Classifier;
use triage::engine::classify::minilm::MiniLm;
use triage::engine::pipeline::{Dependencies, Pipeline};
use triage::engine::providers::{Providers, resolve_endpoints};
use triage::engine::route::SelectionPolicy;
use triage::http::build_app;
use triage::store::api_keys::{self, NewKey};

fn config(fake: &FakeUpstream) -> Config {
    let mut c = test_config();
    c.models.insert(
        "fake/model".into(),
        ModelConfig {
            provider: ProviderKind::Openai,
            upstream_model: "m".into(),
            base_url: Some(fake.base_url.clone()),
            api_key_env: None,
            input_price_per_mtok: 2.0,
            output_price_per_mtok: 8.0,
            cached_input_price_per_mtok: None,
            context_window: 128_000,
        },
    );
    let tier = TierConfig {
        candidates: vec!["fake/model".into()],
        policy: SelectionPolicy::InOrder,
        fallback: vec![],
        weights: Default::default(),
    };
    c.routing.budget = tier.clone();
    c.routing.balanced = tier.clone();
    c.routing.premium = tier;
    c
}

fn minilm() -> Arc<MiniLm> {
    static M: std::sync::OnceLock<Arc<MiniLm>> = std::sync::OnceLock::new();
    M.get_or_init(|| Arc::new(MiniLm::load(&models_dir().join("all-MiniLM-L6-v2")).expect("run scripts/fetch-models")))
        .clone()
}

struct Api {
    app: axum::Router,
    pool: PgPool,
    pipeline: Arc<Pipeline>,
    call_log: triage::engine::call_log::CallLog,
    cache: Arc<Cache>,
}

impl Api {
    fn new(pool: &PgPool, config: Config, semantic: bool) -> Self {
        let (endpoints, _) = resolve_endpoints(&config, |_| None);
        let providers = Providers { local: None, http: Some(Providers::http_client()), endpoints };
        let (call_log, _worker) = triage::engine::call_log::CallLog::start(pool.clone());
        let embedder = semantic.then(minilm);
        let deps = Dependencies {
            classifier: Classifier::Heuristic,
            providers,
            pool: pool.clone(),
            call_log: call_log.clone(),
            tokens: common::token_counter(),
            limiter: triage::engine::limits::Limiter::new(config.limits.clone(), pool.clone()),
            cache: Arc::new(Cache::new(config.cache.clone(), pool.clone(), embedder)),
        };
        let cache = deps.cache.clone();
        let pipeline = Pipeline::new(&config, deps);
        let engine = common::TestEngine { pipeline: pipeline.clone(), call_log: call_log.clone(), config };
        Api { app: build_app(app_state(pool, &engine)), pool: pool.clone(), pipeline, call_log, cache }
    }

    async fn key(&self, name: &str) -> String {
        api_keys::create(&self.pool, &NewKey { name: name.into(), ..NewKey::default() }).await.unwrap().1
    }

    async fn ask(&self, key: &str, body: Value, headers: &[(&str, &str)]) -> (StatusCode, Value, String) {
        let mut r = Request::post("/v1/chat/completions")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        let response = self.app.clone().oneshot(r.body(Body::from(body.to_string())).unwrap()).await.unwrap();
        let status = response.status();
        let cache = response.headers().get("x-triage-cache").map(|v| v.to_str().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), cache.unwrap_or_default())
    }
}

/// Waits (up to 10 s) until the background writes put `n` entries in Postgres.
async fn stored(pool: &PgPool, n: i64) {
    for _ in 0..200 {
        if common::count(pool, "cache_entries").await == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("expected {n} cache entries in Postgres");
}

fn question(text: &str, temperature: f64) -> Value {
    json!({"model": "fake/model", "temperature": temperature, "messages": [
        {"role": "system", "content": "You are support."},
        {"role": "user", "content": text}]})
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_repeat_is_served_from_cache_and_recorded_as_a_hit(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake), false);
    let key = api.key("a").await;
    fake.script("m", [Behavior::answer("We open at nine on weekdays.", (100, 20, 0))]);
    let (status, first, cache) = api.ask(&key, question("When do you open?", 0.0), &[]).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "MISS"));
    let (_, second, cache) = api.ask(&key, question("When do you open?", 0.0), &[]).await;
    assert_eq!(cache, "HIT");
    assert_eq!(second["choices"][0]["message"]["content"], first["choices"][0]["message"]["content"]);
    assert_eq!(second["model"], "fake/model");
    assert_eq!(fake.calls_for("m"), 1, "the second answer came from the cache");

    // streamed hits replay as chunks
    let mut body = question("When do you open?", 0.0);
    body["stream"] = json!(true);
    let (_, stream, cache) = api.ask(&key, body, &[]).await;
    assert_eq!(cache, "HIT");
    let text = stream.as_str().unwrap();
    assert!(text.matches("\"content\":").count() > 2, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(fake.calls_for("m"), 1);

    api.call_log.flush().await;
    let rows: Vec<(String, i64, i64, String)> =
        sqlx::query_as("SELECT cache_status, cost_micros, saved_micros, provider FROM llm_calls ORDER BY created_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    // 100 × 2 + 20 × 8 = 360 µ$ once; each hit saved that much
    assert_eq!(rows[0], ("miss".into(), 360, 0, "openai".into()));
    assert_eq!(rows[1], ("hit".into(), 0, 360, "cache".into()));
    assert_eq!(rows.len(), 3);
    // a fresh instance (empty memory) finds it in Postgres
    stored(&pool, 1).await; // the background write

    // hits are counted in memory and written in one statement: a burst on
    // one popular answer does not queue an UPDATE per hit on its row
    let burst: Vec<_> = (0..40).map(|_| api.ask(&key, question("When do you open?", 0.0), &[])).collect();
    assert!(futures::future::join_all(burst).await.iter().all(|(_, _, c)| c == "HIT"));
    let hits = || sqlx::query_scalar::<_, i32>("SELECT hits FROM cache_entries").fetch_one(&pool);
    assert_eq!(hits().await.unwrap(), 0, "nothing written per hit");
    api.cache.write_hits().await.unwrap();
    assert_eq!(hits().await.unwrap(), 42, "two hits above, forty in the burst");
    api.cache.write_hits().await.unwrap();
    assert_eq!(hits().await.unwrap(), 42, "each hit is written once");
    let other = Api::new(&pool, config(&fake), false);
    let (_, _, cache) = other.ask(&key, question("When do you open?", 0.0), &[]).await;
    assert_eq!(cache, "HIT");
    assert_eq!(fake.calls_for("m"), 1);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn tenants_temperature_and_bypass_keep_requests_apart(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake), false);
    let (a, b) = (api.key("a").await, api.key("b").await);
    api.ask(&a, question("Where is my order?", 0.0), &[]).await;
    let (_, _, cache) = api.ask(&b, question("Where is my order?", 0.0), &[]).await;
    assert_eq!(cache, "MISS", "key B never sees key A's entry");
    let (_, _, cache) = api.ask(&a, question("Where is my order?", 0.7), &[]).await;
    assert_eq!(cache, "BYPASS", "temperature above 0 is not cached");
    let (_, _, cache) = api.ask(&a, question("Where is my order?", 0.0), &[("x-triage-cache", "bypass")]).await;
    assert_eq!(cache, "BYPASS");
    let (_, _, cache) = api.ask(&a, question("Where is my order?", 0.0), &[]).await;
    assert_eq!(cache, "HIT");
    assert_eq!(fake.calls_for("m"), 4);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn entries_expire(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let mut c = config(&fake);
    c.cache.ttl_budget_secs = 1;
    c.cache.ttl_balanced_secs = 1;
    c.cache.ttl_premium_secs = 1;
    let api = Api::new(&pool, c, false);
    let key = api.key("a").await;
    api.ask(&key, question("hi", 0.0), &[]).await;
    assert_eq!(api.ask(&key, question("hi", 0.0), &[]).await.2, "HIT");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(api.ask(&key, question("hi", 0.0), &[]).await.2, "MISS");
    assert_eq!(fake.calls_for("m"), 2);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn purge_clears_postgres_and_memory(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake), false);
    let key = api.key("a").await;
    api.ask(&key, question("hi", 0.0), &[]).await;
    stored(&pool, 1).await;
    assert_eq!(common::count(&pool, "cache_entries").await, 1);
    assert_eq!(api.pipeline.cache().purge(Some("other/model"), None).await.unwrap(), 0);
    assert_eq!(api.ask(&key, question("hi", 0.0), &[]).await.2, "HIT");
    assert_eq!(api.pipeline.cache().purge(Some("fake/model"), None).await.unwrap(), 1);
    assert_eq!(api.ask(&key, question("hi", 0.0), &[]).await.2, "MISS");
    stored(&pool, 1).await;
    assert_eq!(api.pipeline.cache().purge(None, None).await.unwrap(), 1);
    assert_eq!(common::count(&pool, "cache_entries").await, 0);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn the_semantic_cache_matches_paraphrases_but_not_negations_or_other_ids(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let mut c = config(&fake);
    c.cache.semantic = true;
    c.cache.semantic_threshold = 0.85;
    let api = Api::new(&pool, c, true);
    let key = api.key("a").await;
    let (_, body, cache) = api.ask(&key, question("How do I reset my password?", 0.0), &[]).await;
    assert_eq!(cache, "MISS", "{body}");
    let (_, body, cache) = api.ask(&key, question("How can I reset my password?", 0.0), &[]).await;
    assert_eq!(cache, "HIT", "{body}");
    let (_, _, cache) = api.ask(&key, question("How do I not reset my password?", 0.0), &[]).await;
    assert_eq!(cache, "MISS", "negation guard");
    api.ask(&key, question("Where is order 1234?", 0.0), &[]).await;
    let (_, _, cache) = api.ask(&key, question("Where is order 5678?", 0.0), &[]).await;
    assert_eq!(cache, "MISS", "id guard");
    // per request off
    let (_, _, cache) =
        api.ask(&key, question("How could I reset my password?", 0.0), &[("x-triage-semantic-cache", "off")]).await;
    assert_eq!(cache, "MISS");
    // a later turn of a conversation is never matched semantically
    let follow_up = json!({"model": "fake/model", "temperature": 0.0, "messages": [
        {"role": "system", "content": "You are support."},
        {"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "How can I reset my password?"}]});
    assert_eq!(api.ask(&key, follow_up, &[]).await.2, "MISS");
}
