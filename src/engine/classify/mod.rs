//! Message complexity classification. Each classifier returns a complexity,
//! a confidence in [0, 1], a short human-readable reason and its own latency,
//! so every routing decision can be explained afterwards.

pub mod embedding;
pub mod eval;
pub mod features;
pub mod head;
pub mod heuristic;
pub mod minilm;
pub mod training;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::ClassifierKind;
use crate::domain::Complexity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub complexity: Complexity,
    pub confidence: f32,
    pub reason: String,
    /// Which classifier decided (`heuristic`, …).
    pub classifier: &'static str,
    pub latency_us: u64,
}

/// The configured classifier. A closed set: adding one means adding a
/// variant here and a module beside this file.
#[derive(Clone)]
pub enum Classifier {
    /// Word count plus keyword rules; the baseline the others must beat.
    Heuristic,
    /// MiniLM embeddings and shape features read by a trained head
    /// (see `embedding`).
    Embedding(Arc<embedding::EmbeddingClassifier>),
}

impl Classifier {
    pub fn kind(&self) -> ClassifierKind {
        match self {
            Classifier::Heuristic => ClassifierKind::Heuristic,
            Classifier::Embedding(_) => ClassifierKind::Embedding,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Classifier::Heuristic => "heuristic",
            Classifier::Embedding(_) => "embedding",
        }
    }

    pub fn classify(&self, query: &str) -> Classification {
        let started = Instant::now();
        let verdict = match self {
            Classifier::Heuristic => heuristic::classify(query),
            Classifier::Embedding(e) => e.classify(query),
        };
        Classification {
            complexity: verdict.complexity,
            confidence: verdict.confidence,
            reason: verdict.reason,
            classifier: self.name(),
            latency_us: started.elapsed().as_micros() as u64,
        }
    }
}

/// What a classifier itself decides; `Classifier::classify` adds timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub complexity: Complexity,
    pub confidence: f32,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Embed(#[from] minilm::EmbedError),
    #[error(transparent)]
    Train(#[from] training::TrainError),
    #[error("could not read the classifier head {0}: {1}")]
    Artifact(String, String),
}

/// Builds the configured classifier. The embedding classifier loads MiniLM
/// and its trained head from `models_dir`, training the head from
/// `training_data` first if it is missing (the first start).
pub fn load(
    kind: ClassifierKind,
    models_dir: &std::path::Path,
    training_data: &std::path::Path,
) -> Result<Classifier, ClassifyError> {
    match kind {
        ClassifierKind::Heuristic => Ok(Classifier::Heuristic),
        ClassifierKind::Embedding => {
            let paths = embedding::Paths::new(models_dir);
            let (minilm, table) = embedding::EmbeddingClassifier::load_parts(&paths)?;
            let artifact = match std::fs::read_to_string(&paths.artifact) {
                Ok(json) => serde_json::from_str(&json)
                    .map_err(|e| ClassifyError::Artifact(paths.artifact.display().to_string(), e.to_string()))?,
                Err(_) => {
                    tracing::info!(data = %training_data.display(), "training the classifier head (first start)");
                    let examples = training::load_jsonl(training_data)?;
                    let artifact = training::train(&minilm, &table, &examples)?;
                    training::save(&paths.artifact, &artifact)?;
                    artifact
                }
            };
            Ok(Classifier::Embedding(Arc::new(embedding::EmbeddingClassifier::new(minilm, table, artifact))))
        }
    }
}
