//! Upstream model providers behind one streaming interface. A provider turns
//! a `ProviderRequest` into a stream of `ProviderEvent`s: text deltas, then
//! exactly one `Usage` at the end when the provider reports it.

pub mod local;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::pricing::{ModelEntry, Usage};
use crate::config::ProviderKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage { role, content: content.into() }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderRequest {
    pub upstream_model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    Delta(String),
    Usage(Usage),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("model {0} is not available: {1}")]
    Unavailable(String, String),
    #[error("the local model is busy ({0} requests waiting); try again shortly")]
    Overloaded(usize),
    #[error("the conversation is too long for the model ({tokens} tokens, limit {limit})")]
    ContextTooLong { tokens: usize, limit: usize },
    #[error("generation failed: {0}")]
    Generation(String),
}

impl ProviderError {
    /// Whether another attempt (same or other candidate) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Unavailable(..) | ProviderError::Overloaded(_) | ProviderError::Generation(_))
    }
}

pub type EventReceiver = mpsc::Receiver<Result<ProviderEvent, ProviderError>>;

/// Every configured provider client, by kind.
#[derive(Clone, Default)]
pub struct Providers {
    pub local: Option<Arc<local::LocalModel>>,
}

impl Providers {
    /// Starts a streamed completion on the provider that serves `model`.
    pub fn stream(&self, model: &ModelEntry, request: ProviderRequest) -> Result<EventReceiver, ProviderError> {
        match model.provider {
            ProviderKind::Local => match &self.local {
                Some(local) => local.generate(request),
                None => Err(ProviderError::Unavailable(model.name.clone(), "the local model is not loaded".into())),
            },
        }
    }
}
