//! Why this exists: every job whose id is known gets exactly one terminal callback, and a
//! crash must not lose it. The body is queued in the queue's shared outbox
//! ([`crate::queue::Outbox`]) in the same atomic step that records the job's outcome, and this
//! delivery loop — in every worker of the queue — sends queued bodies until they are
//! delivered: retried with jittered exponential backoff on 429/5xx/network errors, given up
//! (and logged loudly) on other answers or after the attempt cap. A callback queued by a
//! worker that died is sent by whichever worker claims it next. With no callback endpoint
//! configured (embedded defaults) the outcome record is the result and "sending" only marks it.
//!
//! Wire: `POST <url>` with `Authorization: Bearer <SUPABASE_SERVICE_KEY>`, `Content-Type:
//! application/json`, `X-Easel-Delivery-Id: <job id>:<status>` (the same on every repeat, so an
//! edge function can drop one), the stored bytes unchanged; only HTTP 200 counts as delivered.
//! With `EASEL_CALLBACK_SECRET` set, also `X-Easel-Timestamp: <unix seconds>` and
//! `X-Easel-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
//!
//! Invariant: a callback is sent by one process at a time (the outbox's claim), and leaves the
//! outbox only once settled; a sender that dies after the endpoint answered 200 but before
//! settling leaves it to be sent again, with the same delivery id.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::now;
use crate::logsafe::Safe;
use crate::metrics::{CallbackResult, Metrics};
use crate::queue::outbox::NO_ENDPOINT;
use crate::queue::{Outbox, PendingCallback, QueueError, Settle};
use crate::retry::RetryPolicy;
use easel_config::{CallbackTarget, Secret};

/// Longest wait for one callback answer (the Python worker's `timeout=30`).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for undelivered callbacks before leaving them for the next start
/// (or another worker).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the delivery loop sleeps without checking the outbox (callbacks queued by other
/// workers are not announced).
const IDLE_RECHECK: Duration = Duration::from_secs(2);
/// Bytes of a failed answer kept in logs and the outbox.
const ANSWER_PREVIEW: usize = 300;
/// The idempotency header: `<job id>:<status>`, equal on every repeat of one outcome.
pub const DELIVERY_ID_HEADER: &str = "X-Easel-Delivery-Id";

/// How one attempt went.
enum Attempt {
    Delivered,
    Retry(String),
    GiveUp(String),
}

/// Where callbacks to `target` go, as stored with each outcome.
pub fn target_of(target: &CallbackTarget) -> &str {
    match target {
        CallbackTarget::Http { url, .. } => url,
        CallbackTarget::JobTable => NO_ENDPOINT,
    }
}

/// A progress callback is dropped if the endpoint takes longer than this: the job must not wait.
const PROGRESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The delivery loop over a queue's outbox (terminal callbacks), and best-effort progress
/// callbacks.
pub struct Notifier {
    outbox: Arc<dyn Outbox>,
    target: CallbackTarget,
    secret: Option<Secret>,
    http: reqwest::Client,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
    wake: Notify,
}

impl Notifier {
    /// A notifier sending what `outbox` holds to `target`.
    pub fn new(
        outbox: Arc<dyn Outbox>,
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
            outbox,
            target,
            secret,
            http,
            policy,
            metrics,
            wake: Notify::new(),
        }
    }

    /// Where this worker's callbacks go, as stored with each outcome.
    pub fn target(&self) -> &str {
        target_of(&self.target)
    }

    /// Wakes the delivery loop (a callback was just queued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Callbacks neither delivered nor given up.
    pub async fn pending(&self) -> Result<u64, QueueError> {
        self.outbox.pending_callbacks().await
    }

    /// Delivers queued bodies until `shutdown`, then flushes for up to [`FLUSH_TIMEOUT`].
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.outbox.claim_callback(true, &[]).await {
                Ok(Some(p)) => {
                    self.attempt(p).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the callback outbox"),
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
            let claimed = tokio::time::timeout_at(deadline, self.outbox.claim_callback(false, &tried)).await;
            let Ok(Ok(Some(p))) = claimed else {
                break;
            };
            tried.push(p.key.clone());
            let _ = tokio::time::timeout_at(deadline, self.attempt(p)).await;
        }
        match tokio::time::timeout(FLUSH_TIMEOUT, self.pending()).await {
            Ok(Ok(0)) => tracing::info!("all callbacks delivered"),
            Ok(Ok(n)) => tracing::warn!(
                pending = n,
                "callbacks left in the outbox; the next worker to start (or any running one) sends them"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot count undelivered callbacks"),
            Err(_) => tracing::error!("cannot count undelivered callbacks: the queue does not answer"),
        }
    }

    async fn next_due_in(&self) -> Option<Duration> {
        let next = self.outbox.next_callback_at().await.ok()??;
        Some(Duration::from_secs_f64((next - now()).max(0.0)))
    }

    async fn attempt(&self, p: PendingCallback) {
        let span = tracing::info_span!("callback", job.id = %Safe(&p.job_id), attempt = p.attempts);
        let _enter = span.enter();
        let result = if p.target == NO_ENDPOINT {
            Attempt::Delivered
        } else {
            self.send(&p).await
        };
        let (settle, label) = match result {
            Attempt::Delivered => (Settle::Delivered, CallbackResult::Delivered),
            Attempt::Retry(error) if self.policy.may_retry(p.attempts, Duration::ZERO) => {
                let at = now() + self.policy.delay(p.attempts).as_secs_f64();
                (Settle::Retry { at, error }, CallbackResult::Retry)
            }
            Attempt::Retry(error) | Attempt::GiveUp(error) => (Settle::GaveUp { error }, CallbackResult::GaveUp),
        };
        self.metrics.callback(label);
        log_attempt(label, &settle, &p);
        if let Err(e) = self.outbox.settle_callback(&p, settle).await {
            tracing::error!(error = %e, "cannot record a callback attempt; it will be sent again (same delivery id)");
        }
    }

    /// A callback request: JSON body, idempotency key, bearer token and signature.
    fn request(&self, target: &str, body: &str, delivery: String) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_ID_HEADER, delivery);
        if let CallbackTarget::Http { bearer: Some(key), .. } = &self.target {
            req = req.bearer_auth(key.expose());
        }
        if let Some(secret) = &self.secret {
            let ts = (now() as u64).to_string();
            req = req
                .header("X-Easel-Timestamp", &ts)
                .header("X-Easel-Signature", signature(secret, &ts, body));
        }
        req.body(body.to_string())
    }

    /// Sends a `processing` callback once, best-effort (no outbox, no retry, 2 s at most);
    /// `seq` makes each one's idempotency key distinct. Nothing is sent without an endpoint.
    pub async fn send_progress(&self, job_id: &str, body: &str, seq: u64) -> bool {
        let CallbackTarget::Http { url, .. } = &self.target else {
            return false;
        };
        let delivery = format!("{}:{seq}", delivery_id(job_id, body));
        let sent = self.request(url, body, delivery).timeout(PROGRESS_TIMEOUT).send().await;
        matches!(sent, Ok(r) if r.status().is_success())
    }

    async fn send(&self, p: &PendingCallback) -> Attempt {
        let req = self.request(&p.target, &p.body, delivery_id(&p.job_id, &p.body));
        match req.send().await {
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
                if crate::retry::retryable_status(status) {
                    Attempt::Retry(msg)
                } else {
                    Attempt::GiveUp(msg)
                }
            }
        }
    }
}

/// The idempotency key of one outcome: `<job id>:<status>` (`completed` or `failed`). The job
/// id is percent-encoded where it is not a safe header character.
pub fn delivery_id(job_id: &str, body: &str) -> String {
    let status = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let mut id = String::new();
    for b in job_id.bytes() {
        if b.is_ascii_alphanumeric() || b"._-~".contains(&b) {
            id.push(b as char);
        } else {
            id.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{id}:{status}")
}

fn log_attempt(result: CallbackResult, settle: &Settle, p: &PendingCallback) {
    let err = match settle {
        Settle::Retry { error, .. } | Settle::GaveUp { error } => Safe(error).to_string(),
        Settle::Delivered => String::new(),
    };
    match result {
        CallbackResult::Delivered => tracing::info!(target_url = %p.target, "callback delivered"),
        CallbackResult::Retry => tracing::warn!(error = %err, "callback failed; will retry"),
        CallbackResult::GaveUp => tracing::error!(
            error = %err,
            body = %Safe(&p.body),
            "callback given up; the body stays in the queue's outcome record"
        ),
    }
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

    #[test]
    fn the_delivery_id_names_the_job_and_its_status() {
        assert_eq!(delivery_id("j-1", r#"{"status":"completed"}"#), "j-1:completed");
        assert_eq!(delivery_id("a b\r\n", r#"{"status":"failed"}"#), "a%20b%0D%0A:failed");
    }
}
