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
        self.user_id.is_none() && self.tickets.is_none() && self.property.is_none()
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
            q.push(" AND c.properties @> ").push_bind(serde_json::json!({ key: value }));
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
         FROM call_rollups r, unnest(r.latency_hist, r.ttft_hist) WITH ORDINALITY AS u(l, t, i)"
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
    let mut q = QueryBuilder::new(format!("SELECT {key} AS key, {ROLLUP_SUMS} FROM call_rollups r"));
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
            Breakdown {
                key: r.key,
                calls: r.calls,
                requests: r.requests,
                cost_micros: r.cost_micros,
                saved_micros: r.saved_micros,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                latency_p50: percentile(&latency, 0.5),
                latency_p95: percentile(&latency, 0.95),
                ttft_p50: percentile(&ttft, 0.5),
                cache_hits: r.cache_hits,
                errors: r.errors,
                thumbs_up: r.thumbs_up,
                thumbs_down: r.thumbs_down,
            }
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
        q = QueryBuilder::new("SELECT coalesce(sum(r.cost_micros), 0)::BIGINT FROM call_rollups r");
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
             FROM call_rollups r"
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

/// One page of calls, and how many match in all (up to `count_cap`, so a
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

    const COUNT_CAP: i64 = 100_000;
    let mut c = QueryBuilder::new("SELECT count(*) FROM (SELECT 1 FROM llm_calls c");
    scope.push_where(&mut c);
    c.push(" LIMIT ").push_bind(COUNT_CAP).push(") capped");
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
