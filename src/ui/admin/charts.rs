//! Small inline-SVG charts: no chart library, no JavaScript. Each takes
//! its series ready-made and draws on a fixed viewBox that scales with CSS.

use leptos::prelude::*;

const W: f64 = 640.0;
const H: f64 = 200.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// One named series; `values[i]` belongs to `labels[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub class: String,
    pub values: Vec<f64>,
}

/// A rounded-up axis maximum: 1, 2 or 5 × a power of ten.
pub fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|v| *v >= max).unwrap_or(10.0 * magnitude)
}

fn x_labels(labels: &[String], step: f64, offset: f64) -> impl IntoView + use<> {
    // at most ~8 labels, evenly spread
    let every = labels.len().div_ceil(8).max(1);
    labels
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, l)| {
            let x = LEFT + offset + step * i as f64;
            view! { <text x=format!("{x:.1}") y=format!("{:.1}", H - 6.0) class="axis" text-anchor="middle">{l.clone()}</text> }
        })
        .collect_view()
}

fn y_axis(max: f64, format: fn(f64) -> String) -> impl IntoView {
    (0..=4)
        .map(|k| {
            let v = max * k as f64 / 4.0;
            let y = H - BOTTOM - (H - BOTTOM - TOP) * k as f64 / 4.0;
            view! {
                <line x1=format!("{LEFT}") x2=format!("{W}") y1=format!("{y:.1}") y2=format!("{y:.1}") class="grid"/>
                <text x=format!("{:.1}", LEFT - 6.0) y=format!("{:.1}", y + 4.0) class="axis" text-anchor="end">{format(v)}</text>
            }
        })
        .collect_view()
}

/// Stacked bars per label (e.g. cost per tier per day).
#[component]
pub fn StackedBars(
    title: &'static str,
    labels: Vec<String>,
    series: Vec<Series>,
    format: fn(f64) -> String,
) -> impl IntoView {
    let n = labels.len().max(1);
    let totals: Vec<f64> =
        (0..n).map(|i| series.iter().map(|s| s.values.get(i).copied().unwrap_or(0.0)).sum()).collect();
    let max = nice_max(totals.iter().copied().fold(0.0, f64::max));
    let step = (W - LEFT) / n as f64;
    let bar = (step * 0.7).max(1.0);
    let scale = (H - BOTTOM - TOP) / max;
    let mut bars = Vec::new();
    for i in 0..n {
        let mut y = H - BOTTOM;
        for s in &series {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = v * scale;
            y -= h;
            let x = LEFT + step * i as f64 + (step - bar) / 2.0;
            let tip = format!("{} · {}: {}", labels.get(i).cloned().unwrap_or_default(), s.name, format(v));
            bars.push(view! {
                <rect x=format!("{x:.1}") y=format!("{y:.1}") width=format!("{bar:.1}") height=format!("{h:.1}") class=s.class.clone()>
                    <title>{tip}</title>
                </rect>
            });
        }
    }
    view! {
        <figure class="chart">
            <figcaption>{title}</figcaption>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=title>
                {y_axis(max, format)}
                {bars}
                {x_labels(&labels, step, step / 2.0)}
            </svg>
            <Legend series=series/>
        </figure>
    }
}

/// Lines per label (e.g. latency p50 and p95 per day).
#[component]
pub fn Lines(
    title: &'static str,
    labels: Vec<String>,
    series: Vec<Series>,
    format: fn(f64) -> String,
) -> impl IntoView {
    let n = labels.len().max(1);
    let max =
        nice_max(series.iter().flat_map(|s| s.values.iter().copied()).filter(|v| v.is_finite()).fold(0.0, f64::max));
    let step = if n > 1 { (W - LEFT - 10.0) / (n - 1) as f64 } else { 0.0 };
    let scale = (H - BOTTOM - TOP) / max;
    let at = |i: usize, v: f64| (LEFT + 5.0 + step * i as f64, H - BOTTOM - v * scale);
    let paths = series
        .iter()
        .map(|s| {
            let points: Vec<String> = s
                .values
                .iter()
                .enumerate()
                // a missing value (NaN) is skipped: the line joins its neighbours
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| {
                    let (x, y) = at(i, v);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            // a polyline through one point draws nothing: mark those points
            let dots = isolated(&s.values)
                .into_iter()
                .map(|i| {
                    let (x, y) = at(i, s.values[i]);
                    view! { <circle cx=format!("{x:.1}") cy=format!("{y:.1}") r="3" class=format!("line {}", s.class)/> }
                })
                .collect_view();
            view! {
                <polyline points=points.join(" ") class=format!("line {}", s.class)><title>{s.name.clone()}</title></polyline>
                {dots}
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>{title}</figcaption>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=title>
                {y_axis(max, format)}
                {paths}
                {x_labels(&labels, step, 5.0)}
            </svg>
            <Legend series=series/>
        </figure>
    }
}

/// The values a line cannot show: finite, with no finite neighbour.
fn isolated(values: &[f64]) -> Vec<usize> {
    let finite = |i: Option<usize>| i.and_then(|i| values.get(i)).is_some_and(|v| v.is_finite());
    (0..values.len()).filter(|&i| finite(Some(i)) && !finite(i.checked_sub(1)) && !finite(Some(i + 1))).collect()
}

/// Horizontal shares (e.g. the model mix), largest first.
#[component]
pub fn Shares(title: &'static str, items: Vec<(String, f64)>) -> impl IntoView {
    let total: f64 = items.iter().map(|(_, v)| v).sum();
    let rows = items
        .into_iter()
        .map(|(name, v)| {
            let share = if total > 0.0 { v / total * 100.0 } else { 0.0 };
            view! {
                <div class="share">
                    <span class="mono">{name}</span>
                    <span class="share-bar"><i style=format!("width: {share:.1}%")></i></span>
                    <span class="num">{format!("{share:.1}%")}</span>
                </div>
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>{title}</figcaption>
            <div class="shares">{rows}</div>
        </figure>
    }
}

#[component]
fn Legend(series: Vec<Series>) -> impl IntoView {
    view! {
        <ul class="legend">
            {series.into_iter().map(|s| view! { <li><i class=s.class></i>{s.name}</li> }).collect_view()}
        </ul>
    }
}

#[cfg(test)]
mod tests {
    use super::{isolated, nice_max};

    #[test]
    fn points_without_a_neighbour_are_the_ones_a_line_cannot_show() {
        let nan = f64::NAN;
        assert_eq!(isolated(&[nan, nan, 264.0]), vec![2]);
        assert_eq!(isolated(&[5.0]), vec![0]);
        assert_eq!(isolated(&[1.0, 2.0, nan, 3.0, nan]), vec![3]);
        assert!(isolated(&[1.0, 2.0, 3.0]).is_empty());
        assert!(isolated(&[nan, nan]).is_empty());
    }

    #[test]
    fn axis_maximum_is_round_and_covers_the_data() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(1.2), 2.0);
        assert_eq!(nice_max(430.0), 500.0);
        assert_eq!(nice_max(1000.0), 1000.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
    }
}
