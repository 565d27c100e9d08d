//! Why this exists: the Redis queue logic is written once, over plain commands, and sent
//! either over the native protocol (`redis://`, `rediss://`) or over Upstash's REST API
//! (`POST {url}` with the command as a JSON array, bearer token) — the API the Python worker
//! used. Both give the same [`Reply`], with bulk strings as bytes (a payload need not be UTF-8).
//! A non-200 REST answer is an error that says what the server said (never silence, never
//! the token).
//!
//! Connections: the native transport connects lazily and reconnects on the next command after
//! a connection error, so a worker starts (and answers `/livez`) while Redis is down, and a
//! Redis restart costs one failed command, which the queue retries.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;

use super::{redact_url, QueueError};
use easel_config::Secret;

/// Longest wait for one REST command: Upstash answers in milliseconds; 10 s (the Python
/// worker's poll timeout) means the network is gone.
const REST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a native connection: on loopback or a LAN it takes milliseconds; short, so
/// a worker polling for a Redis that is down notices it coming back within seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for one native command.
const NATIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis reply, as both transports give it.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The integer value (Redis sometimes answers numbers as strings).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The text of a bulk reply, if it is UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Reply::Bulk(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// Sends one command and returns its reply.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The server, without secrets.
    fn describe(&self) -> String;
    /// Runs `args` (command name first).
    async fn cmd(&self, args: &[&[u8]]) -> Result<Reply, QueueError>;
}

/// The native protocol over one multiplexed connection, made on first use and remade after
/// a connection error.
pub struct Native {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    server: String,
}

impl Native {
    /// A transport for `url` (`redis://` or `rediss://`); nothing is connected yet.
    pub fn new(url: &Secret) -> Result<Self, QueueError> {
        let server = redact_url(url);
        let client = redis::Client::open(url.expose()).map_err(|e| QueueError::Backend {
            backend: server.clone(),
            msg: format!("bad Redis URL: {e}"),
        })?;
        Ok(Self {
            client,
            conn: tokio::sync::Mutex::new(None),
            server,
        })
    }

    fn unreachable(&self, msg: String) -> QueueError {
        QueueError::Unreachable {
            backend: self.server.clone(),
            msg,
        }
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, QueueError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(NATIVE_TIMEOUT);
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.unreachable(format!("{e}; check the URL and that Redis is running")))?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

#[async_trait]
impl Transport for Native {
    fn describe(&self) -> String {
        self.server.clone()
    }

    async fn cmd(&self, args: &[&[u8]]) -> Result<Reply, QueueError> {
        let Some((name, rest)) = args.split_first() else {
            return Ok(Reply::Nil);
        };
        let mut conn = self.connection().await?;
        let mut cmd = redis::Cmd::new();
        cmd.arg(*name);
        for a in rest {
            cmd.arg(*a);
        }
        let value: redis::Value = match cmd.query_async(&mut conn).await {
            Ok(v) => v,
            Err(e) => return Err(self.classify(e).await),
        };
        from_native(value).map_err(|msg| QueueError::Backend {
            backend: self.server.clone(),
            msg,
        })
    }
}

impl Native {
    /// Connection errors drop the connection (the next command reconnects); a server still
    /// loading its data after a restart is unreachable too (retry), other errors are the
    /// backend's answer.
    async fn classify(&self, e: redis::RedisError) -> QueueError {
        let msg = e.to_string();
        let transient = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
            || msg.contains("LOADING")
            || msg.contains("TRYAGAIN");
        if transient {
            *self.conn.lock().await = None;
            self.unreachable(msg)
        } else {
            QueueError::Backend {
                backend: self.server.clone(),
                msg,
            }
        }
    }
}

fn from_native(v: redis::Value) -> Result<Reply, String> {
    use redis::Value as V;
    Ok(match v {
        V::Nil => Reply::Nil,
        V::Int(i) => Reply::Int(i),
        V::BulkString(b) => Reply::Bulk(b),
        V::SimpleString(s) => Reply::Bulk(s.into_bytes()),
        V::Okay => Reply::Bulk(b"OK".to_vec()),
        V::Boolean(b) => Reply::Int(i64::from(b)),
        V::Array(items) | V::Set(items) => Reply::Array(items.into_iter().map(from_native).collect::<Result<_, _>>()?),
        V::ServerError(e) => return Err(format!("{e:?}")),
        other => return Err(format!("unexpected reply {other:?}")),
    })
}

/// Upstash's REST API. Replies are asked for base64-encoded (`Upstash-Encoding: base64`) so a
/// payload's bytes come back exactly; arguments travel as JSON strings, so they must be UTF-8.
pub struct Upstash {
    http: reqwest::Client,
    url: String,
    token: Secret,
}

impl Upstash {
    /// A client for the REST endpoint `url` with bearer `token`.
    pub fn new(url: &str, token: Secret) -> Result<Self, QueueError> {
        let http = reqwest::Client::builder()
            .timeout(REST_TIMEOUT)
            .build()
            .map_err(|e| QueueError::Unreachable {
                backend: url.to_string(),
                msg: e.to_string(),
            })?;
        Ok(Self {
            http,
            url: url.to_string(),
            token,
        })
    }

    fn error(&self, msg: String) -> QueueError {
        QueueError::Backend {
            backend: self.url.clone(),
            msg,
        }
    }
}

#[async_trait]
impl Transport for Upstash {
    fn describe(&self) -> String {
        self.url.clone()
    }

    async fn cmd(&self, args: &[&[u8]]) -> Result<Reply, QueueError> {
        let texts = args
            .iter()
            .map(|a| std::str::from_utf8(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| self.error("the REST API takes UTF-8 arguments only".into()))?;
        let command = texts.first().copied().unwrap_or("");
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(self.token.expose())
            .header("Upstash-Encoding", "base64")
            .json(&texts)
            .send()
            .await;
        let resp = resp.map_err(|e| QueueError::Unreachable {
            backend: self.url.clone(),
            msg: e.to_string(),
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| self.error(format!("reading the answer: {e}")))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let said = body.get("error").and_then(Value::as_str).unwrap_or(text.as_str());
            let hint = if status.as_u16() == 401 {
                "; check UPSTASH_REDIS_REST_TOKEN"
            } else {
                ""
            };
            let err = format!("HTTP {status} to {command}: {said}{hint}");
            return Err(if crate::retry::retryable_status(status.as_u16()) {
                QueueError::Unreachable {
                    backend: self.url.clone(),
                    msg: err,
                }
            } else {
                self.error(err)
            });
        }
        if let Some(e) = body.get("error").and_then(Value::as_str) {
            return Err(self.error(e.to_string()));
        }
        from_json(body.get("result").unwrap_or(&Value::Null)).map_err(|m| self.error(m))
    }
}

fn from_json(v: &Value) -> Result<Reply, String> {
    Ok(match v {
        Value::Null => Reply::Nil,
        Value::Number(n) => Reply::Int(n.as_i64().ok_or_else(|| format!("non-integer reply {n}"))?),
        Value::String(s) => Reply::Bulk(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("reply {s:?} is not base64 ({e}) although Upstash-Encoding: base64 was asked"))?,
        ),
        Value::Bool(b) => Reply::Int(i64::from(*b)),
        Value::Array(items) => Reply::Array(items.iter().map(from_json).collect::<Result<_, _>>()?),
        Value::Object(_) => return Err(format!("unexpected reply {v}")),
    })
}
