//! Why this exists: operators must see into the queue and act on one job — list what waits,
//! runs, failed or finished; show one job; cancel it; put a dead letter back; purge old dead
//! letters — without a database shell, the same way on every backend. Workers publish what
//! they run (phase, step i of n) through the same trait and check it for a cancel request.

use std::time::Duration;

use async_trait::async_trait;

use super::{Delivery, QueueError};

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting in the queue.
    Queued,
    /// Leased by a worker.
    Running,
    /// Has an outcome (completed or failed; cancelled and timed-out jobs are failed).
    Done,
    /// In the dead-letter list.
    Dead,
}

impl JobState {
    /// The name `easel jobs` prints and takes.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "queued" => Ok(JobState::Queued),
            "running" => Ok(JobState::Running),
            "done" => Ok(JobState::Done),
            "dead" => Ok(JobState::Dead),
            other => Err(format!(
                "{other:?} is not a job state: use queued, running, done or dead"
            )),
        }
    }
}

/// What a running job is doing.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// `fetching_reference`, `encoding`, `denoising`, `decoding` or `uploading`.
    pub phase: String,
    /// Step `step` of `total` while denoising (0 of 0 otherwise).
    pub step: u32,
    pub total: u32,
    /// Unix seconds of this report.
    pub updated_at: f64,
}

/// One job as `easel jobs list` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    /// `None` for a payload without a readable id (dead letters only).
    pub id: Option<String>,
    pub state: JobState,
    pub job_type: Option<String>,
    pub user_id: Option<String>,
    /// The consumer holding it (running jobs).
    pub worker: Option<String>,
    pub progress: Option<Progress>,
    /// Unix seconds: pushed (queued), started (running), finished (done, dead); `None` where
    /// the backend does not know.
    pub since: Option<f64>,
    /// Deliveries so far.
    pub attempts: u32,
    /// Why it was dead-lettered.
    pub dead_reason: Option<String>,
}

/// One job as `easel jobs show` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobDetail {
    pub row: JobRow,
    /// The payload as pushed (the caller masks secrets before printing).
    pub payload: Option<String>,
    /// The terminal callback body, once there is one.
    pub outcome: Option<String>,
    /// The delivery of that callback.
    pub callback: Option<CallbackState>,
    /// The states it went through, oldest first, as far as the backend records them.
    pub history: Vec<Event>,
}

/// One state change of a job.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `queued`, `running`, `done` or `dead`.
    pub state: &'static str,
    /// Unix seconds.
    pub at: f64,
    /// The worker, for `running`.
    pub by: Option<String>,
}

impl Event {
    /// An event, if its time is known.
    pub fn at(state: &'static str, at: Option<f64>, by: Option<String>) -> Option<Self> {
        Some(Self { state, at: at?, by })
    }
}

/// Where a job's terminal callback stands.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackState {
    pub attempts: u32,
    pub delivered_at: Option<f64>,
    pub given_up_at: Option<f64>,
    pub last_error: Option<String>,
}

/// What [`Control::cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelResult {
    /// The job was still queued: removed, its `cancelled` outcome recorded and its callback queued.
    Removed,
    /// The job is running: the worker holding it stops it within a step and reports it.
    Requested,
    /// The job already has an outcome.
    Finished,
    /// No job with this id is known.
    Unknown,
}

/// What [`Control::retry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryResult {
    /// The dead letter is back on the queue, its delivery count and outcome cleared.
    Requeued,
    /// No dead letter has this id.
    NotDead,
}

/// The terminal outcome a cancel records for a job that never started.
pub struct CancelOutcome<'a> {
    /// The callback body, built by the caller from the payload.
    pub body: &'a (dyn Fn(&[u8]) -> String + Send + Sync),
    /// Where the callback goes.
    pub target: &'a str,
}

/// Job control over a queue backend. Listing is bounded: at most `limit` jobs per state.
#[async_trait]
pub trait Control {
    /// Jobs in `state` (all states when `None`), newest first within a state.
    async fn list(&self, state: Option<JobState>, limit: usize) -> Result<Vec<JobRow>, QueueError>;
    /// One job by id.
    async fn show(&self, id: &str) -> Result<Option<JobDetail>, QueueError>;
    /// Cancels job `id`: a queued job is removed and ends with `outcome`; a running one is
    /// marked for its worker.
    async fn cancel(&self, id: &str, outcome: CancelOutcome<'_>) -> Result<CancelResult, QueueError>;
    /// Puts dead letter `id` back on the queue.
    async fn retry(&self, id: &str) -> Result<RetryResult, QueueError>;
    /// Removes dead letters older than `older_than` (all when `None`); returns how many.
    async fn purge_dead(&self, older_than: Option<Duration>) -> Result<u64, QueueError>;

    /// Worker side: job `id` of delivery `d` has started here.
    async fn running(
        &self,
        d: &Delivery,
        id: &str,
        job_type: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<(), QueueError>;
    /// Worker side: what job `id` is doing now.
    async fn progress(&self, id: &str, p: &Progress) -> Result<(), QueueError>;
    /// Worker side: whether someone asked to cancel job `id`.
    async fn cancel_requested(&self, id: &str) -> Result<bool, QueueError>;
    /// Worker side: job `id` has ended here (its progress record and cancel mark are dropped).
    async fn ended(&self, id: &str) -> Result<(), QueueError>;
}

/// What job control reads from a payload, parsed once: its id (strictly, or by the lenient
/// scan), type, user and push time (a numeric top-level `queued_at` or `created_at`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PayloadFacts {
    pub id: Option<String>,
    pub job_type: Option<String>,
    pub user_id: Option<String>,
    pub queued_at: Option<f64>,
}

impl PayloadFacts {
    /// The facts of `payload`; whatever cannot be read is `None`.
    pub fn of(payload: &[u8]) -> Self {
        let Ok(text) = std::str::from_utf8(payload) else {
            return Self::default();
        };
        match crate::contract::parse(text) {
            Ok(env) => {
                let text_of = |names: &[&str]| env.field(names).and_then(|v| v.as_str()).map(str::to_string);
                Self {
                    job_type: env.job_type_text(),
                    user_id: text_of(&["user_id", "userId"]),
                    queued_at: env.field(&["queued_at", "created_at"]).and_then(|v| v.as_f64()),
                    id: Some(env.id),
                }
            }
            Err(unreadable) => Self {
                id: unreadable.id,
                ..Self::default()
            },
        }
    }
}

/// The job id of a payload, if one can be read (for building a cancel outcome).
pub fn payload_id(payload: &[u8]) -> Option<String> {
    PayloadFacts::of(payload).id
}
