//! A fake LLM provider on 127.0.0.1: OpenAI Chat Completions at
//! `/v1/chat/completions` and Anthropic Messages at `/v1/messages`, with a
//! script of behaviours per model (faults included) and a log of every call.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub enum Behavior {
    /// A normal streamed answer with this usage (input, output, cached).
    Answer {
        chunks: Vec<String>,
        usage: Option<(u32, u32, u32)>,
    },
    Status(u16),
    RateLimited {
        retry_after_secs: u32,
    },
    SlowFirstByte(Duration),
    /// Sends the first chunks, then drops the connection.
    DropAfter(usize),
    /// A 200 event stream whose first event is not JSON.
    MalformedSse,
    /// A 200 `application/json` body that does not parse.
    InvalidJson,
    /// A 200 event stream that is not SSE at all.
    Garbage,
    /// A streamed tool call (OpenAI shape), arguments in two pieces.
    ToolCall {
        name: String,
        arguments: String,
    },
}

impl Behavior {
    pub fn answer(text: &str, usage: (u32, u32, u32)) -> Self {
        Behavior::Answer { chunks: text.split_inclusive(' ').map(str::to_string).collect(), usage: Some(usage) }
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub model: String,
    pub body: Value,
    pub headers: HeaderMap,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, VecDeque<Behavior>>,
    calls: Vec<Call>,
}

#[derive(Clone, Default)]
pub struct FakeUpstream {
    inner: Arc<Mutex<Inner>>,
    pub base_url: String,
    /// Pause between streamed events (so tests see a real stream).
    chunk_delay: Duration,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        Self::start_with_delay(Duration::from_millis(2)).await
    }

    /// `Duration::ZERO` streams as fast as it can (for benchmarks).
    pub async fn start_with_delay(chunk_delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeUpstream { base_url: format!("http://{addr}/v1"), chunk_delay, ..Default::default() };
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/v1/messages", post(handle))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// Queues behaviours for a model; after the queue runs out it answers.
    pub fn script(&self, model: &str, behaviors: impl IntoIterator<Item = Behavior>) {
        self.inner.lock().unwrap().scripts.entry(model.to_string()).or_default().extend(behaviors);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn calls_for(&self, model: &str) -> usize {
        self.inner.lock().unwrap().calls.iter().filter(|c| c.model == model).count()
    }
}

async fn handle(State(fake): State<FakeUpstream>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let anthropic = uri.path().ends_with("/messages");
    let behavior = {
        let mut inner = fake.inner.lock().unwrap();
        inner.calls.push(Call {
            path: uri.path().to_string(),
            model: model.clone(),
            body,
            headers,
            at: Instant::now(),
        });
        inner.scripts.get_mut(&model).and_then(VecDeque::pop_front)
    };
    let behavior = behavior.unwrap_or_else(|| Behavior::answer("Hello from the fake upstream.", (20, 7, 0)));
    let delay = fake.chunk_delay;
    let sse = |events: Vec<String>| sse_response(events.into_iter().map(Ok::<_, std::io::Error>).collect(), delay);
    match behavior {
        Behavior::Answer { chunks, usage } => {
            sse(if anthropic { anthropic_events(&model, &chunks, usage) } else { openai_events(&chunks, usage) })
        }
        Behavior::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            (status, axum::Json(json!({"error": {"message": format!("fake status {code}"), "type": "server_error"}})))
                .into_response()
        }
        Behavior::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            axum::Json(json!({"error": {"message": "slow down", "type": "rate_limit_error"}})),
        )
            .into_response(),
        Behavior::SlowFirstByte(delay) => {
            tokio::time::sleep(delay).await;
            sse(openai_events(&["late ".into(), "answer".into()], Some((10, 2, 0))))
        }
        Behavior::DropAfter(n) => {
            let chunks: Vec<String> = (0..10).map(|i| format!("part{i} ")).collect();
            let events = if anthropic {
                anthropic_events(&model, &chunks, Some((10, 10, 0)))
            } else {
                openai_events(&chunks, Some((10, 10, 0)))
            };
            // the first n content events, then a broken connection
            let skip = if anthropic { 2 } else { 0 };
            let mut items: Vec<Result<String, std::io::Error>> = events.into_iter().take(skip + n).map(Ok).collect();
            items.push(Err(std::io::Error::other("connection reset by fake")));
            sse_response(items, delay)
        }
        Behavior::MalformedSse => sse(vec!["data: {\"choices\": [oops\n\n".into()]),
        Behavior::InvalidJson => ([(header::CONTENT_TYPE, "application/json")], "{\"choices\": [").into_response(),
        Behavior::Garbage => sse(vec!["<html>502 Bad Gateway</html>\n".into()]),
        Behavior::ToolCall { name, arguments } => {
            let (a, b) = arguments.split_at(arguments.len() / 2);
            let delta = |d: Value| format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": d}]}));
            sse(vec![
                delta(json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": name, "arguments": a}}]})),
                delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]})),
                format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
                format!(
                    "data: {}\n\n",
                    json!({"choices": [], "usage": {"prompt_tokens": 90, "completion_tokens": 25}})
                ),
                "data: [DONE]\n\n".into(),
            ])
        }
    }
}

fn sse_response(items: Vec<Result<String, std::io::Error>>, delay: Duration) -> Response {
    let stream = futures::stream::iter(items).then(move |item| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await; // arrive as a stream, not one write
        }
        item.map(Bytes::from)
    });
    Response::builder().header(header::CONTENT_TYPE, "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

use futures::StreamExt;

fn openai_events(chunks: &[String], usage: Option<(u32, u32, u32)>) -> Vec<String> {
    let mut events = vec![format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    )];
    for c in chunks {
        events.push(format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": c}}]})));
    }
    events.push(format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
    if let Some((i, o, c)) = usage {
        events.push(format!(
            "data: {}\n\n",
            json!({"choices": [], "usage": {"prompt_tokens": i, "completion_tokens": o, "prompt_tokens_details": {"cached_tokens": c}}})
        ));
    }
    events.push("data: [DONE]\n\n".into());
    events
}

fn anthropic_events(model: &str, chunks: &[String], usage: Option<(u32, u32, u32)>) -> Vec<String> {
    let (input, output, cached) = usage.unwrap_or((0, 0, 0));
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"model": model, "usage": {"input_tokens": input - cached, "cache_read_input_tokens": cached, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for c in chunks {
        events.push(ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}}),
        ));
    }
    events.push(ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    events.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output}}),
    ));
    events.push(ev("message_stop", json!({"type": "message_stop"})));
    events
}
