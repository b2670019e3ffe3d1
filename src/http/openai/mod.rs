//! The OpenAI-compatible API: `POST /v1/chat/completions` (streamed or not)
//! and `GET /v1/models`. Handlers only translate: authentication, the wire
//! format and validation live here; limits, classification, routing,
//! retries and tracking are the engine's pipeline, as for the chat widget.

mod error;
mod keys;
mod types;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use self::error::ApiError;
pub use self::keys::KeyCache;
use self::types::{ChatCompletion, ChatCompletionRequest, Choice, Content, OutMessage, OutToolCall, OutUsage, Stop};
use crate::domain::Tier;
use crate::engine::limits::{KeyLimits, Subjects};
use crate::engine::pipeline::{ChatEvent, ChatRequest, FailureKind, ModelChoice, Outcome, Routed};
use crate::engine::providers::{ChatMessage, Role, ToolCall, ToolChoice, ToolSpec};
use crate::state::AppState;
use crate::store::api_keys::ApiKey;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/chat/completions", post(chat_completions)).route("/v1/models", get(list_models))
}

/// The caller's key, checked against the cache, then the database.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<ApiKey>, ApiError> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match secret {
        Some(secret) => match state.keys.find(&state.pool, secret).await? {
            Some(key) => Ok(Some(key)),
            None => Err(ApiError::Unauthorized("Incorrect API key provided.")),
        },
        None if state.config.api.require_key => {
            Err(ApiError::Unauthorized("Missing API key: send `Authorization: Bearer <key>`."))
        }
        None => Ok(None),
    }
}

async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authenticate(&state, &headers).await?;
    let pipeline = &state.pipeline;
    let mut data = vec![json!({
        "id": "auto", "object": "model", "created": 0, "owned_by": "triage",
        "triage": {"available": true, "description": "classify, then route to the cheapest tier that fits"}
    })];
    for m in pipeline.catalog().iter() {
        data.push(json!({
            "id": m.name, "object": "model", "created": 0, "owned_by": m.provider.as_str(),
            "triage": {
                "available": pipeline.is_available(&m.name),
                "input_micros_per_mtok": m.price.input,
                "output_micros_per_mtok": m.price.output,
            }
        }));
    }
    Ok(axum::Json(json!({"object": "list", "data": data})).into_response())
}

async fn chat_completions(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle(state, headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let key = authenticate(&state, &headers).await?;
    let limit = state.config.api.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::TooLarge(limit))?;
    let parsed: ChatCompletionRequest = parse_body(&bytes)?;
    let stream = parsed.stream;
    let include_usage = parsed.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let mut request = to_chat_request(&state, parsed, key.as_ref())?;
    request.buffered = !stream;
    attribute(&state, &headers, key.as_ref(), &mut request).await?;

    let mut events = state.pipeline.run(request).await?;
    let Some(ChatEvent::Routed(routed)) = events.recv().await else {
        return Err(ApiError::Unavailable("The request ended before it was routed.".into()));
    };
    if stream { stream_response(routed, events, include_usage).await } else { whole_response(routed, events).await }
}

/// Serde's own message says which field is wrong and where.
fn parse_body(bytes: &Bytes) -> Result<ChatCompletionRequest, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() { "The body is not valid JSON" } else { "Invalid request" };
        ApiError::invalid(format!("{what}: {e}"), None)
    })
}

fn to_chat_request(state: &AppState, r: ChatCompletionRequest, key: Option<&ApiKey>) -> Result<ChatRequest, ApiError> {
    let api = &state.config.api;
    let pipeline = &state.pipeline;
    if r.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("Only n = 1 is supported.", Some("n")));
    }
    if r.messages.is_empty() {
        return Err(ApiError::invalid("`messages` must not be empty.", Some("messages")));
    }
    if r.messages.len() > api.max_messages {
        return Err(ApiError::invalid(
            format!("Too many messages ({}; the limit is {}).", r.messages.len(), api.max_messages),
            Some("messages"),
        ));
    }
    if r.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ApiError::invalid("`temperature` must be between 0 and 2.", Some("temperature")));
    }
    if r.top_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
        return Err(ApiError::invalid("`top_p` must be between 0 and 1.", Some("top_p")));
    }
    let max_tokens = r.max_completion_tokens.or(r.max_tokens);
    if max_tokens == Some(0) {
        return Err(ApiError::invalid("`max_tokens` must be at least 1.", Some("max_tokens")));
    }
    let mut messages = Vec::with_capacity(r.messages.len());
    for (i, m) in r.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => {
                return Err(ApiError::invalid(
                    format!("messages[{i}].role {other:?} is not one of system, developer, user, assistant, tool."),
                    Some("messages"),
                ));
            }
        };
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                parts.into_iter().filter(|p| p.kind == "text").filter_map(|p| p.text).collect::<Vec<_>>().join("\n")
            }
        };
        if content.chars().count() > api.max_message_chars {
            return Err(ApiError::invalid(
                format!("messages[{i}] is too long (the limit is {} characters).", api.max_message_chars),
                Some("messages"),
            ));
        }
        let tool_calls = m
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| ToolCall { id: c.id, name: c.function.name, arguments: c.function.arguments })
            .collect();
        messages.push(ChatMessage { role, content, tool_calls, tool_call_id: m.tool_call_id });
    }
    let model = if r.model == "auto" {
        ModelChoice::Auto
    } else if pipeline.catalog().get(&r.model).is_some() {
        ModelChoice::Named(r.model)
    } else {
        return Err(ApiError::UnknownModel(r.model));
    };
    if let Some(tier) = r.tier
        && !key.is_some_and(|k| k.can_force_tier)
    {
        return Err(ApiError::Forbidden(format!("This key may not force a tier (asked for {tier}).")));
    }
    if let Some(names) = &r.router_candidates {
        if names.is_empty() {
            return Err(ApiError::invalid(
                "`router_candidates` must name at least one model.",
                Some("router_candidates"),
            ));
        }
        if let Some(unknown) = names.iter().find(|n| pipeline.catalog().get(n).is_none()) {
            return Err(ApiError::invalid(
                format!("`router_candidates` names an unknown model {unknown:?}."),
                Some("router_candidates"),
            ));
        }
    }
    let tools = r
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            if t.kind != "function" {
                return Err(ApiError::invalid(format!("Unsupported tool type {:?}.", t.kind), Some("tools")));
            }
            Ok(ToolSpec {
                name: t.function.name,
                description: t.function.description,
                parameters: t.function.parameters.unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tool_choice = match r.tool_choice {
        None => None,
        Some(Value::String(s)) if s == "auto" => Some(ToolChoice::Auto),
        Some(Value::String(s)) if s == "none" => Some(ToolChoice::None),
        Some(Value::String(s)) if s == "required" => Some(ToolChoice::Required),
        Some(Value::Object(o)) => match o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => Some(ToolChoice::Function(name.to_string())),
            None => return Err(ApiError::invalid("`tool_choice` names no function.", Some("tool_choice"))),
        },
        Some(_) => return Err(ApiError::invalid("`tool_choice` is not valid.", Some("tool_choice"))),
    };
    let mut request = ChatRequest::new(messages);
    request.model = model;
    request.max_tokens = max_tokens;
    request.temperature = r.temperature;
    request.top_p = r.top_p;
    request.stop = match r.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    request.tools = tools;
    request.tool_choice = tool_choice;
    request.user_id = r.user;
    request.forced_tier = r.tier;
    request.router_candidates = r.router_candidates;
    request.api_key_id = key.map(|k| k.id);
    Ok(request)
}

/// `X-Triage-Session-Id` (the ticket), `X-Triage-User-Id` and
/// `X-Triage-Property-<Name>`, plus who the limits count against.
async fn attribute(
    state: &AppState,
    headers: &HeaderMap,
    key: Option<&ApiKey>,
    request: &mut ChatRequest,
) -> Result<(), ApiError> {
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => match v.to_str() {
                Ok(s) if !s.trim().is_empty() && s.len() <= 256 => Ok(Some(s.trim().to_string())),
                _ => Err(ApiError::invalid(format!("Header {name} must be 1–256 visible ASCII characters."), None)),
            },
        }
    };
    if let Some(user) = text("x-triage-user-id")? {
        request.user_id = Some(user);
    }
    let mut properties = serde_json::Map::new();
    for (name, _) in headers.iter() {
        if let Some(prop) = name.as_str().strip_prefix("x-triage-property-") {
            if prop.is_empty() || prop.len() > 64 {
                return Err(ApiError::invalid("A property name must be 1–64 characters.", None));
            }
            if let Some(v) = text(name.as_str())? {
                properties.insert(prop.to_string(), Value::String(v));
            }
        }
    }
    if properties.len() > 20 {
        return Err(ApiError::invalid("At most 20 X-Triage-Property headers.", None));
    }
    request.properties = properties;
    // per-request cache control: `X-Triage-Cache: bypass` (or
    // `Cache-Control: no-cache|no-store`), `X-Triage-Semantic-Cache: on|off`
    let no_cache = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("no-cache") || v.contains("no-store"));
    request.cache.bypass = no_cache
        || match text("x-triage-cache")?.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("use") | Some("on") => false,
            Some("bypass") | Some("off") => true,
            Some(other) => {
                return Err(ApiError::invalid(
                    format!("X-Triage-Cache must be `bypass` or `use`, not {other:?}."),
                    None,
                ));
            }
        };
    request.cache.semantic = match text("x-triage-semantic-cache")?.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("on") | Some("true") => Some(true),
        Some("off") | Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid(format!("X-Triage-Semantic-Cache must be on or off, not {other:?}."), None));
        }
    };
    if let Some(session) = text("x-triage-session-id")? {
        let ticket = crate::store::tickets::for_api_session(
            &state.pool,
            key.map(|k| k.id),
            &session,
            request.user_id.as_deref(),
        )
        .await?;
        request.ticket_id = Some(ticket);
        request.persist = true;
    }
    request.subjects = Subjects {
        key: key.map(|k| KeyLimits {
            id: k.id,
            rpm: k.rpm_limit.and_then(|v| u32::try_from(v).ok()),
            tpm: k.tpm_limit.and_then(|v| u32::try_from(v).ok()),
            daily_budget_micros: k.daily_budget_micros,
            monthly_budget_micros: k.monthly_budget_micros,
        }),
        user: request.user_id.clone(),
        ticket: request.ticket_id,
        ip: None,
    };
    Ok(())
}

/// The routing decision as headers, the same on both kinds of response.
fn triage_headers(routed: &Routed, model: &str, tier: Option<Tier>) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = vec![
        (HeaderName::from_static("x-triage-request-id"), routed.request_id.to_string()),
        (HeaderName::from_static("x-triage-model"), model.to_string()),
        (HeaderName::from_static("x-triage-cache"), cache_label(routed.cache).to_string()),
    ];
    if let Some(t) = tier.or(routed.tier) {
        h.push((HeaderName::from_static("x-triage-tier"), t.to_string()));
    }
    if let Some(c) = &routed.classification {
        h.push((HeaderName::from_static("x-triage-complexity"), c.complexity.to_string()));
    }
    h.into_iter().filter_map(|(n, v)| HeaderValue::from_str(&v).ok().map(|v| (n, v))).collect()
}

/// The routing decision as JSON, for the body (`triage`) and the first chunk.
fn triage_metadata(routed: &Routed, model: &str, tier: Option<Tier>) -> Value {
    let c = routed.classification.as_ref();
    json!({
        "request_id": routed.request_id,
        "model": model,
        "tier": tier.or(routed.tier),
        "complexity": c.map(|c| c.complexity),
        "confidence": c.map(|c| c.confidence),
        "classifier": c.map(|c| c.classifier),
        "reason": c.map(|c| c.reason.as_str()),
        "classifier_latency_us": c.map(|c| c.latency_us),
        "route": routed.decision.as_ref().map(|d| d.explain()),
        "policy": routed.decision.as_ref().map(|d| d.policy.as_str()),
        "cache": cache_label(routed.cache),
    })
}

/// `HIT`, `MISS` or `BYPASS` (not consulted, for whatever reason).
fn cache_label(status: crate::domain::CacheStatus) -> &'static str {
    use crate::domain::CacheStatus;
    match status {
        CacheStatus::Hit => "HIT",
        CacheStatus::Miss => "MISS",
        CacheStatus::Bypass | CacheStatus::None => "BYPASS",
    }
}

fn usage_of(o: &Outcome) -> OutUsage {
    OutUsage {
        prompt_tokens: o.usage.input_tokens,
        completion_tokens: o.usage.output_tokens,
        total_tokens: o.usage.input_tokens + o.usage.output_tokens,
    }
}

fn failure(message: String, kind: FailureKind) -> ApiError {
    match kind {
        FailureKind::BadRequest => ApiError::invalid(message, None),
        FailureKind::Unavailable | FailureKind::Interrupted => ApiError::Upstream(message),
    }
}

/// Tool-call pieces, assembled by index.
#[derive(Default)]
struct ToolCalls(BTreeMap<u32, OutToolCall>);

impl ToolCalls {
    fn add(&mut self, index: u32, id: Option<String>, name: Option<String>, arguments: &str) {
        let call = self.0.entry(index).or_insert_with(|| OutToolCall {
            id: String::new(),
            kind: "function",
            function: types::OutFunctionCall { name: String::new(), arguments: String::new() },
        });
        if let Some(id) = id {
            call.id = id;
        }
        if let Some(name) = name {
            call.function.name = name;
        }
        call.function.arguments.push_str(arguments);
    }
}

async fn whole_response(routed: Routed, mut events: mpsc::Receiver<ChatEvent>) -> Result<Response, ApiError> {
    let mut text = String::new();
    let mut calls = ToolCalls::default();
    let mut answering: Option<(String, Option<Tier>)> = None;
    while let Some(event) = events.recv().await {
        match event {
            ChatEvent::Routed(_) => {}
            ChatEvent::Answering { model, tier } => answering = Some((model, tier)),
            ChatEvent::Delta(d) => text.push_str(&d),
            ChatEvent::ToolCall { index, id, name, arguments } => calls.add(index, id, name, &arguments),
            ChatEvent::Failed { message, kind } => return Err(failure(message, kind)),
            ChatEvent::Finished(o) => {
                let tier = answering.as_ref().and_then(|a| a.1).or(o.tier);
                let mut meta = triage_metadata(&routed, &o.model, tier);
                meta["cost_micros"] = json!(o.cost_micros);
                meta["latency_ms"] = json!(o.latency_ms);
                meta["attempts"] = json!(o.attempts);
                let tool_calls: Vec<OutToolCall> = calls.0.into_values().collect();
                let body = ChatCompletion {
                    id: format!("chatcmpl-{}", routed.request_id.simple()),
                    object: "chat.completion",
                    created: Utc::now().timestamp(),
                    model: o.model.clone(),
                    choices: vec![Choice {
                        index: 0,
                        message: OutMessage {
                            role: "assistant",
                            content: (!text.is_empty() || tool_calls.is_empty()).then_some(text),
                            tool_calls,
                        },
                        finish_reason: o.finish_reason.clone(),
                        logprobs: None,
                    }],
                    usage: usage_of(&o),
                    triage: meta,
                };
                let mut response = axum::Json(body).into_response();
                let h = response.headers_mut();
                h.extend(triage_headers(&routed, &o.model, tier));
                if let Ok(v) = HeaderValue::from_str(&o.cost_micros.to_string()) {
                    h.insert(HeaderName::from_static("x-triage-cost-micros"), v);
                }
                return Ok(response);
            }
        }
    }
    Err(ApiError::Unavailable("The answer ended without finishing.".into()))
}

/// Waits for the first output so a request that fails before any token
/// still gets a proper error status; then streams server-sent events.
async fn stream_response(
    routed: Routed,
    mut events: mpsc::Receiver<ChatEvent>,
    include_usage: bool,
) -> Result<Response, ApiError> {
    let (model, tier) = loop {
        match events.recv().await {
            Some(ChatEvent::Answering { model, tier }) => break (model, tier),
            Some(ChatEvent::Failed { message, kind }) => return Err(failure(message, kind)),
            Some(_) => {}
            None => return Err(ApiError::Unavailable("The answer ended before it began.".into())),
        }
    };
    let id = format!("chatcmpl-{}", routed.request_id.simple());
    let created = Utc::now().timestamp();
    let chunk = {
        let (id, model) = (id.clone(), model.clone());
        move |delta: Value, finish: Option<&str>| {
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
            })
        }
    };
    let mut first = chunk(json!({"role": "assistant", "content": ""}), None);
    first["triage"] = triage_metadata(&routed, &model, tier);
    let headers = triage_headers(&routed, &model, tier);

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let send = |v: Value| {
            let tx = tx.clone();
            async move { tx.send(Bytes::from(format!("data: {v}\n\n"))).await.is_ok() }
        };
        if !send(first).await {
            return;
        }
        while let Some(event) = events.recv().await {
            let ok = match event {
                ChatEvent::Routed(_) | ChatEvent::Answering { .. } => true,
                ChatEvent::Delta(d) => send(chunk(json!({"content": d}), None)).await,
                ChatEvent::ToolCall { index, id, name, arguments } => {
                    let mut call = json!({"index": index, "function": {"arguments": arguments}});
                    if let Some(id) = id {
                        call["id"] = json!(id);
                        call["type"] = json!("function");
                    }
                    if let Some(name) = name {
                        call["function"]["name"] = json!(name);
                    }
                    send(chunk(json!({"tool_calls": [call]}), None)).await
                }
                ChatEvent::Finished(o) => {
                    let mut last = chunk(json!({}), Some(&o.finish_reason));
                    let cost =
                        json!({"cost_micros": o.cost_micros, "latency_ms": o.latency_ms, "attempts": o.attempts});
                    if include_usage {
                        send(last).await;
                        last = json!({
                            "id": id, "object": "chat.completion.chunk", "created": created, "model": o.model,
                            "choices": [], "usage": usage_of(&o),
                        });
                    }
                    last["triage"] = cost;
                    send(last).await;
                    false
                }
                ChatEvent::Failed { message, kind } => {
                    send(failure(message, kind).body()).await;
                    false
                }
            };
            if !ok {
                break;
            }
        }
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::io::Error>));
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    response.headers_mut().extend(headers);
    Ok(response)
}

use tokio_stream::StreamExt as _;

/// How long a looked-up key is trusted before the database is asked again
/// (so a revoked key stops working within this time on every instance).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
