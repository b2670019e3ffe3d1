use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub role: String,
    pub content: String,
    pub request_id: Option<Uuid>,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub role: &'a str,
    pub content: &'a str,
    pub request_id: Option<Uuid>,
    pub status: &'a str,
    /// For answers: the tier of the model that wrote it.
    pub tier: Option<&'a str>,
}

pub async fn insert(db: impl PgExecutor<'_>, m: &NewMessage<'_>) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO messages (id, ticket_id, role, content, request_id, status, tier)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at",
    )
    .bind(m.id)
    .bind(m.ticket_id)
    .bind(m.role)
    .bind(m.content)
    .bind(m.request_id)
    .bind(m.status)
    .bind(m.tier)
    .fetch_one(db)
    .await
}

/// The whole conversation, oldest first.
pub async fn for_ticket(db: impl PgExecutor<'_>, ticket_id: Uuid) -> Result<Vec<Message>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, ticket_id, role, content, request_id, status, created_at
         FROM messages WHERE ticket_id = $1 ORDER BY created_at, id",
    )
    .bind(ticket_id)
    .fetch_all(db)
    .await
}

/// A message as the customer sees it again: with the verdict they gave.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryMessage {
    pub id: Uuid,
    pub role: String,
    pub content: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub rating: Option<i16>,
    pub comment: Option<String>,
}

/// The conversation for the customer, oldest first. A question that got no
/// answer at all (status `error`) stays in the records but is not shown:
/// its text went back into the customer's message box.
pub async fn history(db: impl PgExecutor<'_>, ticket_id: Uuid) -> Result<Vec<HistoryMessage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.id, m.role, m.content, m.status, m.created_at, f.rating, f.comment
         FROM messages m LEFT JOIN feedback f ON f.message_id = m.id
         WHERE m.ticket_id = $1 AND m.role <> 'system' AND NOT (m.role = 'user' AND m.status = 'error')
         ORDER BY m.created_at, m.id",
    )
    .bind(ticket_id)
    .fetch_all(db)
    .await
}

/// Marks a request's question as unanswered (every model failed before a
/// word was written), so it is neither shown again nor sent as context.
pub async fn mark_unanswered(db: impl PgExecutor<'_>, request_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE messages SET status = 'error' WHERE request_id = $1 AND role = 'user'")
        .bind(request_id)
        .execute(db)
        .await?;
    Ok(())
}

/// The latest `limit` messages, oldest first (the model's context window).
pub async fn recent(db: impl PgExecutor<'_>, ticket_id: Uuid, limit: i64) -> Result<Vec<Message>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM (
            SELECT id, ticket_id, role, content, request_id, status, created_at
            FROM messages WHERE ticket_id = $1 AND status = 'ok'
            ORDER BY created_at DESC, id DESC LIMIT $2
         ) latest ORDER BY created_at, id",
    )
    .bind(ticket_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The highest tier among the ticket's last `turns` answers.
pub async fn recent_max_tier(
    db: impl PgExecutor<'_>,
    ticket_id: Uuid,
    turns: i64,
) -> Result<Option<crate::domain::Tier>, sqlx::Error> {
    let tiers: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT tier FROM messages WHERE ticket_id = $1 AND role = 'assistant'
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(ticket_id)
    .bind(turns)
    .fetch_all(db)
    .await?;
    Ok(tiers.into_iter().flatten().filter_map(|t| t.parse().ok()).max())
}
