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
    /// Address the HTTP server binds.
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
    pub api: ApiConfig,
    pub admin: AdminConfig,
    pub limits: LimitsConfig,
    pub cache: CacheConfig,
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
    /// MiniLM embeddings + shape features, trained head (see README).
    Embedding,
    /// A cheap model with a `classify_query` tool; `embedding` on failure.
    Llm,
    /// `embedding`, then `llm` when its confidence is low.
    Cascade,
}

impl ClassifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClassifierKind::Heuristic => "heuristic",
            ClassifierKind::Embedding => "embedding",
            ClassifierKind::Llm => "llm",
            ClassifierKind::Cascade => "cascade",
        }
    }
}

impl std::str::FromStr for ClassifierKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "heuristic" => Ok(ClassifierKind::Heuristic),
            "embedding" => Ok(ClassifierKind::Embedding),
            "llm" => Ok(ClassifierKind::Llm),
            "cascade" => Ok(ClassifierKind::Cascade),
            other => Err(format!("unknown classifier {other:?} (heuristic, embedding, llm, cascade)")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    pub kind: ClassifierKind,
    /// Labeled queries the embedding head is trained on (JSON lines with
    /// `query` and `label`), when no trained head is in `models_dir` yet.
    pub training_data: PathBuf,
    /// The model the `llm` and `cascade` classifiers ask (a catalog name).
    pub llm_model: String,
    pub llm_timeout_ms: u64,
    /// `cascade` asks the model when the embedding's confidence is below this.
    pub cascade_below: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Candidate model names from the catalog, ordered by `policy`.
    pub candidates: Vec<String>,
    pub policy: SelectionPolicy,
    /// Last resorts, tried in this order after every candidate failed or
    /// was left out (by default the local model, so a tier always answers).
    #[serde(default)]
    pub fallback: Vec<String>,
    /// For the `weighted` policy: relative weight per candidate (default 1).
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub budget: TierConfig,
    pub balanced: TierConfig,
    pub premium: TierConfig,
    /// A ticket does not drop below the highest tier of its last this many
    /// answers (0 turns stickiness off).
    pub sticky_turns: u32,
    /// Repeats, "that didn't help" and asking for a human move up a tier.
    pub escalate_on_signals: bool,
    pub resilience: ResilienceConfig,
}

/// Timeouts, retries, fallback and the circuit breaker for upstream calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Until an attempt's first event (headers and first chunk).
    pub first_byte_timeout_ms: u64,
    /// Longest silence inside a stream.
    pub idle_timeout_ms: u64,
    /// The whole request, every retry and fallback included.
    pub deadline_ms: u64,
    /// Attempts on one model before falling back to the next.
    pub max_attempts_per_model: u32,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// A `Retry-After` longer than this falls back instead of waiting.
    pub max_retry_after_ms: u64,
    /// After every candidate of a tier failed, try the tier above.
    pub fallback_tier_up: bool,
    /// Consecutive failures that open a model's circuit.
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            first_byte_timeout_ms: 20_000,
            idle_timeout_ms: 30_000,
            deadline_ms: 90_000,
            max_attempts_per_model: 2,
            backoff_base_ms: 250,
            backoff_cap_ms: 4_000,
            max_retry_after_ms: 10_000,
            fallback_tier_up: true,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
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

/// The response cache (see `engine::cache`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Also cache requests that are not deterministic (temperature unset or
    /// above 0): repeats then get the first answer.
    pub include_nondeterministic: bool,
    /// How long an answer stays, per tier of the model that wrote it.
    pub ttl_budget_secs: u64,
    pub ttl_balanced_secs: u64,
    pub ttl_premium_secs: u64,
    /// Entries kept in memory in front of Postgres.
    pub memory_entries: usize,
    /// The semantic cache: first turns whose question means the same.
    /// Requests may switch it on or off (`X-Triage-Semantic-Cache`).
    pub semantic: bool,
    /// Cosine similarity (MiniLM) at or above which a question matches.
    pub semantic_threshold: f32,
}

/// The OpenAI-compatible API's input limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Without a valid `Authorization: Bearer` key, `/v1` answers 401.
    pub require_key: bool,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    pub max_messages: usize,
    /// Per message.
    pub max_message_chars: usize,
}

/// The admin dashboard's sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// An admin session ends after this long without use.
    pub session_hours: u32,
    /// Mark the admin cookie `Secure`. Turn on whenever Triage is reached
    /// over TLS (directly or behind a proxy).
    pub secure_cookies: bool,
    /// On start, when no admin exists yet, create this one (the password
    /// from `bootstrap_password`, best given as TRIAGE_ADMIN__BOOTSTRAP_PASSWORD).
    pub bootstrap_username: Option<String>,
    pub bootstrap_password: Option<Secret<String>>,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret<String>>,
    /// How often alert rules are checked.
    pub alert_interval_secs: u64,
}

/// Rate limits (per minute) and spend budgets (micro-dollars). Unset means
/// unlimited; a key's own limits replace the `key_*` defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub enabled: bool,
    pub key_rpm: Option<u32>,
    pub key_tpm: Option<u32>,
    pub user_rpm: Option<u32>,
    pub user_tpm: Option<u32>,
    pub ticket_rpm: Option<u32>,
    /// The browser widget, per client address.
    pub ip_rpm: Option<u32>,
    pub user_daily_budget_micros: Option<i64>,
    pub user_monthly_budget_micros: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The embedded GGUF model (llama.cpp, in process).
    Local,
    /// Any OpenAI-compatible Chat Completions endpoint.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: ProviderKind,
    /// The provider's own id for the model.
    pub upstream_model: String,
    /// API base, e.g. `https://api.openai.com/v1` (remote providers).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key. A model whose variable is
    /// unset is left out at start; no variable = no key needed (Ollama, vLLM).
    #[serde(default)]
    pub api_key_env: Option<String>,
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
            classifier: ClassifierConfig {
                kind: ClassifierKind::Embedding,
                training_data: PathBuf::from("data/classifier/train.jsonl"),
                llm_model: "openai/gpt-4o-mini".into(),
                llm_timeout_ms: 2_000,
                cascade_below: 0.6,
            },
            routing: default_routing(),
            models: default_models(),
            chat: ChatConfig {
                max_message_chars: 8_000,
                history_turns: 6,
                system_prompt: "You are a friendly, concise customer support assistant. \
                    Answer the customer's question clearly in a few sentences."
                    .to_string(),
            },
            api: ApiConfig {
                require_key: true,
                max_body_bytes: 1 << 20,
                max_messages: 256,
                max_message_chars: 100_000,
            },
            admin: AdminConfig {
                session_hours: 12,
                secure_cookies: false,
                bootstrap_username: None,
                bootstrap_password: None,
                metrics_token: None,
                alert_interval_secs: 30,
            },
            cache: CacheConfig {
                enabled: true,
                include_nondeterministic: false,
                ttl_budget_secs: 7 * 86_400,
                ttl_balanced_secs: 86_400,
                ttl_premium_secs: 86_400,
                memory_entries: 10_000,
                semantic: false,
                semantic_threshold: 0.80,
            },
            limits: LimitsConfig { enabled: true, ticket_rpm: Some(20), ip_rpm: Some(30), ..LimitsConfig::default() },
            log: LogConfig { format: LogFormat::Pretty, filter: "info,llama_cpp_2=warn,sqlx=warn".to_string() },
        }
    }
}

/// The product's default pools. Models without an API key are left out at
/// start; the local model under a per-tier name is every tier's last resort,
/// so with no keys at all each tier is answered offline (and the tier a
/// message went to stays visible in the model name).
fn default_routing() -> RoutingConfig {
    let tier = |candidates: &[&str], local: &str| TierConfig {
        candidates: candidates.iter().map(|c| c.to_string()).collect(),
        policy: SelectionPolicy::CheapestHealthy,
        fallback: vec![local.to_string()],
        weights: BTreeMap::new(),
    };
    RoutingConfig {
        sticky_turns: 3,
        escalate_on_signals: true,
        budget: tier(
            &["openai/gpt-4o-mini", "google/gemini-2.0-flash", "anthropic/claude-haiku-4-5"],
            "local/smollm2-budget",
        ),
        balanced: tier(
            &["openai/gpt-4o", "anthropic/claude-sonnet-4-5", "google/gemini-2.0-flash"],
            "local/smollm2-balanced",
        ),
        premium: tier(
            &["anthropic/claude-opus-4-5", "openai/gpt-4o", "google/gemini-2.5-pro"],
            "local/smollm2-premium",
        ),
        resilience: ResilienceConfig::default(),
    }
}

/// List prices (USD per million tokens: input, output, cached input).
fn default_models() -> BTreeMap<String, ModelConfig> {
    let remote = |provider, id: &str, base: &str, key: &str, prices: (f64, f64, f64), context_window| ModelConfig {
        provider,
        upstream_model: id.to_string(),
        base_url: Some(base.to_string()),
        api_key_env: Some(key.to_string()),
        input_price_per_mtok: prices.0,
        output_price_per_mtok: prices.1,
        cached_input_price_per_mtok: Some(prices.2),
        context_window,
    };
    const OPENAI: &str = "https://api.openai.com/v1";
    const ANTHROPIC: &str = "https://api.anthropic.com/v1";
    const GOOGLE: &str = "https://generativelanguage.googleapis.com/v1beta/openai";
    use ProviderKind::{Anthropic, Openai};
    let mut models: BTreeMap<String, ModelConfig> = [
        ("openai/gpt-4o", remote(Openai, "gpt-4o", OPENAI, "OPENAI_API_KEY", (2.5, 10.0, 1.25), 128_000)),
        ("openai/gpt-4o-mini", remote(Openai, "gpt-4o-mini", OPENAI, "OPENAI_API_KEY", (0.15, 0.6, 0.075), 128_000)),
        (
            "anthropic/claude-sonnet-4-5",
            remote(Anthropic, "claude-sonnet-4-5", ANTHROPIC, "ANTHROPIC_API_KEY", (3.0, 15.0, 0.3), 200_000),
        ),
        (
            "anthropic/claude-haiku-4-5",
            remote(Anthropic, "claude-haiku-4-5", ANTHROPIC, "ANTHROPIC_API_KEY", (1.0, 5.0, 0.1), 200_000),
        ),
        (
            "anthropic/claude-opus-4-5",
            remote(Anthropic, "claude-opus-4-5", ANTHROPIC, "ANTHROPIC_API_KEY", (5.0, 25.0, 0.5), 200_000),
        ),
        (
            "google/gemini-2.0-flash",
            remote(Openai, "gemini-2.0-flash", GOOGLE, "GEMINI_API_KEY", (0.1, 0.4, 0.025), 1_048_576),
        ),
        (
            "google/gemini-2.5-pro",
            remote(Openai, "gemini-2.5-pro", GOOGLE, "GEMINI_API_KEY", (1.25, 10.0, 0.31), 1_048_576),
        ),
    ]
    .into_iter()
    .map(|(name, m)| (name.to_string(), m))
    .collect();
    for tier in ["budget", "balanced", "premium"] {
        models.insert(
            format!("local/smollm2-{tier}"),
            ModelConfig {
                provider: ProviderKind::Local,
                upstream_model: format!("SmolLM2-135M-Instruct ({tier})"),
                base_url: None,
                api_key_env: None,
                input_price_per_mtok: 0.0,
                output_price_per_mtok: 0.0,
                cached_input_price_per_mtok: None,
                context_window: 2048,
            },
        );
    }
    models
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
            if m.provider != ProviderKind::Local
                && !m.base_url.as_deref().is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
            {
                return bad(format!("models.{name:?}: a remote model needs base_url = \"http(s)://…\""));
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
        let r = &self.routing.resilience;
        if r.max_attempts_per_model == 0 || r.first_byte_timeout_ms == 0 || r.deadline_ms == 0 {
            return bad("routing.resilience: attempts and timeouts must be > 0".into());
        }
        let c = &self.classifier;
        if !self.models.contains_key(&c.llm_model) {
            return bad(format!("classifier.llm_model names {:?}, which is not in [models]", c.llm_model));
        }
        if c.llm_timeout_ms == 0 || !(0.0..=1.0).contains(&c.cascade_below) {
            return bad("classifier: llm_timeout_ms must be > 0 and cascade_below within 0..=1".into());
        }
        if !(0.0..=1.0).contains(&self.cache.semantic_threshold) {
            return bad("cache.semantic_threshold must be within 0..=1".into());
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
