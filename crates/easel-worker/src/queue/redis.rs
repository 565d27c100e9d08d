//! Why this exists: the production queue. Producers keep `LPUSH sdxl_queue <json>`; this
//! consumer makes it at-least-once with the reliable-queue pattern, each step one atomic
//! Lua script (run the same way over native Redis and Upstash REST):
//!
//! - lease: `LMOVE sdxl_queue sdxl_queue:processing:<consumer> RIGHT LEFT` (FIFO, as the
//!   Python `RPOP`), count the delivery in `sdxl_queue:deliveries` (field: SHA-1 of the
//!   payload), renew `sdxl_queue:lease:<consumer>` (a key with a TTL) and register the
//!   consumer in `sdxl_queue:consumers`;
//! - heartbeat: renew the lease key;
//! - reclaim (any worker): for each registered consumer whose lease key expired, move its
//!   processing list back to the consuming end of the queue and unregister it;
//! - ack / release / dead-letter: remove the payload from this consumer's processing list,
//!   then forget its count / push it back (uncounted) / push a record to `sdxl_queue:dead`.

use std::time::Duration;

use async_trait::async_trait;

use super::transport::{Reply, Transport};
use super::{Delivery, Depth, Queue, QueueError};
use crate::db::now;

const LEASE: &str = "
local p = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
redis.call('SET', KEYS[4], '1', 'PX', ARGV[1])
redis.call('SADD', KEYS[5], ARGV[2])
if not p then return nil end
local n = redis.call('HINCRBY', KEYS[3], redis.sha1hex(p), 1)
return {p, n}";

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

const ACK: &str = "
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed > 0 then redis.call('HDEL', KEYS[2], redis.sha1hex(ARGV[1])) end
return removed";

const RELEASE: &str = "
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('HINCRBY', KEYS[3], redis.sha1hex(ARGV[1]), -1)
end
return removed";

const DEAD: &str = "
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
redis.call('HDEL', KEYS[2], redis.sha1hex(ARGV[1]))
redis.call('LPUSH', KEYS[3], ARGV[2])
return removed";

/// The reliable Redis queue over a [`Transport`].
pub struct RedisQueue {
    t: Box<dyn Transport>,
    name: String,
    consumer: String,
    lease_ttl: Duration,
}

impl RedisQueue {
    /// The queue `name` consumed as `consumer` over `t`.
    pub fn new(t: Box<dyn Transport>, name: &str, consumer: String, lease_ttl: Duration) -> Self {
        Self {
            t,
            name: name.to_string(),
            consumer,
            lease_ttl,
        }
    }

    fn key(&self, part: &str) -> String {
        format!("{}:{part}", self.name)
    }

    fn processing(&self, consumer: &str) -> String {
        self.key(&format!("processing:{consumer}"))
    }

    fn lease_key(&self, consumer: &str) -> String {
        self.key(&format!("lease:{consumer}"))
    }

    fn ttl_ms(&self) -> String {
        self.lease_ttl.as_millis().to_string()
    }

    async fn eval(&self, script: &str, keys: &[&str], args: &[&str]) -> Result<Reply, QueueError> {
        let n = keys.len().to_string();
        let mut cmd = vec!["EVAL", script, n.as_str()];
        cmd.extend_from_slice(keys);
        cmd.extend_from_slice(args);
        self.t.cmd(&cmd).await
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
        let r = self
            .eval(RECLAIM, &[&lease, &proc_, &self.name, &consumers], &[consumer])
            .await?;
        Ok(r.as_int().unwrap_or(0).max(0) as u64)
    }

    async fn len(&self, key: &str) -> Result<u64, QueueError> {
        let r = self.t.cmd(&["LLEN", key]).await?;
        r.as_int()
            .map(|n| n.max(0) as u64)
            .ok_or_else(|| self.unexpected("LLEN", &r))
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

    async fn push(&self, payload: &str) -> Result<(), QueueError> {
        self.t.cmd(&["LPUSH", &self.name, payload]).await.map(|_| ())
    }

    async fn lease(&self) -> Result<Option<Delivery>, QueueError> {
        let (proc_, counts) = (self.processing(&self.consumer), self.key("deliveries"));
        let (lease, consumers) = (self.lease_key(&self.consumer), self.key("consumers"));
        let keys = [self.name.as_str(), &proc_, &counts, &lease, &consumers];
        let r = self.eval(LEASE, &keys, &[&self.ttl_ms(), &self.consumer]).await?;
        match r {
            Reply::Nil => Ok(None),
            Reply::Array(ref items) => match items.as_slice() {
                [Reply::Text(p), n] => {
                    let deliveries = n.as_int().unwrap_or(1).clamp(1, u32::MAX as i64) as u32;
                    Ok(Some(Delivery {
                        payload: p.clone(),
                        deliveries,
                        receipt: proc_,
                    }))
                }
                _ => Err(self.unexpected("lease", &r)),
            },
            other => Err(self.unexpected("lease", &other)),
        }
    }

    async fn heartbeat(&self) -> Result<(), QueueError> {
        let (lease, consumers) = (self.lease_key(&self.consumer), self.key("consumers"));
        self.eval(HEARTBEAT, &[&lease, &consumers], &[&self.ttl_ms(), &self.consumer])
            .await
            .map(|_| ())
    }

    async fn ack(&self, d: &Delivery) -> Result<(), QueueError> {
        let counts = self.key("deliveries");
        self.eval(ACK, &[&d.receipt, &counts], &[&d.payload]).await.map(|_| ())
    }

    async fn release(&self, d: &Delivery) -> Result<(), QueueError> {
        let counts = self.key("deliveries");
        self.eval(RELEASE, &[&d.receipt, &self.name, &counts], &[&d.payload])
            .await
            .map(|_| ())
    }

    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), QueueError> {
        let (counts, dead) = (self.key("deliveries"), self.key("dead"));
        let record = serde_json::json!({
            "payload": d.payload, "reason": reason, "deliveries": d.deliveries,
            "consumer": self.consumer, "timestamp": now(),
        })
        .to_string();
        self.eval(DEAD, &[&d.receipt, &counts, &dead], &[&d.payload, &record])
            .await
            .map(|_| ())
    }

    async fn reclaim_expired(&self) -> Result<u64, QueueError> {
        let r = self.t.cmd(&["SMEMBERS", &self.key("consumers")]).await?;
        let Reply::Array(members) = r else {
            return Err(self.unexpected("SMEMBERS", &r));
        };
        let mut moved = 0;
        for m in members {
            if let Reply::Text(consumer) = m {
                if consumer != self.consumer {
                    moved += self.reclaim_consumer(&consumer).await?;
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
