//! `/admin/tickets/T-XXXXXXXX`: one ticket's whole flow, in order.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::admin::get_ticket_flow;
use crate::api::types::{FlowCallView, TicketFlow, TurnView, format_micros};

#[component]
pub fn TicketPage() -> impl IntoView {
    let params = use_params_map();
    let reference = Memo::new(move |_| params.with(|p| p.get("reference").unwrap_or_default()));
    let flow = Resource::new(move || reference.get(), get_ticket_flow);
    view! {
        <Title text=move || format!("{} · Triage admin", reference.get())/>
        <super::AdminNav/>
        <div class="admin">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match flow.await {
                        Ok(flow) => view! { <Flow flow/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
fn Flow(flow: TicketFlow) -> impl IntoView {
    let status_class = format!("badge ticket-{}", flow.status);
    view! {
        <header class="admin-header">
            <div>
                <h1>"Ticket " <span class="mono">{flow.reference.clone()}</span></h1>
                <p class="muted">
                    {format!("{} · opened {} UTC", flow.source, flow.created_at.format("%Y-%m-%d %H:%M"))}
                    {flow.user_id.clone().map(|u| format!(" · user {u}"))}
                    " · " <span class=status_class>{flow.status.clone()}</span>
                </p>
            </div>
        </header>
        <section class="cards" data-testid="ticket-totals">
            <div class="card"><span class="card-label">"Total cost"</span><strong data-testid="ticket-cost">{format_micros(flow.total_cost_micros)}</strong>
                <span class="muted">{format!("{} saved by the cache", format_micros(flow.total_saved_micros))}</span></div>
            <div class="card"><span class="card-label">"Model time"</span><strong>{format!("{:.1} s", flow.total_latency_ms as f64 / 1000.0)}</strong></div>
            <div class="card"><span class="card-label">"Turns"</span><strong>{flow.turns.len()}</strong></div>
            <div class="card"><span class="card-label">"LLM calls"</span><strong>{flow.calls}</strong>
                <span class="muted" data-testid="ticket-retries">{format!("{} retries or fallbacks", flow.retries)}</span></div>
        </section>
        <ol class="flow">
            {flow.turns.into_iter().enumerate().map(|(i, t)| view! { <Turn n=i + 1 turn=t/> }).collect_view()}
        </ol>
    }
}

#[component]
fn Turn(n: usize, turn: TurnView) -> impl IntoView {
    let classification = turn.calls.iter().find(|c| c.complexity.is_some()).cloned();
    let verdict = match turn.rating {
        Some(1) => Some("thumbs up"),
        Some(_) => Some("thumbs down"),
        None => None,
    };
    view! {
        <li class="turn" data-testid="turn">
            <div class="turn-head">
                <strong>{format!("Turn {n}")}</strong>
                <span class="muted">{turn.asked_at.map(|t| t.format("%H:%M:%S UTC").to_string())}</span>
                <span class="num">{format_micros(turn.cost_micros)}" · "{format!("{} ms", turn.latency_ms)}</span>
            </div>
            {turn.question.clone().map(|q| view! {
                <p class="said customer"><span class="who">"Customer"</span>{q}
                    {(turn.question_status == "error").then_some(view! { <span class="badge status-error">"unanswered"</span> })}
                </p>
            })}
            {classification.map(|c| view! {
                <p class="step" data-testid="classification">
                    <span class="step-label">"Classified"</span>
                    <span class=format!("badge complexity-{}", c.complexity.clone().unwrap_or_default())>{c.complexity.clone()}</span>
                    {format!(" by {} ", c.classifier.clone().unwrap_or_else(|| "—".into()))}
                    {c.confidence.map(|v| format!("({:.0}% sure) ", v * 100.0))}
                    <span class="muted">{c.reason.clone()}</span>
                </p>
                <p class="step" data-testid="routing">
                    <span class="step-label">"Routed"</span>
                    <span class=format!("badge tier-{}", c.tier.clone().unwrap_or_default())>{c.tier.clone()}</span>
                    {c.policy.clone().map(|p| format!(" · policy {p}"))}
                    <span class="muted">{c.route.clone().map(|r| format!(" · {r}"))}</span>
                </p>
            })}
            <table class="requests attempts" data-testid="attempts">
                <thead><tr>
                    <th>"Call"</th><th>"Model"</th><th class="num">"Tokens"</th><th class="num">"Cost"</th>
                    <th class="num">"Latency"</th><th>"Cache"</th><th>"Status"</th>
                </tr></thead>
                <tbody>{turn.calls.iter().cloned().map(attempt).collect_view()}</tbody>
            </table>
            {turn.answer.clone().map(|a| view! {
                <p class="said assistant"><span class="who">"Assistant"</span>{a}</p>
            })}
            {verdict.map(|v| view! {
                <p class="step"><span class="step-label">"Feedback"</span>{v}
                    {turn.comment.clone().map(|c| view! { <q>{c}</q> })}</p>
            })}
        </li>
    }
}

fn attempt(c: FlowCallView) -> impl IntoView {
    let label = if c.kind == "classify" { "classify".to_string() } else { format!("attempt {}", c.attempt) };
    let status_class = format!("badge status-{}", c.status);
    let cache_class = format!("badge cache-{}", c.cache_status);
    view! {
        <tr>
            <td>{label}</td>
            <td class="mono">{c.model}" "<span class="muted">{format!("({})", c.provider)}</span></td>
            <td class="num">{format!("{} / {}", c.input_tokens, c.output_tokens)}</td>
            <td class="num">{format_micros(c.cost_micros)}</td>
            <td class="num">{format!("{} ms", c.latency_ms)}</td>
            <td><span class=cache_class>{c.cache_status}</span></td>
            <td>
                <span class=status_class>{c.status}</span>
                {c.error.map(|e| view! { <span class="call-error">{e}</span> })}
            </td>
        </tr>
    }
}
