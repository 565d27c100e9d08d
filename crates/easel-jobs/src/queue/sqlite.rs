//! Why this exists: the embedded default queue, so a fresh clone runs jobs with no services.
//! Jobs are rows of the `jobs` table; a lease is `state = 'leased'` with a `lease_until` that
//! heartbeats push forward; an expired lease is taken over by the next `lease` of any worker
//! (and by `reclaim_expired`). A job's outcome is a row of `outcomes` (one per queue and job
//! id); [`Queue::finish`] writes it, its `outbox` row and the job row's end in one
//! transaction. Finished rows keep their outcome, for `easel submit --wait`. Payloads are
//! stored as given (a BLOB when they are not text).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

use super::control::PayloadFacts;
use super::outbox::{Outbox, PendingCallback, Settle, CLAIM_SECS};
use super::{Delivery, Depth, Finish, Queue, QueueError, QueueOptions, Recorded};
use crate::db::{now, Db, DbError};

/// The embedded queue.
pub struct SqliteQueue {
    db: Db,
    name: String,
    consumer: String,
    opts: QueueOptions,
}

impl SqliteQueue {
    /// A queue named `name` in `db`, consuming as `consumer`.
    pub fn new(db: Db, name: &str, consumer: String, opts: QueueOptions) -> Self {
        Self {
            db,
            name: name.to_string(),
            consumer,
            opts,
        }
    }

    /// The queue's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The database.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn err(&self, e: DbError) -> QueueError {
        QueueError::Backend {
            backend: self.describe(),
            msg: e.to_string(),
        }
    }

    fn seq(d: &Delivery) -> i64 {
        d.receipt.parse().unwrap_or(-1)
    }

    fn lease_ttl(&self) -> Duration {
        self.opts.lease_ttl
    }
}

/// A payload column as bytes, whether it was stored as TEXT or BLOB.
pub(crate) fn bytes_of(v: ValueRef<'_>) -> rusqlite::Result<Vec<u8>> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => Ok(b.to_vec()),
        other => Err(rusqlite::Error::InvalidColumnType(
            0,
            "payload".into(),
            other.data_type(),
        )),
    }
}

/// Stores `payload` as TEXT when it is UTF-8 (readable with `sqlite3`), else as a BLOB.
fn payload_value(payload: &[u8]) -> rusqlite::types::Value {
    match std::str::from_utf8(payload) {
        Ok(t) => rusqlite::types::Value::Text(t.to_string()),
        Err(_) => rusqlite::types::Value::Blob(payload.to_vec()),
    }
}

/// Ends job row `seq` as `done` (or `dead` with a reason), with `outcome` as its result.
fn end_row(c: &Connection, seq: i64, outcome: &str, dead: Option<&str>) -> rusqlite::Result<()> {
    let state = if dead.is_some() { "dead" } else { "done" };
    let sql = "UPDATE jobs SET state = ?1, dead_reason = ?2, finished_at = ?3, outcome = ?4, consumer = NULL,
               lease_until = NULL WHERE seq = ?5 AND state IN ('leased', 'queued')";
    c.execute(sql, params![state, dead, now(), outcome, seq]).map(|_| ())
}

pub(crate) fn queue_callback(c: &Connection, job_id: &str, body: &str, target: &str) -> rusqlite::Result<()> {
    let sql = "INSERT INTO outbox (job_id, body, target, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)";
    c.execute(sql, params![job_id, body, target, now()]).map(|_| ())
}

fn recorded(c: &Connection, queue: &str, job_id: &str) -> rusqlite::Result<Option<String>> {
    let sql = "SELECT body FROM outcomes WHERE queue = ?1 AND job_id = ?2";
    c.query_row(sql, params![queue, job_id], |r| r.get(0)).optional()
}

#[async_trait]
impl Queue for SqliteQueue {
    fn describe(&self) -> String {
        format!("sqlite {} ({})", self.db.path().display(), self.name)
    }

    fn consumer(&self) -> &str {
        &self.consumer
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let r = self.db.call(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await;
        r.map_err(|e| self.err(e))
    }

    async fn mark_worker_started(&self) -> Result<(), QueueError> {
        let queue = self.name.clone();
        let sql = "INSERT INTO queue_workers (queue, started_at) VALUES (?1, ?2)
                   ON CONFLICT (queue) DO UPDATE SET started_at = excluded.started_at";
        let r = self.db.call(move |c| c.execute(sql, params![queue, now()])).await;
        r.map(|_| ()).map_err(|e| self.err(e))
    }

    async fn worker_started(&self) -> Result<Option<f64>, QueueError> {
        let queue = self.name.clone();
        let sql = "SELECT started_at FROM queue_workers WHERE queue = ?1";
        let r = self
            .db
            .call(move |c| c.query_row(sql, params![queue], |row| row.get(0)).optional())
            .await;
        r.map_err(|e| self.err(e))
    }

    async fn push(&self, payload: &[u8]) -> Result<(), QueueError> {
        let queue = self.name.clone();
        let facts = PayloadFacts::of(payload);
        let (job_id, job_type, user_id) = (facts.id, facts.job_type, facts.user_id);
        let value = payload_value(payload);
        let sql = "INSERT INTO jobs (queue, payload, job_id, state, enqueued_at, job_type, user_id)
                   VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6)";
        let r = self
            .db
            .call(move |c| c.execute(sql, params![queue, value, job_id, now(), job_type, user_id]))
            .await;
        r.map(|_| ()).map_err(|e| self.err(e))
    }

    async fn lease(&self) -> Result<Option<Delivery>, QueueError> {
        let (queue, consumer) = (self.name.clone(), self.consumer.clone());
        let until = now() + self.lease_ttl().as_secs_f64();
        let sql = "UPDATE jobs SET state = 'leased', consumer = ?1, lease_until = ?2, deliveries = deliveries + 1
                   WHERE seq = (SELECT seq FROM jobs WHERE queue = ?3
                                AND (state = 'queued' OR (state = 'leased' AND (lease_until < ?4 OR consumer = ?1)))
                                ORDER BY (state = 'leased' AND consumer = ?1) DESC, seq LIMIT 1)
                   RETURNING seq, payload, deliveries, enqueued_at";
        let row = self.db.call(move |c| {
            c.query_row(sql, params![consumer, until, queue, now()], |r| {
                Ok(Delivery {
                    receipt: r.get::<_, i64>(0)?.to_string(),
                    payload: bytes_of(r.get_ref(1)?)?,
                    deliveries: r.get(2)?,
                    digest: String::new(),
                    enqueued_at: r.get(3)?,
                })
            })
            .optional()
        });
        row.await.map_err(|e| self.err(e))
    }

    async fn heartbeat(&self) -> Result<(), QueueError> {
        let consumer = self.consumer.clone();
        let until = now() + self.lease_ttl().as_secs_f64();
        let sql = "UPDATE jobs SET lease_until = ?1 WHERE state = 'leased' AND consumer = ?2";
        self.db
            .call(move |c| c.execute(sql, params![until, consumer]))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn outcome(&self, job_id: &str) -> Result<Option<String>, QueueError> {
        let (queue, job_id) = (self.name.clone(), job_id.to_string());
        let r = self.db.call(move |c| recorded(c, &queue, &job_id)).await;
        r.map_err(|e| self.err(e))
    }

    async fn finish(&self, d: &Delivery, f: Finish<'_>) -> Result<Recorded, QueueError> {
        let (queue, seq) = (self.name.clone(), Self::seq(d));
        let (job_id, body, target) = (f.job_id.to_string(), f.body.to_string(), f.target.to_string());
        let dead = f.dead_reason.map(str::to_string);
        let r = self.db.transaction(move |c| {
            let sql = "INSERT OR IGNORE INTO outcomes (queue, job_id, body, recorded_at) VALUES (?1, ?2, ?3, ?4)";
            let new = c.execute(sql, params![queue, job_id, body, now()])? == 1;
            if new {
                queue_callback(c, &job_id, &body, &target)?;
            }
            let outcome = recorded(c, &queue, &job_id)?.unwrap_or(body);
            end_row(c, seq, &outcome, dead.as_deref())?;
            Ok(if new { Recorded::New } else { Recorded::Existing })
        });
        r.await.map_err(|e| self.err(e))
    }

    async fn resend(&self, d: &Delivery, job_id: &str) -> Result<bool, QueueError> {
        let (queue, seq, job_id) = (self.name.clone(), Self::seq(d), job_id.to_string());
        let r = self.db.transaction(move |c| {
            let Some(body) = recorded(c, &queue, &job_id)? else {
                return Ok(false);
            };
            let sql = "SELECT target FROM outbox WHERE job_id = ?1 ORDER BY id DESC LIMIT 1";
            let target: Option<String> = c.query_row(sql, params![job_id], |r| r.get(0)).optional()?;
            queue_callback(
                c,
                &job_id,
                &body,
                target.as_deref().unwrap_or(super::outbox::NO_ENDPOINT),
            )?;
            end_row(c, seq, &body, None)?;
            Ok(true)
        });
        r.await.map_err(|e| self.err(e))
    }

    async fn ack(&self, d: &Delivery) -> Result<(), QueueError> {
        let seq = Self::seq(d);
        let sql = "UPDATE jobs SET state = 'done', finished_at = ?1, consumer = NULL, lease_until = NULL
                   WHERE seq = ?2 AND state = 'leased'";
        self.db
            .call(move |c| c.execute(sql, params![now(), seq]))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn release(&self, d: &Delivery) -> Result<(), QueueError> {
        let (seq, consumer) = (Self::seq(d), self.consumer.clone());
        let sql = "UPDATE jobs SET state = 'queued', consumer = NULL, lease_until = NULL, deliveries = deliveries - 1
                   WHERE seq = ?1 AND consumer = ?2 AND state = 'leased'";
        self.db
            .call(move |c| c.execute(sql, params![seq, consumer]))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), QueueError> {
        let (seq, reason) = (Self::seq(d), reason.to_string());
        let sql = "UPDATE jobs SET state = 'dead', dead_reason = ?1, finished_at = ?2, consumer = NULL,
                   lease_until = NULL WHERE seq = ?3";
        self.db
            .call(move |c| c.execute(sql, params![reason, now(), seq]))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn reclaim_expired(&self) -> Result<u64, QueueError> {
        let queue = self.name.clone();
        let horizon = now() - self.opts.outcome_ttl.as_secs_f64();
        let r = self.db.call(move |c| {
            c.execute(
                "DELETE FROM outcomes WHERE queue = ?1 AND recorded_at < ?2",
                params![queue, horizon],
            )?;
            let sql = "UPDATE jobs SET state = 'queued', consumer = NULL, lease_until = NULL
                       WHERE queue = ?1 AND state = 'leased' AND lease_until < ?2";
            c.execute(sql, params![queue, now()])
        });
        Ok(r.await.map_err(|e| self.err(e))? as u64)
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let queue = self.name.clone();
        let sql = "SELECT COALESCE(SUM(state = 'queued'), 0), COALESCE(SUM(state = 'leased'), 0),
                          COALESCE(SUM(state = 'dead'), 0) FROM jobs WHERE queue = ?1";
        let r = self.db.call(move |c| {
            c.query_row(sql, params![queue], |r| {
                Ok(Depth {
                    queued: r.get(0)?,
                    in_flight: r.get(1)?,
                    dead: r.get(2)?,
                })
            })
        });
        r.await.map_err(|e| self.err(e))
    }
}

#[async_trait]
impl Outbox for SqliteQueue {
    async fn claim_callback(&self, due_only: bool, exclude: &[String]) -> Result<Option<PendingCallback>, QueueError> {
        let mut cond = if due_only {
            "AND next_attempt_at <= ?2".to_string()
        } else {
            String::new()
        };
        let ids: Vec<i64> = exclude.iter().filter_map(|k| k.parse().ok()).collect();
        if !ids.is_empty() {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            cond.push_str(&format!(" AND id NOT IN ({})", list.join(",")));
        }
        let sql = format!(
            "UPDATE outbox SET claimed_until = ?1, attempts = attempts + 1
             WHERE id = (SELECT id FROM outbox WHERE delivered_at IS NULL AND given_up_at IS NULL
                         AND claimed_until < ?2 {cond} ORDER BY id LIMIT 1)
             RETURNING id, job_id, body, target, attempts"
        );
        let t = now();
        let row = self.db.call(move |c| {
            c.query_row(&sql, params![t + CLAIM_SECS, t], |r| {
                Ok(PendingCallback {
                    key: r.get::<_, i64>(0)?.to_string(),
                    job_id: r.get(1)?,
                    body: r.get(2)?,
                    target: r.get(3)?,
                    attempts: r.get(4)?,
                })
            })
            .optional()
        });
        row.await.map_err(|e| self.err(e))
    }

    async fn settle_callback(&self, p: &PendingCallback, s: Settle) -> Result<(), QueueError> {
        let id: i64 = p.key.parse().unwrap_or(-1);
        let (sql, when, err) = match s {
            Settle::Delivered => (
                "UPDATE outbox SET delivered_at = ?1, claimed_until = 0, last_error = ?2 WHERE id = ?3",
                now(),
                None,
            ),
            Settle::Retry { at, error } => (
                "UPDATE outbox SET next_attempt_at = ?1, claimed_until = 0, last_error = ?2 WHERE id = ?3",
                at,
                Some(error),
            ),
            Settle::GaveUp { error } => (
                "UPDATE outbox SET given_up_at = ?1, claimed_until = 0, last_error = ?2 WHERE id = ?3",
                now(),
                Some(error),
            ),
        };
        let r = self.db.call(move |c| c.execute(sql, params![when, err, id])).await;
        r.map(|_| ()).map_err(|e| self.err(e))
    }

    async fn pending_callbacks(&self) -> Result<u64, QueueError> {
        let sql = "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND given_up_at IS NULL";
        let r = self.db.call(move |c| c.query_row(sql, [], |r| r.get(0))).await;
        r.map_err(|e| self.err(e))
    }

    async fn next_callback_at(&self) -> Result<Option<f64>, QueueError> {
        let sql = "SELECT MIN(next_attempt_at) FROM outbox WHERE delivered_at IS NULL AND given_up_at IS NULL";
        let r = self.db.call(move |c| c.query_row(sql, [], |r| r.get(0))).await;
        r.map_err(|e| self.err(e))
    }
}

/// A job row's end, as `easel submit --wait` reads it.
#[derive(Clone, Debug)]
pub struct JobRow {
    /// `queued`, `leased`, `done` or `dead`.
    pub state: String,
    /// The terminal callback body, once recorded.
    pub outcome: Option<String>,
    /// Why it was dead-lettered.
    pub dead_reason: Option<String>,
}

/// The newest row with `job_id` in the embedded job table.
pub fn job_outcome(db: &Db, job_id: &str) -> Result<Option<JobRow>, DbError> {
    let sql = "SELECT state, outcome, dead_reason FROM jobs WHERE job_id = ?1 ORDER BY seq DESC LIMIT 1";
    let row = |r: &rusqlite::Row<'_>| {
        Ok(JobRow {
            state: r.get(0)?,
            outcome: r.get(1)?,
            dead_reason: r.get(2)?,
        })
    };
    db.call_blocking(|c| c.query_row(sql, params![job_id], row).optional())
}
