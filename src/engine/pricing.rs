//! The model catalog and cost math. Money is integer micro-dollars; prices
//! are kept as integer nano-dollars per token so a price like $0.075 per
//! million tokens is exact, and the only rounding is once per call.

use std::collections::BTreeMap;

use crate::config::{Config, ModelConfig, ProviderKind};

/// Nano-dollars per token. `$X per 1M tokens` = `X * 1000` nano-dollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Price {
    pub input: i64,
    pub output: i64,
    pub cached_input: i64,
}

impl Price {
    pub fn from_per_mtok(input: f64, output: f64, cached_input: Option<f64>) -> Self {
        // Config prices are decimal dollars; convert once, rounding to the
        // nearest nano-dollar (exact for any price with ≤ 3 decimals).
        let nanos = |usd_per_mtok: f64| (usd_per_mtok * 1000.0).round() as i64;
        Price { input: nanos(input), output: nanos(output), cached_input: nanos(cached_input.unwrap_or(input)) }
    }

    /// Cost of one call in micro-dollars, rounded half up.
    /// `input_tokens` includes the cached ones, as providers report them.
    pub fn cost_micros(&self, usage: &Usage) -> i64 {
        let cached = i64::from(usage.cached_tokens.min(usage.input_tokens));
        let fresh = i64::from(usage.input_tokens) - cached;
        let nanos = fresh * self.input + cached * self.cached_input + i64::from(usage.output_tokens) * self.output;
        (nanos + 500) / 1000
    }
}

/// Token counts of one call, as the provider reported them (or as counted
/// locally when `estimated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cached_tokens: u32,
    pub estimated: bool,
}

#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub name: String,
    pub provider: ProviderKind,
    pub upstream_model: String,
    pub price: Price,
    pub context_window: u32,
}

impl ModelEntry {
    fn from_config(name: &str, m: &ModelConfig) -> Self {
        ModelEntry {
            name: name.to_string(),
            provider: m.provider,
            upstream_model: m.upstream_model.clone(),
            price: Price::from_per_mtok(m.input_price_per_mtok, m.output_price_per_mtok, m.cached_input_price_per_mtok),
            context_window: m.context_window,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    models: BTreeMap<String, ModelEntry>,
}

impl Catalog {
    pub fn from_config(config: &Config) -> Self {
        Catalog {
            models: config.models.iter().map(|(name, m)| (name.clone(), ModelEntry::from_config(name, m))).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.models.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ModelEntry> {
        self.models.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt4o_list_price_is_exact() {
        // $2.50 in / $10.00 out / $1.25 cached per 1M tokens.
        let p = Price::from_per_mtok(2.5, 10.0, Some(1.25));
        let usage = Usage { input_tokens: 1_000_000, output_tokens: 1_000_000, cached_tokens: 0, estimated: false };
        assert_eq!(p.cost_micros(&usage), 12_500_000);
        let usage = Usage { input_tokens: 1000, output_tokens: 300, cached_tokens: 400, estimated: false };
        // 600 * 2.5 + 400 * 1.25 + 300 * 10 = 1500 + 500 + 3000 micro-dollars
        assert_eq!(p.cost_micros(&usage), 5000);
    }

    #[test]
    fn sub_micro_prices_round_once_per_call() {
        // $0.075 per 1M = 75 nano-dollars per token.
        let p = Price::from_per_mtok(0.075, 0.3, None);
        let usage = Usage { input_tokens: 7, output_tokens: 3, cached_tokens: 0, estimated: false };
        // 7*75 + 3*300 = 1425 nanos -> 1 micro (rounded half up)
        assert_eq!(p.cost_micros(&usage), 1);
        let usage = Usage { input_tokens: 20, output_tokens: 0, cached_tokens: 0, estimated: false };
        assert_eq!(p.cost_micros(&usage), 2); // 1500 nanos -> 2
    }

    #[test]
    fn cached_tokens_never_exceed_input() {
        let p = Price::from_per_mtok(1.0, 1.0, Some(0.0));
        let usage = Usage { input_tokens: 10, output_tokens: 0, cached_tokens: 50, estimated: false };
        assert_eq!(p.cost_micros(&usage), 0);
    }

    #[test]
    fn local_model_is_free() {
        let c = Catalog::from_config(&Config::default());
        let m = c.get("local/smollm2-budget").unwrap();
        let usage = Usage { input_tokens: 500, output_tokens: 200, cached_tokens: 0, estimated: false };
        assert_eq!(m.price.cost_micros(&usage), 0);
    }
}
