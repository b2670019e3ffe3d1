//! The dashboard's reads over `llm_calls`: breakdowns by tier, model or
//! complexity, daily series, and the filtered, sorted, paged list. Every
//! query takes the same `Scope`, so a view and its CSV export agree.
//!
//! Breakdowns and series read the daily rollups (`call_rollups`, kept by
//! triggers; migration 0005) when the filter only uses their dimensions —
//! a month of a million calls is a few thousand rollup rows. Filters on a
//! user, a ticket or a custom property are selective and read the calls.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use super::llm_calls::CallRow;

/// A validated filter: a time window plus optional equalities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub tier: Option<String>,
    pub complexity: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub user_id: Option<String>,
    /// Ticket ids in this inclusive range (a full id, or every id starting
    /// with a `T-XXXXXXXX` reference's eight hex digits).
    pub tickets: Option<(Uuid, Uuid)>,
    /// `properties @> {key: value}`.
    pub property: Option<(String, String)>,
    pub cache_status: Option<String>,
    pub feedback: Option<Feedback>,
    pub kind: Option<&'static str>,
    /// The property's key is rolled up (set by `resolve`).
    pub property_rolled_up: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    Up,
    Down,
    Any,
    None,
}

impl Scope {
    /// Whether the rollups can answer: no filter on what they do not keep.
    pub fn rollups_suffice(&self) -> bool {
        self.user_id.is_none() && self.tickets.is_none() && (self.property.is_none() || self.property_rolled_up)
    }

    /// The rollup table this scope reads, as `r`.
    fn rollup_table(&self) -> &'static str {
        if self.property.is_some() { "property_rollups r" } else { "call_rollups r" }
    }

    /// `WHERE …` for `call_rollups r` (dates are whole UTC days here).
    fn push_rollup_where(&self, q: &mut QueryBuilder<Postgres>) {
        q.push(" WHERE TRUE");
        if let Some(from) = self.from {
            q.push(" AND r.day >= ").push_bind(from.date_naive());
        }
        if let Some(to) = self.to {
            q.push(" AND r.day < ").push_bind(to.date_naive());
        }
        let eq = [
            ("r.tier", &self.tier),
            ("r.complexity", &self.complexity),
            ("r.model", &self.model),
            ("r.provider", &self.provider),
            ("r.cache_status", &self.cache_status),
        ];
        for (column, value) in eq {
            if let Some(v) = value {
                q.push(format_args!(" AND {column} = ")).push_bind(v.clone());
            }
        }
        if let Some(kind) = self.kind {
            q.push(" AND r.kind = ").push_bind(kind);
        }
        if let Some((key, value)) = &self.property {
            q.push(" AND r.prop_key = ").push_bind(key.clone()).push(" AND r.prop_value = ").push_bind(value.clone());
        }
        match self.feedback {
            Some(Feedback::Up) => q.push(" AND r.feedback = 'up'"),
            Some(Feedback::Down) => q.push(" AND r.feedback = 'down'"),
            Some(Feedback::Any) => q.push(" AND r.feedback <> 'none'"),
            Some(Feedback::None) => q.push(" AND r.feedback = 'none'"),
            None => q,
        };
    }

    /// `WHERE …` for `llm_calls c`.
    fn push_where(&self, q: &mut QueryBuilder<Postgres>) {
        q.push(" WHERE TRUE");
        if let Some(from) = self.from {
            q.push(" AND c.created_at >= ").push_bind(from);
        }
        if let Some(to) = self.to {
            q.push(" AND c.created_at < ").push_bind(to);
        }
        let eq = [
            ("c.tier", &self.tier),
            ("c.complexity", &self.complexity),
            ("c.model", &self.model),
            ("c.provider", &self.provider),
            ("c.user_id", &self.user_id),
            ("c.cache_status", &self.cache_status),
        ];
        for (column, value) in eq {
            if let Some(v) = value {
                q.push(format_args!(" AND {column} = ")).push_bind(v.clone());
            }
        }
        if let Some(kind) = self.kind {
            q.push(" AND c.kind = ").push_bind(kind);
        }
        if let Some((low, high)) = self.tickets {
            q.push(" AND c.ticket_id BETWEEN ").push_bind(low).push(" AND ").push_bind(high);
        }
        if let Some((key, value)) = &self.property {
            // the first condition lets the planner use the partial GIN index (0010)
            q.push(" AND c.properties <> '{}'::jsonb AND c.properties @> ")
                .push_bind(serde_json::json!({ key: value }));
        }
        if let Some(f) = self.feedback {
            let rating = match f {
                Feedback::Up => " AND f.rating = 1",
                Feedback::Down => " AND f.rating = -1",
                Feedback::Any | Feedback::None => "",
            };
            let exists = if f == Feedback::None { " AND NOT EXISTS" } else { " AND EXISTS" };
            q.push(format_args!("{exists} (SELECT 1 FROM feedback f WHERE f.request_id = c.request_id{rating})"));
        }
    }
}

/// Registers a custom property key for rollups and rolls up the stored
/// calls; false when it already was.
pub async fn add_rollup_property(db: &sqlx::PgPool, key: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let added = add_rollup_property_in(&mut tx, key).await?;
    tx.commit().await?;
    Ok(added)
}

/// `add_rollup_property` inside the caller's transaction.
pub async fn add_rollup_property_in(tx: &mut sqlx::PgConnection, key: &str) -> Result<bool, sqlx::Error> {
    let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM rollup_property_keys WHERE key = $1)")
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
    if known {
        return Ok(false); // no lock: writers are not held up for nothing
    }
    // Writers wait (the call log keeps its rows meanwhile): a call written
    // between the backfill's snapshot and the key's registration would be
    // counted by neither.
    sqlx::query("LOCK TABLE llm_calls, feedback IN SHARE MODE").execute(&mut *tx).await?;
    sqlx::query_scalar("SELECT triage_rollup_add_property($1)").bind(key).fetch_one(&mut *tx).await
}

pub async fn remove_rollup_property(db: &sqlx::PgPool, key: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("LOCK TABLE llm_calls, feedback IN SHARE MODE").execute(&mut *tx).await?;
    let removed = sqlx::query("DELETE FROM rollup_property_keys WHERE key = $1").bind(key).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM property_rollups WHERE prop_key = $1").bind(key).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(removed.rows_affected() > 0)
}

pub async fn rollup_properties(db: impl PgExecutor<'_>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT key FROM rollup_property_keys ORDER BY key").fetch_all(db).await
}

/// Marks the scope's property filter as answerable from property_rollups
/// when its key is registered.
pub async fn resolve(db: impl PgExecutor<'_>, mut scope: Scope) -> Result<Scope, sqlx::Error> {
    scope.property_rolled_up = match &scope.property {
        Some((key, _)) => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM rollup_property_keys WHERE key = $1)")
                .bind(key)
                .fetch_one(db)
                .await?
        }
        None => false,
    };
    Ok(scope)
}

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Tier,
    Model,
    Complexity,
    /// One row for everything.
    Total,
}

impl Dimension {
    fn rollup_column(self) -> &'static str {
        match self {
            Dimension::Tier => "coalesce(nullif(r.tier, ''), '—')",
            Dimension::Model => "r.model",
            Dimension::Complexity => "coalesce(nullif(r.complexity, ''), '—')",
            Dimension::Total => "'all'",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Dimension::Tier => "coalesce(c.tier, '—')",
            Dimension::Model => "c.model",
            Dimension::Complexity => "coalesce(c.complexity, '—')",
            Dimension::Total => "'all'",
        }
    }
}

/// One row of a breakdown (generation calls only; cache hits count as calls).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Breakdown {
    pub key: String,
    pub calls: i64,
    pub requests: i64,
    pub cost_micros: i64,
    pub saved_micros: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub latency_p50: Option<f64>,
    pub latency_p95: Option<f64>,
    pub ttft_p50: Option<f64>,
    pub cache_hits: i64,
    pub errors: i64,
    pub thumbs_up: i64,
    pub thumbs_down: i64,
}

pub async fn breakdown(db: &sqlx::PgPool, scope: &Scope, by: Dimension) -> Result<Vec<Breakdown>, sqlx::Error> {
    if scope.rollups_suffice() {
        return breakdown_from_rollups(db, scope, by).await;
    }
    let key = by.column();
    let mut q = QueryBuilder::new(format!(
        "SELECT {key} AS key, count(*) AS calls, count(DISTINCT c.request_id) AS requests,
            coalesce(sum(c.cost_micros), 0)::BIGINT AS cost_micros,
            coalesce(sum(c.saved_micros), 0)::BIGINT AS saved_micros,
            coalesce(sum(c.input_tokens), 0)::BIGINT AS input_tokens,
            coalesce(sum(c.output_tokens), 0)::BIGINT AS output_tokens,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY c.latency_ms) AS latency_p50,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY c.latency_ms) AS latency_p95,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY c.ttft_ms) AS ttft_p50,
            count(*) FILTER (WHERE c.cache_status = 'hit') AS cache_hits,
            count(*) FILTER (WHERE c.status = 'error') AS errors,
            count(fb.rating) FILTER (WHERE fb.rating = 1) AS thumbs_up,
            count(fb.rating) FILTER (WHERE fb.rating = -1) AS thumbs_down
         FROM llm_calls c
         LEFT JOIN feedback fb ON fb.request_id = c.request_id AND c.status = 'ok'"
    ));
    let scope = Scope { kind: Some("generate"), ..scope.clone() };
    scope.push_where(&mut q);
    if by != Dimension::Total {
        q.push(" GROUP BY 1 ORDER BY cost_micros DESC, calls DESC");
    }
    q.build_query_as().fetch_all(db).await
}

#[derive(sqlx::FromRow)]
struct RollupRow {
    key: String,
    #[sqlx(flatten)]
    sums: Sums,
}

/// Latency and time-to-first-token histograms per key, summed over the
/// matching rollup rows. Arrays are unnested and summed by the database's
/// own aggregate (a SQL-level array sum per row is ten times slower).
async fn rollup_histograms(
    db: impl PgExecutor<'_>,
    scope: &Scope,
    key: &str,
) -> Result<std::collections::HashMap<String, (Vec<i64>, Vec<i64>)>, sqlx::Error> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {key} AS key, u.i::INT AS bucket, sum(u.l)::BIGINT AS latency, sum(u.t)::BIGINT AS ttft
         FROM {}, unnest(r.latency_hist, r.ttft_hist) WITH ORDINALITY AS u(l, t, i)",
        scope.rollup_table()
    ));
    scope.push_rollup_where(&mut q);
    q.push(" AND (u.l <> 0 OR u.t <> 0) GROUP BY 1, 2");
    let rows: Vec<(String, i32, i64, i64)> = q.build_query_as().fetch_all(db).await?;
    let mut out: std::collections::HashMap<String, (Vec<i64>, Vec<i64>)> = Default::default();
    for (key, bucket, latency, ttft) in rows {
        let entry = out.entry(key).or_insert_with(|| (vec![0; HIST_BUCKETS], vec![0; HIST_BUCKETS]));
        let k = (bucket as usize).saturating_sub(1).min(HIST_BUCKETS - 1);
        entry.0[k] += latency;
        entry.1[k] += ttft;
    }
    Ok(out)
}

/// Buckets in a rollup histogram (see migration 0005).
const HIST_BUCKETS: usize = 140;

const ROLLUP_SUMS: &str = "coalesce(sum(r.calls), 0)::BIGINT AS calls, coalesce(sum(r.requests), 0)::BIGINT AS requests,
    coalesce(sum(r.cost_micros), 0)::BIGINT AS cost_micros, coalesce(sum(r.saved_micros), 0)::BIGINT AS saved_micros,
    coalesce(sum(r.input_tokens), 0)::BIGINT AS input_tokens, coalesce(sum(r.output_tokens), 0)::BIGINT AS output_tokens,
    coalesce(sum(r.calls) FILTER (WHERE r.cache_status = 'hit'), 0)::BIGINT AS cache_hits,
    coalesce(sum(r.calls) FILTER (WHERE r.status = 'error'), 0)::BIGINT AS errors,
    coalesce(sum(r.calls) FILTER (WHERE r.feedback = 'up' AND r.status = 'ok'), 0)::BIGINT AS thumbs_up,
    coalesce(sum(r.calls) FILTER (WHERE r.feedback = 'down' AND r.status = 'ok'), 0)::BIGINT AS thumbs_down";

async fn breakdown_from_rollups(
    db: &sqlx::PgPool,
    scope: &Scope,
    by: Dimension,
) -> Result<Vec<Breakdown>, sqlx::Error> {
    let key = by.rollup_column();
    let scope = Scope { kind: Some("generate"), ..scope.clone() };
    let mut q = QueryBuilder::new(format!("SELECT {key} AS key, {ROLLUP_SUMS} FROM {}", scope.rollup_table()));
    scope.push_rollup_where(&mut q);
    if by != Dimension::Total {
        q.push(" GROUP BY 1 HAVING sum(r.calls) > 0 ORDER BY cost_micros DESC, calls DESC");
    }
    let (rows, mut hists): (Vec<RollupRow>, _) =
        tokio::try_join!(q.build_query_as().fetch_all(db), rollup_histograms(db, &scope, key))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let (latency, ttft) = hists.remove(&r.key).unwrap_or_default();
            Cell { sums: r.sums, latency, ttft }.into_breakdown(r.key, true)
        })
        .collect())
}

/// A percentile from a rollup histogram: bucket k holds values in
/// [1.1^k, 1.1^(k+1)) ms (bucket 0 from 0); interpolated inside the bucket.
pub fn percentile(hist: &[i64], p: f64) -> Option<f64> {
    let total: i64 = hist.iter().map(|n| (*n).max(0)).sum();
    if total == 0 {
        return None;
    }
    let target = p * total as f64;
    let mut seen = 0.0;
    for (k, n) in hist.iter().enumerate() {
        let n = (*n).max(0) as f64;
        if n > 0.0 && seen + n >= target {
            let low = if k == 0 { 0.0 } else { 1.1f64.powi(k as i32) };
            let high = 1.1f64.powi(k as i32 + 1);
            return Some(low + (high - low) * ((target - seen) / n).clamp(0.0, 1.0));
        }
        seen += n;
    }
    Some(1.1f64.powi(hist.len() as i32))
}

/// Cost of the classifier's own calls (the `llm` and `cascade` kinds).
pub async fn classify_cost(db: &sqlx::PgPool, scope: &Scope) -> Result<i64, sqlx::Error> {
    let scope = Scope { kind: Some("classify"), ..scope.clone() };
    let mut q;
    if scope.rollups_suffice() {
        q = QueryBuilder::new(format!("SELECT coalesce(sum(r.cost_micros), 0)::BIGINT FROM {}", scope.rollup_table()));
        scope.push_rollup_where(&mut q);
    } else {
        q = QueryBuilder::new("SELECT coalesce(sum(c.cost_micros), 0)::BIGINT FROM llm_calls c");
        scope.push_where(&mut q);
    }
    q.build_query_scalar().fetch_one(db).await
}

/// One day of one tier.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Daily {
    pub day: NaiveDate,
    pub key: String,
    pub calls: i64,
    pub cost_micros: i64,
    pub latency_p50: Option<f64>,
    pub latency_p95: Option<f64>,
}

/// Per UTC day and `by` (tier or model). Latency percentiles are computed
/// for the `Total` series only (the one the latency chart draws).
pub async fn daily(db: &sqlx::PgPool, scope: &Scope, by: Dimension) -> Result<Vec<Daily>, sqlx::Error> {
    if scope.rollups_suffice() {
        let key = by.rollup_column();
        let scope = Scope { kind: Some("generate"), ..scope.clone() };
        let mut q = QueryBuilder::new(format!(
            "SELECT r.day, {key} AS key, coalesce(sum(r.calls), 0)::BIGINT AS calls,
                coalesce(sum(r.cost_micros), 0)::BIGINT AS cost_micros
             FROM {}",
            scope.rollup_table()
        ));
        scope.push_rollup_where(&mut q);
        q.push(" GROUP BY 1, 2 HAVING sum(r.calls) > 0 ORDER BY 1, 2");
        let sums = q.build_query_as::<(NaiveDate, String, i64, i64)>().fetch_all(db);
        let (rows, mut hists) = if by == Dimension::Total {
            tokio::try_join!(sums, rollup_histograms(db, &scope, "r.day::text"))?
        } else {
            (sums.await?, Default::default())
        };
        return Ok(rows
            .into_iter()
            .map(|(day, key, calls, cost_micros)| {
                let hist = hists.remove(&day.to_string()).map(|h| h.0).unwrap_or_default();
                Daily {
                    day,
                    key,
                    calls,
                    cost_micros,
                    latency_p50: percentile(&hist, 0.5),
                    latency_p95: percentile(&hist, 0.95),
                }
            })
            .collect());
    }
    let key = by.column();
    let mut q = QueryBuilder::new(format!(
        "SELECT (c.created_at AT TIME ZONE 'UTC')::date AS day, {key} AS key, count(*) AS calls,
            coalesce(sum(c.cost_micros), 0)::BIGINT AS cost_micros,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY c.latency_ms) AS latency_p50,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY c.latency_ms) AS latency_p95
         FROM llm_calls c"
    ));
    Scope { kind: Some("generate"), ..scope.clone() }.push_where(&mut q);
    q.push(" GROUP BY 1, 2 ORDER BY 1, 2");
    q.build_query_as().fetch_all(db).await
}

/// Everything the overview shows, for one scope.
#[derive(Debug, Clone)]
pub struct Overview {
    pub total: Breakdown,
    pub by_tier: Vec<Breakdown>,
    pub by_model: Vec<Breakdown>,
    pub by_complexity: Vec<Breakdown>,
    pub daily_by_tier: Vec<Daily>,
    pub daily_by_model: Vec<Daily>,
    pub daily_total: Vec<Daily>,
    pub classify_cost_micros: i64,
}

pub async fn overview(db: &sqlx::PgPool, scope: &Scope) -> Result<Overview, sqlx::Error> {
    let scope = resolve(db, scope.clone()).await?;
    if scope.rollups_suffice() {
        return overview_from_rollups(db, &scope).await;
    }
    let (total, by_tier, by_model, by_complexity, daily_by_tier, daily_by_model, daily_total, classify_cost_micros) = tokio::try_join!(
        breakdown(db, &scope, Dimension::Total),
        breakdown(db, &scope, Dimension::Tier),
        breakdown(db, &scope, Dimension::Model),
        breakdown(db, &scope, Dimension::Complexity),
        daily(db, &scope, Dimension::Tier),
        daily(db, &scope, Dimension::Model),
        daily(db, &scope, Dimension::Total),
        classify_cost(db, &scope),
    )?;
    let total = total.into_iter().next().unwrap_or_else(|| Cell::default().into_breakdown("all".into(), true));
    Ok(Overview {
        total,
        by_tier,
        by_model,
        by_complexity,
        daily_by_tier,
        daily_by_model,
        daily_total,
        classify_cost_micros,
    })
}

/// The matching rollups summed per day, tier, model and complexity, with
/// their histograms: every breakdown and series of the overview is a sum of
/// these few hundred cells, so the rollups are read (and their histograms
/// unnested) once instead of once per chart.
async fn overview_from_rollups(db: &sqlx::PgPool, scope: &Scope) -> Result<Overview, sqlx::Error> {
    use std::collections::HashMap;

    let scope = Scope { kind: Some("generate"), ..scope.clone() };
    let dims = format!(
        "r.day, {} AS tier, r.model, {} AS complexity",
        Dimension::Tier.rollup_column(),
        Dimension::Complexity.rollup_column()
    );
    let mut sums = QueryBuilder::new(format!("SELECT {dims}, {ROLLUP_SUMS} FROM {}", scope.rollup_table()));
    scope.push_rollup_where(&mut sums);
    sums.push(" GROUP BY 1, 2, 3, 4");
    let mut hists = QueryBuilder::new(format!(
        "SELECT {dims}, u.i::INT AS bucket, sum(u.l)::BIGINT AS latency, sum(u.t)::BIGINT AS ttft
         FROM {}, unnest(r.latency_hist, r.ttft_hist) WITH ORDINALITY AS u(l, t, i)",
        scope.rollup_table()
    ));
    scope.push_rollup_where(&mut hists);
    hists.push(" AND (u.l <> 0 OR u.t <> 0) GROUP BY 1, 2, 3, 4, 5");

    type Dims = (NaiveDate, String, String, String);
    let (sum_rows, hist_rows, classify_cost_micros) = tokio::try_join!(
        sums.build_query_as::<CellRow>().fetch_all(db),
        hists.build_query_as::<(NaiveDate, String, String, String, i32, i64, i64)>().fetch_all(db),
        classify_cost(db, &scope),
    )?;
    let mut cells: HashMap<Dims, Cell> = sum_rows
        .into_iter()
        .map(|r| ((r.day, r.tier, r.model, r.complexity), Cell { sums: r.sums, ..Cell::default() }))
        .collect();
    for (day, tier, model, complexity, bucket, latency, ttft) in hist_rows {
        let cell = cells.entry((day, tier, model, complexity)).or_default();
        let k = (bucket as usize).saturating_sub(1).min(HIST_BUCKETS - 1);
        cell.latency[k] += latency;
        cell.ttft[k] += ttft;
    }

    fn fold<K: std::hash::Hash + Eq>(cells: &HashMap<Dims, Cell>, key: impl Fn(&Dims) -> K) -> HashMap<K, Cell> {
        let mut out: HashMap<K, Cell> = HashMap::new();
        for (dims, cell) in cells {
            out.entry(key(dims)).or_default().add(cell);
        }
        out
    }
    let breakdown = |key: fn(&Dims) -> String| {
        let mut rows: Vec<Breakdown> = fold(&cells, key)
            .into_iter()
            .filter(|(_, c)| c.sums.calls > 0)
            .map(|(k, c)| c.into_breakdown(k, true))
            .collect();
        rows.sort_by(|a, b| (b.cost_micros, b.calls, &a.key).cmp(&(a.cost_micros, a.calls, &b.key)));
        rows
    };
    let daily = |key: fn(&Dims) -> String, percentiles: bool| {
        let mut rows: Vec<Daily> = fold(&cells, |d| (d.0, key(d)))
            .into_iter()
            .filter(|(_, c)| c.sums.calls > 0)
            .map(|((day, k), c)| {
                let b = c.into_breakdown(k, percentiles);
                Daily {
                    day,
                    key: b.key,
                    calls: b.calls,
                    cost_micros: b.cost_micros,
                    latency_p50: b.latency_p50,
                    latency_p95: b.latency_p95,
                }
            })
            .collect();
        rows.sort_by(|a, b| (a.day, &a.key).cmp(&(b.day, &b.key)));
        rows
    };
    let total = fold(&cells, |_| ()).remove(&()).unwrap_or_default().into_breakdown("all".into(), true);
    Ok(Overview {
        total,
        by_tier: breakdown(|d| d.1.clone()),
        by_model: breakdown(|d| d.2.clone()),
        by_complexity: breakdown(|d| d.3.clone()),
        daily_by_tier: daily(|d| d.1.clone(), false),
        daily_by_model: daily(|d| d.2.clone(), false),
        daily_total: daily(|_| "all".into(), true),
        classify_cost_micros,
    })
}

#[derive(sqlx::FromRow)]
struct CellRow {
    day: NaiveDate,
    tier: String,
    model: String,
    complexity: String,
    #[sqlx(flatten)]
    sums: Sums,
}

/// The additive columns of a rollup read (`ROLLUP_SUMS`).
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
struct Sums {
    calls: i64,
    requests: i64,
    cost_micros: i64,
    saved_micros: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_hits: i64,
    errors: i64,
    thumbs_up: i64,
    thumbs_down: i64,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.calls += o.calls;
        self.requests += o.requests;
        self.cost_micros += o.cost_micros;
        self.saved_micros += o.saved_micros;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_hits += o.cache_hits;
        self.errors += o.errors;
        self.thumbs_up += o.thumbs_up;
        self.thumbs_down += o.thumbs_down;
    }
}

/// Sums and histograms of some rollup rows.
#[derive(Debug, Clone)]
struct Cell {
    sums: Sums,
    latency: Vec<i64>,
    ttft: Vec<i64>,
}

impl Default for Cell {
    fn default() -> Self {
        Cell { sums: Sums::default(), latency: vec![0; HIST_BUCKETS], ttft: vec![0; HIST_BUCKETS] }
    }
}

impl Cell {
    fn add(&mut self, o: &Cell) {
        self.sums.add(&o.sums);
        for (a, b) in self.latency.iter_mut().zip(&o.latency) {
            *a += b;
        }
        for (a, b) in self.ttft.iter_mut().zip(&o.ttft) {
            *a += b;
        }
    }

    fn into_breakdown(self, key: String, percentiles: bool) -> Breakdown {
        let pct = |h: &[i64], p| if percentiles { percentile(h, p) } else { None };
        let s = self.sums;
        Breakdown {
            latency_p50: pct(&self.latency, 0.5),
            latency_p95: pct(&self.latency, 0.95),
            ttft_p50: pct(&self.ttft, 0.5),
            key,
            calls: s.calls,
            requests: s.requests,
            cost_micros: s.cost_micros,
            saved_micros: s.saved_micros,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cache_hits: s.cache_hits,
            errors: s.errors,
            thumbs_up: s.thumbs_up,
            thumbs_down: s.thumbs_down,
        }
    }
}

/// Columns the requests list may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Time,
    Cost,
    Latency,
    TokensIn,
    TokensOut,
}

impl SortBy {
    pub fn parse(s: &str) -> Option<SortBy> {
        Some(match s {
            "time" => SortBy::Time,
            "cost" => SortBy::Cost,
            "latency" => SortBy::Latency,
            "tokens_in" => SortBy::TokensIn,
            "tokens_out" => SortBy::TokensOut,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            SortBy::Time => "c.created_at",
            SortBy::Cost => "c.cost_micros",
            SortBy::Latency => "c.latency_ms",
            SortBy::TokensIn => "c.input_tokens",
            SortBy::TokensOut => "c.output_tokens",
        }
    }
}

const ROW_COLUMNS: &str = "c.id, c.request_id, c.ticket_id, c.kind, c.classifier, c.complexity, c.confidence, c.tier,
    c.route, c.model, c.provider, c.input_tokens, c.output_tokens, c.cost_micros, c.latency_ms, c.ttft_ms,
    c.cache_status, c.attempt, c.status, c.error, c.created_at";

/// One page of calls, and how many match in all (up to `REQUESTS_COUNT_CAP`, so a
/// huge match does not cost a full count).
pub async fn list(
    db: &sqlx::PgPool,
    scope: &Scope,
    sort: SortBy,
    descending: bool,
    offset: i64,
    limit: i64,
) -> Result<(Vec<CallRow>, i64), sqlx::Error> {
    let mut q = QueryBuilder::new(format!("SELECT {ROW_COLUMNS} FROM llm_calls c"));
    scope.push_where(&mut q);
    let direction = if descending { "DESC" } else { "ASC" };
    q.push(format_args!(" ORDER BY {} {direction}, c.id {direction}", sort.column()));
    q.push(" LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
    let rows = q.build_query_as().fetch_all(db).await?;

    let mut c = QueryBuilder::new("SELECT count(*) FROM (SELECT 1 FROM llm_calls c");
    scope.push_where(&mut c);
    c.push(" LIMIT ").push_bind(crate::domain::REQUESTS_COUNT_CAP).push(") capped");
    let total = c.build_query_scalar().fetch_one(db).await?;
    Ok((rows, total))
}

/// Every matching call, newest first, up to `limit` (the CSV export).
pub async fn export(db: impl PgExecutor<'_>, scope: &Scope, limit: i64) -> Result<Vec<CallRow>, sqlx::Error> {
    let mut q = QueryBuilder::new(format!("SELECT {ROW_COLUMNS} FROM llm_calls c"));
    scope.push_where(&mut q);
    q.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ").push_bind(limit);
    q.build_query_as().fetch_all(db).await
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_from_histograms_land_in_the_right_bucket() {
        let mut hist = vec![0i64; 140];
        // 100 calls of ~1234 ms (bucket 74: [1.1^74, 1.1^75) = [1157, 1273))
        hist[74] = 100;
        let p50 = percentile(&hist, 0.5).unwrap();
        assert!((1157.0..1273.0).contains(&p50), "{p50}");
        // add 100 fast calls at 0–1 ms: the median falls between the two
        hist[0] = 100;
        assert!(percentile(&hist, 0.25).unwrap() < 1.1);
        assert!(percentile(&hist, 0.95).unwrap() > 1157.0);
        assert_eq!(percentile(&vec![0; 140], 0.5), None);
    }
}
