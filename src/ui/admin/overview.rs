//! `/admin`: what each tier and model costs and how it performs, for the
//! filter in the URL, with the savings against sending everything to the
//! premium tier, and daily trends.

use std::collections::{BTreeMap, BTreeSet};

use leptos::prelude::*;
use leptos_meta::Title;

use super::charts::{Lines, Series, Shares, StackedBars};
use super::count;
use super::filters::{Filters, use_filter};
use crate::api::admin::get_overview;
use crate::api::types::{BreakdownView, DailyPoint, Overview, format_micros};

#[component]
pub fn OverviewPage() -> impl IntoView {
    let filter = use_filter();
    let data = Resource::new(move || filter.get(), get_overview);
    view! {
        <Title text="Overview · Triage admin"/>
        <super::AdminNav/>
        <div class="admin">
            <header class="admin-header">
                <h1>"Overview"</h1>
                <a class="button" href=move || format!("/admin/export.csv?{}", filter.get().to_query()) download>
                    "Export CSV"
                </a>
            </header>
            <Filters action="/admin"/>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(o) => view! { <OverviewBody o/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| if v >= 10_000.0 { format!("{:.1} s", v / 1000.0) } else { format!("{v:.0} ms") })
        .unwrap_or_else(|| "—".into())
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

#[component]
fn OverviewBody(o: Overview) -> impl IntoView {
    let Some(total) = o.total.clone() else {
        return view! { <p class="muted empty-state">"No calls match this filter between " {o.from.to_string()} " and " {o.to.to_string()} "."</p> }
            .into_any();
    };
    let spent = total.cost_micros + o.classify_cost_micros;
    let savings = o.premium_equivalent_micros - spent;
    let savings_share =
        if o.premium_equivalent_micros > 0 { savings as f64 / o.premium_equivalent_micros as f64 } else { 0.0 };
    let premium = o.premium_model.clone().unwrap_or_else(|| "the premium tier".into());
    let cards = vec![
        ("Cost", format_micros(spent), format!("{} – {}", o.from, o.to)),
        ("Requests", total.requests.to_string(), format!("{} with retries", count(total.calls, "call", "calls"))),
        ("Tokens", format!("{} in / {} out", compact(total.input_tokens), compact(total.output_tokens)), String::new()),
        (
            "Latency p50 / p95",
            format!("{} / {}", ms(total.latency_p50_ms), ms(total.latency_p95_ms)),
            format!("first token p50 {}", ms(total.ttft_p50_ms)),
        ),
        ("Cache hit rate", pct(total.cache_hit_rate), format!("{} saved", format_micros(total.saved_micros))),
        ("Error rate", pct(total.error_rate), String::new()),
        (
            "Thumbs up",
            total.thumbs_up_rate.map(pct).unwrap_or_else(|| "—".into()),
            count(total.feedback, "verdict", "verdicts"),
        ),
        ("Saved vs all-premium", format_micros(savings), format!("{} less than {premium}", pct(savings_share))),
    ];
    let days = day_labels(&o);
    let tier_series = series_by_key(&o.daily_by_tier, &days, |p| p.cost_micros as f64 / 1e6, |k| format!("s-{k}"));
    let top_models: Vec<String> = o.by_model.iter().take(6).map(|m| m.key.clone()).collect();
    let model_series = series_by_key(
        &o.daily_by_model.iter().filter(|p| top_models.contains(&p.key)).cloned().collect::<Vec<_>>(),
        &days,
        |p| p.calls as f64,
        |k| format!("m-{}", top_models.iter().position(|m| m == k).unwrap_or(0)),
    );
    let latency = vec![
        Series {
            name: "p50".into(),
            class: "s-p50".into(),
            values: per_day(&o.daily_total, &days, f64::NAN, |p| p.latency_p50_ms.unwrap_or(f64::NAN)),
        },
        Series {
            name: "p95".into(),
            class: "s-p95".into(),
            values: per_day(&o.daily_total, &days, f64::NAN, |p| p.latency_p95_ms.unwrap_or(f64::NAN)),
        },
    ];
    let labels: Vec<String> = days.iter().map(|d| d[5..].to_string()).collect();
    let mix: Vec<(String, f64)> = o.by_model.iter().map(|m| (m.key.clone(), m.calls as f64)).collect();
    view! {
        <section class="cards" data-testid="overview-cards">
            {cards.into_iter().map(|(label, value, note)| view! {
                <div class="card"><span class="card-label">{label}</span><strong>{value}</strong><span class="muted">{note}</span></div>
            }).collect_view()}
        </section>
        <section class="charts">
            <StackedBars title="Cost per tier per day (USD)" labels=labels.clone() series=tier_series format=usd_tick/>
            <StackedBars title="Model mix per day (calls)" labels=labels.clone() series=model_series format=count_tick/>
            <Lines title="Latency per day" labels=labels series=latency format=|v| format!("{v:.0} ms")/>
            <Shares title="Model mix (calls)" items=mix/>
        </section>
        <h2>"By tier"</h2>
        <BreakdownTable rows=o.by_tier.clone() first="Tier" testid="by-tier"/>
        <h2>"By model"</h2>
        <BreakdownTable rows=o.by_model.clone() first="Model" testid="by-model"/>
        <h2>"By complexity"</h2>
        <BreakdownTable rows=o.by_complexity.clone() first="Complexity" testid="by-complexity"/>
    }
    .into_any()
}

fn usd_tick(v: f64) -> String {
    if v >= 1.0 || v == 0.0 { format!("${v:.2}") } else { format!("${v:.4}") }
}

fn count_tick(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

fn compact(n: i64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Every day of the range, as `YYYY-MM-DD`.
fn day_labels(o: &Overview) -> Vec<String> {
    let mut days = Vec::new();
    let mut d = o.from;
    while d <= o.to && days.len() < 400 {
        days.push(d.to_string());
        d = d.succ_opt().unwrap_or(d);
        if days.last().map(String::as_str) == Some(&d.to_string()) {
            break;
        }
    }
    days
}

/// One value per day of the range; `missing` for a day without calls.
fn per_day(points: &[DailyPoint], days: &[String], missing: f64, value: impl Fn(&DailyPoint) -> f64) -> Vec<f64> {
    let by_day: BTreeMap<String, f64> = points.iter().map(|p| (p.day.to_string(), value(p))).collect();
    days.iter().map(|d| by_day.get(d).copied().unwrap_or(missing)).collect()
}

fn series_by_key(
    points: &[DailyPoint],
    days: &[String],
    value: impl Fn(&DailyPoint) -> f64,
    class: impl Fn(&str) -> String,
) -> Vec<Series> {
    let keys: BTreeSet<&str> = points.iter().map(|p| p.key.as_str()).collect();
    keys.into_iter()
        .map(|k| {
            let mine: Vec<DailyPoint> = points.iter().filter(|p| p.key == k).cloned().collect();
            Series { name: k.to_string(), class: class(k), values: per_day(&mine, days, 0.0, &value) }
        })
        .collect()
}

#[component]
fn BreakdownTable(rows: Vec<BreakdownView>, first: &'static str, testid: &'static str) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="requests breakdown" data-testid=testid>
                <thead>
                    <tr>
                        <th>{first}</th>
                        <th class="num">"Requests"</th>
                        <th class="num">"Cost"</th>
                        <th class="num">"Cost / request"</th>
                        <th class="num">"Tokens in"</th>
                        <th class="num">"Tokens out"</th>
                        <th class="num">"p50"</th>
                        <th class="num">"p95"</th>
                        <th class="num">"TTFT p50"</th>
                        <th class="num">"Cache hits"</th>
                        <th class="num">"Errors"</th>
                        <th class="num">"Thumbs up"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|r| {
                        let per_request = if r.requests > 0 { r.cost_micros / r.requests } else { 0 };
                        view! {
                            <tr>
                                <td class="mono">{r.key.clone()}</td>
                                <td class="num">{r.requests}</td>
                                <td class="num">{format_micros(r.cost_micros)}</td>
                                <td class="num">{format_micros(per_request)}</td>
                                <td class="num">{compact(r.input_tokens)}</td>
                                <td class="num">{compact(r.output_tokens)}</td>
                                <td class="num">{ms(r.latency_p50_ms)}</td>
                                <td class="num">{ms(r.latency_p95_ms)}</td>
                                <td class="num">{ms(r.ttft_p50_ms)}</td>
                                <td class="num">{pct(r.cache_hit_rate)}</td>
                                <td class="num">{pct(r.error_rate)}</td>
                                <td class="num">{r.thumbs_up_rate.map(pct).unwrap_or_else(|| "—".into())}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
