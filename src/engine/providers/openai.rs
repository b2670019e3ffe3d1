//! OpenAI Chat Completions, for any compatible endpoint (OpenAI, OpenRouter,
//! Eden AI, Together, Groq, vLLM, Ollama, llama.cpp server, Google's
//! OpenAI-compatible Gemini endpoint). Always streams upstream with
//! `stream_options.include_usage`, so cost comes from reported usage.

use serde::Serialize;
use serde_json::Value;

use super::{
    AttemptLimits, ChatMessage, Endpoint, EventReceiver, Parsed, ProviderError, ProviderEvent, ProviderRequest, Role,
    ToolChoice, ToolSpec, is_event_stream, pump, send, sse, whole_body,
};
use crate::engine::pricing::Usage;

/// The request body, serialized straight from the request's fields: no
/// `serde_json::Value` tree is built and torn down per call.
pub fn request_body(request: &ProviderRequest) -> Body<'_> {
    Body {
        model: &request.upstream_model,
        messages: request.messages.iter().map(WireMessage::from).collect(),
        stream: true,
        stream_options: StreamOptions { include_usage: true },
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stop: &request.stop,
        tools: request.tools.iter().map(|t| WireTool { kind: "function", function: t }).collect(),
        tool_choice: request.tool_choice.as_ref().map(|c| match c {
            ToolChoice::Auto => WireToolChoice::Mode("auto"),
            ToolChoice::None => WireToolChoice::Mode("none"),
            ToolChoice::Required => WireToolChoice::Mode("required"),
            ToolChoice::Function(name) => {
                WireToolChoice::Function { kind: "function", function: FunctionName { name } }
            }
        }),
    }
}

#[derive(Serialize)]
pub struct Body<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    /// `null` for an assistant turn that only called tools.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> From<&'a ChatMessage> for WireMessage<'a> {
    fn from(m: &'a ChatMessage) -> Self {
        let calls = m.role == Role::Assistant && !m.tool_calls.is_empty();
        WireMessage {
            role: m.role.as_str(),
            content: (!calls || !m.content.is_empty()).then_some(m.content.as_str()),
            tool_calls: if calls {
                m.tool_calls
                    .iter()
                    .map(|c| WireToolCall {
                        id: &c.id,
                        kind: "function",
                        function: WireFunctionCall { name: &c.name, arguments: &c.arguments },
                    })
                    .collect()
            } else {
                Vec::new()
            },
            tool_call_id: m.tool_call_id.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: &'a ToolSpec,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireToolChoice<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: FunctionName<'a>,
    },
}

#[derive(Serialize)]
struct FunctionName<'a> {
    name: &'a str,
}

/// One `data:` payload of the stream.
pub fn parse_event(event: sse::SseEvent) -> Result<Parsed, ProviderError> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(Parsed::Done(Vec::new()));
    }
    // The usual chunk shape is read straight into borrowed structs; anything
    // unusual (content as parts, odd types) goes the lenient `Value` way.
    if let Ok(chunk) = serde_json::from_str::<wire::Chunk>(data)
        && chunk.error.is_none()
    {
        return Ok(Parsed::Events(chunk.events()));
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

/// A streamed chunk as OpenAI-compatible servers send it, borrowing from
/// the event's text where no unescaping is needed.
mod wire {
    use std::borrow::Cow;

    use serde::Deserialize;

    use super::ProviderEvent;
    use crate::engine::pricing::Usage;

    #[derive(Deserialize)]
    pub struct Chunk<'a> {
        #[serde(borrow, default)]
        choices: Option<Vec<Choice<'a>>>,
        #[serde(default)]
        usage: Option<UsageCounts>,
        /// Only whether it is there: errors take the `Value` path.
        #[serde(default)]
        pub error: Option<serde::de::IgnoredAny>,
    }

    #[derive(Deserialize)]
    struct Choice<'a> {
        #[serde(borrow, default)]
        delta: Option<Delta<'a>>,
        #[serde(borrow, default)]
        message: Option<Delta<'a>>,
        #[serde(borrow, default)]
        finish_reason: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    struct Delta<'a> {
        #[serde(borrow, default)]
        content: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        tool_calls: Option<Vec<ToolCall<'a>>>,
    }

    #[derive(Deserialize)]
    struct ToolCall<'a> {
        #[serde(default)]
        index: Option<u32>,
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        function: Option<Function<'a>>,
    }

    #[derive(Deserialize)]
    struct Function<'a> {
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        arguments: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    struct UsageCounts {
        #[serde(default)]
        prompt_tokens: Option<u32>,
        #[serde(default)]
        completion_tokens: Option<u32>,
        #[serde(default)]
        prompt_tokens_details: Option<Details>,
    }

    #[derive(Deserialize)]
    struct Details {
        #[serde(default)]
        cached_tokens: Option<u32>,
    }

    impl Chunk<'_> {
        /// The same events `chunk_events` reads from a `Value`.
        pub fn events(self) -> Vec<ProviderEvent> {
            let mut events = Vec::new();
            if let Some(choice) = self.choices.and_then(|c| c.into_iter().next()) {
                if let Some(delta) = choice.delta.or(choice.message) {
                    if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                        events.push(ProviderEvent::Delta(text.into_owned()));
                    }
                    for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                        let (name, arguments) = match call.function {
                            Some(f) => (f.name, f.arguments),
                            None => (None, None),
                        };
                        events.push(ProviderEvent::ToolCallDelta {
                            index: call.index.unwrap_or(position as u32),
                            id: call.id.map(Cow::into_owned),
                            name: name.map(Cow::into_owned),
                            arguments: arguments.map(Cow::into_owned).unwrap_or_default(),
                        });
                    }
                }
                if let Some(reason) = choice.finish_reason {
                    events.push(ProviderEvent::Finish(reason.into_owned()));
                }
            }
            if let Some(u) = self.usage {
                events.push(ProviderEvent::Usage(Usage {
                    input_tokens: u.prompt_tokens.unwrap_or(0),
                    output_tokens: u.completion_tokens.unwrap_or(0),
                    cached_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
                    estimated: false,
                }));
            }
            events
        }
    }
}

pub async fn stream(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    request: ProviderRequest,
    limits: AttemptLimits,
) -> Result<EventReceiver, ProviderError> {
    let mut builder = http.post(endpoint.url.clone()).json(&request_body(&request));
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
    use serde_json::json;

    use crate::engine::providers::ToolCall;

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
        let body = serde_json::to_value(request_body(&request)).unwrap();
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
    fn the_typed_and_lenient_readings_agree() {
        for data in [
            r#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"a \"quoted\" \u00e9"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":null,"tool_calls":[{"index":1,"id":"c","type":"function","function":{"name":"f","arguments":"{}"}},{"function":{"arguments":"x"}}]}}]}"#,
            r#"{"choices":[{"message":{"content":"whole"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":null}}"#,
            r#"{"choices":[],"usage":null}"#,
            r#"{"choices":null}"#,
            r#"{}"#,
        ] {
            let typed = serde_json::from_str::<wire::Chunk>(data).expect(data).events();
            let lenient = chunk_events(&serde_json::from_str(data).unwrap());
            assert_eq!(typed, lenient, "{data}");
            assert_eq!(parse(data), lenient, "{data}");
        }
        // shapes the typed reading refuses still parse, the lenient way
        assert_eq!(
            parse(r#"{"choices":[{"delta":{"content":[{"type":"text","text":"x"}]},"finish_reason":"stop"}]}"#),
            vec![ProviderEvent::Finish("stop".into())]
        );
        assert!(serde_json::from_str::<wire::Chunk>(r#"{"choices":[{"delta":{"content":[1]}}]}"#).is_err());
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
