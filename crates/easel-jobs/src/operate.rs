//! Why this exists: what `easel jobs` (and any console) does to a job, without the CLI: open
//! the configured queue as a tool, cancel a job with the contract's `failed`/`cancelled`
//! outcome, and show payloads with anything secret-looking masked.

use serde_json::Value;

use crate::callback::target_of;
use crate::contract::{wire, ErrorKind, JobError};
use crate::db::now;
use crate::queue::control::{payload_id, CancelOutcome, CancelResult};
use crate::queue::{Queue, QueueError};
use easel_config::WorkerConfig;

/// The terminal body of a job cancelled before it started.
pub fn cancelled_body(payload: &[u8]) -> String {
    let text = std::str::from_utf8(payload).unwrap_or("");
    let (id, job_type) = match crate::contract::parse(text) {
        Ok(env) => (env.id.clone(), env.job_type_text()),
        Err(_) => (payload_id(payload).unwrap_or_default(), None),
    };
    let err = JobError::new(ErrorKind::Cancelled, "the job was cancelled before it started");
    wire::to_json(&wire::failed(&id, job_type, &err, now()))
}

/// Cancels job `id` on `q`, reporting to the callback target `config` names.
pub async fn cancel(q: &dyn Queue, config: &WorkerConfig, id: &str) -> Result<CancelResult, QueueError> {
    let outcome = CancelOutcome {
        body: &cancelled_body,
        target: target_of(&config.callback),
    };
    q.cancel(id, outcome).await
}

/// Key names whose values are never shown.
const SECRET_KEYS: &[&str] = &["token", "secret", "password", "key", "signature", "authorization"];

/// `payload` as pretty JSON with secret-looking values masked: keys such as `token` or
/// `api_key`, and the query string of every URL (signed URLs carry their token there).
/// Text that is not JSON is returned with its URLs' query strings masked.
pub fn masked_payload(payload: &str) -> String {
    match serde_json::from_str::<Value>(payload) {
        Ok(mut v) => {
            mask(&mut v);
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        Err(_) => mask_url_query(payload),
    }
}

fn mask(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|s| lower.contains(s)) && !val.is_null() {
                    *val = Value::String("****".into());
                } else {
                    mask(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask),
        Value::String(s) => *s = mask_url_query(s),
        _ => {}
    }
}

fn mask_url_query(s: &str) -> String {
    match s.split_once('?') {
        Some((head, _)) if head.contains("://") => format!("{head}?****"),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_signed_url_tokens_are_masked() {
        let p = r#"{"id":"j","api_key":"sk-1","metadata":{"reference_image_url":"https://x/o.png?token=abc"},"prompt":"p"}"#;
        let shown = masked_payload(p);
        assert!(!shown.contains("sk-1") && !shown.contains("abc"), "{shown}");
        assert!(
            shown.contains("https://x/o.png?****") && shown.contains("\"prompt\": \"p\""),
            "{shown}"
        );
    }

    #[test]
    fn a_cancelled_body_is_a_failed_callback_with_error_type_cancelled() {
        let body = cancelled_body(br#"{"id":"j1","type":"sdxl_image_fast","prompt":"p","user_id":"u"}"#);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["job_id"], "j1");
        assert_eq!(v["metadata"]["error_type"], "cancelled");
        assert_eq!(v["metadata"]["job_type"], "sdxl_image_fast");
    }
}
