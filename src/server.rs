//! Building the running server from a `Config`: database, models, engine,
//! and the axum app. `main` only parses the command line and calls in here.

use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use leptos::prelude::LeptosOptions;
use tokio::net::TcpListener;

use crate::config::{Config, LogFormat};
use crate::engine::call_log::{CallLog, CallLogWorker};
use crate::engine::pipeline::{Dependencies, Pipeline};
use crate::engine::providers::local::{LocalModel, LocalOptions, TokenCounter};
use crate::engine::providers::{Providers, resolve_endpoints};
use crate::state::AppState;
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("local model: {0}")]
    Model(#[from] crate::engine::providers::ProviderError),
    #[error("classifier: {0}")]
    Classifier(#[from] crate::engine::classify::ClassifyError),
    #[error("leptos configuration: {0}")]
    Leptos(String),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error("admin bootstrap: {0}")]
    Admin(String),
}

/// Creates the configured first admin when there is none yet.
async fn bootstrap_admin(config: &Config, pool: &sqlx::PgPool) -> Result<(), StartError> {
    use crate::store::admins;
    let (Some(username), Some(password)) = (&config.admin.bootstrap_username, &config.admin.bootstrap_password) else {
        return Ok(());
    };
    let db = |e: sqlx::Error| StartError::Store(StoreError::Database(e));
    if admins::count(pool).await.map_err(db)? > 0 {
        return Ok(());
    }
    let hash = crate::auth::hash_password(password.expose()).map_err(|e| StartError::Admin(e.to_string()))?;
    admins::upsert(pool, username.trim(), &hash).await.map_err(db)?;
    tracing::info!(%username, "created the first admin from the configuration");
    Ok(())
}

pub fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The engine and its workers, built from config (no HTTP).
pub struct Engine {
    pub pool: sqlx::PgPool,
    pub pipeline: Arc<Pipeline>,
    pub call_log: CallLog,
    pub call_log_worker: CallLogWorker,
    pub cache: Arc<crate::engine::cache::Cache>,
}

pub async fn build_engine(config: &Config) -> Result<Engine, StartError> {
    let pool = store::connect_and_migrate(config.database_url.expose(), config.database_max_connections).await?;
    let (endpoints, left_out) = resolve_endpoints(config, |var| std::env::var(var).ok());
    for warning in &left_out {
        tracing::warn!("{warning}");
    }
    let mut providers =
        Providers { local: None, http: (!endpoints.is_empty()).then(Providers::http_client), endpoints };
    if config.local.enabled {
        let path = config.gguf_path();
        let options = LocalOptions {
            warm_system_prompt: Some(config.chat.system_prompt.clone()),
            ..LocalOptions::from(&config.local)
        };
        let started = std::time::Instant::now();
        let model = tokio::task::spawn_blocking(move || LocalModel::load(&path, options))
            .await
            .map_err(|e| StartError::Leptos(e.to_string()))??;
        tracing::info!(ms = started.elapsed().as_millis() as u64, "local model loaded");
        providers.local = Some(Arc::new(model));
    }
    let gguf = config.gguf_path();
    let tokens = Arc::new(
        tokio::task::spawn_blocking(move || TokenCounter::load(&gguf))
            .await
            .unwrap_or_else(|_| TokenCounter::load(std::path::Path::new(""))),
    );
    let classifier = {
        let (kind, classifier, dir) = (config.classifier.kind, config.classifier.clone(), config.models_dir.clone());
        let catalog = crate::engine::pricing::Catalog::from_config(config);
        tokio::task::spawn_blocking(move || crate::engine::classify::load(kind, &classifier, &dir, &catalog))
            .await
            .map_err(|e| StartError::Leptos(e.to_string()))??
    };
    tracing::info!(classifier = classifier.name(), "classifier ready");
    // the semantic cache embeds questions with MiniLM (loaded only if used)
    let embedder = if config.cache.enabled && config.cache.semantic {
        let dir = config.models_dir.join("all-MiniLM-L6-v2");
        let minilm = tokio::task::spawn_blocking(move || crate::engine::classify::minilm::MiniLm::load(&dir))
            .await
            .map_err(|e| StartError::Leptos(e.to_string()))?;
        match minilm {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                tracing::warn!(error = %e, "semantic cache off: MiniLM could not be loaded");
                None
            }
        }
    } else {
        None
    };
    let (call_log, call_log_worker) = CallLog::start(pool.clone());
    let limiter = crate::engine::limits::Limiter::new(config.limits.clone(), pool.clone());
    let cache = Arc::new(crate::engine::cache::Cache::new(config.cache.clone(), pool.clone(), embedder));
    cache.listen_for_purges();
    cache.write_hits_every(Duration::from_secs(1));
    let deps = Dependencies {
        classifier,
        providers,
        pool: pool.clone(),
        call_log: call_log.clone(),
        tokens,
        limiter,
        cache: cache.clone(),
    };
    let pipeline = Pipeline::new(config, deps);
    Ok(Engine { pool, pipeline, call_log, call_log_worker, cache })
}

pub fn leptos_options(config: &Config) -> Result<LeptosOptions, StartError> {
    // cargo-leptos sets LEPTOS_OUTPUT_NAME; a plain run reads Cargo.toml.
    let from = if std::env::var_os("LEPTOS_OUTPUT_NAME").is_some() { None } else { Some("Cargo.toml") };
    let mut options =
        leptos::prelude::get_configuration(from).map_err(|e| StartError::Leptos(e.to_string()))?.leptos_options;
    options.site_addr = config.addr;
    Ok(options)
}

pub async fn serve(config: Config) -> Result<(), StartError> {
    let leptos_options = leptos_options(&config)?;
    let engine = build_engine(&config).await?;
    bootstrap_admin(&config, &engine.pool).await?;
    crate::engine::alerts::start(engine.pool.clone(), Duration::from_secs(config.admin.alert_interval_secs.max(1)));
    let state = AppState {
        leptos_options,
        config: Arc::new(config.clone()),
        pool: engine.pool.clone(),
        pipeline: engine.pipeline.clone(),
        keys: Default::default(),
        retrain: Default::default(),
    };
    let app = crate::http::build_app(state);
    // No Nagle: a streamed answer is many small writes, and Nagle holding
    // one back for the client's delayed ACK adds ~40 ms to a stream.
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Bind { addr: config.addr, source })?
        .tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
    tracing::info!("listening on http://{}", config.addr);
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shutting down: finishing answers in progress");
    engine.pipeline.wait_idle(Duration::from_secs(30)).await;
    engine.call_log_worker.shutdown(engine.call_log).await;
    if let Err(e) = engine.cache.write_hits().await {
        tracing::warn!(error = %e, "cache hit counts not written");
    }
    tracing::info!("call log flushed; bye");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    // A second Ctrl-C means "now": don't wait for streams to finish.
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("triage: second interrupt, exiting without waiting");
        std::process::exit(130);
    });
}
