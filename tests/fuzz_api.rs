//! Property tests against the live `/v1` app (real Postgres, fake upstream):
//! whatever the body, the answer is a 2xx or a 4xx with an OpenAI-shaped
//! error; never a 5xx, never a panic.

mod common;
mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{app_state, engine_with, test_config};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::fake_upstream::FakeUpstream;
use tower::ServiceExt;
use triage::config::{ModelConfig, ProviderKind, TierConfig};
use triage::engine::providers::{Providers, resolve_endpoints};
use triage::engine::route::SelectionPolicy;

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies near the real shape, with each field sometimes wrong.
fn chat_body() -> impl Strategy<Value = Value> {
    let role = prop_oneof![
        Just(json!("user")),
        Just(json!("system")),
        Just(json!("assistant")),
        Just(json!("tool")),
        any_json()
    ];
    let content = prop_oneof![
        "\\PC{0,80}".prop_map(Value::String),
        Just(json!([{"type": "text", "text": "hi"}])),
        Just(json!([{"type": "image_url", "image_url": {"url": "data:x"}}])),
        any_json(),
    ];
    let message = (role, content, any::<bool>()).prop_map(|(role, content, named)| {
        let mut m = json!({"role": role, "content": content});
        if named {
            m["name"] = json!("n");
        }
        m
    });
    let model = prop_oneof![Just(json!("auto")), Just(json!("fake/cheap")), Just(json!("nope/x")), any_json()];
    let optional = prop_oneof![Just(None), any_json().prop_map(Some)];
    (
        model,
        prop::collection::vec(message, 0..4),
        any::<bool>(),
        optional.clone(),
        optional.clone(),
        optional.clone(),
        optional,
    )
        .prop_map(|(model, messages, stream, temperature, max_tokens, n, tools)| {
            let mut b = json!({"model": model, "messages": messages, "stream": stream});
            for (k, v) in [("temperature", temperature), ("max_tokens", max_tokens), ("n", n), ("tools", tools)] {
                if let Some(v) = v {
                    b[k] = v;
                }
            }
            b
        })
}

fn check(status: StatusCode, body: &str) -> Result<(), TestCaseError> {
    prop_assert!(!status.is_server_error(), "{status}: {body}");
    if status.is_client_error() {
        let v: Value = serde_json::from_str(body).map_err(|e| TestCaseError::fail(format!("{e}: {body}")))?;
        prop_assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    } else {
        prop_assert!(status.is_success(), "{status}");
    }
    Ok(())
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn no_body_makes_the_api_fail_or_panic(pool: PgPool) {
    let fake = FakeUpstream::start().await;
    let mut config = test_config();
    config.api.require_key = false;
    config.models.insert(
        "fake/cheap".into(),
        ModelConfig {
            provider: ProviderKind::Openai,
            upstream_model: "cheap".into(),
            base_url: Some(fake.base_url.clone()),
            api_key_env: None,
            input_price_per_mtok: 0.15,
            output_price_per_mtok: 0.6,
            cached_input_price_per_mtok: None,
            context_window: 128_000,
        },
    );
    let tier = TierConfig {
        candidates: vec!["fake/cheap".into()],
        policy: SelectionPolicy::CheapestHealthy,
        fallback: vec![],
        weights: Default::default(),
    };
    config.routing.budget = tier.clone();
    config.routing.balanced = tier.clone();
    config.routing.premium = tier;
    config.limits.enabled = false;
    let (endpoints, _) = resolve_endpoints(&config, |_| None);
    let e = engine_with(&pool, config, Providers { local: None, http: Some(Providers::http_client()), endpoints });
    let app = triage::http::build_app(app_state(&pool, &e));

    let send = |body: Vec<u8>| {
        let app = app.clone();
        async move {
            let request = Request::post("/v1/chat/completions")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    // Values drawn from the strategies (no shrinking: the failing body is
    // printed whole, and every case runs inside this test's runtime).
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::default());
    for case in 0..250 {
        let bytes = if case < 150 {
            let body = chat_body().new_tree(&mut runner).unwrap().current();
            serde_json::to_vec(&body).unwrap()
        } else {
            prop::collection::vec(any::<u8>(), 0..300).new_tree(&mut runner).unwrap().current()
        };
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        let (status, text) = send(bytes).await;
        if let Err(e) = check(status, &text) {
            panic!("case {case}: body {shown}\n{e}");
        }
    }
}
