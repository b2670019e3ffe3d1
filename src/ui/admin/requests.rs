//! `/admin/requests`: the newest LLM calls, one row per attempt.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::admin::list_requests;
use crate::api::types::{CallView, format_micros};

#[component]
pub fn RequestsPage() -> impl IntoView {
    let calls = Resource::new(|| (), |_| list_requests(100));
    view! {
        <Title text="Requests · Triage admin"/>
        <div class="admin">
            <header class="admin-header">
                <h1>"Requests"</h1>
                <button class="button" on:click=move |_| calls.refetch()>"Refresh"</button>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match calls.await {
                        Ok(rows) if rows.is_empty() => view! { <p class="muted">"No requests yet."</p> }.into_any(),
                        Ok(rows) => view! { <RequestsTable rows/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
fn RequestsTable(rows: Vec<CallView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="requests" data-testid="requests-table">
                <thead>
                    <tr>
                        <th>"Time (UTC)"</th>
                        <th>"Ticket"</th>
                        <th>"Complexity"</th>
                        <th>"Tier"</th>
                        <th>"Model"</th>
                        <th class="num">"Tokens in"</th>
                        <th class="num">"Tokens out"</th>
                        <th class="num">"Cost"</th>
                        <th class="num">"Latency"</th>
                        <th class="num">"TTFT"</th>
                        <th>"Cache"</th>
                        <th>"Status"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|r| {
                            let tier = r.tier.clone().unwrap_or_else(|| "—".into());
                            let tier_class = format!("badge tier-{tier}");
                            let status_class = format!("badge status-{}", r.status);
                            let title = r.error.clone().unwrap_or_default();
                            // a hit saved a call: it stands out; misses and bypasses stay quiet
                            let cache_class = format!("badge cache-{}", r.cache_status);
                            let cache_label = match r.cache_status.as_str() {
                                "hit" => "HIT",
                                "miss" => "MISS",
                                "bypass" => "BYPASS",
                                _ => "—",
                            };
                            view! {
                                <tr>
                                    <td>{r.created_at.format("%Y-%m-%d %H:%M:%S").to_string()}</td>
                                    <td class="mono">{r.ticket_ref.clone().unwrap_or_else(|| "—".into())}</td>
                                    <td>{r.complexity.clone().unwrap_or_else(|| "—".into())}</td>
                                    <td><span class=tier_class>{tier}</span></td>
                                    <td class="mono">{r.model.clone()}</td>
                                    <td class="num">{r.input_tokens}</td>
                                    <td class="num">{r.output_tokens}</td>
                                    <td class="num">{format_micros(r.cost_micros)}</td>
                                    <td class="num">{format!("{} ms", r.latency_ms)}</td>
                                    <td class="num">{r.ttft_ms.map(|t| format!("{t} ms")).unwrap_or_else(|| "—".into())}</td>
                                    <td><span class=cache_class>{cache_label}</span></td>
                                    <td><span class=status_class title=title>{r.status.clone()}</span></td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
