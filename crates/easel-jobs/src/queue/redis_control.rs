//! Why this exists: job control ([`Control`]) for the Redis queue (native and Upstash REST).
//! Keys, next to the queue's own (`<q>` is the queue name):
//! - `<q>:job:<id>`: a hash per job run here (consumer, queued_at, started_at, job_type,
//!   user_id, phase, step, total, updated_at), expiring a day after its last update while it
//!   runs and kept as long as the outcome once it ended (the history of `easel jobs show`);
//! - `<q>:running`: the ids of running jobs (checked against those hashes when listed);
//! - `<q>:cancel:<id>`: a cancel request the worker running `<id>` checks at every progress tick;
//! - `<q>:done`: ids with an outcome, scored by when it was recorded (trimmed to the outcome TTL).
//!
//! Removing a queued job and recording its `cancelled` outcome is one Lua script, so a worker
//! cannot lease it in between; if one did, the cancel becomes a request to that worker.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::control::{
    CallbackState, CancelOutcome, CancelResult, Control, Event, JobDetail, JobRow, JobState, PayloadFacts, Progress,
    RetryResult,
};
use super::redis::RedisQueue;
use super::transport::Reply;
use super::{Delivery, QueueError};
use crate::contract;
use crate::db::now;

/// How long a running job's record and a cancel request live without an update.
const RECORD_TTL_SECS: &str = "86400";
/// The most entries of a list read to find one job (a queue deeper than this is searched
/// only this far from the newest end).
const SCAN_LIMIT: i64 = 10_000;

const CANCEL_QUEUED: &str = "
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[2], 'body', ARGV[2]) == 1 then
  redis.call('HSET', KEYS[2], 'target', ARGV[3], 'attempts', 0, 'claimed_until', 0, 'recorded_at', ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
end
return 1";

const RETRY: &str = "
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], redis.sha1hex(ARGV[2]))
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[3])
redis.call('ZREM', KEYS[6], ARGV[3])
return 1";

fn texts(r: &Reply) -> Vec<String> {
    match r {
        Reply::Array(items) => items.iter().filter_map(|i| i.as_text().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// A flat `HGETALL` reply as field lookups.
fn fields(r: &Reply) -> Vec<(String, String)> {
    let t = texts(r);
    t.chunks(2)
        .filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone())))
        .collect()
}

fn get<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
    f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

impl RedisQueue {
    fn job_key(&self, id: &str) -> String {
        self.key(&format!("job:{id}"))
    }

    fn cancel_key(&self, id: &str) -> String {
        self.key(&format!("cancel:{id}"))
    }

    async fn list_range(&self, key: &str, limit: i64) -> Result<Vec<String>, QueueError> {
        let stop = (limit - 1).to_string();
        let r = self
            .t()
            .cmd(&[b"LRANGE", key.as_bytes(), b"0", stop.as_bytes()])
            .await?;
        Ok(texts(&r))
    }

    /// The fields of job `id`'s run record (empty when there is none).
    async fn run_record(&self, id: &str) -> Result<Vec<(String, String)>, QueueError> {
        let key = self.job_key(id);
        Ok(fields(&self.t().cmd(&[b"HGETALL", key.as_bytes()]).await?))
    }

    async fn running_row(&self, id: &str) -> Result<Option<JobRow>, QueueError> {
        let f = self.run_record(id).await?;
        if f.is_empty() {
            return Ok(None);
        }
        let num = |k: &str| get(&f, k).and_then(|v| v.parse::<f64>().ok());
        let progress = get(&f, "phase").map(|phase| Progress {
            phase: phase.to_string(),
            step: num("step").unwrap_or(0.0) as u32,
            total: num("total").unwrap_or(0.0) as u32,
            updated_at: num("updated_at").unwrap_or(0.0),
        });
        Ok(Some(JobRow {
            id: Some(id.to_string()),
            state: JobState::Running,
            job_type: get(&f, "job_type").map(str::to_string),
            user_id: get(&f, "user_id").map(str::to_string),
            worker: get(&f, "consumer").map(str::to_string),
            progress,
            since: num("started_at"),
            attempts: num("deliveries").unwrap_or(1.0) as u32,
            dead_reason: None,
        }))
    }

    async fn running_rows(&self, limit: usize) -> Result<Vec<JobRow>, QueueError> {
        let key = self.key("running");
        let ids = texts(&self.t().cmd(&[b"SMEMBERS", key.as_bytes()]).await?);
        let mut out = Vec::new();
        for id in ids.iter().take(limit) {
            match self.running_row(id).await? {
                Some(r) => out.push(r),
                // The record expired (its worker died long ago): forget the id.
                None => {
                    self.t().cmd(&[b"SREM", key.as_bytes(), id.as_bytes()]).await?;
                }
            }
        }
        out.sort_by(|a, b| b.since.partial_cmp(&a.since).unwrap_or(std::cmp::Ordering::Equal));
        Ok(out)
    }

    fn queued_row(payload: &str) -> JobRow {
        let f = PayloadFacts::of(payload.as_bytes());
        JobRow {
            id: f.id,
            state: JobState::Queued,
            job_type: f.job_type,
            user_id: f.user_id,
            worker: None,
            progress: None,
            since: f.queued_at,
            attempts: 0,
            dead_reason: None,
        }
    }

    fn dead_row(record: &str) -> (JobRow, Option<String>) {
        let v: Value = serde_json::from_str(record).unwrap_or(Value::Null);
        let payload = v.get("payload").and_then(Value::as_str).map(str::to_string);
        let f = payload
            .as_deref()
            .map(|p| PayloadFacts::of(p.as_bytes()))
            .unwrap_or_default();
        let row = JobRow {
            id: f.id,
            state: JobState::Dead,
            job_type: f.job_type,
            user_id: f.user_id,
            worker: None,
            progress: None,
            since: v.get("timestamp").and_then(Value::as_f64),
            attempts: v.get("deliveries").and_then(Value::as_u64).unwrap_or(0) as u32,
            dead_reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
        };
        (row, payload)
    }

    async fn done_rows(&self, limit: usize) -> Result<Vec<JobRow>, QueueError> {
        let key = self.key("done");
        let stop = (limit.max(1) - 1).to_string();
        let r = self
            .t()
            .cmd(&[b"ZREVRANGE", key.as_bytes(), b"0", stop.as_bytes(), b"WITHSCORES"])
            .await?;
        let t = texts(&r);
        let mut out = Vec::new();
        for pair in t.chunks(2) {
            let [id, score] = pair else { continue };
            let Some(body) = self.outcome_body(id).await? else {
                self.t().cmd(&[b"ZREM", key.as_bytes(), id.as_bytes()]).await?;
                continue;
            };
            out.push(Self::done_row(
                id,
                &body,
                score.parse::<f64>().ok().map(|ms| ms / 1000.0),
            ));
        }
        Ok(out)
    }

    fn done_row(id: &str, body: &str, since: Option<f64>) -> JobRow {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let meta = |k: &str| {
            v.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        JobRow {
            id: Some(id.to_string()),
            state: JobState::Done,
            job_type: meta("job_type"),
            user_id: None,
            worker: None,
            progress: None,
            since,
            attempts: 0,
            dead_reason: None,
        }
    }

    async fn outcome_body(&self, id: &str) -> Result<Option<String>, QueueError> {
        let key = self.outcome_key(id);
        let r = self.t().cmd(&[b"HGET", key.as_bytes(), b"body"]).await?;
        Ok(r.as_text().map(str::to_string))
    }

    async fn find_in(&self, list: &str, id: &str) -> Result<Option<String>, QueueError> {
        let entries = self.list_range(list, SCAN_LIMIT).await?;
        Ok(entries
            .into_iter()
            .find(|p| contract::read_id(p).ok().as_deref() == Some(id)))
    }

    async fn find_dead(&self, id: &str) -> Result<Option<(String, JobRow, Option<String>)>, QueueError> {
        for record in self.list_range(&self.key("dead"), SCAN_LIMIT).await? {
            let (row, payload) = Self::dead_row(&record);
            if row.id.as_deref() == Some(id) {
                return Ok(Some((record, row, payload)));
            }
        }
        Ok(None)
    }

    async fn callback_state(&self, id: &str) -> Result<Option<CallbackState>, QueueError> {
        let key = self.outcome_key(id);
        let f = fields(&self.t().cmd(&[b"HGETALL", key.as_bytes()]).await?);
        if f.is_empty() {
            return Ok(None);
        }
        let secs = |k: &str| get(&f, k).and_then(|v| v.parse::<f64>().ok()).map(|ms| ms / 1000.0);
        Ok(Some(CallbackState {
            attempts: get(&f, "attempts").and_then(|v| v.parse().ok()).unwrap_or(0),
            delivered_at: secs("delivered_at"),
            given_up_at: secs("given_up_at"),
            last_error: get(&f, "last_error").filter(|e| !e.is_empty()).map(str::to_string),
        }))
    }

    async fn running_payload(&self, worker: &str, id: &str) -> Result<Option<String>, QueueError> {
        self.find_in(&self.processing(worker), id).await
    }
}

#[async_trait]
impl Control for RedisQueue {
    async fn list(&self, state: Option<JobState>, limit: usize) -> Result<Vec<JobRow>, QueueError> {
        let want = |s: JobState| state.is_none_or(|w| w == s);
        let mut out = Vec::new();
        if want(JobState::Running) {
            out.extend(self.running_rows(limit).await?);
        }
        if want(JobState::Queued) {
            let entries = self.list_range(self.name(), limit as i64).await?;
            out.extend(entries.iter().map(|p| Self::queued_row(p)));
        }
        if want(JobState::Dead) {
            let entries = self.list_range(&self.key("dead"), limit as i64).await?;
            out.extend(entries.iter().map(|r| Self::dead_row(r).0));
        }
        if want(JobState::Done) {
            out.extend(self.done_rows(limit).await?);
        }
        Ok(out)
    }

    async fn show(&self, id: &str) -> Result<Option<JobDetail>, QueueError> {
        let outcome = self.outcome_body(id).await?;
        let callback = self.callback_state(id).await?;
        let detail = |row: JobRow, payload: Option<String>, history: Vec<Event>| JobDetail {
            row,
            payload,
            outcome: outcome.clone(),
            callback: callback.clone(),
            history,
        };
        let queued = |p: &Option<String>| {
            Event::at(
                "queued",
                p.as_deref().and_then(|p| PayloadFacts::of(p.as_bytes()).queued_at),
                None,
            )
        };
        if let Some(row) = self.running_row(id).await?.filter(|_| outcome.is_none()) {
            let payload = match &row.worker {
                Some(w) => self.running_payload(w, id).await?,
                None => None,
            };
            let history = [queued(&payload), Event::at("running", row.since, row.worker.clone())];
            return Ok(Some(detail(row, payload, history.into_iter().flatten().collect())));
        }
        if let Some((_, row, payload)) = self.find_dead(id).await? {
            let history = [queued(&payload), Event::at("dead", row.since, None)];
            return Ok(Some(detail(row, payload, history.into_iter().flatten().collect())));
        }
        if let Some(body) = &outcome {
            let key = self.key("done");
            let score = self.t().cmd(&[b"ZSCORE", key.as_bytes(), id.as_bytes()]).await?;
            let since = score
                .as_text()
                .and_then(|s| s.parse::<f64>().ok())
                .map(|ms| ms / 1000.0);
            let ran = self.run_record(id).await?;
            let get = |k: &str| get(&ran, k).map(str::to_string);
            let secs = |k: &str| get(k).and_then(|v| v.parse::<f64>().ok());
            let history = [
                Event::at("queued", secs("queued_at"), None),
                Event::at("running", secs("started_at"), get("consumer")),
                Event::at("done", since, None),
            ];
            let row = Self::done_row(id, body, since);
            return Ok(Some(detail(row, None, history.into_iter().flatten().collect())));
        }
        if let Some(payload) = self.find_in(self.name(), id).await? {
            let history = Event::at("queued", PayloadFacts::of(payload.as_bytes()).queued_at, None)
                .into_iter()
                .collect();
            return Ok(Some(detail(Self::queued_row(&payload), Some(payload), history)));
        }
        Ok(None)
    }

    async fn cancel(&self, id: &str, outcome: CancelOutcome<'_>) -> Result<CancelResult, QueueError> {
        if self.outcome_body(id).await?.is_some() {
            return Ok(CancelResult::Finished);
        }
        let running = self.key("running");
        let r = self.t().cmd(&[b"SISMEMBER", running.as_bytes(), id.as_bytes()]).await?;
        if r.as_int() != Some(1) {
            if let Some(payload) = self.find_in(self.name(), id).await? {
                let body = (outcome.body)(payload.as_bytes());
                let (outcome_key, callbacks, done) = (self.outcome_key(id), self.key("callbacks"), self.key("done"));
                let keys = [self.name(), outcome_key.as_str(), &callbacks, &done];
                let ttl = self.outcome_ttl_secs();
                let now_ms = format!("{}", (now() * 1000.0).round() as i64);
                let args: [&[u8]; 6] = [
                    payload.as_bytes(),
                    body.as_bytes(),
                    outcome.target.as_bytes(),
                    ttl.as_bytes(),
                    now_ms.as_bytes(),
                    id.as_bytes(),
                ];
                let r = self
                    .commit("cancelling a queued job", CANCEL_QUEUED, &keys, &args)
                    .await?;
                if r.as_int() == Some(1) {
                    return Ok(CancelResult::Removed);
                }
                // Leased in the meantime: ask its worker (which checks the mark before it starts).
            } else {
                return Ok(CancelResult::Unknown);
            }
        }
        let key = self.cancel_key(id);
        self.t()
            .cmd(&[b"SET", key.as_bytes(), b"1", b"EX", RECORD_TTL_SECS.as_bytes()])
            .await?;
        Ok(CancelResult::Requested)
    }

    async fn retry(&self, id: &str) -> Result<RetryResult, QueueError> {
        let Some((record, _, Some(payload))) = self.find_dead(id).await? else {
            return Ok(RetryResult::NotDead);
        };
        let (dead, counts, outcome) = (self.key("dead"), self.key("deliveries"), self.outcome_key(id));
        let (done, callbacks) = (self.key("done"), self.key("callbacks"));
        let keys = [dead.as_str(), self.name(), &counts, &outcome, &done, &callbacks];
        let args: [&[u8]; 3] = [record.as_bytes(), payload.as_bytes(), id.as_bytes()];
        let r = self.commit("retrying a dead letter", RETRY, &keys, &args).await?;
        Ok(if r.as_int() == Some(1) {
            RetryResult::Requeued
        } else {
            RetryResult::NotDead
        })
    }

    async fn purge_dead(&self, older_than: Option<Duration>) -> Result<u64, QueueError> {
        let dead = self.key("dead");
        let horizon = older_than.map_or(f64::INFINITY, |d| now() - d.as_secs_f64());
        let mut purged = 0;
        for record in self.list_range(&dead, SCAN_LIMIT).await? {
            let (row, _) = Self::dead_row(&record);
            if row.since.unwrap_or(0.0) <= horizon {
                let r = self
                    .t()
                    .cmd(&[b"LREM", dead.as_bytes(), b"1", record.as_bytes()])
                    .await?;
                purged += r.as_int().unwrap_or(0).max(0) as u64;
            }
        }
        Ok(purged)
    }

    async fn running(
        &self,
        d: &Delivery,
        id: &str,
        job_type: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<(), QueueError> {
        let key = self.job_key(id);
        let (started, deliveries) = (now().to_string(), d.deliveries.to_string());
        let queued = d.queued_at().map(|q| q.to_string());
        let mut cmd: Vec<&[u8]> = vec![
            b"HSET",
            key.as_bytes(),
            b"consumer",
            self.consumer_id().as_bytes(),
            b"started_at",
            started.as_bytes(),
            b"deliveries",
            deliveries.as_bytes(),
        ];
        if let Some(t) = job_type {
            cmd.extend([b"job_type".as_slice(), t.as_bytes()]);
        }
        if let Some(u) = user_id {
            cmd.extend([b"user_id".as_slice(), u.as_bytes()]);
        }
        if let Some(q) = &queued {
            cmd.extend([b"queued_at".as_slice(), q.as_bytes()]);
        }
        self.t().cmd(&[b"DEL", key.as_bytes()]).await?;
        self.t().cmd(&cmd).await?;
        self.t()
            .cmd(&[b"EXPIRE", key.as_bytes(), RECORD_TTL_SECS.as_bytes()])
            .await?;
        let running = self.key("running");
        self.t()
            .cmd(&[b"SADD", running.as_bytes(), id.as_bytes()])
            .await
            .map(|_| ())
    }

    async fn progress(&self, id: &str, p: &Progress) -> Result<(), QueueError> {
        let key = self.job_key(id);
        let (step, total, at) = (p.step.to_string(), p.total.to_string(), p.updated_at.to_string());
        self.t()
            .cmd(&[
                b"HSET",
                key.as_bytes(),
                b"phase",
                p.phase.as_bytes(),
                b"step",
                step.as_bytes(),
                b"total",
                total.as_bytes(),
                b"updated_at",
                at.as_bytes(),
            ])
            .await?;
        self.t()
            .cmd(&[b"EXPIRE", key.as_bytes(), RECORD_TTL_SECS.as_bytes()])
            .await
            .map(|_| ())
    }

    async fn cancel_requested(&self, id: &str) -> Result<bool, QueueError> {
        let key = self.cancel_key(id);
        let r = self.t().cmd(&[b"EXISTS", key.as_bytes()]).await?;
        Ok(r.as_int() == Some(1))
    }

    async fn ended(&self, id: &str) -> Result<(), QueueError> {
        let (job, cancel, running) = (self.job_key(id), self.cancel_key(id), self.key("running"));
        // The record stays as long as the outcome, for the history `easel jobs show` prints.
        let ttl = self.outcome_ttl_secs();
        self.t().cmd(&[b"EXPIRE", job.as_bytes(), ttl.as_bytes()]).await?;
        self.t().cmd(&[b"DEL", cancel.as_bytes()]).await?;
        self.t()
            .cmd(&[b"SREM", running.as_bytes(), id.as_bytes()])
            .await
            .map(|_| ())
    }
}
