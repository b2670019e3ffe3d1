//! Classifier evaluation: accuracy, macro-F1, the confusion matrix,
//! under- and over-routing, and what routing costs against always-premium.

use serde::Serialize;

use super::head::CLASSES;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub n: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// `confusion[truth][predicted]`, order simple, medium, complex.
    pub confusion: [[usize; CLASSES]; CLASSES],
    /// Complex queries sent to the budget tier, over all complex queries.
    pub complex_to_budget: f64,
    /// Predicted a cheaper tier than the label.
    pub under_routing: f64,
    /// Predicted a dearer tier than the label.
    pub over_routing: f64,
}

pub fn report(pred: &[usize], truth: &[usize]) -> Report {
    let mut confusion = [[0usize; CLASSES]; CLASSES];
    for (&p, &t) in pred.iter().zip(truth) {
        confusion[t][p] += 1;
    }
    let n = truth.len().max(1) as f64;
    let correct: usize = (0..CLASSES).map(|k| confusion[k][k]).sum();
    let under: usize = pred.iter().zip(truth).filter(|(p, t)| p < t).count();
    let over: usize = pred.iter().zip(truth).filter(|(p, t)| p > t).count();
    let complex_total: usize = confusion[2].iter().sum();
    Report {
        n: truth.len(),
        accuracy: correct as f64 / n,
        macro_f1: macro_f1(pred, truth),
        confusion,
        complex_to_budget: if complex_total > 0 { confusion[2][0] as f64 / complex_total as f64 } else { 0.0 },
        under_routing: under as f64 / n,
        over_routing: over as f64 / n,
    }
}

pub fn macro_f1(pred: &[usize], truth: &[usize]) -> f64 {
    let mut f1 = 0.0;
    for k in 0..CLASSES {
        let tp = pred.iter().zip(truth).filter(|(p, t)| **p == k && **t == k).count() as f64;
        let fp = pred.iter().zip(truth).filter(|(p, t)| **p == k && **t != k).count() as f64;
        let fn_ = pred.iter().zip(truth).filter(|(p, t)| **p != k && **t == k).count() as f64;
        let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let recall = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
        f1 += if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    }
    f1 / CLASSES as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_skewed_predictions() {
        let truth = [0, 1, 2, 2];
        let r = report(&truth, &truth);
        assert_eq!((r.accuracy, r.macro_f1, r.complex_to_budget), (1.0, 1.0, 0.0));
        let r = report(&[0, 0, 0, 2], &truth);
        assert_eq!(r.confusion[2][0], 1);
        assert_eq!(r.complex_to_budget, 0.5);
        assert_eq!(r.under_routing, 0.5);
        assert_eq!(r.over_routing, 0.0);
        // simple: P 1/3, R 1 → F1 0.5; medium: 0; complex: P 1, R 1/2 → F1 2/3
        assert!((r.macro_f1 - (0.5 + 0.0 + 2.0 / 3.0) / 3.0).abs() < 1e-9);
    }
}
