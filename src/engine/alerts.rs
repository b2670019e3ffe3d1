//! Alerts: every `interval`, each enabled rule's metric is measured from
//! `llm_calls`; over the threshold, the rule fires once (an open event, and
//! a JSON POST to its webhook, retried with backoff) until the metric is
//! back under. Every instance runs the loop; the database lets only one of
//! them open an event, and only that one sends the webhook.

use std::time::Duration;

use sqlx::PgPool;

use crate::store::alerts::{self, Rule};

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// US dollars spent in the last hour.
    SpendHour,
    /// US dollars spent in the last 24 hours.
    SpendDay,
    /// Share of failed generation calls in the last 15 minutes (0–1).
    ErrorRate,
    /// 95th percentile latency of answered calls in the last 15 minutes, ms.
    P95Latency,
}

impl Metric {
    pub const ALL: [&'static str; 4] = ["spend_hour", "spend_day", "error_rate", "p95_latency"];

    pub fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "spend_hour" => Metric::SpendHour,
            "spend_day" => Metric::SpendDay,
            "error_rate" => Metric::ErrorRate,
            "p95_latency" => Metric::P95Latency,
            _ => return None,
        })
    }
}

pub async fn measure(pool: &PgPool, metric: Metric) -> Result<f64, sqlx::Error> {
    let sql = match metric {
        Metric::SpendHour => {
            "SELECT coalesce(sum(cost_micros), 0)::FLOAT8 / 1e6 FROM llm_calls WHERE created_at > now() - interval '1 hour'"
        }
        Metric::SpendDay => {
            "SELECT coalesce(sum(cost_micros), 0)::FLOAT8 / 1e6 FROM llm_calls WHERE created_at > now() - interval '1 day'"
        }
        Metric::ErrorRate => {
            "SELECT coalesce(avg((status = 'error')::int), 0)::FLOAT8 FROM llm_calls
             WHERE kind = 'generate' AND created_at > now() - interval '15 minutes'"
        }
        Metric::P95Latency => {
            "SELECT coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), 0)::FLOAT8 FROM llm_calls
             WHERE kind = 'generate' AND status = 'ok' AND created_at > now() - interval '15 minutes'"
        }
    };
    sqlx::query_scalar(sql).fetch_one(pool).await
}

/// The webhook's JSON body.
pub fn payload(rule: &Rule, event: uuid::Uuid, value: f64) -> serde_json::Value {
    serde_json::json!({
        "type": "triage.alert",
        "event_id": event,
        "rule_id": rule.id,
        "rule": rule.name,
        "metric": rule.metric,
        "value": value,
        "threshold": rule.threshold,
        "fired_at": chrono::Utc::now(),
        "dashboard": "/admin/alerts",
    })
}

/// Retry schedule for a webhook: 4 tries, waiting 1, 2, then 4 seconds.
const WEBHOOK_TRIES: i32 = 4;

/// Posts the alert; returns (delivered, attempts, last error).
pub async fn send_webhook(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> (bool, i32, Option<String>) {
    let mut last_error = None;
    for attempt in 1..=WEBHOOK_TRIES {
        match client.post(url).json(body).timeout(Duration::from_secs(5)).send().await {
            Ok(r) if r.status().is_success() => return (true, attempt, None),
            Ok(r) => last_error = Some(format!("HTTP {}", r.status().as_u16())),
            Err(e) => last_error = Some(e.to_string()),
        }
        if attempt < WEBHOOK_TRIES {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
    }
    (false, WEBHOOK_TRIES, last_error)
}

/// One pass over the rules: fire what crossed its threshold, resolve what
/// is back under. Webhooks are sent in their own tasks.
pub async fn evaluate(pool: &PgPool, client: &reqwest::Client) -> Result<usize, sqlx::Error> {
    let mut fired = 0;
    for rule in alerts::rules(pool).await?.into_iter().filter(|r| r.enabled) {
        let Some(metric) = Metric::parse(&rule.metric) else { continue };
        let value = measure(pool, metric).await?;
        if value > rule.threshold {
            let with_webhook = rule.webhook_url.is_some();
            if let Some(event) = alerts::fire(pool, rule.id, value, rule.threshold, with_webhook).await? {
                fired += 1;
                tracing::warn!(rule = %rule.name, value, threshold = rule.threshold, "alert fired");
                if let Some(url) = rule.webhook_url.clone() {
                    let (pool, client) = (pool.clone(), client.clone());
                    let body = payload(&rule, event, value);
                    tokio::spawn(async move {
                        let (ok, attempts, error) = send_webhook(&client, &url, &body).await;
                        if let Err(e) = alerts::delivered(&pool, event, ok, attempts, error.as_deref()).await {
                            tracing::error!(error = %e, "could not record the webhook delivery");
                        }
                    });
                }
            }
        } else {
            alerts::resolve(pool, rule.id).await?;
        }
    }
    Ok(fired)
}

/// Runs `evaluate` every `interval` until the process ends.
pub fn start(pool: PgPool, interval: Duration) {
    let client = crate::engine::providers::Providers::http_client();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = evaluate(&pool, &client).await {
                tracing::warn!(error = %e, "alert evaluation failed");
            }
        }
    });
}
