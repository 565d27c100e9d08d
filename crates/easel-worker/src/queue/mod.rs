//! Why this exists: the Python worker `RPOP`ped jobs destructively, so a crash mid-job lost the
//! job without a callback. A [`Queue`] here is at-least-once: [`Queue::lease`] moves a payload
//! atomically to this consumer's in-flight set and counts the delivery; the lease lives while
//! [`Queue::heartbeat`] renews it; [`Queue::reclaim_expired`] (run by every worker) returns the
//! jobs of consumers whose lease ran out; a job ends by [`Queue::ack`], [`Queue::release`]
//! (handed back on shutdown) or [`Queue::dead_letter`]. Producers still `LPUSH <queue> <json>`.
//!
//! Backends: [`sqlite`] (embedded default), [`redis`] over a [`transport`] (native Redis or
//! Upstash REST).

pub mod redis;
pub mod sqlite;
pub mod transport;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{QueueBackend, Secret};
use crate::db::Db;

/// A queue failure, naming the backend.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The backend answered with an error or an unexpected reply.
    #[error("queue {backend}: {msg}")]
    Backend { backend: String, msg: String },
    /// The backend could not be reached.
    #[error("queue {backend} unreachable: {msg}")]
    Unreachable { backend: String, msg: String },
}

/// A leased job.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The payload exactly as pushed.
    pub payload: String,
    /// How many times it has been leased, this time included.
    pub deliveries: u32,
    /// Backend-specific handle (a row id for SQLite).
    pub receipt: String,
}

/// Jobs waiting, in flight and dead-lettered, for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Depth {
    pub queued: u64,
    pub in_flight: u64,
    pub dead: u64,
}

/// An at-least-once job queue, bound to one consumer id (unique per process start).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Backend and queue name for logs, without secrets.
    fn describe(&self) -> String;
    /// This process's consumer id.
    fn consumer(&self) -> &str;
    /// Pushes a payload as producers do (`LPUSH`).
    async fn push(&self, payload: &str) -> Result<(), QueueError>;
    /// Leases the oldest job to this consumer, or `None` when the queue is empty.
    async fn lease(&self) -> Result<Option<Delivery>, QueueError>;
    /// Renews this consumer's leases.
    async fn heartbeat(&self) -> Result<(), QueueError>;
    /// Removes a finished job.
    async fn ack(&self, d: &Delivery) -> Result<(), QueueError>;
    /// Hands a job back to the front of the queue without counting the delivery.
    async fn release(&self, d: &Delivery) -> Result<(), QueueError>;
    /// Moves a job to the dead-letter list with `reason`.
    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), QueueError>;
    /// Returns jobs whose lease expired to the queue; how many.
    async fn reclaim_expired(&self) -> Result<u64, QueueError>;
    /// Current depth.
    async fn depth(&self) -> Result<Depth, QueueError>;
}

/// A consumer id unique to this process start: `{name}-{pid}-{random}`.
pub fn consumer_id(worker_name: &str) -> String {
    format!("{worker_name}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// Opens the configured queue for `consumer`.
pub async fn open(
    backend: &QueueBackend,
    name: &str,
    consumer: String,
    db: &Db,
    lease_ttl: std::time::Duration,
) -> Result<Arc<dyn Queue>, QueueError> {
    Ok(match backend {
        QueueBackend::Sqlite => Arc::new(sqlite::SqliteQueue::new(db.clone(), name, consumer, lease_ttl)),
        QueueBackend::Redis { url } => {
            let t = transport::Native::connect(url).await?;
            Arc::new(redis::RedisQueue::new(Box::new(t), name, consumer, lease_ttl))
        }
        QueueBackend::Upstash { url, token } => {
            let t = transport::Upstash::new(url, token.clone())?;
            Arc::new(redis::RedisQueue::new(Box::new(t), name, consumer, lease_ttl))
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
