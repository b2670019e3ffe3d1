//! The dashboard's guard and its queries, against real Postgres: every admin
//! page and server function refuses a visitor without an admin session;
//! sign-in sets a Strict, HttpOnly cookie; the overview's numbers add up.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{Duration, Utc};
use common::{app_state, engine};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;
use triage::api::filter::CallFilter;
use triage::api::types::{Overview, RequestsPage, TicketFlow};
use triage::http::build_app;
use uuid::Uuid;

const PASSWORD: &str = "a long enough password";

fn post(path: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::from(body.to_string())).unwrap()
}

async fn text(response: axum::response::Response) -> String {
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

async fn create_admin(pool: &PgPool) {
    let hash = triage::auth::hash_password(PASSWORD).unwrap();
    triage::store::admins::upsert(pool, "ada", &hash).await.unwrap();
}

/// Signs in; returns the `triage_admin=…` cookie pair.
async fn sign_in(app: &axum::Router) -> String {
    let body = format!("username=ada&password={}", PASSWORD.replace(' ', "+"));
    let response = app.clone().oneshot(post("/api/admin_login", &body, None)).await.unwrap();
    assert!(response.status().is_success() || response.status().is_redirection(), "{}", response.status());
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("triage_admin="))
        .expect("an admin cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    cookie.split(';').next().unwrap().to_string()
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn every_admin_page_and_server_function_refuses_a_visitor(pool: PgPool) {
    let e = engine(&pool, false);
    let app = build_app(app_state(&pool, &e));

    // Every registered server function under /api/admin/, whatever it is.
    let admin_fns: Vec<&str> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path)
        .filter(|p| p.starts_with("/api/admin/"))
        .collect();
    assert!(admin_fns.len() >= 5, "admin functions found: {admin_fns:?}");
    for path in &admin_fns {
        let response = app.clone().oneshot(post(path, "", None)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        // a forged cookie is no better
        let response = app.clone().oneshot(post(path, "", Some("triage_admin=forged"))).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path} with a forged cookie");
    }
    // Every admin page, and the CSV export: sent to the sign-in page.
    for page in
        ["/admin", "/admin/requests", "/admin/requests?tier=budget", "/admin/tickets/T-00000000", "/admin/export.csv"]
    {
        let response = app.clone().oneshot(Request::get(page).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{page}");
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert!(location.starts_with("/admin/login?next=/admin"), "{page} → {location}");
    }
    // The sign-in page itself is open.
    let response = app.clone().oneshot(Request::get("/admin/login").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn sign_in_out_and_cross_site_posts(pool: PgPool) {
    create_admin(&pool).await;
    let e = engine(&pool, false);
    let app = build_app(app_state(&pool, &e));

    let wrong = app.clone().oneshot(post("/api/admin_login", "username=ada&password=nope", None)).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(text(wrong).await.contains("Wrong username or password"));
    let unknown = app.clone().oneshot(post("/api/admin_login", "username=bob&password=nope", None)).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::FORBIDDEN);

    let cookie = sign_in(&app).await;
    let me = app.clone().oneshot(post("/api/admin/whoami", "", Some(&cookie))).await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert!(text(me).await.contains("ada"));

    // The same cookie on a cross-site post is refused.
    let mut cross = post("/api/admin/whoami", "", Some(&cookie));
    cross.headers_mut().insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(app.clone().oneshot(cross).await.unwrap().status(), StatusCode::FORBIDDEN);
    let mut foreign = post("/api/admin/whoami", "", Some(&cookie));
    foreign.headers_mut().insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    foreign.headers_mut().insert(header::HOST, "triage.example".parse().unwrap());
    assert_eq!(app.clone().oneshot(foreign).await.unwrap().status(), StatusCode::FORBIDDEN);

    // Pages open with the cookie.
    let page = Request::get("/admin/requests").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
    assert_eq!(app.clone().oneshot(page).await.unwrap().status(), StatusCode::OK);

    // After sign-out the old cookie is worthless.
    let out = app.clone().oneshot(post("/api/admin/logout", "", Some(&cookie))).await.unwrap();
    assert!(out.status().is_success() || out.status().is_redirection());
    let me = app.clone().oneshot(post("/api/admin/whoami", "", Some(&cookie))).await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

struct Row<'a> {
    ticket: Uuid,
    request: Uuid,
    tier: &'a str,
    complexity: &'a str,
    model: &'a str,
    cost: i64,
    latency: i32,
    status: &'a str,
    attempt: i32,
    cache: &'a str,
    days_ago: i64,
    property: serde_json::Value,
}

async fn insert(pool: &PgPool, r: &Row<'_>) {
    sqlx::query("INSERT INTO tickets (id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(r.ticket)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO llm_calls (id, request_id, ticket_id, kind, classifier, complexity, confidence, reason, tier, model,
            provider, input_tokens, output_tokens, cost_micros, latency_ms, cache_status, attempt, status, error, properties, created_at)
         VALUES ($1, $2, $3, 'generate', 'embedding', $4, 0.9, 'test reason', $5, $6, 'openai', 1000, 100, $7, $8, $9, $10, $11,
            CASE WHEN $11 = 'error' THEN 'HTTP 503' END, $12, $13)",
    )
    .bind(Uuid::new_v4())
    .bind(r.request)
    .bind(r.ticket)
    .bind(r.complexity)
    .bind(r.tier)
    .bind(r.model)
    .bind(r.cost)
    .bind(r.latency)
    .bind(r.cache)
    .bind(r.attempt)
    .bind(r.status)
    .bind(&r.property)
    .bind(Utc::now() - Duration::days(r.days_ago))
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn overview_requests_and_ticket_flow_add_up(pool: PgPool) {
    create_admin(&pool).await;
    let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
    let (r1, r2, r3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let none = serde_json::json!({});
    let pro = serde_json::json!({"plan": "pro"});
    let base = |request, tier, complexity, model, cost| Row {
        ticket: t1,
        request,
        tier,
        complexity,
        model,
        cost,
        latency: 100,
        status: "ok",
        attempt: 1,
        cache: "miss",
        days_ago: 0,
        property: serde_json::json!({}),
    };
    // t1: a budget answer; then a premium request that failed once, then answered
    insert(&pool, &base(r1, "budget", "simple", "m/cheap", 10)).await;
    insert(&pool, &Row { status: "error", latency: 50, cost: 0, ..base(r2, "premium", "complex", "m/dear", 0) }).await;
    insert(
        &pool,
        &Row { attempt: 2, latency: 900, property: pro.clone(), ..base(r2, "premium", "complex", "m/dear", 5000) },
    )
    .await;
    // t2: a cache hit, and a call from 60 days ago (outside the default range)
    insert(&pool, &Row { ticket: t2, cache: "hit", cost: 0, ..base(r3, "budget", "simple", "m/cheap", 0) }).await;
    insert(
        &pool,
        &Row { ticket: t2, days_ago: 60, property: none, ..base(Uuid::new_v4(), "budget", "simple", "m/cheap", 7) },
    )
    .await;
    // feedback: thumbs down on the premium answer
    let message = Uuid::new_v4();
    sqlx::query("INSERT INTO messages (id, ticket_id, role, content, request_id) VALUES ($1, $2, 'user', 'why?', $3), ($4, $2, 'assistant', 'because', $3)")
        .bind(Uuid::new_v4()).bind(t1).bind(r2).bind(message).execute(&pool).await.unwrap();
    triage::store::feedback::upsert(&pool, t1, message, -1, Some("too slow")).await.unwrap();

    let e = engine(&pool, false);
    let app = build_app(app_state(&pool, &e));
    let cookie = sign_in(&app).await;
    let call = |path: &'static str, body: String| {
        let app = app.clone();
        let cookie = cookie.clone();
        async move {
            let response = app.oneshot(post(path, &body, Some(&cookie))).await.unwrap();
            let status = response.status();
            let body = text(response).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let filter = |f: &CallFilter| serde_qs_like(f);

    let o: Overview = serde_json::from_str(&call("/api/admin/overview", filter(&CallFilter::default())).await).unwrap();
    let total = o.total.as_ref().unwrap();
    assert_eq!((total.calls, total.requests, total.cost_micros), (4, 3, 5010));
    assert_eq!(total.cache_hit_rate, 0.25);
    assert_eq!(total.error_rate, 0.25);
    assert_eq!((total.feedback, total.thumbs_up_rate), (1, Some(0.0)));
    let premium = o.by_tier.iter().find(|b| b.key == "premium").unwrap();
    assert_eq!((premium.calls, premium.requests, premium.cost_micros), (2, 1, 5000));
    let cheap = o.by_model.iter().find(|b| b.key == "m/cheap").unwrap();
    assert_eq!(cheap.cost_micros, 10);

    // Filters narrow every number.
    let only_premium = CallFilter { tier: Some("premium".into()), ..CallFilter::default() };
    let o: Overview = serde_json::from_str(&call("/api/admin/overview", filter(&only_premium)).await).unwrap();
    assert_eq!(o.by_tier.iter().map(|b| b.key.as_str()).collect::<Vec<_>>(), ["premium"]);
    let by_property = CallFilter { property: Some("plan=pro".into()), ..CallFilter::default() };
    let o: Overview = serde_json::from_str(&call("/api/admin/overview", filter(&by_property)).await).unwrap();
    assert_eq!(o.total.unwrap().cost_micros, 5000);
    let disliked = CallFilter { feedback: Some("down".into()), ..CallFilter::default() };
    let o: Overview = serde_json::from_str(&call("/api/admin/overview", filter(&disliked)).await).unwrap();
    assert_eq!(o.total.unwrap().requests, 1);
    let long_ago = CallFilter { from: Some((Utc::now() - Duration::days(90)).date_naive()), ..CallFilter::default() };
    let o: Overview = serde_json::from_str(&call("/api/admin/overview", filter(&long_ago)).await).unwrap();
    assert_eq!(o.total.unwrap().cost_micros, 5017);

    // The requests list: sorted by cost, filtered by ticket reference.
    let by_ticket = CallFilter { ticket: Some(triage::domain::ticket_ref(&t1)), ..CallFilter::default() };
    let body = format!("{}&sort=cost&descending=true&page=1", filter(&by_ticket));
    let page: RequestsPage = serde_json::from_str(&call("/api/admin/requests", body).await).unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.rows.iter().map(|r| r.cost_micros).collect::<Vec<_>>(), [5000, 10, 0]);

    // The ticket's flow: two turns... the first has no stored question.
    let reference = triage::domain::ticket_ref(&t1);
    let flow: TicketFlow =
        serde_json::from_str(&call("/api/admin/ticket_flow", format!("reference={reference}")).await).unwrap();
    assert_eq!(flow.total_cost_micros, 5010);
    assert_eq!(flow.calls, 3);
    let asked = flow.turns.iter().find(|t| t.question.as_deref() == Some("why?")).unwrap();
    assert_eq!(asked.calls.len(), 2);
    assert_eq!(asked.calls[0].status, "error");
    assert_eq!(asked.calls[0].error.as_deref(), Some("HTTP 503"));
    assert_eq!((asked.rating, asked.comment.as_deref()), (Some(-1), Some("too slow")));
    assert_eq!(asked.answer.as_deref(), Some("because"));

    // Bad filters are a 400 with a reason, not a 500.
    for bad in [
        "filter[tier]=gold",
        "filter[ticket]=T-XYZ",
        "filter[property]=novalue",
        "filter[from]=2026-01-10&filter[to]=2025-01-01",
    ] {
        let response = app.clone().oneshot(post("/api/admin/overview", bad, Some(&cookie))).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // CSV: the same rows, formulas defused.
    let csv = app
        .clone()
        .oneshot(
            Request::get("/admin/export.csv?tier=premium").header(header::COOKIE, &cookie).body(Body::empty()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    let csv = text(csv).await;
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains(",premium,m/dear,"));
}

/// The server functions' form encoding of a filter (`filter[tier]=…`).
fn serde_qs_like(f: &CallFilter) -> String {
    triage::api::filter::KEYS
        .iter()
        .filter_map(|k| f.get(k).map(|v| format!("filter[{k}]={}", triage::api::filter::encode(&v))))
        .collect::<Vec<_>>()
        .join("&")
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn an_alert_fires_once_delivers_its_webhook_and_resolves(pool: PgPool) {
    use std::sync::{Arc, Mutex};
    use triage::store::alerts;

    // A webhook receiver on a free loopback port.
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let rule = alerts::create_rule(&pool, "spend", "spend_day", 0.004, Some(&url)).await.unwrap();
    let client = triage::engine::providers::Providers::http_client();
    assert_eq!(triage::engine::alerts::evaluate(&pool, &client).await.unwrap(), 0, "no spend yet");

    let ticket = Uuid::new_v4();
    let spend = |cost| Row {
        ticket,
        request: Uuid::new_v4(),
        tier: "premium",
        complexity: "complex",
        model: "m/dear",
        cost,
        latency: 100,
        status: "ok",
        attempt: 1,
        cache: "miss",
        days_ago: 0,
        property: serde_json::json!({}),
    };
    insert(&pool, &spend(5_000)).await; // $0.005 > $0.004
    assert_eq!(triage::engine::alerts::evaluate(&pool, &client).await.unwrap(), 1);
    assert_eq!(triage::engine::alerts::evaluate(&pool, &client).await.unwrap(), 0, "fires once while open");
    let open = alerts::open(&pool).await.unwrap();
    assert_eq!(open.len(), 1);
    assert!((open[0].value - 0.005).abs() < 1e-9);

    // The webhook arrives, and its delivery is recorded.
    for _ in 0..50 {
        if alerts::history(&pool, 10).await.unwrap()[0].delivery == "delivered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(alerts::history(&pool, 10).await.unwrap()[0].delivery, "delivered");
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["rule"], "spend");
    assert_eq!(bodies[0]["rule_id"], rule.id.to_string());

    // Back under the threshold: resolved, and the banner is empty.
    sqlx::query("UPDATE alert_rules SET threshold = 1").execute(&pool).await.unwrap();
    triage::engine::alerts::evaluate(&pool, &client).await.unwrap();
    assert!(alerts::open(&pool).await.unwrap().is_empty());
    assert!(alerts::history(&pool, 10).await.unwrap()[0].resolved_at.is_some());
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn demo_seed_writes_traffic_the_dashboard_can_read(pool: PgPool) {
    let rows =
        triage::store::demo::seed(&pool, triage::store::demo::Seed { calls: 3_000, days: 30 }, false).await.unwrap();
    assert!((3_000..3_200).contains(&rows), "{rows} rows: one per request plus ~3% failed first attempts");
    let e = engine(&pool, false);
    let o = triage::api::admin::load_overview(&pool, &e.config, &CallFilter::default()).await.unwrap();
    let total = o.total.unwrap();
    assert_eq!(total.requests, 3_000);
    assert!(total.cost_micros > 0);
    assert!((0.08..0.16).contains(&total.cache_hit_rate), "{}", total.cache_hit_rate);
    assert_eq!(o.by_tier.len(), 3);
    assert!(o.premium_equivalent_micros > total.cost_micros, "routing is cheaper than all-premium");
    assert!(total.feedback > 100, "{} verdicts", total.feedback);
    // --replace removes the earlier demo traffic first
    let again =
        triage::store::demo::seed(&pool, triage::store::demo::Seed { calls: 1_000, days: 7 }, true).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_calls").fetch_one(&pool).await.unwrap();
    assert_eq!(count, again as i64);
}

/// Property rollups (kept by triggers, or backfilled when a key is added)
/// give the same overview as reading the calls themselves.
#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn property_rollups_agree_with_the_calls(pool: PgPool) {
    use triage::store::analytics::{self, Dimension, Scope};

    // demo-seed registers `plan` and `channel`, so its inserts go through the triggers
    triage::store::demo::seed(&pool, triage::store::demo::Seed { calls: 2_000, days: 10 }, false).await.unwrap();
    assert_eq!(analytics::rollup_properties(&pool).await.unwrap(), ["channel", "plan"]);

    let scope = Scope {
        property: Some(("plan".into(), "pro".into())),
        from: Some(Utc::now() - Duration::days(40)),
        ..Scope::default()
    };
    async fn check(pool: &PgPool, scope: &Scope) {
        let resolved = analytics::resolve(pool, scope.clone()).await.unwrap();
        assert!(resolved.property_rolled_up && resolved.rollups_suffice());
        let rolled = analytics::overview(pool, scope).await.unwrap();
        // `scope` itself is unresolved: these read the calls
        let raw = analytics::breakdown(pool, scope, Dimension::Tier).await.unwrap();
        assert_eq!(rolled.by_tier.len(), raw.len());
        assert!(!raw.is_empty());
        for r in &raw {
            let b = rolled.by_tier.iter().find(|b| b.key == r.key).unwrap();
            let sums = |b: &analytics::Breakdown| {
                (b.calls, b.requests, b.cost_micros, b.input_tokens, b.cache_hits, b.errors, b.thumbs_up, b.thumbs_down)
            };
            assert_eq!(sums(b), sums(r), "tier {}", r.key);
            // histogram percentiles are within a bucket (10%) of the exact ones
            let (exact, approx) = (r.latency_p50.unwrap(), b.latency_p50.unwrap());
            assert!((approx - exact).abs() <= exact * 0.1 + 1.0, "p50 {approx} vs {exact}");
        }
        let raw_total = analytics::breakdown(pool, scope, Dimension::Total).await.unwrap();
        assert_eq!(rolled.total.cost_micros, raw_total[0].cost_micros);
        let raw_days = analytics::daily(pool, scope, Dimension::Model).await.unwrap();
        assert_eq!(rolled.daily_by_model.len(), raw_days.len());
        for (a, b) in rolled.daily_by_model.iter().zip(&raw_days) {
            assert_eq!((a.day, &a.key, a.calls, a.cost_micros), (b.day, &b.key, b.calls, b.cost_micros));
        }
    }
    check(&pool, &scope).await;

    // A verdict moves its call between feedback groups in the property rollups too.
    let (ticket, request): (Uuid, Uuid) = sqlx::query_as(
        "SELECT ticket_id, request_id FROM llm_calls c WHERE properties->>'plan' = 'pro' AND status = 'ok'
           AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.request_id = c.request_id) LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let message = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO messages (id, ticket_id, role, content, request_id) VALUES ($1, $2, 'assistant', 'a', $3)",
    )
    .bind(message)
    .bind(ticket)
    .bind(request)
    .execute(&pool)
    .await
    .unwrap();
    triage::store::feedback::upsert(&pool, ticket, message, 1, None).await.unwrap();
    check(&pool, &scope).await;

    // Removed: nothing left; added again: backfilled from the calls.
    assert!(analytics::remove_rollup_property(&pool, "plan").await.unwrap());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM property_rollups WHERE prop_key = 'plan'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(!analytics::resolve(&pool, scope.clone()).await.unwrap().property_rolled_up);
    assert!(analytics::add_rollup_property(&pool, "plan").await.unwrap());
    assert!(!analytics::add_rollup_property(&pool, "plan").await.unwrap());
    check(&pool, &scope).await;

    // --replace deletes the calls, and their property rollups with them.
    triage::store::demo::seed(&pool, triage::store::demo::Seed { calls: 500, days: 3 }, true).await.unwrap();
    check(&pool, &scope).await;
}

/// The review queue finds each kind of doubtful answer (thumbs-down, an
/// escalated ticket, low confidence) once it has its question, and drops
/// what has been labelled.
#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn the_review_queue_collects_doubtful_answers(pool: PgPool) {
    use triage::store::labels;

    let base = |request, ticket| Row {
        ticket,
        request,
        tier: "budget",
        complexity: "simple",
        model: "m/cheap",
        cost: 10,
        latency: 100,
        status: "ok",
        attempt: 1,
        cache: "miss",
        days_ago: 0,
        property: serde_json::json!({}),
    };
    let (disliked, escalated, unsure, fine) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let tickets = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let admin = create_admin_id(&pool).await;
    for (request, ticket) in [disliked, escalated, unsure, fine].into_iter().zip(tickets) {
        insert(&pool, &base(request, ticket)).await;
        sqlx::query("INSERT INTO messages (id, ticket_id, role, content, request_id) VALUES ($1, $2, 'user', 'q?', $3), ($4, $2, 'assistant', 'a', $3)")
            .bind(Uuid::new_v4()).bind(ticket).bind(request).bind(Uuid::new_v4()).execute(&pool).await.unwrap();
    }
    let answer: Uuid = sqlx::query_scalar("SELECT id FROM messages WHERE request_id = $1 AND role = 'assistant'")
        .bind(disliked)
        .fetch_one(&pool)
        .await
        .unwrap();
    triage::store::feedback::upsert(&pool, tickets[0], answer, -1, None).await.unwrap();
    sqlx::query("UPDATE tickets SET status = 'escalated', updated_at = now() WHERE id = $1")
        .bind(tickets[1])
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE llm_calls SET confidence = 0.4 WHERE request_id = $1")
        .bind(unsure)
        .execute(&pool)
        .await
        .unwrap();

    let ids = |items: &[labels::ReviewItem]| {
        let mut ids: Vec<Uuid> = items.iter().map(|i| i.request_id).collect();
        ids.sort();
        ids
    };
    let mut expected = vec![disliked, escalated, unsure];
    expected.sort();
    let queue = labels::queue(&pool, 0.6, false, 50).await.unwrap();
    assert_eq!(ids(&queue), expected);
    assert!(queue.iter().find(|i| i.request_id == escalated).unwrap().escalated);
    assert_eq!(queue.iter().find(|i| i.request_id == disliked).unwrap().rating, Some(-1));

    assert!(labels::set(&pool, escalated, "complex", admin).await.unwrap());
    let queue = labels::queue(&pool, 0.6, false, 50).await.unwrap();
    assert!(!ids(&queue).contains(&escalated), "labelled items leave the queue");
    assert_eq!(ids(&labels::queue(&pool, 0.6, true, 50).await.unwrap()), expected);
}

async fn create_admin_id(pool: &PgPool) -> Uuid {
    let hash = triage::auth::hash_password(PASSWORD).unwrap();
    triage::store::admins::upsert(pool, "ada", &hash).await.unwrap()
}

/// A ticket's reference is the first eight hex digits of its id, so ids
/// must not be time-ordered: v7 ids made within a minute share them.
#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn tickets_made_together_have_distinct_references(pool: PgPool) {
    let mut references = std::collections::HashSet::new();
    for n in 0..20 {
        let id = triage::store::tickets::for_api_session(&pool, None, &format!("session-{n}"), None).await.unwrap();
        assert!(references.insert(triage::domain::ticket_ref(&id)), "reference repeated at ticket {n}");
    }
}

/// The requests list counts up to the cap and no further; a narrow filter
/// is counted exactly. (Seeding 12,000 calls through the rollup triggers
/// also took minutes before migration 0012.)
#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn the_requests_count_stops_at_the_cap(pool: PgPool) {
    use triage::domain::REQUESTS_COUNT_CAP;
    use triage::store::analytics::{self, Scope, SortBy};

    triage::store::demo::seed(&pool, triage::store::demo::Seed { calls: 12_000, days: 5 }, false).await.unwrap();
    let all = Scope { from: Some(Utc::now() - Duration::days(10)), ..Scope::default() };
    let (rows, total) = analytics::list(&pool, &all, SortBy::Time, true, 0, 50).await.unwrap();
    assert_eq!((rows.len(), total), (50, REQUESTS_COUNT_CAP));
    assert!(rows.windows(2).all(|w| w[0].created_at >= w[1].created_at), "newest first");

    let ticket: Uuid = sqlx::query_scalar("SELECT ticket_id FROM llm_calls LIMIT 1").fetch_one(&pool).await.unwrap();
    let exact: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_calls WHERE ticket_id = $1")
        .bind(ticket)
        .fetch_one(&pool)
        .await
        .unwrap();
    let one = Scope { tickets: Some((ticket, ticket)), ..all };
    let (rows, total) = analytics::list(&pool, &one, SortBy::Time, true, 0, 50).await.unwrap();
    assert_eq!((rows.len() as i64, total), (exact, exact));
}

/// The rollup histogram helpers (PL/pgSQL since 0013) give what 0012's SQL
/// definitions gave, on arbitrary input: repeated and out-of-range buckets,
/// NULL arrays and elements, unequal lengths, negative counts (deletes).
#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn histogram_helpers_match_their_sql_definitions(pool: PgPool) {
    const FROM_0012: &str = "SELECT array_agg(coalesce(t.n, 0) ORDER BY i)
        FROM generate_series(0, 139) i
        LEFT JOIN (SELECT k, sum(n)::BIGINT AS n FROM unnest($1::int[], $2::bigint[]) u(k, n) GROUP BY k) t
        ON t.k = i";
    const ADD_0005: &str = "SELECT CASE WHEN $1::bigint[] IS NULL THEN $2::bigint[] WHEN $2 IS NULL THEN $1 ELSE
        (SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i)
         FROM unnest($1, $2) WITH ORDINALITY AS t(x, y, i)) END";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for case in 0..300 {
        let len = next(9) as usize;
        let ks: Option<Vec<Option<i32>>> =
            (case % 10 != 0).then(|| (0..len).map(|_| (next(12) != 0).then(|| next(150) as i32 - 5)).collect());
        let ns: Option<Vec<i64>> = ks.as_ref().map(|k| k.iter().map(|_| next(2000) as i64 - 1000).collect());
        let expected: Vec<i64> = sqlx::query_scalar(FROM_0012).bind(&ks).bind(&ns).fetch_one(&pool).await.unwrap();
        let got: Vec<i64> =
            sqlx::query_scalar("SELECT triage_hist_from($1, $2)").bind(&ks).bind(&ns).fetch_one(&pool).await.unwrap();
        assert_eq!(got, expected, "triage_hist_from({ks:?}, {ns:?})");

        let mut hist = || -> Option<Vec<Option<i64>>> {
            (next(8) != 0).then(|| {
                let n = [140, 140, 140, 3, 0][next(5) as usize];
                (0..n).map(|_| (next(20) != 0).then(|| [0, 0, 0, 1, -1, 77][next(6) as usize])).collect()
            })
        };
        let (a, b) = (hist(), hist());
        let expected: Option<Vec<Option<i64>>> =
            sqlx::query_scalar(ADD_0005).bind(&a).bind(&b).fetch_one(&pool).await.unwrap();
        let got: Option<Vec<Option<i64>>> =
            sqlx::query_scalar("SELECT triage_hist_add($1, $2)").bind(&a).bind(&b).fetch_one(&pool).await.unwrap();
        assert_eq!(got, expected, "triage_hist_add({a:?}, {b:?})");
    }
}
