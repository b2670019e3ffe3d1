//! Rate limits and budgets, checked before any work and shared by every
//! instance through Postgres (`store::limits`).
//!
//! Requests per minute and tokens per minute are token buckets per key,
//! user, ticket and client address; spend budgets are per key and per user,
//! per UTC day and month, in micro-dollars. Spend is counted when the call
//! log writes the rows, so a burst may overshoot a budget by the requests
//! already in flight; a limit never admits more than its bucket holds.

use std::net::IpAddr;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::config::LimitsConfig;
use crate::store::limits as store;

/// A quick prompt size for admission (about four characters a token);
/// the real count is settled afterwards.
pub fn estimate_tokens<'a>(texts: impl IntoIterator<Item = &'a str>) -> u32 {
    texts.into_iter().map(|t| t.len() as u32 / 4 + 4).sum()
}

/// Who a request is charged to, with the key's own limits.
#[derive(Debug, Clone, Default)]
pub struct Subjects {
    pub key: Option<KeyLimits>,
    pub user: Option<String>,
    pub ticket: Option<Uuid>,
    /// Only for the widget, which has no key.
    pub ip: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyLimits {
    pub id: Uuid,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub daily_budget_micros: Option<i64>,
    pub monthly_budget_micros: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("rate limit reached for {scope}; retry in {:.1} s", retry_after.as_secs_f64())]
    RateLimited { scope: String, retry_after: Duration },
    #[error("the {period} budget of {scope} is spent")]
    BudgetExceeded { scope: String, period: &'static str },
    #[error("storage unavailable")]
    Store(#[from] sqlx::Error),
}

/// One bucket to take from: name, capacity per minute, cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub name: String,
    pub per_minute: f64,
    pub cost: f64,
}

/// What was taken, so output tokens can be charged afterwards.
#[derive(Debug, Clone, Default)]
pub struct Granted {
    pub token_buckets: Vec<Bucket>,
    /// The prompt tokens estimated at admission.
    pub estimated_prompt: u32,
}

#[derive(Clone)]
pub struct Limiter {
    config: LimitsConfig,
    pool: PgPool,
}

impl Limiter {
    pub fn new(config: LimitsConfig, pool: PgPool) -> Self {
        Limiter { config, pool }
    }

    /// The buckets a request with `prompt_tokens` takes from, in order.
    pub fn buckets(&self, s: &Subjects, prompt_tokens: u32) -> Vec<Bucket> {
        let c = &self.config;
        let mut out = Vec::new();
        let mut add = |name: String, per_minute: Option<u32>, cost: f64| {
            if let Some(pm) = per_minute.filter(|&pm| pm > 0) {
                // a request larger than the whole bucket would wait forever
                out.push(Bucket { name, per_minute: f64::from(pm), cost: cost.min(f64::from(pm)) });
            }
        };
        let tokens = f64::from(prompt_tokens.max(1));
        if let Some(k) = &s.key {
            add(format!("key:{}:rpm", k.id), k.rpm.or(c.key_rpm), 1.0);
            add(format!("key:{}:tpm", k.id), k.tpm.or(c.key_tpm), tokens);
        }
        if let Some(u) = &s.user {
            add(format!("user:{u}:rpm"), c.user_rpm, 1.0);
            add(format!("user:{u}:tpm"), c.user_tpm, tokens);
        }
        if let Some(t) = s.ticket {
            add(format!("ticket:{t}:rpm"), c.ticket_rpm, 1.0);
        }
        if let Some(ip) = s.ip {
            add(format!("ip:{ip}:rpm"), c.ip_rpm, 1.0);
        }
        out
    }

    /// Whether any limit or budget applies to these subjects at all (the
    /// common unlimited case costs no database round trip).
    pub fn applies(&self, s: &Subjects, buckets: &[Bucket]) -> bool {
        !buckets.is_empty() || !self.budgets(s).is_empty()
    }

    fn budgets(&self, s: &Subjects) -> Vec<(String, Option<i64>, Option<i64>)> {
        let mut out = Vec::new();
        if let Some(k) = &s.key
            && (k.daily_budget_micros.is_some() || k.monthly_budget_micros.is_some())
        {
            out.push((format!("key:{}", k.id), k.daily_budget_micros, k.monthly_budget_micros));
        }
        if let Some(u) = &s.user
            && (self.config.user_daily_budget_micros.is_some() || self.config.user_monthly_budget_micros.is_some())
        {
            out.push((
                format!("user:{u}"),
                self.config.user_daily_budget_micros,
                self.config.user_monthly_budget_micros,
            ));
        }
        out
    }

    /// Checks budgets, then takes from every bucket; a refusal gives back
    /// what this request already took.
    pub async fn admit(&self, s: &Subjects, prompt_tokens: u32) -> Result<Granted, LimitError> {
        let buckets = self.buckets(s, prompt_tokens);
        if !self.config.enabled || !self.applies(s, &buckets) {
            return Ok(Granted::default());
        }
        for (scope, daily, monthly) in self.budgets(s) {
            let (day, month) = store::spent(&self.pool, &scope).await?;
            if daily.is_some_and(|b| day >= b) {
                return Err(LimitError::BudgetExceeded { scope, period: "daily" });
            }
            if monthly.is_some_and(|b| month >= b) {
                return Err(LimitError::BudgetExceeded { scope, period: "monthly" });
            }
        }
        for (i, b) in buckets.iter().enumerate() {
            if let Err(retry_after) =
                store::take(&self.pool, &b.name, b.per_minute, b.per_minute / 60.0, b.cost).await?
            {
                for taken in &buckets[..i] {
                    store::adjust(&self.pool, &taken.name, taken.per_minute, taken.per_minute / 60.0, taken.cost)
                        .await?;
                }
                let scope = b.name.rsplit_once(':').map_or(b.name.clone(), |(s, _)| s.to_string());
                return Err(LimitError::RateLimited { scope, retry_after });
            }
        }
        Ok(Granted {
            token_buckets: buckets.into_iter().filter(|b| b.name.ends_with(":tpm")).collect(),
            estimated_prompt: prompt_tokens,
        })
    }

    /// Charges the real usage to the token buckets taken at admission:
    /// the output, and the prompt's difference from the estimate.
    pub async fn settle(&self, admission: &Granted, input_tokens: u32, output_tokens: u32) {
        for b in &admission.token_buckets {
            let delta = f64::from(admission.estimated_prompt) - f64::from(input_tokens) - f64::from(output_tokens);
            if let Err(e) = store::adjust(&self.pool, &b.name, b.per_minute, b.per_minute / 60.0, delta).await {
                tracing::warn!(bucket = %b.name, error = %e, "could not charge output tokens");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(config: LimitsConfig) -> Limiter {
        // buckets() never touches the pool
        Limiter { config, pool: PgPool::connect_lazy("postgres://unused@127.0.0.1:1/x").unwrap() }
    }

    #[tokio::test]
    async fn keys_override_defaults_and_unlimited_costs_nothing() {
        let l = limiter(LimitsConfig { key_rpm: Some(60), user_rpm: Some(10), ..LimitsConfig::default() });
        let id = Uuid::nil();
        let s = Subjects { key: Some(KeyLimits { id, rpm: Some(5), ..KeyLimits::default() }), ..Subjects::default() };
        assert_eq!(l.buckets(&s, 100), vec![Bucket { name: format!("key:{id}:rpm"), per_minute: 5.0, cost: 1.0 }]);
        let s = Subjects { user: Some("u1".into()), ..Subjects::default() };
        assert_eq!(l.buckets(&s, 100)[0].name, "user:u1:rpm");
        let none = limiter(LimitsConfig::default());
        let s = Subjects { key: Some(KeyLimits { id, ..KeyLimits::default() }), ..Subjects::default() };
        assert!(!none.applies(&s, &none.buckets(&s, 10)));
    }

    #[tokio::test]
    async fn a_request_bigger_than_the_bucket_still_fits_a_full_one() {
        let l = limiter(LimitsConfig { user_tpm: Some(1000), ..LimitsConfig::default() });
        let s = Subjects { user: Some("u".into()), ..Subjects::default() };
        assert_eq!(l.buckets(&s, 5000)[0].cost, 1000.0);
    }
}
