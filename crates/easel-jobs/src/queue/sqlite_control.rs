//! Why this exists: job control ([`Control`]) for the embedded queue. Everything is a row of
//! `jobs`: its state, who leased it, its progress columns and a cancel flag; outcomes and
//! callback delivery come from `outcomes` and `outbox`.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::control::{
    CallbackState, CancelOutcome, CancelResult, Control, Event, JobDetail, JobRow, JobState, Progress, RetryResult,
};
use super::sqlite::SqliteQueue;
use super::{Delivery, Queue, QueueError};
use crate::db::now;

const ROW: &str = "seq, job_id, state, job_type, user_id, consumer, phase, step, steps, progress_at,
                   enqueued_at, started_at, finished_at, deliveries, dead_reason";

fn state_of(s: &str) -> JobState {
    match s {
        "leased" => JobState::Running,
        "done" => JobState::Done,
        "dead" => JobState::Dead,
        _ => JobState::Queued,
    }
}

fn row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    let state = state_of(&r.get::<_, String>(2)?);
    let phase: Option<String> = r.get(6)?;
    let progress = match (state, phase) {
        (JobState::Running, Some(phase)) => Some(Progress {
            phase,
            step: r.get::<_, Option<u32>>(7)?.unwrap_or(0),
            total: r.get::<_, Option<u32>>(8)?.unwrap_or(0),
            updated_at: r.get::<_, Option<f64>>(9)?.unwrap_or(0.0),
        }),
        _ => None,
    };
    let since = match state {
        JobState::Queued => r.get(10)?,
        JobState::Running => r.get::<_, Option<f64>>(11)?.or(r.get(10)?),
        JobState::Done | JobState::Dead => r.get(12)?,
    };
    Ok(JobRow {
        id: r.get(1)?,
        state,
        job_type: r.get(3)?,
        user_id: r.get(4)?,
        worker: if state == JobState::Running { r.get(5)? } else { None },
        progress,
        since,
        attempts: r.get(13)?,
        dead_reason: r.get(14)?,
    })
}

fn db_state(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "queued",
        JobState::Running => "leased",
        JobState::Done => "done",
        JobState::Dead => "dead",
    }
}

/// The newest row of job `id` in `queue`, with its seq and payload.
fn latest(c: &Connection, queue: &str, id: &str) -> rusqlite::Result<Option<(i64, JobRow, Option<String>)>> {
    let sql = format!(
        "SELECT {ROW}, CAST(payload AS TEXT) FROM jobs WHERE queue = ?1 AND job_id = ?2 ORDER BY seq DESC LIMIT 1"
    );
    c.query_row(&sql, params![queue, id], |r| Ok((r.get(0)?, row(r)?, r.get(15)?)))
        .optional()
}

/// The job's states from its newest row's timestamps.
fn history(c: &Connection, queue: &str, id: &str) -> rusqlite::Result<Vec<Event>> {
    let sql = "SELECT enqueued_at, started_at, finished_at, state, consumer FROM jobs
               WHERE queue = ?1 AND job_id = ?2 ORDER BY seq DESC LIMIT 1";
    let Some((queued, started, finished, state, consumer)) = c
        .query_row(sql, params![queue, id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?, r.get(4)?))
        })
        .optional()?
    else {
        return Ok(Vec::new());
    };
    let end = match state.as_str() {
        "dead" => Some("dead"),
        "done" => Some("done"),
        _ => None,
    };
    let events = [
        Event::at("queued", queued, None),
        Event::at("running", started, consumer),
        end.and_then(|s| Event::at(s, finished, None)),
    ];
    Ok(events.into_iter().flatten().collect())
}

fn callback_state(c: &Connection, id: &str) -> rusqlite::Result<Option<CallbackState>> {
    let sql =
        "SELECT attempts, delivered_at, given_up_at, last_error FROM outbox WHERE job_id = ?1 ORDER BY id DESC LIMIT 1";
    c.query_row(sql, params![id], |r| {
        Ok(CallbackState {
            attempts: r.get(0)?,
            delivered_at: r.get(1)?,
            given_up_at: r.get(2)?,
            last_error: r.get(3)?,
        })
    })
    .optional()
}

#[async_trait]
impl Control for SqliteQueue {
    async fn list(&self, state: Option<JobState>, limit: usize) -> Result<Vec<JobRow>, QueueError> {
        let (queue, limit) = (self.name().to_string(), limit as i64);
        let states: Vec<&'static str> = match state {
            Some(s) => vec![db_state(s)],
            None => vec!["leased", "queued", "dead", "done"],
        };
        let r = self.db().call(move |c| {
            let sql = format!("SELECT {ROW} FROM jobs WHERE queue = ?1 AND state = ?2 ORDER BY seq DESC LIMIT ?3");
            let mut stmt = c.prepare(&sql)?;
            let mut out = Vec::new();
            for s in states {
                let rows = stmt.query_map(params![queue, s, limit], row)?;
                for r in rows {
                    out.push(r?);
                }
            }
            Ok(out)
        });
        r.await.map_err(|e| self.err(e))
    }

    async fn show(&self, id: &str) -> Result<Option<JobDetail>, QueueError> {
        let (queue, id) = (self.name().to_string(), id.to_string());
        let r = self.db().call(move |c| {
            let Some((_, row, payload)) = latest(c, &queue, &id)? else {
                return Ok(None);
            };
            let outcome = c
                .query_row(
                    "SELECT body FROM outcomes WHERE queue = ?1 AND job_id = ?2",
                    params![queue, id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(Some(JobDetail {
                history: history(c, &queue, &id)?,
                row,
                payload,
                outcome,
                callback: callback_state(c, &id)?,
            }))
        });
        r.await.map_err(|e| self.err(e))
    }

    async fn cancel(&self, id: &str, outcome: CancelOutcome<'_>) -> Result<CancelResult, QueueError> {
        let (queue, id) = (self.name().to_string(), id.to_string());
        let payload = {
            let (q, i) = (queue.clone(), id.clone());
            let sql =
                "SELECT payload FROM jobs WHERE queue = ?1 AND job_id = ?2 AND state = 'queued' ORDER BY seq LIMIT 1";
            let r = self.db().call(move |c| {
                c.query_row(sql, params![q, i], |r| super::sqlite::bytes_of(r.get_ref(0)?))
                    .optional()
            });
            r.await.map_err(|e| self.err(e))?
        };
        let body = payload.as_deref().map(|p| (outcome.body)(p));
        let target = outcome.target.to_string();
        let r = self.db().transaction(move |c| {
            if c.query_row(
                "SELECT 1 FROM outcomes WHERE queue = ?1 AND job_id = ?2",
                params![queue, id],
                |_| Ok(()),
            )
            .optional()?
            .is_some()
            {
                return Ok(CancelResult::Finished);
            }
            if let Some(body) = body {
                let sql = "UPDATE jobs SET state = 'done', finished_at = ?1, outcome = ?2
                           WHERE queue = ?3 AND job_id = ?4 AND state = 'queued'";
                if c.execute(sql, params![now(), body, queue, id])? > 0 {
                    let sql = "INSERT INTO outcomes (queue, job_id, body, recorded_at) VALUES (?1, ?2, ?3, ?4)";
                    c.execute(sql, params![queue, id, body, now()])?;
                    super::sqlite::queue_callback(c, &id, &body, &target)?;
                    return Ok(CancelResult::Removed);
                }
            }
            let sql = "UPDATE jobs SET cancel_requested = 1 WHERE queue = ?1 AND job_id = ?2 AND state = 'leased'";
            if c.execute(sql, params![queue, id])? > 0 {
                return Ok(CancelResult::Requested);
            }
            Ok(CancelResult::Unknown)
        });
        r.await.map_err(|e| self.err(e))
    }

    async fn retry(&self, id: &str) -> Result<RetryResult, QueueError> {
        let (queue, id) = (self.name().to_string(), id.to_string());
        let r = self.db().transaction(move |c| {
            let Some((seq, row, _)) = latest(c, &queue, &id)? else {
                return Ok(RetryResult::NotDead);
            };
            if row.state != JobState::Dead {
                return Ok(RetryResult::NotDead);
            }
            c.execute(
                "DELETE FROM outcomes WHERE queue = ?1 AND job_id = ?2",
                params![queue, id],
            )?;
            let sql = "UPDATE jobs SET state = 'queued', deliveries = 0, dead_reason = NULL, finished_at = NULL,
                       outcome = NULL, consumer = NULL, lease_until = NULL, cancel_requested = 0, phase = NULL,
                       enqueued_at = ?1 WHERE seq = ?2";
            c.execute(sql, params![now(), seq])?;
            Ok(RetryResult::Requeued)
        });
        r.await.map_err(|e| self.err(e))
    }

    async fn purge_dead(&self, older_than: Option<Duration>) -> Result<u64, QueueError> {
        let queue = self.name().to_string();
        let horizon = older_than.map_or(f64::INFINITY, |d| now() - d.as_secs_f64());
        let r = self.db().call(move |c| {
            c.execute(
                "DELETE FROM jobs WHERE queue = ?1 AND state = 'dead' AND COALESCE(finished_at, 0) <= ?2",
                params![queue, horizon],
            )
        });
        Ok(r.await.map_err(|e| self.err(e))? as u64)
    }

    async fn running(
        &self,
        d: &Delivery,
        _id: &str,
        job_type: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<(), QueueError> {
        let seq: i64 = d.receipt.parse().unwrap_or(-1);
        let (jt, uid) = (job_type.map(str::to_string), user_id.map(str::to_string));
        let sql = "UPDATE jobs SET started_at = ?1, job_type = COALESCE(?2, job_type), user_id = COALESCE(?3, user_id),
                   phase = NULL, step = NULL, steps = NULL, progress_at = NULL WHERE seq = ?4";
        let r = self.db().call(move |c| c.execute(sql, params![now(), jt, uid, seq]));
        r.await.map(|_| ()).map_err(|e| self.err(e))
    }

    async fn progress(&self, id: &str, p: &Progress) -> Result<(), QueueError> {
        let (queue, id, consumer) = (self.name().to_string(), id.to_string(), self.consumer().to_string());
        let p = p.clone();
        let sql = "UPDATE jobs SET phase = ?1, step = ?2, steps = ?3, progress_at = ?4
                   WHERE queue = ?5 AND job_id = ?6 AND state = 'leased' AND consumer = ?7";
        let r = self.db().call(move |c| {
            c.execute(
                sql,
                params![p.phase, p.step, p.total, p.updated_at, queue, id, consumer],
            )
        });
        r.await.map(|_| ()).map_err(|e| self.err(e))
    }

    async fn cancel_requested(&self, id: &str) -> Result<bool, QueueError> {
        let (queue, id) = (self.name().to_string(), id.to_string());
        let sql =
            "SELECT 1 FROM jobs WHERE queue = ?1 AND job_id = ?2 AND state = 'leased' AND cancel_requested = 1 LIMIT 1";
        let r = self
            .db()
            .call(move |c| c.query_row(sql, params![queue, id], |_| Ok(())).optional());
        Ok(r.await.map_err(|e| self.err(e))?.is_some())
    }

    async fn ended(&self, _id: &str) -> Result<(), QueueError> {
        // The row's state already says it ended; its progress columns stay for `jobs show`.
        Ok(())
    }
}
