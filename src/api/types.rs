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
    /// The customer's thumbs (1 or -1) on an answer, and their comment.
    pub rating: Option<i16>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Conversation {
    pub ticket_id: Option<Uuid>,
    pub ticket_ref: Option<String>,
    /// `open`, or `escalated` once a person has been asked to take over.
    pub status: String,
    pub messages: Vec<MessageView>,
    /// A message for the customer from a form sent without JavaScript
    /// (shown once).
    pub notice: Option<String>,
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
        at: DateTime<Utc>,
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

/// One row of a dashboard breakdown (by tier, model or complexity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakdownView {
    pub key: String,
    pub calls: i64,
    pub requests: i64,
    pub cost_micros: i64,
    /// What cache hits would have cost.
    pub saved_micros: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub cache_hit_rate: f64,
    pub error_rate: f64,
    /// Share of thumbs up among answers that got a verdict.
    pub thumbs_up_rate: Option<f64>,
    pub feedback: i64,
}

/// One day of one series (a tier, a model, or everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyPoint {
    pub day: chrono::NaiveDate,
    pub key: String,
    pub calls: i64,
    pub cost_micros: i64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}

/// The dashboard's overview for a filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub total: Option<BreakdownView>,
    pub by_tier: Vec<BreakdownView>,
    pub by_model: Vec<BreakdownView>,
    pub by_complexity: Vec<BreakdownView>,
    pub daily_by_tier: Vec<DailyPoint>,
    pub daily_by_model: Vec<DailyPoint>,
    pub daily_total: Vec<DailyPoint>,
    /// The premium tier's reference model, and what the same tokens would
    /// have cost on it.
    pub premium_model: Option<String>,
    pub premium_equivalent_micros: i64,
    /// The classifier's own LLM calls (`llm` and `cascade` classifiers).
    pub classify_cost_micros: i64,
}

/// A page of the requests list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestsPage {
    pub rows: Vec<CallView>,
    /// Matching rows, up to `domain::REQUESTS_COUNT_CAP`.
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
}

/// One LLM call in a ticket's flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowCallView {
    pub kind: String,
    pub classifier: Option<String>,
    pub complexity: Option<String>,
    pub confidence: Option<f32>,
    /// Why the classifier decided so.
    pub reason: Option<String>,
    pub tier: Option<String>,
    pub policy: Option<String>,
    /// Tier changes and their reasons (stickiness, escalation…).
    pub route: Option<String>,
    pub model: String,
    pub provider: String,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cost_micros: i64,
    pub saved_micros: i64,
    pub latency_ms: i32,
    pub ttft_ms: Option<i32>,
    pub cache_status: String,
    pub attempt: i32,
    pub status: String,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One customer turn: the question, every call it caused, the answer and
/// its feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnView {
    pub question: Option<String>,
    pub asked_at: Option<DateTime<Utc>>,
    /// `error` when no model answered.
    pub question_status: String,
    pub answer: Option<String>,
    pub answer_status: Option<String>,
    pub calls: Vec<FlowCallView>,
    pub rating: Option<i16>,
    pub comment: Option<String>,
    pub cost_micros: i64,
    pub latency_ms: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketFlow {
    pub id: Uuid,
    pub reference: String,
    pub source: String,
    pub status: String,
    pub user_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub turns: Vec<TurnView>,
    pub total_cost_micros: i64,
    pub total_saved_micros: i64,
    /// Sum of the turns' end-to-end latencies.
    pub total_latency_ms: i64,
    pub calls: usize,
    pub retries: usize,
}

/// A call in the misclassification review queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItemView {
    pub request_id: Uuid,
    pub ticket_ref: Option<String>,
    pub query: String,
    pub classifier: Option<String>,
    pub complexity: Option<String>,
    pub confidence: Option<f32>,
    pub reason: Option<String>,
    pub tier: Option<String>,
    pub model: String,
    pub rating: Option<i16>,
    pub comment: Option<String>,
    pub escalated: bool,
    /// The admin's label, once given.
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Classifier accuracy on reviewed items, per week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyPoint {
    pub week: chrono::NaiveDate,
    pub reviewed: i64,
    pub correct: i64,
}

/// The last (or current) retraining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RetrainStatus {
    pub running: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What happened, in a sentence.
    pub message: String,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewPage {
    pub items: Vec<ReviewItemView>,
    pub accuracy: Vec<AccuracyPoint>,
    pub labels: i64,
    pub retrain: RetrainStatus,
    /// Which classifier routes traffic now.
    pub classifier: String,
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmView {
    pub name: String,
    pub variant: String,
    pub tickets: i64,
    pub cost_per_ticket_micros: f64,
    pub latency_ms: f64,
    pub thumbs_up_rate: Option<f64>,
    pub verdicts: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentView {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub split_b: i32,
    pub created_at: DateTime<Utc>,
    pub a: ArmView,
    pub b: ArmView,
    pub cost_p_value: Option<f64>,
    pub thumbs_p_value: Option<f64>,
    pub readout: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRuleView {
    pub id: Uuid,
    pub name: String,
    pub metric: String,
    pub threshold: f64,
    pub webhook_url: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEventView {
    pub id: Uuid,
    pub rule: String,
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub fired_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub delivery: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsPage {
    pub rules: Vec<AlertRuleView>,
    pub history: Vec<AlertEventView>,
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
