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
    .bind(Uuid::new_v4())
    .bind(external_id)
    .bind(api_key_id)
    .bind(user_id)
    .fetch_one(db)
    .await
}
