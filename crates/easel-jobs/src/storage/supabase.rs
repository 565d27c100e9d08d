//! Why this exists: Supabase Storage REST exactly as the Python worker calls it —
//! `POST {SUPABASE_URL}/storage/v1/object/{bucket}/{key}` with the raw bytes, the real
//! `Content-Type` (the bucket refuses `application/octet-stream` with 415), `x-upsert: true`
//! (so retries are idempotent), `Authorization: Bearer <service key>` and `apikey`.
//! Success is 200/201 with `{"Id", "Key"}`.

use async_trait::async_trait;
use bytes::Bytes;

use super::{Storage, StorageError, UPLOAD_TIMEOUT};
use crate::retry::retryable_status;
use easel_config::Secret;

/// A Supabase Storage bucket.
pub struct SupabaseStorage {
    http: reqwest::Client,
    base: String,
    key: Secret,
    bucket: String,
}

impl SupabaseStorage {
    /// The bucket `bucket` of the project at `url`.
    pub fn new(url: &str, key: Secret, bucket: &str) -> Result<Self, StorageError> {
        let http = reqwest::Client::builder()
            .timeout(UPLOAD_TIMEOUT)
            .build()
            .map_err(|e| StorageError {
                store: url.to_string(),
                key: String::new(),
                msg: e.to_string(),
                retryable: false,
            })?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_string(),
            key,
            bucket: bucket.to_string(),
        })
    }

    fn error(&self, key: &str, msg: String, retryable: bool) -> StorageError {
        StorageError {
            store: self.describe(),
            key: key.to_string(),
            msg,
            retryable,
        }
    }
}

#[async_trait]
impl Storage for SupabaseStorage {
    fn describe(&self) -> String {
        format!("supabase {}/storage/v1 bucket {}", self.base, self.bucket)
    }

    /// A signed URL from `POST /storage/v1/object/sign/{bucket}/{key}` (`{"expiresIn": s}`),
    /// answered with `{"signedURL": "/object/sign/...?token=..."}`.
    async fn link(&self, key: &str, ttl: std::time::Duration) -> Result<Option<String>, StorageError> {
        let url = format!("{}/storage/v1/object/sign/{}/{}", self.base, self.bucket, key);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(self.key.expose())
            .header("apikey", self.key.expose())
            .json(&serde_json::json!({"expiresIn": ttl.as_secs().max(1)}))
            .send()
            .await
            .map_err(|e| self.error(key, format!("network error: {e}"), true))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let said = resp.text().await.unwrap_or_default();
            return Err(self.error(
                key,
                format!("signing a link: HTTP {status}: {said}"),
                retryable_status(status),
            ));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| self.error(key, format!("signing a link: not JSON: {e}"), false))?;
        let signed = body["signedURL"]
            .as_str()
            .ok_or_else(|| self.error(key, "signing a link: no signedURL in the answer".into(), false))?;
        Ok(Some(format!("{}/storage/v1{signed}", self.base)))
    }

    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StorageError> {
        let url = format!("{}/storage/v1/object/{}/{}", self.base, self.bucket, key);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(self.key.expose())
            .header("apikey", self.key.expose())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header("x-upsert", "true")
            .body(bytes)
            .send()
            .await
            .map_err(|e| self.error(key, format!("network error: {e}"), true))?;
        let status = resp.status().as_u16();
        if status == 200 || status == 201 {
            return Ok(());
        }
        let said = resp.text().await.unwrap_or_default();
        let hint = match status {
            401 | 403 => "; check SUPABASE_SERVICE_KEY",
            404 => "; check that the bucket exists (EASEL_BUCKET)",
            _ => "",
        };
        Err(self.error(
            key,
            format!("HTTP {status}: {}{hint}", said.chars().take(300).collect::<String>()),
            retryable_status(status),
        ))
    }
}
