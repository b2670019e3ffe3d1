//! Routing: complexity → tier → an ordered list of candidate models. The
//! first candidate is tried first; the rest are the fallback order, ending
//! with the tier's last resorts.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

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
    /// Exactly the order written in config.
    InOrder,
}

impl SelectionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionPolicy::CheapestHealthy => "cheapest_healthy",
            SelectionPolicy::LowestLatency => "lowest_latency",
            SelectionPolicy::InOrder => "in_order",
        }
    }
}

/// Why a request went where it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDecision {
    pub tier: Tier,
    pub policy: SelectionPolicy,
    /// Candidate model names, best first.
    pub candidates: Vec<String>,
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
        self.route_tier(complexity.default_tier(), health)
    }

    pub fn route_tier(&self, tier: Tier, health: &Health) -> RouteDecision {
        let tier_config = self.config.tier(tier);
        let mut pool: Vec<&String> = tier_config.candidates.iter().filter(|n| self.available.contains(*n)).collect();
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
            SelectionPolicy::InOrder => pool.sort_by_key(|name| !health.is_healthy(name)),
        }
        let mut candidates: Vec<String> = pool.into_iter().cloned().collect();
        for name in &tier_config.fallback {
            if self.available.contains(name) && !candidates.contains(name) {
                candidates.push(name.clone());
            }
        }
        RouteDecision { tier, policy: tier_config.policy, candidates }
    }

    pub fn is_available(&self, model: &str) -> bool {
        self.available.contains(model)
    }
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
            r.route_tier(Tier::Budget, &health).candidates,
            vec!["google/gemini-2.0-flash", "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "local/smollm2-budget"]
        );
    }

    #[test]
    fn unavailable_models_are_left_out() {
        let c = config_with_prices();
        let r = router(&c, &["a", "local/smollm2-budget"]);
        let health = Health::new(5, Duration::from_secs(30));
        assert_eq!(r.route_tier(Tier::Budget, &health).candidates, vec!["a", "local/smollm2-budget"]);
    }

    #[test]
    fn cheapest_first_keeps_config_order_on_ties_and_puts_open_circuits_last() {
        let c = config_with_prices();
        let r = router(&c, &["a", "b", "c", "local/smollm2-budget"]);
        let health = Health::new(1, Duration::from_secs(30));
        assert_eq!(r.route_tier(Tier::Budget, &health).candidates, vec!["c", "b", "a", "local/smollm2-budget"]);
        health.record_failure("c");
        assert_eq!(r.route_tier(Tier::Budget, &health).candidates, vec!["b", "a", "c", "local/smollm2-budget"]);
        assert_eq!(r.route_tier(Tier::Premium, &health).candidates, vec!["a", "b", "c", "local/smollm2-budget"]);
    }

    #[test]
    fn lowest_latency_prefers_measured_fast_models() {
        let c = config_with_prices();
        let r = router(&c, &["a", "b", "c"]);
        let health = Health::new(5, Duration::from_secs(30));
        health.record_success("b", Duration::from_millis(900));
        health.record_success("c", Duration::from_millis(200));
        assert_eq!(r.route_tier(Tier::Balanced, &health).candidates, vec!["c", "b", "a"]);
    }
}
