//! The filter bar every admin view shares. It is a plain GET form: the
//! filter lives in the URL (shareable, back-button friendly), and it works
//! without JavaScript; with it, the router navigates without a reload.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use crate::api::filter::CallFilter;

/// The filter in the current URL, reactive.
pub fn use_filter() -> Memo<CallFilter> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|q| CallFilter::from_pairs(q.latest_values().map(|(k, v)| (k.as_ref(), v)))))
}

#[component]
pub fn Filters(
    /// The page the form submits to (its own path).
    action: &'static str,
) -> impl IntoView {
    let filter = use_filter();
    let value = move |key: &'static str| move || filter.with(|f| f.get(key)).unwrap_or_default();
    let select = move |key: &'static str, label: &'static str, options: &'static [&'static str]| {
        view! {
            <label>
                <span>{label}</span>
                <select name=key data-testid=format!("filter-{key}")>
                    <option value="" selected=move || value(key)().is_empty()>"All"</option>
                    {options
                        .iter()
                        .map(|o| view! { <option value=*o selected=move || value(key)() == *o>{*o}</option> })
                        .collect_view()}
                </select>
            </label>
        }
    };
    let text = move |key: &'static str, label: &'static str, placeholder: &'static str| {
        view! {
            <label>
                <span>{label}</span>
                <input name=key value=value(key) placeholder=placeholder data-testid=format!("filter-{key}")/>
            </label>
        }
    };
    view! {
        <Form method="GET" action=action attr:class="filters" attr:aria-label="Filters">
            <label>
                <span>"From"</span>
                <input type="date" name="from" value=value("from")/>
            </label>
            <label>
                <span>"To"</span>
                <input type="date" name="to" value=value("to")/>
            </label>
            {select("tier", "Tier", &["budget", "balanced", "premium"])}
            {select("complexity", "Complexity", &["simple", "medium", "complex"])}
            {text("model", "Model", "e.g. openai/gpt-4o-mini")}
            {text("provider", "Provider", "openai, anthropic, local…")}
            {text("user", "User", "user id")}
            {text("ticket", "Ticket", "T-8F3A2B1C")}
            {text("property", "Property", "plan=pro")}
            {select("cache", "Cache", &["hit", "miss", "bypass", "none"])}
            {select("feedback", "Feedback", &["up", "down", "any", "none"])}
            <div class="filter-actions">
                <button class="button primary" type="submit" data-testid="apply-filters">"Apply"</button>
                <a class="link" href=action>"Clear"</a>
            </div>
        </Form>
    }
}
