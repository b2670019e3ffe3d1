//! Routing: complexity → tier → an ordered list of candidate models. The
//! first candidate is tried first; the rest are the fallback order.

use serde::{Deserialize, Serialize};

use super::pricing::Catalog;
use crate::config::RoutingConfig;
use crate::domain::{Complexity, Tier};

/// How a tier orders its candidates. A closed set chosen per tier in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionPolicy {
    /// Cheapest first by list price (input + output per token); ties keep
    /// config order. Unhealthy models are skipped by the caller.
    CheapestHealthy,
    /// Exactly the order written in config.
    InOrder,
}

impl SelectionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionPolicy::CheapestHealthy => "cheapest_healthy",
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
}

impl Router {
    pub fn new(config: RoutingConfig, catalog: Catalog) -> Self {
        Router { config, catalog }
    }

    pub fn route(&self, complexity: Complexity) -> RouteDecision {
        self.route_tier(complexity.default_tier())
    }

    pub fn route_tier(&self, tier: Tier) -> RouteDecision {
        let tier_config = self.config.tier(tier);
        let mut candidates = tier_config.candidates.clone();
        if tier_config.policy == SelectionPolicy::CheapestHealthy {
            // sort_by_key is stable, so equal prices keep config order
            candidates.sort_by_key(|name| self.catalog.get(name).map_or(i64::MAX, |m| m.price.input + m.price.output));
        }
        RouteDecision { tier, policy: tier_config.policy, candidates }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ModelConfig, ProviderKind, TierConfig};

    fn config_with_prices() -> Config {
        let mut c = Config::default();
        for (name, input, output) in [("a", 5.0, 15.0), ("b", 0.15, 0.6), ("c", 0.15, 0.6)] {
            c.models.insert(
                name.into(),
                ModelConfig {
                    provider: ProviderKind::Local,
                    upstream_model: name.into(),
                    input_price_per_mtok: input,
                    output_price_per_mtok: output,
                    cached_input_price_per_mtok: None,
                    context_window: 8192,
                },
            );
        }
        c.routing.budget = TierConfig {
            candidates: vec!["a".into(), "c".into(), "b".into()],
            policy: SelectionPolicy::CheapestHealthy,
        };
        c.routing.premium =
            TierConfig { candidates: vec!["a".into(), "c".into(), "b".into()], policy: SelectionPolicy::InOrder };
        c
    }

    #[test]
    fn complexity_picks_its_tier() {
        let c = Config::default();
        let r = Router::new(c.routing.clone(), Catalog::from_config(&c));
        assert_eq!(r.route(Complexity::Simple).tier, Tier::Budget);
        assert_eq!(r.route(Complexity::Medium).candidates, vec!["local/smollm2-balanced".to_string()]);
        assert_eq!(r.route(Complexity::Complex).tier, Tier::Premium);
    }

    #[test]
    fn cheapest_first_keeps_config_order_on_ties() {
        let c = config_with_prices();
        let r = Router::new(c.routing.clone(), Catalog::from_config(&c));
        assert_eq!(r.route_tier(Tier::Budget).candidates, vec!["c", "b", "a"]);
        assert_eq!(r.route_tier(Tier::Premium).candidates, vec!["a", "c", "b"]);
    }
}
