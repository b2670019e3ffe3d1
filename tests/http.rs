//! The axum app driven with `oneshot`: server functions, their errors and
//! statuses, sessions, and `/healthz` — against real Postgres.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{app_state, count, engine};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;
use triage::api::types::{Conversation, StreamEvent};
use triage::http::build_app;

fn form(path: &str, body: String, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::ACCEPT, "application/json");
    if let Some(c) = cookie {
        request = request.header(header::COOKIE, c);
    }
    request.body(Body::from(body)).unwrap()
}

fn encode(text: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new()).append_pair("text", text).finish()
}

async fn body_text(response: axum::response::Response) -> String {
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn healthz_checks_the_database(pool: PgPool) {
    let e = engine(&pool, false);
    let app = build_app(app_state(&pool, &e));
    let response = app.oneshot(Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(body_text(response).await.contains("ok"));
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn bad_input_gets_a_4xx_with_a_message_and_stores_nothing(pool: PgPool) {
    let e = engine(&pool, false);
    let app = build_app(app_state(&pool, &e));
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        ("empty", form("/api/send_message", encode(""), None), StatusCode::BAD_REQUEST, "type a message"),
        ("100 KB", form("/api/send_message", encode(&"x".repeat(100_000)), None), StatusCode::BAD_REQUEST, "too long"),
        (
            "missing argument",
            form("/api/send_message", "nonsense=1".into(), None),
            StatusCode::BAD_REQUEST,
            "could not be read",
        ),
        (
            "malformed body",
            Request::post("/api/send_message")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(vec![0xff, 0xfe, b'%', b'&']))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "could not be read",
        ),
        (
            "over the body limit",
            form("/api/send_message", encode(&"y".repeat(300_000)), None),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
        (
            "bad rating",
            form("/api/give_feedback", format!("message_id={}&rating=5", uuid::Uuid::nil()), None),
            StatusCode::BAD_REQUEST,
            "rating must be 1",
        ),
        (
            "wrong type",
            form("/api/give_feedback", "message_id=lots&rating=1".into(), None),
            StatusCode::BAD_REQUEST,
            "could not be read",
        ),
        (
            "feedback on someone else's answer",
            form("/api/give_feedback", format!("message_id={}&rating=1", uuid::Uuid::new_v4()), None),
            StatusCode::NOT_FOUND,
            "not part of your conversation",
        ),
    ];
    for (name, request, status, needle) in cases {
        let response = app.clone().oneshot(request).await.unwrap();
        let got = response.status();
        let body = body_text(response).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(body.to_lowercase().contains(needle), "{name}: {body}");
    }
    assert_eq!(count(&pool, "tickets").await, 0);
    assert_eq!(count(&pool, "messages").await, 0);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_message_streams_json_lines_and_the_session_restores_the_ticket(pool: PgPool) {
    let e = engine(&pool, true);
    let app = build_app(app_state(&pool, &e));

    let response =
        app.clone().oneshot(form("/api/send_message", encode("Do you ship to Canada?"), None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers().get(header::SET_COOKIE).expect("a session cookie").to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let body = body_text(response).await;
    let events: Vec<StreamEvent> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let StreamEvent::Started { ticket_ref, .. } = &events[0] else { panic!("{events:?}") };
    assert!(ticket_ref.starts_with("T-"));
    let answer: String = events
        .iter()
        .filter_map(|e| if let StreamEvent::Delta { text } = e { Some(text.as_str()) } else { None })
        .collect();
    assert!(!answer.is_empty());
    assert!(matches!(events.last(), Some(StreamEvent::Done { output_tokens, .. }) if *output_tokens > 0));

    let response = app.clone().oneshot(form("/api/load_conversation", String::new(), Some(&cookie))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let conversation: Conversation = serde_json::from_str(&body_text(response).await).unwrap();
    assert_eq!(conversation.ticket_ref.as_deref(), Some(ticket_ref.as_str()));
    let contents: Vec<&str> = conversation.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, vec!["Do you ship to Canada?", answer.as_str()]);

    // Without the cookie, a visitor sees an empty conversation.
    let response = app.oneshot(form("/api/load_conversation", String::new(), None)).await.unwrap();
    let conversation: Conversation = serde_json::from_str(&body_text(response).await).unwrap();
    assert!(conversation.messages.is_empty());
}
