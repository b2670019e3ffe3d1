//! Classifier latency on realistic support traffic, one query at a time,
//! then throughput with several threads sharing one classifier.
//!
//!   cargo bench --features ssr --bench classifier [-- --classifier embedding]
//!
//! Traffic: the labeled queries of `../shared/eval/dev.jsonl` when present,
//! else the shipped training set, with one in ten replaced by a long pasted
//! log (2–12 KB), as support traffic has. Needs `scripts/fetch-models`.

use std::sync::Arc;
use std::time::Instant;

use triage::config::{ClassifierKind, Config};
use triage::engine::classify::{self, Classifier};

fn traffic(config: &Config) -> Vec<String> {
    let dev = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/dev.jsonl");
    let path = if dev.exists() { dev } else { config.classifier.training_data.clone() };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut queries: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["query"].as_str().map(str::to_string))
        .collect();
    eprintln!("traffic: {} queries from {}", queries.len(), path.display());
    for (i, q) in queries.iter_mut().enumerate() {
        if i % 10 == 9 {
            *q = pasted_log(i);
        }
    }
    queries
}

/// A stack trace with a question on top, as customers paste them.
fn pasted_log(seed: usize) -> String {
    let mut s = String::from("Our worker crashes every few hours since the upgrade, log below. What is wrong?\n\n");
    let lines = 30 + (seed * 7) % 170;
    for i in 0..lines {
        s.push_str(&format!(
            "2026-11-{:02}T10:{:02}:{:02}.{:03}Z ERROR [worker-{}] com.acme.billing.InvoiceJob: failed to \
             reconcile batch {} (attempt {}): java.sql.SQLTransientConnectionException: HikariPool-1 - \
             Connection is not available, request timed out after 30000ms.\n    at com.zaxxer.hikari.pool.\
             HikariPool.createTimeoutException(HikariPool.java:696)\n",
            1 + i % 28,
            i % 60,
            (i * 7) % 60,
            (i * 37) % 1000,
            i % 8,
            1000 + seed + i,
            1 + i % 3
        ));
    }
    s
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The full model alone on windows of a fixed size, cut from the traffic's
/// own tokens: what a message that reaches it costs at each length.
fn encoder_passes(minilm: &triage::engine::classify::minilm::MiniLm, queries: &[String]) {
    let ids: Vec<u32> = queries.iter().take(400).flat_map(|q| minilm.token_ids(q).unwrap_or_default()).collect();
    for tokens in [8usize, 12, 16, 64, 128] {
        let mut times: Vec<u64> = (0..300)
            .map(|i| {
                let start = (i * 131) % (ids.len() - tokens);
                let window = ids[start..start + tokens].to_vec();
                let t = Instant::now();
                std::hint::black_box(minilm.embed_ids(window, tokens).expect("embed"));
                t.elapsed().as_micros() as u64
            })
            .collect();
        times.sort_unstable();
        println!(
            "  full-model pass, {tokens} tokens: p50 {} µs  p90 {} µs  p99 {} µs",
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            percentile(&times, 0.99)
        );
    }
}

fn main() {
    let kind: ClassifierKind = std::env::args()
        .skip_while(|a| a != "--classifier")
        .nth(1)
        .map(|k| k.parse().expect("classifier"))
        .unwrap_or(ClassifierKind::Embedding);
    let mut config = Config::default();
    if let Some(dir) = std::env::var_os("TRIAGE_MODELS_DIR") {
        config.models_dir = dir.into();
    }
    let catalog = triage::engine::pricing::Catalog::from_config(&config);
    let classifier = classify::load(kind, &config.classifier, &config.models_dir, &catalog).expect("load classifier");
    let queries = traffic(&config);

    // warm-up: caches, allocator, lazy tables
    for q in queries.iter().take(50) {
        classifier.classify(q);
    }
    let minilm = match &classifier {
        Classifier::Embedding(e) => Some(&e.minilm),
        _ => None,
    };
    // One thread per pass, then passes split across two: alternated, so
    // both see the same machine.
    let modes: &[(bool, &str)] = match minilm {
        Some(_) => &[
            (false, "one thread a pass"),
            (true, "long passes on two threads"),
            (false, "one thread a pass"),
            (true, "long passes on two threads"),
        ],
        None => &[(false, "")],
    };
    let mut shipped = Vec::new();
    for &(split, mode) in modes {
        if let Some(m) = minilm {
            m.set_split(split);
        }
        let mut latencies = Vec::with_capacity(queries.len() * 3);
        let mut fast = 0usize;
        let started = Instant::now();
        for _ in 0..3 {
            for q in &queries {
                let c = classifier.classify(q);
                latencies.push(c.latency_us);
                fast += usize::from(!c.reason.starts_with("full model"));
            }
        }
        let wall = started.elapsed();
        latencies.sort_unstable();
        let long: Vec<u64> = {
            let mut v: Vec<u64> =
                queries.iter().filter(|q| q.len() > 2000).map(|q| classifier.classify(q).latency_us).collect();
            v.sort_unstable();
            v
        };
        println!(
            "classifier {} — {} queries × 3, one at a time{}",
            classifier.name(),
            queries.len(),
            if mode.is_empty() { String::new() } else { format!(", {mode}") }
        );
        println!(
            "  latency µs: p50 {}  p90 {}  p99 {}  max {}  (mean {:.0})",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1],
            wall.as_micros() as f64 / latencies.len() as f64
        );
        println!(
            "  long pasted logs ({}): p50 {} µs, max {} µs",
            long.len(),
            percentile(&long, 0.5),
            long.last().copied().unwrap_or(0)
        );
        if let Some(m) = minilm {
            println!("  decided by the fast path: {:.1}%", 100.0 * fast as f64 / latencies.len() as f64);
            encoder_passes(m, &queries);
        }
        // the shipped setting (split on) is what the summary reports
        if split || minilm.is_none() {
            shipped = latencies;
        }
    }
    let latencies = shipped;

    let name = classifier.name();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let classifier = Arc::new(classifier);
    let queries = Arc::new(queries);
    let mut throughput = Vec::new();
    for threads in [1usize, 2, 4] {
        let started = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (c, q) = (classifier.clone(), queries.clone());
                std::thread::spawn(move || {
                    let mut n = 0usize;
                    for (i, query) in q.iter().enumerate() {
                        if i % threads == t {
                            c.classify(query);
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        let n: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let secs = started.elapsed().as_secs_f64();
        println!("  throughput, {threads} thread(s): {:.0} queries/s", n as f64 / secs);
        throughput.push(format!("{:.0}", n as f64 / secs));
    }
    println!(
        "SUMMARY classifier={name} p50_us={p50} p99_us={p99} queries_per_s_1_2_4_threads={}",
        throughput.join("/")
    );
}
