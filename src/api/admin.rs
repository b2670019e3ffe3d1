//! Admin server functions. Every function under `/api/admin/` is refused
//! by `http::admin_session` without a signed-in admin, and checks again
//! itself (`require_admin`), so neither check alone guards the data.

use leptos::prelude::*;

use super::AppError;
use super::filter::CallFilter;
#[cfg(feature = "ssr")]
use super::types::{BreakdownView, CallView, DailyPoint, FlowCallView, TurnView};
use super::types::{Overview, RequestsPage, TicketFlow};

#[cfg(feature = "ssr")]
async fn admin_session() -> Result<tower_sessions::Session, AppError> {
    use crate::http::admin_session::AdminSession;
    let axum::Extension(AdminSession(session)) =
        leptos_axum::extract::<axum::Extension<AdminSession>>().await.map_err(|e| {
            tracing::error!(error = %e, "no admin session layer");
            AppError::Internal
        })?;
    Ok(session)
}

/// The signed-in admin, or `Unauthorized`.
#[cfg(feature = "ssr")]
pub(crate) async fn require_admin() -> Result<crate::store::admins::Admin, AppError> {
    use crate::http::admin_session::ADMIN_ID;
    let session = admin_session().await?;
    let id = session.get::<uuid::Uuid>(ADMIN_ID).await.map_err(|e| {
        tracing::error!(error = %e, "admin session store failed");
        AppError::Unavailable("Sessions are unavailable; try again shortly.".into())
    })?;
    let Some(id) = id else { return Err(AppError::Unauthorized) };
    let state = super::state()?;
    crate::store::admins::by_id(&state.pool, id).await?.ok_or(AppError::Unauthorized)
}

/// Only same-site paths: `next` must not send a fresh admin elsewhere.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/admin".to_string(),
    }
}

/// Signs an admin in and sends them to `next` (an admin page).
#[server(endpoint = "admin_login")]
pub async fn login(username: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use crate::http::admin_session::ADMIN_ID;
    use crate::store::admins;

    let state = super::state()?;
    let admin = admins::by_username(&state.pool, username.trim()).await?;
    let hash = admin.as_ref().map(|a| a.password_hash.clone());
    // argon2 is CPU-heavy: off the async workers
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&password, hash.as_deref()))
        .await
        .unwrap_or(false);
    let Some(admin) = admin.filter(|_| ok) else {
        tracing::warn!(username = %username.trim(), "admin sign-in refused");
        return Err(AppError::Forbidden("Wrong username or password.".into()));
    };
    let session = admin_session().await?;
    let stored = async {
        // a new id at sign-in: a session id planted before cannot be reused
        session.cycle_id().await?;
        session.insert(ADMIN_ID, admin.id).await
    }
    .await;
    stored.map_err(|e| {
        tracing::error!(error = %e, "admin session store failed");
        AppError::Unavailable("Sessions are unavailable; try again shortly.".into())
    })?;
    admins::touch_login(&state.pool, admin.id).await?;
    tracing::info!(admin = %admin.username, "admin signed in");
    leptos_axum::redirect(&safe_next(next.as_deref()));
    Ok(())
}

#[server(prefix = "/api/admin", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    require_admin().await?;
    let session = admin_session().await?;
    session.flush().await.map_err(|_| AppError::Internal)?;
    leptos_axum::redirect(crate::http::admin_session::LOGIN_PATH);
    Ok(())
}

/// The signed-in admin's name.
#[server(prefix = "/api/admin", endpoint = "whoami")]
pub async fn whoami() -> Result<String, AppError> {
    Ok(require_admin().await?.username)
}

/// Rows per page of the requests list.
pub const PAGE_SIZE: i64 = 50;

/// Turns the URL's filter into a checked store scope.
#[cfg(feature = "ssr")]
pub(crate) fn scope(
    filter: &CallFilter,
) -> Result<(crate::store::analytics::Scope, chrono::NaiveDate, chrono::NaiveDate), AppError> {
    use crate::store::analytics::{Feedback, Scope};

    let today = chrono::Utc::now().date_naive();
    let to = filter.to.unwrap_or(today);
    let from = filter.from.unwrap_or(to - chrono::Days::new(29));
    if from > to {
        return Err(AppError::BadRequest("The start date is after the end date.".into()));
    }
    if (to - from).num_days() > 400 {
        return Err(AppError::BadRequest("Choose a range of at most 400 days.".into()));
    }
    let one_of = |name: &str, value: &Option<String>, allowed: &[&str]| -> Result<Option<String>, AppError> {
        match value {
            Some(v) if !allowed.contains(&v.as_str()) => {
                Err(AppError::BadRequest(format!("{name} must be one of {}", allowed.join(", "))))
            }
            other => Ok(other.clone()),
        }
    };
    let text = |name: &str, value: &Option<String>| -> Result<Option<String>, AppError> {
        match value {
            Some(v) if v.chars().count() > 200 => Err(AppError::BadRequest(format!("{name} is too long"))),
            other => Ok(other.clone()),
        }
    };
    let tickets = filter.ticket.as_deref().map(ticket_range).transpose()?;
    let property = match &filter.property {
        Some(p) => match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Some((k.trim().to_string(), v.trim().to_string())),
            _ => return Err(AppError::BadRequest("property must look like key=value".into())),
        },
        None => None,
    };
    let feedback = match filter.feedback.as_deref() {
        None => None,
        Some("up") => Some(Feedback::Up),
        Some("down") => Some(Feedback::Down),
        Some("any") => Some(Feedback::Any),
        Some("none") => Some(Feedback::None),
        Some(_) => return Err(AppError::BadRequest("feedback must be one of up, down, any, none".into())),
    };
    let scope = Scope {
        from: Some(from.and_time(chrono::NaiveTime::MIN).and_utc()),
        to: Some((to + chrono::Days::new(1)).and_time(chrono::NaiveTime::MIN).and_utc()),
        tier: one_of("tier", &filter.tier, &["budget", "balanced", "premium"])?,
        complexity: one_of("complexity", &filter.complexity, &["simple", "medium", "complex"])?,
        model: text("model", &filter.model)?,
        provider: text("provider", &filter.provider)?,
        user_id: text("user", &filter.user)?,
        tickets,
        property,
        cache_status: one_of("cache", &filter.cache, &["hit", "miss", "bypass", "none"])?,
        feedback,
        kind: None,
        property_rolled_up: false,
    };
    Ok((scope, from, to))
}

/// A ticket id, or the id range a `T-XXXXXXXX` reference stands for.
#[cfg(feature = "ssr")]
fn ticket_range(s: &str) -> Result<(uuid::Uuid, uuid::Uuid), AppError> {
    let s = s.trim();
    if let Ok(id) = uuid::Uuid::parse_str(s) {
        return Ok((id, id));
    }
    let hex = s.strip_prefix("T-").or_else(|| s.strip_prefix("t-")).unwrap_or(s);
    if hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let low = uuid::Uuid::parse_str(&format!("{hex}-0000-0000-0000-000000000000"));
        let high = uuid::Uuid::parse_str(&format!("{hex}-ffff-ffff-ffff-ffffffffffff"));
        if let (Ok(low), Ok(high)) = (low, high) {
            return Ok((low, high));
        }
    }
    Err(AppError::BadRequest("ticket must be a reference like T-8F3A2B1C or a ticket id".into()))
}

#[cfg(feature = "ssr")]
fn breakdown_view(b: crate::store::analytics::Breakdown) -> BreakdownView {
    let rate = |n: i64| if b.calls > 0 { n as f64 / b.calls as f64 } else { 0.0 };
    let feedback = b.thumbs_up + b.thumbs_down;
    BreakdownView {
        cache_hit_rate: rate(b.cache_hits),
        error_rate: rate(b.errors),
        thumbs_up_rate: (feedback > 0).then(|| b.thumbs_up as f64 / feedback as f64),
        feedback,
        key: b.key,
        calls: b.calls,
        requests: b.requests,
        cost_micros: b.cost_micros,
        saved_micros: b.saved_micros,
        input_tokens: b.input_tokens,
        output_tokens: b.output_tokens,
        latency_p50_ms: b.latency_p50,
        latency_p95_ms: b.latency_p95,
        ttft_p50_ms: b.ttft_p50,
    }
}

#[cfg(feature = "ssr")]
fn daily_view(d: crate::store::analytics::Daily) -> DailyPoint {
    DailyPoint {
        day: d.day,
        key: d.key,
        calls: d.calls,
        cost_micros: d.cost_micros,
        latency_p50_ms: d.latency_p50,
        latency_p95_ms: d.latency_p95,
    }
}

/// Cost, volume, latency, cache and feedback per tier, model and
/// complexity, daily series, and the savings against all-premium.
#[server(prefix = "/api/admin", endpoint = "overview")]
pub async fn get_overview(#[server(default)] filter: CallFilter) -> Result<Overview, AppError> {
    require_admin().await?;
    let state = super::state()?;
    load_overview(&state.pool, &state.config, &filter).await
}

/// The overview's data (also what `triage bench-dashboard` times).
#[cfg(feature = "ssr")]
pub async fn load_overview(
    db: &sqlx::PgPool,
    config: &crate::config::Config,
    filter: &CallFilter,
) -> Result<Overview, AppError> {
    use crate::store::analytics;

    let (scope, from, to) = scope(filter)?;
    let o = analytics::overview(db, &scope).await?;
    // The premium tier's dearest candidate prices "everything to premium".
    let premium = config
        .routing
        .premium
        .candidates
        .iter()
        .filter_map(|name| config.models.get(name).map(|m| (name, m)))
        .max_by(|a, b| a.1.output_price_per_mtok.total_cmp(&b.1.output_price_per_mtok));
    let total = Some(breakdown_view(o.total));
    let premium_equivalent_micros = match (&premium, &total) {
        (Some((_, m)), Some(t)) => {
            // tokens × dollars per million tokens = micro-dollars
            (t.input_tokens as f64 * m.input_price_per_mtok + t.output_tokens as f64 * m.output_price_per_mtok).round()
                as i64
        }
        _ => 0,
    };
    Ok(Overview {
        from,
        to,
        total: total.filter(|t| t.calls > 0),
        by_tier: o.by_tier.into_iter().map(breakdown_view).collect(),
        by_model: o.by_model.into_iter().map(breakdown_view).collect(),
        by_complexity: o.by_complexity.into_iter().map(breakdown_view).collect(),
        daily_by_tier: o.daily_by_tier.into_iter().map(daily_view).collect(),
        daily_by_model: o.daily_by_model.into_iter().map(daily_view).collect(),
        daily_total: o.daily_total.into_iter().map(daily_view).collect(),
        premium_model: premium.map(|(name, _)| name.clone()),
        premium_equivalent_micros,
        classify_cost_micros: o.classify_cost_micros,
    })
}

#[cfg(feature = "ssr")]
pub(crate) fn call_view(r: crate::store::llm_calls::CallRow) -> CallView {
    CallView {
        id: r.id,
        created_at: r.created_at,
        ticket_ref: r.ticket_id.as_ref().map(crate::domain::ticket_ref),
        kind: r.kind,
        classifier: r.classifier,
        complexity: r.complexity,
        confidence: r.confidence,
        tier: r.tier,
        model: r.model,
        provider: r.provider,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        cost_micros: r.cost_micros,
        latency_ms: r.latency_ms,
        ttft_ms: r.ttft_ms,
        cache_status: r.cache_status,
        attempt: r.attempt,
        status: r.status,
        error: r.error,
    }
}

/// One page of the filtered calls, sorted by `sort` (`time`, `cost`,
/// `latency`, `tokens_in`, `tokens_out`).
#[server(prefix = "/api/admin", endpoint = "requests")]
pub async fn requests(
    #[server(default)] filter: CallFilter,
    sort: String,
    descending: bool,
    page: i64,
) -> Result<RequestsPage, AppError> {
    require_admin().await?;
    let state = super::state()?;
    load_requests(&state.pool, &filter, &sort, descending, page).await
}

#[cfg(feature = "ssr")]
pub async fn load_requests(
    db: &sqlx::PgPool,
    filter: &CallFilter,
    sort: &str,
    descending: bool,
    page: i64,
) -> Result<RequestsPage, AppError> {
    use crate::store::analytics::{self, SortBy};

    let (scope, _, _) = scope(filter)?;
    let sort = SortBy::parse(sort).ok_or_else(|| AppError::BadRequest(format!("cannot sort by {sort:?}")))?;
    if !(1..=2_000).contains(&page) {
        return Err(AppError::BadRequest("page must be between 1 and 2000".into()));
    }
    let (rows, total) = analytics::list(db, &scope, sort, descending, (page - 1) * PAGE_SIZE, PAGE_SIZE).await?;
    Ok(RequestsPage { rows: rows.into_iter().map(call_view).collect(), total, page, page_size: PAGE_SIZE })
}

/// A ticket's whole flow, turn by turn: the question, its classification,
/// the routing decision, every attempt with retries and errors, cache hits,
/// the answer and its feedback, and the ticket's totals.
#[server(prefix = "/api/admin", endpoint = "ticket_flow")]
pub async fn get_ticket_flow(reference: String) -> Result<TicketFlow, AppError> {
    require_admin().await?;
    let state = super::state()?;
    load_ticket_flow(&state.pool, &reference).await
}

#[cfg(feature = "ssr")]
pub async fn load_ticket_flow(db: &sqlx::PgPool, reference: &str) -> Result<TicketFlow, AppError> {
    use std::collections::HashMap;

    use crate::store::tickets;

    let (low, high) = ticket_range(reference)?;
    let ticket = tickets::in_range(db, low, high)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::NotFound(format!("No ticket {reference}.")))?;
    let (messages, calls) =
        tokio::try_join!(tickets::flow_messages(db, ticket.id), tickets::flow_calls(db, ticket.id))?;

    let mut by_request: HashMap<uuid::Uuid, Vec<FlowCallView>> = HashMap::new();
    let mut order: Vec<uuid::Uuid> = Vec::new();
    for c in calls {
        if !by_request.contains_key(&c.request_id) {
            order.push(c.request_id);
        }
        by_request.entry(c.request_id).or_default().push(FlowCallView {
            kind: c.kind,
            classifier: c.classifier,
            complexity: c.complexity,
            confidence: c.confidence,
            reason: c.reason,
            tier: c.tier,
            policy: c.policy,
            route: c.route,
            model: c.model,
            provider: c.provider,
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            cost_micros: c.cost_micros,
            saved_micros: c.saved_micros,
            latency_ms: c.latency_ms,
            ttft_ms: c.ttft_ms,
            cache_status: c.cache_status,
            attempt: c.attempt,
            status: c.status,
            error: c.error,
            created_at: c.created_at,
        });
    }
    // Turns in the order customers asked; a request with calls but no
    // stored question (rare) still shows, after them.
    let mut turns: Vec<TurnView> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let turn = |question: Option<&tickets::FlowMessage>,
                request: Option<uuid::Uuid>,
                by_request: &mut HashMap<_, _>| {
        let calls: Vec<FlowCallView> = request.and_then(|r| by_request.remove(&r)).unwrap_or_default();
        let answer = request.and_then(|r| messages.iter().find(|m| m.role == "assistant" && m.request_id == Some(r)));
        TurnView {
            question: question.map(|q| q.content.clone()),
            asked_at: question.map(|q| q.created_at).or_else(|| calls.first().map(|c| c.created_at)),
            question_status: question.map(|q| q.status.clone()).unwrap_or_else(|| "ok".into()),
            answer: answer.map(|a| a.content.clone()),
            answer_status: answer.map(|a| a.status.clone()),
            rating: answer.and_then(|a| a.rating),
            comment: answer.and_then(|a| a.comment.clone()),
            cost_micros: calls.iter().map(|c| c.cost_micros).sum(),
            latency_ms: calls.iter().map(|c| c.latency_ms).sum(),
            calls,
        }
    };
    for q in messages.iter().filter(|m| m.role == "user") {
        if let Some(r) = q.request_id {
            seen.insert(r);
        }
        turns.push(turn(Some(q), q.request_id, &mut by_request));
    }
    for r in order.into_iter().filter(|r| !seen.contains(r)) {
        turns.push(turn(None, Some(r), &mut by_request));
    }
    let all = || turns.iter().flat_map(|t| t.calls.iter());
    Ok(TicketFlow {
        id: ticket.id,
        reference: crate::domain::ticket_ref(&ticket.id),
        source: ticket.source,
        status: ticket.status,
        user_id: ticket.user_id,
        created_at: ticket.created_at,
        total_cost_micros: all().map(|c| c.cost_micros).sum(),
        total_saved_micros: all().map(|c| c.saved_micros).sum(),
        total_latency_ms: all().map(|c| i64::from(c.latency_ms)).sum(),
        calls: all().count(),
        retries: all().filter(|c| c.kind == "generate" && c.attempt > 1).count(),
        turns,
    })
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/admin/requests?tier=budget")), "/admin/requests?tier=budget");
        for bad in ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)", ""] {
            assert_eq!(safe_next(Some(bad)), "/admin", "{bad}");
        }
        assert_eq!(safe_next(None), "/admin");
    }
}
