//! API keys: shown once at creation, stored as a sha256 hash.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub can_force_tier: bool,
    pub rpm_limit: Option<i32>,
    pub tpm_limit: Option<i32>,
    pub daily_budget_micros: Option<i64>,
    pub monthly_budget_micros: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a new key may do; `None` limits mean unlimited.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub can_force_tier: bool,
    pub rpm_limit: Option<i32>,
    pub tpm_limit: Option<i32>,
    pub daily_budget_micros: Option<i64>,
    pub monthly_budget_micros: Option<i64>,
}

const COLUMNS: &str = "id, name, prefix, can_force_tier, rpm_limit, tpm_limit, daily_budget_micros,
    monthly_budget_micros, created_at, revoked_at";

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh secret: `tr-` and 40 characters from 62 (238 bits).
pub fn generate_secret() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..40).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("tr-{body}")
}

/// Creates a key; returns it with the secret, which is not kept.
pub async fn create(db: impl PgExecutor<'_>, new: &NewKey) -> Result<(ApiKey, String), sqlx::Error> {
    let secret = generate_secret();
    let key = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO api_keys (id, name, prefix, key_hash, can_force_tier, rpm_limit, tpm_limit,
            daily_budget_micros, monthly_budget_micros)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(&new.name)
    .bind(&secret[..10])
    .bind(hash(&secret))
    .bind(new.can_force_tier)
    .bind(new.rpm_limit)
    .bind(new.tpm_limit)
    .bind(new.daily_budget_micros)
    .bind(new.monthly_budget_micros)
    .fetch_one(db)
    .await?;
    Ok((key, secret))
}

/// The live (not revoked) key with this secret.
pub async fn find_active(db: impl PgExecutor<'_>, secret: &str) -> Result<Option<ApiKey>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
    )))
    .bind(hash(secret))
    .fetch_optional(db)
    .await
}

/// Revokes by id, or by a name or prefix naming exactly one live key.
/// Returns the keys revoked (0 or 1).
pub async fn revoke(db: impl PgExecutor<'_>, which: &str) -> Result<Vec<ApiKey>, sqlx::Error> {
    let id = Uuid::parse_str(which).ok();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE api_keys SET revoked_at = now()
         WHERE revoked_at IS NULL AND id IN (
            SELECT id FROM api_keys
            WHERE revoked_at IS NULL AND (id = $1 OR name = $2 OR prefix = $2)
            -- an ambiguous name revokes nothing
            AND (SELECT count(*) FROM api_keys
                 WHERE revoked_at IS NULL AND (id = $1 OR name = $2 OR prefix = $2)) = 1)
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(which)
    .fetch_all(db)
    .await
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<ApiKey>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at")))
        .fetch_all(db)
        .await
}
