use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Admin {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Creates an admin, or replaces the password of an existing one.
pub async fn upsert(db: impl PgExecutor<'_>, username: &str, password_hash: &str) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO admin_users (id, username, password_hash) VALUES ($1, $2, $3)
         ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash
         RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(username)
    .bind(password_hash)
    .fetch_one(db)
    .await
}

pub async fn by_username(db: impl PgExecutor<'_>, username: &str) -> Result<Option<Admin>, sqlx::Error> {
    sqlx::query_as("SELECT id, username, password_hash, last_login_at FROM admin_users WHERE username = $1")
        .bind(username)
        .fetch_optional(db)
        .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Admin>, sqlx::Error> {
    sqlx::query_as("SELECT id, username, password_hash, last_login_at FROM admin_users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn count(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM admin_users").fetch_one(db).await
}

pub async fn touch_login(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE admin_users SET last_login_at = now() WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}
