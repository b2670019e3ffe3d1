//! The `triage` binary: the server, and the command-line tools that share
//! its configuration.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// glibc's malloc showed up as a fifth of the gateway's CPU under load, much
// of it waiting on arena locks between tokio's workers; mimalloc keeps
// per-thread heaps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use triage::config::{ClassifierKind, Config};
use triage::domain::Tier;
use triage::engine::classify::{self, Classifier, eval, head, training};

#[derive(Parser)]
#[command(name = "triage", version, about = "Cost-aware LLM router for customer support")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (the default).
    Serve,
    /// Load and validate the configuration, print it (secrets hidden), exit.
    CheckConfig,
    /// Classify JSON lines {"id","query"} from stdin; one JSON line out per input.
    Classify {
        #[arg(long)]
        classifier: Option<ClassifierKind>,
    },
    /// Evaluate a classifier on labeled JSON lines {"query","label"}.
    Eval {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        classifier: Option<ClassifierKind>,
        /// Embedding only: the fast path's confidence threshold to use
        /// instead of the trained one (0 = fast path only, 1.01 = full model only).
        #[arg(long)]
        threshold: Option<f32>,
    },
    /// Measure the local model: time to first token and decode tokens/s
    /// (greedy, fixed support prompt). Used by bench/local_model.sh.
    BenchLocal {
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 200)]
        tokens: u32,
    },
    /// Choose the embedding classifier's decision biases for a target
    /// premium share or a budget per 1,000 queries, from a file of queries
    /// (labels optional) or the latest customer messages in the database.
    Calibrate {
        /// JSON lines with "query" (and optionally "label").
        #[arg(long, conflicts_with = "recent")]
        data: Option<PathBuf>,
        /// Use the latest N customer messages instead.
        #[arg(long)]
        recent: Option<i64>,
        /// Target share of premium traffic, 0..1.
        #[arg(long, conflicts_with = "budget_per_1k")]
        premium_share: Option<f64>,
        /// US dollars per 1,000 queries (query tokens in, 300 out).
        #[arg(long)]
        budget_per_1k: Option<f64>,
        /// Save the biases into the trained head (the server reads them at start).
        #[arg(long)]
        write: bool,
    },
    /// Semantic-cache accuracy on labeled pairs {"a","b","same"}: the hit
    /// rate on same-meaning pairs and the false-hit rate on the others.
    CacheEval {
        #[arg(long)]
        pairs: PathBuf,
        /// Default: cache.semantic_threshold.
        #[arg(long)]
        threshold: Option<f32>,
        /// Print the pairs the cache gets wrong at the threshold.
        #[arg(long)]
        show_errors: bool,
    },
    /// Delete cached answers (all, or by model or API key id) on every instance.
    CachePurge {
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        key: Option<uuid::Uuid>,
    },
    /// Manage API keys for `/v1` (stored hashed; a new key is shown once).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Fill the database with generated support traffic (a month, a million
    /// calls by default) to look at and benchmark the dashboard.
    DemoSeed {
        #[arg(long, default_value_t = 1_000_000)]
        calls: i64,
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Remove earlier demo traffic first.
        #[arg(long)]
        replace: bool,
    },
    /// Time the dashboard's queries on the current database (run after
    /// demo-seed): each view and filter a few times, p50 and max.
    BenchDashboard {
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Custom properties rolled up for fast dashboard filters.
    Rollups {
        #[command(subcommand)]
        action: RollupsAction,
    },
    /// Manage dashboard admins.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Research aid: the classifier's inputs for labeled JSON lines, one
    /// JSON line each (token ids, static and full MiniLM embeddings, shape
    /// features), for trying heads outside the server.
    #[command(hide = true)]
    Embed {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = classify::embedding::FULL_MAX_TOKENS)]
        max_tokens: usize,
    },
    /// Train the embedding classifier's head and save it in the models directory.
    Train {
        /// Labeled JSON lines; default: classifier.training_data. The
        /// server retrains from classifier.training_data at start when the
        /// head was trained from another file (or another version of it).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RollupsAction {
    /// Roll up a property key (filters on it then read rollups, not calls);
    /// rolls up the calls already stored. Best for keys with few values.
    AddProperty { key: String },
    /// Stop rolling up a property key and drop its rollups.
    RemoveProperty { key: String },
    /// The rolled-up property keys.
    List,
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create an admin (or set a new password for an existing one). The
    /// password is read from standard input, one line.
    Create {
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key and print it (once).
    Create {
        #[arg(long)]
        name: String,
        /// May send `tier` to force a tier.
        #[arg(long)]
        can_force_tier: bool,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u32>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u32>,
        /// US dollars per UTC day.
        #[arg(long)]
        daily_budget_usd: Option<f64>,
        /// US dollars per UTC month.
        #[arg(long)]
        monthly_budget_usd: Option<f64>,
    },
    /// Revoke a key by id, name or prefix (refused if ambiguous).
    Revoke { key: String },
    /// List keys (never the secrets).
    List,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("triage: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // Tools print results on stdout; keep their logs on stderr and quiet.
    if matches!(command, Command::Serve) {
        triage::server::init_tracing(&config);
    } else {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,triage=info"))
            .try_init();
    }
    let result = match command {
        Command::Serve => triage::server::serve(config).await.map_err(|e| e.to_string()),
        Command::CheckConfig => {
            serde_json::to_string_pretty(&config).map(|s| println!("{s}")).map_err(|e| e.to_string())
        }
        Command::Classify { classifier } => run_classify(&config, classifier.unwrap_or(config.classifier.kind)).await,
        Command::Eval { data, classifier, threshold } => {
            run_eval(&config, &data, classifier.unwrap_or(config.classifier.kind), threshold).await
        }
        Command::Train { data } => run_train(&config, data),
        Command::Embed { data, max_tokens } => run_embed(&config, &data, max_tokens),
        Command::Keys { action } => run_keys(&config, action).await,
        Command::BenchDashboard { runs } => run_bench_dashboard(&config, runs).await,
        Command::DemoSeed { calls, days, replace } => run_demo_seed(&config, calls, days, replace).await,
        Command::Rollups { action } => run_rollups(&config, action).await,
        Command::Admin { action: AdminAction::Create { username } } => run_admin_create(&config, &username).await,
        Command::CacheEval { pairs, threshold, show_errors } => {
            run_cache_eval(&config, &pairs, threshold.unwrap_or(config.cache.semantic_threshold), show_errors)
        }
        Command::CachePurge { model, key } => run_cache_purge(&config, model, key).await,
        Command::Calibrate { data, recent, premium_share, budget_per_1k, write } => {
            run_calibrate(&config, CalibrateArgs { data, recent, premium_share, budget_per_1k, write }).await
        }
        Command::BenchLocal { runs, tokens } => run_bench_local(&config, runs, tokens).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("triage: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_classifier(config: &Config, kind: ClassifierKind) -> Result<Classifier, String> {
    let catalog = triage::engine::pricing::Catalog::from_config(config);
    classify::load(kind, &config.classifier, &config.models_dir, &catalog).map_err(|e| e.to_string())
}

/// Remote providers only (the `llm` and `cascade` classifiers' models).
fn remote_providers(config: &Config) -> triage::engine::providers::Providers {
    let (endpoints, _) = triage::engine::providers::resolve_endpoints(config, |k| std::env::var(k).ok());
    triage::engine::providers::Providers {
        local: None,
        http: Some(triage::engine::providers::Providers::http_client()),
        endpoints,
    }
}

async fn run_classify(config: &Config, kind: ClassifierKind) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Input {
        id: serde_json::Value,
        query: String,
    }
    let classifier = load_classifier(config, kind)?;
    let providers = remote_providers(config);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let input: Input = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let (c, _) = classifier.classify_with_llm(&input.query, &providers).await;
        let row = serde_json::json!({
            "id": input.id,
            "complexity": c.complexity,
            "tier": c.complexity.default_tier(),
            "confidence": (c.confidence * 1000.0).round() / 1000.0,
            "reason": c.reason,
            "latency_us": c.latency_us,
        });
        writeln!(out, "{row}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

async fn run_eval(
    config: &Config,
    data: &std::path::Path,
    kind: ClassifierKind,
    threshold: Option<f32>,
) -> Result<(), String> {
    let examples = training::load_jsonl(data).map_err(|e| e.to_string())?;
    let classifier = load_classifier(config, kind)?;
    if let (Some(t), Classifier::Embedding(e)) = (threshold, &classifier) {
        let mut artifact = e.artifact.read().expect("artifact").clone();
        artifact.threshold = t;
        e.replace_artifact(artifact);
    }
    let providers = remote_providers(config);
    let mut pred = Vec::with_capacity(examples.len());
    let mut truth = Vec::with_capacity(examples.len());
    let mut latencies = Vec::with_capacity(examples.len());
    for e in &examples {
        let (c, _) = classifier.classify_with_llm(&e.query, &providers).await;
        pred.push(head::class_index(c.complexity));
        truth.push(head::class_index(e.label));
        latencies.push(c.latency_us);
    }
    let r = eval::report(&pred, &truth);
    latencies.sort_unstable();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);

    // Cost per 1,000 queries at catalog prices: the query's tokens in, 300 out,
    // on the first candidate of each tier (all keys assumed present).
    let catalog = triage::engine::pricing::Catalog::from_config(config);
    let health = triage::engine::providers::health::Health::new(5, std::time::Duration::from_secs(30));
    let router =
        triage::engine::route::Router::new(config.routing.clone(), catalog.clone(), config.models.keys().cloned());
    let tokens = triage::engine::providers::local::TokenCounter::load(&config.gguf_path());
    let price_of = |tier: Tier| {
        let name =
            router.route_tier(tier, &Default::default(), &health).candidates.into_iter().next().unwrap_or_default();
        catalog.get(&name).map(|m| (name, m.price)).unwrap_or_default()
    };
    let mut routed = 0i64;
    let mut premium = 0i64;
    let (_, premium_price) = price_of(Tier::Premium);
    for (e, &p) in examples.iter().zip(&pred) {
        let usage = triage::engine::pricing::Usage {
            input_tokens: tokens.count(&e.query),
            output_tokens: 300,
            cached_tokens: 0,
            estimated: true,
        };
        routed += price_of(head::class_of(p).default_tier()).1.cost_micros(&usage);
        premium += premium_price.cost_micros(&usage);
    }
    let per_k = |micros: i64| micros as f64 / examples.len().max(1) as f64 * 1000.0 / 1e6;

    println!("classifier: {} on {} ({} queries)", kind.as_str(), data.display(), r.n);
    println!("accuracy:   {:.3}", r.accuracy);
    println!("macro-F1:   {:.3}", r.macro_f1);
    println!("confusion (rows = label, columns = predicted):");
    println!("            simple  medium complex");
    for (name, row) in ["simple", "medium", "complex"].iter().zip(r.confusion) {
        println!("  {name:<8} {:>7} {:>7} {:>7}", row[0], row[1], row[2]);
    }
    println!("complex→budget: {:.1}%", r.complex_to_budget * 100.0);
    println!("under-routing:  {:.1}%  (a cheaper tier than the label)", r.under_routing * 100.0);
    println!("over-routing:   {:.1}%  (a dearer tier than the label)", r.over_routing * 100.0);
    println!(
        "cost per 1,000 queries: routed ${:.4} vs always-premium ${:.4} ({:.0}% saved)",
        per_k(routed),
        per_k(premium),
        if premium > 0 { 100.0 * (1.0 - routed as f64 / premium as f64) } else { 0.0 }
    );
    println!("latency per query: p50 {} µs, p99 {} µs, max {} µs", pct(0.5), pct(0.99), pct(1.0));
    Ok(())
}

async fn run_demo_seed(config: &Config, calls: i64, days: i64, replace: bool) -> Result<(), String> {
    if !(1..=20_000_000).contains(&calls) || !(1..=400).contains(&days) {
        return Err("--calls must be 1..=20000000 and --days 1..=400".into());
    }
    let pool = triage::store::connect_and_migrate(config.database_url.expose(), 2).await.map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let seed = triage::store::demo::Seed { calls, days };
    let rows = triage::store::demo::seed(&pool, seed, replace).await.map_err(|e| e.to_string())?;
    eprintln!("demo-seed: {rows} llm_calls rows over {days} days in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn run_rollups(config: &Config, action: RollupsAction) -> Result<(), String> {
    use triage::store::analytics;
    let pool = triage::store::connect_and_migrate(config.database_url.expose(), 2).await.map_err(|e| e.to_string())?;
    match action {
        RollupsAction::AddProperty { key } => {
            let started = std::time::Instant::now();
            let added = analytics::add_rollup_property(&pool, &key).await.map_err(|e| e.to_string())?;
            if added {
                eprintln!("rollups: `{key}` rolled up ({:.1} s)", started.elapsed().as_secs_f64());
            } else {
                eprintln!("rollups: `{key}` was already rolled up");
            }
        }
        RollupsAction::RemoveProperty { key } => {
            let removed = analytics::remove_rollup_property(&pool, &key).await.map_err(|e| e.to_string())?;
            eprintln!("rollups: `{key}` {}", if removed { "removed" } else { "was not rolled up" });
        }
        RollupsAction::List => {
            for key in analytics::rollup_properties(&pool).await.map_err(|e| e.to_string())? {
                println!("{key}");
            }
        }
    }
    Ok(())
}

async fn run_bench_dashboard(config: &Config, runs: usize) -> Result<(), String> {
    use triage::api::admin::{load_overview, load_requests, load_ticket_flow};
    use triage::api::filter::CallFilter;

    let pool = triage::store::connect_and_migrate(config.database_url.expose(), 16).await.map_err(|e| e.to_string())?;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM llm_calls").fetch_one(&pool).await.map_err(|e| e.to_string())?;
    let sample: Option<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT ticket_id, user_id FROM llm_calls WHERE ticket_id IS NOT NULL AND user_id IS NOT NULL LIMIT 1",
    )
    .fetch_optional(&pool)
    .await
    .map_err(|e| e.to_string())?;
    let (ticket, user) = sample.ok_or("no calls to measure: run `triage demo-seed` first")?;
    let reference = triage::domain::ticket_ref(&ticket);
    let f = |key: &str, value: &str| CallFilter::default().with(key, Some(value.to_string()));
    let overviews = [
        ("overview, last 30 days", CallFilter::default()),
        ("overview, tier=premium", f("tier", "premium")),
        ("overview, complexity=complex", f("complexity", "complex")),
        ("overview, model=openai/gpt-4o", f("model", "openai/gpt-4o")),
        ("overview, provider=anthropic", f("provider", "anthropic")),
        ("overview, cache=hit", f("cache", "hit")),
        ("overview, property plan=enterprise", f("property", "plan=enterprise")),
        ("overview, feedback=down", f("feedback", "down")),
        ("overview, one user", f("user", &user)),
        ("overview, one ticket", f("ticket", &reference)),
    ];
    println!("dashboard queries on {rows} llm_calls rows, {runs} runs each (after one warm-up)");
    println!("{:<44} {:>9} {:>9}", "view", "p50 ms", "max ms");
    let mut worst = (String::new(), 0.0f64);
    let mut report = |name: &str, mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        let (p50, max) = (times[times.len() / 2], times[times.len() - 1]);
        println!("{name:<44} {p50:>9.1} {max:>9.1}");
        if max > worst.1 {
            worst = (name.to_string(), max);
        }
    };
    async fn time<T, F: std::future::Future<Output = Result<T, triage::api::AppError>>>(
        runs: usize,
        mut f: impl FnMut() -> F,
    ) -> Result<Vec<f64>, String> {
        f().await.map_err(|e| e.to_string())?;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = std::time::Instant::now();
            f().await.map_err(|e| e.to_string())?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(times)
    }
    for (name, filter) in &overviews {
        report(name, time(runs, || load_overview(&pool, config, filter)).await?);
    }
    let everything = CallFilter::default();
    for sort in ["time", "cost", "latency"] {
        let name = format!("requests page 1, sorted by {sort}");
        report(&name, time(runs, || load_requests(&pool, &everything, sort, true, 1)).await?);
    }
    // Filtered pages and their capped counts, one per filterable dimension.
    for (key, value) in [("tier", "premium"), ("complexity", "complex"), ("cache", "hit"), ("model", "openai/gpt-4o")] {
        let filter = f(key, value);
        let name = format!("requests page 1, {key}={value}");
        report(&name, time(runs, || load_requests(&pool, &filter, "time", true, 1)).await?);
    }
    let budget = f("tier", "budget");
    report("requests page 40, tier=budget", time(runs, || load_requests(&pool, &budget, "time", true, 40)).await?);
    report("ticket flow", time(runs, || load_ticket_flow(&pool, &reference)).await?);
    let queue = || async { Ok::<_, triage::api::AppError>(triage::store::labels::queue(&pool, 0.6, false, 50).await?) };
    report("review queue", time(runs, queue).await?);
    for metric in ["spend_hour", "spend_day", "error_rate", "p95_latency"] {
        let m = triage::engine::alerts::Metric::parse(metric).ok_or("unknown metric")?;
        let measure = || async { Ok::<_, triage::api::AppError>(triage::engine::alerts::measure(&pool, m).await?) };
        report(&format!("alert check, {metric}"), time(runs, measure).await?);
    }
    println!("summary: slowest dashboard view {:.1} ms ({}) on {rows} rows; target 200 ms", worst.1, worst.0);
    Ok(())
}

async fn run_admin_create(config: &Config, username: &str) -> Result<(), String> {
    let username = username.trim();
    if username.is_empty() || username.len() > 64 {
        return Err("--username must have 1 to 64 characters".into());
    }
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).map_err(|e| format!("could not read the password: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    let hash = triage::auth::hash_password(password).map_err(|e| e.to_string())?;
    let pool = triage::store::connect_and_migrate(config.database_url.expose(), 2).await.map_err(|e| e.to_string())?;
    triage::store::admins::upsert(&pool, username, &hash).await.map_err(|e| e.to_string())?;
    eprintln!("admin {username} is ready; sign in at /admin/login");
    Ok(())
}

async fn run_keys(config: &Config, action: KeysAction) -> Result<(), String> {
    use triage::store::api_keys::{self, NewKey};
    let pool = triage::store::connect_and_migrate(config.database_url.expose(), 2).await.map_err(|e| e.to_string())?;
    let usd = |v: Option<f64>| -> Result<Option<i64>, String> {
        match v {
            Some(d) if !d.is_finite() || d < 0.0 => Err(format!("budget {d} must be a positive amount")),
            Some(d) => Ok(Some((d * 1e6).round() as i64)),
            None => Ok(None),
        }
    };
    let limit = |v: Option<u32>| v.map(|n| n.min(i32::MAX as u32) as i32);
    match action {
        KeysAction::Create { name, can_force_tier, rpm, tpm, daily_budget_usd, monthly_budget_usd } => {
            if name.trim().is_empty() {
                return Err("--name must not be empty".into());
            }
            let new = NewKey {
                name: name.trim().to_string(),
                can_force_tier,
                rpm_limit: limit(rpm),
                tpm_limit: limit(tpm),
                daily_budget_micros: usd(daily_budget_usd)?,
                monthly_budget_micros: usd(monthly_budget_usd)?,
            };
            let (key, secret) = api_keys::create(&pool, &new).await.map_err(|e| e.to_string())?;
            eprintln!("created key {} ({}); it is shown once:", key.name, key.id);
            println!("{secret}");
        }
        KeysAction::Revoke { key } => {
            let revoked = api_keys::revoke(&pool, &key).await.map_err(|e| e.to_string())?;
            match revoked.first() {
                Some(k) => println!("revoked {} ({}, {}…)", k.name, k.id, k.prefix),
                None => return Err(format!("no single live key matches {key:?} (id, name or prefix)")),
            }
        }
        KeysAction::List => {
            for k in api_keys::list(&pool).await.map_err(|e| e.to_string())? {
                println!(
                    "{}  {:<20} {}…  force_tier={} rpm={} tpm={} daily={} monthly={} {}",
                    k.id,
                    k.name,
                    k.prefix,
                    k.can_force_tier,
                    k.rpm_limit.map_or("-".into(), |v| v.to_string()),
                    k.tpm_limit.map_or("-".into(), |v| v.to_string()),
                    k.daily_budget_micros.map_or("-".into(), |v| format!("${:.2}", v as f64 / 1e6)),
                    k.monthly_budget_micros.map_or("-".into(), |v| format!("${:.2}", v as f64 / 1e6)),
                    if k.revoked_at.is_some() { "REVOKED" } else { "" }
                );
            }
        }
    }
    Ok(())
}

fn run_cache_eval(config: &Config, path: &std::path::Path, threshold: f32, show_errors: bool) -> Result<(), String> {
    use triage::engine::cache::guards;
    use triage::engine::classify::minilm::{MiniLm, cosine};
    #[derive(serde::Deserialize)]
    struct Pair {
        a: String,
        b: String,
        same: bool,
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let pairs: Vec<Pair> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1)))
        .collect::<Result<_, _>>()?;
    let minilm = MiniLm::load(&config.models_dir.join("all-MiniLM-L6-v2")).map_err(|e| e.to_string())?;
    // (cosine, guards pass, same)
    let mut scored = Vec::with_capacity(pairs.len());
    for p in &pairs {
        let (ea, eb) =
            (minilm.embed(&p.a, 128).map_err(|e| e.to_string())?, minilm.embed(&p.b, 128).map_err(|e| e.to_string())?);
        let pass = guards::conflict(&guards::signature(&p.a), &guards::signature(&p.b)).is_none();
        scored.push((cosine(&ea, &eb), pass, p.same));
    }
    if show_errors {
        for (p, s) in pairs.iter().zip(&scored) {
            let hit = s.0 >= threshold && s.1;
            if hit != p.same {
                let what = if p.same { "missed" } else { "FALSE HIT" };
                let why = guards::conflict(&guards::signature(&p.a), &guards::signature(&p.b)).unwrap_or("pass");
                println!("{what} cos {:.3} guards {why}: {:?} / {:?}", s.0, p.a, p.b);
            }
        }
    }
    let same = scored.iter().filter(|s| s.2).count().max(1) as f64;
    let different = scored.iter().filter(|s| !s.2).count().max(1) as f64;
    let rates = |t: f32, guarded: bool| {
        let hit = |s: &&(f32, bool, bool)| s.0 >= t && (s.1 || !guarded);
        let hits = scored.iter().filter(|s| s.2).filter(hit).count() as f64 / same;
        let false_hits = scored.iter().filter(|s| !s.2).filter(hit).count() as f64 / different;
        (hits, false_hits)
    };
    println!("semantic cache on {} ({} same-meaning pairs, {} different)", path.display(), same, different);
    let (h, f) = rates(threshold, true);
    println!(
        "at threshold {threshold:.2} with guards: hit rate {:.1}% on same pairs, false-hit rate {:.1}% on different pairs",
        h * 100.0,
        f * 100.0
    );
    let (h, f) = rates(threshold, false);
    println!(
        "at threshold {threshold:.2} without guards: hit rate {:.1}%, false-hit rate {:.1}%",
        h * 100.0,
        f * 100.0
    );
    println!("threshold  hit%(guards)  false%(guards)  hit%(cosine only)  false%(cosine only)");
    for step in 0..=19 {
        let t = 0.60 + step as f32 * 0.02;
        let (h, f) = rates(t, true);
        let (h0, f0) = rates(t, false);
        println!(
            "  {t:.2}      {:>6.1}        {:>6.1}          {:>6.1}             {:>6.1}",
            h * 100.0,
            f * 100.0,
            h0 * 100.0,
            f0 * 100.0
        );
    }
    let (h, f) = rates(threshold, true);
    println!(
        "SUMMARY cache_eval threshold={threshold:.2} hit_pct={:.1} false_hit_pct={:.1} pairs={}",
        h * 100.0,
        f * 100.0,
        scored.len()
    );
    Ok(())
}

async fn run_cache_purge(config: &Config, model: Option<String>, key: Option<uuid::Uuid>) -> Result<(), String> {
    let pool = triage::store::connect_and_migrate(config.database_url.expose(), 2).await.map_err(|e| e.to_string())?;
    let cache = triage::engine::cache::Cache::new(config.cache.clone(), pool, None);
    let scope = key.map(|k| format!("key:{k}"));
    let n = cache.purge(model.as_deref(), scope.as_deref()).await.map_err(|e| e.to_string())?;
    println!("purged {n} cached answers");
    Ok(())
}

struct CalibrateArgs {
    data: Option<PathBuf>,
    recent: Option<i64>,
    premium_share: Option<f64>,
    budget_per_1k: Option<f64>,
    write: bool,
}

async fn run_calibrate(config: &Config, args: CalibrateArgs) -> Result<(), String> {
    use triage::engine::classify::calibrate::{self, Sample};
    #[derive(serde::Deserialize)]
    struct Line {
        query: String,
        label: Option<triage::domain::Complexity>,
    }
    let lines: Vec<Line> = match (&args.data, args.recent) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1)))
                .collect::<Result<_, _>>()?
        }
        (None, Some(n)) => {
            let pool =
                triage::store::connect_and_migrate(config.database_url.expose(), 2).await.map_err(|e| e.to_string())?;
            let texts: Vec<String> = sqlx::query_scalar(
                "SELECT content FROM messages WHERE role = 'user' ORDER BY created_at DESC LIMIT $1",
            )
            .bind(n)
            .fetch_all(&pool)
            .await
            .map_err(|e| e.to_string())?;
            texts.into_iter().map(|query| Line { query, label: None }).collect()
        }
        (None, None) => return Err("give --data FILE or --recent N".into()),
    };
    if lines.is_empty() {
        return Err("no queries to calibrate on".into());
    }
    let Classifier::Embedding(classifier) = load_classifier(config, ClassifierKind::Embedding)? else {
        return Err("calibration needs the embedding classifier".into());
    };
    let catalog = triage::engine::pricing::Catalog::from_config(config);
    let health = triage::engine::providers::health::Health::new(5, std::time::Duration::from_secs(30));
    let router =
        triage::engine::route::Router::new(config.routing.clone(), catalog.clone(), config.models.keys().cloned());
    let prices = Tier::ALL.iter().map(|&t| {
        let name = router.route_tier(t, &Default::default(), &health).candidates.into_iter().next();
        name.and_then(|n| catalog.get(&n).map(|m| m.price)).unwrap_or_default()
    });
    let prices: Vec<_> = prices.collect();
    let tokens = triage::engine::providers::local::TokenCounter::load(&config.gguf_path());
    let mut samples = Vec::with_capacity(lines.len());
    let mut labels = Vec::with_capacity(lines.len());
    for line in &lines {
        // no words: always budget, whatever the bias
        let p = classifier.probabilities(&line.query).map_err(|e| e.to_string())?.unwrap_or([1.0, 0.0, 0.0]);
        let usage = triage::engine::pricing::Usage {
            input_tokens: tokens.count(&line.query),
            output_tokens: 300,
            cached_tokens: 0,
            estimated: true,
        };
        samples.push(Sample { p, cost: [0, 1, 2].map(|k| prices[k].cost_micros(&usage)) });
        labels.push(line.label);
    }
    let before = calibrate::evaluate(&samples, classifier.artifact.read().expect("artifact").bias);
    let after = match (args.premium_share, args.budget_per_1k) {
        (Some(share), None) if (0.0..=1.0).contains(&share) => calibrate::for_premium_share(&samples, share),
        (None, Some(dollars)) if dollars >= 0.0 => calibrate::for_budget(&samples, dollars * 1e6)
            .ok_or_else(|| format!("${dollars} per 1,000 queries is below the all-budget cost"))?,
        _ => return Err("give --premium-share 0..1 or --budget-per-1k DOLLARS".into()),
    };
    let show = |name: &str, c: &calibrate::Calibration| {
        println!(
            "{name:<7} bias [{:+.2} {:+.2} {:+.2}]  shares budget {:.1}% balanced {:.1}% premium {:.1}%  \
             ${:.4} per 1,000  expected not under-routed {:.1}%",
            c.bias[0],
            c.bias[1],
            c.bias[2],
            c.shares[0] * 100.0,
            c.shares[1] * 100.0,
            c.shares[2] * 100.0,
            c.cost_per_1k_micros / 1e6,
            c.expected_not_under * 100.0
        );
    };
    println!("calibrating on {} queries", samples.len());
    show("before", &before);
    show("after", &after);
    if labels.iter().all(Option::is_some) {
        let truth: Vec<usize> = labels.iter().map(|l| head::class_index(l.unwrap())).collect();
        for (name, bias) in [("before", before.bias), ("after", after.bias)] {
            let pred: Vec<usize> = samples.iter().map(|s| classify::embedding::decide(&s.p, &bias)).collect();
            let r = eval::report(&pred, &truth);
            println!(
                "{name:<7} on the labels: macro-F1 {:.3}, complex→budget {:.1}%, under-routing {:.1}%",
                r.macro_f1,
                r.complex_to_budget * 100.0,
                r.under_routing * 100.0
            );
        }
    }
    if args.write {
        let paths = classify::embedding::Paths::new(&config.models_dir);
        let mut artifact = classifier.artifact.read().expect("artifact").clone();
        artifact.bias = after.bias;
        training::save(&paths.artifact, &artifact).map_err(|e| e.to_string())?;
        println!("saved to {}", paths.artifact.display());
    }
    Ok(())
}

fn run_embed(config: &Config, data: &std::path::Path, max_tokens: usize) -> Result<(), String> {
    let examples = training::load_jsonl(data).map_err(|e| e.to_string())?;
    let paths = classify::embedding::Paths::new(&config.models_dir);
    let (minilm, table) = classify::embedding::EmbeddingClassifier::load_parts(&paths).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for e in &examples {
        let (text, _) = classify::embedding::prepare(&e.query);
        let ids = minilm.token_ids(&text).map_err(|e| e.to_string())?;
        let line = serde_json::json!({
            "id": e.id, "label": e.label, "tokens": ids.len(),
            "static": table.embed_weighted(&ids, &[]),
            "full": minilm.embed_ids(ids.clone(), max_tokens).map_err(|e| e.to_string())?,
            "features": classify::features::extract(&text),
            "ids": ids,
        });
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn run_train(config: &Config, data: Option<PathBuf>) -> Result<(), String> {
    let data = data.unwrap_or_else(|| config.classifier.training_data.clone());
    let set = training::TrainingSet::load(&data).map_err(|e| e.to_string())?;
    let paths = classify::embedding::Paths::new(&config.models_dir);
    let started = std::time::Instant::now();
    let artifact = training::train_and_save(&paths, &set).map_err(|e| e.to_string())?;
    println!(
        "trained on {} examples in {:.1} s; fast-path threshold {:.3}; saved {}",
        artifact.examples,
        started.elapsed().as_secs_f64(),
        artifact.threshold,
        paths.artifact.display()
    );
    if let Some(fit) = artifact.out_of_fold {
        println!(
            "handicap on simple {:.1}; out of fold (each example scored by heads trained without it): \
             macro-F1 {:.3}, complex→budget {:.2}%",
            fit.handicap,
            fit.macro_f1,
            fit.complex_to_budget * 100.0
        );
        if let Some(group) = fit.unread_script {
            println!(
                "scripts the encoder barely reads: simple discounted by {:.1} more; {} complex examples, \
                 {:.1}% to budget",
                artifact.unread_script_discount,
                group.complex,
                group.complex_to_budget * 100.0
            );
        }
    }
    if training::fingerprint(&config.classifier.training_data).ok().as_deref() != Some(set.sha256.as_str()) {
        println!(
            "note: this is not {}, so the server will retrain from that at its next start",
            config.classifier.training_data.display()
        );
    }
    Ok(())
}

/// The prompt both engines get in the local-model benchmark.
const BENCH_PROMPT: &str =
    "My order #48213 arrived damaged and the box was open. What are my options for a refund or replacement?";

async fn run_bench_local(config: &Config, runs: usize, tokens: u32) -> Result<(), String> {
    use triage::engine::providers::local::{LocalModel, LocalOptions};
    use triage::engine::providers::{ChatMessage, ProviderEvent, ProviderRequest, Role};

    let mut options = LocalOptions::from(&config.local);
    options.warm_system_prompt = Some(config.chat.system_prompt.clone());
    options.max_output_tokens = tokens;
    options.context_tokens = options.context_tokens.max(tokens + 256);
    let path = config.gguf_path();
    let model = tokio::task::spawn_blocking(move || LocalModel::load(&path, options))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut ttfts = Vec::new();
    let mut rates = Vec::new();
    for run in 0..runs {
        let request = ProviderRequest {
            upstream_model: "bench".into(),
            messages: vec![
                ChatMessage::new(Role::System, config.chat.system_prompt.clone()),
                // A different question each run: like real traffic, runs
                // share only the system prompt's cached prefix.
                ChatMessage::new(Role::User, format!("{BENCH_PROMPT} Reference {}.", run + 1)),
            ],
            max_tokens: Some(tokens),
            temperature: Some(0.0),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let mut rx = model.generate(request).map_err(|e| e.to_string())?;
        let mut first = None;
        let mut usage = None;
        while let Some(event) = rx.recv().await {
            match event.map_err(|e| e.to_string())? {
                ProviderEvent::Delta(_) if first.is_none() => first = Some(started.elapsed()),
                ProviderEvent::Usage(u) => usage = Some(u),
                _ => {}
            }
        }
        let total = started.elapsed();
        let (first, usage) = (first.unwrap_or(total), usage.unwrap_or_default());
        // decode rate: tokens after the first, over the time after the first
        let rate = (usage.output_tokens.saturating_sub(1)) as f64 / (total - first).as_secs_f64().max(1e-9);
        println!(
            "run {}: prompt {} tokens, ttft {:.0} ms, {} tokens, decode {:.1} tok/s",
            run + 1,
            usage.input_tokens,
            first.as_secs_f64() * 1000.0,
            usage.output_tokens,
            rate
        );
        ttfts.push(first.as_secs_f64() * 1000.0);
        rates.push(rate);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "SUMMARY engine=triage-llama-cpp-2 ttft_ms_p50={:.0} decode_tok_s_p50={:.1}",
        median(&mut ttfts),
        median(&mut rates)
    );
    Ok(())
}
