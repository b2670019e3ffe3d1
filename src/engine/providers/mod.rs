//! Upstream model providers behind one streaming interface. A provider turns
//! a `ProviderRequest` into a stream of `ProviderEvent`s: text and tool-call
//! deltas, a finish reason, and one `Usage` when the provider reports it.
//!
//! Which provider serves a model is set per model in the catalog
//! (`ProviderKind`, a closed set): `openai` speaks Chat Completions to any
//! compatible endpoint, `anthropic` speaks the Messages API, `local` runs the
//! embedded GGUF model. Retries, fallback and the circuit breaker live in the
//! pipeline and `health`; a provider makes exactly one upstream attempt.

pub mod anthropic;
pub mod health;
pub mod local;
pub mod openai;
pub mod sse;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};

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
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A tool call made by the model (complete, as sent back in history).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text, exactly as the model produced it.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Tool calls of an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` turn answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A function the model may call (OpenAI's `tools[].function`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
}

#[derive(Debug, Clone, Default)]
pub struct ProviderRequest {
    pub upstream_model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Vec<String>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: Option<ToolChoice>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    Delta(String),
    /// A piece of a tool call; pieces with the same `index` form one call.
    ToolCallDelta {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    /// Why generation stopped, in OpenAI's words (`stop`, `length`, `tool_calls`).
    Finish(String),
    Usage(Usage),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("model {0} is not available: {1}")]
    Unavailable(String, String),
    #[error("the local model is busy ({0} requests waiting); try again shortly")]
    Overloaded(usize),
    #[error("the conversation is too long for the model ({tokens} tokens, limit {limit})")]
    ContextTooLong { tokens: usize, limit: usize },
    #[error("generation failed: {0}")]
    Generation(String),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("rate limited by the provider (429): {message}")]
    RateLimited { retry_after: Option<Duration>, message: String },
    /// 5xx from the provider.
    #[error("provider error {status}: {message}")]
    Upstream { status: u16, message: String },
    /// 401/403/404: this model's key or id is wrong; others may work.
    #[error("provider refused the model ({status}): {message}")]
    Refused { status: u16, message: String },
    /// 400/422: the request itself is wrong; no other model will take it.
    #[error("provider rejected the request ({status}): {message}")]
    BadRequest { status: u16, message: String },
    /// Malformed SSE, invalid JSON, a stream that ended without finishing.
    #[error("bad response from the provider: {0}")]
    BadResponse(String),
    #[error("circuit open for {0}: too many recent failures")]
    CircuitOpen(String),
}

/// What the pipeline does after an attempt failed before its first token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Try the same model again after a backoff.
    Retry,
    /// Skip to the next candidate.
    Fallback,
    /// Give up: the request cannot succeed anywhere.
    Stop,
}

impl ProviderError {
    pub fn recovery(&self) -> Recovery {
        match self {
            ProviderError::Connect(_)
            | ProviderError::Timeout(_)
            | ProviderError::RateLimited { .. }
            | ProviderError::Upstream { .. }
            | ProviderError::BadResponse(_)
            | ProviderError::Overloaded(_)
            | ProviderError::Generation(_) => Recovery::Retry,
            ProviderError::Unavailable(..)
            | ProviderError::Refused { .. }
            | ProviderError::CircuitOpen(_)
            | ProviderError::ContextTooLong { .. } => Recovery::Fallback,
            ProviderError::BadRequest { .. } => Recovery::Stop,
        }
    }

    /// Whether this failure says something about the model's health (a
    /// caller's bad request does not).
    pub fn counts_against_model(&self) -> bool {
        !matches!(self, ProviderError::BadRequest { .. } | ProviderError::ContextTooLong { .. })
    }

    /// The provider's own `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Maps an HTTP error status and body to an error.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let message = error_message(body);
        match status {
            429 => ProviderError::RateLimited { retry_after, message },
            401 | 403 | 404 => ProviderError::Refused { status, message },
            400..=499 => ProviderError::BadRequest { status, message },
            _ => ProviderError::Upstream { status, message },
        }
    }
}

/// The `error.message` of an OpenAI- or Anthropic-shaped error body, or the
/// body itself, shortened.
fn error_message(body: &str) -> String {
    let parsed: Option<String> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_string));
    let text = parsed.unwrap_or_else(|| body.trim().to_string());
    let mut short: String = text.chars().take(300).collect();
    if short.is_empty() {
        short = "(empty body)".into();
    }
    short
}

/// Parses `Retry-After` (seconds; HTTP dates are rare from APIs and ignored).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A provider's events, in order. Dropping it stops the generation (the
/// local model sees its channel close; a remote stream's connection is
/// dropped).
pub struct EventReceiver(Pin<Box<dyn Stream<Item = Result<ProviderEvent, ProviderError>> + Send>>);

impl EventReceiver {
    /// Events read in the caller's own task: a remote stream needs no task
    /// and channel of its own between the socket and the pipeline.
    pub fn from_stream(events: impl Stream<Item = Result<ProviderEvent, ProviderError>> + Send + 'static) -> Self {
        EventReceiver(Box::pin(events))
    }

    /// Events sent from elsewhere (the local model's thread).
    pub fn from_channel(mut rx: mpsc::Receiver<Result<ProviderEvent, ProviderError>>) -> Self {
        Self::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    pub async fn recv(&mut self) -> Option<Result<ProviderEvent, ProviderError>> {
        self.0.next().await
    }
}

/// How long one upstream attempt may take to start, and to go quiet.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    /// Until the response headers and the first event.
    pub first_byte: Duration,
    /// Between two events of a stream.
    pub idle: Duration,
}

/// A model's endpoint and secret, resolved at start.
#[derive(Clone)]
pub struct Endpoint {
    /// Where calls go (`…/chat/completions` or `…/messages`), parsed once
    /// here rather than on every call.
    pub url: reqwest::Url,
    pub api_key: crate::config::Secret<String>,
}

impl Endpoint {
    pub fn new(provider: ProviderKind, base_url: &str, api_key: crate::config::Secret<String>) -> Result<Self, String> {
        let path = match provider {
            ProviderKind::Anthropic => "messages",
            ProviderKind::Openai | ProviderKind::Local => "chat/completions",
        };
        let url = reqwest::Url::parse(&format!("{}/{path}", base_url.trim_end_matches('/')))
            .map_err(|e| format!("base_url {base_url:?} is not a URL ({e})"))?;
        Ok(Endpoint { url, api_key })
    }
}

/// Endpoints of the remote models that can be called: those whose key
/// variable is set (or that need none). Returns them with one warning per
/// model left out. `env` reads a variable (tests pass their own).
pub fn resolve_endpoints(
    config: &crate::config::Config,
    env: impl Fn(&str) -> Option<String>,
) -> (std::collections::HashMap<String, Endpoint>, Vec<String>) {
    let mut endpoints = std::collections::HashMap::new();
    let mut left_out = Vec::new();
    for (name, m) in &config.models {
        if m.provider == ProviderKind::Local {
            continue;
        }
        let Some(base_url) = m.base_url.as_deref() else { continue };
        let key = match &m.api_key_env {
            None => String::new(),
            Some(var) => match env(var).filter(|v| !v.trim().is_empty()) {
                Some(key) => key,
                None => {
                    left_out.push(format!("model {name} left out: {var} is not set"));
                    continue;
                }
            },
        };
        match Endpoint::new(m.provider, base_url, crate::config::Secret::new(key)) {
            Ok(endpoint) => {
                endpoints.insert(name.clone(), endpoint);
            }
            Err(e) => left_out.push(format!("model {name} left out: {e}")),
        }
    }
    (endpoints, left_out)
}

/// Every configured provider client.
#[derive(Clone, Default)]
pub struct Providers {
    pub local: Option<Arc<local::LocalModel>>,
    pub http: Option<reqwest::Client>,
    /// Endpoint per catalog model name (remote models only).
    pub endpoints: std::collections::HashMap<String, Endpoint>,
}

impl Providers {
    /// A client for remote providers: connection pooling, no overall timeout
    /// (streams are long; attempt limits are enforced per event instead).
    pub fn http_client() -> reqwest::Client {
        // rustls with ring (no C toolchain beyond cc); a no-op when already set
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .expect("TLS backend available")
    }

    /// Starts a streamed completion on the provider that serves `model`.
    /// Returns once the first event (or a failure) is known, so that a
    /// failure before the first token can be retried invisibly.
    pub async fn stream(
        &self,
        model: &ModelEntry,
        request: ProviderRequest,
        limits: AttemptLimits,
    ) -> Result<EventReceiver, ProviderError> {
        match model.provider {
            ProviderKind::Local => match &self.local {
                Some(local) => local.generate(request),
                None => Err(ProviderError::Unavailable(model.name.clone(), "the local model is not loaded".into())),
            },
            ProviderKind::Openai | ProviderKind::Anthropic => {
                let (Some(http), Some(endpoint)) = (&self.http, self.endpoints.get(&model.name)) else {
                    return Err(ProviderError::Unavailable(model.name.clone(), "no endpoint configured".into()));
                };
                match model.provider {
                    ProviderKind::Openai => openai::stream(http, endpoint, request, limits).await,
                    _ => anthropic::stream(http, endpoint, request, limits).await,
                }
            }
        }
    }
}

/// Reads parsed events from an HTTP stream, enforcing the idle limit, and
/// ending with an error if the stream ends unfinished.
/// Shared by the remote providers; `parse` turns one SSE event into events.
pub(crate) async fn pump<S, P>(
    mut source: S,
    mut parse: P,
    limits: AttemptLimits,
) -> Result<EventReceiver, ProviderError>
where
    S: Stream<Item = Result<sse::SseEvent, ProviderError>> + Unpin + Send + 'static,
    P: FnMut(sse::SseEvent) -> Result<Parsed, ProviderError> + Send + 'static,
{
    // Wait for the first event here, so failures before any output surface
    // as the attempt's error (retryable) rather than mid-stream.
    let mut buffered: Vec<ProviderEvent> = Vec::new();
    let mut done = false;
    while buffered.is_empty() && !done {
        let next = tokio::time::timeout(limits.first_byte, source.next())
            .await
            .map_err(|_| ProviderError::Timeout(format!("no first event within {:?}", limits.first_byte)))?;
        match next {
            None => return Err(ProviderError::BadResponse("the stream ended before any output".into())),
            Some(Err(e)) => return Err(e),
            Some(Ok(event)) => match parse(event)? {
                Parsed::Events(events) => buffered.extend(events),
                Parsed::Done(events) => {
                    buffered.extend(events);
                    done = true;
                }
            },
        }
    }
    // Then read on in the caller's task, one SSE event at a time.
    let state = (source, parse, buffered.into_iter(), done);
    let events = futures::stream::unfold(state, move |(mut source, mut parse, mut held, mut done)| async move {
        loop {
            if let Some(event) = held.next() {
                return Some((Ok(event), (source, parse, held, done)));
            }
            if done {
                release_connection(source, limits.idle);
                return None;
            }
            let next = match tokio::time::timeout(limits.idle, source.next()).await {
                Err(_) => Err(ProviderError::Timeout(format!("the stream went quiet for {:?}", limits.idle))),
                Ok(None) => Err(ProviderError::BadResponse("the stream ended before it finished".into())),
                Ok(Some(item)) => item.and_then(&mut parse),
            };
            match next {
                Ok(Parsed::Events(events)) => held = events.into_iter(),
                Ok(Parsed::Done(events)) => {
                    held = events.into_iter();
                    done = true;
                }
                // `held` is empty here, so the error is the last item
                Err(e) => return Some((Err(e), (source, parse, held, true))),
            }
        }
    });
    Ok(EventReceiver::from_stream(events))
}

/// Reads what is left of a finished stream (usually only the chunked
/// body's terminator, which may come after `[DONE]`) so that its keep-alive
/// connection goes back to the pool: dropped unread, hyper closes it, and
/// the next call pays a new connection (a TLS handshake to a real
/// provider). Read in place when it is already there, else in a task.
fn release_connection<S>(mut source: S, limit: Duration)
where
    S: Stream + Unpin + Send + 'static,
{
    if let Some(None) = source.next().now_or_never() {
        return;
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(limit, async { while source.next().await.is_some() {} }).await;
    });
}

/// Sends a provider request within the first-byte limit; a non-2xx answer
/// becomes the matching error (with `Retry-After` when there is one).
pub(crate) async fn send(
    builder: reqwest::RequestBuilder,
    limits: AttemptLimits,
) -> Result<reqwest::Response, ProviderError> {
    let response = tokio::time::timeout(limits.first_byte, builder.send())
        .await
        .map_err(|_| ProviderError::Timeout(format!("no response headers within {:?}", limits.first_byte)))?
        .map_err(send_error)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = parse_retry_after(response.headers().get("retry-after").and_then(|v| v.to_str().ok()));
    let body =
        tokio::time::timeout(limits.first_byte, response.text()).await.ok().and_then(Result::ok).unwrap_or_default();
    Err(ProviderError::from_status(status.as_u16(), retry_after, &body))
}

/// Whether a response is an SSE stream (the normal case).
pub(crate) fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Reads a whole (non-streamed) JSON answer and replays it as events.
pub(crate) async fn whole_body(
    response: reqwest::Response,
    limits: AttemptLimits,
    events_of: fn(&serde_json::Value) -> Vec<ProviderEvent>,
) -> Result<EventReceiver, ProviderError> {
    let body = tokio::time::timeout(limits.first_byte, response.text())
        .await
        .map_err(|_| ProviderError::Timeout("reading the response body".into()))?
        .map_err(send_error)?;
    let whole: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| ProviderError::BadResponse(format!("invalid JSON: {e}")))?;
    let events = events_of(&whole);
    Ok(EventReceiver::from_stream(futures::stream::iter(events.into_iter().map(Ok))))
}

pub(crate) fn send_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout(e.to_string())
    } else if e.is_connect() {
        ProviderError::Connect(e.to_string())
    } else {
        ProviderError::BadResponse(e.to_string())
    }
}

/// What one SSE event meant.
pub enum Parsed {
    Events(Vec<ProviderEvent>),
    /// The stream's normal end (after these events).
    Done(Vec<ProviderEvent>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_pipeline_should_do() {
        let e = |s| ProviderError::from_status(s, None, r#"{"error":{"message":"nope"}}"#);
        assert_eq!(e(429).recovery(), Recovery::Retry);
        assert_eq!(e(500).recovery(), Recovery::Retry);
        assert_eq!(e(503).recovery(), Recovery::Retry);
        assert_eq!(e(401).recovery(), Recovery::Fallback);
        assert_eq!(e(404).recovery(), Recovery::Fallback);
        assert_eq!(e(400).recovery(), Recovery::Stop);
        assert!(!e(400).counts_against_model());
        assert!(e(503).to_string().contains("nope"));
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(Some(" 0.5 ")), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(Some("-1")), None);
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn error_bodies_are_shortened() {
        assert_eq!(error_message(""), "(empty body)");
        assert_eq!(error_message(&"x".repeat(1000)).len(), 300);
    }

    /// An upstream on a raw socket that sends the chunked body's terminator
    /// a moment after `[DONE]`, as a real server may, and counts the
    /// connections it accepts.
    async fn late_terminator_upstream() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n) = socket.read(&mut buf).await else { return };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).to_string();
                        let Some(head_end) = text.find("\r\n\r\n") else { continue };
                        let length: usize = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if request.len() < head_end + 4 + length {
                            continue;
                        }
                        request.drain(..head_end + 4 + length);
                        let events = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
                        let head =
                            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                        let chunk = format!("{head}{:x}\r\n{events}\r\n", events.len());
                        if socket.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        if socket.write_all(b"0\r\n\r\n").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (base_url, accepted)
    }

    #[tokio::test]
    async fn a_finished_stream_gives_its_connection_back_to_the_pool() {
        let (base_url, accepted) = late_terminator_upstream().await;
        let endpoint =
            Endpoint::new(ProviderKind::Openai, &base_url, crate::config::Secret::new(String::new())).unwrap();
        let providers = Providers {
            local: None,
            http: Some(Providers::http_client()),
            endpoints: std::collections::HashMap::from([("m".to_string(), endpoint)]),
        };
        let model = ModelEntry {
            name: "m".into(),
            provider: ProviderKind::Openai,
            upstream_model: "m".into(),
            price: Default::default(),
            context_window: 8192,
        };
        let limits = AttemptLimits { first_byte: Duration::from_secs(5), idle: Duration::from_secs(5) };
        for _ in 0..3 {
            let request = ProviderRequest { messages: vec![ChatMessage::new(Role::User, "hi")], ..Default::default() };
            let mut events = providers.stream(&model, request, limits).await.expect("stream");
            let mut text = String::new();
            while let Some(event) = events.recv().await {
                if let ProviderEvent::Delta(d) = event.expect("event") {
                    text.push_str(&d);
                }
            }
            assert_eq!(text, "hi");
            // the terminator comes 30 ms after [DONE]; then the connection is idle in the pool
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "each call opened a connection");
    }

    #[test]
    fn endpoints_take_the_path_their_api_uses() {
        let e = |kind, base: &str| Endpoint::new(kind, base, crate::config::Secret::new(String::new()));
        assert_eq!(
            e(ProviderKind::Openai, "https://api.openai.com/v1/").unwrap().url.as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            e(ProviderKind::Anthropic, "https://api.anthropic.com/v1").unwrap().url.as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        let Err(bad) = e(ProviderKind::Openai, "not a url") else {
            panic!("a base_url that is not a URL was accepted")
        };
        assert!(bad.contains("not a URL"), "{bad}");
    }
}
