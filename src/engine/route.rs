//! Routing: complexity → tier → an ordered list of candidate models. The
//! first candidate is tried first; the rest are the fallback order, ending
//! with the tier's last resorts.
//!
//! The tier is the complexity's, then, in this order: raised to the ticket's
//! recent floor (a conversation does not drop back to a cheaper tier in
//! mid-problem), raised one more step on an escalation signal, and replaced
//! outright by a trusted caller's forced tier. Each change is written into
//! the decision, so every route can be explained.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::escalation::Signal;
use super::pricing::Catalog;
use super::providers::health::Health;
use crate::config::RoutingConfig;
use crate::domain::{Complexity, Tier};

/// How a tier orders its candidates. A closed set chosen per tier in config.
/// Every policy puts models whose circuit is open last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionPolicy {
    /// Cheapest first by list price (input + output per token); ties keep
    /// config order.
    CheapestHealthy,
    /// Fastest first by this instance's moving average of latency; models
    /// not yet measured come after measured ones, in config order.
    LowestLatency,
    /// A weighted random draw (the tier's `weights`, default 1 each), seeded
    /// by the request id so a decision can be replayed; the rest follow in
    /// draw order.
    Weighted,
    /// Exactly the order written in config.
    InOrder,
}

impl SelectionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionPolicy::CheapestHealthy => "cheapest_healthy",
            SelectionPolicy::LowestLatency => "lowest_latency",
            SelectionPolicy::Weighted => "weighted",
            SelectionPolicy::InOrder => "in_order",
        }
    }
}

/// What besides the complexity shapes a route.
#[derive(Debug, Clone, Default)]
pub struct RouteHints {
    /// A trusted caller's tier; overrides everything else.
    pub forced_tier: Option<Tier>,
    /// The highest tier the ticket reached in its recent turns.
    pub ticket_floor: Option<Tier>,
    pub escalation: Option<Signal>,
    /// Only these models may answer (Eden AI's `router_candidates`).
    pub only: Option<Vec<String>>,
    /// Seeds the weighted draw.
    pub seed: u64,
}

/// Why a request went where it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDecision {
    pub tier: Tier,
    /// The tier the complexity alone asked for.
    pub base_tier: Tier,
    pub policy: SelectionPolicy,
    /// Candidate model names, best first.
    pub candidates: Vec<String>,
    /// How and why `tier` differs from `base_tier`, in order applied.
    pub adjustments: Vec<String>,
}

impl RouteDecision {
    /// One line for logs, the call record and the caller.
    pub fn explain(&self) -> String {
        let mut s = format!("{} via {}", self.tier, self.policy.as_str());
        for a in &self.adjustments {
            s.push_str("; ");
            s.push_str(a);
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct Router {
    config: RoutingConfig,
    catalog: Catalog,
    /// Models that can be called here (key present, or local and loaded).
    available: HashSet<String>,
}

impl Router {
    pub fn new(config: RoutingConfig, catalog: Catalog, available: impl IntoIterator<Item = String>) -> Self {
        Router { config, catalog, available: available.into_iter().collect() }
    }

    pub fn route(&self, complexity: Complexity, health: &Health) -> RouteDecision {
        self.decide(complexity, &RouteHints::default(), health)
    }

    /// The tier for `complexity` after the hints, and its candidates.
    pub fn decide(&self, complexity: Complexity, hints: &RouteHints, health: &Health) -> RouteDecision {
        let base_tier = complexity.default_tier();
        let mut tier = base_tier;
        let mut adjustments = Vec::new();
        if let Some(floor) = hints.ticket_floor.filter(|f| *f > tier) {
            tier = floor;
            adjustments.push(format!("kept at the ticket's recent {floor} tier"));
        }
        if let Some(signal) = hints.escalation {
            match tier.up() {
                Some(up) => {
                    tier = up;
                    adjustments.push(format!("escalated to {up}: customer {}", signal.as_str()));
                }
                None => adjustments.push(format!("customer {} (already premium)", signal.as_str())),
            }
        }
        if let Some(forced) = hints.forced_tier {
            tier = forced;
            adjustments.push(format!("forced to {forced} by the caller"));
        }
        let mut decision = self.route_tier(tier, hints, health);
        decision.base_tier = base_tier;
        decision.adjustments = adjustments;
        decision
    }

    /// The candidates of one tier, narrowed by `hints.only` and ordered by
    /// the tier's policy. When `only` names none of this tier's models, the
    /// named models themselves are the pool: the caller's list wins.
    pub fn route_tier(&self, tier: Tier, hints: &RouteHints, health: &Health) -> RouteDecision {
        let tier_config = self.config.tier(tier);
        let allowed =
            |name: &String| self.available.contains(name) && hints.only.as_ref().is_none_or(|only| only.contains(name));
        let mut pool: Vec<&String> = tier_config.candidates.iter().filter(|n| allowed(n)).collect();
        if pool.is_empty()
            && let Some(only) = &hints.only
        {
            pool = only.iter().filter(|n| self.available.contains(*n)).collect();
        }
        // sort_by_key is stable: equal keys keep config order
        match tier_config.policy {
            SelectionPolicy::CheapestHealthy => pool.sort_by_key(|name| {
                let price = self.catalog.get(name).map_or(i64::MAX, |m| m.price.input + m.price.output);
                (!health.is_healthy(name), price)
            }),
            SelectionPolicy::LowestLatency => pool.sort_by_key(|name| {
                // micro-second buckets keep the key integral and total
                let latency = health.latency_ms(name).map_or(u64::MAX, |ms| (ms * 1000.0) as u64);
                (!health.is_healthy(name), latency)
            }),
            SelectionPolicy::Weighted => {
                let key = |name: &str| {
                    let weight = tier_config.weights.get(name).copied().unwrap_or(1.0);
                    weighted_key(weight, unit_hash(hints.seed, name))
                };
                pool.sort_by(|a, b| (!health.is_healthy(a)).cmp(&!health.is_healthy(b)).then(key(b).total_cmp(&key(a))))
            }
            SelectionPolicy::InOrder => pool.sort_by_key(|name| !health.is_healthy(name)),
        }
        let mut candidates: Vec<String> = pool.into_iter().cloned().collect();
        for name in &tier_config.fallback {
            if allowed(name) && !candidates.contains(name) {
                candidates.push(name.clone());
            }
        }
        RouteDecision { tier, base_tier: tier, policy: tier_config.policy, candidates, adjustments: Vec::new() }
    }

    pub fn is_available(&self, model: &str) -> bool {
        self.available.contains(model)
    }
}

/// Efraimidis–Spirakis: sorting by `u^(1/w)` descending draws without
/// replacement with probability proportional to `w`.
fn weighted_key(weight: f64, u: f64) -> f64 {
    if weight <= 0.0 { -1.0 } else { u.powf(1.0 / weight) }
}

/// A uniform number in (0, 1) from the seed and the model name (FNV-1a,
/// then splitmix64 to spread the bits).
fn unit_hash(seed: u64, name: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, ModelConfig, ProviderKind, TierConfig};

    fn config_with_prices() -> Config {
        let mut c = Config::default();
        for (name, input, output) in [("a", 5.0, 15.0), ("b", 0.15, 0.6), ("c", 0.15, 0.6)] {
            c.models.insert(
                name.into(),
                ModelConfig {
                    provider: ProviderKind::Openai,
                    upstream_model: name.into(),
                    base_url: Some("http://127.0.0.1:1/v1".into()),
                    api_key_env: None,
                    input_price_per_mtok: input,
                    output_price_per_mtok: output,
                    cached_input_price_per_mtok: None,
                    context_window: 8192,
                },
            );
        }
        let tier = |policy| TierConfig {
            candidates: vec!["a".into(), "c".into(), "b".into()],
            policy,
            fallback: vec!["local/smollm2-budget".into()],
            weights: Default::default(),
        };
        c.routing.budget = tier(SelectionPolicy::CheapestHealthy);
        c.routing.balanced = tier(SelectionPolicy::LowestLatency);
        c.routing.premium = tier(SelectionPolicy::InOrder);
        c
    }

    fn router(c: &Config, available: &[&str]) -> Router {
        Router::new(c.routing.clone(), Catalog::from_config(c), available.iter().map(|s| s.to_string()))
    }

    #[test]
    fn with_no_keys_every_tier_is_the_local_model() {
        let c = Config::default();
        let r = router(&c, &["local/smollm2-budget", "local/smollm2-balanced", "local/smollm2-premium"]);
        let health = Health::new(5, Duration::from_secs(30));
        assert_eq!(r.route(Complexity::Simple, &health).candidates, vec!["local/smollm2-budget"]);
        assert_eq!(r.route(Complexity::Medium, &health).candidates, vec!["local/smollm2-balanced"]);
        let premium = r.route(Complexity::Complex, &health);
        assert_eq!((premium.tier, premium.candidates), (Tier::Premium, vec!["local/smollm2-premium".to_string()]));
    }

    #[test]
    fn default_pools_order_by_price_with_local_last() {
        let c = Config::default();
        let all: Vec<&str> = c.models.keys().map(String::as_str).collect();
        let r = router(&c, &all);
        let health = Health::new(5, Duration::from_secs(30));
        assert_eq!(
            r.route_tier(Tier::Budget, &RouteHints::default(), &health).candidates,
            vec!["google/gemini-2.0-flash", "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "local/smollm2-budget"]
        );
    }

    #[test]
    fn unavailable_models_are_left_out() {
        let c = config_with_prices();
        let r = router(&c, &["a", "local/smollm2-budget"]);
        let health = Health::new(5, Duration::from_secs(30));
        assert_eq!(
            r.route_tier(Tier::Budget, &RouteHints::default(), &health).candidates,
            vec!["a", "local/smollm2-budget"]
        );
    }

    #[test]
    fn cheapest_first_keeps_config_order_on_ties_and_puts_open_circuits_last() {
        let c = config_with_prices();
        let r = router(&c, &["a", "b", "c", "local/smollm2-budget"]);
        let health = Health::new(1, Duration::from_secs(30));
        assert_eq!(
            r.route_tier(Tier::Budget, &RouteHints::default(), &health).candidates,
            vec!["c", "b", "a", "local/smollm2-budget"]
        );
        health.record_failure("c");
        assert_eq!(
            r.route_tier(Tier::Budget, &RouteHints::default(), &health).candidates,
            vec!["b", "a", "c", "local/smollm2-budget"]
        );
        assert_eq!(
            r.route_tier(Tier::Premium, &RouteHints::default(), &health).candidates,
            vec!["a", "b", "c", "local/smollm2-budget"]
        );
    }

    #[test]
    fn lowest_latency_prefers_measured_fast_models() {
        let c = config_with_prices();
        let r = router(&c, &["a", "b", "c"]);
        let health = Health::new(5, Duration::from_secs(30));
        health.record_success("b", Duration::from_millis(900));
        health.record_success("c", Duration::from_millis(200));
        assert_eq!(r.route_tier(Tier::Balanced, &RouteHints::default(), &health).candidates, vec!["c", "b", "a"]);
    }

    fn hints() -> RouteHints {
        RouteHints::default()
    }

    #[test]
    fn a_ticket_does_not_drop_below_its_recent_tier() {
        let c = config_with_prices();
        let r = router(&c, &["a", "b", "c"]);
        let health = Health::new(5, Duration::from_secs(30));
        let floor = RouteHints { ticket_floor: Some(Tier::Balanced), ..hints() };
        let d = r.decide(Complexity::Simple, &floor, &health);
        assert_eq!((d.base_tier, d.tier), (Tier::Budget, Tier::Balanced));
        assert!(d.explain().contains("ticket's recent balanced"), "{}", d.explain());
        // a floor below the complexity changes nothing
        let low = RouteHints { ticket_floor: Some(Tier::Budget), ..hints() };
        let d = r.decide(Complexity::Complex, &low, &health);
        assert_eq!(d.tier, Tier::Premium);
        assert!(d.adjustments.is_empty());
    }

    #[test]
    fn a_signal_escalates_one_tier_above_the_floor() {
        let c = config_with_prices();
        let r = router(&c, &["a", "b", "c"]);
        let health = Health::new(5, Duration::from_secs(30));
        let h = RouteHints { ticket_floor: Some(Tier::Balanced), escalation: Some(Signal::NotHelped), ..hints() };
        let d = r.decide(Complexity::Simple, &h, &health);
        assert_eq!(d.tier, Tier::Premium);
        assert_eq!(d.adjustments.len(), 2);
        let h = RouteHints { escalation: Some(Signal::WantsHuman), ..hints() };
        assert_eq!(r.decide(Complexity::Simple, &h, &health).tier, Tier::Balanced);
        assert_eq!(r.decide(Complexity::Complex, &h, &health).tier, Tier::Premium);
    }

    #[test]
    fn a_forced_tier_wins_over_everything() {
        let c = config_with_prices();
        let r = router(&c, &["a", "b", "c"]);
        let health = Health::new(5, Duration::from_secs(30));
        let h = RouteHints {
            forced_tier: Some(Tier::Budget),
            ticket_floor: Some(Tier::Premium),
            escalation: Some(Signal::Repeated),
            ..hints()
        };
        let d = r.decide(Complexity::Complex, &h, &health);
        assert_eq!(d.tier, Tier::Budget);
        assert!(d.explain().ends_with("forced to budget by the caller"), "{}", d.explain());
    }

    #[test]
    fn router_candidates_narrow_the_pool_and_the_last_resorts() {
        let c = config_with_prices();
        let r = router(&c, &["a", "b", "c", "local/smollm2-budget"]);
        let health = Health::new(5, Duration::from_secs(30));
        let h = RouteHints { only: Some(vec!["a".into(), "b".into()]), ..hints() };
        assert_eq!(r.route_tier(Tier::Budget, &h, &health).candidates, vec!["b", "a"]);
        // models outside the tier's pool: the caller's list is the pool
        let mut c2 = c.clone();
        c2.routing.budget.candidates = vec!["c".into()];
        let r2 = router(&c2, &["a", "b", "c"]);
        let h = RouteHints { only: Some(vec!["a".into(), "zzz".into()]), ..hints() };
        assert_eq!(r2.route_tier(Tier::Budget, &h, &health).candidates, vec!["a"]);
        // nothing callable: an empty list, which the caller reports
        let h = RouteHints { only: Some(vec!["zzz".into()]), ..hints() };
        assert!(r2.route_tier(Tier::Budget, &h, &health).candidates.is_empty());
    }

    #[test]
    fn weighted_draws_follow_the_weights_and_replay_by_seed() {
        let mut c = config_with_prices();
        c.routing.balanced.policy = SelectionPolicy::Weighted;
        c.routing.balanced.weights = [("a".to_string(), 3.0), ("b".to_string(), 1.0), ("c".to_string(), 0.0)].into();
        let r = router(&c, &["a", "b", "c"]);
        let health = Health::new(5, Duration::from_secs(30));
        let mut firsts = std::collections::HashMap::new();
        for seed in 0..4000u64 {
            let h = RouteHints { seed, ..hints() };
            let d = r.route_tier(Tier::Balanced, &h, &health);
            assert_eq!(d.candidates.last().map(String::as_str), Some("c"), "weight 0 goes last");
            assert_eq!(d.candidates, r.route_tier(Tier::Balanced, &h, &health).candidates, "same seed, same order");
            *firsts.entry(d.candidates[0].clone()).or_insert(0u32) += 1;
        }
        let share_a = firsts["a"] as f64 / 4000.0;
        assert!((0.72..0.78).contains(&share_a), "a first {share_a}");
        // an open circuit goes last whatever the draw
        let health = Health::new(1, Duration::from_secs(30));
        health.record_failure("a");
        for seed in 0..50u64 {
            let d = r.route_tier(Tier::Balanced, &RouteHints { seed, ..hints() }, &health);
            assert_eq!(d.candidates.last().map(String::as_str), Some("a"));
        }
    }
}
