//! `/admin/requests`: every LLM call (one row per attempt or cache hit),
//! filtered, sorted and paged from the URL, with a CSV export of the same set.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use super::filters::{Filters, use_filter};
use crate::api::admin::requests;
use crate::api::filter::CallFilter;
use crate::api::types::{CallView, RequestsPage as Page, format_micros};

#[derive(Debug, Clone, PartialEq)]
struct Sorting {
    sort: String,
    descending: bool,
    page: i64,
}

#[component]
pub fn RequestsPage() -> impl IntoView {
    let filter = use_filter();
    let query = use_query_map();
    let sorting = Memo::new(move |_| {
        query.with(|q| Sorting {
            sort: q.get("sort").unwrap_or_else(|| "time".into()),
            descending: q.get("dir").as_deref() != Some("asc"),
            page: q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1),
        })
    });
    let data = Resource::new(move || (filter.get(), sorting.get()), |(f, s)| requests(f, s.sort, s.descending, s.page));
    view! {
        <Title text="Requests · Triage admin"/>
        <super::AdminNav/>
        <div class="admin">
            <header class="admin-header">
                <h1>"Requests"</h1>
                <div class="header-actions">
                    <a class="button" href=move || format!("/admin/export.csv?{}", filter.get().to_query()) download data-testid="export-csv">
                        "Export CSV"
                    </a>
                    <button class="button" on:click=move |_| data.refetch()>"Refresh"</button>
                </div>
            </header>
            <Filters action="/admin/requests"/>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(page) if page.rows.is_empty() => view! { <p class="muted empty-state">"No requests match."</p> }.into_any(),
                        Ok(page) => view! { <RequestsTable page filter=filter.get_untracked() sorting=sorting.get_untracked()/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

fn link(filter: &CallFilter, sort: &str, descending: bool, page: i64) -> String {
    let mut q = filter.to_query();
    if !q.is_empty() {
        q.push('&');
    }
    format!("/admin/requests?{q}sort={sort}&dir={}&page={page}", if descending { "desc" } else { "asc" })
}

#[component]
fn RequestsTable(page: Page, filter: CallFilter, sorting: Sorting) -> impl IntoView {
    let header = |label: &'static str, key: &'static str| {
        let active = sorting.sort == key;
        // a click on the active column flips it; a new column starts high to low
        let descending = if active { !sorting.descending } else { true };
        let arrow = match (active, sorting.descending) {
            (true, true) => " ↓",
            (true, false) => " ↑",
            _ => "",
        };
        let aria = match (active, sorting.descending) {
            (true, true) => "descending",
            (true, false) => "ascending",
            _ => "none",
        };
        view! {
            <th class="num" aria-sort=aria>
                <A href=link(&filter, key, descending, 1)>{label}{arrow}</A>
            </th>
        }
    };
    let pages = (page.total + page.page_size - 1) / page.page_size;
    let prev = (page.page > 1).then(|| link(&filter, &sorting.sort, sorting.descending, page.page - 1));
    let next = (page.page < pages).then(|| link(&filter, &sorting.sort, sorting.descending, page.page + 1));
    let capped = if page.total >= crate::domain::REQUESTS_COUNT_CAP { "+" } else { "" };
    view! {
        <div class="table-wrap">
            <table class="requests" data-testid="requests-table">
                <thead>
                    <tr>
                        {header("Time (UTC)", "time")}
                        <th>"Ticket"</th>
                        <th>"Complexity"</th>
                        <th>"Tier"</th>
                        <th>"Model"</th>
                        {header("Tokens in", "tokens_in")}
                        {header("Tokens out", "tokens_out")}
                        {header("Cost", "cost")}
                        {header("Latency", "latency")}
                        <th class="num">"TTFT"</th>
                        <th>"Cache"</th>
                        <th>"Status"</th>
                    </tr>
                </thead>
                <tbody>
                    {page.rows.into_iter().map(row).collect_view()}
                </tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages">
            {prev.map(|href| view! { <A href=href>"← Newer"</A> })}
            <span class="muted" data-testid="pager">
                {format!("Page {} of {} · {}{} calls", page.page, pages.max(1), page.total, capped)}
            </span>
            {next.map(|href| view! { <A href=href>"Older →"</A> })}
        </nav>
    }
}

fn row(r: CallView) -> impl IntoView {
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
    let ticket = r.ticket_ref.clone().map(|t| view! { <A href=format!("/admin/tickets/{t}")>{t}</A> }.into_any());
    view! {
        <tr>
            <td>{r.created_at.format("%Y-%m-%d %H:%M:%S").to_string()}</td>
            <td class="mono">{ticket.unwrap_or_else(|| "—".into_any())}</td>
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
}
