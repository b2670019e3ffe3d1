//! Message complexity classification. Each classifier returns a complexity,
//! a confidence in [0, 1], a short human-readable reason and its own latency,
//! so every routing decision can be explained afterwards.

pub mod heuristic;

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
#[derive(Debug, Clone)]
pub enum Classifier {
    /// Word count plus keyword rules; the baseline the others must beat.
    Heuristic,
}

impl Classifier {
    pub fn from_kind(kind: ClassifierKind) -> Self {
        match kind {
            ClassifierKind::Heuristic => Classifier::Heuristic,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Classifier::Heuristic => "heuristic",
        }
    }

    pub fn classify(&self, query: &str) -> Classification {
        let started = Instant::now();
        let verdict = match self {
            Classifier::Heuristic => heuristic::classify(query),
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
