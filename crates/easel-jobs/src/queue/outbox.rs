//! Why this exists: a terminal callback must be sent even if the worker that recorded it dies
//! a moment later, possibly on another host. So the callbacks waiting to be sent live beside
//! the outcome records in the queue's own store (the SQLite file, or Redis), queued in the
//! same atomic step that records the outcome, and any worker of the queue may send them.
//!
//! Invariant: a callback is claimed by one sender at a time (for [`CLAIM_SECS`]); it leaves
//! the outbox only when delivered or given up, so a sender that dies mid-send leaves it to be
//! claimed again (the repeat carries the same idempotency key).

use async_trait::async_trait;

use super::QueueError;

/// How long a claimed callback is reserved for its sender: the send timeout (30 s) plus a
/// margin.
pub const CLAIM_SECS: f64 = 60.0;
/// The target of callbacks with no endpoint configured (embedded defaults): the outcome record
/// is the result; "sending" only marks it delivered.
pub const NO_ENDPOINT: &str = "job-table";

/// One terminal callback claimed for an attempt.
#[derive(Clone, Debug)]
pub struct PendingCallback {
    /// The backend's handle (a row id, or the job id).
    pub key: String,
    pub job_id: String,
    /// The exact bytes to send.
    pub body: String,
    /// The callback URL, or [`NO_ENDPOINT`].
    pub target: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum Settle {
    Delivered,
    /// Try again at this Unix time.
    Retry {
        at: f64,
        error: String,
    },
    GaveUp {
        error: String,
    },
}

/// The callbacks waiting to be sent.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims the oldest unclaimed callback (only those due when `due_only`), skipping the
    /// keys in `exclude`, and counts the attempt.
    async fn claim_callback(&self, due_only: bool, exclude: &[String]) -> Result<Option<PendingCallback>, QueueError>;
    /// Records how an attempt ended.
    async fn settle_callback(&self, p: &PendingCallback, s: Settle) -> Result<(), QueueError>;
    /// Callbacks neither delivered nor given up.
    async fn pending_callbacks(&self) -> Result<u64, QueueError>;
    /// When the next one is due (Unix seconds), if any is waiting.
    async fn next_callback_at(&self) -> Result<Option<f64>, QueueError>;
}
