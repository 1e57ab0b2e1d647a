//! Object storage through `object_store`, chosen from `INGEST_STORAGE_URL`.
//!
//! Invariant: every write is create-only and atomically visible. On local disk, object_store
//! stages a put as `<name>#N` next to the destination, which would put partial files under the
//! watched data path after a crash; so local writes are staged under `_ingest/staging/` and
//! published with a create-only hard link (`copy_if_not_exists`). Cloud stores publish small
//! files atomically with `PutMode::Create` (`If-None-Match: *`); large files are uploaded in
//! parts to `_ingest/staging/` and published with a create-only copy on S3; on Azure, whose copy
//! may complete after it answers, every file is one create-only Put Blob. The start-up probe checks
//! that the store really refuses to overwrite and refuses a store that does not, unless
//! `INGEST_ACCEPT_AT_LEAST_ONCE=true`: writes then fall back to check-then-put, where racing
//! writers can lose or duplicate records, and the service says so. A refused create counts as
//! "already exists" only once a HEAD finds the object.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::{redact_url, Config, MultipartPolicy};

mod build;
mod explain;
mod listing;
mod multipart;
mod probe;

pub use build::{azure_store, one_line, store_at, Holds, Kind};
pub use probe::ProbeError;

pub use crate::config::storage::STATE_PREFIX;

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

impl StorageError {
    /// Whether the store refused the operation for want of permission (or credentials), as
    /// opposed to failing: retrying cannot help.
    pub fn is_refused(&self) -> bool {
        use explain::{diagnose, Category, Diagnosis};
        matches!(
            diagnose(Category::of(&self.source), &one_line(self)),
            Diagnosis::NoPermission | Diagnosis::BadCredentials
        )
    }

    /// Whether the store refused the object's name (too long, a character it does not take): an
    /// S3 or Azure 400 naming the name ([`explain::Diagnosis::NameRefused`]), a HEAD answered
    /// 400 (a HEAD has no body to say why, and its only input is the name), or a file system's
    /// "file name too long" or "illegal byte sequence". No retry can help, and no setting is
    /// wrong: the name is.
    pub fn is_name_refused(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&self.source);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                // EILSEQ (84 on Linux): a file system that takes only valid UTF-8 names.
                if io.kind() == std::io::ErrorKind::InvalidFilename || io.raw_os_error() == Some(84)
                {
                    return true;
                }
            }
            cause = e.source();
        }
        use explain::{diagnose, Category, Diagnosis};
        let text = one_line(&self.source);
        diagnose(Category::of(&self.source), &text) == Diagnosis::NameRefused
            || (self.op == "check" && text.contains("status code: 400"))
    }

    /// One line for a refused operation ([`StorageError::is_refused`]): what was refused, and
    /// the permissions the service needs.
    pub fn refused_line(&self) -> String {
        explain::refused(self.op, &self.path, &self.store, &one_line(&self.source))
    }
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
    kind: Kind,
    label: Arc<str>,
    multipart: MultipartPolicy,
    fail_multipart_after_parts: Option<usize>,
    /// Fault injection: which creates answer a conflict (`INGEST_FAULT_CONFLICT_CREATES`), and
    /// how many creates were made so far.
    conflict_creates: u64,
    creates: Arc<AtomicU64>,
    /// `INGEST_ACCEPT_AT_LEAST_ONCE`: run on a store that overwrites anyway.
    accept_at_least_once: bool,
    /// What the store can do: assumed until [`Storage::probe`] finds out.
    caps: Capabilities,
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

/// Whether a create-only write or copy was refused because the name exists (stores answer
/// with "already exists" or with a failed `If-None-Match` precondition).
fn refused(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
    )
}

/// The object at `path`, a name this service made (already safe for object keys: a path
/// template's values are percent-encoded where needed, `config::layout`), taken as it is:
/// `Path::from` would encode it again (`%` as `%25`, UTF-8 as `%XX`), and readers would see
/// other names than the ones the README describes.
pub fn key(path: &str) -> Path {
    Path::parse(path).unwrap_or_else(|_| Path::from(path))
}

fn staging_path() -> Path {
    Path::from(format!("{STATE_PREFIX}/staging/{}", unique_name()))
}

/// What the start-up probe found out about the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// A second create-only write of the same name fails instead of overwriting.
    pub create_only: bool,
    /// Large files go through multipart uploads (published by a create-only copy).
    pub multipart: bool,
}

impl Storage {
    /// Builds the store for the configured URL. Local directories are created if missing.
    /// Cloud credentials come from the standard `AWS_*` / `AZURE_*` variables and
    /// `AZURE_STORAGE_CONNECTION_STRING`. Nothing is sent until [`Storage::probe`].
    pub fn from_config(config: &Config) -> Result<Storage, String> {
        let (store, kind) = build::store(config)?;
        Ok(Storage {
            store,
            kind,
            label: redact_url(&config.storage_url).into(),
            multipart: config.multipart,
            fail_multipart_after_parts: config.fault.fail_multipart_after_parts,
            conflict_creates: config.fault.conflict_creates,
            accept_at_least_once: config.accept_at_least_once,
            creates: Arc::new(AtomicU64::new(0)),
            caps: Capabilities {
                create_only: true,
                multipart: kind != Kind::Local,
            },
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
    ///
    /// A refusal is confirmed before it is believed: object_store reports every HTTP 409 as
    /// "already exists", but S3 answers 409 while another conditional write to the same name is
    /// in flight (and Azure for other conflicts). Unless the object is really there, the refusal
    /// is an error to retry, never a reason to skip or commit.
    pub async fn create(&self, path: &str, bytes: Bytes) -> Result<Created, StorageError> {
        let location = key(path);
        let n = self.creates.fetch_add(1, Ordering::Relaxed);
        let result = if n < 64 && self.conflict_creates & (1 << n) != 0 {
            Err(object_store::Error::AlreadyExists {
                path: path.to_string(),
                source:
                    "a conflicting write is in flight (injected by INGEST_FAULT_CONFLICT_CREATES)"
                        .into(),
            })
        } else if !self.caps.create_only {
            self.check_then_put(&location, bytes).await
        } else if self.caps.multipart && bytes.len() > self.multipart.threshold_bytes {
            self.stage_and_publish(&location, bytes, true).await
        } else {
            self.put_create(&location, bytes).await
        };
        match result {
            Ok(()) => Ok(Created::New),
            Err(e) if refused(&e) => match self.store.head(&location).await {
                Ok(_) => Ok(Created::AlreadyExists),
                Err(object_store::Error::NotFound { .. }) => {
                    metrics::counter!("ingest_storage_conflicts_total").increment(1);
                    Err(self.error(
                        "create (refused, yet nothing is there: a conflicting write in flight)",
                        path,
                        e,
                    ))
                }
                Err(head) => Err(self.error("create (refused; confirming failed)", path, head)),
            },
            Err(e) => Err(self.error("create", path, e)),
        }
    }

    /// One create-only write in a single request (staged and hard-linked on local disk).
    async fn put_create(&self, location: &Path, bytes: Bytes) -> Result<(), object_store::Error> {
        if self.kind == Kind::Local {
            return self.stage_and_publish(location, bytes, false).await;
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(location, PutPayload::from_bytes(bytes), opts)
            .await
            .map(|_| ())
    }

    /// Uploads to a staging name outside the data path, then publishes with a create-only
    /// copy (a hard link on local disk), then removes the staging object.
    async fn stage_and_publish(
        &self,
        location: &Path,
        bytes: Bytes,
        in_parts: bool,
    ) -> Result<(), object_store::Error> {
        let staging = staging_path();
        if in_parts {
            let started = std::time::Instant::now();
            let size = bytes.len();
            let mut upload = self.store.put_multipart(&staging).await?;
            let parts = multipart::send(
                upload.as_mut(),
                bytes,
                self.multipart.part_bytes,
                self.fail_multipart_after_parts,
            )
            .await?;
            metrics::counter!("ingest_multipart_uploads_total").increment(1);
            tracing::debug!(path = %location, parts, bytes = size,
                elapsed_ms = started.elapsed().as_millis() as u64, "uploaded in parts");
        } else {
            self.store
                .put(&staging, PutPayload::from_bytes(bytes))
                .await?;
        }
        let published = self.store.copy_if_not_exists(&staging, location).await;
        if let Err(e) = self.store.delete(&staging).await {
            tracing::warn!(path = %staging, error = %e, "could not remove a staging object");
        }
        published
    }

    /// The fallback for stores that overwrite despite `If-None-Match`: look, then write.
    /// A concurrent writer can slip in between (a duplicate, never a loss).
    async fn check_then_put(
        &self,
        location: &Path,
        bytes: Bytes,
    ) -> Result<(), object_store::Error> {
        match self.store.head(location).await {
            Ok(_) => {
                return Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "found before writing".into(),
                })
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        self.store
            .put(location, PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
    }

    /// Reads a whole object; `None` when it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, StorageError> {
        match self.store.get(&key(path)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.error("read", path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", path, e)),
        }
    }

    /// Deletes an object (the service only ever deletes its own claim of a moment ago and its
    /// staging objects); one that is not there is fine.
    pub async fn delete(&self, path: &str) -> Result<(), StorageError> {
        match self.store.delete(&key(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", path, e)),
        }
    }

    /// An object's size (`None`: not there).
    pub async fn size(&self, path: &str) -> Result<Option<u64>, StorageError> {
        match self.store.head(&key(path)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("check", path, e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, path: &str) -> Result<bool, StorageError> {
        match self.store.head(&key(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("check", path, e)),
        }
    }
}

impl Storage {
    fn explain(&self, e: &object_store::Error) -> String {
        explain::explain(
            self.kind,
            &self.label,
            explain::Category::of(e),
            &one_line(e),
        )
    }

    /// The underlying client (rooted at the URL's prefix), for tools and tests that read back.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The store URL without secrets, for logs.
    pub fn label(&self) -> &str {
        &self.label
    }
}

#[cfg(test)]
mod tests {
    use super::StorageError;

    fn error(op: &'static str, source: object_store::Error) -> StorageError {
        StorageError {
            op,
            path: "t/x".into(),
            store: "s".into(),
            source,
        }
    }

    #[tokio::test]
    async fn a_name_the_file_system_finds_too_long_is_a_refused_name() {
        use object_store::ObjectStoreExt;
        let dir = tempfile::tempdir().unwrap();
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let long = object_store::path::Path::from(format!("t/{}/f", "x".repeat(300)));
        let e = fs.put(&long, "x".into()).await.unwrap_err();
        assert!(error("create", e).is_name_refused());
        let e = fs.head(&long).await.unwrap_err();
        assert!(error("check", e).is_name_refused());
    }

    #[test]
    fn only_a_400_naming_the_name_is_a_refused_name() {
        let answer = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_string().into(),
        };
        let refused = "Error performing PUT http://h/b/k in 2ms - Server returned non-2xx status code: 400 Bad Request: <Error><Code>KeyTooLongError</Code></Error>";
        assert!(error("create", answer(refused)).is_name_refused());
        let azure = "Server returned non-2xx status code: 400 Bad Request: <Error><Code>InvalidResourceName</Code></Error>";
        assert!(error("create", answer(azure)).is_name_refused());
        for other in [
            "Server returned non-2xx status code: 400 Bad Request: <Error><Code>RequestTimeout</Code></Error>",
            "Server returned non-2xx status code: 503 Service Unavailable: <Error><Code>InvalidURI</Code></Error>",
            "error sending request",
        ] {
            assert!(!error("create", answer(other)).is_name_refused(), "{other}");
        }
        let head = "Server returned non-2xx status code: 400 Bad Request: ";
        assert!(error("check", answer(head)).is_name_refused());
        assert!(!error("create", answer(head)).is_name_refused());
    }

    #[test]
    fn names_are_keys_as_they_are() {
        // A template's escaped value and UTF-8 stay what the README says readers see.
        for name in [
            "t/r=us%2Feast%201/f.ndjson.gz",
            "t/r=ünï/f",
            "_ingest/claims/t/0/1.json",
        ] {
            assert_eq!(super::key(name).as_ref(), name);
        }
        assert_eq!(
            object_store::path::Path::from("t/r=us%2Feast").as_ref(),
            "t/r=us%252Feast",
            "what Path::from would have made of it"
        );
    }
}
