//! OpenAI Chat Completions, for any compatible endpoint (OpenAI, OpenRouter,
//! Eden AI, Together, Groq, vLLM, Ollama, llama.cpp server, Google's
//! OpenAI-compatible Gemini endpoint). Always streams upstream with
//! `stream_options.include_usage`, so cost comes from reported usage.

use serde_json::{Value, json};

use super::{
    AttemptLimits, ChatMessage, Endpoint, EventReceiver, Parsed, ProviderError, ProviderEvent, ProviderRequest, Role,
    ToolChoice, is_event_stream, pump, send, sse, whole_body,
};
use crate::engine::pricing::Usage;

pub fn request_body(request: &ProviderRequest) -> Value {
    let messages: Vec<Value> = request.messages.iter().map(message_json).collect();
    let mut body = json!({
        "model": request.upstream_model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let o = body.as_object_mut().expect("object");
    if let Some(n) = request.max_tokens {
        o.insert("max_tokens".into(), n.into());
    }
    if let Some(t) = request.temperature {
        o.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        o.insert("top_p".into(), json!(p));
    }
    if !request.stop.is_empty() {
        o.insert("stop".into(), json!(request.stop));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
        o.insert("tools".into(), tools.into());
    }
    if let Some(choice) = &request.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
        };
        o.insert("tool_choice".into(), v);
    }
    body
}

fn message_json(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role.as_str(), "content": m.content});
    if m.role == Role::Assistant && !m.tool_calls.is_empty() {
        let calls: Vec<Value> = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        v["tool_calls"] = calls.into();
        if m.content.is_empty() {
            v["content"] = Value::Null;
        }
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = id.clone().into();
    }
    v
}

/// One `data:` payload of the stream.
pub fn parse_event(event: sse::SseEvent) -> Result<Parsed, ProviderError> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(Parsed::Done(Vec::new()));
    }
    let chunk: Value = serde_json::from_str(data)
        .map_err(|e| ProviderError::BadResponse(format!("invalid JSON in the stream: {e}")))?;
    if let Some(error) = chunk.get("error") {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("error in stream").to_string();
        return Err(ProviderError::Upstream { status: 502, message });
    }
    Ok(Parsed::Events(chunk_events(&chunk)))
}

/// Events of a streamed chunk or of a whole (non-streamed) completion.
fn chunk_events(chunk: &Value) -> Vec<ProviderEvent> {
    let mut events = Vec::new();
    if let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) {
        // `delta` in a stream, `message` in a whole completion
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        if let Some(delta) = delta {
            if let Some(text) = delta.get("content").and_then(Value::as_str)
                && !text.is_empty()
            {
                events.push(ProviderEvent::Delta(text.to_string()));
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for (position, call) in calls.iter().enumerate() {
                    let function = call.get("function");
                    events.push(ProviderEvent::ToolCallDelta {
                        index: call.get("index").and_then(Value::as_u64).unwrap_or(position as u64) as u32,
                        id: call.get("id").and_then(Value::as_str).map(str::to_string),
                        name: function.and_then(|f| f.get("name")).and_then(Value::as_str).map(str::to_string),
                        arguments: function
                            .and_then(|f| f.get("arguments"))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    });
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            events.push(ProviderEvent::Finish(reason.to_string()));
        }
    }
    if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
        let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0) as u32;
        events.push(ProviderEvent::Usage(Usage {
            input_tokens: n(usage.get("prompt_tokens")),
            output_tokens: n(usage.get("completion_tokens")),
            cached_tokens: n(usage.pointer("/prompt_tokens_details/cached_tokens")),
            estimated: false,
        }));
    }
    events
}

pub async fn stream(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    request: ProviderRequest,
    limits: AttemptLimits,
) -> Result<EventReceiver, ProviderError> {
    let url = format!("{}/chat/completions", endpoint.base_url.trim_end_matches('/'));
    let mut builder = http.post(&url).json(&request_body(&request));
    if !endpoint.api_key.expose().is_empty() {
        builder = builder.bearer_auth(endpoint.api_key.expose());
    }
    let response = send(builder, limits).await?;
    if !is_event_stream(&response) {
        // Some compatible servers ignore `stream`: accept a whole completion.
        return whole_body(response, limits, chunk_events).await;
    }
    pump(sse::events(response.bytes_stream()), parse_event, limits).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::providers::{ToolCall, ToolSpec};

    fn parse(data: &str) -> Vec<ProviderEvent> {
        match parse_event(sse::SseEvent { event: String::new(), data: data.into() }).unwrap() {
            Parsed::Events(e) | Parsed::Done(e) => e,
        }
    }

    #[test]
    fn body_asks_for_usage_and_passes_tools() {
        let mut assistant = ChatMessage::new(Role::Assistant, "");
        assistant.tool_calls = vec![ToolCall { id: "c1".into(), name: "f".into(), arguments: "{}".into() }];
        let mut tool = ChatMessage::new(Role::Tool, "42");
        tool.tool_call_id = Some("c1".into());
        let request = ProviderRequest {
            upstream_model: "gpt-4o-mini".into(),
            messages: vec![ChatMessage::new(Role::User, "hi"), assistant, tool],
            max_tokens: Some(10),
            temperature: Some(0.0),
            tools: vec![ToolSpec { name: "f".into(), description: None, parameters: json!({"type": "object"}) }],
            tool_choice: Some(ToolChoice::Function("f".into())),
            ..Default::default()
        };
        let body = request_body(&request);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_tokens"], 10);
        assert_eq!(body["tools"][0]["function"]["name"], "f");
        assert_eq!(body["tool_choice"]["function"]["name"], "f");
        assert_eq!(body["messages"][1]["content"], Value::Null);
        assert_eq!(body["messages"][1]["tool_calls"][0]["id"], "c1");
        assert_eq!(body["messages"][2]["tool_call_id"], "c1");
    }

    #[test]
    fn parses_deltas_tool_calls_finish_and_usage() {
        assert_eq!(
            parse(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}"#),
            vec![ProviderEvent::Delta("Hel".into())]
        );
        assert_eq!(
            parse(
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"a"}}]}}]}"#
            ),
            vec![ProviderEvent::ToolCallDelta {
                index: 0,
                id: Some("c".into()),
                name: Some("f".into()),
                arguments: "{\"a".into()
            }]
        );
        assert_eq!(
            parse(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#),
            vec![ProviderEvent::Finish("stop".into())]
        );
        assert_eq!(
            parse(
                r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}}"#
            ),
            vec![ProviderEvent::Usage(Usage {
                input_tokens: 12,
                output_tokens: 5,
                cached_tokens: 4,
                estimated: false
            })]
        );
        assert!(parse("[DONE]").is_empty());
    }

    #[test]
    fn bad_json_and_in_stream_errors_are_errors() {
        let bad = parse_event(sse::SseEvent { event: String::new(), data: "{not json".into() });
        assert!(matches!(bad, Err(ProviderError::BadResponse(_))));
        let err =
            parse_event(sse::SseEvent { event: String::new(), data: r#"{"error":{"message":"overloaded"}}"#.into() });
        assert!(matches!(err, Err(ProviderError::Upstream { .. })));
    }
}
