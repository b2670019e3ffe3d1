//! One `Config`, layered: built-in defaults < `triage.toml` (path from
//! `TRIAGE_CONFIG`) < `TRIAGE_*` environment variables (nested keys joined by
//! `__`, e.g. `TRIAGE_CLASSIFIER__KIND=heuristic`; `TRIAGE_MODELS_DIR`,
//! `TRIAGE_ADDR`) < `DATABASE_URL`.
//! `validate()` runs at start so a bad setting stops the server with a clear
//! message instead of failing on the first request.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::domain::Tier;
use crate::engine::route::SelectionPolicy;

/// A value that never shows itself in logs, errors or serialised config.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("*****")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds. Loopback by default: the admin pages
    /// have no login until the dashboard issue lands.
    pub addr: SocketAddr,
    pub database_url: Secret<String>,
    /// Pool size per instance.
    pub database_max_connections: u32,
    /// Where `scripts/fetch-models` put the model files.
    pub models_dir: PathBuf,
    pub local: LocalModelConfig,
    pub classifier: ClassifierConfig,
    pub routing: RoutingConfig,
    /// Model catalog: name → how to call it and what it costs.
    pub models: BTreeMap<String, ModelConfig>,
    pub chat: ChatConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalModelConfig {
    /// GGUF file, relative to `models_dir` unless absolute.
    pub gguf: PathBuf,
    /// Threads for llama.cpp; 0 = all cores.
    pub threads: u32,
    /// Context window in tokens (prompt + answer).
    pub context_tokens: u32,
    /// Answers are capped here: SmolLM2-135M rarely stops by itself.
    pub max_output_tokens: u32,
    /// Sampling temperature used when a request does not set one.
    pub temperature: f32,
    pub repeat_penalty: f32,
    /// Requests waiting for the model beyond this are refused (503) rather
    /// than queued for minutes.
    pub max_queue: usize,
    /// Whether to load the model at all (tests of other layers skip it).
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierKind {
    /// Word count plus keyword rules: the baseline.
    Heuristic,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    pub kind: ClassifierKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Candidate model names from the catalog, in fallback order.
    pub candidates: Vec<String>,
    pub policy: SelectionPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub budget: TierConfig,
    pub balanced: TierConfig,
    pub premium: TierConfig,
}

impl RoutingConfig {
    pub fn tier(&self, tier: Tier) -> &TierConfig {
        match tier {
            Tier::Budget => &self.budget,
            Tier::Balanced => &self.balanced,
            Tier::Premium => &self.premium,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The embedded GGUF model (llama.cpp, in process).
    Local,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: ProviderKind,
    /// The provider's own id for the model.
    pub upstream_model: String,
    /// US dollars per million tokens.
    pub input_price_per_mtok: f64,
    pub output_price_per_mtok: f64,
    #[serde(default)]
    pub cached_input_price_per_mtok: Option<f64>,
    pub context_window: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Longest customer message accepted, in characters.
    pub max_message_chars: usize,
    /// Earlier turns sent to the model with each new message.
    pub history_turns: usize,
    pub system_prompt: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info,triage=debug`.
    pub filter: String,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/triage";

impl Default for Config {
    fn default() -> Self {
        let local_model = |name: &str| ModelConfig {
            provider: ProviderKind::Local,
            upstream_model: format!("SmolLM2-135M-Instruct ({name})"),
            input_price_per_mtok: 0.0,
            output_price_per_mtok: 0.0,
            cached_input_price_per_mtok: None,
            context_window: 2048,
        };
        let tier =
            |name: &str| TierConfig { candidates: vec![name.to_string()], policy: SelectionPolicy::CheapestHealthy };
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            database_url: Secret::new(DEFAULT_DATABASE_URL.to_string()),
            database_max_connections: 16,
            models_dir: PathBuf::from("models"),
            local: LocalModelConfig {
                gguf: PathBuf::from("SmolLM2-135M-Instruct.Q4_1.gguf"),
                threads: 2,
                context_tokens: 2048,
                max_output_tokens: 200,
                temperature: 0.3,
                repeat_penalty: 1.15,
                max_queue: 64,
                enabled: true,
            },
            classifier: ClassifierConfig { kind: ClassifierKind::Heuristic },
            // Offline default: every tier is the local model under its own
            // name, so the tier a message went to is visible everywhere.
            routing: RoutingConfig {
                budget: tier("local/smollm2-budget"),
                balanced: tier("local/smollm2-balanced"),
                premium: tier("local/smollm2-premium"),
            },
            models: ["budget", "balanced", "premium"]
                .into_iter()
                .map(|t| (format!("local/smollm2-{t}"), local_model(t)))
                .collect(),
            chat: ChatConfig {
                max_message_chars: 8_000,
                history_turns: 6,
                system_prompt: "You are a friendly, concise customer support assistant. \
                    Answer the customer's question clearly in a few sentences."
                    .to_string(),
            },
            log: LogConfig { format: LogFormat::Pretty, filter: "info,llama_cpp_2=warn,sqlx=warn".to_string() },
        }
    }
}

impl Config {
    /// Defaults < `triage.toml` (or `$TRIAGE_CONFIG`) < `TRIAGE_*` < well-known env.
    pub fn load() -> Result<Self, ConfigError> {
        let path = std::env::var("TRIAGE_CONFIG").ok();
        let explicit = path.is_some();
        let path = PathBuf::from(path.unwrap_or_else(|| "triage.toml".into()));
        if explicit && !path.exists() {
            return Err(ConfigError::Invalid(format!(
                "TRIAGE_CONFIG points at {}, which does not exist",
                path.display()
            )));
        }
        // Only keys naming a config section: scripts may set other TRIAGE_*
        // variables, and unknown keys inside a section are still rejected.
        const SECTIONS: &[&str] = &[
            "addr",
            "database_url",
            "database_max_connections",
            "models_dir",
            "local",
            "classifier",
            "routing",
            "models",
            "chat",
            "log",
        ];
        let mut figment = Figment::from(Serialized::defaults(Config::default()))
            // Secret serialises as *****: put the real default underneath the file.
            .merge(("database_url", DEFAULT_DATABASE_URL))
            .merge(Toml::file(&path))
            .merge(Env::prefixed("TRIAGE_").split("__").filter(|key| {
                // (before or after `split`, depending on figment's order)
                let top = key.as_str().split('.').next().unwrap_or_default();
                let top = top.split("__").next().unwrap_or_default();
                SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(top))
            }));
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(("database_url", url));
        }
        let config: Config = figment.extract().map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: references between sections and ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if !self.database_url.expose().starts_with("postgres://")
            && !self.database_url.expose().starts_with("postgresql://")
        {
            return bad("database_url must be a postgres:// URL".into());
        }
        for &tier in Tier::ALL {
            let tc = self.routing.tier(tier);
            if tc.candidates.is_empty() {
                return bad(format!("routing.{tier}.candidates is empty"));
            }
            for name in &tc.candidates {
                if !self.models.contains_key(name) {
                    return bad(format!("routing.{tier}.candidates names model {name:?}, which is not in [models]"));
                }
            }
        }
        for (name, m) in &self.models {
            let prices =
                [m.input_price_per_mtok, m.output_price_per_mtok, m.cached_input_price_per_mtok.unwrap_or(0.0)];
            if prices.iter().any(|p| !p.is_finite() || *p < 0.0) {
                return bad(format!("models.{name:?}: prices must be finite and >= 0"));
            }
            if m.context_window < 256 {
                return bad(format!("models.{name:?}: context_window must be >= 256"));
            }
        }
        if self.local.context_tokens < 256 || self.local.max_output_tokens == 0 {
            return bad("local.context_tokens must be >= 256 and local.max_output_tokens > 0".into());
        }
        if self.local.max_output_tokens >= self.local.context_tokens {
            return bad("local.max_output_tokens must be smaller than local.context_tokens".into());
        }
        if !(0.0..=2.0).contains(&self.local.temperature) {
            return bad("local.temperature must be within 0..=2".into());
        }
        if self.chat.max_message_chars == 0 {
            return bad("chat.max_message_chars must be > 0".into());
        }
        Ok(())
    }

    pub fn gguf_path(&self) -> PathBuf {
        if self.local.gguf.is_absolute() { self.local.gguf.clone() } else { self.models_dir.join(&self.local.gguf) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn unknown_candidate_is_rejected_with_its_name() {
        let mut c = Config::default();
        c.routing.premium.candidates = vec!["nope/model".into()];
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("nope/model"), "{err}");
        assert!(err.contains("premium"), "{err}");
    }

    #[test]
    fn negative_price_is_rejected() {
        let mut c = Config::default();
        c.models.get_mut("local/smollm2-budget").unwrap().output_price_per_mtok = -1.0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("postgres://user:pw@host/db".to_string());
        assert_eq!(format!("{s:?} {s}"), "***** *****");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"*****\"");
    }

    #[test]
    fn the_example_file_is_valid_and_complete() {
        let c: Config = Figment::from(Toml::string(include_str!("../triage.example.toml"))).extract().unwrap();
        c.validate().unwrap();
        assert_eq!(c.models.len(), Config::default().models.len());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's own test API
    fn toml_layer_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file(
                "triage.toml",
                r#"
                addr = "127.0.0.1:4000"
                [local]
                max_output_tokens = 64
                "#,
            )?;
            jail.set_env("TRIAGE_CHAT__HISTORY_TURNS", "2");
            let c = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(c.addr.port(), 4000);
            assert_eq!(c.local.max_output_tokens, 64);
            assert_eq!(c.chat.history_turns, 2);
            assert_eq!(c.database_url.expose(), DEFAULT_DATABASE_URL);
            Ok(())
        });
    }
}
