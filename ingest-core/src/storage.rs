//! Object storage through `object_store`, chosen from `INGEST_STORAGE_URL`.
//!
//! Invariant: every write is create-only and atomically visible. On local disk, object_store
//! stages a put as `<name>#N` next to the destination, which would put partial files under the
//! watched data path after a crash; so local writes are staged under `_ingest/staging/` and
//! published with a create-only hard link (`copy_if_not_exists`). Cloud stores publish
//! atomically on their own and get `PutMode::Create` (`If-None-Match: *`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

use crate::config::redact_url;
use crate::naming::STATE_PREFIX;

/// A storage operation that failed, with the object and what to check.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path} in {store} failed: {source}")]
pub struct StorageError {
    pub op: &'static str,
    pub path: String,
    pub store: String,
    #[source]
    pub source: object_store::Error,
}

/// Outcome of a create-only write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    AlreadyExists,
}

/// The landing store. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    stage_locally: bool,
    label: Arc<str>,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

impl Storage {
    /// Builds the store for `url`. Local directories are created if missing. Cloud credentials
    /// come from the standard `AWS_*` / `AZURE_*` variables (object_store's `from_env`).
    pub fn from_url(url: &Url) -> Result<Storage, String> {
        let label: Arc<str> = redact_url(url).into();
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|_| format!("INGEST_STORAGE_URL={label} is not a local path"))?;
                std::fs::create_dir_all(&dir).map_err(|e| {
                    format!(
                        "cannot create {}: {e}; check INGEST_STORAGE_URL and permissions",
                        dir.display()
                    )
                })?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| format!("cannot open {}: {e}", dir.display()))?
                    .with_fsync(true);
                Arc::new(fs)
            }
            "s3" | "s3a" => {
                let s3 = AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .with_conditional_put(S3ConditionalPut::ETagMatch)
                    .build()
                    .map_err(|e| format!("INGEST_STORAGE_URL={label}: {e}"))?;
                with_prefix(s3, url)
            }
            _ => {
                let az = MicrosoftAzureBuilder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| format!("INGEST_STORAGE_URL={label}: {e}"))?;
                with_prefix(az, url)
            }
        };
        Ok(Storage {
            store,
            stage_locally: url.scheme() == "file",
            label,
        })
    }

    fn error(&self, op: &'static str, path: &str, source: object_store::Error) -> StorageError {
        StorageError {
            op,
            path: path.to_string(),
            store: self.label.to_string(),
            source,
        }
    }

    /// Writes `bytes` at `path` unless something is already there. Never overwrites.
    pub async fn create(&self, path: &str, bytes: Bytes) -> Result<Created, StorageError> {
        let location = Path::from(path);
        let result = if self.stage_locally {
            let staging = Path::from(format!("{STATE_PREFIX}/staging/{}", unique_name()));
            self.store
                .put(&staging, PutPayload::from_bytes(bytes))
                .await
                .map_err(|e| self.error("stage", staging.as_ref(), e))?;
            let published = self.store.copy_if_not_exists(&staging, &location).await;
            if let Err(e) = self.store.delete(&staging).await {
                tracing::warn!(path = %staging, error = %e, "could not remove a staging file");
            }
            published
        } else {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            self.store
                .put_opts(&location, PutPayload::from_bytes(bytes), opts)
                .await
                .map(|_| ())
        };
        match result {
            Ok(()) => Ok(Created::New),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
            Err(e) => Err(self.error("create", path, e)),
        }
    }

    /// Reads a whole object; `None` when it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, StorageError> {
        match self.store.get(&Path::from(path)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.error("read", path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", path, e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, path: &str) -> Result<bool, StorageError> {
        match self.store.head(&Path::from(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("check", path, e)),
        }
    }

    /// Proves the service can write here: writes and deletes a probe outside the data path.
    pub async fn probe(&self) -> Result<(), StorageError> {
        let path = format!("{STATE_PREFIX}/probe/{}", unique_name());
        match self
            .create(&path, Bytes::from_static(b"ingest write probe\n"))
            .await?
        {
            Created::New => {}
            Created::AlreadyExists => {
                return Err(self.error(
                    "probe",
                    &path,
                    object_store::Error::Generic {
                        store: "ingest",
                        source: "a fresh probe name already exists".into(),
                    },
                ))
            }
        }
        self.store
            .delete(&Path::from(path.as_str()))
            .await
            .map_err(|e| self.error("delete probe", &path, e))
    }

    /// The store URL without secrets, for logs.
    pub fn label(&self) -> &str {
        &self.label
    }
}

fn with_prefix(store: impl ObjectStore, url: &Url) -> Arc<dyn ObjectStore> {
    // For abfss://container@account.dfs.../prefix and s3://bucket/prefix the path is the prefix.
    let prefix = url.path().trim_matches('/');
    if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}
