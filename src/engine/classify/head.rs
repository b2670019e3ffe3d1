//! Multinomial logistic regression, trained here (no ML framework): a few
//! hundred full-batch Adam steps with L2 and balanced class weights, then
//! temperature scaling so the confidence means what it says.

use serde::{Deserialize, Serialize};

use crate::domain::Complexity;

pub const CLASSES: usize = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    /// `CLASSES` rows of `dim` weights.
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
    /// Softmax temperature fitted on held-out data.
    pub temperature: f32,
}

pub fn class_index(c: Complexity) -> usize {
    match c {
        Complexity::Simple => 0,
        Complexity::Medium => 1,
        Complexity::Complex => 2,
    }
}

pub fn class_of(i: usize) -> Complexity {
    [Complexity::Simple, Complexity::Medium, Complexity::Complex][i.min(2)]
}

#[derive(Debug, Clone, Copy)]
pub struct TrainParams {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams { epochs: 400, learning_rate: 0.05, l2: 1e-3 }
    }
}

impl Head {
    pub fn logits(&self, x: &[f32]) -> [f32; CLASSES] {
        let mut out = [0f32; CLASSES];
        for (k, o) in out.iter_mut().enumerate() {
            *o = self.bias[k] + self.weights[k].iter().zip(x).map(|(w, v)| w * v).sum::<f32>();
        }
        out
    }

    /// Calibrated class probabilities.
    pub fn probabilities(&self, x: &[f32]) -> [f32; CLASSES] {
        softmax(self.logits(x), self.temperature)
    }

    pub fn train(xs: &[Vec<f32>], ys: &[usize], params: TrainParams) -> Head {
        let dim = xs.first().map_or(0, Vec::len);
        let n = xs.len().max(1) as f32;
        // balanced class weights: rare classes count as much as common ones
        let mut counts = [0f32; CLASSES];
        ys.iter().for_each(|&y| counts[y] += 1.0);
        let class_weight: Vec<f32> =
            counts.iter().map(|&c| if c > 0.0 { n / (CLASSES as f32 * c) } else { 0.0 }).collect();
        let mut head = Head { weights: vec![vec![0.0; dim]; CLASSES], bias: vec![0.0; CLASSES], temperature: 1.0 };
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut m_w = vec![vec![0f32; dim]; CLASSES];
        let mut v_w = vec![vec![0f32; dim]; CLASSES];
        let mut m_b = [0f32; CLASSES];
        let mut v_b = [0f32; CLASSES];
        for step in 1..=params.epochs {
            let mut g_w = vec![vec![0f32; dim]; CLASSES];
            let mut g_b = [0f32; CLASSES];
            for (x, &y) in xs.iter().zip(ys) {
                let p = softmax(head.logits(x), 1.0);
                for k in 0..CLASSES {
                    let err = (p[k] - f32::from(k == y)) * class_weight[y] / n;
                    g_b[k] += err;
                    g_w[k].iter_mut().zip(x).for_each(|(g, v)| *g += err * v);
                }
            }
            let lr = params.learning_rate * (1.0 - b2.powi(step as i32)).sqrt() / (1.0 - b1.powi(step as i32));
            for k in 0..CLASSES {
                for j in 0..dim {
                    let g = g_w[k][j] + params.l2 * head.weights[k][j];
                    m_w[k][j] = b1 * m_w[k][j] + (1.0 - b1) * g;
                    v_w[k][j] = b2 * v_w[k][j] + (1.0 - b2) * g * g;
                    head.weights[k][j] -= lr * m_w[k][j] / (v_w[k][j].sqrt() + eps);
                }
                m_b[k] = b1 * m_b[k] + (1.0 - b1) * g_b[k];
                v_b[k] = b2 * v_b[k] + (1.0 - b2) * g_b[k] * g_b[k];
                head.bias[k] -= lr * m_b[k] / (v_b[k].sqrt() + eps);
            }
        }
        head
    }

    /// Picks the temperature that minimises log-loss on held-out data.
    pub fn calibrate(&mut self, xs: &[Vec<f32>], ys: &[usize]) {
        let logits: Vec<[f32; CLASSES]> = xs.iter().map(|x| self.logits(x)).collect();
        let loss = |t: f32| -> f32 {
            logits.iter().zip(ys).map(|(l, &y)| -softmax(*l, t)[y].max(1e-9).ln()).sum::<f32>() / ys.len().max(1) as f32
        };
        let mut best = (1.0, loss(1.0));
        let mut t = 0.25f32;
        while t <= 5.0 {
            let l = loss(t);
            if l < best.1 {
                best = (t, l);
            }
            t += 0.05;
        }
        self.temperature = best.0;
    }
}

pub fn softmax(logits: [f32; CLASSES], temperature: f32) -> [f32; CLASSES] {
    let t = temperature.max(1e-3);
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let mut out = logits.map(|l| ((l - max) / t).exp());
    let sum: f32 = out.iter().sum();
    out.iter_mut().for_each(|p| *p /= sum);
    out
}

pub fn argmax(p: &[f32; CLASSES]) -> usize {
    (0..CLASSES).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_problem_and_calibrates() {
        // three clusters on a line
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..60 {
            let class = i % 3;
            let jitter = (i as f32 * 0.37).sin() * 0.2;
            xs.push(vec![class as f32 + jitter, 1.0 - class as f32 * 0.5 + jitter]);
            ys.push(class);
        }
        let mut head = Head::train(&xs, &ys, TrainParams { epochs: 600, learning_rate: 0.1, l2: 0.0 });
        head.calibrate(&xs, &ys);
        let correct = xs.iter().zip(&ys).filter(|(x, y)| argmax(&head.probabilities(x)) == **y).count();
        assert!(correct >= 57, "{correct}/60");
        let p = head.probabilities(&[2.0, 0.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(argmax(&p), 2);
    }

    #[test]
    fn softmax_is_stable() {
        let p = softmax([1000.0, 0.0, -1000.0], 1.0);
        assert!(p[0] > 0.999 && p.iter().all(|x| x.is_finite()));
    }
}
