//! Anthropic's Messages API: the system prompt travels apart, tool calls are
//! `tool_use` content blocks, usage arrives in `message_start` (input) and
//! `message_delta` (output), and `message_stop` ends the stream.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{
    AttemptLimits, ChatMessage, Endpoint, EventReceiver, Parsed, ProviderError, ProviderEvent, ProviderRequest, Role,
    ToolChoice, is_event_stream, pump, send, sse, whole_body,
};
use crate::engine::pricing::Usage;

pub const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the caller sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

pub fn request_body(request: &ProviderRequest) -> Value {
    let system: Vec<&str> =
        request.messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
    let mut messages: Vec<Value> = Vec::new();
    for m in request.messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = blocks(m);
        // The API wants user and assistant turns to alternate: merge runs.
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                last["content"].as_array_mut().expect("array").extend(blocks);
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut body = json!({
        "model": request.upstream_model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": true,
    });
    let o = body.as_object_mut().expect("object");
    if !system.is_empty() {
        o.insert("system".into(), system.join("\n\n").into());
    }
    if let Some(t) = request.temperature {
        // Anthropic's range is 0..=1
        o.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = request.top_p {
        o.insert("top_p".into(), json!(p));
    }
    if !request.stop.is_empty() {
        o.insert("stop_sequences".into(), json!(request.stop));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        o.insert("tools".into(), tools.into());
    }
    if let Some(choice) = &request.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
        };
        o.insert("tool_choice".into(), v);
    }
    body
}

fn blocks(m: &ChatMessage) -> (&'static str, Vec<Value>) {
    match m.role {
        Role::Tool => (
            "user",
            vec![
                json!({"type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default(), "content": m.content}),
            ],
        ),
        Role::Assistant => {
            let mut blocks = Vec::new();
            if !m.content.is_empty() {
                blocks.push(json!({"type": "text", "text": m.content}));
            }
            for c in &m.tool_calls {
                let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
            }
            ("assistant", blocks)
        }
        _ => ("user", vec![json!({"type": "text", "text": m.content})]),
    }
}

/// Stream state: content block index → tool call index, and usage so far.
#[derive(Default)]
pub struct StreamState {
    tool_index: HashMap<u64, u32>,
    usage: Usage,
}

impl StreamState {
    pub fn parse(&mut self, event: sse::SseEvent) -> Result<Parsed, ProviderError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| ProviderError::BadResponse(format!("invalid JSON in the stream: {e}")))?;
        let kind =
            if event.event.is_empty() { data["type"].as_str().unwrap_or_default().to_string() } else { event.event };
        let n = |v: &Value| v.as_u64().unwrap_or(0) as u32;
        let mut events = Vec::new();
        match kind.as_str() {
            "message_start" => {
                let u = &data["message"]["usage"];
                let cached = n(&u["cache_read_input_tokens"]);
                self.usage.input_tokens = n(&u["input_tokens"]) + cached + n(&u["cache_creation_input_tokens"]);
                self.usage.cached_tokens = cached;
                self.usage.output_tokens = n(&u["output_tokens"]);
            }
            "content_block_start" => {
                let block = &data["content_block"];
                if block["type"] == "tool_use" {
                    let index = self.tool_index.len() as u32;
                    self.tool_index.insert(data["index"].as_u64().unwrap_or(0), index);
                    events.push(ProviderEvent::ToolCallDelta {
                        index,
                        id: block["id"].as_str().map(str::to_string),
                        name: block["name"].as_str().map(str::to_string),
                        arguments: String::new(),
                    });
                }
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        if let Some(text) = delta["text"].as_str().filter(|t| !t.is_empty()) {
                            events.push(ProviderEvent::Delta(text.to_string()));
                        }
                    }
                    Some("input_json_delta") => {
                        let index = self.tool_index.get(&data["index"].as_u64().unwrap_or(0)).copied().unwrap_or(0);
                        events.push(ProviderEvent::ToolCallDelta {
                            index,
                            id: None,
                            name: None,
                            arguments: delta["partial_json"].as_str().unwrap_or_default().to_string(),
                        });
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(out) = data["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = out as u32;
                }
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    let reason = match reason {
                        "max_tokens" => "length",
                        "tool_use" => "tool_calls",
                        _ => "stop",
                    };
                    events.push(ProviderEvent::Finish(reason.to_string()));
                }
            }
            "message_stop" => {
                events.push(ProviderEvent::Usage(self.usage));
                return Ok(Parsed::Done(events));
            }
            "error" => {
                let message = data["error"]["message"].as_str().unwrap_or("error in stream").to_string();
                let status = if data["error"]["type"] == "overloaded_error" { 529 } else { 502 };
                return Err(ProviderError::Upstream { status, message });
            }
            _ => {} // ping, content_block_stop, future event types
        }
        Ok(Parsed::Events(events))
    }
}

pub async fn stream(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    request: ProviderRequest,
    limits: AttemptLimits,
) -> Result<EventReceiver, ProviderError> {
    let builder = http
        .post(endpoint.url.clone())
        .header("x-api-key", endpoint.api_key.expose())
        .header("anthropic-version", API_VERSION)
        .json(&request_body(&request));
    let response = send(builder, limits).await?;
    if !is_event_stream(&response) {
        // A proxy that ignored `stream`: accept the whole message.
        return whole_body(response, limits, message_events).await;
    }
    let mut state = StreamState::default();
    pump(sse::events(response.bytes_stream()), move |e| state.parse(e), limits).await
}

/// The events of a whole (non-streamed) Messages API response.
pub fn message_events(message: &Value) -> Vec<ProviderEvent> {
    let mut events = Vec::new();
    let mut tool_index = 0u32;
    for block in message["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => {
                if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                    events.push(ProviderEvent::Delta(text.to_string()));
                }
            }
            Some("tool_use") => {
                events.push(ProviderEvent::ToolCallDelta {
                    index: tool_index,
                    id: block["id"].as_str().map(str::to_string),
                    name: block["name"].as_str().map(str::to_string),
                    arguments: block["input"].to_string(),
                });
                tool_index += 1;
            }
            _ => {}
        }
    }
    let reason = match message["stop_reason"].as_str() {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        _ => "stop",
    };
    events.push(ProviderEvent::Finish(reason.to_string()));
    let u = &message["usage"];
    let n = |v: &Value| v.as_u64().unwrap_or(0) as u32;
    let cached = n(&u["cache_read_input_tokens"]);
    events.push(ProviderEvent::Usage(Usage {
        input_tokens: n(&u["input_tokens"]) + cached + n(&u["cache_creation_input_tokens"]),
        output_tokens: n(&u["output_tokens"]),
        cached_tokens: cached,
        estimated: false,
    }));
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::providers::{ToolCall, ToolSpec};

    fn feed(state: &mut StreamState, event: &str, data: &str) -> Vec<ProviderEvent> {
        match state.parse(sse::SseEvent { event: event.into(), data: data.into() }).unwrap() {
            Parsed::Events(e) | Parsed::Done(e) => e,
        }
    }

    #[test]
    fn system_goes_apart_and_turns_alternate() {
        let mut assistant = ChatMessage::new(Role::Assistant, "let me check");
        assistant.tool_calls =
            vec![ToolCall { id: "t1".into(), name: "lookup".into(), arguments: r#"{"id":7}"#.into() }];
        let mut tool = ChatMessage::new(Role::Tool, "shipped");
        tool.tool_call_id = Some("t1".into());
        let request = ProviderRequest {
            upstream_model: "claude-haiku-4-5".into(),
            messages: vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::User, "where is order 7?"),
                assistant,
                tool,
                ChatMessage::new(Role::User, "thanks"),
            ],
            temperature: Some(1.5),
            tools: vec![ToolSpec {
                name: "lookup".into(),
                description: Some("d".into()),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: Some(ToolChoice::Required),
            ..Default::default()
        };
        let body = request_body(&request);
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["temperature"], 1.0);
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(body["tool_choice"]["type"], "any");
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3, "tool result and the next user turn merge: {messages:?}");
        assert_eq!(messages[1]["content"][1]["input"]["id"], 7);
        assert_eq!(messages[2]["content"][0]["type"], "tool_result");
        assert_eq!(messages[2]["content"][1]["text"], "thanks");
    }

    #[test]
    fn parses_a_whole_stream_with_usage_and_tool_use() {
        let mut s = StreamState::default();
        assert!(feed(&mut s, "message_start", r#"{"type":"message_start","message":{"usage":{"input_tokens":20,"cache_read_input_tokens":100,"output_tokens":1}}}"#).is_empty());
        assert_eq!(
            feed(&mut s, "content_block_delta", r#"{"index":0,"delta":{"type":"text_delta","text":"Hi"}}"#),
            vec![ProviderEvent::Delta("Hi".into())]
        );
        assert_eq!(
            feed(
                &mut s,
                "content_block_start",
                r#"{"index":1,"content_block":{"type":"tool_use","id":"tu","name":"f"}}"#
            ),
            vec![ProviderEvent::ToolCallDelta {
                index: 0,
                id: Some("tu".into()),
                name: Some("f".into()),
                arguments: String::new()
            }]
        );
        assert_eq!(
            feed(
                &mut s,
                "content_block_delta",
                r#"{"index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":1}"}}"#
            ),
            vec![ProviderEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: "{\"x\":1}".into() }]
        );
        assert!(feed(&mut s, "ping", r#"{"type":"ping"}"#).is_empty());
        assert_eq!(
            feed(&mut s, "message_delta", r#"{"delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":42}}"#),
            vec![ProviderEvent::Finish("tool_calls".into())]
        );
        let last =
            s.parse(sse::SseEvent { event: "message_stop".into(), data: r#"{"type":"message_stop"}"#.into() }).unwrap();
        let Parsed::Done(events) = last else { panic!("message_stop ends the stream") };
        assert_eq!(
            events,
            vec![ProviderEvent::Usage(Usage {
                input_tokens: 120,
                output_tokens: 42,
                cached_tokens: 100,
                estimated: false
            })]
        );
    }

    #[test]
    fn a_whole_message_becomes_the_same_events() {
        let message = json!({
            "content": [{"type": "text", "text": "Sure."}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}
        });
        assert_eq!(
            message_events(&message),
            vec![
                ProviderEvent::Delta("Sure.".into()),
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    id: Some("t".into()),
                    name: Some("f".into()),
                    arguments: r#"{"a":1}"#.into()
                },
                ProviderEvent::Finish("tool_calls".into()),
                ProviderEvent::Usage(Usage { input_tokens: 15, output_tokens: 7, cached_tokens: 5, estimated: false }),
            ]
        );
    }

    #[test]
    fn an_error_event_is_an_upstream_error() {
        let mut s = StreamState::default();
        let e = s.parse(sse::SseEvent {
            event: "error".into(),
            data: r#"{"error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
        });
        assert_eq!(e.err(), Some(ProviderError::Upstream { status: 529, message: "Overloaded".into() }));
    }
}
