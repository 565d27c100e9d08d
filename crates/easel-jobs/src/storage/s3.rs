//! Why this exists: S3-compatible stores (AWS, R2, Supabase's S3 endpoint, SeaweedFS, MinIO)
//! through `object_store`, a well-kept client that signs requests and speaks every dialect.
//! Its own retries are off: [`super::put_with_retry`] is the one retry policy in force, so an
//! outage is bounded by the numbers in [`crate::retry`].

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{Attribute, Attributes, ClientOptions, ObjectStore, PutOptions, PutPayload, RetryConfig};

use super::{Storage, StorageError, UPLOAD_TIMEOUT};
use easel_config::StorageBackend;

/// An S3-compatible bucket.
pub struct S3Storage {
    store: AmazonS3,
    bucket: String,
    endpoint: String,
}

impl S3Storage {
    /// The bucket described by an [`StorageBackend::S3`].
    pub fn new(backend: &StorageBackend) -> Result<Self, StorageError> {
        let StorageBackend::S3 {
            bucket,
            endpoint,
            region,
            access_key_id,
            secret_access_key,
        } = backend
        else {
            return Err(StorageError {
                store: "s3".into(),
                key: String::new(),
                msg: "not an S3 backend".into(),
                retryable: false,
            });
        };
        let retry = RetryConfig {
            max_retries: 0,
            ..Default::default()
        };
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_retry(retry)
            .with_client_options(ClientOptions::new().with_timeout(UPLOAD_TIMEOUT));
        if let Some(ep) = endpoint {
            b = b.with_endpoint(ep).with_allow_http(ep.starts_with("http://"));
        }
        if let Some(id) = access_key_id {
            b = b.with_access_key_id(id);
        }
        if let Some(secret) = secret_access_key {
            b = b.with_secret_access_key(secret.expose());
        }
        let store = b.build().map_err(|e| StorageError {
            store: format!("s3://{bucket}"),
            key: String::new(),
            msg: format!("{e}; check EASEL_STORAGE, EASEL_S3_ENDPOINT and the AWS_* variables"),
            retryable: false,
        })?;
        let endpoint = endpoint.clone().unwrap_or_else(|| "aws".into());
        Ok(Self {
            store,
            bucket: bucket.clone(),
            endpoint,
        })
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn describe(&self) -> String {
        format!("s3://{} at {}", self.bucket, self.endpoint)
    }

    /// A presigned GET (signed locally, no request made).
    async fn link(&self, key: &str, ttl: std::time::Duration) -> Result<Option<String>, StorageError> {
        let url = self
            .store
            .signed_url(reqwest::Method::GET, &ObjectPath::from(key), ttl)
            .await
            .map_err(|e| StorageError {
                store: self.describe(),
                key: key.to_string(),
                msg: format!("cannot sign a link: {e}"),
                retryable: false,
            })?;
        Ok(Some(url.to_string()))
    }

    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StorageError> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.to_string().into());
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        let result = self
            .store
            .put_opts(&ObjectPath::from(key), PutPayload::from(bytes), opts)
            .await;
        result.map(|_| ()).map_err(|e| {
            use object_store::Error as E;
            let retryable = !matches!(
                e,
                E::PermissionDenied { .. }
                    | E::Unauthenticated { .. }
                    | E::NotSupported { .. }
                    | E::NotImplemented
                    | E::InvalidPath { .. }
            );
            StorageError {
                store: self.describe(),
                key: key.to_string(),
                msg: e.to_string(),
                retryable,
            }
        })
    }
}
