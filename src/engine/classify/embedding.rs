//! The embedding classifier: MiniLM meaning plus shape features, read by
//! trained heads with calibrated confidence.
//!
//! Two stages, so a typical query costs well under a millisecond:
//! 1. **fast**: the static (distilled) MiniLM table + features → head A;
//!    done if its confidence reaches the trained threshold;
//! 2. **full**: MiniLM itself on at most `FULL_MAX_TOKENS` tokens + features
//!    → an RBF SVM (`svm`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Verdict;
use super::features;
use super::head::{Head, argmax, class_of};
use super::injection::strip_routing_injections;
use super::minilm::{EmbedError, MiniLm, StaticTable};
use super::svm::SvmHead;
use crate::domain::Complexity;

/// Longest input the full model reads (head and tail kept).
pub const FULL_MAX_TOKENS: usize = 64;

/// The trained part, saved as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    pub fast: Head,
    pub full: SvmHead,
    /// Fast-path confidence at or above which the full model is skipped.
    pub threshold: f32,
    pub examples: usize,
    pub trained_at: chrono::DateTime<chrono::Utc>,
    /// Added to the log-probabilities before the argmax; set by
    /// `triage calibrate` to trade premium share against cost.
    #[serde(default)]
    pub bias: [f32; 3],
    /// Per-token weights for the static mean (inverse document frequency
    /// over the training set); empty = plain mean.
    #[serde(default)]
    pub token_weights: Vec<f32>,
    /// `MiniLm::encoder_kind` the heads were trained on; another kind
    /// means retraining.
    #[serde(default)]
    pub encoder: String,
    /// sha256 of the training file the heads were trained from (admin
    /// labels come on top of it); a different file means retraining.
    #[serde(default)]
    pub training_sha256: String,
    /// How the cascade scored each training example from heads that did
    /// not see it (absent in older heads).
    #[serde(default)]
    pub out_of_fold: Option<OutOfFold>,
    /// Added to the log-probability of simple (then renormalised) when the
    /// text is mostly in a script the encoder barely reads
    /// (`features::mostly_unread_script`): the heads' confidence in "easy"
    /// means less there. Set by training's under-routing guard; 0 in older
    /// heads.
    #[serde(default)]
    pub unread_script_discount: f32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct OutOfFold {
    /// The handicap on simple training chose (`bias[0]` until `triage
    /// calibrate` or a live retrain's kept biases replace it).
    pub handicap: f32,
    pub macro_f1: f64,
    /// Share of complex examples decided simple.
    pub complex_to_budget: f64,
    /// The same among examples mostly in scripts the encoder barely reads
    /// (absent in older heads).
    #[serde(default)]
    pub unread_script: Option<GroupFit>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct GroupFit {
    /// Complex examples in the group.
    pub complex: usize,
    pub complex_to_budget: f64,
}

impl Artifact {
    /// Whether this head still fits: the same encoder, and the same
    /// training file when that file can be read (`None`: keep the head).
    pub fn is_current(&self, encoder: &str, training_sha256: Option<&str>) -> bool {
        self.encoder == encoder && training_sha256.is_none_or(|sha| sha == self.training_sha256)
    }
}

/// Whether the fast head's guess stands (else the full model decides): the
/// one rule for serving, threshold choice and the held-out guard.
pub fn fast_is_sure(p: &[f32; 3], threshold: f32) -> bool {
    p[argmax(p)] >= threshold
}

/// `p` with simple's log-probability moved by `discount` (≤ 0), renormalised.
pub fn discount_simple(p: [f32; 3], discount: f32) -> [f32; 3] {
    if discount == 0.0 {
        return p;
    }
    let simple = p[0] * discount.exp();
    let sum = simple + p[1] + p[2];
    if sum > 0.0 { [simple / sum, p[1] / sum, p[2] / sum] } else { p }
}

/// The class with the highest biased log-probability.
pub fn decide(p: &[f32; 3], bias: &[f32; 3]) -> usize {
    let score = |k: usize| p[k].max(1e-9).ln() + bias[k];
    (0..3).max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap_or(0)
}

pub struct EmbeddingClassifier {
    pub minilm: MiniLm,
    pub table: StaticTable,
    pub artifact: std::sync::RwLock<Artifact>,
}

/// Where the classifier's files live under the models directory.
pub struct Paths {
    pub minilm_dir: PathBuf,
    pub static_table: PathBuf,
    pub artifact: PathBuf,
}

impl Paths {
    pub fn new(models_dir: &Path) -> Self {
        let minilm_dir = models_dir.join("all-MiniLM-L6-v2");
        Paths {
            static_table: minilm_dir.join("static-table.bin"),
            artifact: models_dir.join("classifier-head.json"),
            minilm_dir,
        }
    }
}

/// The text both heads read: routing instructions removed (and whether
/// there were any), links shortened.
pub fn prepare(query: &str) -> (String, bool) {
    let (text, injected) = strip_routing_injections(query);
    let text = match features::without_links(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(shorter) => shorter,
    };
    (text, injected)
}

pub fn input(embedding: &[f32], text: &str) -> Vec<f32> {
    let mut x = embedding.to_vec();
    x.extend(features::extract(text));
    x
}

impl EmbeddingClassifier {
    /// Loads the model, and the static table (distilling it on first use).
    pub fn load_parts(paths: &Paths) -> Result<(MiniLm, StaticTable), EmbedError> {
        let minilm = MiniLm::load(&paths.minilm_dir)?;
        let table = match StaticTable::load(&paths.static_table) {
            Ok(t) => t,
            Err(_) => {
                tracing::info!("distilling the static MiniLM table (once; about a minute)");
                let t = minilm.distill_static()?;
                t.save(&paths.static_table).map_err(|e| EmbedError::Load(e.to_string()))?;
                t
            }
        };
        Ok((minilm, table))
    }

    pub fn new(minilm: MiniLm, table: StaticTable, artifact: Artifact) -> Self {
        EmbeddingClassifier { minilm, table, artifact: std::sync::RwLock::new(artifact) }
    }

    /// The decision biases in use (set by `triage calibrate`).
    pub fn artifact_bias(&self) -> [f32; 3] {
        self.artifact.read().expect("artifact lock").bias
    }

    /// Swaps in a retrained head without a restart.
    pub fn replace_artifact(&self, artifact: Artifact) {
        *self.artifact.write().expect("artifact lock") = artifact;
    }

    /// The calibrated probabilities the decision is made from (from the
    /// fast path when it is sure, else the full model), or `None` when the
    /// text has no words.
    pub fn probabilities(&self, query: &str) -> Result<Option<[f32; 3]>, EmbedError> {
        Ok(match self.stages(&prepare(query).0)?.0 {
            Stages::NoWords => None,
            Stages::Fast(p) | Stages::Full { full: p, .. } => Some(p),
        })
    }

    pub fn classify(&self, query: &str) -> Verdict {
        let (text, injected) = prepare(query);
        let bias = self.artifact_bias();
        let stages = self.stages(&text);
        let mut suffix = String::new();
        if matches!(stages, Ok((_, true))) {
            suffix.push_str("; simple discounted (a script the encoder barely reads)");
        }
        if injected {
            suffix.push_str("; routing instructions ignored");
        }
        let suffix = suffix.as_str();
        match stages.map(|(stages, _)| stages) {
            Err(e) => fallback(e, suffix),
            Ok(Stages::NoWords) => Verdict {
                complexity: Complexity::Simple,
                confidence: 0.95,
                reason: format!("no words: greeting, emoji or empty{suffix}"),
            },
            Ok(Stages::Fast(p)) => decided(&p, &bias, ("fast path", ""), &text, suffix),
            Ok(Stages::Full { fast, full }) => {
                let unsure = format!(" (fast path unsure at {:.0}%)", fast[argmax(&fast)] * 100.0);
                decided(&full, &bias, ("full model", &unsure), &text, suffix)
            }
        }
    }

    /// The fast head, then the full model only if the fast head is unsure;
    /// the deciding stage's simple discounted for a script the encoder
    /// barely reads (and whether it was).
    fn stages(&self, text: &str) -> Result<(Stages, bool), EmbedError> {
        if !text.chars().any(char::is_alphanumeric) {
            return Ok((Stages::NoWords, false));
        }
        let ids = self.minilm.token_ids(text)?;
        let artifact = self.artifact.read().expect("artifact lock");
        let discount = if features::mostly_unread_script(text) { artifact.unread_script_discount } else { 0.0 };
        let discounted = discount != 0.0;
        let fast = artifact.fast.probabilities(&input(&self.table.embed_weighted(&ids, &artifact.token_weights), text));
        if fast_is_sure(&fast, artifact.threshold) {
            return Ok((Stages::Fast(discount_simple(fast, discount)), discounted));
        }
        let full = artifact.full.probabilities(&input(&self.minilm.embed_ids(ids, FULL_MAX_TOKENS)?, text));
        Ok((Stages::Full { fast, full: discount_simple(full, discount) }, discounted))
    }
}

/// The rules that overrule the heads' class `k` for `text`, with the
/// class they set and the reason's remark: a request for a proof goes to
/// complex (`features::asks_for_proof`), and a long report naming versions
/// goes no lower than medium (`features::is_version_report`). One place,
/// so that serving and training's under-routing guard agree.
pub fn overrule(k: usize, text: &str) -> Option<(usize, &'static str)> {
    if k != 2 && features::asks_for_proof(text) {
        return Some((2, "raised to complex: a request for a proof"));
    }
    if k == 0 && features::is_version_report(text) {
        return Some((1, "raised to medium: a long report naming versions never goes to budget"));
    }
    None
}

/// The verdict from one stage's probabilities: the biased argmax, unless
/// a rule overrules it (`overrule`); the reason then says so, and the
/// confidence is the head's in the class the rule set (low: a cascade asks
/// its LLM). `stage` names the head and adds a remark after its figure.
fn decided(p: &[f32; 3], bias: &[f32; 3], stage: (&str, &str), text: &str, suffix: &str) -> Verdict {
    let k = decide(p, bias);
    let (head, remark) = stage;
    let mut reason = format!("{head}: {} at {:.0}%{remark}", class_of(k), p[k] * 100.0);
    let k = match overrule(k, text) {
        Some((raised, why)) => {
            reason.push_str("; ");
            reason.push_str(why);
            raised
        }
        None => k,
    };
    reason.push_str(suffix);
    Verdict { complexity: class_of(k), confidence: p[k], reason }
}

/// How far `EmbeddingClassifier::stages` went, with the probabilities.
enum Stages {
    NoWords,
    Fast([f32; 3]),
    Full { fast: [f32; 3], full: [f32; 3] },
}

/// The model failed on this input: don't guess low, route to the middle.
fn fallback(e: EmbedError, suffix: &str) -> Verdict {
    tracing::warn!(error = %e, "embedding failed; routing to medium");
    Verdict { complexity: Complexity::Medium, confidence: 0.0, reason: format!("embedding failed ({e}){suffix}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_BIAS: [f32; 3] = [0.0; 3];
    const FULL: (&str, &str) = ("full model", "");

    fn simple_verdict() -> Verdict {
        Verdict { complexity: Complexity::Simple, confidence: 0.96, reason: "full model: simple at 96%".into() }
    }

    #[test]
    fn a_discount_moves_only_simple_and_keeps_a_distribution() {
        let p = [0.8, 0.15, 0.05];
        assert_eq!(discount_simple(p, 0.0), p);
        let d = discount_simple(p, -2.0);
        assert!((d.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(d[0] < p[0] && d[1] > p[1] && d[2] > p[2]);
        assert!((d[1] / d[2] - 3.0).abs() < 1e-5, "medium and complex keep their ratio");
        // the same decision as a bias of the same size
        let bias = [-1.0, 0.0, 0.0];
        assert_eq!(decide(&d, &bias), decide(&p, &[-3.0, 0.0, 0.0]));
    }

    #[test]
    fn a_long_version_report_is_never_left_to_budget() {
        let report = format!(
            "The HD icon said enabled in 22.0; after upgrading to 23.0 it says disabled. {}",
            "I have asked around and nobody could tell me whether that is normal. ".repeat(10)
        );
        let p = [0.96, 0.03, 0.01];
        let v = decided(&p, &NO_BIAS, FULL, &report, "; routing instructions ignored");
        assert_eq!(v.complexity, Complexity::Medium);
        assert_eq!(v.confidence, 0.03, "the head's confidence in medium: low, so a cascade asks its LLM");
        assert!(v.reason.ends_with("never goes to budget; routing instructions ignored"), "{}", v.reason);

        // short questions with versions, and long ones without, are left alone
        let short = decided(&p, &NO_BIAS, FULL, "Does 23.0 still support 22.0 wallets?", "");
        assert_eq!(short, simple_verdict());
        let chatty = "I love your shop and wanted to ask about opening hours this weekend please. ".repeat(10);
        assert_eq!(decided(&p, &NO_BIAS, FULL, &chatty, ""), simple_verdict());
    }

    #[test]
    fn a_request_for_a_proof_goes_to_complex_whatever_the_head_says() {
        let v = decided(&[0.90, 0.06, 0.04], &NO_BIAS, FULL, "证明：有限整环一定是域", "");
        assert_eq!(v.complexity, Complexity::Complex);
        assert_eq!(v.confidence, 0.04, "the head's confidence in complex");
        assert_eq!(v.reason, "full model: simple at 90%; raised to complex: a request for a proof");
        let medium = decided(&[0.1, 0.8, 0.1], &NO_BIAS, FULL, "Prove that √2 is irrational.", "");
        assert_eq!(medium.complexity, Complexity::Complex);
        let sure = decided(&[0.01, 0.01, 0.98], &NO_BIAS, FULL, "Prove that √2 is irrational.", "");
        assert_eq!(sure.reason, "full model: complex at 98%", "nothing to raise");
        let asked = decided(&[0.90, 0.06, 0.04], &NO_BIAS, FULL, "Where do I send proof of address?", "");
        assert_eq!(asked.complexity, Complexity::Simple);
    }
}
