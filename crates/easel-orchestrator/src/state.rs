//! Why this exists: a worker's lifecycle, and the one function allowed to move it.
//!
//! ```text
//!   Pending ──▶ Starting ──ready──▶ Running
//!                 ▲  │                 │
//!       backoff   │  ├─exit/timeout────┤
//!       elapsed   │  ▼                 ▼
//!               Backoff ◀──────────────┘   (restart policy says "again")
//!  Starting/Running ──▶ Fatal       (too many failures, or a "configuration error" exit)
//!  Starting/Running ──▶ Stopping ──▶ Stopped   (stop requested)
//!  Pending/Backoff  ──▶ Stopped                 (stop requested, nothing running)
//!  Starting/Running ──▶ Stopped                 (exited and the policy says "leave it")
//!  PreflightFailed: set at creation, never left (a SIGHUP reload makes a new worker).
//! ```
//! Stopped, Fatal and PreflightFailed are terminal for one supervisor; a reload replaces
//! the supervisor rather than reviving a state.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a worker is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Configured and preflighted; waiting for its turn in the start order.
    Pending,
    /// Spawned; waiting for its readiness check.
    Starting,
    /// Ready.
    Running,
    /// Exited or failed to start; waiting out the restart delay.
    Backoff,
    /// SIGTERM sent; waiting for the process group to exit (SIGKILL after the grace).
    Stopping,
    /// Not running, on purpose.
    Stopped,
    /// Given up on: too many failures, or a configuration error. The reason says which.
    Fatal,
    /// Failed its preflight; never started.
    PreflightFailed,
}

impl WorkerState {
    /// Every state, in lifecycle order (for metrics).
    pub const ALL: [WorkerState; 8] = [
        WorkerState::Pending,
        WorkerState::Starting,
        WorkerState::Running,
        WorkerState::Backoff,
        WorkerState::Stopping,
        WorkerState::Stopped,
        WorkerState::Fatal,
        WorkerState::PreflightFailed,
    ];

    /// The snake_case name used in JSON, metrics and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Pending => "pending",
            WorkerState::Starting => "starting",
            WorkerState::Running => "running",
            WorkerState::Backoff => "backoff",
            WorkerState::Stopping => "stopping",
            WorkerState::Stopped => "stopped",
            WorkerState::Fatal => "fatal",
            WorkerState::PreflightFailed => "preflight_failed",
        }
    }

    /// No process will run again under this supervisor.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkerState::Stopped | WorkerState::Fatal | WorkerState::PreflightFailed
        )
    }

    /// The start order may move on: the worker is ready, or will not become ready.
    pub fn is_settled(self) -> bool {
        self == WorkerState::Running || self.is_terminal()
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A move the lifecycle does not allow (a bug in the caller, reported rather than obeyed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal worker state change {from} → {to}")]
pub struct IllegalTransition {
    /// The current state.
    pub from: WorkerState,
    /// The refused state.
    pub to: WorkerState,
}

/// The only way a worker's state changes: returns `to` if the move is legal.
pub fn transition(from: WorkerState, to: WorkerState) -> Result<WorkerState, IllegalTransition> {
    use WorkerState::*;
    let legal = match from {
        Pending => matches!(to, Starting | Stopped),
        Starting => matches!(to, Running | Backoff | Fatal | Stopping | Stopped),
        Running => matches!(to, Backoff | Fatal | Stopping | Stopped),
        Backoff => matches!(to, Starting | Stopped),
        Stopping => matches!(to, Stopped),
        Stopped | Fatal | PreflightFailed => false,
    };
    if legal {
        Ok(to)
    } else {
        Err(IllegalTransition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerState::*;
    use super::*;

    #[test]
    fn a_worker_goes_through_its_normal_life() {
        let mut state = Pending;
        for next in [Starting, Running, Backoff, Starting, Running, Stopping, Stopped] {
            state = transition(state, next).unwrap();
        }
        assert_eq!(state, Stopped);
    }

    #[test]
    fn a_failing_worker_ends_fatal_from_starting_or_running() {
        assert_eq!(transition(Starting, Fatal), Ok(Fatal));
        assert_eq!(transition(Running, Fatal), Ok(Fatal));
    }

    #[test]
    fn terminal_states_are_never_left() {
        for from in [Stopped, Fatal, PreflightFailed] {
            for to in WorkerState::ALL {
                assert_eq!(
                    transition(from, to),
                    Err(IllegalTransition { from, to }),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn nothing_runs_without_passing_through_starting() {
        for from in WorkerState::ALL {
            if from != Starting {
                assert!(transition(from, Running).is_err(), "{from} → running");
            }
        }
    }

    #[test]
    fn a_stop_in_progress_only_ends_stopped() {
        for to in WorkerState::ALL {
            assert_eq!(transition(Stopping, to).is_ok(), to == Stopped, "stopping → {to}");
        }
    }

    #[test]
    fn backoff_cannot_jump_to_running_or_fatal() {
        assert!(transition(Backoff, Running).is_err());
        assert!(transition(Backoff, Fatal).is_err());
        assert!(transition(Backoff, Stopping).is_err());
    }

    #[test]
    fn self_transitions_are_illegal() {
        for state in WorkerState::ALL {
            assert!(transition(state, state).is_err(), "{state} → {state}");
        }
    }

    #[test]
    fn the_error_names_both_states() {
        let e = transition(Fatal, Starting).unwrap_err();
        assert_eq!(e.to_string(), "illegal worker state change fatal → starting");
    }
}
