use sqlx::PgExecutor;
use uuid::Uuid;

/// A customer's verdict on one answer. The answer must be an assistant
/// message of `ticket_id` (the customer's own ticket); returns false when it
/// is not. A later verdict replaces the earlier one; a comment given once is
/// kept when only the thumbs change.
pub async fn upsert(
    db: impl PgExecutor<'_>,
    ticket_id: Uuid,
    message_id: Uuid,
    rating: i16,
    comment: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO feedback (id, message_id, ticket_id, request_id, rating, comment)
         SELECT $1, m.id, m.ticket_id, m.request_id, $4, $5
         FROM messages m WHERE m.id = $2 AND m.ticket_id = $3 AND m.role = 'assistant'
         ON CONFLICT (message_id) DO UPDATE
            SET rating = EXCLUDED.rating,
                comment = COALESCE(EXCLUDED.comment, feedback.comment),
                updated_at = now()",
    )
    .bind(Uuid::new_v4())
    .bind(message_id)
    .bind(ticket_id)
    .bind(rating)
    .bind(comment)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Feedback {
    pub message_id: Uuid,
    pub request_id: Option<Uuid>,
    pub rating: i16,
    pub comment: Option<String>,
}

pub async fn for_message(db: impl PgExecutor<'_>, message_id: Uuid) -> Result<Option<Feedback>, sqlx::Error> {
    sqlx::query_as("SELECT message_id, request_id, rating, comment FROM feedback WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(db)
        .await
}
