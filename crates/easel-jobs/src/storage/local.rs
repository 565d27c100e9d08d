//! Why this exists: the embedded default store, so a fresh clone keeps its images with no
//! services: `{data_dir}/storage/{bucket}/{key}`. Writes go to a temporary file renamed into
//! place, so a crash never leaves half an image under the final name.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Storage, StorageError};

/// A bucket as a local folder.
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// The bucket folder `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Where `key` lives, refusing keys that would leave the bucket folder.
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        let rel = Path::new(key);
        let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
        (plain && !key.is_empty()).then(|| self.root.join(rel))
    }

    fn error(&self, key: &str, msg: String) -> StorageError {
        StorageError {
            store: self.describe(),
            key: key.to_string(),
            msg,
            retryable: false,
        }
    }
}

#[async_trait]
impl Storage for LocalStorage {
    fn describe(&self) -> String {
        format!("local folder {}", self.root.display())
    }

    async fn put(&self, key: &str, bytes: Bytes, _content_type: &str) -> Result<(), StorageError> {
        let path = self
            .path_of(key)
            .ok_or_else(|| self.error(key, "key is not a plain relative path".into()))?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let write = async {
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            tokio::fs::write(&tmp, &bytes).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        write
            .await
            .map_err(|e| self.error(key, format!("{e}; check that EASEL_DATA_DIR is writable")))
    }
}
