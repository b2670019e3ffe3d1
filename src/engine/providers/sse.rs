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
    /// The event's `data:` lines so far, joined by `\n`.
    data: String,
    /// Whether any `data:` line came (one may be empty).
    has_data: bool,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, ProviderError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        // Lines are read in place and the consumed prefix dropped once:
        // draining line by line moved the rest of the buffer for each line.
        let buffer = std::mem::take(&mut self.buffer);
        let mut consumed = 0;
        let mut result = Ok(());
        while let Some(len) = buffer[consumed..].iter().position(|b| *b == b'\n') {
            let line = &buffer[consumed..consumed + len];
            consumed += len + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Err(e) = self.line(line, &mut events) {
                result = Err(e);
                break;
            }
        }
        self.buffer = buffer;
        self.buffer.drain(..consumed);
        result.map(|()| events)
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        let line = std::str::from_utf8(line)
            .map_err(|_| ProviderError::BadResponse("invalid UTF-8 in the event stream".into()))?;
        if line.is_empty() {
            if self.has_data || !self.event.is_empty() {
                events.push(SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) });
                self.has_data = false;
            }
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(()); // comment / keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => value.clone_into(&mut self.event),
            "id" | "retry" => {}
            other => {
                return Err(ProviderError::BadResponse(format!("unexpected line in the event stream: {other:?}")));
            }
        }
        Ok(())
    }

    /// An event left without its terminating blank line when the stream ends.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let has_data = std::mem::take(&mut self.has_data);
        has_data.then(|| SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) })
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
    fn many_events_in_one_chunk_and_empty_data_lines() {
        let mut p = SseParser::default();
        let chunk = "data: a\n\ndata:\ndata:\n\nevent: ping\n\n".repeat(100) + "data: b\n";
        let events = p.push(chunk.as_bytes()).unwrap();
        assert_eq!(events.len(), 300);
        assert_eq!(events[0], SseEvent { event: String::new(), data: "a".into() });
        assert_eq!(events[1], SseEvent { event: String::new(), data: "\n".into() });
        assert_eq!(events[2], SseEvent { event: "ping".into(), data: String::new() });
        assert_eq!(p.finish().unwrap().data, "b");
        assert_eq!(p.finish(), None);
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
