//! Per-model health: a circuit breaker (open after N consecutive failures,
//! one half-open probe after a cool-down) and a moving average of latency
//! for the lowest-latency policy. Shared by every request of an instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The one request that tests a model after its cool-down.
    Probe,
    Rejected,
}

#[derive(Debug)]
struct ModelHealth {
    consecutive_failures: u32,
    state: BreakerState,
    open_until: Option<Instant>,
    probe_in_flight: bool,
    latency_ms: Option<f64>,
}

impl Default for ModelHealth {
    fn default() -> Self {
        ModelHealth {
            consecutive_failures: 0,
            state: BreakerState::Closed,
            open_until: None,
            probe_in_flight: false,
            latency_ms: None,
        }
    }
}

#[derive(Debug)]
pub struct Health {
    models: Mutex<HashMap<String, ModelHealth>>,
    failures_to_open: u32,
    cooldown: Duration,
}

/// Weight of the newest sample in the latency average.
const LATENCY_ALPHA: f64 = 0.2;

impl Health {
    pub fn new(failures_to_open: u32, cooldown: Duration) -> Self {
        Health { models: Mutex::new(HashMap::new()), failures_to_open: failures_to_open.max(1), cooldown }
    }

    pub fn admit(&self, model: &str) -> Admission {
        self.admit_at(model, Instant::now())
    }

    pub fn admit_at(&self, model: &str, now: Instant) -> Admission {
        let mut models = self.models.lock().expect("health lock");
        let h = models.entry(model.to_string()).or_default();
        match h.state {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::Open if h.open_until.is_some_and(|t| now >= t) => {
                h.state = BreakerState::HalfOpen;
                h.probe_in_flight = true;
                Admission::Probe
            }
            BreakerState::Open => Admission::Rejected,
            BreakerState::HalfOpen if h.probe_in_flight => Admission::Rejected,
            BreakerState::HalfOpen => {
                h.probe_in_flight = true;
                Admission::Probe
            }
        }
    }

    pub fn record_success(&self, model: &str, latency: Duration) {
        let mut models = self.models.lock().expect("health lock");
        let h = models.entry(model.to_string()).or_default();
        h.consecutive_failures = 0;
        h.state = BreakerState::Closed;
        h.open_until = None;
        h.probe_in_flight = false;
        let ms = latency.as_secs_f64() * 1000.0;
        h.latency_ms = Some(h.latency_ms.map_or(ms, |avg| avg + LATENCY_ALPHA * (ms - avg)));
    }

    pub fn record_failure(&self, model: &str) {
        self.record_failure_at(model, Instant::now());
    }

    pub fn record_failure_at(&self, model: &str, now: Instant) {
        let mut models = self.models.lock().expect("health lock");
        let h = models.entry(model.to_string()).or_default();
        h.consecutive_failures += 1;
        h.probe_in_flight = false;
        let trips = h.state == BreakerState::HalfOpen || h.consecutive_failures >= self.failures_to_open;
        if trips {
            if h.state != BreakerState::Open {
                tracing::warn!(model, failures = h.consecutive_failures, "circuit opened");
            }
            h.state = BreakerState::Open;
            h.open_until = Some(now + self.cooldown);
        }
    }

    /// Releases a probe that ended without a verdict (the caller left).
    pub fn release_probe(&self, model: &str) {
        if let Some(h) = self.models.lock().expect("health lock").get_mut(model) {
            h.probe_in_flight = false;
        }
    }

    pub fn state(&self, model: &str) -> BreakerState {
        self.models.lock().expect("health lock").get(model).map_or(BreakerState::Closed, |h| h.state)
    }

    /// Whether a request would be let through now (used to order candidates).
    pub fn is_healthy(&self, model: &str) -> bool {
        let models = self.models.lock().expect("health lock");
        models.get(model).is_none_or(|h| match h.state {
            BreakerState::Closed => true,
            BreakerState::Open => h.open_until.is_some_and(|t| Instant::now() >= t),
            BreakerState::HalfOpen => !h.probe_in_flight,
        })
    }

    pub fn latency_ms(&self, model: &str) -> Option<f64> {
        self.models.lock().expect("health lock").get(model).and_then(|h| h.latency_ms)
    }
}

/// Exponential backoff with full jitter: a random wait in
/// `[0, min(cap, base · 2^(retry-1))]`, or the provider's `Retry-After`.
pub fn backoff(retry: u32, base: Duration, cap: Duration, retry_after: Option<Duration>, jitter: f64) -> Duration {
    if let Some(wait) = retry_after {
        return wait;
    }
    let exp = base.saturating_mul(1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX));
    exp.min(cap).mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_then_probes_once_after_cooldown() {
        let h = Health::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..2 {
            h.record_failure_at("m", t0);
            assert_eq!(h.state("m"), BreakerState::Closed);
        }
        h.record_failure_at("m", t0);
        assert_eq!(h.state("m"), BreakerState::Open);
        assert_eq!(h.admit_at("m", t0 + Duration::from_secs(5)), Admission::Rejected);
        assert_eq!(h.admit_at("m", t0 + Duration::from_secs(10)), Admission::Probe);
        assert_eq!(h.state("m"), BreakerState::HalfOpen);
        assert_eq!(h.admit_at("m", t0 + Duration::from_secs(10)), Admission::Rejected, "one probe at a time");
        h.record_success("m", Duration::from_millis(100));
        assert_eq!(h.state("m"), BreakerState::Closed);
        assert_eq!(h.admit_at("m", t0 + Duration::from_secs(11)), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let h = Health::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        h.record_failure_at("m", t0);
        assert_eq!(h.admit_at("m", t0 + Duration::from_secs(10)), Admission::Probe);
        h.record_failure_at("m", t0 + Duration::from_secs(10));
        assert_eq!(h.state("m"), BreakerState::Open);
        assert_eq!(h.admit_at("m", t0 + Duration::from_secs(15)), Admission::Rejected);
        assert_eq!(h.admit_at("m", t0 + Duration::from_secs(20)), Admission::Probe);
    }

    #[test]
    fn success_resets_the_failure_count() {
        let h = Health::new(2, Duration::from_secs(10));
        h.record_failure("m");
        h.record_success("m", Duration::from_millis(50));
        h.record_failure("m");
        assert_eq!(h.state("m"), BreakerState::Closed);
        assert_eq!(h.latency_ms("m"), Some(50.0));
    }

    #[test]
    fn backoff_is_bounded_and_honours_retry_after() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_millis(1000);
        assert_eq!(backoff(1, base, cap, None, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(3, base, cap, None, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(10, base, cap, None, 1.0), cap);
        assert_eq!(backoff(40, base, cap, None, 1.0), cap, "no overflow");
        assert_eq!(backoff(3, base, cap, None, 0.5), Duration::from_millis(200));
        assert_eq!(backoff(1, base, cap, None, 0.0), Duration::ZERO);
        assert_eq!(backoff(1, base, cap, Some(Duration::from_secs(2)), 0.3), Duration::from_secs(2));
    }
}
