//! `llm_calls`: one row per upstream attempt or cache hit.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
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

/// Writes a batch in one transaction, as statements of at most
/// `statement_rows` rows: all of it or none, with one commit.
///
/// Why pieces: where Postgres shares the machine's cores with the gateway,
/// one statement of a few hundred rows keeps a core busy for milliseconds
/// (indexes and the rollup trigger, about 20 µs a row), and requests in
/// flight wait for it. Short statements leave the scheduler a gap between
/// them. Measured on two cores at c=1: the added p99 fell from 2.5 ms to
/// 0.5–0.7 ms with 16 rows a statement. The price is Postgres's fixed cost
/// per statement: its CPU per row doubles (about 18 → 37 µs) once a batch
/// has more than 16 rows, i.e. above ~1,600 calls a second (BENCHMARKS.md).
pub async fn insert_batch(db: &sqlx::PgPool, rows: &[CallRecord], statement_rows: usize) -> Result<u64, sqlx::Error> {
    if rows.len() <= statement_rows {
        return insert_many(db, rows).await;
    }
    let mut tx = db.begin().await?;
    let mut inserted = 0;
    for piece in rows.chunks(statement_rows.max(1)) {
        inserted += insert_many(&mut *tx, piece).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Writes a batch in one statement. Idempotent: a batch retried after an
/// ambiguous failure (the commit reached the server, the reply did not)
/// writes each row once.
///
/// The rows travel as one array per column through `UNNEST`, so the SQL
/// text is the same for every batch size and sqlx's per-connection
/// statement cache holds one entry, not one per batch size. (Measured: no
/// change in the database's CPU per row; its indexes and the rollup
/// trigger are that cost, see BENCHMARKS.md.)
pub async fn insert_many(db: impl PgExecutor<'_>, rows: &[CallRecord]) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    fn col<'a, T>(rows: &'a [CallRecord], f: impl Fn(&'a CallRecord) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    let inserted: i64 = sqlx::query_scalar(INSERT_MANY)
        .bind(col(rows, |r| r.id))
        .bind(col(rows, |r| r.request_id))
        .bind(col(rows, |r| r.ticket_id))
        .bind(col(rows, |r| r.api_key_id))
        .bind(col(rows, |r| r.user_id.as_deref()))
        .bind(col(rows, |r| r.kind))
        .bind(col(rows, |r| r.classifier.as_deref()))
        .bind(col(rows, |r| r.complexity.as_deref()))
        .bind(col(rows, |r| r.confidence))
        .bind(col(rows, |r| r.reason.as_deref()))
        .bind(col(rows, |r| r.tier.as_deref()))
        .bind(col(rows, |r| r.policy.as_deref()))
        .bind(col(rows, |r| r.model.as_str()))
        .bind(col(rows, |r| r.provider.as_str()))
        .bind(col(rows, |r| r.input_tokens))
        .bind(col(rows, |r| r.output_tokens))
        .bind(col(rows, |r| r.cached_tokens))
        .bind(col(rows, |r| r.tokens_estimated))
        .bind(col(rows, |r| r.cost_micros))
        .bind(col(rows, |r| r.saved_micros))
        .bind(col(rows, |r| r.latency_ms))
        .bind(col(rows, |r| r.ttft_ms))
        .bind(col(rows, |r| r.cache_status.as_str()))
        .bind(col(rows, |r| r.attempt))
        .bind(col(rows, |r| r.status.as_str()))
        .bind(col(rows, |r| r.error.as_deref()))
        .bind(col(rows, |r| r.experiment_id))
        .bind(col(rows, |r| r.variant.as_deref()))
        .bind(col(rows, |r| &r.properties))
        .bind(col(rows, |r| r.created_at))
        .bind(col(rows, |r| r.route.as_deref()))
        .fetch_one(db)
        .await?;
    Ok(inserted as u64)
}

// Spend counters move with the rows actually inserted, in the same
// statement: a retried batch neither loses nor double-counts spend.
const INSERT_MANY: &str = "
WITH ins AS (
    INSERT INTO llm_calls (id, request_id, ticket_id, api_key_id, user_id, kind, classifier, complexity,
        confidence, reason, tier, policy, model, provider, input_tokens, output_tokens, cached_tokens,
        tokens_estimated, cost_micros, saved_micros, latency_ms, ttft_ms, cache_status, attempt, status, error,
        experiment_id, variant, properties, created_at, route)
    SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::real[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::int[],
        $16::int[], $17::int[], $18::bool[], $19::bigint[], $20::bigint[], $21::int[], $22::int[], $23::text[],
        $24::int[], $25::text[], $26::text[], $27::uuid[], $28::text[], $29::jsonb[], $30::timestamptz[],
        $31::text[])
    ON CONFLICT (id) DO NOTHING
    RETURNING api_key_id, user_id, cost_micros, created_at),
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
SELECT count(*) FROM ins";

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
