//! `/admin/alerts`: rules on spend, error rate and latency, their webhook,
//! and the history of what fired. The banner on every admin page shows
//! what is firing now.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::alerts::{CheckAlerts, CreateAlertRule, DeleteAlertRule, alerts, open_alerts};
use crate::api::types::{AlertEventView, AlertsPage};

#[component]
pub fn AlertsPage() -> impl IntoView {
    let create = ServerAction::<CreateAlertRule>::new();
    let delete = ServerAction::<DeleteAlertRule>::new();
    let check = ServerAction::<CheckAlerts>::new();
    let data =
        Resource::new(move || (create.version().get(), delete.version().get(), check.version().get()), |_| alerts());
    view! {
        <Title text="Alerts · Triage admin"/>
        <super::AdminNav/>
        <div class="admin">
            <header class="admin-header">
                <h1>"Alerts"</h1>
                <button class="button" on:click=move |_| { check.dispatch(CheckAlerts {}); } data-testid="check-alerts">"Check now"</button>
            </header>
            <ActionForm action=create attr:class="filters">
                <label><span>"Name"</span><input name="name" required placeholder="Daily spend" data-testid="rule-name"/></label>
                <label><span>"Metric"</span>
                    <select name="metric" data-testid="rule-metric">
                        <option value="spend_day">"Spend, last 24 h (USD)"</option>
                        <option value="spend_hour">"Spend, last hour (USD)"</option>
                        <option value="error_rate">"Error rate, 15 min (0–1)"</option>
                        <option value="p95_latency">"p95 latency, 15 min (ms)"</option>
                    </select>
                </label>
                <label><span>"Above"</span><input name="threshold" type="number" step="any" min="0" required data-testid="rule-threshold"/></label>
                <label class="wide"><span>"Webhook (optional)"</span><input name="webhook_url" type="url" placeholder="https://hooks.example.com/…" data-testid="rule-webhook"/></label>
                <div class="filter-actions"><button class="button primary" type="submit" data-testid="rule-create">"Add rule"</button></div>
            </ActionForm>
            {move || create.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(page) => view! { <Rules page delete/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
fn Rules(page: AlertsPage, delete: ServerAction<DeleteAlertRule>) -> impl IntoView {
    view! {
        <h2>"Rules"</h2>
        <div class="table-wrap">
            <table class="requests" data-testid="rules">
                <thead><tr><th>"Name"</th><th>"Metric"</th><th class="num">"Threshold"</th><th>"Webhook"</th><th></th></tr></thead>
                <tbody>
                    {page.rules.into_iter().map(|r| {
                        let id = r.id;
                        view! {
                            <tr>
                                <td>{r.name}</td>
                                <td class="mono">{r.metric}</td>
                                <td class="num">{r.threshold}</td>
                                <td class="mono">{r.webhook_url.unwrap_or_else(|| "—".into())}</td>
                                <td><button class="link" on:click=move |_| { delete.dispatch(DeleteAlertRule { id }); }>"Delete"</button></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <h2>"History"</h2>
        <div class="table-wrap">
            <table class="requests" data-testid="alert-history">
                <thead><tr><th>"Fired (UTC)"</th><th>"Rule"</th><th class="num">"Value"</th><th class="num">"Threshold"</th><th>"Resolved"</th><th>"Webhook"</th></tr></thead>
                <tbody>{page.history.into_iter().map(history_row).collect_view()}</tbody>
            </table>
        </div>
    }
}

fn history_row(e: AlertEventView) -> impl IntoView {
    let delivery = match e.delivery.as_str() {
        "none" => "—".to_string(),
        "delivered" => format!("delivered ({})", super::count(e.attempts, "try", "tries")),
        "failed" => format!(
            "failed after {}: {}",
            super::count(e.attempts, "try", "tries"),
            e.last_error.clone().unwrap_or_default()
        ),
        other => other.to_string(),
    };
    view! {
        <tr>
            <td>{e.fired_at.format("%Y-%m-%d %H:%M:%S").to_string()}</td>
            <td>{e.rule}</td>
            <td class="num">{format!("{:.4}", e.value)}</td>
            <td class="num">{e.threshold}</td>
            <td>{e.resolved_at.map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_else(|| "firing".into())}</td>
            <td>{delivery}</td>
        </tr>
    }
}

/// What is firing now, on top of every admin page.
#[component]
pub fn AlertBanner() -> impl IntoView {
    let open = Resource::new(|| (), |_| open_alerts());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let firing = open.await.unwrap_or_default();
                (!firing.is_empty()).then(|| {
                    let text = firing
                        .iter()
                        .map(|e| format!("{} ({} {:.4} > {})", e.rule, e.metric, e.value, e.threshold))
                        .collect::<Vec<_>>()
                        .join("; ");
                    view! {
                        <div class="alert-banner" role="alert" data-testid="alert-banner">
                            <strong>"Alert firing: "</strong>{text}" · "<a href="/admin/alerts">"details"</a>
                        </div>
                    }
                })
            })}
        </Transition>
    }
}
