//! Why this exists: the Python worker `RPOP`ped jobs destructively, so a crash mid-job lost the
//! job without a callback. A [`Queue`] here is at-least-once delivery with exactly-once
//! outcomes: [`Queue::lease`] moves a payload atomically to this consumer's in-flight set and
//! counts the delivery; the lease lives while [`Queue::heartbeat`] renews it;
//! [`Queue::reclaim_expired`] (run by every worker) returns the jobs of consumers whose lease
//! ran out. A job ends by [`Queue::finish`], which in one atomic step records its terminal
//! callback body as the job's **outcome** (only if it has none yet, shared by every worker of
//! the queue), queues that callback in the [`Outbox`] and removes the in-flight entry — so a
//! job can be run twice after a crash, but only one outcome and one callback ever exist.
//! Other ends: [`Queue::resend`] (a re-pushed job that already has an outcome), [`Queue::ack`]
//! (a redelivery of a job finished elsewhere), [`Queue::release`] (handed back on shutdown) and
//! [`Queue::dead_letter`] (a payload without a readable id). Producers still
//! `LPUSH <queue> <json>`; payloads are bytes end to end.
//!
//! Backends: [`sqlite`] (embedded default), [`redis`] over a [`transport`] (native Redis or
//! Upstash REST).

pub mod control;
pub mod outbox;
pub mod redis;
mod redis_control;
pub mod sqlite;
mod sqlite_control;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::db::Db;
pub use control::{Control, JobState};
use easel_config::{QueueBackend, Secret, WorkerConfig};
pub use outbox::{Outbox, PendingCallback, Settle};

/// A queue failure, naming the backend.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The backend answered with an error or an unexpected reply.
    #[error("queue {backend}: {msg}")]
    Backend { backend: String, msg: String },
    /// The backend could not be reached (worth retrying).
    #[error("queue {backend} unreachable: {msg}")]
    Unreachable { backend: String, msg: String },
}

impl QueueError {
    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unreachable { .. })
    }
}

/// A leased job.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The payload exactly as pushed (bytes: a producer may push anything).
    pub payload: Vec<u8>,
    /// How many times it has been leased, this time included.
    pub deliveries: u32,
    /// Backend-specific handle (a row id for SQLite, the processing list for Redis).
    pub receipt: String,
    /// Backend-specific identity of the payload (its SHA-1 for Redis, so it is removed by
    /// exact bytes without sending them back).
    pub digest: String,
    /// When it was pushed (Unix seconds), where the backend records it (SQLite does; a Redis
    /// list does not, see [`Delivery::queued_at`]).
    pub enqueued_at: Option<f64>,
}

impl Delivery {
    /// When the job was pushed: the backend's record, else a numeric top-level `queued_at`
    /// or `created_at` in the payload (Unix seconds; `easel submit` writes `queued_at`).
    pub fn queued_at(&self) -> Option<f64> {
        self.enqueued_at
            .or_else(|| control::PayloadFacts::of(&self.payload).queued_at)
    }

    /// The payload as text, or why it is not UTF-8.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.payload)
    }
}

/// The end of a job, recorded by [`Queue::finish`].
#[derive(Clone, Debug)]
pub struct Finish<'a> {
    pub job_id: &'a str,
    /// The terminal callback body.
    pub body: &'a str,
    /// Where the callback goes (a URL, or [`outbox::NO_ENDPOINT`]).
    pub target: &'a str,
    /// Set when the job also goes to the dead-letter list (the delivery limit), with why.
    pub dead_reason: Option<&'a str>,
}

/// Whether [`Queue::finish`] recorded a new outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// This outcome is the job's; its callback is queued.
    New,
    /// The job already had an outcome (another run recorded it first); nothing was queued.
    Existing,
}

/// Jobs waiting, in flight and dead-lettered, for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Depth {
    pub queued: u64,
    pub in_flight: u64,
    pub dead: u64,
}

/// An at-least-once job queue with shared outcome records, bound to one consumer id (unique
/// per process start). Its [`Outbox`] holds the terminal callbacks waiting to be sent; its
/// [`Control`] lists, shows, cancels and retries jobs.
#[async_trait]
pub trait Queue: Outbox + Control {
    /// Backend and queue name for logs, without secrets.
    fn describe(&self) -> String;
    /// This process's consumer id.
    fn consumer(&self) -> &str;
    /// Checks that the backend answers (for start-up and `/readyz`).
    async fn ping(&self) -> Result<(), QueueError>;
    /// Pushes a payload as producers do (`LPUSH`).
    async fn push(&self, payload: &[u8]) -> Result<(), QueueError>;
    /// Leases the oldest job to this consumer, or `None` when the queue is empty. A job leased
    /// earlier by this consumer and never ended (its reply was lost) is leased again first.
    async fn lease(&self) -> Result<Option<Delivery>, QueueError>;
    /// Renews this consumer's leases.
    async fn heartbeat(&self) -> Result<(), QueueError>;
    /// The recorded terminal callback body of `job_id`, if it has one.
    async fn outcome(&self, job_id: &str) -> Result<Option<String>, QueueError>;
    /// Records `f` as the job's outcome unless it has one, queues its callback, and removes
    /// the delivery — atomically.
    async fn finish(&self, d: &Delivery, f: Finish<'_>) -> Result<Recorded, QueueError>;
    /// For a job pushed again after it finished: queues its recorded callback again and
    /// removes the delivery, atomically; `false` (nothing changed) if it has no outcome.
    async fn resend(&self, d: &Delivery, job_id: &str) -> Result<bool, QueueError>;
    /// Removes a delivery whose job already has an outcome (a redelivery after a crash).
    async fn ack(&self, d: &Delivery) -> Result<(), QueueError>;
    /// Hands a job back to the front of the queue without counting the delivery.
    async fn release(&self, d: &Delivery) -> Result<(), QueueError>;
    /// Moves a payload without a readable job id to the dead-letter list with `reason`.
    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), QueueError>;
    /// Returns jobs whose lease expired to the queue; how many.
    async fn reclaim_expired(&self) -> Result<u64, QueueError>;
    /// Current depth.
    async fn depth(&self) -> Result<Depth, QueueError>;
    /// Records that a worker has opened this queue (called once at every worker start).
    async fn mark_worker_started(&self) -> Result<(), QueueError>;
    /// When a worker last started on this queue (Unix seconds); `None`: never. `submit` uses
    /// it to say that a job pushed here waits for a worker that has never been seen.
    async fn worker_started(&self) -> Result<Option<f64>, QueueError>;
}

/// A consumer id unique to this process start: `{name}-{pid}-{random}`.
pub fn consumer_id(worker_name: &str) -> String {
    format!("{worker_name}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// What a queue needs besides its backend.
#[derive(Clone, Debug)]
pub struct QueueOptions {
    pub lease_ttl: Duration,
    /// How long outcome records are kept.
    pub outcome_ttl: Duration,
}

impl QueueOptions {
    /// The options a worker's settings give.
    pub fn of(config: &WorkerConfig) -> Self {
        Self {
            lease_ttl: config.timing.lease_ttl,
            outcome_ttl: config.timing.outcome_ttl,
        }
    }
}

/// Opens the configured queue for `consumer`. Nothing is contacted yet: a Redis that is down
/// at start is found by [`Queue::ping`] and every later command, which the caller retries.
pub fn open(
    backend: &QueueBackend,
    name: &str,
    consumer: String,
    db: &Db,
    opts: QueueOptions,
) -> Result<Arc<dyn Queue>, QueueError> {
    Ok(match backend {
        QueueBackend::Sqlite => Arc::new(sqlite::SqliteQueue::new(db.clone(), name, consumer, opts)),
        QueueBackend::Redis { url } => {
            let t = transport::Native::new(url)?;
            Arc::new(redis::RedisQueue::new(Arc::new(t), name, consumer, opts))
        }
        QueueBackend::Upstash { url, token } => {
            let t = transport::Upstash::new(url, token.clone())?;
            Arc::new(redis::RedisQueue::new(Arc::new(t), name, consumer, opts))
        }
    })
}

/// A Redis URL for logs: scheme, host and port, never the password.
pub fn redact_url(url: &Secret) -> String {
    let u = url.expose();
    let (scheme, rest) = u.split_once("://").unwrap_or(("redis", u));
    let host = rest.rsplit('@').next().unwrap_or(rest);
    format!("{scheme}://{}", host.split('/').next().unwrap_or(host))
}

/// Runs `op` until it succeeds, fails for good, or the retry budget of
/// [`crate::retry::RetryPolicy::queue`] is spent; connection errors are retried with jittered
/// backoff (a Redis restart costs the first command after it).
pub async fn retrying<T, F, Fut>(what: &str, budget: Duration, mut op: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
{
    let policy = crate::retry::RetryPolicy::queue(budget);
    let started = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_transient() && policy.may_retry(attempt, started.elapsed()) => {
                let delay = policy.delay(attempt);
                tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %e, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
