//! One chat request, start to finish. The order, assembled in `Pipeline::run`:
//!
//! 1. **validate** the conversation (non-empty, ends with a user turn);
//! 2. **classify** the last user message (`model: auto`), or take the named model;
//! 3. **route**: complexity → tier → ordered candidate models;
//! 4. **persist** the customer's message in its ticket, before any model runs,
//!    so nothing the customer typed is lost if generation fails;
//! 5. **generate** on the first candidate, streaming deltas to the caller; a
//!    candidate that fails before its first token falls back to the next;
//! 6. **record** one `llm_calls` row per attempt through the call log, and the
//!    answer as a ticket message, even when the caller has gone away.
//!
//! Steps 5–6 run in their own task: a client that disconnects stops the
//! model early but never loses the record of what was spent.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::call_log::CallLog;
use super::classify::{Classification, Classifier};
use super::pricing::{Catalog, ModelEntry, Usage};
use super::providers::{ChatMessage, ProviderError, ProviderEvent, ProviderRequest, Providers, Role};
use super::route::{RouteDecision, Router};
use crate::config::{ChatConfig, Config};
use crate::domain::{CacheStatus, CallStatus, Tier};
use crate::store::llm_calls::CallRecord;
use crate::store::messages::{self, NewMessage};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("unknown model {0:?}")]
    UnknownModel(String),
    #[error("storage unavailable")]
    Store(#[from] sqlx::Error),
}

/// Which model answers: the router's choice, or one named by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelChoice {
    Auto,
    Named(String),
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub request_id: Uuid,
    pub ticket_id: Option<Uuid>,
    pub user_id: Option<String>,
    pub api_key_id: Option<Uuid>,
    /// The whole prompt: system message, history, and the new user turn last.
    pub messages: Vec<ChatMessage>,
    pub model: ModelChoice,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub properties: serde_json::Map<String, serde_json::Value>,
    /// Store the new user turn and the answer in the ticket.
    pub persist: bool,
}

/// What the router decided, sent before the first token.
#[derive(Debug, Clone)]
pub struct Routed {
    pub request_id: Uuid,
    pub classification: Option<Classification>,
    pub tier: Option<Tier>,
    /// The candidate that will be tried first.
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub request_id: Uuid,
    pub model: String,
    pub provider: String,
    pub usage: Usage,
    pub cost_micros: i64,
    pub latency_ms: u32,
    pub ttft_ms: Option<u32>,
    pub attempts: u32,
    /// The stored answer, when the request belongs to a ticket.
    pub message_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub enum ChatEvent {
    Routed(Routed),
    Delta(String),
    Finished(Outcome),
    /// The request ended without a complete answer. `partial` is true when
    /// some text was already streamed.
    Failed {
        message: String,
        partial: bool,
    },
}

pub struct Pipeline {
    chat: ChatConfig,
    classifier: Classifier,
    router: Router,
    catalog: Catalog,
    providers: Providers,
    pool: PgPool,
    call_log: CallLog,
    /// Generations in flight, so shutdown can let them finish.
    tasks: TaskTracker,
}

impl Pipeline {
    pub fn new(config: &Config, providers: Providers, pool: PgPool, call_log: CallLog) -> Arc<Self> {
        let catalog = Catalog::from_config(config);
        Arc::new(Pipeline {
            chat: config.chat.clone(),
            classifier: Classifier::from_kind(config.classifier.kind),
            router: Router::new(config.routing.clone(), catalog.clone()),
            catalog,
            providers,
            pool,
            call_log,
            tasks: TaskTracker::new(),
        })
    }

    /// Waits (up to `timeout`) for generations in flight to finish and queue
    /// their rows. Called once the HTTP server has stopped taking requests.
    pub async fn wait_idle(&self, timeout: std::time::Duration) {
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait()).await.is_err() {
            tracing::warn!(in_flight = self.tasks.len(), "generations still running at shutdown");
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn call_log(&self) -> &CallLog {
        &self.call_log
    }

    /// Checks a customer's message before anything is stored.
    pub fn validate_customer_text(&self, text: &str) -> Result<(), PipelineError> {
        if text.trim().is_empty() {
            return Err(PipelineError::InvalidRequest("Please type a message first.".into()));
        }
        let chars = text.chars().count();
        if chars > self.chat.max_message_chars {
            return Err(PipelineError::InvalidRequest(format!(
                "That message is too long ({chars} characters; the limit is {}).",
                self.chat.max_message_chars
            )));
        }
        Ok(())
    }

    /// A new customer message in a ticket: history from the ticket, the
    /// configured system prompt, then `run`.
    pub async fn ticket_message(
        &self,
        ticket_id: Uuid,
        text: &str,
    ) -> Result<mpsc::Receiver<ChatEvent>, PipelineError> {
        self.validate_customer_text(text)?;
        let history = messages::recent(&self.pool, ticket_id, (self.chat.history_turns * 2) as i64).await?;
        let mut prompt = vec![ChatMessage::new(Role::System, self.chat.system_prompt.clone())];
        prompt.extend(history.into_iter().filter_map(|m| {
            let role = match m.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                _ => return None,
            };
            Some(ChatMessage::new(role, m.content))
        }));
        prompt.push(ChatMessage::new(Role::User, text.trim()));
        self.run(ChatRequest {
            request_id: Uuid::new_v4(),
            ticket_id: Some(ticket_id),
            user_id: None,
            api_key_id: None,
            messages: prompt,
            model: ModelChoice::Auto,
            max_tokens: None,
            temperature: None,
            properties: Default::default(),
            persist: true,
        })
        .await
    }

    pub async fn run(&self, request: ChatRequest) -> Result<mpsc::Receiver<ChatEvent>, PipelineError> {
        let started = Instant::now();
        // 1. validate
        let Some(last) = request.messages.last().filter(|m| m.role == Role::User) else {
            return Err(PipelineError::InvalidRequest("the conversation must end with a user message".into()));
        };
        // 2–3. classify and route
        let (classification, decision) = match &request.model {
            ModelChoice::Auto => {
                let c = self.classifier.classify(&last.content);
                let d = self.router.route(c.complexity);
                (Some(c), Some(d))
            }
            ModelChoice::Named(name) => {
                if self.catalog.get(name).is_none() {
                    return Err(PipelineError::UnknownModel(name.clone()));
                }
                (None, None)
            }
        };
        let candidates: Vec<ModelEntry> = match (&decision, &request.model) {
            (Some(d), _) => d.candidates.iter().filter_map(|n| self.catalog.get(n).cloned()).collect(),
            (None, ModelChoice::Named(name)) => self.catalog.get(name).cloned().into_iter().collect(),
            (None, ModelChoice::Auto) => unreachable!("auto always has a decision"),
        };
        // 4. persist the customer's turn
        if request.persist
            && let Some(ticket_id) = request.ticket_id
        {
            messages::insert(
                &self.pool,
                &NewMessage {
                    id: Uuid::new_v4(),
                    ticket_id,
                    role: "user",
                    content: &last.content,
                    request_id: Some(request.request_id),
                    status: "ok",
                },
            )
            .await?;
        }
        // 5–6. generate and record, in a task of its own
        let (tx, rx) = mpsc::channel(64);
        let job = Generation {
            request,
            classification,
            decision,
            candidates,
            providers: self.providers.clone(),
            pool: self.pool.clone(),
            call_log: self.call_log.clone(),
            started,
        };
        self.tasks.spawn(job.run(tx));
        Ok(rx)
    }
}

/// Steps 5–6 for one request.
struct Generation {
    request: ChatRequest,
    classification: Option<Classification>,
    decision: Option<RouteDecision>,
    candidates: Vec<ModelEntry>,
    providers: Providers,
    pool: PgPool,
    call_log: CallLog,
    started: Instant,
}

/// How one attempt ended.
struct Attempt {
    text: String,
    usage: Option<Usage>,
    ttft_ms: Option<u32>,
    error: Option<ProviderError>,
    cancelled: bool,
}

impl Generation {
    async fn run(self, tx: mpsc::Sender<ChatEvent>) {
        let first = self.candidates.first().map(|m| m.name.clone()).unwrap_or_default();
        let _ = tx
            .send(ChatEvent::Routed(Routed {
                request_id: self.request.request_id,
                classification: self.classification.clone(),
                tier: self.decision.as_ref().map(|d| d.tier),
                model: first,
            }))
            .await;

        let mut last_error = String::from("no model is configured for this tier");
        for (index, model) in self.candidates.iter().enumerate() {
            let attempt_no = index as u32 + 1;
            let attempt_started = Instant::now();
            let provider_request = ProviderRequest {
                upstream_model: model.upstream_model.clone(),
                messages: self.request.messages.clone(),
                max_tokens: self.request.max_tokens,
                temperature: self.request.temperature,
            };
            let attempt = match self.providers.stream(model, provider_request) {
                Ok(events) => stream_attempt(events, &tx, attempt_started).await,
                Err(e) => Attempt { text: String::new(), usage: None, ttft_ms: None, error: Some(e), cancelled: false },
            };
            let latency_ms = attempt_started.elapsed().as_millis() as u32;

            // Failed before the first token: invisible to the customer, so
            // record it and fall back to the next candidate.
            if let Some(e) = &attempt.error
                && attempt.text.is_empty()
            {
                last_error = e.to_string();
                self.record(model, attempt_no, &attempt, latency_ms, CallStatus::Error);
                if e.is_retryable() {
                    continue;
                }
                break;
            }

            let status = if attempt.cancelled {
                CallStatus::Cancelled
            } else if attempt.error.is_some() {
                CallStatus::Error
            } else {
                CallStatus::Ok
            };
            let (usage, cost_micros) = self.record(model, attempt_no, &attempt, latency_ms, status);
            let message_id = self.persist_answer(&attempt.text, status).await;
            let event = match &attempt.error {
                Some(e) => ChatEvent::Failed { message: format!("The answer was interrupted: {e}"), partial: true },
                None => ChatEvent::Finished(Outcome {
                    request_id: self.request.request_id,
                    model: model.name.clone(),
                    provider: model.provider.as_str().to_string(),
                    usage,
                    cost_micros,
                    latency_ms: self.started.elapsed().as_millis() as u32,
                    ttft_ms: attempt.ttft_ms,
                    attempts: attempt_no,
                    message_id,
                }),
            };
            let _ = tx.send(event).await;
            return;
        }
        let _ = tx
            .send(ChatEvent::Failed {
                message: format!("Sorry, no model could answer right now ({last_error}). Please try again."),
                partial: false,
            })
            .await;
    }

    /// Queues the attempt's `llm_calls` row; returns the usage and cost recorded.
    fn record(
        &self,
        model: &ModelEntry,
        attempt_no: u32,
        attempt: &Attempt,
        latency_ms: u32,
        status: CallStatus,
    ) -> (Usage, i64) {
        let usage = attempt.usage.unwrap_or_else(|| estimate_usage(&self.request.messages, &attempt.text));
        let cost_micros = model.price.cost_micros(&usage);
        let c = self.classification.as_ref();
        let d = self.decision.as_ref();
        self.call_log.record(CallRecord {
            id: Uuid::new_v4(),
            request_id: self.request.request_id,
            ticket_id: self.request.ticket_id,
            api_key_id: self.request.api_key_id,
            user_id: self.request.user_id.clone(),
            kind: "generate",
            classifier: c.map(|c| c.classifier.to_string()),
            complexity: c.map(|c| c.complexity.to_string()),
            confidence: c.map(|c| c.confidence),
            reason: c.map(|c| c.reason.clone()),
            tier: d.map(|d| d.tier.to_string()),
            policy: d.map(|d| d.policy.as_str().to_string()),
            model: model.name.clone(),
            provider: model.provider.as_str().to_string(),
            input_tokens: usage.input_tokens as i32,
            output_tokens: usage.output_tokens as i32,
            cached_tokens: usage.cached_tokens as i32,
            tokens_estimated: usage.estimated,
            cost_micros,
            saved_micros: 0,
            latency_ms: latency_ms as i32,
            ttft_ms: attempt.ttft_ms.map(|t| t as i32),
            cache_status: CacheStatus::None.to_string(),
            attempt: attempt_no as i32,
            status: status.to_string(),
            error: attempt.error.as_ref().map(ToString::to_string),
            experiment_id: None,
            variant: None,
            properties: serde_json::Value::Object(self.request.properties.clone()),
            created_at: Utc::now(),
        });
        (usage, cost_micros)
    }

    async fn persist_answer(&self, text: &str, status: CallStatus) -> Option<Uuid> {
        let ticket_id = self.request.ticket_id.filter(|_| self.request.persist)?;
        if text.is_empty() {
            return None;
        }
        let id = Uuid::new_v4();
        let message = NewMessage {
            id,
            ticket_id,
            role: "assistant",
            content: text,
            request_id: Some(self.request.request_id),
            status: status.as_str(),
        };
        match messages::insert(&self.pool, &message).await {
            Ok(_) => Some(id),
            Err(e) => {
                tracing::error!(error = %e, %ticket_id, "could not store the answer");
                None
            }
        }
    }
}

async fn stream_attempt(
    mut events: super::providers::EventReceiver,
    tx: &mpsc::Sender<ChatEvent>,
    started: Instant,
) -> Attempt {
    let mut attempt = Attempt { text: String::new(), usage: None, ttft_ms: None, error: None, cancelled: false };
    while let Some(event) = events.recv().await {
        match event {
            Ok(ProviderEvent::Delta(delta)) => {
                if attempt.ttft_ms.is_none() {
                    attempt.ttft_ms = Some(started.elapsed().as_millis() as u32);
                }
                attempt.text.push_str(&delta);
                if tx.send(ChatEvent::Delta(delta)).await.is_err() {
                    attempt.cancelled = true; // dropping `events` stops the model
                    break;
                }
            }
            Ok(ProviderEvent::Usage(usage)) => attempt.usage = Some(usage),
            Err(e) => {
                attempt.error = Some(e);
                break;
            }
        }
    }
    if !attempt.cancelled && attempt.error.is_none() && attempt.usage.is_none() && attempt.text.is_empty() {
        attempt.error = Some(ProviderError::Generation("the model returned nothing".into()));
    }
    attempt
}

/// Used only when a provider reported no usage (a stream cut short): about
/// four characters per token, marked as estimated on the row.
fn estimate_usage(prompt: &[ChatMessage], answer: &str) -> Usage {
    let chars: usize = prompt.iter().map(|m| m.content.chars().count() + 8).sum();
    Usage {
        input_tokens: chars.div_ceil(4) as u32,
        output_tokens: answer.chars().count().div_ceil(4) as u32,
        cached_tokens: 0,
        estimated: true,
    }
}
