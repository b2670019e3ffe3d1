//! The customer chat's server functions. The ticket lives in the visitor's
//! session (tower-sessions, stored in Postgres), so a reload restores it.

use leptos::prelude::*;
use leptos::server_fn::codec::{ByteStream, Streaming};

use super::AppError;
use super::types::Conversation;
#[cfg(feature = "ssr")]
use super::types::{MessageView, StreamEvent};

#[cfg(feature = "ssr")]
const TICKET_KEY: &str = "ticket_id";

#[cfg(feature = "ssr")]
async fn session() -> Result<tower_sessions::Session, AppError> {
    leptos_axum::extract::<tower_sessions::Session>().await.map_err(|e| {
        tracing::error!(error = %e, "no session layer");
        AppError::Internal
    })
}

#[cfg(feature = "ssr")]
async fn current_ticket(session: &tower_sessions::Session) -> Result<Option<uuid::Uuid>, AppError> {
    session.get::<uuid::Uuid>(TICKET_KEY).await.map_err(|e| {
        tracing::error!(error = %e, "session store failed");
        AppError::Unavailable("Your conversation could not be loaded. Please try again shortly.".into())
    })
}

/// The visitor's current conversation (empty before the first message).
#[server(endpoint = "load_conversation")]
pub async fn load_conversation() -> Result<Conversation, AppError> {
    use crate::domain::ticket_ref;
    use crate::store::messages;

    let state = super::state()?;
    let session = session().await?;
    let Some(ticket_id) = current_ticket(&session).await? else {
        return Ok(Conversation::default());
    };
    let messages = messages::for_ticket(&state.pool, ticket_id).await?;
    Ok(Conversation {
        ticket_id: Some(ticket_id),
        ticket_ref: Some(ticket_ref(&ticket_id)),
        messages: messages
            .into_iter()
            .map(|m| MessageView {
                id: m.id,
                role: m.role,
                content: m.content,
                status: m.status,
                created_at: m.created_at,
            })
            .collect(),
    })
}

/// Starts a fresh conversation; the old ticket stays in the records.
#[server(endpoint = "new_conversation")]
pub async fn new_conversation() -> Result<(), AppError> {
    let session = session().await?;
    session.remove::<uuid::Uuid>(TICKET_KEY).await.map_err(|_| AppError::Internal)?;
    Ok(())
}

/// Sends a customer message and streams the answer as JSON lines
/// (`StreamEvent`): `started`, `delta`…, then `done` or `error`.
#[server(endpoint = "send_message", output = Streaming)]
pub async fn send_message(text: String) -> Result<ByteStream<AppError>, AppError> {
    use tokio_stream::StreamExt;

    use crate::domain::ticket_ref;
    use crate::engine::pipeline::{ChatEvent, FailureKind};
    use crate::store::tickets;

    let state = super::state()?;
    // Reject bad input before a ticket is created for it.
    state.pipeline.validate_customer_text(&text)?;
    let session = session().await?;
    let ticket_id = match current_ticket(&session).await? {
        Some(id) if tickets::get(&state.pool, id).await?.is_some() => id,
        _ => {
            let id = uuid::Uuid::new_v4();
            tickets::create_widget_ticket(&state.pool, id).await?;
            session.insert(TICKET_KEY, id).await.map_err(|e| {
                tracing::error!(error = %e, "session store failed");
                AppError::Unavailable("Your conversation could not be saved. Please try again shortly.".into())
            })?;
            id
        }
    };
    // the widget has no key: its client address is what gets rate limited
    let ip = leptos_axum::extract::<axum::extract::ConnectInfo<std::net::SocketAddr>>().await.ok().map(|c| c.0.ip());
    let subjects = crate::engine::limits::Subjects { ip, ..Default::default() };
    let events = state.pipeline.ticket_message(ticket_id, &text, subjects).await?;
    let reference = ticket_ref(&ticket_id);
    let lines = tokio_stream::wrappers::ReceiverStream::new(events).filter_map(move |event| {
        let event = match event {
            ChatEvent::Routed(r) => StreamEvent::Started {
                ticket_id,
                ticket_ref: reference.clone(),
                request_id: r.request_id,
                complexity: r.classification.map(|c| c.complexity),
                tier: r.tier,
                model: r.model,
            },
            ChatEvent::Delta(text) => StreamEvent::Delta { text },
            ChatEvent::Finished(o) => StreamEvent::Done {
                message_id: o.message_id,
                model: o.model,
                input_tokens: o.usage.input_tokens,
                output_tokens: o.usage.output_tokens,
                cost_micros: o.cost_micros,
                latency_ms: o.latency_ms,
                ttft_ms: o.ttft_ms,
            },
            ChatEvent::Failed { message, kind } => {
                StreamEvent::Error { message, partial: kind == FailureKind::Interrupted }
            }
            // The widget offers no tools; a model's tool call is not shown.
            ChatEvent::ToolCall { .. } | ChatEvent::Answering { .. } => return None,
        };
        let mut line = serde_json::to_string(&event).unwrap_or_default();
        line.push('\n');
        Some(Ok::<_, AppError>(line))
    });
    Ok(ByteStream::new(lines))
}
