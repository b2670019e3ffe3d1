//! Helpers shared by the integration tests: a real engine on the test's own
//! Postgres database, with the real local model when a test asks for it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use sqlx::PgPool;
use triage::config::Config;
use triage::engine::call_log::CallLog;
use triage::engine::classify::Classifier;
use triage::engine::pipeline::{ChatEvent, Dependencies, Pipeline};
use triage::engine::providers::Providers;
use triage::engine::providers::local::{LocalModel, LocalOptions, TokenCounter};
use triage::state::AppState;

pub fn models_dir() -> PathBuf {
    std::env::var_os("TRIAGE_MODELS_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"), PathBuf::from)
}

/// Short answers keep the tests quick; everything else is the default.
pub fn test_config() -> Config {
    let mut config = Config { models_dir: models_dir(), ..Config::default() };
    config.local.max_output_tokens = 24;
    config
}

/// One model for the whole test binary: loading it per test would only
/// measure loading.
pub fn local_model() -> Arc<LocalModel> {
    static MODEL: OnceLock<Arc<LocalModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let config = test_config();
            let path = config.gguf_path();
            let model = LocalModel::load(&path, LocalOptions::from(&config.local))
                .unwrap_or_else(|e| panic!("{e} ({}); run scripts/fetch-models", path.display()));
            Arc::new(model)
        })
        .clone()
}

/// A second model instance that may write long answers (200 tokens), for
/// tests that must still be generating when they act.
pub fn long_answer_model() -> Arc<LocalModel> {
    static MODEL: OnceLock<Arc<LocalModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let mut config = test_config();
            config.local.max_output_tokens = 200;
            Arc::new(LocalModel::load(&config.gguf_path(), LocalOptions::from(&config.local)).unwrap())
        })
        .clone()
}

pub struct TestEngine {
    pub pipeline: Arc<Pipeline>,
    pub call_log: CallLog,
    pub config: Config,
}

pub fn engine(pool: &PgPool, with_model: bool) -> TestEngine {
    let mut providers = Providers::default();
    if with_model {
        providers.local = Some(local_model());
    }
    engine_with(pool, test_config(), providers)
}

pub fn token_counter() -> Arc<TokenCounter> {
    static COUNTER: OnceLock<Arc<TokenCounter>> = OnceLock::new();
    COUNTER.get_or_init(|| Arc::new(TokenCounter::load(&test_config().gguf_path()))).clone()
}

pub fn engine_with(pool: &PgPool, config: Config, providers: Providers) -> TestEngine {
    engine_with_classifier(pool, config, providers, Classifier::Heuristic)
}

pub fn engine_with_classifier(
    pool: &PgPool,
    config: Config,
    providers: Providers,
    classifier: Classifier,
) -> TestEngine {
    let (call_log, _worker) = CallLog::start(pool.clone());
    let deps = Dependencies {
        classifier,
        providers,
        pool: pool.clone(),
        call_log: call_log.clone(),
        tokens: token_counter(),
        limiter: triage::engine::limits::Limiter::new(config.limits.clone(), pool.clone()),
        cache: std::sync::Arc::new(triage::engine::cache::Cache::new(config.cache.clone(), pool.clone(), None)),
    };
    let pipeline = Pipeline::new(&config, deps);
    TestEngine { pipeline, call_log, config }
}

pub fn app_state(pool: &PgPool, engine: &TestEngine) -> AppState {
    AppState {
        leptos_options: leptos::prelude::LeptosOptions::builder().output_name("triage").build(),
        config: Arc::new(engine.config.clone()),
        pool: pool.clone(),
        pipeline: engine.pipeline.clone(),
        keys: Default::default(),
        retrain: Default::default(),
    }
}

pub async fn collect(mut rx: tokio::sync::mpsc::Receiver<ChatEvent>) -> Vec<ChatEvent> {
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    events
}

pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(pool).await.unwrap()
}
