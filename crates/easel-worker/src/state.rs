//! Why this exists: a job and a worker each move through a small set of states, and every
//! move goes through one function ([`JobState::move_to`], [`WorkerPhase::move_to`]) that
//! rejects illegal moves — so "acknowledged before its callback was stored" or "ready while
//! draining" is a loud bug, not a silent one. `/readyz` is derived from [`WorkerPhase`].

use std::fmt;

/// An illegal state change (a bug in the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal {what} state change: {from} → {to}")]
pub struct IllegalMove {
    pub what: &'static str,
    pub from: String,
    pub to: String,
}

/// Where a leased job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Leased from the queue, not yet read.
    Leased,
    /// Payload read and validated.
    Accepted,
    /// The engine is running.
    Generating,
    /// Images are being encoded and uploaded.
    Uploading,
    /// The terminal callback body is stored in the outbox.
    Recorded,
    /// The lease is acknowledged: the job is done.
    Acked,
    /// Handed back to the queue (shutdown).
    Released,
    /// Moved to the dead-letter list.
    DeadLettered,
}

impl JobState {
    /// Whether `self → next` is a legal move.
    pub fn can_move_to(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Leased, Accepted | Recorded | DeadLettered | Released | Acked)
                | (Accepted, Generating | Recorded | Released)
                | (Generating, Uploading | Recorded | Released)
                | (Uploading, Recorded | Released)
                | (Recorded, Acked | DeadLettered)
        )
    }

    /// Moves to `next`, or says why it cannot.
    pub fn move_to(&mut self, next: JobState) -> Result<(), IllegalMove> {
        if !self.can_move_to(next) {
            return Err(IllegalMove {
                what: "job",
                from: self.to_string(),
                to: next.to_string(),
            });
        }
        *self = next;
        Ok(())
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where the worker is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerPhase {
    /// Backends being opened.
    Starting,
    /// The model is loading.
    Loading,
    /// Taking jobs (`/readyz` answers 200).
    Ready,
    /// Shutdown requested: no new jobs; the running one finishes or is handed back.
    Draining,
    /// Done.
    Stopped,
}

impl WorkerPhase {
    /// Whether `self → next` is a legal move.
    pub fn can_move_to(self, next: WorkerPhase) -> bool {
        use WorkerPhase::*;
        matches!(
            (self, next),
            (Starting, Loading | Draining) | (Loading, Ready | Draining) | (Ready, Draining) | (Draining, Stopped)
        )
    }

    /// Moves to `next`, or says why it cannot.
    pub fn move_to(&mut self, next: WorkerPhase) -> Result<(), IllegalMove> {
        if !self.can_move_to(next) {
            return Err(IllegalMove {
                what: "worker",
                from: format!("{self:?}"),
                to: format!("{next:?}"),
            });
        }
        *self = next;
        Ok(())
    }

    /// The word `/readyz` and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerPhase::Starting => "starting",
            WorkerPhase::Loading => "loading",
            WorkerPhase::Ready => "ready",
            WorkerPhase::Draining => "draining",
            WorkerPhase::Stopped => "stopped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_cannot_be_acked_before_its_callback_is_recorded() {
        let mut s = JobState::Leased;
        s.move_to(JobState::Accepted).unwrap();
        s.move_to(JobState::Generating).unwrap();
        assert!(s.move_to(JobState::Acked).is_err());
        s.move_to(JobState::Uploading).unwrap();
        s.move_to(JobState::Recorded).unwrap();
        s.move_to(JobState::Acked).unwrap();
        assert!(s.move_to(JobState::Leased).is_err());
    }

    #[test]
    fn a_draining_worker_never_becomes_ready_again() {
        let mut p = WorkerPhase::Starting;
        p.move_to(WorkerPhase::Loading).unwrap();
        p.move_to(WorkerPhase::Ready).unwrap();
        p.move_to(WorkerPhase::Draining).unwrap();
        assert!(p.move_to(WorkerPhase::Ready).is_err());
        p.move_to(WorkerPhase::Stopped).unwrap();
    }
}
