//! The call log against real Postgres: batching, shutdown, idempotence.

use chrono::Utc;
use sqlx::PgPool;
use triage::engine::call_log::CallLog;
use triage::store::llm_calls::{self, CallRecord};
use uuid::Uuid;

fn row(i: usize) -> CallRecord {
    CallRecord {
        id: Uuid::new_v4(),
        request_id: Uuid::new_v4(),
        ticket_id: None,
        api_key_id: None,
        user_id: Some(format!("user-{i}")),
        kind: "generate",
        classifier: Some("heuristic".into()),
        complexity: Some("simple".into()),
        confidence: Some(0.7),
        reason: None,
        tier: Some("budget".into()),
        policy: Some("cheapest_healthy".into()),
        route: None,
        model: "m".into(),
        provider: "local".into(),
        input_tokens: 10,
        output_tokens: 5,
        cached_tokens: 0,
        tokens_estimated: false,
        cost_micros: i as i64,
        saved_micros: 0,
        latency_ms: 3,
        ttft_ms: Some(1),
        cache_status: "none".into(),
        attempt: 1,
        status: "ok".into(),
        error: None,
        experiment_id: None,
        variant: None,
        properties: serde_json::json!({"team": "billing"}),
        created_at: Utc::now(),
    }
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM llm_calls").fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn shutdown_writes_every_queued_row_across_batches(pool: PgPool) {
    let (log, worker) = CallLog::start(pool.clone());
    for i in 0..1_234 {
        log.record(row(i));
    }
    worker.shutdown(log.clone()).await;
    assert_eq!(count(&pool).await, 1_234);
    let total: i64 =
        sqlx::query_scalar("SELECT sum(cost_micros)::bigint FROM llm_calls").fetch_one(&pool).await.unwrap();
    assert_eq!(total, (0..1_234).sum::<i64>());
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn flush_returns_once_earlier_rows_are_visible(pool: PgPool) {
    let (log, _worker) = CallLog::start(pool.clone());
    log.record(row(1));
    log.record(row(2));
    log.flush().await;
    assert_eq!(count(&pool).await, 2);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_batch_written_twice_stores_each_row_once(pool: PgPool) {
    let rows: Vec<CallRecord> = (0..10).map(row).collect();
    assert_eq!(llm_calls::insert_many(&pool, &rows).await.unwrap(), 10);
    assert_eq!(llm_calls::insert_many(&pool, &rows).await.unwrap(), 0);
    assert_eq!(count(&pool).await, 10);
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_batch_in_pieces_counts_every_row_once_in_rows_rollups_and_spend(pool: PgPool) {
    let rows: Vec<CallRecord> = (0..40).map(|i| CallRecord { user_id: Some("u".into()), ..row(i) }).collect();
    assert_eq!(llm_calls::insert_batch(&pool, &rows, 16).await.unwrap(), 40);
    // retried whole after an ambiguous failure: nothing twice
    assert_eq!(llm_calls::insert_batch(&pool, &rows, 16).await.unwrap(), 0);
    assert_eq!(count(&pool).await, 40);
    let (calls, cost): (i64, i64) =
        sqlx::query_as("SELECT sum(calls)::bigint, sum(cost_micros)::bigint FROM call_rollups")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((calls, cost), (40, (0..40).sum::<i64>()));
    let spent: i64 =
        sqlx::query_scalar("SELECT spent_micros FROM spend_counters WHERE scope = 'user:u' AND period = 'day'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(spent, (0..40).sum::<i64>());
}

#[sqlx::test(migrator = "triage::store::MIGRATOR")]
async fn a_batch_in_pieces_is_written_whole_or_not_at_all(pool: PgPool) {
    let mut rows: Vec<CallRecord> = (0..40).map(row).collect();
    // the third piece breaks a CHECK constraint: the first two must not stay
    rows[35].status = "bogus".into();
    assert!(llm_calls::insert_batch(&pool, &rows, 16).await.is_err());
    assert_eq!(count(&pool).await, 0);
    let rollups: i64 = sqlx::query_scalar("SELECT count(*) FROM call_rollups").fetch_one(&pool).await.unwrap();
    assert_eq!(rollups, 0);
}
