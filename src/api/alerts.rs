//! Alert rules and their history, and the open alerts for the banner.

use leptos::prelude::*;
use uuid::Uuid;

use super::AppError;
#[cfg(feature = "ssr")]
use super::admin::require_admin;
#[cfg(feature = "ssr")]
use super::types::AlertRuleView;
use super::types::{AlertEventView, AlertsPage};

#[cfg(feature = "ssr")]
fn event_view(e: crate::store::alerts::Event) -> AlertEventView {
    AlertEventView {
        id: e.id,
        rule: e.rule_name,
        metric: e.metric,
        value: e.value,
        threshold: e.threshold,
        fired_at: e.fired_at,
        resolved_at: e.resolved_at,
        delivery: e.delivery,
        attempts: e.attempts,
        last_error: e.last_error,
    }
}

#[server(prefix = "/api/admin", endpoint = "alerts")]
pub async fn alerts() -> Result<AlertsPage, AppError> {
    use crate::store::alerts;

    require_admin().await?;
    let state = super::state()?;
    let (rules, history) = tokio::try_join!(alerts::rules(&state.pool), alerts::history(&state.pool, 100))?;
    Ok(AlertsPage {
        rules: rules
            .into_iter()
            .map(|r| AlertRuleView {
                id: r.id,
                name: r.name,
                metric: r.metric,
                threshold: r.threshold,
                webhook_url: r.webhook_url,
                enabled: r.enabled,
            })
            .collect(),
        history: history.into_iter().map(event_view).collect(),
    })
}

/// Alerts firing now (the dashboard's banner).
#[server(prefix = "/api/admin", endpoint = "open_alerts")]
pub async fn open_alerts() -> Result<Vec<AlertEventView>, AppError> {
    require_admin().await?;
    let state = super::state()?;
    Ok(crate::store::alerts::open(&state.pool).await?.into_iter().map(event_view).collect())
}

/// Adds a rule. `metric`: spend_hour or spend_day (USD), error_rate
/// (0–1 over 15 minutes), p95_latency (ms over 15 minutes).
#[server(prefix = "/api/admin", endpoint = "create_alert_rule")]
pub async fn create_alert_rule(
    name: String,
    metric: String,
    threshold: f64,
    #[server(default)] webhook_url: Option<String>,
) -> Result<(), AppError> {
    use crate::engine::alerts::Metric;

    require_admin().await?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::BadRequest("Give the rule a name (up to 100 characters).".into()));
    }
    if Metric::parse(&metric).is_none() {
        return Err(AppError::BadRequest(format!("metric must be one of {}", Metric::ALL.join(", "))));
    }
    if !threshold.is_finite() || threshold < 0.0 {
        return Err(AppError::BadRequest("The threshold must be a positive number.".into()));
    }
    let webhook = webhook_url.map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
    if let Some(u) = &webhook
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        return Err(AppError::BadRequest("The webhook must be an http(s) URL.".into()));
    }
    let state = super::state()?;
    crate::store::alerts::create_rule(&state.pool, name, &metric, threshold, webhook.as_deref()).await?;
    Ok(())
}

#[server(prefix = "/api/admin", endpoint = "delete_alert_rule")]
pub async fn delete_alert_rule(id: Uuid) -> Result<(), AppError> {
    require_admin().await?;
    let state = super::state()?;
    if !crate::store::alerts::delete_rule(&state.pool, id).await? {
        return Err(AppError::NotFound("No such rule.".into()));
    }
    Ok(())
}

/// Checks every rule now instead of waiting for the next round.
#[server(prefix = "/api/admin", endpoint = "check_alerts")]
pub async fn check_alerts() -> Result<usize, AppError> {
    require_admin().await?;
    let state = super::state()?;
    let client = crate::engine::providers::Providers::http_client();
    Ok(crate::engine::alerts::evaluate(&state.pool, &client).await?)
}
