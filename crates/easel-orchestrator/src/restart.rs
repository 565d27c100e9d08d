//! Why this exists: the restart authority of one worker, as pure logic with time passed
//! in, so that its rules are tested without waiting. The supervisor asks it one question
//! after every failure ("again, after how long, or give up?") and tells it when the worker
//! has been stable. Rules, in order:
//! 1. an exit code listed in `fatal_exit_codes` (78, EX_CONFIG) is FATAL at once;
//! 2. the policy (`never`, `on-failure` with a clean exit) may leave the worker stopped;
//! 3. `max_failures` failures inside `failure_window` are FATAL;
//! 4. otherwise restart after `initial_delay × multiplier^n` (capped at `max_delay`, minus up
//!    to `jitter` of it at random), where `n` counts failures since the last stable period.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{RestartConfig, RestartPolicy};
use crate::duration::Human;
use crate::error::Chain;
use crate::process::SpawnError;

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// From the standard library's status.
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self {
            code: status.code(),
            signal: status.signal(),
        }
    }

    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exited with code {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal} ({})", signal_name(signal)),
            (None, None) => f.write_str("ended (no exit code or signal reported)"),
        }
    }
}

/// SIGKILL's and friends' names, for messages.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// Why an attempt to run a worker ended without being asked to.
#[derive(Debug)]
pub enum Failure {
    /// The process ended.
    Exited(ExitInfo),
    /// It did not become ready within its start timeout (it was killed).
    NotReady(Duration),
    /// It could not be spawned at all.
    SpawnFailed(SpawnError),
    /// Its port was taken by another process before it started.
    PortBusy(u16),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Exited(exit) => exit.fmt(f),
            Failure::NotReady(timeout) => {
                write!(f, "not ready within start_timeout ({}); killed", Human(*timeout))
            }
            Failure::SpawnFailed(why) => write!(f, "could not be started: {}", Chain(why)),
            Failure::PortBusy(port) => write!(
                f,
                "port {port} is already in use by another process (an old worker still running? `ss -ltnp 'sport = :{port}'` shows it)"
            ),
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Start it again after this delay.
    Restart {
        /// The delay.
        delay: Duration,
    },
    /// Give up: FATAL, with the reason shown in status.
    Fatal {
        /// Why.
        reason: String,
    },
    /// Leave it stopped, as its policy asks.
    Leave {
        /// Why.
        reason: String,
    },
}

/// The restart authority of one worker.
#[derive(Debug)]
pub struct RestartTracker {
    config: RestartConfig,
    consecutive: u32,
    window: VecDeque<Instant>,
}

impl RestartTracker {
    /// A tracker with no failures yet.
    pub fn new(config: RestartConfig) -> Self {
        Self {
            config,
            consecutive: 0,
            window: VecDeque::new(),
        }
    }

    /// Decides what follows `failure` at `now`; `random` in [0, 1) draws the jitter.
    pub fn on_failure(&mut self, failure: &Failure, now: Instant, random: f64) -> Verdict {
        if let Some(verdict) = self.by_exit_code_or_policy(failure) {
            return verdict;
        }
        self.window.push_back(now);
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.config.failure_window)
        {
            self.window.pop_front();
        }
        let count = self.window.len();
        if count >= self.config.max_failures as usize {
            return Verdict::Fatal {
                reason: format!(
                    "{count} failures within {}; the last: {failure}",
                    Human(self.config.failure_window)
                ),
            };
        }
        let delay = self.delay(self.consecutive, random);
        self.consecutive = self.consecutive.saturating_add(1);
        Verdict::Restart { delay }
    }

    /// The worker has been ready for `stable_after`: the next delay starts small again.
    pub fn on_stable(&mut self) {
        self.consecutive = 0;
    }

    /// The delay before restart number `n` (0-based) since the last stable period.
    pub fn delay(&self, n: u32, random: f64) -> Duration {
        let c = &self.config;
        let max = c.max_delay.as_secs_f64();
        let exponent = i32::try_from(n).unwrap_or(i32::MAX);
        let base = (c.initial_delay.as_secs_f64() * c.multiplier.powi(exponent)).min(max);
        let jittered = base * (1.0 - c.jitter * random.clamp(0.0, 1.0));
        Duration::from_secs_f64(jittered.clamp(0.0, max))
    }

    fn by_exit_code_or_policy(&self, failure: &Failure) -> Option<Verdict> {
        if let Failure::Exited(ExitInfo { code: Some(code), .. }) = failure {
            if self.config.fatal_exit_codes.contains(code) {
                return Some(Verdict::Fatal {
                    reason: format!(
                        "exited with code {code}, which means a configuration error: not restarted; fix the worker's configuration, then reload (SIGHUP)"
                    ),
                });
            }
        }
        let clean = matches!(failure, Failure::Exited(e) if e.success());
        match (self.config.policy, clean) {
            (RestartPolicy::Never, true) | (RestartPolicy::OnFailure, true) => Some(Verdict::Leave {
                reason: format!(
                    "{failure} on its own; restart policy {:?} leaves it stopped",
                    self.config.policy
                ),
            }),
            (RestartPolicy::Never, false) => Some(Verdict::Fatal {
                reason: format!("{failure}; restart policy never: not restarted"),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RestartConfig {
        RestartConfig {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            ..RestartConfig::default()
        }
    }

    fn crash() -> Failure {
        Failure::Exited(ExitInfo {
            code: Some(1),
            signal: None,
        })
    }

    fn delay(verdict: Verdict) -> Duration {
        match verdict {
            Verdict::Restart { delay } => delay,
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_without_jitter() {
        let tracker = RestartTracker::new(config());
        let delays: Vec<u64> = (0..7).map(|n| tracker.delay(n, 0.0).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(tracker.delay(u32::MAX, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_only_shortens_a_delay_by_at_most_its_fraction() {
        let tracker = RestartTracker::new(config());
        assert_eq!(tracker.delay(2, 0.5), Duration::from_secs_f64(4.0 * 0.9));
        assert!(tracker.delay(2, 0.999_999) >= Duration::from_secs_f64(3.2));
    }

    #[test]
    fn consecutive_failures_get_growing_delays() {
        let mut tracker = RestartTracker::new(RestartConfig {
            max_failures: 100,
            ..config()
        });
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..4)
            .map(|i| delay(tracker.on_failure(&crash(), t0 + Duration::from_secs(i), 0.99)))
            .collect();
        assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
    }

    #[test]
    fn a_stable_period_resets_the_delay() {
        let mut tracker = RestartTracker::new(config());
        let t0 = Instant::now();
        tracker.on_failure(&crash(), t0, 0.0);
        tracker.on_failure(&crash(), t0, 0.0);
        assert_eq!(delay(tracker.on_failure(&crash(), t0, 0.0)), Duration::from_secs(4));
        tracker.on_stable();
        assert_eq!(delay(tracker.on_failure(&crash(), t0, 0.0)), Duration::from_secs(1));
    }

    #[test]
    fn max_failures_within_the_window_is_fatal_with_the_reason() {
        let mut tracker = RestartTracker::new(config());
        let t0 = Instant::now();
        for i in 0..4 {
            delay(tracker.on_failure(&crash(), t0 + Duration::from_secs(i), 0.0));
        }
        let verdict = tracker.on_failure(&crash(), t0 + Duration::from_secs(4), 0.0);
        assert_eq!(
            verdict,
            Verdict::Fatal {
                reason: "5 failures within 1m; the last: exited with code 1".into()
            }
        );
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let mut tracker = RestartTracker::new(config());
        let t0 = Instant::now();
        for i in 0..20 {
            // One failure every 20 s: never 5 within 60 s.
            delay(tracker.on_failure(&crash(), t0 + Duration::from_secs(20 * i), 0.0));
        }
    }

    #[test]
    fn exit_code_78_is_fatal_at_once() {
        let mut tracker = RestartTracker::new(config());
        let exit = Failure::Exited(ExitInfo {
            code: Some(78),
            signal: None,
        });
        match tracker.on_failure(&exit, Instant::now(), 0.0) {
            Verdict::Fatal { reason } => assert!(
                reason.contains("code 78") && reason.contains("configuration"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn on_failure_policy_leaves_a_clean_exit_stopped_and_restarts_a_crash() {
        let mut tracker = RestartTracker::new(RestartConfig {
            policy: RestartPolicy::OnFailure,
            ..config()
        });
        let clean = Failure::Exited(ExitInfo {
            code: Some(0),
            signal: None,
        });
        assert!(matches!(
            tracker.on_failure(&clean, Instant::now(), 0.0),
            Verdict::Leave { .. }
        ));
        delay(tracker.on_failure(&crash(), Instant::now(), 0.0));
    }

    #[test]
    fn never_policy_does_not_restart() {
        let mut tracker = RestartTracker::new(RestartConfig {
            policy: RestartPolicy::Never,
            ..config()
        });
        assert!(matches!(
            tracker.on_failure(&crash(), Instant::now(), 0.0),
            Verdict::Fatal { .. }
        ));
    }

    #[test]
    fn always_policy_restarts_a_clean_exit() {
        let mut tracker = RestartTracker::new(config());
        let clean = Failure::Exited(ExitInfo {
            code: Some(0),
            signal: None,
        });
        delay(tracker.on_failure(&clean, Instant::now(), 0.0));
    }

    #[test]
    fn exits_read_as_sentences() {
        assert_eq!(
            ExitInfo {
                code: Some(3),
                signal: None
            }
            .to_string(),
            "exited with code 3"
        );
        assert_eq!(
            ExitInfo {
                code: None,
                signal: Some(9)
            }
            .to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert!(Failure::NotReady(Duration::from_secs(900)).to_string().contains("15m"));
    }

    #[test]
    fn a_spawn_failure_names_the_program_and_the_system_error() {
        let failure = Failure::SpawnFailed(SpawnError::Exec {
            program: "/opt/easel/bin/easel".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        assert_eq!(
            failure.to_string(),
            "could not be started: cannot start /opt/easel/bin/easel: permission denied"
        );
    }
}
