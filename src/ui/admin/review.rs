//! `/admin/review`: calls the classifier may have got wrong (thumbs-down,
//! escalated tickets, low confidence). The admin sets the right complexity;
//! "Retrain" rebuilds the classifier's head with those labels.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use uuid::Uuid;

use crate::api::review::{retrain, review_queue, set_label};
use crate::api::types::{ReviewItemView, ReviewPage};

#[component]
pub fn ReviewPage() -> impl IntoView {
    let include_labelled = RwSignal::new(false);
    let data = Resource::new(move || include_labelled.get(), review_queue);
    let problem = RwSignal::new(None::<String>);
    let start_retrain = move |_| {
        problem.set(None);
        leptos::task::spawn_local(async move {
            match retrain().await {
                Ok(_) => data.refetch(),
                Err(e) => problem.set(Some(e.to_string())),
            }
        });
    };
    // While a retraining runs, look again every two seconds.
    Effect::new(move |_| {
        if let Some(Ok(page)) = data.get()
            && page.retrain.running
        {
            set_timeout(move || data.refetch(), std::time::Duration::from_secs(2));
        }
    });
    view! {
        <Title text="Review · Triage admin"/>
        <super::AdminNav/>
        <div class="admin">
            <header class="admin-header">
                <h1>"Misclassification review"</h1>
                <div class="header-actions">
                    <label class="check">
                        <input type="checkbox" on:change=move |ev| include_labelled.set(event_target_checked(&ev))/>
                        " Show labelled"
                    </label>
                    <button class="button primary" on:click=start_retrain data-testid="retrain">"Retrain classifier"</button>
                </div>
            </header>
            {move || problem.get().map(|p| view! { <p class="error" role="alert">{p}</p> })}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(page) => view! { <Queue page on_label=move || data.refetch()/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
fn Queue(page: ReviewPage, on_label: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let r = page.retrain.clone();
    let status = if r.running {
        Some(("notice", r.message.clone()))
    } else if r.finished_at.is_some() {
        Some((if r.ok { "notice ok" } else { "error" }, r.message.clone()))
    } else {
        None
    };
    let accuracy = page
        .accuracy
        .iter()
        .map(|a| {
            let share = if a.reviewed > 0 { a.correct as f64 / a.reviewed as f64 * 100.0 } else { 0.0 };
            view! { <tr><td>{a.week.to_string()}</td><td class="num">{a.reviewed}</td><td class="num">{format!("{share:.0}%")}</td></tr> }
        })
        .collect_view();
    view! {
        {status.map(|(class, text)| view! { <p class=class role="status" data-testid="retrain-status">{text}</p> })}
        <p class="muted">
            {format!("{} so far; classifier in use: {}. ", super::count(page.labels, "label", "labels"), page.classifier)}
            "Retraining uses the shipped training data plus every label."
        </p>
        <div class="review-grid">
            <div class="table-wrap">
                <table class="requests review" data-testid="review-queue">
                    <thead><tr>
                        <th>"Question"</th><th>"Said"</th><th>"Why it is here"</th><th>"Right complexity"</th>
                    </tr></thead>
                    <tbody>
                        {page.items.is_empty().then(|| view! {
                            <tr><td colspan="4" class="muted empty-state">
                                "Nothing to review: no thumbs-down, escalated or low-confidence calls here."
                            </td></tr>
                        })}
                        {page.items.into_iter().map(|i| view! { <Item item=i on_label/> }).collect_view()}
                    </tbody>
                </table>
            </div>
            <div class="table-wrap">
                <table class="requests" data-testid="accuracy">
                    <caption>"Accuracy on reviewed items"</caption>
                    <thead><tr><th>"Week"</th><th class="num">"Reviewed"</th><th class="num">"Right"</th></tr></thead>
                    <tbody>{accuracy}</tbody>
                </table>
            </div>
        </div>
    }
}

#[component]
fn Item(item: ReviewItemView, on_label: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let request_id: Uuid = item.request_id;
    let label = RwSignal::new(item.label.clone());
    let problem = RwSignal::new(None::<String>);
    let choose = move |value: &'static str| {
        let before = label.get_untracked();
        label.set(Some(value.to_string()));
        leptos::task::spawn_local(async move {
            match set_label(request_id, value.to_string()).await {
                Ok(()) => on_label(),
                Err(e) => {
                    label.set(before);
                    problem.set(Some(e.to_string()));
                }
            }
        });
    };
    let mut why = Vec::new();
    if item.rating == Some(-1) {
        why.push("thumbs down".to_string());
    }
    if item.escalated {
        why.push("escalated to a person".to_string());
    }
    if let Some(c) = item.confidence.filter(|c| *c < crate::api::review::LOW_CONFIDENCE) {
        why.push(format!("{:.0}% confident", c * 100.0));
    }
    let said = item.complexity.clone().unwrap_or_default();
    view! {
        <tr data-testid="review-item">
            <td class="question">
                <span>{item.query.clone()}</span>
                {item.ticket_ref.clone().map(|t| view! { <A href=format!("/admin/tickets/{t}")>{t}</A> })}
                {item.comment.clone().map(|c| view! { <q>{c}</q> })}
            </td>
            <td>
                <span class=format!("badge complexity-{said}")>{said.clone()}</span>
                <span class="muted">{format!(" → {}", item.tier.clone().unwrap_or_default())}</span>
            </td>
            <td class="muted">{why.join(", ")}</td>
            <td class="label-choice">
                {["simple", "medium", "complex"].into_iter().map(|value| view! {
                    <button
                        type="button"
                        class="chip"
                        class:chosen=move || label.get().as_deref() == Some(value)
                        aria-pressed=move || (label.get().as_deref() == Some(value)).to_string()
                        data-testid=format!("label-{value}")
                        on:click=move |_| choose(value)
                    >{value}</button>
                }).collect_view()}
                {move || problem.get().map(|p| view! { <span class="error">{p}</span> })}
            </td>
        </tr>
    }
}
