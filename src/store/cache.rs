//! `cache_entries`: cached answers, by exact key and by embedding.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CacheRow {
    pub key: String,
    pub scope: String,
    pub model: String,
    pub tier: Option<String>,
    pub query: String,
    pub system_hash: String,
    pub answer: String,
    pub finish_reason: String,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cost_micros: i64,
    pub embedding: Option<Vec<f32>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "key, scope, model, tier, query, system_hash, answer, finish_reason, input_tokens,
    output_tokens, cost_micros, embedding, created_at, expires_at";

/// Stores an entry; a newer answer for the same key replaces the old one.
pub async fn upsert(db: impl PgExecutor<'_>, r: &CacheRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cache_entries (key, scope, model, tier, query, system_hash, answer, finish_reason,
            input_tokens, output_tokens, cost_micros, embedding, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (key) DO UPDATE SET model = EXCLUDED.model, tier = EXCLUDED.tier, answer = EXCLUDED.answer,
            finish_reason = EXCLUDED.finish_reason, input_tokens = EXCLUDED.input_tokens,
            output_tokens = EXCLUDED.output_tokens, cost_micros = EXCLUDED.cost_micros,
            embedding = EXCLUDED.embedding, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
    )
    .bind(&r.key)
    .bind(&r.scope)
    .bind(&r.model)
    .bind(&r.tier)
    .bind(&r.query)
    .bind(&r.system_hash)
    .bind(&r.answer)
    .bind(&r.finish_reason)
    .bind(r.input_tokens)
    .bind(r.output_tokens)
    .bind(r.cost_micros)
    .bind(&r.embedding)
    .bind(r.created_at)
    .bind(r.expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The live entry with this key.
pub async fn get(db: impl PgExecutor<'_>, key: &str) -> Result<Option<CacheRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM cache_entries WHERE key = $1 AND expires_at > now()"
    )))
    .bind(key)
    .fetch_optional(db)
    .await
}

/// Live semantic entries created after `since` (oldest first).
pub async fn semantic_since(db: impl PgExecutor<'_>, since: DateTime<Utc>) -> Result<Vec<CacheRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM cache_entries
         WHERE embedding IS NOT NULL AND created_at > $1 AND expires_at > now() ORDER BY created_at"
    )))
    .bind(since)
    .fetch_all(db)
    .await
}

/// Adds `counts[i]` hits to entry `keys[i]` (keys distinct).
pub async fn add_hits(db: impl PgExecutor<'_>, keys: &[String], counts: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE cache_entries c SET hits = c.hits + u.n
         FROM UNNEST($1::text[], $2::bigint[]) AS u(key, n) WHERE c.key = u.key",
    )
    .bind(keys)
    .bind(counts)
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes entries, all or by model or by scope; returns how many.
pub async fn purge(db: impl PgExecutor<'_>, model: Option<&str>, scope: Option<&str>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM cache_entries WHERE ($1::TEXT IS NULL OR model = $1) AND ($2::TEXT IS NULL OR scope = $2)",
    )
    .bind(model)
    .bind(scope)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

pub async fn delete_expired(db: impl PgExecutor<'_>) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM cache_entries WHERE expires_at <= now()").execute(db).await?.rows_affected())
}
