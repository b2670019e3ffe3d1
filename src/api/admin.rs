//! Admin server functions. (Login arrives with the dashboard; until then the
//! server binds to loopback only.)

use leptos::prelude::*;

use super::AppError;
use super::types::CallView;

/// The newest `llm_calls` rows.
#[server(endpoint = "list_requests")]
pub async fn list_requests(limit: i64) -> Result<Vec<CallView>, AppError> {
    use crate::domain::ticket_ref;
    use crate::store::llm_calls;

    if !(1..=500).contains(&limit) {
        return Err(AppError::BadRequest("limit must be between 1 and 500".into()));
    }
    let state = super::state()?;
    let rows = llm_calls::newest(&state.pool, limit).await?;
    Ok(rows
        .into_iter()
        .map(|r| CallView {
            id: r.id,
            created_at: r.created_at,
            ticket_ref: r.ticket_id.as_ref().map(ticket_ref),
            kind: r.kind,
            classifier: r.classifier,
            complexity: r.complexity,
            confidence: r.confidence,
            tier: r.tier,
            model: r.model,
            provider: r.provider,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_micros: r.cost_micros,
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
            cache_status: r.cache_status,
            attempt: r.attempt,
            status: r.status,
            error: r.error,
        })
        .collect())
}
