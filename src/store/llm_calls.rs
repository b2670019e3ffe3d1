//! `llm_calls`: one row per upstream attempt or cache hit.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

/// A row to write. Built by the engine, written in batches by the call log.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub id: Uuid,
    pub request_id: Uuid,
    pub ticket_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub user_id: Option<String>,
    pub kind: &'static str,
    pub classifier: Option<String>,
    pub complexity: Option<String>,
    pub confidence: Option<f32>,
    pub reason: Option<String>,
    pub tier: Option<String>,
    pub policy: Option<String>,
    /// The routing explanation (tier changes and why).
    pub route: Option<String>,
    pub model: String,
    pub provider: String,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cached_tokens: i32,
    pub tokens_estimated: bool,
    pub cost_micros: i64,
    pub saved_micros: i64,
    pub latency_ms: i32,
    pub ttft_ms: Option<i32>,
    pub cache_status: String,
    pub attempt: i32,
    pub status: String,
    pub error: Option<String>,
    pub experiment_id: Option<Uuid>,
    pub variant: Option<String>,
    pub properties: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Writes a batch in one statement. Idempotent: a batch retried after an
/// ambiguous failure (the commit reached the server, the reply did not)
/// writes each row once.
pub async fn insert_many(db: impl PgExecutor<'_>, rows: &[CallRecord]) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "WITH ins AS (INSERT INTO llm_calls (id, request_id, ticket_id, api_key_id, user_id, kind, classifier, complexity,
         confidence, reason, tier, policy, model, provider, input_tokens, output_tokens, cached_tokens,
         tokens_estimated, cost_micros, saved_micros, latency_ms, ttft_ms, cache_status, attempt, status, error,
         experiment_id, variant, properties, created_at, route) ",
    );
    q.push_values(rows, |mut b, r| {
        b.push_bind(r.id)
            .push_bind(r.request_id)
            .push_bind(r.ticket_id)
            .push_bind(r.api_key_id)
            .push_bind(&r.user_id)
            .push_bind(r.kind)
            .push_bind(&r.classifier)
            .push_bind(&r.complexity)
            .push_bind(r.confidence)
            .push_bind(&r.reason)
            .push_bind(&r.tier)
            .push_bind(&r.policy)
            .push_bind(&r.model)
            .push_bind(&r.provider)
            .push_bind(r.input_tokens)
            .push_bind(r.output_tokens)
            .push_bind(r.cached_tokens)
            .push_bind(r.tokens_estimated)
            .push_bind(r.cost_micros)
            .push_bind(r.saved_micros)
            .push_bind(r.latency_ms)
            .push_bind(r.ttft_ms)
            .push_bind(&r.cache_status)
            .push_bind(r.attempt)
            .push_bind(&r.status)
            .push_bind(&r.error)
            .push_bind(r.experiment_id)
            .push_bind(&r.variant)
            .push_bind(&r.properties)
            .push_bind(r.created_at)
            .push_bind(&r.route);
    });
    // Spend counters move with the rows actually inserted, in the same
    // statement: a retried batch neither loses nor double-counts spend.
    q.push(
        " ON CONFLICT (id) DO NOTHING RETURNING api_key_id, user_id, cost_micros, created_at),
        spend AS (
            SELECT 'key:' || api_key_id::text AS scope, cost_micros, created_at FROM ins
            WHERE api_key_id IS NOT NULL AND cost_micros > 0
            UNION ALL
            SELECT 'user:' || user_id, cost_micros, created_at FROM ins
            WHERE user_id IS NOT NULL AND cost_micros > 0),
        counted AS (
            INSERT INTO spend_counters (scope, period, period_start, spent_micros)
            SELECT scope, p.period,
                CASE p.period WHEN 'day' THEN (created_at AT TIME ZONE 'UTC')::date
                    ELSE date_trunc('month', created_at AT TIME ZONE 'UTC')::date END,
                sum(cost_micros)::BIGINT
            FROM spend CROSS JOIN (VALUES ('day'), ('month')) AS p(period)
            GROUP BY 1, 2, 3
            ON CONFLICT (scope, period, period_start)
            DO UPDATE SET spent_micros = spend_counters.spent_micros + EXCLUDED.spent_micros
            RETURNING 1)
        SELECT count(*) FROM ins",
    );
    let inserted: i64 = q.build_query_scalar().fetch_one(db).await?;
    Ok(inserted as u64)
}

/// A row as the admin list shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallRow {
    pub id: Uuid,
    pub request_id: Uuid,
    pub ticket_id: Option<Uuid>,
    pub kind: String,
    pub classifier: Option<String>,
    pub complexity: Option<String>,
    pub confidence: Option<f32>,
    pub tier: Option<String>,
    pub route: Option<String>,
    pub model: String,
    pub provider: String,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cost_micros: i64,
    pub latency_ms: i32,
    pub ttft_ms: Option<i32>,
    pub cache_status: String,
    pub attempt: i32,
    pub status: String,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The columns of a `CallRow`.
const ROW_COLUMNS: &str =
    "id, request_id, ticket_id, kind, classifier, complexity, confidence, tier, route, model, provider,
    input_tokens, output_tokens, cost_micros, latency_ms, ttft_ms, cache_status, attempt, status, error, created_at";

pub async fn newest(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<CallRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM llm_calls ORDER BY created_at DESC, id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn for_request(db: impl PgExecutor<'_>, request_id: Uuid) -> Result<Vec<CallRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM llm_calls WHERE request_id = $1 ORDER BY attempt, created_at"
    )))
    .bind(request_id)
    .fetch_all(db)
    .await
}
