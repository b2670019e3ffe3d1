//! The customer chat's server functions. The ticket lives in the visitor's
//! session (tower-sessions, stored in Postgres), so a reload restores it.
//! `send_message` streams; `send_message_form` is the same turn for a plain
//! HTML form (no JavaScript): it waits for the answer, and the browser is
//! sent back to the page, which shows it.

use leptos::prelude::*;
use leptos::server_fn::codec::{ByteStream, Streaming};
use uuid::Uuid;

use super::AppError;
use super::types::Conversation;
#[cfg(feature = "ssr")]
use super::types::{MessageView, StreamEvent};

/// Longest feedback comment kept, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

#[cfg(feature = "ssr")]
const TICKET_KEY: &str = "ticket_id";
/// A one-time message for a visitor without JavaScript (set by a form post,
/// shown by the next page load).
#[cfg(feature = "ssr")]
const NOTICE_KEY: &str = "notice";

#[cfg(feature = "ssr")]
async fn session() -> Result<tower_sessions::Session, AppError> {
    leptos_axum::extract::<tower_sessions::Session>().await.map_err(|e| {
        tracing::error!(error = %e, "no session layer");
        AppError::Internal
    })
}

#[cfg(feature = "ssr")]
fn session_failed(e: tower_sessions::session::Error) -> AppError {
    tracing::error!(error = %e, "session store failed");
    AppError::Unavailable("Your conversation could not be loaded. Please try again shortly.".into())
}

/// The session's ticket, if it still exists.
#[cfg(feature = "ssr")]
async fn current_ticket(
    state: &crate::state::AppState,
    session: &tower_sessions::Session,
) -> Result<Option<crate::store::tickets::Ticket>, AppError> {
    let Some(id) = session.get::<Uuid>(TICKET_KEY).await.map_err(session_failed)? else {
        return Ok(None);
    };
    Ok(crate::store::tickets::get(&state.pool, id).await?)
}

/// The session's ticket, created on first use.
#[cfg(feature = "ssr")]
async fn ticket_for_session(
    state: &crate::state::AppState,
    session: &tower_sessions::Session,
) -> Result<Uuid, AppError> {
    if let Some(ticket) = current_ticket(state, session).await? {
        return Ok(ticket.id);
    }
    // random, not time-ordered: the first 8 hex digits are the ticket's reference
    let id = Uuid::new_v4();
    crate::store::tickets::create_widget_ticket(&state.pool, id).await?;
    session.insert(TICKET_KEY, id).await.map_err(session_failed)?;
    Ok(id)
}

/// What the widget is limited by: it has no key, so its client address.
#[cfg(feature = "ssr")]
async fn widget_subjects() -> crate::engine::limits::Subjects {
    let ip = leptos_axum::extract::<axum::extract::ConnectInfo<std::net::SocketAddr>>().await.ok().map(|c| c.0.ip());
    crate::engine::limits::Subjects { ip, ..Default::default() }
}

/// What a customer is told when the turn failed; engine details stay in
/// the logs and the admin view.
#[cfg(feature = "ssr")]
fn customer_failure(kind: crate::engine::pipeline::FailureKind) -> String {
    use crate::engine::pipeline::FailureKind;
    match kind {
        FailureKind::Interrupted => "The answer was cut off. You can try again.".into(),
        FailureKind::BadRequest => "We couldn't answer that message. Try rewording it.".into(),
        FailureKind::Unavailable => {
            "Our assistant can't answer right now. Your message is still in the box; please try again in a moment."
                .into()
        }
    }
}

/// The visitor's current conversation (empty before the first message).
#[server(endpoint = "load_conversation")]
pub async fn load_conversation() -> Result<Conversation, AppError> {
    use crate::domain::ticket_ref;
    use crate::store::messages;

    let state = super::state()?;
    let session = session().await?;
    let notice = session.remove::<String>(NOTICE_KEY).await.map_err(session_failed)?;
    let Some(ticket) = current_ticket(&state, &session).await? else {
        return Ok(Conversation { status: "open".into(), notice, ..Conversation::default() });
    };
    let messages = messages::history(&state.pool, ticket.id).await?;
    Ok(Conversation {
        ticket_id: Some(ticket.id),
        ticket_ref: Some(ticket_ref(&ticket.id)),
        status: ticket.status,
        notice,
        messages: messages
            .into_iter()
            .map(|m| MessageView {
                id: m.id,
                role: m.role,
                content: m.content,
                status: m.status,
                created_at: m.created_at,
                rating: m.rating,
                comment: m.comment,
            })
            .collect(),
    })
}

/// Starts a fresh conversation; the old ticket stays in the records.
#[server(endpoint = "new_conversation")]
pub async fn new_conversation() -> Result<(), AppError> {
    let session = session().await?;
    session.remove::<Uuid>(TICKET_KEY).await.map_err(session_failed)?;
    Ok(())
}

/// "Talk to a person": marks the ticket for a human and returns its
/// reference, creating the ticket if nothing was asked yet.
#[server(endpoint = "request_human")]
pub async fn request_human() -> Result<String, AppError> {
    use crate::store::tickets;

    let state = super::state()?;
    let session = session().await?;
    let id = ticket_for_session(&state, &session).await?;
    tickets::escalate(&state.pool, id).await?;
    tracing::info!(ticket = %id, "customer asked for a person");
    Ok(crate::domain::ticket_ref(&id))
}

/// Thumbs up (1) or down (-1) on an answer of the visitor's own ticket,
/// with an optional comment. Sending again changes it.
#[server(endpoint = "give_feedback")]
pub async fn give_feedback(message_id: Uuid, rating: i16, comment: Option<String>) -> Result<(), AppError> {
    use crate::store::feedback;

    if rating != 1 && rating != -1 {
        return Err(AppError::BadRequest("rating must be 1 (helpful) or -1 (not helpful)".into()));
    }
    let comment = comment.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    if comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        return Err(AppError::BadRequest(format!("Please keep the comment under {MAX_COMMENT_CHARS} characters.")));
    }
    let state = super::state()?;
    let session = session().await?;
    let Some(ticket) = current_ticket(&state, &session).await? else {
        return Err(AppError::NotFound("That answer is not part of your conversation.".into()));
    };
    if !feedback::upsert(&state.pool, ticket.id, message_id, rating, comment.as_deref()).await? {
        return Err(AppError::NotFound("That answer is not part of your conversation.".into()));
    }
    Ok(())
}

/// Sends a customer message and streams the answer as JSON lines
/// (`StreamEvent`): `started`, `delta`…, then `done` or `error`.
#[server(endpoint = "send_message", output = Streaming)]
pub async fn send_message(text: String) -> Result<ByteStream<AppError>, AppError> {
    use tokio_stream::StreamExt;

    use crate::domain::ticket_ref;
    use crate::engine::pipeline::ChatEvent;

    let state = super::state()?;
    // Reject bad input before a ticket is created for it.
    state.pipeline.validate_customer_text(&text)?;
    let session = session().await?;
    let ticket_id = ticket_for_session(&state, &session).await?;
    let events = state.pipeline.ticket_message(ticket_id, &text, widget_subjects().await).await?;
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
                at: chrono::Utc::now(),
                model: o.model,
                input_tokens: o.usage.input_tokens,
                output_tokens: o.usage.output_tokens,
                cost_micros: o.cost_micros,
                latency_ms: o.latency_ms,
                ttft_ms: o.ttft_ms,
            },
            ChatEvent::Failed { kind, .. } => StreamEvent::Error {
                message: customer_failure(kind),
                partial: kind == crate::engine::pipeline::FailureKind::Interrupted,
            },
            // The widget offers no tools; a model's tool call is not shown.
            ChatEvent::ToolCall { .. } | ChatEvent::Answering { .. } => return None,
        };
        let mut line = serde_json::to_string(&event).unwrap_or_default();
        line.push('\n');
        Some(Ok::<_, AppError>(line))
    });
    Ok(ByteStream::new(lines))
}

/// The message form without JavaScript: runs the turn to its end. The
/// browser is then redirected back to the page (leptos_axum does that for
/// plain form posts), which shows the answer, or the problem as a notice.
#[server(endpoint = "send_message_form")]
pub async fn send_message_form(text: String) -> Result<(), AppError> {
    use crate::engine::pipeline::ChatEvent;

    let state = super::state()?;
    let session = session().await?;
    let outcome = async {
        state.pipeline.validate_customer_text(&text)?;
        let ticket_id = ticket_for_session(&state, &session).await?;
        let mut events = state.pipeline.ticket_message(ticket_id, &text, widget_subjects().await).await?;
        while let Some(event) = events.recv().await {
            if let ChatEvent::Failed { kind, .. } = event {
                return Err(AppError::Unavailable(customer_failure(kind)));
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        session.insert(NOTICE_KEY, e.to_string()).await.map_err(session_failed)?;
    }
    Ok(())
}
