//! A/B experiments: routing against a fixed model (or two routing setups).
//! Tickets are assigned by a hash of (experiment, ticket), so a ticket keeps
//! its variant and no assignment has to be stored. The readout compares
//! cost per ticket (Welch's t-test) and thumbs-up rate (two-proportion
//! z-test) and says it in a sentence.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::stats::{self, Sample, Test};
use crate::domain::Tier;

/// What one arm of an experiment does with a `model: auto` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    /// The normal classifier and router.
    Routing,
    /// Always this catalog model.
    Model(String),
    /// Always this tier (the router still picks within it).
    Tier(Tier),
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "routing" {
            return Ok(Variant::Routing);
        }
        if let Some(model) = s.strip_prefix("model:").map(str::trim).filter(|m| !m.is_empty()) {
            return Ok(Variant::Model(model.to_string()));
        }
        if let Some(tier) = s.strip_prefix("tier:") {
            return tier.trim().parse().map(Variant::Tier).map_err(|_| format!("unknown tier in {s:?}"));
        }
        Err(format!("a variant is `routing`, `model:<name>` or `tier:<budget|balanced|premium>`, not {s:?}"))
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Variant::Routing => f.write_str("routing"),
            Variant::Model(m) => write!(f, "model:{m}"),
            Variant::Tier(t) => write!(f, "tier:{}", t.as_str()),
        }
    }
}

/// A running experiment, as the pipeline needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub id: Uuid,
    pub a: Variant,
    pub b: Variant,
    /// Percent of tickets in B.
    pub split_b: u8,
}

/// Which arm a ticket is in: "A" or "B", with what it does.
pub fn assign(experiment: &Running, ticket: Uuid) -> (&'static str, &Variant) {
    let mut h = Sha256::new();
    h.update(experiment.id.as_bytes());
    h.update(ticket.as_bytes());
    let digest = h.finalize();
    let bucket = u16::from_be_bytes([digest[0], digest[1]]) % 100;
    if bucket < u16::from(experiment.split_b) { ("B", &experiment.b) } else { ("A", &experiment.a) }
}

/// The running experiment, re-read from Postgres at most every few seconds
/// (every instance sees a new or stopped experiment within that time).
pub struct ExperimentCache {
    pool: PgPool,
    ttl: Duration,
    current: tokio::sync::Mutex<(Option<Instant>, Option<Arc<Running>>)>,
}

impl ExperimentCache {
    pub fn new(pool: PgPool) -> Self {
        ExperimentCache { pool, ttl: Duration::from_secs(5), current: tokio::sync::Mutex::new((None, None)) }
    }

    pub async fn running(&self) -> Option<Arc<Running>> {
        let mut current = self.current.lock().await;
        if current.0.is_some_and(|at| at.elapsed() < self.ttl) {
            return current.1.clone();
        }
        let fresh = match crate::store::experiments::running(&self.pool).await {
            Ok(row) => row.and_then(|e| {
                let (a, b) = (e.variant_a.parse().ok()?, e.variant_b.parse().ok()?);
                Some(Arc::new(Running { id: e.id, a, b, split_b: e.split_b.clamp(1, 99) as u8 }))
            }),
            Err(e) => {
                // keep routing as before rather than fail the request
                tracing::warn!(error = %e, "could not read the running experiment");
                current.1.clone()
            }
        };
        *current = (Some(Instant::now()), fresh.clone());
        fresh
    }

    /// Forgets the cached experiment (after an admin starts or stops one).
    pub async fn invalidate(&self) {
        self.current.lock().await.0 = None;
    }
}

/// One arm's results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Arm {
    pub tickets: f64,
    /// Cost per ticket, micro-dollars.
    pub cost: Sample,
    pub latency_ms: Sample,
    pub thumbs_up: f64,
    pub verdicts: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Readout {
    pub cost: Option<Test>,
    pub thumbs: Option<Test>,
    /// e.g. "B costs 61% less per ticket (p < 0.001); no significant change
    /// in thumbs-up (p = 0.41)."
    pub sentence: String,
}

/// Significance level for the readout's wording.
pub const ALPHA: f64 = 0.05;

pub fn readout(a: &Arm, b: &Arm) -> Readout {
    let cost = stats::welch_t(b.cost, a.cost);
    let thumbs = stats::two_proportion_z(b.thumbs_up, b.verdicts, a.thumbs_up, a.verdicts);
    let p = |t: &Test| if t.p_value < 0.001 { "p < 0.001".to_string() } else { format!("p = {:.2}", t.p_value) };
    let cost_part = match (&cost, a.cost.mean) {
        (Some(t), base) if base > 0.0 => {
            let change = (b.cost.mean - base) / base * 100.0;
            let direction = if change < 0.0 { "less" } else { "more" };
            if t.p_value < ALPHA {
                format!("B costs {:.0}% {direction} per ticket than A ({})", change.abs(), p(t))
            } else {
                format!("no significant difference in cost per ticket ({:+.0}%, {})", change, p(t))
            }
        }
        _ => "not enough tickets yet to compare cost".to_string(),
    };
    let thumbs_part = match &thumbs {
        Some(t) if t.p_value < ALPHA => {
            let (ra, rb) = (a.thumbs_up / a.verdicts * 100.0, b.thumbs_up / b.verdicts * 100.0);
            let direction = if rb > ra { "higher" } else { "lower" };
            format!("thumbs-up is {direction} in B ({rb:.0}% vs {ra:.0}%, {})", p(t))
        }
        Some(t) => format!("no significant change in thumbs-up ({})", p(t)),
        None => "not enough verdicts yet to compare thumbs-up".to_string(),
    };
    let mut sentence = format!("{cost_part}; {thumbs_part}.");
    if let Some(first) = sentence.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    Readout { cost, thumbs, sentence }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(split_b: u8) -> Running {
        Running { id: Uuid::new_v4(), a: Variant::Model("openai/gpt-4o".into()), b: Variant::Routing, split_b }
    }

    #[test]
    fn variants_parse_and_print() {
        assert_eq!("routing".parse::<Variant>(), Ok(Variant::Routing));
        assert_eq!("model:openai/gpt-4o".parse::<Variant>(), Ok(Variant::Model("openai/gpt-4o".into())));
        assert_eq!("tier:premium".parse::<Variant>(), Ok(Variant::Tier(Tier::Premium)));
        for bad in ["", "model:", "tier:gold", "gpt-4o"] {
            assert!(bad.parse::<Variant>().is_err(), "{bad}");
        }
        assert_eq!(Variant::Tier(Tier::Budget).to_string(), "tier:budget");
    }

    #[test]
    fn assignment_is_stable_and_follows_the_split() {
        let e = experiment(30);
        let tickets: Vec<Uuid> = (0..4000).map(|_| Uuid::new_v4()).collect();
        let in_b = tickets.iter().filter(|t| assign(&e, **t).0 == "B").count();
        // 30% ± 3 points over 4,000 tickets
        assert!((1080..=1320).contains(&in_b), "{in_b} of 4000 in B");
        for t in &tickets[..50] {
            assert_eq!(assign(&e, *t).0, assign(&e, *t).0);
        }
        // another experiment shuffles tickets independently
        let other = experiment(30);
        let same = tickets.iter().filter(|t| assign(&e, **t).0 == assign(&other, **t).0).count();
        assert!(same < 3600, "{same}");
    }

    #[test]
    fn readout_says_what_changed() {
        let a = Arm {
            tickets: 200.0,
            cost: Sample { n: 200.0, mean: 1000.0, variance: 200.0f64.powi(2) },
            latency_ms: Sample::default(),
            thumbs_up: 80.0,
            verdicts: 100.0,
        };
        let b =
            Arm { cost: Sample { n: 200.0, mean: 390.0, variance: 150.0f64.powi(2) }, thumbs_up: 77.0, ..a.clone() };
        let r = readout(&a, &b);
        assert!(r.sentence.starts_with("B costs 61% less per ticket than A (p < 0.001)"), "{}", r.sentence);
        assert!(r.sentence.contains("no significant change in thumbs-up (p = 0.61)"), "{}", r.sentence);
        let empty = readout(&Arm::default(), &Arm::default());
        assert_eq!(
            empty.sentence,
            "Not enough tickets yet to compare cost; not enough verdicts yet to compare thumbs-up."
        );
    }
}
