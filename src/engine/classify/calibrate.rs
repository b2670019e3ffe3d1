//! Calibration: choose the decision biases (see `embedding::decide`) that
//! hit a target share of premium traffic, or that spend at most a budget
//! per 1,000 queries while under-routing as little as possible. Works from
//! the classifier's calibrated probabilities on recent traffic or a file;
//! labels, when present, only report how the choice scores.

use super::embedding::decide;

/// Probabilities and, per tier (budget, balanced, premium), what answering
/// the query there would cost in micro-dollars.
#[derive(Debug, Clone)]
pub struct Sample {
    pub p: [f32; 3],
    pub cost: [i64; 3],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub bias: [f32; 3],
    /// Share of queries per tier with this bias.
    pub shares: [f64; 3],
    pub cost_per_1k_micros: f64,
    /// Expected share not sent below its true class (by the probabilities).
    pub expected_not_under: f64,
}

pub fn evaluate(samples: &[Sample], bias: [f32; 3]) -> Calibration {
    let n = samples.len().max(1) as f64;
    let mut counts = [0usize; 3];
    let mut cost = 0i64;
    let mut not_under = 0.0f64;
    for s in samples {
        let k = decide(&s.p, &bias);
        counts[k] += 1;
        cost += s.cost[k];
        // the true class is at most k with probability p[0] + … + p[k]
        not_under += s.p[..=k].iter().map(|&x| f64::from(x)).sum::<f64>();
    }
    Calibration {
        bias,
        shares: counts.map(|c| c as f64 / n),
        cost_per_1k_micros: cost as f64 / n * 1000.0,
        expected_not_under: not_under / n,
    }
}

/// The complex bias whose premium share is closest to `target` (in [0, 1]).
pub fn for_premium_share(samples: &[Sample], target: f64) -> Calibration {
    // the premium share grows with the complex bias: bisect
    let (mut lo, mut hi) = (-12.0f32, 12.0f32);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if evaluate(samples, [0.0, 0.0, mid]).shares[2] < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let a = evaluate(samples, [0.0, 0.0, lo]);
    let b = evaluate(samples, [0.0, 0.0, hi]);
    if (a.shares[2] - target).abs() <= (b.shares[2] - target).abs() { a } else { b }
}

/// The biases that under-route least while costing at most `budget_per_1k`
/// micro-dollars per 1,000 queries; `None` when even all-budget costs more.
pub fn for_budget(samples: &[Sample], budget_per_1k_micros: f64) -> Option<Calibration> {
    let grid: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.15).collect();
    let mut best: Option<Calibration> = None;
    for &m in &grid {
        for &c in &grid {
            let r = evaluate(samples, [0.0, m, c]);
            if r.cost_per_1k_micros > budget_per_1k_micros {
                continue;
            }
            let better = best.as_ref().is_none_or(|b| {
                r.expected_not_under > b.expected_not_under + 1e-9
                    // equal quality: the cheaper, then the smaller change
                    || (r.expected_not_under > b.expected_not_under - 1e-9
                        && (r.cost_per_1k_micros, m.abs() + c.abs()) < (b.cost_per_1k_micros, b.bias[1].abs() + b.bias[2].abs()))
            });
            if better {
                best = Some(r);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        // a spread of confidence that a query is complex
        (0..100)
            .map(|i| {
                let c = i as f32 / 100.0;
                Sample { p: [(1.0 - c) * 0.6, (1.0 - c) * 0.4, c], cost: [10, 100, 1000] }
            })
            .collect()
    }

    #[test]
    fn a_premium_share_target_is_met() {
        let s = samples();
        for target in [0.05, 0.2, 0.5] {
            let r = for_premium_share(&s, target);
            assert!((r.shares[2] - target).abs() <= 0.011, "{target}: {:?}", r.shares);
        }
        // more premium, higher bias
        assert!(for_premium_share(&s, 0.5).bias[2] > for_premium_share(&s, 0.05).bias[2]);
    }

    #[test]
    fn a_budget_is_respected_and_spent_where_it_helps() {
        let s = samples();
        let all_budget = evaluate(&s, [0.0, -50.0, -50.0]).cost_per_1k_micros;
        assert!(for_budget(&s, all_budget - 1.0).is_none(), "cannot spend less than all-budget");
        let loose = for_budget(&s, 1_000_000.0).unwrap();
        let tight = for_budget(&s, 200_000.0).unwrap();
        assert!(tight.cost_per_1k_micros <= 200_000.0);
        assert!(loose.expected_not_under >= tight.expected_not_under);
        assert!(loose.shares[2] > tight.shares[2], "{:?} vs {:?}", loose.shares, tight.shares);
    }

    #[test]
    fn zero_bias_is_the_plain_argmax() {
        let s = samples();
        let r = evaluate(&s, [0.0; 3]);
        let premium = s.iter().filter(|x| x.p[2] > x.p[0] && x.p[2] > x.p[1]).count();
        assert_eq!(r.shares[2], premium as f64 / 100.0);
    }
}
