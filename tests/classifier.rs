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
