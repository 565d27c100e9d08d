//! Why this exists: the Redis queue logic is written once, over plain commands, and sent
//! either over the native protocol (`redis://`, `rediss://`) or over Upstash's REST API
//! (`POST {url}` with the command as a JSON array, bearer token) — the API the Python worker
//! used. Both give the same [`Reply`]. A non-200 REST answer is an error that says what the
//! server said (never silence, never the token).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{redact_url, QueueError};
use crate::config::Secret;

/// Longest wait for one REST command: Upstash answers in milliseconds; 10 s (the Python
/// worker's poll timeout) means the network is gone.
const REST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a native connection, and for one native command: same reasoning.
const NATIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis reply, as both transports give it.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Text(String),
    Array(Vec<Reply>),
}

impl Reply {
    /// The integer value (Redis sometimes answers numbers as strings).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Text(s) => s.parse().ok(),
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
    async fn cmd(&self, args: &[&str]) -> Result<Reply, QueueError>;
}

/// The native protocol, through a reconnecting connection manager.
pub struct Native {
    conn: redis::aio::ConnectionManager,
    server: String,
}

impl Native {
    /// Connects to `url` (`redis://` or `rediss://`).
    pub async fn connect(url: &Secret) -> Result<Self, QueueError> {
        let server = redact_url(url);
        let unreachable = |msg: String| QueueError::Unreachable {
            backend: server.clone(),
            msg,
        };
        let client = redis::Client::open(url.expose()).map_err(|e| unreachable(format!("bad Redis URL: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(NATIVE_TIMEOUT)
            .set_response_timeout(NATIVE_TIMEOUT);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| unreachable(format!("{e}; check the URL and that Redis is running")))?;
        Ok(Self { conn, server })
    }
}

#[async_trait]
impl Transport for Native {
    fn describe(&self) -> String {
        self.server.clone()
    }

    async fn cmd(&self, args: &[&str]) -> Result<Reply, QueueError> {
        let Some((name, rest)) = args.split_first() else {
            return Ok(Reply::Nil);
        };
        let mut conn = self.conn.clone();
        let value: redis::Value = redis::cmd(name).arg(rest).query_async(&mut conn).await.map_err(|e| {
            let msg = e.to_string();
            if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
                QueueError::Unreachable {
                    backend: self.server.clone(),
                    msg,
                }
            } else {
                QueueError::Backend {
                    backend: self.server.clone(),
                    msg,
                }
            }
        })?;
        from_native(value).map_err(|msg| QueueError::Backend {
            backend: self.server.clone(),
            msg,
        })
    }
}

fn from_native(v: redis::Value) -> Result<Reply, String> {
    use redis::Value as V;
    Ok(match v {
        V::Nil => Reply::Nil,
        V::Int(i) => Reply::Int(i),
        V::BulkString(b) => Reply::Text(String::from_utf8_lossy(&b).into_owned()),
        V::SimpleString(s) => Reply::Text(s),
        V::Okay => Reply::Text("OK".into()),
        V::Boolean(b) => Reply::Int(i64::from(b)),
        V::Array(items) | V::Set(items) => Reply::Array(items.into_iter().map(from_native).collect::<Result<_, _>>()?),
        other => return Err(format!("unexpected reply {other:?}")),
    })
}

/// Upstash's REST API.
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

    async fn cmd(&self, args: &[&str]) -> Result<Reply, QueueError> {
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(self.token.expose())
            .json(&args)
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
            return Err(self.error(format!(
                "HTTP {status} to {}: {said}{hint}",
                args.first().unwrap_or(&"")
            )));
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
        Value::String(s) => Reply::Text(s.clone()),
        Value::Bool(b) => Reply::Int(i64::from(*b)),
        Value::Array(items) => Reply::Array(items.iter().map(from_json).collect::<Result<_, _>>()?),
        Value::Object(_) => return Err(format!("unexpected reply {v}")),
    })
}
