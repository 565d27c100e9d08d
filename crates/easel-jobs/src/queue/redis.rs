//! Why this exists: the production queue. Producers keep `LPUSH sdxl_queue <json>`; this
//! consumer makes it at-least-once with the reliable-queue pattern and exactly-once outcomes,
//! each step one atomic Lua script (run the same way over native Redis and Upstash REST):
//!
//! - lease: `LMOVE sdxl_queue sdxl_queue:processing:<consumer> RIGHT LEFT` (FIFO, as the
//!   Python `RPOP`) — unless this consumer's processing list still holds a job whose lease
//!   reply was lost, which is returned again — count the delivery in `sdxl_queue:deliveries`
//!   (field: SHA-1 of the payload), renew `sdxl_queue:lease:<consumer>` (a key with a TTL) and
//!   register the consumer in `sdxl_queue:consumers`;
//! - heartbeat: renew the lease key;
//! - reclaim (any worker): for each registered consumer whose lease key expired, move its
//!   processing list back to the consuming end of the queue and unregister it;
//! - finish: set `sdxl_queue:outcome:<job id>` (a hash: body, target, attempts, ...; TTL 7 days
//!   by default) only if absent, and if so add the job id to `sdxl_queue:callbacks` (a sorted
//!   set by next attempt time, the shared outbox); remove the payload (by its SHA-1, so exactly
//!   those bytes) from this consumer's processing list — or, if its lease expired meanwhile,
//!   the reclaimed copy near the consuming end of the queue — and forget its count;
//! - finish also indexes the job in `sdxl_queue:done` (for `easel jobs list`; job control's
//!   own keys are described in `redis_control.rs`);
//! - resend / ack / release / dead-letter: queue the recorded callback again / — / push the
//!   payload back (uncounted) / push a record to `sdxl_queue:dead`; each removes the payload.
//!
//! Every command that ends a job, renews a lease or reclaims one is retried across connection
//! errors ([`super::retrying`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;

use super::outbox::{Outbox, PendingCallback, Settle, CLAIM_SECS};
use super::transport::{Reply, Transport};
use super::{retrying, Delivery, Depth, Finish, Queue, QueueError, QueueOptions, Recorded};
use crate::db::now;

/// How long a command that ends a job keeps retrying a Redis that is down: past it the job is
/// left in flight, its lease expires and it is run again (never answered twice: the outcome is
/// recorded at most once).
const COMMIT_BUDGET: Duration = Duration::from_secs(300);
/// How far from the consuming end `finish` looks for a reclaimed copy of its job.
const RECLAIMED_SCAN: usize = 1000;

/// `take(list, digest, n)`: removes and returns one entry of `list` whose SHA-1 is `digest`,
/// looking at the last `n` entries (all when `n` is 0); `false` when there is none.
const PRELUDE: &str = "
local function take(list, digest, n)
  local items
  if n == 0 then items = redis.call('LRANGE', list, 0, -1) else items = redis.call('LRANGE', list, -n, -1) end
  for i = #items, 1, -1 do
    if redis.sha1hex(items[i]) == digest then
      redis.call('LREM', list, -1, items[i])
      return items[i]
    end
  end
  return false
end
";

const LEASE: &str = "
local p = redis.call('LINDEX', KEYS[2], -1)
if not p then p = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') end
redis.call('SET', KEYS[4], '1', 'PX', ARGV[1])
redis.call('SADD', KEYS[5], ARGV[2])
if not p then return nil end
local d = redis.sha1hex(p)
local n = redis.call('HINCRBY', KEYS[3], d, 1)
return {p, n, d}";

const HEARTBEAT: &str = "
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1";

const RECLAIM: &str = "
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'RIGHT') do n = n + 1 end
redis.call('SREM', KEYS[4], ARGV[1])
return n";

const FINISH: &str = "
local new = redis.call('HSETNX', KEYS[1], 'body', ARGV[2]) == 1
if new then
  redis.call('HSET', KEYS[1], 'target', ARGV[3], 'attempts', 0, 'claimed_until', 0, 'recorded_at', ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
  if ARGV[7] ~= '' then redis.call('LPUSH', KEYS[6], ARGV[7]) end
  redis.call('ZADD', KEYS[7], ARGV[5], ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', tonumber(ARGV[5]) - tonumber(ARGV[4]) * 1000)
end
local removed = take(KEYS[2], ARGV[1], 0)
if not removed then removed = take(KEYS[5], ARGV[1], tonumber(ARGV[8])) end
if removed then redis.call('HDEL', KEYS[3], ARGV[1]) end
if new then return 1 else return 0 end";

const RESEND: &str = "
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'attempts', 0, 'claimed_until', 0)
redis.call('HDEL', KEYS[1], 'delivered_at', 'given_up_at')
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
if take(KEYS[2], ARGV[1], 0) then redis.call('HDEL', KEYS[3], ARGV[1]) end
return 1";

const ACK: &str = "
if take(KEYS[1], ARGV[1], 0) then redis.call('HDEL', KEYS[2], ARGV[1]) return 1 end
return 0";

const RELEASE: &str = "
local p = take(KEYS[1], ARGV[1], 0)
if p then
  redis.call('RPUSH', KEYS[2], p)
  redis.call('HINCRBY', KEYS[3], ARGV[1], -1)
  return 1
end
return 0";

const DEAD: &str = "
local removed = take(KEYS[1], ARGV[1], 0)
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[2])
if removed then return 1 end
return 0";

const CLAIM: &str = "
local max = '+inf'
if ARGV[3] == '1' then max = ARGV[1] end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', max, 'LIMIT', 0, 100)
local skip = {}
for i = 5, #ARGV do skip[ARGV[i]] = true end
for _, id in ipairs(ids) do
  if not skip[id] then
    local k = ARGV[4] .. id
    if redis.call('EXISTS', k) == 0 then
      redis.call('ZREM', KEYS[1], id)
    elseif tonumber(redis.call('HGET', k, 'claimed_until') or '0') < tonumber(ARGV[1]) then
      local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
      redis.call('HSET', k, 'claimed_until', until_ms)
      redis.call('ZADD', KEYS[1], until_ms, id)
      local n = redis.call('HINCRBY', k, 'attempts', 1)
      local f = redis.call('HMGET', k, 'body', 'target')
      return {id, f[1], f[2], n}
    end
  end
end
return nil";

const SETTLE: &str = "
if ARGV[1] == 'retry' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('HSET', KEYS[2], 'claimed_until', 0, 'last_error', ARGV[4])
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'claimed_until', 0, ARGV[1], ARGV[3], 'last_error', ARGV[4])
end
return 1";

/// The reliable Redis queue over a [`Transport`].
pub struct RedisQueue {
    t: Arc<dyn Transport>,
    name: String,
    consumer: String,
    opts: QueueOptions,
}

fn ms(t: f64) -> String {
    format!("{}", (t * 1000.0).round() as i64)
}

impl RedisQueue {
    /// The queue `name` consumed as `consumer` over `t`.
    pub fn new(t: Arc<dyn Transport>, name: &str, consumer: String, opts: QueueOptions) -> Self {
        Self {
            t,
            name: name.to_string(),
            consumer,
            opts,
        }
    }

    /// The transport.
    pub(crate) fn t(&self) -> &dyn Transport {
        self.t.as_ref()
    }

    /// The queue's name (its list).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// This process's consumer id.
    pub(crate) fn consumer_id(&self) -> &str {
        &self.consumer
    }

    /// How long outcome records live, in whole seconds, as a script argument.
    pub(crate) fn outcome_ttl_secs(&self) -> String {
        self.opts.outcome_ttl.as_secs().max(1).to_string()
    }

    pub(crate) fn key(&self, part: &str) -> String {
        format!("{}:{part}", self.name)
    }

    pub(crate) fn processing(&self, consumer: &str) -> String {
        self.key(&format!("processing:{consumer}"))
    }

    fn lease_key(&self, consumer: &str) -> String {
        self.key(&format!("lease:{consumer}"))
    }

    pub(crate) fn outcome_key(&self, job_id: &str) -> String {
        self.key(&format!("outcome:{job_id}"))
    }

    fn ttl_ms(&self) -> String {
        self.opts.lease_ttl.as_millis().to_string()
    }

    async fn eval(&self, script: &str, keys: &[&str], args: &[&[u8]]) -> Result<Reply, QueueError> {
        let source = format!("{PRELUDE}{script}");
        let n = keys.len().to_string();
        let mut cmd: Vec<&[u8]> = vec![b"EVAL", source.as_bytes(), n.as_bytes()];
        cmd.extend(keys.iter().map(|k| k.as_bytes()));
        cmd.extend_from_slice(args);
        self.t.cmd(&cmd).await
    }

    /// [`Self::eval`], retried across connection errors for [`COMMIT_BUDGET`].
    pub(crate) async fn commit(
        &self,
        what: &str,
        script: &str,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<Reply, QueueError> {
        retrying(what, COMMIT_BUDGET, || self.eval(script, keys, args)).await
    }

    fn unexpected(&self, what: &str, r: &Reply) -> QueueError {
        QueueError::Backend {
            backend: self.describe(),
            msg: format!("unexpected reply to {what}: {r:?}"),
        }
    }

    async fn reclaim_consumer(&self, consumer: &str) -> Result<u64, QueueError> {
        let (lease, proc_, consumers) = (
            self.lease_key(consumer),
            self.processing(consumer),
            self.key("consumers"),
        );
        let keys = [lease.as_str(), &proc_, &self.name, &consumers];
        let r = self.commit("reclaim", RECLAIM, &keys, &[consumer.as_bytes()]).await?;
        Ok(r.as_int().unwrap_or(0).max(0) as u64)
    }

    async fn len(&self, key: &str) -> Result<u64, QueueError> {
        let r = self.t.cmd(&[b"LLEN", key.as_bytes()]).await?;
        r.as_int()
            .map(|n| n.max(0) as u64)
            .ok_or_else(|| self.unexpected("LLEN", &r))
    }

    /// The dead-letter record: the payload as text when it is UTF-8, else base64.
    fn dead_record(&self, d: &Delivery, reason: &str) -> String {
        let mut rec = serde_json::json!({
            "reason": reason, "deliveries": d.deliveries,
            "consumer": self.consumer, "timestamp": now(),
        });
        match d.text() {
            Ok(t) => rec["payload"] = t.into(),
            Err(_) => rec["payload_base64"] = base64::engine::general_purpose::STANDARD.encode(&d.payload).into(),
        }
        rec.to_string()
    }
}

#[async_trait]
impl Queue for RedisQueue {
    fn describe(&self) -> String {
        format!("redis {} ({})", self.t.describe(), self.name)
    }

    fn consumer(&self) -> &str {
        &self.consumer
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.t.cmd(&[b"PING"]).await.map(|_| ())
    }

    async fn mark_worker_started(&self) -> Result<(), QueueError> {
        let now = crate::db::now().to_string();
        let key = self.key("worker_started");
        self.t.cmd(&[b"SET", key.as_bytes(), now.as_bytes()]).await.map(|_| ())
    }

    async fn worker_started(&self) -> Result<Option<f64>, QueueError> {
        let key = self.key("worker_started");
        match self.t.cmd(&[b"GET", key.as_bytes()]).await? {
            Reply::Bulk(b) => Ok(std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok())),
            _ => Ok(None),
        }
    }

    async fn push(&self, payload: &[u8]) -> Result<(), QueueError> {
        self.t.cmd(&[b"LPUSH", self.name.as_bytes(), payload]).await.map(|_| ())
    }

    async fn lease(&self) -> Result<Option<Delivery>, QueueError> {
        let (proc_, counts) = (self.processing(&self.consumer), self.key("deliveries"));
        let (lease, consumers) = (self.lease_key(&self.consumer), self.key("consumers"));
        let keys = [self.name.as_str(), &proc_, &counts, &lease, &consumers];
        let ttl = self.ttl_ms();
        let r = self
            .eval(LEASE, &keys, &[ttl.as_bytes(), self.consumer.as_bytes()])
            .await?;
        match r {
            Reply::Nil => Ok(None),
            Reply::Array(ref items) => match items.as_slice() {
                [Reply::Bulk(p), n, Reply::Bulk(digest)] => Ok(Some(Delivery {
                    payload: p.clone(),
                    deliveries: n.as_int().unwrap_or(1).clamp(1, u32::MAX as i64) as u32,
                    receipt: proc_,
                    digest: String::from_utf8_lossy(digest).into_owned(),
                    enqueued_at: None,
                })),
                _ => Err(self.unexpected("lease", &r)),
            },
            other => Err(self.unexpected("lease", &other)),
        }
    }

    async fn heartbeat(&self) -> Result<(), QueueError> {
        let (lease, consumers) = (self.lease_key(&self.consumer), self.key("consumers"));
        let ttl = self.ttl_ms();
        self.eval(
            HEARTBEAT,
            &[&lease, &consumers],
            &[ttl.as_bytes(), self.consumer.as_bytes()],
        )
        .await
        .map(|_| ())
    }

    async fn outcome(&self, job_id: &str) -> Result<Option<String>, QueueError> {
        let key = self.outcome_key(job_id);
        let args: [&[u8]; 3] = [b"HGET", key.as_bytes(), b"body"];
        let r = retrying("reading an outcome", COMMIT_BUDGET, || self.t.cmd(&args)).await?;
        Ok(match r {
            Reply::Nil => None,
            Reply::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            other => return Err(self.unexpected("HGET", &other)),
        })
    }

    async fn finish(&self, d: &Delivery, f: Finish<'_>) -> Result<Recorded, QueueError> {
        let outcome = self.outcome_key(f.job_id);
        let (counts, callbacks, dead) = (self.key("deliveries"), self.key("callbacks"), self.key("dead"));
        let done = self.key("done");
        let keys = [
            outcome.as_str(),
            &d.receipt,
            &counts,
            &callbacks,
            &self.name,
            &dead,
            &done,
        ];
        let ttl = self.opts.outcome_ttl.as_secs().max(1).to_string();
        let now_ms = ms(now());
        let record = f.dead_reason.map(|r| self.dead_record(d, r)).unwrap_or_default();
        let scan = RECLAIMED_SCAN.to_string();
        let args: [&[u8]; 8] = [
            d.digest.as_bytes(),
            f.body.as_bytes(),
            f.target.as_bytes(),
            ttl.as_bytes(),
            now_ms.as_bytes(),
            f.job_id.as_bytes(),
            record.as_bytes(),
            scan.as_bytes(),
        ];
        let r = self.commit("recording the outcome", FINISH, &keys, &args).await?;
        Ok(if r.as_int() == Some(1) {
            Recorded::New
        } else {
            Recorded::Existing
        })
    }

    async fn resend(&self, d: &Delivery, job_id: &str) -> Result<bool, QueueError> {
        let outcome = self.outcome_key(job_id);
        let (counts, callbacks) = (self.key("deliveries"), self.key("callbacks"));
        let keys = [outcome.as_str(), &d.receipt, &counts, &callbacks];
        let now_ms = ms(now());
        let args: [&[u8]; 3] = [d.digest.as_bytes(), now_ms.as_bytes(), job_id.as_bytes()];
        let r = self.commit("re-sending the outcome", RESEND, &keys, &args).await?;
        Ok(r.as_int() == Some(1))
    }

    async fn ack(&self, d: &Delivery) -> Result<(), QueueError> {
        let counts = self.key("deliveries");
        self.commit("acknowledging", ACK, &[&d.receipt, &counts], &[d.digest.as_bytes()])
            .await
            .map(|_| ())
    }

    async fn release(&self, d: &Delivery) -> Result<(), QueueError> {
        let counts = self.key("deliveries");
        let keys = [d.receipt.as_str(), &self.name, &counts];
        self.commit("handing the lease back", RELEASE, &keys, &[d.digest.as_bytes()])
            .await
            .map(|_| ())
    }

    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), QueueError> {
        let (counts, dead) = (self.key("deliveries"), self.key("dead"));
        let record = self.dead_record(d, reason);
        let keys = [d.receipt.as_str(), &counts, &dead];
        self.commit("dead-lettering", DEAD, &keys, &[d.digest.as_bytes(), record.as_bytes()])
            .await
            .map(|_| ())
    }

    async fn reclaim_expired(&self) -> Result<u64, QueueError> {
        let key = self.key("consumers");
        let args: [&[u8]; 2] = [b"SMEMBERS", key.as_bytes()];
        let r = retrying("listing consumers", self.opts.lease_ttl / 2, || self.t.cmd(&args)).await?;
        let Reply::Array(members) = r else {
            return Err(self.unexpected("SMEMBERS", &r));
        };
        let mut moved = 0;
        for m in members {
            if let Some(consumer) = m.as_text() {
                if consumer != self.consumer {
                    moved += self.reclaim_consumer(consumer).await?;
                }
            }
        }
        Ok(moved)
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let queued = self.len(&self.name).await?;
        let dead = self.len(&self.key("dead")).await?;
        let in_flight = self.len(&self.processing(&self.consumer)).await?;
        Ok(Depth {
            queued,
            in_flight,
            dead,
        })
    }
}

#[async_trait]
impl Outbox for RedisQueue {
    async fn claim_callback(&self, due_only: bool, exclude: &[String]) -> Result<Option<PendingCallback>, QueueError> {
        let callbacks = self.key("callbacks");
        let (now_ms, claim_ms) = (ms(now()), ms(CLAIM_SECS));
        let prefix = self.outcome_key("");
        let mut args: Vec<&[u8]> = vec![
            now_ms.as_bytes(),
            claim_ms.as_bytes(),
            if due_only { b"1" } else { b"0" },
            prefix.as_bytes(),
        ];
        args.extend(exclude.iter().map(|k| k.as_bytes()));
        let r = self.eval(CLAIM, &[&callbacks], &args).await?;
        match r {
            Reply::Nil => Ok(None),
            Reply::Array(ref f) => match f.as_slice() {
                [id, body, target, n] => {
                    let text = |r: &Reply| r.as_text().map(str::to_string).unwrap_or_default();
                    Ok(Some(PendingCallback {
                        key: text(id),
                        job_id: text(id),
                        body: text(body),
                        target: text(target),
                        attempts: n.as_int().unwrap_or(1).clamp(1, u32::MAX as i64) as u32,
                    }))
                }
                _ => Err(self.unexpected("claiming a callback", &r)),
            },
            other => Err(self.unexpected("claiming a callback", &other)),
        }
    }

    async fn settle_callback(&self, p: &PendingCallback, s: Settle) -> Result<(), QueueError> {
        let (callbacks, outcome) = (self.key("callbacks"), self.outcome_key(&p.job_id));
        let (how, when, err) = match s {
            Settle::Delivered => ("delivered_at", now(), String::new()),
            Settle::Retry { at, error } => ("retry", at, error),
            Settle::GaveUp { error } => ("given_up_at", now(), error),
        };
        let when = ms(when);
        let args: [&[u8]; 4] = [how.as_bytes(), p.job_id.as_bytes(), when.as_bytes(), err.as_bytes()];
        self.commit("recording a callback attempt", SETTLE, &[&callbacks, &outcome], &args)
            .await
            .map(|_| ())
    }

    async fn pending_callbacks(&self) -> Result<u64, QueueError> {
        let r = self.t.cmd(&[b"ZCARD", self.key("callbacks").as_bytes()]).await?;
        r.as_int()
            .map(|n| n.max(0) as u64)
            .ok_or_else(|| self.unexpected("ZCARD", &r))
    }

    async fn next_callback_at(&self) -> Result<Option<f64>, QueueError> {
        let key = self.key("callbacks");
        let r = self
            .t
            .cmd(&[b"ZRANGE", key.as_bytes(), b"0", b"0", b"WITHSCORES"])
            .await?;
        Ok(match r {
            Reply::Array(items) => items
                .get(1)
                .and_then(Reply::as_text)
                .and_then(|s| s.parse::<f64>().ok())
                .map(|ms| ms / 1000.0),
            _ => None,
        })
    }
}
