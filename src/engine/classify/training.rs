//! Training the embedding classifier's heads from labeled JSON lines (the
//! shipped `data/classifier/train.jsonl`, plus admin relabels), with a
//! held-out fifth for calibration and for choosing the fast-path threshold.

use std::path::Path;

use serde::Deserialize;

use super::embedding::{Artifact, EmbeddingClassifier, FULL_MAX_TOKENS, fast_is_sure, input, prepare};
use super::eval::macro_f1;
use super::head::{CLASSES, Head, TrainParams, argmax, class_index};
use super::minilm::{EmbedError, MiniLm, StaticTable};
use super::svm::{SvmHead, SvmParams};
use crate::domain::Complexity;

#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    #[serde(default)]
    pub id: Option<String>,
    pub query: String,
    pub label: Complexity,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("could not read {0}: {1}")]
    Read(String, String),
    #[error("{0}:{1}: {2}")]
    Parse(String, usize, String),
    #[error("need examples of every label; got {0:?} (simple, medium, complex)")]
    TooFew([usize; CLASSES]),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

pub fn load_jsonl(path: &Path) -> Result<Vec<Example>, TrainError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::Read(name.clone(), e.to_string()))?;
    parse_jsonl(&name, &text)
}

fn parse_jsonl(name: &str, text: &str) -> Result<Vec<Example>, TrainError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| TrainError::Parse(name.into(), i + 1, e.to_string())))
        .collect()
}

/// A training file's examples and its sha256, which the trained heads
/// remember so that a changed file is noticed at the next start.
pub struct TrainingSet {
    pub examples: Vec<Example>,
    pub sha256: String,
}

impl TrainingSet {
    pub fn load(path: &Path) -> Result<TrainingSet, TrainError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Read(name.clone(), e.to_string()))?;
        Ok(TrainingSet { examples: parse_jsonl(&name, &text)?, sha256: sha256_hex(text.as_bytes()) })
    }
}

/// sha256 of a training file, without parsing it.
pub fn fingerprint(path: &Path) -> std::io::Result<String> {
    std::fs::read(path).map(|bytes| sha256_hex(&bytes))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// The vectors both heads read, for one example.
struct Prepared {
    fast: Vec<f32>,
    full: Vec<f32>,
    label: usize,
    holdout: bool,
}

pub fn train(minilm: &MiniLm, table: &StaticTable, set: &TrainingSet) -> Result<Artifact, TrainError> {
    let examples = &set.examples;
    let mut counts = [0usize; CLASSES];
    examples.iter().for_each(|e| counts[class_index(e.label)] += 1);
    if counts.iter().any(|&c| c < 5) {
        return Err(TrainError::TooFew(counts));
    }
    let mut tokenized = Vec::with_capacity(examples.len());
    for e in examples {
        let (text, _) = prepare(&e.query);
        let ids = minilm.token_ids(&text)?;
        tokenized.push((text, ids));
    }
    let token_weights = if std::env::var_os("TRIAGE_NO_IDF").is_some() {
        Vec::new()
    } else {
        inverse_document_frequency(tokenized.iter().map(|(_, ids)| ids.as_slice()))
    };
    let mut prepared = Vec::with_capacity(examples.len());
    for (i, (e, (text, ids))) in examples.iter().zip(tokenized).enumerate() {
        let fast = input(&table.embed_weighted(&ids, &token_weights), &text);
        let full = input(&minilm.embed_ids(ids, FULL_MAX_TOKENS)?, &text);
        // every fifth example (stable order) is held out for calibration
        prepared.push(Prepared { fast, full, label: class_index(e.label), holdout: i % 5 == 4 });
    }
    let split = |holdout: bool, fast: bool| -> (Vec<Vec<f32>>, Vec<usize>) {
        prepared
            .iter()
            .filter(|p| p.holdout == holdout)
            .map(|p| (if fast { p.fast.clone() } else { p.full.clone() }, p.label))
            .unzip()
    };
    let params = TrainParams::default();
    let (fx, fy) = split(false, true);
    let (hx_fast, hy) = split(true, true);
    let (gx, gy) = split(false, false);
    let (hx_full, _) = split(true, false);
    let mut fast = Head::train(&fx, &fy, params);
    fast.calibrate(&hx_fast, &hy);
    let full = SvmHead::train(&gx, &gy, SvmParams::default(), Some((&hx_full, &hy)));
    let threshold = choose_threshold(&fast, &full, &hx_fast, &hx_full, &hy);
    let held_out: Vec<[f32; CLASSES]> = hx_fast
        .iter()
        .zip(&hx_full)
        .map(|(xf, xg)| {
            let p = fast.probabilities(xf);
            if fast_is_sure(&p, threshold) { p } else { full.probabilities(xg) }
        })
        .collect();
    let bias = guard_against_under_routing(&held_out, &hy);

    // Final heads see every example; calibrations and threshold stay.
    let all = |fast: bool| -> (Vec<Vec<f32>>, Vec<usize>) {
        prepared.iter().map(|p| (if fast { p.fast.clone() } else { p.full.clone() }, p.label)).unzip()
    };
    let (ax, ay) = all(true);
    let mut fast_final = Head::train(&ax, &ay, params);
    fast_final.temperature = fast.temperature;
    let (bx, by) = all(false);
    let mut full_final = SvmHead::fit(&bx, &by, SvmParams::default());
    full_final.calibration = full.calibration;
    Ok(Artifact {
        fast: fast_final,
        full: full_final,
        threshold,
        examples: examples.len(),
        trained_at: chrono::Utc::now(),
        bias,
        token_weights,
        encoder: minilm.encoder_kind().into(),
        training_sha256: set.sha256.clone(),
    })
}

/// `ln((N + 1) / (df + 1)) + 1` per token id; ids never seen get the
/// largest weight (rare words are the telling ones).
pub fn inverse_document_frequency<'a>(docs: impl Iterator<Item = &'a [u32]>) -> Vec<f32> {
    let mut df: Vec<u32> = Vec::new();
    let mut n = 0u32;
    for ids in docs {
        n += 1;
        let mut seen: Vec<u32> = ids.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for id in seen {
            let i = id as usize;
            if df.len() <= i {
                df.resize(i + 1, 0);
            }
            df[i] += 1;
        }
    }
    // the BERT vocabulary has 30,522 ids; cover them all
    df.resize(df.len().max(30_522), 0);
    df.iter().map(|&d| (((n + 1) as f32) / ((d + 1) as f32)).ln() + 1.0).collect()
}

/// The lowest threshold whose cascade scores within a point of the full
/// model alone on held-out data: as much traffic on the fast path as
/// accuracy allows.
fn choose_threshold(fast: &Head, full: &SvmHead, xf: &[Vec<f32>], xg: &[Vec<f32>], y: &[usize]) -> f32 {
    let full_pred: Vec<usize> = xg.iter().map(|x| argmax(&full.probabilities(x))).collect();
    let full_f1 = macro_f1(&full_pred, y);
    let mut chosen = 1.01; // never trust the fast path unless it earns it
    for step in (0..=20).rev() {
        let t = 0.5 + step as f32 * 0.025;
        let pred: Vec<usize> = xf
            .iter()
            .zip(&full_pred)
            .map(|(x, &g)| {
                let p = fast.probabilities(x);
                if fast_is_sure(&p, t) { argmax(&p) } else { g }
            })
            .collect();
        if macro_f1(&pred, y) >= full_f1 - 0.01 {
            chosen = t;
        } else {
            break;
        }
    }
    chosen
}

/// Most complex queries sent to the budget tier that training accepts,
/// on held-out data: a weak model's wrong answer to a hard question costs
/// more than a strong model's answer to an easy one.
pub const MAX_COMPLEX_TO_BUDGET: f64 = 0.005;

/// The smallest handicap on `simple` that keeps complex → simple within
/// `MAX_COMPLEX_TO_BUDGET` on held-out probabilities (the decision biases,
/// as `triage calibrate` sets them later).
pub fn guard_against_under_routing(probabilities: &[[f32; CLASSES]], labels: &[usize]) -> [f32; 3] {
    let complex = labels.iter().filter(|&&y| y == 2).count().max(1) as f64;
    let mut bias = [0.0f32; 3];
    for step in 0..=40 {
        bias[0] = -0.1 * step as f32;
        let under = probabilities
            .iter()
            .zip(labels)
            .filter(|&(p, &y)| y == 2 && super::embedding::decide(p, &bias) == 0)
            .count();
        if under as f64 / complex <= MAX_COMPLEX_TO_BUDGET {
            break;
        }
    }
    bias
}

/// Loads the model and table, trains on `examples`, saves the artifact.
pub fn train_and_save(paths: &super::embedding::Paths, set: &TrainingSet) -> Result<Artifact, TrainError> {
    let (minilm, table) = EmbeddingClassifier::load_parts(paths)?;
    let artifact = train(&minilm, &table, set)?;
    save(&paths.artifact, &artifact)?;
    Ok(artifact)
}

/// Retrains on `examples` (the shipped data plus admin labels). When `live`
/// is the running classifier, the new head replaces its old one at once
/// (keeping the calibrated biases); the artifact is saved either way, so a
/// restart or a switch to the embedding classifier picks it up.
pub fn retrain(
    live: Option<&EmbeddingClassifier>,
    paths: &super::embedding::Paths,
    set: &TrainingSet,
) -> Result<Artifact, TrainError> {
    let mut artifact = match live {
        Some(c) => train(&c.minilm, &c.table, set)?,
        None => {
            let (minilm, table) = EmbeddingClassifier::load_parts(paths)?;
            train(&minilm, &table, set)?
        }
    };
    if let Some(c) = live {
        artifact.bias = c.artifact_bias();
    }
    save(&paths.artifact, &artifact)?;
    if let Some(c) = live {
        c.replace_artifact(artifact.clone());
    }
    Ok(artifact)
}

pub fn save(path: &Path, artifact: &Artifact) -> Result<(), TrainError> {
    let json = serde_json::to_string(artifact).map_err(|e| TrainError::Read("artifact".into(), e.to_string()))?;
    std::fs::write(path, json).map_err(|e| TrainError::Read(path.display().to_string(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_handicaps_simple_just_enough() {
        // two complex queries the head thinks simple (one barely), the rest clear
        let mut p = vec![[0.55, 0.05, 0.40], [0.90, 0.05, 0.05]];
        let mut y = vec![2, 0];
        for _ in 0..98 {
            p.push([0.05, 0.10, 0.85]);
            y.push(2);
        }
        let bias = guard_against_under_routing(&p, &y);
        assert!(bias[0] < 0.0, "{bias:?}");
        let decide = |p: &[f32; 3]| crate::engine::classify::embedding::decide(p, &bias);
        assert_ne!(decide(&p[0]), 0, "the borderline complex query is no longer sent to budget");
        assert_eq!(decide(&p[1]), 0, "a clear simple query still is");
        // nothing to fix: no handicap
        assert_eq!(guard_against_under_routing(&p[1..], &y[1..]), [0.0; 3]);
    }
}
