//! Why this exists: storage uploads, callbacks and queue commands all retry transient failures
//! (429, 5xx, network, a Redis reconnect); one policy type keeps the numbers named and in one
//! place. Delays are "full jitter" (uniform in `[0, min(cap, base·2^(n-1))]`), so workers that
//! failed together do not retry together. A policy ends after a number of attempts, after a
//! time budget, or both. The Python worker never retried, so one hiccup lost a job's images.

use std::time::Duration;

/// Longest wait between upload attempts: short, so an upload resumes within seconds of the
/// store coming back.
pub const STORAGE_MAX_DELAY: Duration = Duration::from_secs(8);
/// Callback attempts before giving up: with a 1 s base and the 5 min cap, about 40 minutes of
/// expected waiting — the outbox keeps the body, so an edge-function outage that long still
/// loses nothing.
pub const CALLBACK_ATTEMPTS: u32 = 15;
/// Longest wait between callback attempts.
pub const CALLBACK_MAX_DELAY: Duration = Duration::from_secs(300);
/// First delay of queue-command retries: a Redis reconnect takes milliseconds.
pub const QUEUE_BASE_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between queue-command retries (and reconnect attempts at start): the worker
/// is ready within this of the queue coming back.
pub const QUEUE_MAX_DELAY: Duration = Duration::from_secs(2);

/// Whether an HTTP status is worth retrying: rate limits, timeouts and server errors (shared by
/// uploads, callbacks and the Upstash REST queue).
pub fn retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status)
}

/// Exponential backoff with full jitter, bounded by attempts and/or elapsed time.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (`None`: only the budget bounds it).
    pub max_attempts: Option<u32>,
    /// Longest time from the first attempt after which no retry starts (`None`: unbounded).
    pub budget: Option<Duration>,
    pub base: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The upload policy: retries for `budget` with `base` as the first delay ceiling.
    pub fn storage(base: Duration, budget: Duration) -> Self {
        Self {
            max_attempts: None,
            budget: Some(budget),
            base,
            max_delay: STORAGE_MAX_DELAY,
        }
    }

    /// The callback policy with `base` as the first delay ceiling.
    pub fn callback(base: Duration) -> Self {
        Self {
            max_attempts: Some(CALLBACK_ATTEMPTS),
            budget: None,
            base,
            max_delay: CALLBACK_MAX_DELAY,
        }
    }

    /// The queue-command policy: retries for `budget`.
    pub fn queue(budget: Duration) -> Self {
        Self {
            max_attempts: None,
            budget: Some(budget),
            base: QUEUE_BASE_DELAY,
            max_delay: QUEUE_MAX_DELAY,
        }
    }

    /// The ceiling of the delay after failed attempt number `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base.saturating_mul(factor).min(self.max_delay)
    }

    /// A random delay in `[0, ceiling(attempt)]` (full jitter).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(rand::random::<f64>())
    }

    /// Whether another attempt may follow attempt number `attempt`, `elapsed` after the first.
    pub fn may_retry(&self, attempt: u32, elapsed: Duration) -> bool {
        self.max_attempts.is_none_or(|m| attempt < m) && self.budget.is_none_or(|b| elapsed < b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_below_a_doubling_capped_ceiling() {
        let p = RetryPolicy {
            max_attempts: Some(4),
            budget: None,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(3),
        };
        let c: Vec<_> = (1..=4).map(|a| p.ceiling(a).as_secs()).collect();
        assert_eq!(c, [1, 2, 3, 3]);
        let d: Vec<_> = (0..200).map(|_| p.delay(3)).collect();
        assert!(d.iter().all(|x| *x <= Duration::from_secs(3)));
        let distinct: std::collections::BTreeSet<_> = d.iter().map(Duration::as_millis).collect();
        assert!(distinct.len() > 50, "delays are spread, not equal: {distinct:?}");
        assert!(p.may_retry(3, Duration::ZERO) && !p.may_retry(4, Duration::ZERO));
    }

    #[test]
    fn a_budget_ends_retries_by_time_not_count() {
        let p = RetryPolicy::storage(Duration::from_secs(1), Duration::from_secs(60));
        assert!(p.may_retry(1000, Duration::from_secs(59)));
        assert!(!p.may_retry(2, Duration::from_secs(60)));
    }
}
