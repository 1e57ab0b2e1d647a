//! The start-up probe (can the service write here, and what can the store do) and the
//! readiness check.

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStoreExt;

use super::{explain, one_line, refused, unique_name, Capabilities, Kind, Storage, STATE_PREFIX};

/// Why the start-up probe failed, and whether waiting may cure it: an unreachable store, a 5xx
/// or an answer not understood may pass (an outage); a missing container, bad credentials, a
/// refused permission or a store that overwrites need a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProbeError {
    pub message: String,
    pub transient: bool,
}

/// Races of the start-up probe, the creates of one name it sends at once in each, and the size
/// of each (3 MiB written in all).
const RACES: usize = 3;
const RACERS: usize = 4;
const RACER_BYTES: usize = 256 << 10;

impl Storage {
    /// Proves the service can write here and learns what the store can do: writes a probe
    /// outside the data path, writes it again (which must fail: create-only), and for cloud
    /// stores writes another several times at once (of which one must succeed: creates are
    /// atomic) and copies the probe create-only twice (how large files are published). Errors
    /// come back as one line saying what is wrong and how to fix it.
    pub async fn probe(&mut self) -> Result<Capabilities, ProbeError> {
        let first = Path::from(format!("{STATE_PREFIX}/probe/{}", unique_name()));
        let fail = |e: object_store::Error| ProbeError {
            message: self.explain(&e),
            transient: self.kind != Kind::Local
                && matches!(
                    explain::diagnose(explain::Category::of(&e), &one_line(&e)),
                    explain::Diagnosis::Unreachable | explain::Diagnosis::Unknown
                ),
        };
        if self.kind != Kind::Local {
            // Listing tells a missing bucket from other failures (some S3-compatible servers
            // create buckets on the first put). List permission is not required: any other
            // failure is left for the write below to explain.
            let listed = self
                .store
                .list_with_delimiter(Some(&Path::from(format!("{STATE_PREFIX}/probe"))))
                .await;
            if let Err(e) = listed {
                let why = explain::diagnose(explain::Category::of(&e), &one_line(&e));
                if why == explain::Diagnosis::MissingContainer {
                    return Err(fail(e));
                }
                tracing::debug!(error = %e, "listing the probe prefix failed; checking by writing");
            }
        }
        let probe = Bytes::from_static(b"ingest write probe\n");
        self.put_create(&first, probe.clone()).await.map_err(fail)?;
        let again = self.put_create(&first, probe).await;
        let mut create_only = match again {
            Err(e) if refused(&e) => true,
            Ok(()) => false,
            Err(e) => return Err(fail(e)),
        };
        let mut racing = None;
        if self.kind != Kind::Local && create_only {
            let won = self.racing_creates(&first).await.map_err(fail)?;
            racing = (won > 1).then_some(won);
            create_only = racing.is_none();
        }
        let mut multipart = false;
        let mut copy = None;
        // Azure's Copy Blob may finish after it answers (x-ms-copy-status: pending), which
        // object_store does not report: deleting the staged source then could leave the file
        // incomplete. So on Azure every file is one create-only Put Blob (up to 5,000 MiB), no
        // copy at all; only S3, whose CopyObject completes before it answers, stages in parts.
        if self.kind == Kind::S3 && create_only {
            let to = Path::from(format!("{first}-copy"));
            multipart = match self.store.copy_if_not_exists(&first, &to).await {
                Ok(()) => {
                    copy = Some(to.clone());
                    let again = self.store.copy_if_not_exists(&first, &to).await;
                    again.is_err_and(|e| refused(&e))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "create-only copy unsupported");
                    false
                }
            };
        }
        for path in std::iter::once(&first).chain(copy.as_ref()) {
            self.store.delete(path).await.map_err(fail)?;
        }
        if let Some(won) = racing.filter(|_| !self.accept_at_least_once) {
            return Err(ProbeError {
                message: format!(
                    "{} let {won} of {RACERS} creates of one name at once succeed (it checks If-None-Match before it writes, not atomically), so exactly-once cannot hold: use a store whose conditional writes are atomic (AWS S3, MinIO, R2, Azure), or set INGEST_ACCEPT_AT_LEAST_ONCE=true to land at-least-once (records may be lost or duplicated when writers race)",
                    self.label
                ),
                transient: false,
            });
        }
        if !create_only && !self.accept_at_least_once {
            return Err(ProbeError {
                message: format!(
                    "{} overwrites existing objects despite If-None-Match, so exactly-once cannot hold: use a store that honours conditional writes (AWS S3, MinIO, R2, Azure), or set INGEST_ACCEPT_AT_LEAST_ONCE=true to land at-least-once (records may be lost or duplicated when writers race)",
                    self.label
                ),
                transient: false,
            });
        }
        self.caps = Capabilities {
            create_only,
            multipart,
        };
        metrics::gauge!("ingest_exactly_once").set(if create_only { 1.0 } else { 0.0 });
        if !create_only {
            tracing::warn!(store = %self.label, "AT-LEAST-ONCE: this store overwrites despite If-None-Match, so files are written check-then-put (INGEST_ACCEPT_AT_LEAST_ONCE=true): writers racing on one name can lose or duplicate records (see docs/src/storage.md)");
        } else if self.kind == Kind::S3 && !multipart {
            tracing::info!(store = %self.label, "this store cannot copy create-only; every file is uploaded in a single request");
        }
        Ok(self.caps)
    }

    /// Up to [`RACES`] times, writes [`RACERS`] different objects of [`RACER_BYTES`]
    /// create-only to one new name at once and deletes it; the most that were told they
    /// succeeded in one race: 1 where creates are atomic, more where the store checks before it
    /// writes and then overwrites (s3s-fs 0.14). Detection is likely, not certain: the writes
    /// must meet inside the store's window (the first race opens the connections the others
    /// reuse, so those start closer together).
    async fn racing_creates(&self, first: &Path) -> Result<usize, object_store::Error> {
        for race in 0..RACES {
            let name = Path::from(format!("{first}-race-{race}"));
            let writes = (0..RACERS).map(|i| {
                let body = Bytes::from(vec![b'0' + i as u8; RACER_BYTES]);
                self.put_create(&name, body)
            });
            let mut won = 0;
            for put in futures::future::join_all(writes).await {
                match put {
                    Ok(()) => won += 1,
                    Err(e) if refused(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            match self.store.delete(&name).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            if won > 1 {
                return Ok(won);
            }
        }
        Ok(1)
    }

    /// A cheap reachability check for readiness: looks up a name that need not exist.
    pub async fn check(&self) -> Result<(), String> {
        let path = Path::from(format!("{STATE_PREFIX}/probe/readiness-check"));
        match self.store.head(&path).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.explain(&e)),
        }
    }
}
