use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// A call worth a second look: disliked, escalated, or classified without
/// confidence. One per request (its answering call).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReviewItem {
    pub request_id: Uuid,
    pub ticket_id: Option<Uuid>,
    pub query: String,
    pub classifier: Option<String>,
    pub complexity: Option<String>,
    pub confidence: Option<f32>,
    pub reason: Option<String>,
    pub tier: Option<String>,
    pub model: String,
    pub rating: Option<i16>,
    pub comment: Option<String>,
    pub escalated: bool,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The review queue, newest first: answered requests with a thumbs-down,
/// an escalated ticket, or confidence under `below`, that have a stored
/// question. Labelled ones are left out unless `include_labelled`. Each
/// reason is searched on its own index, then the few candidates are joined.
pub async fn queue(
    db: impl PgExecutor<'_>,
    below: f32,
    include_labelled: bool,
    limit: i64,
) -> Result<Vec<ReviewItem>, sqlx::Error> {
    sqlx::query_as(
        "WITH candidates AS (
            (SELECT f.request_id FROM feedback f
             WHERE f.rating = -1 AND ($2 OR NOT EXISTS (SELECT 1 FROM labels l WHERE l.request_id = f.request_id))
             ORDER BY f.updated_at DESC LIMIT $3)
            UNION
            (SELECT c.request_id
             -- the most recently escalated tickets first (status index), not
             -- every call probed for its ticket's status
             FROM (SELECT id FROM tickets WHERE status = 'escalated' ORDER BY updated_at DESC LIMIT $3 * 4) t
             JOIN llm_calls c ON c.ticket_id = t.id
             WHERE c.kind = 'generate' AND c.status = 'ok'
               AND EXISTS (SELECT 1 FROM messages m WHERE m.request_id = c.request_id AND m.role = 'user')
               AND ($2 OR NOT EXISTS (SELECT 1 FROM labels l WHERE l.request_id = c.request_id))
             ORDER BY c.created_at DESC LIMIT $3)
            UNION
            (SELECT c.request_id FROM llm_calls c
             WHERE c.kind = 'generate' AND c.status = 'ok' AND c.confidence < $1
               AND EXISTS (SELECT 1 FROM messages m WHERE m.request_id = c.request_id AND m.role = 'user')
               AND ($2 OR NOT EXISTS (SELECT 1 FROM labels l WHERE l.request_id = c.request_id))
             ORDER BY c.created_at DESC LIMIT $3)
         )
         SELECT c.request_id, c.ticket_id, q.content AS query, c.classifier, c.complexity, c.confidence, c.reason,
            c.tier, c.model, f.rating, f.comment, coalesce(t.status = 'escalated', false) AS escalated, l.label,
            c.created_at
         FROM candidates k
         JOIN llm_calls c ON c.request_id = k.request_id AND c.kind = 'generate' AND c.status = 'ok'
         JOIN LATERAL (SELECT m.content FROM messages m WHERE m.request_id = c.request_id AND m.role = 'user' LIMIT 1) q ON TRUE
         LEFT JOIN feedback f ON f.request_id = c.request_id
         LEFT JOIN tickets t ON t.id = c.ticket_id
         LEFT JOIN labels l ON l.request_id = c.request_id
         WHERE c.complexity IS NOT NULL
         ORDER BY c.created_at DESC
         LIMIT $3",
    )
    .bind(below)
    .bind(include_labelled)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Stores (or changes) the complexity a request should have had, with the
/// question's text and what the classifier said. False when the request
/// has no stored question.
pub async fn set(db: impl PgExecutor<'_>, request_id: Uuid, label: &str, admin: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO labels (request_id, query, predicted, label, admin_id)
         SELECT q.request_id, q.content,
            (SELECT c.complexity FROM llm_calls c WHERE c.request_id = q.request_id AND c.complexity IS NOT NULL LIMIT 1),
            $2, $3
         FROM messages q WHERE q.request_id = $1 AND q.role = 'user'
         LIMIT 1
         ON CONFLICT (request_id) DO UPDATE SET label = EXCLUDED.label, admin_id = EXCLUDED.admin_id, updated_at = now()",
    )
    .bind(request_id)
    .bind(label)
    .bind(admin)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Label {
    pub query: String,
    pub label: String,
}

pub async fn all(db: impl PgExecutor<'_>) -> Result<Vec<Label>, sqlx::Error> {
    sqlx::query_as("SELECT query, label FROM labels ORDER BY created_at").fetch_all(db).await
}

/// Per week: how many reviewed items the classifier had right.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WeeklyAccuracy {
    pub week: NaiveDate,
    pub reviewed: i64,
    pub correct: i64,
}

pub async fn weekly_accuracy(db: impl PgExecutor<'_>) -> Result<Vec<WeeklyAccuracy>, sqlx::Error> {
    sqlx::query_as(
        "SELECT date_trunc('week', created_at)::date AS week, count(*) AS reviewed,
            count(*) FILTER (WHERE predicted = label) AS correct
         FROM labels GROUP BY 1 ORDER BY 1 DESC LIMIT 26",
    )
    .fetch_all(db)
    .await
}
