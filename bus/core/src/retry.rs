//! Retry policy: how long a failed delivery waits before the next attempt, and when the
//! bus gives up and dead-letters it.
//!
//! Backoff is exponential (`initial_backoff × multiplier^(n-1)`, capped at `max_backoff`)
//! with jitter. The jitter is derived from the delivery's idempotency key and attempt
//! number, so it spreads a burst of failures evenly yet is reproducible in tests and needs
//! no random number generator. A subscriber's `Retry-After` replaces the computed delay
//! (capped at `max_backoff`). Waits are never longer than what is left of `max_age`.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::ports::DeadLetterReason;

/// A subscription's retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Most attempts in all (the first one included); then the delivery is dead-lettered.
    pub max_attempts: u32,
    /// Longest time from acceptance of the event to the last attempt.
    pub max_age: Duration,
    /// Wait after the first failed attempt.
    pub initial_backoff: Duration,
    /// Longest single wait.
    pub max_backoff: Duration,
    /// Growth of the wait per attempt (1.0 = constant).
    pub multiplier: f64,
    /// Fraction of the wait randomised either way (0.0–1.0; 0.2 = ±20 %).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 15 attempts over at most 3 days: waits of about 5 s, 20 s, 80 s, 5 min, 21 min,
    /// 85 min, 5.7 h, 22.8 h, then 24 h, each ±20 %.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 15,
            max_age: Duration::from_secs(72 * 3600),
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(24 * 3600),
            multiplier: 4.0,
            jitter: 0.2,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this wait.
    RetryAfter(Duration),
    /// Stop: dead-letter the delivery for this reason.
    GiveUp(DeadLetterReason),
}

/// Shortest wait the bus schedules (RabbitMQ's TTL granularity makes less pointless).
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);

impl RetryPolicy {
    /// Problems with the policy's values, each as `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_attempts == 0 {
            out.push(("max_attempts", "must be at least 1".to_string()));
        }
        if self.max_age.is_zero() {
            out.push((
                "max_age",
                "must be longer than 0s, e.g. \"72h\"".to_string(),
            ));
        }
        if self.initial_backoff < MIN_BACKOFF {
            out.push(("initial_backoff", "must be at least 1s".to_string()));
        }
        if self.max_backoff < self.initial_backoff {
            out.push((
                "max_backoff",
                "must not be shorter than initial_backoff".to_string(),
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0 && self.multiplier <= 100.0) {
            out.push(("multiplier", "must be between 1.0 and 100.0".to_string()));
        }
        if !(self.jitter.is_finite() && (0.0..=1.0).contains(&self.jitter)) {
            out.push(("jitter", "must be between 0.0 and 1.0".to_string()));
        }
        out
    }

    /// The wait after failed attempt number `attempt` (from 1), before jitter.
    pub fn base_backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exp);
        let capped = secs.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(capped.max(MIN_BACKOFF.as_secs_f64()))
    }

    /// Decide what follows failed attempt `attempt` (from 1) of the delivery `key`, made
    /// `age` after the event was accepted, given the subscriber's `Retry-After`, if any.
    pub fn decide(
        &self,
        key: &str,
        attempt: u32,
        age: Duration,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        if attempt >= self.max_attempts {
            return RetryDecision::GiveUp(DeadLetterReason::AttemptsExhausted);
        }
        let Some(left) = self.max_age.checked_sub(age).filter(|l| !l.is_zero()) else {
            return RetryDecision::GiveUp(DeadLetterReason::MaxAgeExceeded);
        };
        let wait = match retry_after {
            Some(ra) => ra.min(self.max_backoff),
            None => {
                let base = self.base_backoff(attempt).as_secs_f64();
                let spread = self.jitter * (2.0 * unit(key, attempt) - 1.0);
                Duration::from_secs_f64((base * (1.0 + spread)).max(MIN_BACKOFF.as_secs_f64()))
            }
        };
        RetryDecision::RetryAfter(wait.max(MIN_BACKOFF).min(left.max(MIN_BACKOFF)))
    }
}

/// A number in [0, 1) derived from the key and attempt.
fn unit(key: &str, attempt: u32) -> f64 {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(attempt.to_be_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn default_schedule_grows_then_caps() {
        let p = policy();
        let secs: Vec<u64> = (1..=10).map(|n| p.base_backoff(n).as_secs()).collect();
        assert_eq!(
            secs,
            [5, 20, 80, 320, 1280, 5120, 20480, 81920, 86400, 86400]
        );
        assert!(p.problems().is_empty());
    }

    #[test]
    fn gives_up_after_max_attempts_or_max_age() {
        let p = policy();
        assert_eq!(
            p.decide("k", 15, Duration::ZERO, None),
            RetryDecision::GiveUp(DeadLetterReason::AttemptsExhausted)
        );
        assert_eq!(
            p.decide("k", 2, Duration::from_secs(72 * 3600), None),
            RetryDecision::GiveUp(DeadLetterReason::MaxAgeExceeded)
        );
        // Never waits past max_age.
        assert_eq!(
            p.decide("k", 9, Duration::from_secs(72 * 3600 - 60), None),
            RetryDecision::RetryAfter(Duration::from_secs(60))
        );
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let p = policy();
        assert_eq!(
            p.decide("k", 1, Duration::ZERO, Some(Duration::from_secs(120))),
            RetryDecision::RetryAfter(Duration::from_secs(120))
        );
        let capped = RetryPolicy {
            max_backoff: Duration::from_secs(60),
            ..p
        };
        assert_eq!(
            capped.decide("k", 1, Duration::ZERO, Some(Duration::from_secs(3600))),
            RetryDecision::RetryAfter(Duration::from_secs(60))
        );
    }

    #[test]
    fn jitter_stays_in_bounds_is_stable_and_spreads() {
        let p = RetryPolicy::default();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let key = format!("msg_{i}");
            let RetryDecision::RetryAfter(d) = p.decide(&key, 3, Duration::ZERO, None) else {
                panic!("retries");
            };
            assert!(
                d >= Duration::from_secs(64) && d <= Duration::from_secs(96),
                "{d:?}"
            );
            assert_eq!(
                p.decide(&key, 3, Duration::ZERO, None),
                RetryDecision::RetryAfter(d)
            );
            seen.insert(d.as_secs());
        }
        assert!(seen.len() > 20, "jitter spreads the waits");
    }

    #[test]
    fn bad_values_are_reported() {
        let p = RetryPolicy {
            max_attempts: 0,
            max_age: Duration::ZERO,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            multiplier: 0.5,
            jitter: 2.0,
        };
        let fields: Vec<&str> = p.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "max_attempts",
                "max_age",
                "initial_backoff",
                "multiplier",
                "jitter"
            ]
        );
    }
}
