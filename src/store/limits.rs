//! Token buckets and spend counters shared by every instance. Each check is
//! one SQL statement: Postgres' row lock on the upsert is the mutex.

use sqlx::PgExecutor;

/// Takes `cost` tokens from `bucket` (capacity `capacity`, refilling at
/// `per_second`) if it holds that many after refilling. On refusal,
/// returns how long until it would.
pub async fn take(
    db: impl PgExecutor<'_> + Copy,
    bucket: &str,
    capacity: f64,
    per_second: f64,
    cost: f64,
) -> Result<Result<(), std::time::Duration>, sqlx::Error> {
    // refill = tokens + elapsed * rate, capped; the WHERE makes it all-or-nothing
    let taken: Option<f64> = sqlx::query_scalar(
        "INSERT INTO rate_limit_buckets AS b (bucket, tokens, updated_at)
         VALUES ($1, $2 - $4, clock_timestamp())
         ON CONFLICT (bucket) DO UPDATE SET
            tokens = LEAST($2, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * $3) - $4,
            updated_at = clock_timestamp()
         WHERE LEAST($2, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * $3) >= $4
         RETURNING tokens",
    )
    .bind(bucket)
    .bind(capacity)
    .bind(per_second)
    .bind(cost)
    .fetch_optional(db)
    .await?;
    if taken.is_some() {
        return Ok(Ok(()));
    }
    let available: Option<f64> = sqlx::query_scalar(
        "SELECT LEAST($2, tokens + EXTRACT(EPOCH FROM clock_timestamp() - updated_at) * $3)
         FROM rate_limit_buckets WHERE bucket = $1",
    )
    .bind(bucket)
    .bind(capacity)
    .bind(per_second)
    .fetch_optional(db)
    .await?;
    let missing = (cost - available.unwrap_or(capacity)).max(0.0);
    let wait = if per_second > 0.0 { missing / per_second } else { 60.0 };
    Ok(Err(std::time::Duration::from_secs_f64(wait.max(0.001))))
}

/// Adds (or, negative, returns) tokens without a check: the real cost of a
/// request known only afterwards. A bucket may go below zero, down to
/// `-capacity`, so heavy use is paid back by waiting.
pub async fn adjust(
    db: impl PgExecutor<'_>,
    bucket: &str,
    capacity: f64,
    per_second: f64,
    delta: f64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE rate_limit_buckets SET
            tokens = GREATEST(-$2, LEAST($2, tokens + EXTRACT(EPOCH FROM clock_timestamp() - updated_at) * $3) + $4),
            updated_at = clock_timestamp()
         WHERE bucket = $1",
    )
    .bind(bucket)
    .bind(capacity)
    .bind(per_second)
    .bind(delta)
    .execute(db)
    .await?;
    Ok(())
}

/// Micro-dollars spent by `scope` today and this month (UTC).
pub async fn spent(db: impl PgExecutor<'_>, scope: &str) -> Result<(i64, i64), sqlx::Error> {
    let row: (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT
            sum(spent_micros) FILTER (WHERE period = 'day' AND period_start = (now() AT TIME ZONE 'UTC')::date)::BIGINT,
            sum(spent_micros) FILTER (WHERE period = 'month'
                AND period_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date)::BIGINT
         FROM spend_counters WHERE scope = $1",
    )
    .bind(scope)
    .fetch_one(db)
    .await?;
    Ok((row.0.unwrap_or(0), row.1.unwrap_or(0)))
}
