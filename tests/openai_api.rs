//! `/v1` driven with `oneshot` on real Postgres, with a fake upstream behind
//! it: the OpenAI wire format, keys, validation, attribution, limits and
//! budgets, and routing that is explained and sticky per ticket.

mod common;
mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{app_state, engine_with, engine_with_classifier, test_config};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::fake_upstream::{Behavior, FakeUpstream};
use tower::ServiceExt;
use triage::config::{Config, ModelConfig, ProviderKind, TierConfig};
use triage::engine::classify::{Classifier, LlmSettings};
use triage::engine::providers::{Providers, resolve_endpoints};
use triage::engine::route::SelectionPolicy;
use triage::http::build_app;
use triage::store::api_keys::{self, NewKey};

fn remote(id: &str, base_url: &str, prices: (f64, f64)) -> ModelConfig {
    ModelConfig {
        provider: ProviderKind::Openai,
        upstream_model: id.into(),
        base_url: Some(base_url.into()),
        api_key_env: None,
        input_price_per_mtok: prices.0,
        output_price_per_mtok: prices.1,
        cached_input_price_per_mtok: None,
        context_window: 128_000,
    }
}

/// One fake model per tier, priced like the real ones.
fn config(fake: &FakeUpstream) -> Config {
    let mut c = test_config();
    c.models.insert("fake/cheap".into(), remote("cheap", &fake.base_url, (0.15, 0.6)));
    c.models.insert("fake/mid".into(), remote("mid", &fake.base_url, (2.5, 10.0)));
    c.models.insert("fake/top".into(), remote("top", &fake.base_url, (5.0, 25.0)));
    c.models.insert("fake/classifier".into(), remote("classifier", &fake.base_url, (0.1, 0.4)));
    let tier = |name: &str| TierConfig {
        candidates: vec![name.to_string()],
        policy: SelectionPolicy::CheapestHealthy,
        fallback: vec![],
        weights: Default::default(),
    };
    c.routing.budget = tier("fake/cheap");
    c.routing.balanced = tier("fake/mid");
    c.routing.premium = tier("fake/top");
    c.routing.resilience.backoff_base_ms = 10;
    c.routing.resilience.backoff_cap_ms = 20;
    c
}

fn providers(config: &Config) -> Providers {
    let (endpoints, _) = resolve_endpoints(config, |_| None);
    Providers { local: None, http: Some(Providers::http_client()), endpoints }
}

struct Api {
    app: axum::Router,
    pool: PgPool,
    call_log: triage::engine::call_log::CallLog,
}

impl Api {
    fn new(pool: &PgPool, config: Config) -> Self {
        let e = engine_with(pool, config.clone(), providers(&config));
        Api { app: build_app(app_state(pool, &e)), pool: pool.clone(), call_log: e.call_log }
    }

    async fn post(&self, key: Option<&str>, body: Value, headers: &[(&str, &str)]) -> (StatusCode, Value, String) {
        self.post_raw(key, body.to_string(), headers).await
    }

    async fn post_raw(&self, key: Option<&str>, body: String, headers: &[(&str, &str)]) -> (StatusCode, Value, String) {
        let mut r = Request::post("/v1/chat/completions").header(header::CONTENT_TYPE, "application/json");
        if let Some(k) = key {
            r = r.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        let response = self.app.clone().oneshot(r.body(Body::from(body)).unwrap()).await.unwrap();
        let status = response.status();
        let head: String =
            response.headers().iter().map(|(n, v)| format!("{}: {}\n", n, v.to_str().unwrap_or(""))).collect();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json, head)
    }

    async fn key(&self, new: NewKey) -> String {
        api_keys::create(&self.pool, &new).await.unwrap().1
    }

    async fn flushed(&self) {
        self.call_log.flush().await;
    }
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_concrete_model_answers_in_openai_shape_with_triage_headers(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake));
    let key = api.key(NewKey { name: "t".into(), ..NewKey::default() }).await;
    fake.script("mid", [Behavior::answer("Hello there friend.", (30, 5, 0))]);
    let (status, body, head) = api
        .post(
            Some(&key),
            ask("fake/mid", "hi"),
            &[("x-triage-user-id", "u-7"), ("x-triage-property-plan", "gold"), ("x-triage-session-id", "s-1")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "fake/mid");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello there friend.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"], json!({"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}));
    // 30 × 2.5 + 5 × 10 micro-dollars per token… per million: 75 + 50 = 125 µ$ / 1e6 × 1e6
    assert_eq!(header(&head, "x-triage-model"), Some("fake/mid"));
    assert_eq!(header(&head, "x-triage-cost-micros"), Some("125"));
    assert_eq!(header(&head, "x-triage-cache"), Some("BYPASS"), "temperature unset: not cached");
    let request_id = header(&head, "x-triage-request-id").unwrap().to_string();
    assert!(header(&head, "x-triage-complexity").is_none(), "a named model is not classified");

    api.flushed().await;
    let row: (String, Option<String>, Value, i64, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT model, user_id, properties, cost_micros, ticket_id FROM llm_calls WHERE request_id = $1::uuid",
    )
    .bind(&request_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((row.0.as_str(), row.1.as_deref(), row.3), ("fake/mid", Some("u-7"), 125));
    assert_eq!(row.2, json!({"plan": "gold"}));
    let ticket = row.4.expect("the session header makes a ticket");
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE ticket_id = $1")
        .bind(ticket)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(messages, 2, "the question and the answer are kept in the ticket");
    // the spend is counted against the key and the user
    let spent: Vec<(String, i64)> =
        sqlx::query_as("SELECT scope, spent_micros FROM spend_counters WHERE period = 'day' ORDER BY scope")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(spent.len(), 2);
    assert!(spent.iter().all(|(_, s)| *s == 125), "{spent:?}");
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn auto_streams_chunks_with_routing_first_and_usage_last(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake));
    let key = api.key(NewKey { name: "t".into(), ..NewKey::default() }).await;
    fake.script("cheap", [Behavior::answer("We open at nine.", (12, 4, 0))]);
    let mut body = ask("auto", "What time do you open?");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, text, head) = api.post(Some(&key), body, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&head, "x-triage-tier"), Some("budget"));
    assert_eq!(header(&head, "x-triage-complexity"), Some("simple"));
    let text = text.as_str().unwrap().to_string();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["triage"]["tier"], "budget");
    assert_eq!(chunks[0]["triage"]["classifier"], "heuristic");
    assert!(chunks[0]["triage"]["route"].as_str().unwrap().contains("budget via cheapest_healthy"));
    let content: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert_eq!(content, "We open at nine.");
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "fake/cheap"));
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 16);
    assert!(usage["triage"]["cost_micros"].as_i64().unwrap() > 0);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn keys_are_required_checked_and_revocable(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake));
    let (status, body, _) = api.post(None, ask("auto", "hi"), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["type"], "authentication_error");
    let (status, _, _) = api.post(Some("tr-not-a-key"), ask("auto", "hi"), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (key, secret) = api_keys::create(&pool, &NewKey { name: "gone".into(), ..NewKey::default() }).await.unwrap();
    assert!(secret.starts_with("tr-") && secret.len() == 43);
    let stored: String =
        sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = $1").bind(key.id).fetch_one(&pool).await.unwrap();
    assert!(!stored.contains(&secret[3..]), "only the hash is stored");
    assert_eq!(api_keys::revoke(&pool, "gone").await.unwrap().len(), 1);
    // a fresh app (no cached lookup) refuses it at once
    let api = Api::new(&pool, config(&fake));
    let (status, _, _) = api.post(Some(&secret), ask("auto", "hi"), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn bad_requests_get_openai_shaped_errors_and_store_nothing(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let mut c = config(&fake);
    c.api.max_body_bytes = 4096;
    c.api.max_messages = 3;
    c.api.max_message_chars = 500;
    let api = Api::new(&pool, c);
    let key = api.key(NewKey { name: "t".into(), ..NewKey::default() }).await;
    let many: Vec<Value> = (0..4).map(|_| json!({"role": "user", "content": "x"})).collect();
    let cases: Vec<(String, StatusCode, Option<&str>)> = vec![
        ("{not json".into(), StatusCode::BAD_REQUEST, None),
        (json!({"model": "auto", "messages": "hi"}).to_string(), StatusCode::BAD_REQUEST, None),
        (json!({"model": 5, "messages": []}).to_string(), StatusCode::BAD_REQUEST, None),
        (json!({"model": "auto", "messages": []}).to_string(), StatusCode::BAD_REQUEST, Some("messages")),
        (json!({"model": "auto", "messages": many}).to_string(), StatusCode::BAD_REQUEST, Some("messages")),
        (ask("auto", &"y".repeat(501)).to_string(), StatusCode::BAD_REQUEST, Some("messages")),
        (ask("gpt-17", "hi").to_string(), StatusCode::NOT_FOUND, Some("model")),
        (
            json!({"model": "auto", "n": 2, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            StatusCode::BAD_REQUEST,
            Some("n"),
        ),
        (
            json!({"model": "auto", "temperature": 9, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            StatusCode::BAD_REQUEST,
            Some("temperature"),
        ),
        (
            json!({"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]}).to_string(),
            StatusCode::BAD_REQUEST,
            Some("messages"),
        ),
        (
            json!({"model": "auto", "messages": [{"role": "assistant", "content": "hi"}]}).to_string(),
            StatusCode::BAD_REQUEST,
            Some("messages"),
        ),
        (
            json!({"model": "auto", "router_candidates": ["nope"], "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
            StatusCode::BAD_REQUEST,
            Some("router_candidates"),
        ),
        (
            json!({"model": "auto", "tier": "premium", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            StatusCode::FORBIDDEN,
            None,
        ),
        (ask("auto", &"z".repeat(5000)).to_string(), StatusCode::PAYLOAD_TOO_LARGE, None),
    ];
    for (body, want, param) in cases {
        let (status, json, _) = api.post_raw(Some(&key), body.clone(), &[]).await;
        assert_eq!(status, want, "{body:.120} → {json}");
        let error = &json["error"];
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
        assert!(error["type"].is_string(), "{json}");
        if let Some(p) = param {
            assert_eq!(error["param"], p, "{json}");
        }
    }
    api.flushed().await;
    assert_eq!(common::count(&pool, "llm_calls").await, 0);
    assert_eq!(common::count(&pool, "messages").await, 0);
    assert!(fake.calls().is_empty());
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_key_over_its_rate_gets_429_with_retry_after(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake));
    let key = api.key(NewKey { name: "slow".into(), rpm_limit: Some(3), ..NewKey::default() }).await;
    for _ in 0..3 {
        let (status, body, _) = api.post(Some(&key), ask("fake/cheap", "hi"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body, head) = api.post(Some(&key), ask("fake/cheap", "hi"), &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let wait: u64 = header(&head, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "a 3/min bucket refills one in 20 s: {wait}");
    assert_eq!(fake.calls_for("cheap"), 3);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_spent_budget_is_refused_with_budget_exceeded(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake));
    let key = api.key(NewKey { name: "thrifty".into(), daily_budget_micros: Some(100), ..NewKey::default() }).await;
    fake.script("top", [Behavior::answer("An expensive answer.", (10, 10, 0))]);
    // 10 × 5 + 10 × 25 = 300 µ$: over the 100 µ$ budget once counted
    let (status, _, _) = api.post(Some(&key), ask("fake/top", "hi"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    api.flushed().await;
    let (status, body, _) = api.post(Some(&key), ask("fake/top", "hi"), &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().contains("daily budget"));
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_ticket_keeps_its_tier_escalates_and_can_be_forced(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake));
    let key = api.key(NewKey { name: "agent".into(), can_force_tier: true, ..NewKey::default() }).await;
    let session = [("x-triage-session-id", "ticket-42")];
    let hard = "My app crashes on start, here is the traceback:\n```\nTraceback (most recent call last):\n  \
        File \"a.py\", line 1\nValueError\n```";
    let (_, body, _) = api.post(Some(&key), ask("auto", hard), &session).await;
    assert_eq!(body["triage"]["tier"], "premium", "{body}");
    // a simple follow-up stays premium: the ticket's recent tier
    let (_, body, _) = api.post(Some(&key), ask("auto", "ok thanks"), &session).await;
    assert_eq!(body["triage"]["tier"], "premium", "{body}");
    assert!(body["triage"]["route"].as_str().unwrap().contains("ticket's recent premium"), "{body}");
    // without the session the same text goes to budget
    let (_, body, _) = api.post(Some(&key), ask("auto", "ok thanks"), &[]).await;
    assert_eq!(body["triage"]["tier"], "budget");
    // asking for a person escalates one tier and marks the ticket
    let (_, body, _) =
        api.post(Some(&key), ask("auto", "Can I talk to a human?"), &[("x-triage-session-id", "t-2")]).await;
    assert_eq!(body["triage"]["tier"], "balanced", "{body}");
    let status: String =
        sqlx::query_scalar("SELECT status FROM tickets WHERE external_id = 't-2'").fetch_one(&pool).await.unwrap();
    assert_eq!(status, "escalated");
    // a trusted key forces the tier; router_candidates narrow the pool
    let mut forced = ask("auto", "ok thanks");
    forced["tier"] = json!("premium");
    let (_, body, head) = api.post(Some(&key), forced, &[]).await;
    assert_eq!((body["triage"]["tier"].as_str(), body["model"].as_str()), (Some("premium"), Some("fake/top")));
    assert_eq!(header(&head, "x-triage-tier"), Some("premium"));
    let mut narrowed = ask("auto", "ok thanks");
    narrowed["router_candidates"] = json!(["fake/mid"]);
    let (_, body, _) = api.post(Some(&key), narrowed, &[]).await;
    assert_eq!(body["model"], "fake/mid", "{body}");
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn the_llm_classifier_is_used_recorded_and_fallen_back_from(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let c = config(&fake);
    let settings = LlmSettings {
        model: triage::engine::pricing::Catalog::from_config(&c).get("fake/classifier").unwrap().clone(),
        timeout: std::time::Duration::from_secs(2),
        cascade_below: 0.6,
        fallback: Classifier::Heuristic,
    };
    let e = engine_with_classifier(&pool, c.clone(), providers(&c), Classifier::Llm(std::sync::Arc::new(settings)));
    let api = Api { app: build_app(app_state(&pool, &e)), pool: pool.clone(), call_log: e.call_log.clone() };
    let key = api.key(NewKey { name: "t".into(), ..NewKey::default() }).await;
    fake.script(
        "classifier",
        [
            Behavior::ToolCall {
                name: "classify_query".into(),
                arguments:
                    r#"{"complexity":"complex","category":"billing","confidence":0.9,"reason":"Disputed charges."}"#
                        .into(),
            },
            // not the tool's schema: falls back to the in-process classifier
            Behavior::ToolCall { name: "classify_query".into(), arguments: r#"{"complexity":"premium"}"#.into() },
        ],
    );
    let (_, body, _) = api.post(Some(&key), ask("auto", "hi there"), &[]).await;
    assert_eq!(body["triage"]["tier"], "premium", "{body}");
    assert_eq!(body["triage"]["classifier"], "llm");
    assert!(body["triage"]["reason"].as_str().unwrap().contains("billing"));
    let call = fake.calls().into_iter().find(|c| c.model == "classifier").unwrap();
    assert_eq!(call.body["temperature"], 0.0);
    assert_eq!(call.body["tool_choice"]["function"]["name"], "classify_query");

    let (_, body, _) = api.post(Some(&key), ask("auto", "hi there"), &[]).await;
    assert_eq!(body["triage"]["tier"], "budget", "{body}");
    assert!(body["triage"]["reason"].as_str().unwrap().contains("llm failed"), "{body}");
    api.flushed().await;
    let rows: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT kind, status, input_tokens FROM llm_calls WHERE kind = 'classify' ORDER BY created_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![("classify".into(), "ok".into(), 90), ("classify".into(), "error".into(), 90)]);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn models_lists_the_catalog_and_auto(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let api = Api::new(&pool, config(&fake));
    let key = api.key(NewKey { name: "t".into(), ..NewKey::default() }).await;
    let request = Request::get("/v1/models").header(header::AUTHORIZATION, format!("Bearer {key}")).body(Body::empty());
    let response = api.app.clone().oneshot(request.unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids[0], "auto");
    assert!(ids.contains(&"fake/top") && ids.contains(&"openai/gpt-4o"));
    let gpt = body["data"].as_array().unwrap().iter().find(|m| m["id"] == "openai/gpt-4o").unwrap();
    assert_eq!(gpt["triage"]["available"], false, "no key for it here");
}
