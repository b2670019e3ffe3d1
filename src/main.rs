//! The `triage` binary: the server, and the command-line tools that share
//! its configuration.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    },
    /// Measure the local model: time to first token and decode tokens/s
    /// (greedy, fixed support prompt). Used by bench/local_model.sh.
    BenchLocal {
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 200)]
        tokens: u32,
    },
    /// Train the embedding classifier's head and save it in the models directory.
    Train {
        /// Labeled JSON lines; default: classifier.training_data.
        #[arg(long)]
        data: Option<PathBuf>,
    },
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
        Command::Classify { classifier } => run_classify(&config, classifier.unwrap_or(config.classifier.kind)),
        Command::Eval { data, classifier } => run_eval(&config, &data, classifier.unwrap_or(config.classifier.kind)),
        Command::Train { data } => run_train(&config, data),
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
    classify::load(kind, &config.models_dir, &config.classifier.training_data).map_err(|e| e.to_string())
}

fn run_classify(config: &Config, kind: ClassifierKind) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Input {
        id: serde_json::Value,
        query: String,
    }
    let classifier = load_classifier(config, kind)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let input: Input = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let c = classifier.classify(&input.query);
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

fn run_eval(config: &Config, data: &std::path::Path, kind: ClassifierKind) -> Result<(), String> {
    let examples = training::load_jsonl(data).map_err(|e| e.to_string())?;
    let classifier = load_classifier(config, kind)?;
    let mut pred = Vec::with_capacity(examples.len());
    let mut truth = Vec::with_capacity(examples.len());
    let mut latencies = Vec::with_capacity(examples.len());
    for e in &examples {
        let c = classifier.classify(&e.query);
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
        let name = router.route_tier(tier, &health).candidates.into_iter().next().unwrap_or_default();
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

fn run_train(config: &Config, data: Option<PathBuf>) -> Result<(), String> {
    let data = data.unwrap_or_else(|| config.classifier.training_data.clone());
    let examples = training::load_jsonl(&data).map_err(|e| e.to_string())?;
    let paths = classify::embedding::Paths::new(&config.models_dir);
    let started = std::time::Instant::now();
    let artifact = training::train_and_save(&paths, &examples).map_err(|e| e.to_string())?;
    println!(
        "trained on {} examples in {:.1} s; fast-path threshold {:.3}; saved {}",
        artifact.examples,
        started.elapsed().as_secs_f64(),
        artifact.threshold,
        paths.artifact.display()
    );
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
