//! A small Server-Sent Events parser over a byte stream: enough of the spec
//! for LLM APIs (`event:`, multi-line `data:`, comments, CRLF), and strict
//! about what it cannot read instead of guessing.

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::ProviderError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty when absent (OpenAI sends none).
    pub event: String,
    pub data: String,
}

/// Incremental parser: feed bytes, take complete events.
#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, ProviderError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop(); // \n
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line)
                .map_err(|_| ProviderError::BadResponse("invalid UTF-8 in the event stream".into()))?;
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    events.push(SseEvent { event: std::mem::take(&mut self.event), data: self.data.join("\n") });
                    self.data.clear();
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // comment / keep-alive
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "data" => self.data.push(value.to_string()),
                "event" => self.event = value.to_string(),
                "id" | "retry" => {}
                other => {
                    return Err(ProviderError::BadResponse(format!("unexpected line in the event stream: {other:?}")));
                }
            }
        }
        Ok(events)
    }

    /// An event left without its terminating blank line when the stream ends.
    pub fn finish(&mut self) -> Option<SseEvent> {
        (!self.data.is_empty()).then(|| SseEvent {
            event: std::mem::take(&mut self.event),
            data: self.data.drain(..).collect::<Vec<_>>().join("\n"),
        })
    }
}

/// Turns an HTTP body into a stream of SSE events.
pub fn events<S, E>(body: S) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + Unpin + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display,
{
    let state = (body, SseParser::default(), std::collections::VecDeque::<SseEvent>::new(), false);
    Box::pin(futures::stream::unfold(state, |(mut body, mut parser, mut queue, mut ended)| async move {
        loop {
            if let Some(event) = queue.pop_front() {
                return Some((Ok(event), (body, parser, queue, ended)));
            }
            if ended {
                return None;
            }
            match body.next().await {
                Some(Ok(bytes)) => match parser.push(&bytes) {
                    Ok(events) => queue.extend(events),
                    Err(e) => return Some((Err(e), (body, parser, queue, true))),
                },
                Some(Err(e)) => {
                    let error = ProviderError::BadResponse(format!("the connection broke mid-stream: {e}"));
                    return Some((Err(error), (body, parser, queue, true)));
                }
                None => {
                    ended = true;
                    if let Some(event) = parser.finish() {
                        queue.push_back(event);
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let text = "event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]\n\n";
        for split in 0..text.len() {
            let mut p = SseParser::default();
            let mut events = p.push(&text.as_bytes()[..split]).unwrap();
            events.extend(p.push(&text.as_bytes()[split..]).unwrap());
            assert_eq!(events.len(), 3, "split at {split}");
            assert_eq!(events[0], SseEvent { event: "message_start".into(), data: "{\"a\":1}".into() });
            assert_eq!(events[1].data, "line1\nline2");
            assert_eq!(events[2].data, "[DONE]");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_guess() {
        let mut p = SseParser::default();
        assert!(matches!(p.push(b"<html>oops</html>\n"), Err(ProviderError::BadResponse(_))));
    }

    #[test]
    fn an_unterminated_last_event_is_kept() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: tail").unwrap().is_empty());
        assert!(p.push(b"\n").unwrap().is_empty());
        assert_eq!(p.finish().unwrap().data, "tail");
    }
}
