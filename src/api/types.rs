//! DTOs shared by the server functions and the browser.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Complexity, Tier};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: Uuid,
    pub role: String,
    pub content: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Conversation {
    pub ticket_id: Option<Uuid>,
    pub ticket_ref: Option<String>,
    pub messages: Vec<MessageView>,
}

/// One line of the chat stream (newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    Started {
        ticket_id: Uuid,
        ticket_ref: String,
        request_id: Uuid,
        complexity: Option<Complexity>,
        tier: Option<Tier>,
        model: String,
    },
    Delta {
        text: String,
    },
    Done {
        message_id: Option<Uuid>,
        model: String,
        input_tokens: u32,
        output_tokens: u32,
        cost_micros: i64,
        latency_ms: u32,
        ttft_ms: Option<u32>,
    },
    Error {
        message: String,
        partial: bool,
    },
}

/// A row of the admin requests list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub ticket_ref: Option<String>,
    pub kind: String,
    pub classifier: Option<String>,
    pub complexity: Option<String>,
    pub confidence: Option<f32>,
    pub tier: Option<String>,
    pub model: String,
    pub provider: String,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cost_micros: i64,
    pub latency_ms: i32,
    pub ttft_ms: Option<i32>,
    pub cache_status: String,
    pub attempt: i32,
    pub status: String,
    pub error: Option<String>,
}

/// Micro-dollars as `$0.000123`, trimmed to what matters.
pub fn format_micros(micros: i64) -> String {
    let dollars = micros as f64 / 1_000_000.0;
    if micros == 0 {
        "$0".to_string()
    } else if micros.abs() < 10_000 {
        format!("${dollars:.6}")
    } else {
        format!("${dollars:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_events_are_tagged_json_lines() {
        let e = StreamEvent::Delta { text: "hi\n".into() };
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(line, r#"{"type":"delta","text":"hi\n"}"#);
        assert!(!line.contains('\n'), "a JSON line must not contain a raw newline");
        assert_eq!(serde_json::from_str::<StreamEvent>(&line).unwrap(), e);
    }

    #[test]
    fn money_formats() {
        assert_eq!(format_micros(0), "$0");
        assert_eq!(format_micros(1), "$0.000001");
        assert_eq!(format_micros(12_500_000), "$12.5000");
    }
}
