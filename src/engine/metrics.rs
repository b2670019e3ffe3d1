//! Prometheus metrics, counted from the call log (every LLM call passes
//! there exactly once): calls, cost, tokens and a latency histogram, by
//! kind, tier, model, cache status and outcome. Rendered in the text
//! exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::store::llm_calls::CallRecord;

/// Latency buckets, seconds (upper bounds; +Inf is implied).
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Labels {
    kind: &'static str,
    tier: String,
    model: String,
    cache: String,
    status: String,
}

#[derive(Debug, Clone, Default)]
struct Series {
    calls: u64,
    cost_micros: i64,
    input_tokens: u64,
    output_tokens: u64,
    buckets: [u64; BUCKETS.len()],
    latency_sum: f64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<Labels, Series>>,
}

impl Metrics {
    pub fn observe(&self, r: &CallRecord) {
        let labels = Labels {
            kind: r.kind,
            tier: r.tier.clone().unwrap_or_default(),
            model: r.model.clone(),
            cache: r.cache_status.clone(),
            status: r.status.clone(),
        };
        let seconds = f64::from(r.latency_ms.max(0)) / 1000.0;
        let mut all = self.series.lock().expect("metrics lock");
        let s = all.entry(labels).or_default();
        s.calls += 1;
        s.cost_micros += r.cost_micros;
        s.input_tokens += r.input_tokens.max(0) as u64;
        s.output_tokens += r.output_tokens.max(0) as u64;
        s.latency_sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let all = self.series.lock().expect("metrics lock").clone();
        let mut out = String::new();
        let label = |l: &Labels| {
            format!(
                "kind=\"{}\",tier=\"{}\",model=\"{}\",cache=\"{}\",status=\"{}\"",
                l.kind,
                escape(&l.tier),
                escape(&l.model),
                escape(&l.cache),
                escape(&l.status)
            )
        };
        let mut counter = |name: &str, help: &str, value: &dyn Fn(&Series) -> String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (l, s) in &all {
                let _ = writeln!(out, "{name}{{{}}} {}", label(l), value(s));
            }
        };
        counter("triage_llm_calls_total", "LLM calls (attempts and cache hits).", &|s| s.calls.to_string());
        counter("triage_cost_usd_total", "Cost of LLM calls in US dollars.", &|s| {
            format!("{:.6}", s.cost_micros as f64 / 1e6)
        });
        counter("triage_input_tokens_total", "Prompt tokens.", &|s| s.input_tokens.to_string());
        counter("triage_output_tokens_total", "Completion tokens.", &|s| s.output_tokens.to_string());
        let name = "triage_llm_call_duration_seconds";
        let _ = writeln!(out, "# HELP {name} LLM call latency.\n# TYPE {name} histogram");
        for (l, s) in &all {
            let labels = label(l);
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {}", s.buckets[i]);
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.calls);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {:.6}", s.latency_sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.calls);
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, latency_ms: i32, cost: i64) -> CallRecord {
        CallRecord {
            id: uuid::Uuid::new_v4(),
            request_id: uuid::Uuid::new_v4(),
            ticket_id: None,
            api_key_id: None,
            user_id: None,
            kind: "generate",
            classifier: None,
            complexity: None,
            confidence: None,
            reason: None,
            tier: Some("budget".into()),
            policy: None,
            route: None,
            model: model.into(),
            provider: "openai".into(),
            input_tokens: 100,
            output_tokens: 20,
            cached_tokens: 0,
            tokens_estimated: false,
            cost_micros: cost,
            saved_micros: 0,
            latency_ms,
            ttft_ms: None,
            cache_status: "miss".into(),
            attempt: 1,
            status: "ok".into(),
            error: None,
            experiment_id: None,
            variant: None,
            properties: serde_json::json!({}),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn counts_and_buckets_render_in_the_text_format() {
        let m = Metrics::default();
        m.observe(&record("m\"x", 30, 1500));
        m.observe(&record("m\"x", 700, 500));
        let text = m.render();
        let labels = r#"kind="generate",tier="budget",model="m\"x",cache="miss",status="ok""#;
        assert!(text.contains(&format!("triage_llm_calls_total{{{labels}}} 2")), "{text}");
        assert!(text.contains(&format!("triage_cost_usd_total{{{labels}}} 0.002000")), "{text}");
        assert!(text.contains(&format!("triage_input_tokens_total{{{labels}}} 200")), "{text}");
        assert!(text.contains(&format!("triage_llm_call_duration_seconds_bucket{{{labels},le=\"0.05\"}} 1")), "{text}");
        assert!(text.contains(&format!("triage_llm_call_duration_seconds_bucket{{{labels},le=\"1\"}} 2")), "{text}");
        assert!(text.contains(&format!("triage_llm_call_duration_seconds_count{{{labels}}} 2")), "{text}");
        assert!(text.contains("# TYPE triage_llm_call_duration_seconds histogram"));
    }
}
