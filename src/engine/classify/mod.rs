//! Message complexity classification. Each classifier returns a complexity,
//! a confidence in [0, 1], a short human-readable reason and its own latency,
//! so every routing decision can be explained afterwards.

pub mod calibrate;
pub mod embedding;
pub mod encoder;
pub mod eval;
pub mod features;
pub mod head;
pub mod heuristic;
pub mod injection;
pub mod llm;
pub mod minilm;
pub mod svm;
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
    /// A cheap model calling `classify_query`; `embedding` on any failure.
    Llm(Arc<LlmSettings>),
    /// `embedding` first; the `llm` only below `LlmSettings::cascade_below`.
    Cascade(Arc<LlmSettings>),
}

/// The model-backed classifiers' settings, with their fallback.
pub struct LlmSettings {
    pub model: crate::engine::pricing::ModelEntry,
    pub timeout: std::time::Duration,
    pub cascade_below: f32,
    /// `embedding` in production; what decides when the model cannot.
    pub fallback: Classifier,
}

impl Classifier {
    /// The embedding classifier in use, directly or as the LLM classifier's
    /// fallback (what `retrain` updates).
    pub fn embedding(&self) -> Option<&Arc<embedding::EmbeddingClassifier>> {
        match self {
            Classifier::Embedding(e) => Some(e),
            Classifier::Llm(s) | Classifier::Cascade(s) => s.fallback.embedding(),
            Classifier::Heuristic => None,
        }
    }

    pub fn kind(&self) -> ClassifierKind {
        match self {
            Classifier::Heuristic => ClassifierKind::Heuristic,
            Classifier::Embedding(_) => ClassifierKind::Embedding,
            Classifier::Llm(_) => ClassifierKind::Llm,
            Classifier::Cascade(_) => ClassifierKind::Cascade,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Classifier::Heuristic => "heuristic",
            Classifier::Embedding(_) => "embedding",
            Classifier::Llm(_) => "llm",
            Classifier::Cascade(_) => "cascade",
        }
    }

    /// The in-process verdict: the model-backed classifiers answer with
    /// their embedding fallback here (see `classify_with_llm`).
    pub fn classify(&self, query: &str) -> Classification {
        let started = Instant::now();
        let verdict = self.local_verdict(query);
        self.finish(verdict, started)
    }

    fn local_verdict(&self, query: &str) -> Verdict {
        match self {
            Classifier::Heuristic => heuristic::classify(query),
            Classifier::Embedding(e) => e.classify(query),
            Classifier::Llm(s) | Classifier::Cascade(s) => s.fallback.local_verdict(query),
        }
    }

    fn finish(&self, verdict: Verdict, started: Instant) -> Classification {
        Classification {
            complexity: verdict.complexity,
            confidence: verdict.confidence,
            reason: verdict.reason,
            classifier: self.name(),
            latency_us: started.elapsed().as_micros() as u64,
        }
    }

    /// The full verdict, asking the classifying model where this classifier
    /// does; the model's call (success or not) comes back to be recorded.
    pub async fn classify_with_llm(
        &self,
        query: &str,
        providers: &crate::engine::providers::Providers,
    ) -> (Classification, Option<llm::LlmCall>) {
        let started = Instant::now();
        let (settings, embedded) = match self {
            Classifier::Llm(s) => (s, None),
            Classifier::Cascade(s) => {
                let v = s.fallback.local_verdict(query);
                if v.confidence >= s.cascade_below {
                    return (self.finish(v, started), None);
                }
                (s, Some(v))
            }
            _ => return (self.classify(query), None),
        };
        let (text, _) = injection::strip_routing_injections(query);
        let call = llm::ask(providers, &settings.model, &text, settings.timeout).await;
        let verdict = match &call.result {
            Ok(v) => v.clone(),
            Err(e) => {
                let mut v = embedded.unwrap_or_else(|| settings.fallback.local_verdict(query));
                v.reason = format!("{} (llm failed: {e})", v.reason);
                v
            }
        };
        (self.finish(verdict, started), Some(call))
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
/// `training_data` first if it is missing (the first start) or was trained
/// from another encoder or another version of that file.
pub fn load(
    kind: ClassifierKind,
    config: &crate::config::ClassifierConfig,
    models_dir: &std::path::Path,
    catalog: &crate::engine::pricing::Catalog,
) -> Result<Classifier, ClassifyError> {
    let training_data = config.training_data.as_path();
    match kind {
        ClassifierKind::Heuristic => Ok(Classifier::Heuristic),
        ClassifierKind::Llm | ClassifierKind::Cascade => {
            let model = catalog.get(&config.llm_model).cloned().ok_or_else(|| {
                ClassifyError::Artifact(config.llm_model.clone(), "classifier.llm_model is not in [models]".into())
            })?;
            let fallback = load(ClassifierKind::Embedding, config, models_dir, catalog)?;
            let settings = Arc::new(LlmSettings {
                model,
                timeout: std::time::Duration::from_millis(config.llm_timeout_ms),
                cascade_below: config.cascade_below,
                fallback,
            });
            Ok(if kind == ClassifierKind::Llm { Classifier::Llm(settings) } else { Classifier::Cascade(settings) })
        }
        ClassifierKind::Embedding => {
            let paths = embedding::Paths::new(models_dir);
            let (minilm, table) = embedding::EmbeddingClassifier::load_parts(&paths)?;
            let saved: Option<embedding::Artifact> = match std::fs::read_to_string(&paths.artifact) {
                Ok(json) => serde_json::from_str(&json)
                    .inspect_err(|e| tracing::warn!(error = %e, "classifier head unreadable or from an older version"))
                    .ok(),
                Err(_) => None,
            };
            let current_data = training::fingerprint(training_data)
                .inspect_err(|e| tracing::warn!(data = %training_data.display(), error = %e, "training data unreadable; keeping the saved head"))
                .ok();
            let artifact = match saved.filter(|a| a.is_current(minilm.encoder_kind(), current_data.as_deref())) {
                Some(artifact) => artifact,
                None => {
                    tracing::info!(data = %training_data.display(), "training the classifier head (first start, new encoder or new training data)");
                    let set = training::TrainingSet::load(training_data)?;
                    let artifact = training::train(&minilm, &table, &set)?;
                    training::save(&paths.artifact, &artifact)?;
                    artifact
                }
            };
            Ok(Classifier::Embedding(Arc::new(embedding::EmbeddingClassifier::new(minilm, table, artifact))))
        }
    }
}
