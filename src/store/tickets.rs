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
