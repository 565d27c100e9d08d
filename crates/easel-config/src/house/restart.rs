//! Why this exists: `[workers.restart]`, how fast and how often a supervised worker that
//! exits on its own is started again, with every default stated once next to its reason.

use std::time::Duration;

use serde::Deserialize;

use crate::consts::EXIT_CONFIG;
use crate::duration;

/// First restart delay: a crash is retried quickly once.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_secs(1);
/// Cap on the restart delay: a broken worker is still retried every minute at most.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);
/// Each consecutive failure doubles the delay.
pub const DEFAULT_MULTIPLIER: f64 = 2.0;
/// Up to 20% of each delay is random, so workers that fail together do not retry together.
pub const DEFAULT_JITTER: f64 = 0.2;
/// A worker that stayed ready this long is healthy again: its delay goes back to the start.
pub const DEFAULT_STABLE_AFTER: Duration = Duration::from_secs(60);
/// This many failures inside the window make a worker FATAL instead of crash-looping.
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// The window in which failures are counted.
pub const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// When a worker is restarted after it exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Every exit is restarted (a queue worker is meant to run until told to stop).
    Always,
    /// Only exits with a non-zero code or a signal are restarted.
    OnFailure,
    /// Never restarted.
    Never,
}

/// `[workers.restart]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestartConfig {
    /// `always` (default), `on-failure` or `never`.
    pub policy: RestartPolicy,
    /// Delay before the first restart.
    #[serde(deserialize_with = "duration::deserialize")]
    pub initial_delay: Duration,
    /// Cap on the delay.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_delay: Duration,
    /// Growth of the delay per consecutive failure.
    pub multiplier: f64,
    /// Fraction of each delay that is random, in [0, 1).
    pub jitter: f64,
    /// Ready for this long resets the delay to `initial_delay`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub stable_after: Duration,
    /// FATAL after this many failures within `failure_window`.
    pub max_failures: u32,
    /// The window in which failures are counted.
    #[serde(deserialize_with = "duration::deserialize")]
    pub failure_window: Duration,
    /// Exit codes that mean "configuration error": FATAL at once (default `[78]`).
    pub fatal_exit_codes: Vec<i32>,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::Always,
            initial_delay: DEFAULT_INITIAL_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            multiplier: DEFAULT_MULTIPLIER,
            jitter: DEFAULT_JITTER,
            stable_after: DEFAULT_STABLE_AFTER,
            max_failures: DEFAULT_MAX_FAILURES,
            failure_window: DEFAULT_FAILURE_WINDOW,
            fatal_exit_codes: vec![i32::from(EXIT_CONFIG)],
        }
    }
}

impl RestartConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(format!(
                "restart.multiplier = {} must be at least 1.0 (2.0 doubles each delay)",
                self.multiplier
            ));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(format!("restart.jitter = {} must be in [0, 1), e.g. 0.2", self.jitter));
        }
        if self.initial_delay > self.max_delay {
            return Err(format!(
                "restart.initial_delay ({}) is longer than restart.max_delay ({})",
                duration::Human(self.initial_delay),
                duration::Human(self.max_delay)
            ));
        }
        if self.max_failures == 0 {
            return Err("restart.max_failures must be at least 1".into());
        }
        Ok(())
    }
}
