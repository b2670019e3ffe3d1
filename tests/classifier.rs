//! The embedding model and the classifier CLI pieces on the real MiniLM.

mod common;

use triage::engine::classify::minilm::{MiniLm, cosine};

#[test]
fn minilm_embeddings_follow_meaning() {
    let minilm = MiniLm::load(&common::models_dir().join("all-MiniLM-L6-v2")).expect("run scripts/fetch-models");
    let a = minilm.embed("How do I reset my password?", 64).unwrap();
    let b = minilm.embed("I forgot my password, how can I change it?", 64).unwrap();
    let c = minilm.embed("The server segfaults after the kernel upgrade", 64).unwrap();
    assert_eq!(a.len(), 384);
    assert!((cosine(&a, &a) - 1.0).abs() < 1e-4, "embeddings are normalised");
    let (same, different) = (cosine(&a, &b), cosine(&a, &c));
    assert!(same > 0.6, "paraphrases are close: {same}");
    assert!(same > different + 0.3, "{same} vs {different}");
}

#[test]
fn long_inputs_are_truncated_not_refused() {
    let minilm = MiniLm::load(&common::models_dir().join("all-MiniLM-L6-v2")).unwrap();
    let log = "at com.example.Service.handle(Service.java:42)\n".repeat(400);
    assert!(minilm.token_ids(&log).unwrap().len() > 64);
    assert_eq!(minilm.embed(&log, 64).unwrap().len(), 384);
}

/// The saved head remembers the training file it came from: a start with the
/// same file reuses it, a start after the file changed retrains.
#[test]
fn a_changed_training_file_retrains_the_head_at_start() {
    use triage::config::{ClassifierKind, Config};
    use triage::engine::classify::{self, embedding};

    let dir = std::env::temp_dir().join(format!("triage-retrain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let minilm_dir = common::models_dir().join("all-MiniLM-L6-v2");
    let link = dir.join("all-MiniLM-L6-v2");
    if !link.exists() {
        std::os::unix::fs::symlink(&minilm_dir, &link).unwrap();
    }
    let data = dir.join("train.jsonl");
    let line = |q: &str, label: &str| format!("{}\n", serde_json::json!({"query": q, "label": label}));
    let mut text = String::new();
    for i in 0..6 {
        text += &line(&format!("What are your opening hours on day {i}?"), "simple");
        text += &line(&format!("How do I change the email on my account, step {i}?"), "medium");
        text += &line(
            &format!(
                "Our SSO integration fails with a SAML signature error after rotating certificates, case {i}; logs attached"
            ),
            "complex",
        );
    }
    std::fs::write(&data, &text).unwrap();

    let config = Config { models_dir: dir.clone(), ..Config::default() };
    let mut classifier_config = config.classifier.clone();
    classifier_config.training_data = data.clone();
    let catalog = triage::engine::pricing::Catalog::from_config(&config);
    let paths = embedding::Paths::new(&dir);
    let saved =
        || -> embedding::Artifact { serde_json::from_str(&std::fs::read_to_string(&paths.artifact).unwrap()).unwrap() };
    let start = || classify::load(ClassifierKind::Embedding, &classifier_config, &dir, &catalog).unwrap();

    start();
    let first = saved();
    assert_eq!(first.examples, 18);
    assert_eq!(first.training_sha256, classify::training::fingerprint(&data).unwrap());

    start();
    assert_eq!(saved().trained_at, first.trained_at, "same file: the saved head is reused");

    text += &line("Do you ship to Canada?", "simple");
    std::fs::write(&data, &text).unwrap();
    start();
    let second = saved();
    assert_eq!(second.examples, 19, "the new example is learned");
    assert_ne!(second.training_sha256, first.training_sha256);

    std::fs::remove_dir_all(&dir).unwrap();
}

/// The shipped check sets measure queries the head never saw: none of
/// their texts (compared trimmed and case-folded) is in the training file.
#[test]
fn the_check_sets_share_no_query_with_the_training_set() {
    use std::collections::HashSet;
    use std::path::Path;
    use triage::engine::classify::training::load_jsonl;

    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/classifier");
    let key = |q: &str| q.trim().to_lowercase();
    let trained: HashSet<String> =
        load_jsonl(&data.join("train.jsonl")).unwrap().iter().map(|e| key(&e.query)).collect();
    for set in ["check.jsonl", "check-real.jsonl", "check-issues-prompts.jsonl", "check-scripts.jsonl"] {
        let examples = load_jsonl(&data.join(set)).unwrap();
        assert!(examples.len() >= 100, "{set} holds {} queries", examples.len());
        let seen: Vec<&str> = examples
            .iter()
            .filter(|e| trained.contains(&key(&e.query)))
            .map(|e| e.id.as_deref().unwrap_or("?"))
            .collect();
        assert!(seen.is_empty(), "{set}: trained on {seen:?}");
    }
}
