//! One chat request, start to finish. The order, assembled in `Pipeline::run`:
//!
//! 1. **validate** the conversation (non-empty, ends with a user turn);
//! 2. **limits**: rate limits and budgets, before any work;
//! 3. **cache**: an exact (or, opted in, semantic) hit is replayed as a
//!    stream and recorded as a `hit` row; nothing below runs;
//! 4. **classify** the last user message (`model: auto`), or take the named model;
//! 5. **route**: complexity → tier (ticket floor, escalation, forced tier) →
//!    candidate models, ordered by the tier's policy and health, ending with
//!    the tier's last resorts;
//! 6. **persist** the customer's message in its ticket, before any model runs,
//!    so nothing the customer typed is lost if generation fails;
//! 7. **generate**: for each candidate whose circuit admits it, attempt and,
//!    on a failure before the first token, retry with exponential backoff and
//!    full jitter (honouring `Retry-After`) or fall back to the next candidate,
//!    then optionally to the tier above, all within one deadline. Once a token
//!    has gone out there is no retry: a broken stream ends with an error event;
//! 8. **record** one `llm_calls` row per attempt through the call log, the
//!    answer as a ticket message, and a good answer in the cache, even when
//!    the caller has gone away.
//!
//! Steps 7–8 run in their own task: a client that disconnects stops the
//! model early but never loses the record of what was spent.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::cache::{Cache, CacheControl, Entry, HitKind, Lookup, Probe};
use super::call_log::CallLog;
use super::classify::{Classification, Classifier};
use super::escalation::{self, Signal};
use super::experiments::{ExperimentCache, Variant};
use super::limits::{self, Granted, LimitError, Limiter, Subjects};
use super::pricing::{Catalog, ModelEntry, Usage};
use super::providers::health::{Admission, Health, backoff};
use super::providers::local::TokenCounter;
use super::providers::{
    AttemptLimits, ChatMessage, EventReceiver, ProviderError, ProviderEvent, ProviderRequest, Providers, Recovery,
    Role, ToolChoice, ToolSpec,
};
use super::route::{RouteDecision, RouteHints, Router};
use crate::config::{ChatConfig, Config, ProviderKind, ResilienceConfig, RoutingConfig};
use crate::domain::{CacheStatus, CallStatus, Tier};
use crate::store::llm_calls::CallRecord;
use crate::store::messages::{self, NewMessage};
use crate::store::tickets;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("unknown model {0:?}")]
    UnknownModel(String),
    #[error(transparent)]
    Limited(LimitError),
    #[error("storage unavailable")]
    Store(#[from] sqlx::Error),
}

impl From<LimitError> for PipelineError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::Store(e) => PipelineError::Store(e),
            other => PipelineError::Limited(other),
        }
    }
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
    pub top_p: Option<f32>,
    pub stop: Vec<String>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: Option<ToolChoice>,
    pub properties: serde_json::Map<String, serde_json::Value>,
    /// Store the new user turn and the answer in the ticket.
    pub persist: bool,
    /// A trusted caller's tier (`model: auto` only).
    pub forced_tier: Option<Tier>,
    /// Only these models may answer (`model: auto` only).
    pub router_candidates: Option<Vec<String>>,
    /// Who the request counts against for rate limits and budgets.
    pub subjects: Subjects,
    pub cache: CacheControl,
    /// Whose cache entries this request may see: set for the widget;
    /// otherwise the API key, or `anonymous`.
    pub cache_scope: Option<String>,
    /// The running experiment and the arm ("A" or "B") this ticket is in;
    /// set by the pipeline.
    pub experiment: Option<(Uuid, &'static str)>,
    /// The caller waits for the whole answer (a non-streaming API call): an
    /// attempt's output is held until it completes, so a stream cut midway
    /// is retried or falls back instead of failing the request.
    pub buffered: bool,
}

impl ChatRequest {
    /// A request with defaults for everything but the conversation.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            request_id: Uuid::now_v7(),
            ticket_id: None,
            user_id: None,
            api_key_id: None,
            messages,
            model: ModelChoice::Auto,
            max_tokens: None,
            temperature: None,
            top_p: None,
            stop: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
            properties: Default::default(),
            persist: false,
            forced_tier: None,
            router_candidates: None,
            subjects: Subjects::default(),
            cache: CacheControl::default(),
            cache_scope: None,
            experiment: None,
            buffered: false,
        }
    }
}

/// What the router decided, sent before the first token.
#[derive(Debug, Clone)]
pub struct Routed {
    pub request_id: Uuid,
    pub classification: Option<Classification>,
    pub tier: Option<Tier>,
    /// The full routing decision (`model: auto`).
    pub decision: Option<RouteDecision>,
    /// What the cache did: `hit` replays a stored answer.
    pub cache: CacheStatus,
    /// The candidate that will be tried first.
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub request_id: Uuid,
    pub model: String,
    pub provider: String,
    /// The tier of the pool that answered (after any fallback upward).
    pub tier: Option<Tier>,
    pub usage: Usage,
    pub cost_micros: i64,
    pub latency_ms: u32,
    pub ttft_ms: Option<u32>,
    /// Upstream attempts made, this one included.
    pub attempts: u32,
    pub finish_reason: String,
    /// The stored answer, when the request belongs to a ticket.
    pub message_id: Option<Uuid>,
}

/// Why a request ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Every candidate failed, or the deadline passed.
    Unavailable,
    /// The provider said the request itself is wrong.
    BadRequest,
    /// The stream broke after some text went out.
    Interrupted,
}

#[derive(Debug, Clone)]
pub enum ChatEvent {
    Routed(Routed),
    /// Sent once, before the first delta or tool call: the model whose
    /// output follows (after any retries and fallbacks).
    Answering {
        model: String,
        tier: Option<Tier>,
    },
    Delta(String),
    ToolCall {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    Finished(Outcome),
    Failed {
        message: String,
        kind: FailureKind,
    },
}

/// What the pipeline is built from.
pub struct Dependencies {
    pub classifier: Classifier,
    pub providers: Providers,
    pub pool: PgPool,
    pub call_log: CallLog,
    pub tokens: Arc<TokenCounter>,
    pub limiter: Limiter,
    pub cache: Arc<Cache>,
}

pub struct Pipeline {
    chat: ChatConfig,
    classifier: Classifier,
    router_config: RoutingConfig,
    /// What every generation needs, built once: a request takes an `Arc`
    /// of it instead of cloning the catalog, router and providers.
    ctx: Arc<GenerationContext>,
    experiments: Arc<ExperimentCache>,
    /// Generations in flight, so shutdown can let them finish.
    tasks: TaskTracker,
}

impl Pipeline {
    pub fn new(config: &Config, deps: Dependencies) -> Arc<Self> {
        let catalog = Catalog::from_config(config);
        let available = catalog
            .iter()
            .filter(|m| match m.provider {
                ProviderKind::Local => deps.providers.local.is_some(),
                ProviderKind::Openai | ProviderKind::Anthropic => deps.providers.endpoints.contains_key(&m.name),
            })
            .map(|m| m.name.clone());
        let resilience = config.routing.resilience.clone();
        let experiments = Arc::new(ExperimentCache::new(deps.pool.clone()));
        Arc::new(Pipeline {
            chat: config.chat.clone(),
            classifier: deps.classifier,
            router_config: config.routing.clone(),
            ctx: Arc::new(GenerationContext {
                router: Router::new(config.routing.clone(), catalog.clone(), available),
                health: Arc::new(Health::new(
                    resilience.breaker_failures,
                    Duration::from_millis(resilience.breaker_cooldown_ms),
                )),
                resilience,
                catalog,
                providers: deps.providers,
                tokens: deps.tokens,
                call_log: deps.call_log,
                limiter: deps.limiter,
                cache: deps.cache,
                pool: deps.pool,
            }),
            experiments,
            tasks: TaskTracker::new(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.ctx.pool
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.ctx.cache
    }

    pub fn catalog(&self) -> &Catalog {
        &self.ctx.catalog
    }

    /// Whether `model` can be called here (its key is set, or it is local and loaded).
    pub fn is_available(&self, model: &str) -> bool {
        self.ctx.router.is_available(model)
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    pub fn experiments(&self) -> &ExperimentCache {
        &self.experiments
    }

    pub fn call_log(&self) -> &CallLog {
        &self.ctx.call_log
    }

    pub fn health(&self) -> &Health {
        &self.ctx.health
    }

    /// Waits (up to `timeout`) for generations in flight to finish and queue
    /// their rows. Called once the HTTP server has stopped taking requests.
    pub async fn wait_idle(&self, timeout: Duration) {
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait()).await.is_err() {
            tracing::warn!(in_flight = self.tasks.len(), "generations still running at shutdown");
        }
        self.tasks.reopen();
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
        subjects: Subjects,
    ) -> Result<mpsc::Receiver<ChatEvent>, PipelineError> {
        self.validate_customer_text(text)?;
        let history = messages::recent(&self.ctx.pool, ticket_id, (self.chat.history_turns * 2) as i64).await?;
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
        let mut request = ChatRequest::new(prompt);
        request.ticket_id = Some(ticket_id);
        request.persist = true;
        request.subjects = Subjects { ticket: Some(ticket_id), ..subjects };
        request.cache_scope = Some("widget".into());
        self.run(request).await
    }

    pub async fn run(&self, mut request: ChatRequest) -> Result<mpsc::Receiver<ChatEvent>, PipelineError> {
        let started = Instant::now();
        // 1. validate
        if !request.messages.last().is_some_and(|m| m.role == Role::User || m.role == Role::Tool) {
            return Err(PipelineError::InvalidRequest("the conversation must end with a user message".into()));
        }
        // 2. limits and budgets, before any work
        let prompt = limits::estimate_tokens(request.messages.iter().map(|m| m.content.as_str()));
        let granted = self.ctx.limiter.admit(&request.subjects, prompt).await?;
        self.apply_experiment(&mut request).await;
        // 3. cache
        let deterministic = request.temperature == Some(0.0);
        let lookup = self.ctx.cache.lookup(request.cache, deterministic, || cache_probe(&request)).await?;
        let (cache_status, cache_miss) = match lookup {
            Lookup::Hit(entry, kind) => return self.replay(request, entry, kind, started).await,
            Lookup::Miss { key, embedding, system_hash } => (CacheStatus::Miss, Some((key, embedding, system_hash))),
            Lookup::Bypass(_) if self.ctx.cache.config().enabled => (CacheStatus::Bypass, None),
            Lookup::Bypass(_) => (CacheStatus::None, None),
        };
        // 4–5. classify and route
        let mut hints = RouteHints {
            forced_tier: request.forced_tier,
            only: request.router_candidates.clone(),
            seed: request.request_id.as_u64_pair().1,
            ..RouteHints::default()
        };
        let (classification, decision) = match &request.model {
            ModelChoice::Auto => {
                let query = last_user_text(&request.messages);
                let (c, llm_call) = self.classifier.classify_with_llm(query, &self.ctx.providers).await;
                if let Some(call) = llm_call {
                    self.record_classify_call(&request, &call);
                }
                self.ticket_hints(&request, &mut hints).await?;
                let d = self.ctx.router.decide(c.complexity, &hints, &self.ctx.health);
                if d.candidates.is_empty() && request.router_candidates.is_some() {
                    return Err(PipelineError::InvalidRequest(
                        "none of the requested router_candidates can be called here".into(),
                    ));
                }
                (Some(c), Some(d))
            }
            ModelChoice::Named(name) => {
                if self.ctx.catalog.get(name).is_none() {
                    return Err(PipelineError::UnknownModel(name.clone()));
                }
                (None, None)
            }
        };
        // 6. persist the customer's turn
        store_customer_turn(&self.ctx.pool, &request).await?;
        // 7–8. generate and record, in a task of its own
        let (tx, rx) = mpsc::channel(64);
        let job = Generation {
            deadline: started + Duration::from_millis(self.ctx.resilience.deadline_ms),
            request,
            classification,
            decision,
            hints,
            granted,
            cache_status,
            cache_miss,
            started,
            ctx: self.ctx.clone(),
        };
        self.tasks.spawn(job.run(tx));
        Ok(rx)
    }
}

impl Pipeline {
    /// The classifying model's call is an LLM call like any other: one row.
    fn record_classify_call(&self, request: &ChatRequest, call: &super::classify::llm::LlmCall) {
        let usage = call.usage.unwrap_or_default();
        let (complexity, confidence, reason) = match &call.result {
            Ok(v) => (Some(v.complexity.to_string()), Some(v.confidence), Some(v.reason.clone())),
            Err(_) => (None, None, None),
        };
        self.ctx.call_log.record(CallRecord {
            id: Uuid::now_v7(),
            request_id: request.request_id,
            ticket_id: request.ticket_id,
            api_key_id: request.api_key_id,
            user_id: request.user_id.clone(),
            kind: "classify",
            classifier: Some(self.classifier.name().to_string()),
            complexity,
            confidence,
            reason,
            tier: None,
            policy: None,
            route: None,
            model: call.model.name.clone(),
            provider: call.model.provider.as_str().to_string(),
            input_tokens: usage.input_tokens as i32,
            output_tokens: usage.output_tokens as i32,
            cached_tokens: usage.cached_tokens as i32,
            tokens_estimated: usage.estimated,
            cost_micros: call.model.price.cost_micros(&usage),
            saved_micros: 0,
            latency_ms: call.latency.as_millis() as i32,
            ttft_ms: None,
            cache_status: CacheStatus::None.to_string(),
            attempt: 0,
            status: if call.result.is_ok() { CallStatus::Ok } else { CallStatus::Error }.to_string(),
            error: call.result.as_ref().err().cloned(),
            experiment_id: request.experiment.map(|e| e.0),
            variant: request.experiment.map(|e| e.1.to_string()),
            properties: serde_json::Value::Object(request.properties.clone()),
            created_at: Utc::now(),
        });
        if call.result.is_ok() {
            self.ctx.health.record_success(&call.model.name, call.latency);
        }
    }

    /// Puts a routed ticket into the running experiment's arm: the arm may
    /// fix the model or the tier. Requests that already chose are left alone.
    async fn apply_experiment(&self, request: &mut ChatRequest) {
        let (Some(ticket), ModelChoice::Auto, None, None) =
            (request.ticket_id, &request.model, request.forced_tier, &request.router_candidates)
        else {
            return;
        };
        let Some(experiment) = self.experiments.running().await else { return };
        let (arm, variant) = crate::engine::experiments::assign(&experiment, ticket);
        match variant {
            Variant::Routing => {}
            Variant::Model(m) if self.ctx.catalog.get(m).is_some() => request.model = ModelChoice::Named(m.clone()),
            Variant::Model(m) => {
                tracing::warn!(model = %m, "experiment names a model not in the catalog; routing instead");
                return;
            }
            Variant::Tier(t) => request.forced_tier = Some(*t),
        }
        request.experiment = Some((experiment.id, arm));
    }

    /// Serves a cached answer: streamed in pieces like a live one, stored in
    /// the ticket, and recorded as one `hit` row with the cost it saved.
    async fn replay(
        &self,
        request: ChatRequest,
        entry: Arc<Entry>,
        kind: HitKind,
        started: Instant,
    ) -> Result<mpsc::Receiver<ChatEvent>, PipelineError> {
        store_customer_turn(&self.ctx.pool, &request).await?;
        self.ctx.cache.count_hit(&entry.key);
        let reason = match kind {
            HitKind::Exact => "cache hit (exact)".to_string(),
            HitKind::Semantic { cosine } => format!("cache hit (semantic, cosine {cosine:.3})"),
        };
        let (tx, rx) = mpsc::channel(64);
        let (pool, call_log) = (self.ctx.pool.clone(), self.ctx.call_log.clone());
        self.tasks.spawn(async move {
            let routed = Routed {
                request_id: request.request_id,
                classification: None,
                tier: entry.tier,
                decision: None,
                cache: CacheStatus::Hit,
                model: entry.model.clone(),
            };
            let _ = tx.send(ChatEvent::Routed(routed)).await;
            let _ = tx.send(ChatEvent::Answering { model: entry.model.clone(), tier: entry.tier }).await;
            let ttft_ms = started.elapsed().as_millis() as u32;
            for piece in super::cache::replay_chunks(&entry.answer) {
                if tx.send(ChatEvent::Delta(piece)).await.is_err() {
                    break;
                }
            }
            let latency_ms = started.elapsed().as_millis() as u32;
            call_log.record(CallRecord {
                id: Uuid::now_v7(),
                request_id: request.request_id,
                ticket_id: request.ticket_id,
                api_key_id: request.api_key_id,
                user_id: request.user_id.clone(),
                kind: "generate",
                classifier: None,
                complexity: None,
                confidence: None,
                reason: Some(reason),
                tier: entry.tier.map(|t| t.to_string()),
                policy: None,
                route: None,
                model: entry.model.clone(),
                provider: "cache".into(),
                input_tokens: 0,
                output_tokens: 0,
                cached_tokens: 0,
                tokens_estimated: false,
                cost_micros: 0,
                saved_micros: entry.cost_micros,
                latency_ms: latency_ms as i32,
                ttft_ms: Some(ttft_ms as i32),
                cache_status: CacheStatus::Hit.to_string(),
                attempt: 1,
                status: CallStatus::Ok.to_string(),
                error: None,
                experiment_id: request.experiment.map(|e| e.0),
                variant: request.experiment.map(|e| e.1.to_string()),
                properties: serde_json::Value::Object(request.properties.clone()),
                created_at: Utc::now(),
            });
            let message_id = store_answer(&pool, &request, &entry.answer, CallStatus::Ok, entry.tier).await;
            let outcome = Outcome {
                request_id: request.request_id,
                model: entry.model.clone(),
                provider: "cache".into(),
                tier: entry.tier,
                usage: entry.usage,
                cost_micros: 0,
                latency_ms,
                ttft_ms: Some(ttft_ms),
                attempts: 0,
                finish_reason: entry.finish_reason.clone(),
                message_id,
            };
            let _ = tx.send(ChatEvent::Finished(outcome)).await;
        });
        Ok(rx)
    }

    /// The ticket's floor and the customer's escalation signals, for `auto`.
    async fn ticket_hints(&self, request: &ChatRequest, hints: &mut RouteHints) -> Result<(), PipelineError> {
        let routing = &self.router_config;
        if routing.sticky_turns > 0
            && let Some(ticket_id) = request.ticket_id
        {
            hints.ticket_floor =
                messages::recent_max_tier(&self.ctx.pool, ticket_id, routing.sticky_turns.into()).await?;
        }
        if routing.escalate_on_signals {
            let users: Vec<&str> =
                request.messages.iter().filter(|m| m.role == Role::User).map(|m| m.content.as_str()).collect();
            if let Some((latest, earlier)) = users.split_last() {
                let answered = request.messages.iter().any(|m| m.role == Role::Assistant);
                hints.escalation = escalation::detect(earlier, latest, answered);
            }
            if hints.escalation == Some(Signal::WantsHuman)
                && let Some(ticket_id) = request.ticket_id
            {
                tickets::escalate(&self.ctx.pool, ticket_id).await?;
            }
        }
        Ok(())
    }
}

/// The customer's new turn, in its ticket (when the request keeps one).
async fn store_customer_turn(pool: &PgPool, request: &ChatRequest) -> Result<(), PipelineError> {
    let Some(ticket_id) = request.ticket_id.filter(|_| request.persist) else { return Ok(()) };
    let Some(last) = request.messages.last().filter(|m| m.role == Role::User) else { return Ok(()) };
    let message = NewMessage {
        id: Uuid::now_v7(),
        ticket_id,
        role: "user",
        content: &last.content,
        request_id: Some(request.request_id),
        status: "ok",
        tier: None,
    };
    messages::insert(pool, &message).await?;
    Ok(())
}

/// The answer, in its ticket; a failure to store it is logged, not fatal
/// (the caller already has it). Returns the stored message's id.
async fn store_answer(
    pool: &PgPool,
    request: &ChatRequest,
    text: &str,
    status: CallStatus,
    tier: Option<Tier>,
) -> Option<Uuid> {
    let ticket_id = request.ticket_id.filter(|_| request.persist)?;
    if text.is_empty() {
        return None;
    }
    let id = Uuid::now_v7();
    let message = NewMessage {
        id,
        ticket_id,
        role: "assistant",
        content: text,
        request_id: Some(request.request_id),
        status: status.as_str(),
        tier: tier.map(Tier::as_str),
    };
    match messages::insert(pool, &message).await {
        Ok(_) => Some(id),
        Err(e) => {
            tracing::error!(error = %e, %ticket_id, "could not store the answer");
            None
        }
    }
}

/// Whose cache entries a request may see.
fn cache_scope(request: &ChatRequest) -> String {
    match (&request.cache_scope, request.api_key_id) {
        (Some(scope), _) => scope.clone(),
        (None, Some(key)) => format!("key:{key}"),
        (None, None) => "anonymous".into(),
    }
}

/// What the cache reads of a request: everything that shapes the answer.
fn cache_probe(request: &ChatRequest) -> Probe<'_> {
    let model = match &request.model {
        ModelChoice::Auto => "auto",
        ModelChoice::Named(name) => name.as_str(),
    };
    let shape = serde_json::json!({
        "model": model,
        "tier": request.forced_tier,
        "router_candidates": request.router_candidates,
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
    });
    Probe {
        scope: cache_scope(request),
        shape,
        system_prompt: request.messages.iter().find(|m| m.role == Role::System).map_or("", |m| m.content.as_str()),
        question: last_user_text(&request.messages),
        first_turn: super::cache::is_first_turn(request.messages.iter().map(|m| m.role)),
        control: request.cache,
    }
}

/// The text the classifier reads: the latest user turn.
fn last_user_text(messages: &[ChatMessage]) -> &str {
    messages.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str())
}

/// What a generation task needs from the pipeline, shared by every request.
struct GenerationContext {
    catalog: Catalog,
    router: Router,
    providers: Providers,
    health: Arc<Health>,
    tokens: Arc<TokenCounter>,
    resilience: ResilienceConfig,
    pool: PgPool,
    call_log: CallLog,
    limiter: Limiter,
    cache: Arc<Cache>,
}

/// Steps 5–6 for one request.
struct Generation {
    request: ChatRequest,
    classification: Option<Classification>,
    decision: Option<RouteDecision>,
    hints: RouteHints,
    granted: Granted,
    cache_status: CacheStatus,
    /// Where to keep the answer: key, question embedding, system prompt hash.
    cache_miss: Option<(String, Option<Vec<f32>>, String)>,
    started: Instant,
    deadline: Instant,
    ctx: Arc<GenerationContext>,
}

/// How one attempt ended.
#[derive(Default)]
struct Attempt {
    text: String,
    usage: Option<Usage>,
    ttft_ms: Option<u32>,
    finish_reason: Option<String>,
    error: Option<ProviderError>,
    cancelled: bool,
    /// Whether anything (text or a tool call) reached the caller.
    output_sent: bool,
    /// Whether the model called a tool (such answers are not cached).
    tool_calls: bool,
}

impl Attempt {
    fn failed(error: ProviderError) -> Self {
        Attempt { error: Some(error), ..Attempt::default() }
    }
}

/// What to do after a candidate's attempts.
enum Next {
    Done,
    /// Move on to the next candidate (with the error that made us).
    Candidate(String),
    Give(String, FailureKind),
}

impl Generation {
    async fn run(self, tx: mpsc::Sender<ChatEvent>) {
        let first_tier = self.decision.as_ref().map(|d| d.tier);
        let mut pool: Vec<String> = match (&self.decision, &self.request.model) {
            (Some(d), _) => d.candidates.clone(),
            (None, ModelChoice::Named(name)) => vec![name.clone()],
            (None, ModelChoice::Auto) => Vec::new(),
        };
        let _ = tx
            .send(ChatEvent::Routed(Routed {
                request_id: self.request.request_id,
                classification: self.classification.clone(),
                tier: first_tier,
                decision: self.decision.clone(),
                cache: self.cache_status,
                model: pool.first().cloned().unwrap_or_default(),
            }))
            .await;

        let mut tier = first_tier;
        let mut tried: HashSet<String> = HashSet::new();
        let mut attempt_no = 0u32;
        let mut last_error = String::from("no model is available for this request");
        loop {
            for name in std::mem::take(&mut pool) {
                if !tried.insert(name.clone()) {
                    continue;
                }
                let Some(model) = self.ctx.catalog.get(&name).cloned() else { continue };
                match self.try_model(&model, tier, &mut attempt_no, &tx).await {
                    Next::Done => return,
                    Next::Candidate(error) => last_error = error,
                    Next::Give(message, kind) => return self.fail(&tx, message, kind).await,
                }
                if Instant::now() >= self.deadline {
                    break;
                }
            }
            // Every candidate of this tier failed: one tier up, if allowed.
            let up = tier.and_then(Tier::up).filter(|_| self.ctx.resilience.fallback_tier_up);
            match up {
                Some(next) if Instant::now() < self.deadline => {
                    tier = Some(next);
                    pool = self.ctx.router.route_tier(next, &self.hints, &self.ctx.health).candidates;
                }
                _ => break,
            }
        }
        let message = if Instant::now() >= self.deadline {
            format!("Sorry, no model answered in time ({last_error}). Please try again.")
        } else {
            format!("Sorry, no model could answer right now ({last_error}). Please try again.")
        };
        self.fail(&tx, message, FailureKind::Unavailable).await;
    }

    /// Ends a request that failed. A question nothing was written for is
    /// marked unanswered in its ticket: the customer will send it again.
    async fn fail(&self, tx: &mpsc::Sender<ChatEvent>, message: String, kind: FailureKind) {
        if kind != FailureKind::Interrupted
            && self.request.persist
            && self.request.ticket_id.is_some()
            && let Err(e) = messages::mark_unanswered(&self.ctx.pool, self.request.request_id).await
        {
            tracing::error!(error = %e, "could not mark the question unanswered");
        }
        let _ = tx.send(ChatEvent::Failed { message, kind }).await;
    }

    /// Attempts one candidate, retrying it while that may help.
    async fn try_model(
        &self,
        model: &ModelEntry,
        tier: Option<Tier>,
        attempt_no: &mut u32,
        tx: &mpsc::Sender<ChatEvent>,
    ) -> Next {
        let r = &self.ctx.resilience;
        let mut retry = 0u32;
        loop {
            let admission = self.ctx.health.admit(&model.name);
            if admission == Admission::Rejected {
                return Next::Candidate(ProviderError::CircuitOpen(model.name.clone()).to_string());
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Next::Candidate("the request's deadline passed".into());
            }
            retry += 1;
            *attempt_no += 1;
            let attempt_started = Instant::now();
            let attempt = self.attempt(model, tier, tx, attempt_started).await;
            let latency = attempt_started.elapsed();

            let Some(error) = attempt.error.clone().filter(|_| !attempt.output_sent) else {
                // Output reached the caller: this attempt is the answer.
                self.finish(model, tier, *attempt_no, attempt, latency, tx).await;
                return Next::Done;
            };
            // Failed before any output: invisible to the caller so far.
            if attempt.cancelled {
                self.ctx.health.release_probe(&model.name);
                self.record(model, tier, *attempt_no, &attempt, latency, CallStatus::Cancelled);
                return Next::Done;
            }
            self.record(model, tier, *attempt_no, &attempt, latency, CallStatus::Error);
            if error.counts_against_model() {
                self.ctx.health.record_failure(&model.name);
            } else if admission == Admission::Probe {
                self.ctx.health.release_probe(&model.name);
            }
            tracing::info!(model = %model.name, attempt = *attempt_no, error = %error, "attempt failed");
            match error.recovery() {
                Recovery::Stop => {
                    return Next::Give(format!("The request was rejected: {error}"), FailureKind::BadRequest);
                }
                Recovery::Fallback => return Next::Candidate(error.to_string()),
                Recovery::Retry => {
                    if retry >= r.max_attempts_per_model {
                        return Next::Candidate(error.to_string());
                    }
                    let retry_after = error.retry_after();
                    if retry_after.is_some_and(|w| w > Duration::from_millis(r.max_retry_after_ms)) {
                        return Next::Candidate(error.to_string()); // too long to wait: fall back
                    }
                    let wait = backoff(
                        retry,
                        Duration::from_millis(r.backoff_base_ms),
                        Duration::from_millis(r.backoff_cap_ms),
                        retry_after,
                        rand::random::<f64>(),
                    );
                    if Instant::now() + wait >= self.deadline {
                        return Next::Candidate(error.to_string());
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        model: &ModelEntry,
        tier: Option<Tier>,
        tx: &mpsc::Sender<ChatEvent>,
        started: Instant,
    ) -> Attempt {
        let r = &self.ctx.resilience;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let limits = AttemptLimits {
            first_byte: Duration::from_millis(r.first_byte_timeout_ms).min(remaining),
            idle: Duration::from_millis(r.idle_timeout_ms),
        };
        let request = ProviderRequest {
            upstream_model: model.upstream_model.clone(),
            messages: self.request.messages.clone(),
            max_tokens: self.request.max_tokens,
            temperature: self.request.temperature,
            top_p: self.request.top_p,
            stop: self.request.stop.clone(),
            tools: self.request.tools.clone(),
            tool_choice: self.request.tool_choice.clone(),
        };
        match self.ctx.providers.stream(model, request, limits).await {
            Err(e) => Attempt::failed(e),
            Ok(events) => {
                // The local model queues: its wait counts against the
                // deadline, not the first-byte limit meant for networks.
                let first_wait = if model.provider == ProviderKind::Local { remaining } else { limits.first_byte };
                let answering = ChatEvent::Answering { model: model.name.clone(), tier };
                let timing = AttemptTiming { started, first_wait, idle: limits.idle };
                stream_attempt(events, tx, answering, timing, self.request.buffered).await
            }
        }
    }

    /// The attempt that produced output: record it, store the answer, and
    /// tell the caller how it ended.
    async fn finish(
        &self,
        model: &ModelEntry,
        tier: Option<Tier>,
        attempt_no: u32,
        attempt: Attempt,
        latency: Duration,
        tx: &mpsc::Sender<ChatEvent>,
    ) {
        let status = if attempt.cancelled {
            CallStatus::Cancelled
        } else if attempt.error.is_some() {
            CallStatus::Error
        } else {
            CallStatus::Ok
        };
        match status {
            CallStatus::Ok => self.ctx.health.record_success(&model.name, latency),
            CallStatus::Error => self.ctx.health.record_failure(&model.name),
            CallStatus::Cancelled => self.ctx.health.release_probe(&model.name),
        }
        let (usage, cost_micros) = self.record(model, tier, attempt_no, &attempt, latency, status);
        if !self.granted.token_buckets.is_empty() {
            let (limiter, granted) = (self.ctx.limiter.clone(), self.granted.clone());
            tokio::spawn(async move { limiter.settle(&granted, usage.input_tokens, usage.output_tokens).await });
        }
        let message_id = self.persist_answer(&attempt.text, status, tier).await;
        if status == CallStatus::Ok
            && !attempt.text.is_empty()
            && !attempt.tool_calls
            && let Some((key, embedding, system_hash)) = &self.cache_miss
        {
            self.ctx.cache.store(Entry {
                key: key.clone(),
                scope: cache_scope(&self.request),
                model: model.name.clone(),
                tier,
                query: last_user_text(&self.request.messages).to_string(),
                system_hash: system_hash.clone(),
                answer: attempt.text.clone(),
                finish_reason: attempt.finish_reason.clone().unwrap_or_else(|| "stop".into()),
                usage,
                cost_micros,
                embedding: embedding.clone(),
                expires_at: Utc::now()
                    + chrono::Duration::from_std(self.ctx.cache.ttl(tier)).unwrap_or(chrono::Duration::days(1)),
            });
        }
        let event = match &attempt.error {
            Some(e) => ChatEvent::Failed {
                message: format!("The answer was interrupted: {e}"),
                kind: FailureKind::Interrupted,
            },
            None => ChatEvent::Finished(Outcome {
                request_id: self.request.request_id,
                model: model.name.clone(),
                provider: model.provider.as_str().to_string(),
                tier,
                usage,
                cost_micros,
                latency_ms: self.started.elapsed().as_millis() as u32,
                ttft_ms: attempt.ttft_ms,
                attempts: attempt_no,
                finish_reason: attempt.finish_reason.clone().unwrap_or_else(|| "stop".into()),
                message_id,
            }),
        };
        let _ = tx.send(event).await;
    }

    /// Queues the attempt's `llm_calls` row; returns the usage and cost recorded.
    fn record(
        &self,
        model: &ModelEntry,
        tier: Option<Tier>,
        attempt_no: u32,
        attempt: &Attempt,
        latency: Duration,
        status: CallStatus,
    ) -> (Usage, i64) {
        let usage = match attempt.usage {
            Some(u) => u,
            // Nothing was generated: nothing was billed.
            None if attempt.text.is_empty() && status == CallStatus::Error => Usage::default(),
            None => self.estimate_usage(&attempt.text),
        };
        let cost_micros = model.price.cost_micros(&usage);
        let c = self.classification.as_ref();
        self.ctx.call_log.record(CallRecord {
            id: Uuid::now_v7(),
            request_id: self.request.request_id,
            ticket_id: self.request.ticket_id,
            api_key_id: self.request.api_key_id,
            user_id: self.request.user_id.clone(),
            kind: "generate",
            classifier: c.map(|c| c.classifier.to_string()),
            complexity: c.map(|c| c.complexity.to_string()),
            confidence: c.map(|c| c.confidence),
            reason: c.map(|c| c.reason.clone()),
            tier: tier.map(|t| t.to_string()),
            policy: self.decision.as_ref().map(|d| d.policy.as_str().to_string()),
            route: self.decision.as_ref().map(RouteDecision::explain),
            model: model.name.clone(),
            provider: model.provider.as_str().to_string(),
            input_tokens: usage.input_tokens as i32,
            output_tokens: usage.output_tokens as i32,
            cached_tokens: usage.cached_tokens as i32,
            tokens_estimated: usage.estimated,
            cost_micros,
            saved_micros: 0,
            latency_ms: latency.as_millis() as i32,
            ttft_ms: attempt.ttft_ms.map(|t| t as i32),
            cache_status: self.cache_status.to_string(),
            attempt: attempt_no as i32,
            status: status.to_string(),
            error: attempt.error.as_ref().map(ToString::to_string),
            experiment_id: self.request.experiment.map(|e| e.0),
            variant: self.request.experiment.map(|e| e.1.to_string()),
            properties: serde_json::Value::Object(self.request.properties.clone()),
            created_at: Utc::now(),
        });
        (usage, cost_micros)
    }

    /// For a stream cut short without usage: count with a real tokenizer
    /// and mark the row as estimated.
    fn estimate_usage(&self, answer: &str) -> Usage {
        // ChatML-style framing costs a few tokens per message
        let input: u32 = self.request.messages.iter().map(|m| self.ctx.tokens.count(&m.content) + 4).sum();
        Usage { input_tokens: input, output_tokens: self.ctx.tokens.count(answer), cached_tokens: 0, estimated: true }
    }

    async fn persist_answer(&self, text: &str, status: CallStatus, tier: Option<Tier>) -> Option<Uuid> {
        store_answer(&self.ctx.pool, &self.request, text, status, tier).await
    }
}

struct AttemptTiming {
    started: Instant,
    /// Until the first event.
    first_wait: Duration,
    /// Between later events.
    idle: Duration,
}

/// Reads one attempt's events and forwards its output to the caller as it
/// comes, or, when `buffered`, only once the attempt has completed.
async fn stream_attempt(
    mut events: EventReceiver,
    tx: &mpsc::Sender<ChatEvent>,
    answering: ChatEvent,
    timing: AttemptTiming,
    buffered: bool,
) -> Attempt {
    let AttemptTiming { started, first_wait, idle } = timing;
    let mut attempt = Attempt::default();
    let mut held: Vec<ChatEvent> = Vec::new();
    loop {
        let wait = if attempt.ttft_ms.is_some() || attempt.finish_reason.is_some() { idle } else { first_wait };
        let event = match tokio::time::timeout(wait, events.recv()).await {
            Err(_) => {
                attempt.error = Some(ProviderError::Timeout(format!("no output for {wait:?}")));
                break;
            }
            Ok(None) => break,
            Ok(Some(event)) => event,
        };
        let forward = match event {
            Ok(ProviderEvent::Delta(delta)) => {
                attempt.text.push_str(&delta);
                Some(ChatEvent::Delta(delta))
            }
            Ok(ProviderEvent::ToolCallDelta { index, id, name, arguments }) => {
                attempt.tool_calls = true;
                Some(ChatEvent::ToolCall { index, id, name, arguments })
            }
            Ok(ProviderEvent::Finish(reason)) => {
                attempt.finish_reason = Some(reason);
                None
            }
            Ok(ProviderEvent::Usage(usage)) => {
                attempt.usage = Some(usage);
                None
            }
            Err(e) => {
                attempt.error = Some(e);
                break;
            }
        };
        if let Some(event) = forward {
            let first = attempt.ttft_ms.is_none();
            if first {
                attempt.ttft_ms = Some(started.elapsed().as_millis() as u32);
            }
            if buffered {
                if tx.is_closed() {
                    attempt.cancelled = true; // the caller left
                    break;
                }
                held.push(event);
                continue;
            }
            if first && tx.send(answering.clone()).await.is_err() {
                attempt.cancelled = true;
                break;
            }
            attempt.output_sent = true;
            if tx.send(event).await.is_err() {
                attempt.cancelled = true; // dropping `events` stops the model
                break;
            }
        }
    }
    if buffered && attempt.error.is_none() && !attempt.cancelled && !held.is_empty() {
        attempt.output_sent = true;
        for event in std::iter::once(answering).chain(held) {
            if tx.send(event).await.is_err() {
                attempt.cancelled = true;
                break;
            }
        }
    }
    if attempt.error.is_none() && !attempt.cancelled && !attempt.output_sent && attempt.usage.is_none() {
        attempt.error = Some(ProviderError::BadResponse("the model returned nothing".into()));
    }
    attempt
}
