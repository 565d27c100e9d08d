//! Why this exists: storage uploads and callbacks both retry transient failures (429, 5xx,
//! network) with bounded exponential backoff; one policy type keeps the numbers named and in
//! one place. The Python worker never retried, so one hiccup lost a job's images or outcome.

use std::time::Duration;

/// Upload attempts per object: with a 1 s base that is 1+2+4+8 s of waiting, enough to ride
/// out a storage restart without holding a job for minutes.
pub const STORAGE_ATTEMPTS: u32 = 5;
/// Longest wait between upload attempts.
pub const STORAGE_MAX_DELAY: Duration = Duration::from_secs(30);
/// Callback attempts before giving up: with a 1 s base and the 5 min cap, about 40 minutes —
/// the outbox keeps the body, so an edge-function outage that long still loses nothing.
pub const CALLBACK_ATTEMPTS: u32 = 15;
/// Longest wait between callback attempts.
pub const CALLBACK_MAX_DELAY: Duration = Duration::from_secs(300);

/// Bounded exponential backoff: `base · 2^(attempt-1)`, capped, for `max_attempts` attempts.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The storage policy with `base` as the first delay.
    pub fn storage(base: Duration) -> Self {
        Self {
            max_attempts: STORAGE_ATTEMPTS,
            base,
            max_delay: STORAGE_MAX_DELAY,
        }
    }

    /// The callback policy with `base` as the first delay.
    pub fn callback(base: Duration) -> Self {
        Self {
            max_attempts: CALLBACK_ATTEMPTS,
            base,
            max_delay: CALLBACK_MAX_DELAY,
        }
    }

    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base.saturating_mul(factor).min(self.max_delay)
    }

    /// Whether another attempt may follow attempt number `attempt`.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_are_capped() {
        let p = RetryPolicy {
            max_attempts: 4,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(3),
        };
        let d: Vec<_> = (1..=4).map(|a| p.delay(a).as_secs()).collect();
        assert_eq!(d, [1, 2, 3, 3]);
        assert!(p.may_retry(3) && !p.may_retry(4));
    }
}
