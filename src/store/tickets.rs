use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ticket {
    pub id: Uuid,
    pub source: String,
    pub user_id: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

pub async fn create_widget_ticket(db: impl PgExecutor<'_>, id: Uuid) -> Result<Ticket, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO tickets (id, source) VALUES ($1, 'widget') RETURNING id, source, user_id, status, created_at",
    )
    .bind(id)
    .fetch_one(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Ticket>, sqlx::Error> {
    sqlx::query_as("SELECT id, source, user_id, status, created_at FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn touch(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tickets SET updated_at = now() WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}

/// Marks a ticket as needing a person (the customer asked for one).
pub async fn escalate(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tickets SET status = 'escalated', escalated_at = COALESCE(escalated_at, now()), updated_at = now()
         WHERE id = $1 AND status <> 'closed'",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// The ticket of an API caller's session (`X-Triage-Session-Id`), created
/// on first use.
pub async fn for_api_session(
    db: impl PgExecutor<'_>,
    api_key_id: Option<Uuid>,
    external_id: &str,
    user_id: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO tickets (id, source, external_id, api_key_id, user_id) VALUES ($1, 'api', $2, $3, $4)
         ON CONFLICT ((COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid)), external_id)
            WHERE external_id IS NOT NULL
         DO UPDATE SET updated_at = now(), user_id = COALESCE(EXCLUDED.user_id, tickets.user_id)
         RETURNING id",
    )
    // random, not time-ordered: the first 8 hex digits are the ticket's reference
    .bind(Uuid::new_v4())
    .bind(external_id)
    .bind(api_key_id)
    .bind(user_id)
    .fetch_one(db)
    .await
}

/// Tickets whose id falls in an inclusive range (a `T-XXXXXXXX` reference
/// names the range of ids starting with those digits), newest first.
pub async fn in_range(db: impl PgExecutor<'_>, low: Uuid, high: Uuid) -> Result<Vec<Ticket>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, source, user_id, status, created_at FROM tickets WHERE id BETWEEN $1 AND $2
         ORDER BY created_at DESC LIMIT 5",
    )
    .bind(low)
    .bind(high)
    .fetch_all(db)
    .await
}

/// One LLM call of a ticket, with why it was routed where it went.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlowCall {
    pub id: Uuid,
    pub request_id: Uuid,
    pub kind: String,
    pub classifier: Option<String>,
    pub complexity: Option<String>,
    pub confidence: Option<f32>,
    pub reason: Option<String>,
    pub tier: Option<String>,
    pub policy: Option<String>,
    pub route: Option<String>,
    pub model: String,
    pub provider: String,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cost_micros: i64,
    pub saved_micros: i64,
    pub latency_ms: i32,
    pub ttft_ms: Option<i32>,
    pub cache_status: String,
    pub attempt: i32,
    pub status: String,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn flow_calls(db: impl PgExecutor<'_>, ticket_id: Uuid) -> Result<Vec<FlowCall>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, request_id, kind, classifier, complexity, confidence, reason, tier, policy, route, model, provider,
            input_tokens, output_tokens, cost_micros, saved_micros, latency_ms, ttft_ms, cache_status, attempt,
            status, error, created_at
         FROM llm_calls WHERE ticket_id = $1 ORDER BY created_at, attempt, id",
    )
    .bind(ticket_id)
    .fetch_all(db)
    .await
}

/// A message of a ticket with its feedback, for the admin.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlowMessage {
    pub id: Uuid,
    pub role: String,
    pub content: String,
    pub request_id: Option<Uuid>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub rating: Option<i16>,
    pub comment: Option<String>,
}

pub async fn flow_messages(db: impl PgExecutor<'_>, ticket_id: Uuid) -> Result<Vec<FlowMessage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.id, m.role, m.content, m.request_id, m.status, m.created_at, f.rating, f.comment
         FROM messages m LEFT JOIN feedback f ON f.message_id = m.id
         WHERE m.ticket_id = $1 ORDER BY m.created_at, m.id",
    )
    .bind(ticket_id)
    .fetch_all(db)
    .await
}
