//! Why this exists: the embedded default queue, so a fresh clone runs jobs with no services.
//! Jobs are rows of the `jobs` table; a lease is `state = 'leased'` with a `lease_until` that
//! heartbeats push forward; an expired lease is taken over by the next `lease` of any worker
//! (and by `reclaim_expired`). Finished rows stay, with their outcome, for `easel submit --wait`.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{Delivery, Depth, Queue, QueueError};
use crate::contract;
use crate::db::{now, Db, DbError};

/// The embedded queue.
pub struct SqliteQueue {
    db: Db,
    name: String,
    consumer: String,
    lease_ttl: Duration,
}

impl SqliteQueue {
    /// A queue named `name` in `db`, consuming as `consumer`.
    pub fn new(db: Db, name: &str, consumer: String, lease_ttl: Duration) -> Self {
        Self {
            db,
            name: name.to_string(),
            consumer,
            lease_ttl,
        }
    }

    fn err(&self, e: DbError) -> QueueError {
        QueueError::Backend {
            backend: self.describe(),
            msg: e.to_string(),
        }
    }

    fn seq(d: &Delivery) -> i64 {
        d.receipt.parse().unwrap_or(-1)
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    fn describe(&self) -> String {
        format!("sqlite {} ({})", self.db.path().display(), self.name)
    }

    fn consumer(&self) -> &str {
        &self.consumer
    }

    async fn push(&self, payload: &str) -> Result<(), QueueError> {
        let (queue, payload) = (self.name.clone(), payload.to_string());
        let job_id = contract::parse(&payload).ok().map(|e| e.id);
        let sql = "INSERT INTO jobs (queue, payload, job_id, state, enqueued_at) VALUES (?1, ?2, ?3, 'queued', ?4)";
        let r = self
            .db
            .call(move |c| c.execute(sql, params![queue, payload, job_id, now()]))
            .await;
        r.map(|_| ()).map_err(|e| self.err(e))
    }

    async fn lease(&self) -> Result<Option<Delivery>, QueueError> {
        let (queue, consumer) = (self.name.clone(), self.consumer.clone());
        let until = now() + self.lease_ttl.as_secs_f64();
        let sql = "UPDATE jobs SET state = 'leased', consumer = ?1, lease_until = ?2, deliveries = deliveries + 1
                   WHERE seq = (SELECT seq FROM jobs WHERE queue = ?3
                                AND (state = 'queued' OR (state = 'leased' AND lease_until < ?4))
                                ORDER BY seq LIMIT 1)
                   RETURNING seq, payload, deliveries";
        let row = self.db.call(move |c| {
            c.query_row(sql, params![consumer, until, queue, now()], |r| {
                Ok(Delivery {
                    receipt: r.get::<_, i64>(0)?.to_string(),
                    payload: r.get(1)?,
                    deliveries: r.get(2)?,
                })
            })
            .optional()
        });
        row.await.map_err(|e| self.err(e))
    }

    async fn heartbeat(&self) -> Result<(), QueueError> {
        let consumer = self.consumer.clone();
        let until = now() + self.lease_ttl.as_secs_f64();
        let sql = "UPDATE jobs SET lease_until = ?1 WHERE state = 'leased' AND consumer = ?2";
        self.db
            .call(move |c| c.execute(sql, params![until, consumer]))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn ack(&self, d: &Delivery) -> Result<(), QueueError> {
        let (seq, consumer) = (Self::seq(d), self.consumer.clone());
        let sql =
            "UPDATE jobs SET state = 'done', finished_at = ?1 WHERE seq = ?2 AND consumer = ?3 AND state = 'leased'";
        self.db
            .call(move |c| c.execute(sql, params![now(), seq, consumer]))
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
        let sql = "UPDATE jobs SET state = 'dead', dead_reason = ?1, finished_at = ?2 WHERE seq = ?3";
        self.db
            .call(move |c| c.execute(sql, params![reason, now(), seq]))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn reclaim_expired(&self) -> Result<u64, QueueError> {
        let queue = self.name.clone();
        let sql = "UPDATE jobs SET state = 'queued', consumer = NULL, lease_until = NULL
                   WHERE queue = ?1 AND state = 'leased' AND lease_until < ?2";
        let n = self
            .db
            .call(move |c| c.execute(sql, params![queue, now()]))
            .await
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
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
