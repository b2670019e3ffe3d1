//! Splits the chat stream's bytes into `StreamEvent`s. Network chunks can
//! end anywhere, even inside a multi-byte character, so bytes are kept
//! until a whole line has arrived.

use crate::api::types::StreamEvent;

#[derive(Default)]
pub struct LineDecoder {
    pending: Vec<u8>,
}

impl LineDecoder {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Ok(event) = serde_json::from_slice(&line[..end]) {
                events.push(event);
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_lines_split_anywhere() {
        let a = serde_json::to_string(&StreamEvent::Delta { text: "héllo 👍".into() }).unwrap() + "\n";
        let b = serde_json::to_string(&StreamEvent::Error { message: "x".into(), partial: true }).unwrap() + "\n";
        let all = format!("{a}{b}").into_bytes();
        for split in 0..all.len() {
            let mut d = LineDecoder::default();
            let mut events = d.push(&all[..split]);
            events.extend(d.push(&all[split..]));
            assert_eq!(events.len(), 2, "split at {split}");
            assert_eq!(events[0], StreamEvent::Delta { text: "héllo 👍".into() });
        }
    }
}
