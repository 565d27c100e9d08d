//! Why this exists: images go to one of three stores behind [`Storage`] — a local directory
//! (embedded default), Supabase Storage REST (what ourvidz uses), or any S3-compatible bucket —
//! at the contract's bucket-relative keys. Uploads are idempotent (upsert), so
//! [`put_with_retry`] can retry transient failures with jittered backoff within a time budget.

pub mod local;
pub mod s3;
pub mod supabase;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::metrics::Metrics;
use crate::retry::RetryPolicy;
use easel_config::StorageBackend;

/// Longest wait for one upload (both HTTP stores): a 1024² PNG is ~1.5 MB; 60 s covers a
/// slow link.
pub(crate) const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// An upload failure.
#[derive(Debug, thiserror::Error)]
#[error("storing {key} in {store}: {msg}")]
pub struct StorageError {
    pub store: String,
    pub key: String,
    pub msg: String,
    /// Whether trying again may succeed (429, 5xx, network).
    pub retryable: bool,
}

/// An object store.
#[async_trait]
pub trait Storage: Send + Sync {
    /// The store, for logs (no secrets).
    fn describe(&self) -> String;
    /// Stores `bytes` at bucket-relative `key` with `content_type`, replacing any object there.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StorageError>;
    /// A URL a browser can open to see object `key` for about `ttl` (signed where the store
    /// needs it), or `None` where the store gives none (local files are served by whoever
    /// reads the folder, e.g. the console).
    async fn link(&self, key: &str, ttl: Duration) -> Result<Option<String>, StorageError> {
        let _ = (key, ttl);
        Ok(None)
    }
}

/// Opens the configured store for `bucket`.
pub fn open(backend: &StorageBackend, bucket: &str) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(match backend {
        StorageBackend::Local { root } => Arc::new(local::LocalStorage::new(root.join(bucket))),
        StorageBackend::Supabase { url, key } => Arc::new(supabase::SupabaseStorage::new(url, key.clone(), bucket)?),
        StorageBackend::S3 { .. } => Arc::new(s3::S3Storage::new(backend)?),
    })
}

/// Uploads with `policy`'s retries on retryable errors; the last error otherwise.
pub async fn put_with_retry(
    store: &dyn Storage,
    policy: &RetryPolicy,
    metrics: &Metrics,
    key: &str,
    bytes: Bytes,
    content_type: &str,
) -> Result<(), StorageError> {
    let mut attempt = 1;
    let started = std::time::Instant::now();
    loop {
        let result = store.put(key, bytes.clone(), content_type).await;
        metrics.storage_attempt(result.is_ok());
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.retryable && policy.may_retry(attempt, started.elapsed()) => {
                let delay = policy.delay(attempt);
                tracing::warn!(key, attempt, delay_ms = delay.as_millis() as u64, error = %e, "upload failed; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
