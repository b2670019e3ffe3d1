//! `/admin/experiments`: routing against a fixed model (or two routing
//! setups), with results per variant and a plain-words readout.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::experiments::{CreateExperiment, StopExperiment, experiments};
use crate::api::types::{ArmView, ExperimentView, format_micros};

#[component]
pub fn ExperimentsPage() -> impl IntoView {
    let create = ServerAction::<CreateExperiment>::new();
    let stop = ServerAction::<StopExperiment>::new();
    let data = Resource::new(move || (create.version().get(), stop.version().get()), |_| experiments());
    view! {
        <Title text="Experiments · Triage admin"/>
        <super::AdminNav/>
        <div class="admin">
            <header class="admin-header"><h1>"Experiments"</h1></header>
            <ActionForm action=create attr:class="filters experiment-form">
                <label><span>"Name"</span><input name="name" required placeholder="Routing vs GPT-4o" data-testid="exp-name"/></label>
                <label><span>"Variant A"</span><input name="variant_a" required value="model:openai/gpt-4o" data-testid="exp-a"/></label>
                <label><span>"Variant B"</span><input name="variant_b" required value="routing" data-testid="exp-b"/></label>
                <label><span>"% of tickets in B"</span><input name="split_b" type="number" min="1" max="99" value="50" data-testid="exp-split"/></label>
                <div class="filter-actions">
                    <button class="button primary" type="submit" data-testid="exp-create">"Start experiment"</button>
                </div>
                <p class="muted hint">"A variant is " <code>"routing"</code> ", " <code>"model:<catalog name>"</code> " or " <code>"tier:budget|balanced|premium"</code> ". Tickets keep their variant."</p>
            </ActionForm>
            {move || create.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted empty-state">"No experiments yet."</p> }.into_any(),
                        Ok(list) => list.into_iter().map(|e| view! { <Experiment e stop/> }).collect_view().into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
fn Experiment(e: ExperimentView, stop: ServerAction<StopExperiment>) -> impl IntoView {
    let running = e.status == "running";
    let id = e.id;
    let p = |v: Option<f64>| {
        v.map(|p| if p < 0.001 { "< 0.001".into() } else { format!("{p:.3}") }).unwrap_or_else(|| "—".into())
    };
    view! {
        <section class="experiment" data-testid="experiment">
            <header class="admin-header">
                <h2>{e.name.clone()}" "<span class=format!("badge exp-{}", e.status)>{e.status.clone()}</span></h2>
                {running.then(|| view! {
                    <button class="button" on:click=move |_| { stop.dispatch(StopExperiment { id }); }>"Stop"</button>
                })}
            </header>
            <p class="readout" data-testid="readout">{e.readout.clone()}</p>
            <div class="table-wrap">
                <table class="requests">
                    <thead><tr>
                        <th>"Arm"</th><th>"Variant"</th><th class="num">"Tickets"</th><th class="num">"Cost / ticket"</th>
                        <th class="num">"Latency"</th><th class="num">"Thumbs up"</th>
                    </tr></thead>
                    <tbody>{arm(e.a.clone())}{arm(e.b.clone())}</tbody>
                </table>
            </div>
            <p class="muted">{format!(
                "{}% of tickets in B · cost: Welch's t-test p {} · thumbs-up: two-proportion z-test p {} · started {}",
                e.split_b, p(e.cost_p_value), p(e.thumbs_p_value), e.created_at.format("%Y-%m-%d %H:%M UTC")
            )}</p>
        </section>
    }
}

fn arm(a: ArmView) -> impl IntoView {
    let testid = format!("arm-{}", a.name);
    view! {
        <tr data-testid=testid>
            <td>{a.name}</td>
            <td class="mono">{a.variant}</td>
            <td class="num">{a.tickets}</td>
            <td class="num">{format_micros(a.cost_per_ticket_micros.round() as i64)}</td>
            <td class="num">{format!("{:.0} ms", a.latency_ms)}</td>
            <td class="num">{a.thumbs_up_rate.map(|r| format!("{:.0}% of {}", r * 100.0, a.verdicts)).unwrap_or_else(|| "—".into())}</td>
        </tr>
    }
}
