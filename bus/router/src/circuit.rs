//! Endpoint health: a circuit breaker per subscription.
//!
//! Every delivery outcome is reported to the subscription's [`Breaker`]. A retryable
//! failure (timeout, connection error, 408/429/5xx …) counts against the endpoint; any
//! answer that shows the endpoint is alive (delivered, or refused for good) resets the
//! count. After [`HealthPolicy::failure_threshold`] consecutive retryable failures the
//! breaker *opens* for [`HealthPolicy::open_for`]: the delivery worker stops calling the
//! endpoint and parks each message in the subscription's retry queue for the rest of the
//! open period, without counting an attempt (an outage does not use up the retry policy
//! and nothing is dead-lettered for it). When the period is over, one delivery is let
//! through as a probe (*half-open*): success closes the breaker and messages flow at
//! full concurrency again; failure opens it again for twice as long, up to
//! [`HealthPolicy::max_open_for`].
//!
//! Time comes from a [`Clock`], so tests drive the state machine without sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now (monotonic).
    fn now(&self) -> Instant;
}

/// The process's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Default [`HealthPolicy::disable_after`]: 5 days, longer than a long weekend plus a
/// month-end close.
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

/// When a subscription's breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive retryable failures that open the breaker (0 = never open).
    pub failure_threshold: u32,
    /// How long the breaker stays open the first time.
    pub open_for: Duration,
    /// Longest open period; each failed probe doubles the period up to this.
    pub max_open_for: Duration,
    /// Disable the endpoint after it has failed continuously (no delivery succeeded or
    /// was refused for good) for this long; zero never disables. See
    /// [`crate::endpoint`].
    pub disable_after: Duration,
}

impl Default for HealthPolicy {
    /// Open after 5 consecutive failures, for 30 s, doubling up to 10 min; disable
    /// after 5 days of continuous failure.
    fn default() -> Self {
        HealthPolicy {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
            max_open_for: Duration::from_secs(600),
            disable_after: DEFAULT_DISABLE_AFTER,
        }
    }
}

impl HealthPolicy {
    /// Problems with the policy's values, each as `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.open_for < civicbus_core::retry::MIN_BACKOFF {
            out.push(("open_for", "must be at least 1s".to_string()));
        }
        if self.max_open_for < self.open_for {
            out.push((
                "max_open_for",
                "must not be shorter than open_for".to_string(),
            ));
        }
        out
    }
}

/// The breaker's state, as reported to tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Deliveries flow.
    Closed {
        /// Consecutive retryable failures so far.
        failures: u32,
    },
    /// No delivery is attempted until `until`.
    Open {
        /// End of the open period.
        until: Instant,
    },
    /// One probe delivery is in flight.
    HalfOpen {
        /// When the probe was let through.
        since: Instant,
    },
}

/// Whether a delivery may call the endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Call the endpoint. `probe` is true for the one delivery that tests a recovering
    /// endpoint.
    Deliver {
        /// This delivery is the half-open probe.
        probe: bool,
    },
    /// Do not call the endpoint; park the message for this long.
    Wait(Duration),
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// Consecutive retryable failures (kept while open, for logs).
    failures: u32,
    /// The current open period (grows while probes fail).
    open_for: Duration,
}

/// The circuit breaker of one endpoint (subscription).
#[derive(Debug)]
pub struct Breaker {
    policy: HealthPolicy,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker with this policy.
    pub fn new(policy: HealthPolicy) -> Self {
        Breaker {
            policy,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed { failures: 0 },
                failures: 0,
                open_for: policy.open_for,
            }),
        }
    }

    /// The policy.
    pub fn policy(&self) -> HealthPolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the state itself is always valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        let g = self.lock();
        match g.state {
            BreakerState::Closed { .. } => BreakerState::Closed {
                failures: g.failures,
            },
            other => other,
        }
    }

    /// Whether a delivery may call the endpoint at `now`.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut g = self.lock();
        match g.state {
            BreakerState::Closed { .. } => Admission::Deliver { probe: false },
            BreakerState::Open { until } if now < until => Admission::Wait(until - now),
            BreakerState::Open { .. } => {
                g.state = BreakerState::HalfOpen { since: now };
                Admission::Deliver { probe: true }
            }
            BreakerState::HalfOpen { since } => {
                // A probe whose outcome never came back (the store or broker failed
                // around it) must not keep the breaker half-open for ever: after another
                // open period, let a new probe through.
                let deadline = since + g.open_for;
                if now >= deadline {
                    g.state = BreakerState::HalfOpen { since: now };
                    Admission::Deliver { probe: true }
                } else {
                    Admission::Wait(deadline - now)
                }
            }
        }
    }

    /// The endpoint answered (delivered, or refused for good): it is alive. Closes the
    /// breaker. Returns `true` if the breaker was not closed before.
    pub fn on_success(&self) -> bool {
        let mut g = self.lock();
        let was_open = !matches!(g.state, BreakerState::Closed { .. });
        g.state = BreakerState::Closed { failures: 0 };
        g.failures = 0;
        g.open_for = self.policy.open_for;
        was_open
    }

    /// A delivery failed with a retryable outcome at `now`. Returns the open period if
    /// this failure opened (or re-opened) the breaker.
    pub fn on_failure(&self, now: Instant, probe: bool) -> Option<Duration> {
        let mut g = self.lock();
        g.failures = g.failures.saturating_add(1);
        match g.state {
            BreakerState::HalfOpen { .. } if probe => {
                let next = g
                    .open_for
                    .saturating_mul(2)
                    .min(self.policy.max_open_for)
                    .max(self.policy.open_for);
                g.open_for = next;
                g.state = BreakerState::Open { until: now + next };
                Some(next)
            }
            BreakerState::Closed { .. }
                if self.policy.failure_threshold > 0
                    && g.failures >= self.policy.failure_threshold =>
            {
                g.open_for = self.policy.open_for;
                g.state = BreakerState::Open {
                    until: now + g.open_for,
                };
                Some(g.open_for)
            }
            // Deliveries that were already in flight when the breaker opened, or that
            // are not the probe, change nothing but the count.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            failure_threshold: 2,
            open_for: Duration::from_secs(10),
            max_open_for: Duration::from_secs(25),
            disable_after: Duration::ZERO,
        }
    }

    #[test]
    fn opens_after_threshold_probes_and_doubles_up_to_the_cap() {
        let b = Breaker::new(policy());
        let t0 = Instant::now();
        assert_eq!(b.admit(t0), Admission::Deliver { probe: false });
        assert_eq!(b.on_failure(t0, false), None);
        assert_eq!(b.on_failure(t0, false), Some(Duration::from_secs(10)));
        assert_eq!(
            b.admit(t0 + Duration::from_secs(4)),
            Admission::Wait(Duration::from_secs(6))
        );
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.admit(t1), Admission::Deliver { probe: true });
        // Only one probe at a time.
        assert!(matches!(b.admit(t1), Admission::Wait(_)));
        assert_eq!(b.on_failure(t1, true), Some(Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(b.admit(t2), Admission::Deliver { probe: true });
        assert_eq!(b.on_failure(t2, true), Some(Duration::from_secs(25)));
        let t3 = t2 + Duration::from_secs(25);
        assert_eq!(b.admit(t3), Admission::Deliver { probe: true });
        assert!(b.on_success());
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert_eq!(b.admit(t3), Admission::Deliver { probe: false });
        // After closing, the period starts over.
        b.on_failure(t3, false);
        assert_eq!(b.on_failure(t3, false), Some(Duration::from_secs(10)));
    }

    #[test]
    fn a_success_resets_the_count_and_zero_never_opens() {
        let b = Breaker::new(policy());
        let t = Instant::now();
        b.on_failure(t, false);
        assert!(!b.on_success());
        assert_eq!(b.on_failure(t, false), None);

        let never = Breaker::new(HealthPolicy {
            failure_threshold: 0,
            ..policy()
        });
        for _ in 0..100 {
            assert_eq!(never.on_failure(t, false), None);
        }
        assert_eq!(never.admit(t), Admission::Deliver { probe: false });
    }

    #[test]
    fn a_lost_probe_is_replaced_after_an_open_period() {
        let b = Breaker::new(policy());
        let t = Instant::now();
        b.on_failure(t, false);
        b.on_failure(t, false);
        let t1 = t + Duration::from_secs(10);
        assert_eq!(b.admit(t1), Admission::Deliver { probe: true });
        assert_eq!(
            b.admit(t1 + Duration::from_secs(10)),
            Admission::Deliver { probe: true }
        );
    }

    #[test]
    fn bad_values_are_reported() {
        let p = HealthPolicy {
            failure_threshold: 3,
            open_for: Duration::ZERO,
            max_open_for: Duration::ZERO,
            disable_after: Duration::ZERO,
        };
        let fields: Vec<&str> = p.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["open_for"]);
        assert!(HealthPolicy::default().problems().is_empty());
    }
}
