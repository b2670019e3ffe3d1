//! `triage demo-seed`: a realistic stretch of support traffic, generated in
//! Postgres itself (generate_series), so a million calls take seconds and
//! the dashboard can be looked at and benchmarked.
//!
//! Shape: 55% simple / 30% medium / 15% complex questions, about three per
//! ticket; each tier's models at list prices (the default catalog); ~12%
//! cache hits; ~3% of requests fail once and are retried on another model;
//! ~9% of answers get a verdict, less often a happy one for under-routed
//! complex questions; properties `plan` and `channel`; a daily rhythm.

use super::analytics::add_rollup_property_in;
use sqlx::PgPool;

/// The seeded rows carry this classifier name, so they can be told apart
/// (and removed with `--replace`).
pub const CLASSIFIER: &str = "demo";

#[derive(Debug, Clone, Copy)]
pub struct Seed {
    pub calls: i64,
    pub days: i64,
}

/// Inserts the traffic; returns how many `llm_calls` rows were written.
pub async fn seed(pool: &PgPool, seed: Seed, replace: bool) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if replace {
        // Calls first (their trigger takes them out of the rollups with the
        // verdicts they had); their tickets' feedback then has no calls left
        // to move, so its row trigger is off for the bulk delete.
        for statement in [
            "CREATE TEMP TABLE demo_tickets ON COMMIT DROP AS
             SELECT DISTINCT ticket_id AS id FROM llm_calls WHERE classifier = $1 AND ticket_id IS NOT NULL",
            "DELETE FROM llm_calls WHERE classifier = $1",
        ] {
            sqlx::query(statement).bind(CLASSIFIER).execute(&mut *tx).await?;
        }
        for statement in [
            "ALTER TABLE feedback DISABLE TRIGGER feedback_rollup",
            "DELETE FROM tickets WHERE id IN (SELECT id FROM demo_tickets)",
            "ALTER TABLE feedback ENABLE TRIGGER feedback_rollup",
        ] {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
    }
    // The demo's properties are few-valued: roll them up, as an admin would.
    for key in ["plan", "channel"] {
        add_rollup_property_in(&mut tx, key).await?;
    }
    let salt: i64 = rand::random::<u32>() as i64;
    // One temporary row per request: everything else derives from it.
    sqlx::query(
        "CREATE TEMP TABLE demo_requests ON COMMIT DROP AS
         SELECT g AS i,
            md5('demo-request-' || $3 || '-' || g)::uuid AS request_id,
            md5('demo-ticket-' || $3 || '-' || (g / 3))::uuid AS ticket_id,
            'user-' || ((g / 3) % 4000) AS user_id,
            CASE WHEN c < 0.55 THEN 'simple' WHEN c < 0.85 THEN 'medium' ELSE 'complex' END AS complexity,
            random() AS r_model, random() AS r_route, random() AS r_cache, random() AS r_fail, random() AS r_fb,
            random() AS r_plan, random() AS r_happy,
            (200 + random() * 900 + CASE WHEN c >= 0.85 THEN 1500 ELSE 0 END)::int AS input_tokens,
            (40 + random() * 250 + CASE WHEN c >= 0.55 THEN 200 ELSE 0 END)::int AS output_tokens,
            -- none in the future: today's later hours move to yesterday (not
            -- clamped to one instant, which would tie thousands of calls)
            CASE WHEN t < now() - interval '1 minute' THEN t ELSE t - interval '1 day' END AS at
         FROM (SELECT g, random() AS c,
                  -- more traffic in the working day (UTC)
                  date_trunc('day', now()) - (floor(random() * $2) || ' days')::interval
                  + ((6 + random() * 10 + random() * 6) || ' hours')::interval AS t
               FROM generate_series(1, $1) g) s",
    )
    .bind(seed.calls)
    .bind(seed.days)
    .bind(salt)
    .execute(&mut *tx)
    .await?;
    // Mostly routed by complexity; a few simple questions go one tier up.
    sqlx::query(
        "ALTER TABLE demo_requests ADD COLUMN tier text, ADD COLUMN model text, ADD COLUMN provider text,
            ADD COLUMN in_price float8, ADD COLUMN out_price float8",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE demo_requests SET tier = CASE
            WHEN complexity = 'simple' AND r_route < 0.06 THEN 'balanced'
            WHEN complexity = 'simple' THEN 'budget'
            WHEN complexity = 'medium' AND r_route < 0.04 THEN 'premium'
            WHEN complexity = 'medium' THEN 'balanced'
            ELSE 'premium' END",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE demo_requests SET (model, provider, in_price, out_price) = (
            SELECT m.model, m.provider, m.inp, m.outp FROM (VALUES
                ('budget', 0.0, 0.6, 'openai/gpt-4o-mini', 'openai', 0.15, 0.6),
                ('budget', 0.6, 0.9, 'google/gemini-2.0-flash', 'openai', 0.1, 0.4),
                ('budget', 0.9, 1.1, 'anthropic/claude-haiku-4-5', 'anthropic', 1.0, 5.0),
                ('balanced', 0.0, 0.55, 'openai/gpt-4o', 'openai', 2.5, 10.0),
                ('balanced', 0.55, 0.9, 'anthropic/claude-sonnet-4-5', 'anthropic', 3.0, 15.0),
                ('balanced', 0.9, 1.1, 'google/gemini-2.0-flash', 'openai', 0.1, 0.4),
                ('premium', 0.0, 0.5, 'anthropic/claude-opus-4-5', 'anthropic', 5.0, 25.0),
                ('premium', 0.5, 0.8, 'openai/gpt-4o', 'openai', 2.5, 10.0),
                ('premium', 0.8, 1.1, 'google/gemini-2.5-pro', 'openai', 1.25, 10.0)
            ) AS m(tier, lo, hi, model, provider, inp, outp)
            WHERE m.tier = demo_requests.tier AND r_model >= m.lo AND r_model < m.hi)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO tickets (id, source, user_id, status, created_at, updated_at)
         SELECT ticket_id, CASE WHEN min(r_plan) < 0.7 THEN 'widget' ELSE 'api' END, min(user_id),
            CASE WHEN min(r_fb) < 0.01 THEN 'escalated' ELSE 'open' END, min(at), max(at)
         FROM demo_requests GROUP BY ticket_id
         ON CONFLICT (id) DO NOTHING",
    )
    .execute(&mut *tx)
    .await?;
    // Questions and answers for the feedback to hang on (only where a
    // verdict was given: the text of a million answers would say nothing).
    sqlx::query(
        "INSERT INTO messages (id, ticket_id, role, content, request_id, status, created_at, tier)
         SELECT md5('demo-q-' || request_id)::uuid, ticket_id, 'user',
                CASE complexity WHEN 'simple' THEN 'What are your opening hours on weekends?'
                     WHEN 'medium' THEN 'I was charged twice for order 4417, can you refund one of them?'
                     ELSE 'Our SSO login loops back to the start page after the SAML assertion since the upgrade.' END,
                request_id, 'ok', at - interval '1 second', NULL
         FROM demo_requests WHERE r_fb < 0.09
         UNION ALL
         SELECT md5('demo-a-' || request_id)::uuid, ticket_id, 'assistant', 'Thanks for reaching out — here is what to do…',
                request_id, 'ok', at, tier
         FROM demo_requests WHERE r_fb < 0.09",
    )
    .execute(&mut *tx)
    .await?;
    // The feedback's row trigger moves calls between verdicts; these
    // requests have no calls yet (they come last, filed under the verdict
    // by their own trigger), so it has nothing to do but would plan four
    // statements per row: minutes for a million calls.
    sqlx::query("ALTER TABLE feedback DISABLE TRIGGER feedback_rollup").execute(&mut *tx).await?;
    // Happier with well-routed answers than with complex questions sent low.
    sqlx::query(
        "INSERT INTO feedback (id, message_id, ticket_id, request_id, rating, comment, created_at, updated_at)
         SELECT md5('demo-f-' || request_id)::uuid, md5('demo-a-' || request_id)::uuid, ticket_id, request_id,
                CASE WHEN r_happy < CASE WHEN complexity = 'complex' AND tier <> 'premium' THEN 0.35
                                         WHEN tier = 'premium' THEN 0.9 WHEN tier = 'balanced' THEN 0.85 ELSE 0.8 END
                     THEN 1 ELSE -1 END,
                CASE WHEN r_route < 0.2 THEN 'The answer did not solve my problem.' END,
                at + interval '1 minute', at + interval '1 minute'
         FROM demo_requests WHERE r_fb < 0.09",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("ALTER TABLE feedback ENABLE TRIGGER feedback_rollup").execute(&mut *tx).await?;
    // The calls last: the insert trigger files each under the verdict its
    // request already has (a verdict given later moves it, row by row).
    let columns = "id, request_id, ticket_id, user_id, kind, classifier, complexity, confidence, reason, tier, policy,
        model, provider, input_tokens, output_tokens, cost_micros, saved_micros, latency_ms, ttft_ms, cache_status,
        attempt, status, error, properties, created_at";
    let properties = "jsonb_build_object('plan', CASE WHEN r_plan < 0.6 THEN 'free' WHEN r_plan < 0.9 THEN 'pro' ELSE 'enterprise' END,
        'channel', CASE WHEN r_plan < 0.7 THEN 'widget' ELSE 'api' END)";
    // A failed first attempt for ~3% of requests (before the answer).
    let failed = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO llm_calls ({columns})
         SELECT md5('demo-fail-' || request_id)::uuid, request_id, ticket_id, user_id, 'generate', $1, complexity,
            0.55 + r_route * 0.4, 'demo traffic', tier, 'cheapest_healthy', model, provider, input_tokens, 0, 0, 0,
            (300 + r_model * 4000)::int, NULL, 'miss', 1, 'error',
            CASE WHEN r_fail < 0.01 THEN 'HTTP 429: rate limited' WHEN r_fail < 0.02 THEN 'HTTP 503: overloaded'
                 ELSE 'timed out waiting for the first token' END,
            {properties}, at - interval '2 seconds'
         FROM demo_requests WHERE r_fail < 0.03 AND r_cache >= 0.12"
    )))
    .bind(CLASSIFIER)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    // The answer: a cache hit (free, saving its original cost) or a call.
    let answered = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO llm_calls ({columns})
         SELECT md5('demo-call-' || request_id)::uuid, request_id, ticket_id, user_id, 'generate', $1, complexity,
            0.55 + r_route * 0.4, 'demo traffic', tier, 'cheapest_healthy',
            model,
            CASE WHEN r_cache < 0.12 THEN 'cache' ELSE provider END,
            input_tokens, output_tokens,
            CASE WHEN r_cache < 0.12 THEN 0 ELSE round(input_tokens * in_price + output_tokens * out_price)::bigint END,
            CASE WHEN r_cache < 0.12 THEN round(input_tokens * in_price + output_tokens * out_price)::bigint ELSE 0 END,
            CASE WHEN r_cache < 0.12 THEN (2 + r_model * 6)::int
                 ELSE (CASE tier WHEN 'budget' THEN 500 WHEN 'balanced' THEN 1400 ELSE 2600 END
                       + output_tokens * CASE tier WHEN 'budget' THEN 6 WHEN 'balanced' THEN 12 ELSE 20 END
                       + (r_route * r_route * 6000))::int END,
            CASE WHEN r_cache < 0.12 THEN 1 ELSE (CASE tier WHEN 'budget' THEN 250 WHEN 'balanced' THEN 500 ELSE 900 END
                       + r_model * 400)::int END,
            CASE WHEN r_cache < 0.12 THEN 'hit' ELSE 'miss' END,
            CASE WHEN r_fail < 0.03 AND r_cache >= 0.12 THEN 2 ELSE 1 END, 'ok', NULL,
            {properties}, at
         FROM demo_requests"
    )))
    .bind(CLASSIFIER)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    tx.commit().await?;
    // Fresh statistics, or the planner guesses from an empty table; and a
    // visibility map, as autovacuum would leave it, for index-only scans.
    for table in ["llm_calls", "feedback", "messages", "tickets", "call_rollups", "property_rollups"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}"))).execute(pool).await?;
    }
    Ok(failed + answered)
}
