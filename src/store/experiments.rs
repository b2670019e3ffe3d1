use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Experiment {
    pub id: Uuid,
    pub name: String,
    pub variant_a: String,
    pub variant_b: String,
    pub split_b: i32,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, variant_a, variant_b, split_b, status, created_at, stopped_at";

pub async fn running(db: impl PgExecutor<'_>) -> Result<Option<Experiment>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM experiments WHERE status = 'running'")))
        .fetch_optional(db)
        .await
}

/// Starts an experiment. Fails with a unique violation while another runs.
pub async fn create(
    db: impl PgExecutor<'_>,
    name: &str,
    variant_a: &str,
    variant_b: &str,
    split_b: i32,
) -> Result<Experiment, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO experiments (id, name, variant_a, variant_b, split_b) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(name)
    .bind(variant_a)
    .bind(variant_b)
    .bind(split_b)
    .fetch_one(db)
    .await
}

pub async fn stop(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE experiments SET status = 'stopped', stopped_at = now() WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<Experiment>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM experiments ORDER BY created_at DESC LIMIT 50")))
        .fetch_all(db)
        .await
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Experiment>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM experiments WHERE id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// One ticket of an experiment: its variant, what it cost, how long its
/// answers took, and its verdicts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketResult {
    pub variant: String,
    pub cost_micros: i64,
    pub latency_ms: f64,
    pub thumbs_up: i64,
    pub verdicts: i64,
}

pub async fn ticket_results(db: impl PgExecutor<'_>, id: Uuid) -> Result<Vec<TicketResult>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.variant, sum(c.cost_micros)::BIGINT AS cost_micros,
            avg(c.latency_ms) FILTER (WHERE c.kind = 'generate' AND c.status = 'ok')::FLOAT8 AS latency_ms,
            count(f.rating) FILTER (WHERE f.rating = 1) AS thumbs_up, count(f.rating) AS verdicts
         FROM llm_calls c
         LEFT JOIN feedback f ON f.request_id = c.request_id AND c.status = 'ok' AND c.kind = 'generate'
         WHERE c.experiment_id = $1 AND c.variant IS NOT NULL
         GROUP BY c.ticket_id, c.variant",
    )
    .bind(id)
    .fetch_all(db)
    .await
}
