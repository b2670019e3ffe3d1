use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Rule {
    pub id: Uuid,
    pub name: String,
    pub metric: String,
    pub threshold: f64,
    pub webhook_url: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

pub async fn create_rule(
    db: impl PgExecutor<'_>,
    name: &str,
    metric: &str,
    threshold: f64,
    webhook_url: Option<&str>,
) -> Result<Rule, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO alert_rules (id, name, metric, threshold, webhook_url) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, name, metric, threshold, webhook_url, enabled, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(name)
    .bind(metric)
    .bind(threshold)
    .bind(webhook_url)
    .fetch_one(db)
    .await
}

pub async fn rules(db: impl PgExecutor<'_>) -> Result<Vec<Rule>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, metric, threshold, webhook_url, enabled, created_at FROM alert_rules ORDER BY created_at",
    )
    .fetch_all(db)
    .await
}

pub async fn delete_rule(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM alert_rules WHERE id = $1").bind(id).execute(db).await?.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub id: Uuid,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub fired_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub delivery: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

const EVENT: &str = "SELECT e.id, e.rule_id, r.name AS rule_name, r.metric, e.value, e.threshold, e.fired_at,
    e.resolved_at, e.delivery, e.attempts, e.last_error
    FROM alert_events e JOIN alert_rules r ON r.id = e.rule_id";

/// Opens an event for a rule unless one is open already (another instance
/// may have been first). Returns the new event's id.
pub async fn fire(
    db: impl PgExecutor<'_>,
    rule_id: Uuid,
    value: f64,
    threshold: f64,
    with_webhook: bool,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO alert_events (id, rule_id, value, threshold, delivery) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (rule_id) WHERE resolved_at IS NULL DO NOTHING RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(rule_id)
    .bind(value)
    .bind(threshold)
    .bind(if with_webhook { "pending" } else { "none" })
    .fetch_optional(db)
    .await
}

/// Closes the rule's open event, if any.
pub async fn resolve(db: impl PgExecutor<'_>, rule_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE alert_events SET resolved_at = now() WHERE rule_id = $1 AND resolved_at IS NULL")
        .bind(rule_id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delivered(
    db: impl PgExecutor<'_>,
    id: Uuid,
    ok: bool,
    attempts: i32,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE alert_events SET delivery = $2, attempts = $3, last_error = $4 WHERE id = $1")
        .bind(id)
        .bind(if ok { "delivered" } else { "failed" })
        .bind(attempts)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

/// Events still open (the dashboard's banner).
pub async fn open(db: impl PgExecutor<'_>) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{EVENT} WHERE e.resolved_at IS NULL ORDER BY e.fired_at DESC")))
        .fetch_all(db)
        .await
}

pub async fn history(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{EVENT} ORDER BY e.fired_at DESC LIMIT $1")))
        .bind(limit)
        .fetch_all(db)
        .await
}
