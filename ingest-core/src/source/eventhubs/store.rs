//! Checkpoint and ownership blobs on Azure Blob Storage through object_store, in the Azure
//! SDKs' layout (see `layout`): empty blobs whose metadata is the state.
//!
//! Invariants: ownership is only ever written conditionally (create-only for a partition never
//! owned, `If-Match` on the ETag last seen otherwise), so of two replicas racing for a partition
//! exactly one wins; a checkpoint is written only by the caller that landed the events it names
//! (the store never moves one on its own); a blob whose metadata cannot be read is an error,
//! never "no checkpoint" (which would re-read the partition from the start); an owner remembered
//! from an earlier read or write is used only while the listing shows the ETag it was seen with.
//!
//! On Azure a round is one request: the ownership blobs are listed with their metadata
//! ([`super::listing`]); elsewhere, or when that listing is refused, a listing plus a read of
//! each blob whose ETag changed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};

use super::balance::{Claim, Ownership};
use super::layout::{owner_from_metadata, Address, BadMetadata, Checkpoint, OWNER_ID};
use super::listing::{ListError, Lister};
use super::receiver::lock;
use crate::config::{redact_url, Config};

/// A checkpoint or ownership operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{op} {path} in {store} failed: {source}")]
    Storage {
        op: &'static str,
        path: String,
        store: String,
        #[source]
        source: object_store::Error,
    },
    #[error("checkpoint {path} in {store} is unreadable ({source}); fix or delete its metadata after checking which events have landed")]
    BadCheckpoint {
        path: String,
        store: String,
        #[source]
        source: BadMetadata,
    },
}

/// Checkpoints and ownership of one event hub and consumer group. Cheap to clone.
#[derive(Clone)]
pub struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
    address: Address,
    label: Arc<str>,
    /// The owner each ownership blob named at the ETag it was last seen (read or written) with:
    /// listings carry ETags but not metadata, so only a blob whose ETag changed is read again.
    owners: Arc<Mutex<HashMap<String, Seen>>>,
    /// Lists ownership with metadata in one request (Azure), until the service refuses it.
    lister: Option<Arc<Lister>>,
    lister_refused: Arc<AtomicBool>,
}

/// An ownership blob as last seen.
#[derive(Clone)]
struct Seen {
    /// As the service sends it in the `ETag` header (what `If-Match` takes).
    etag: String,
    owner: Option<String>,
}

/// Whether two ETags name one version: listings and headers may differ in the quotes.
fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

fn metadata_of(attributes: &Attributes) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter_map(|(k, v)| match k {
            Attribute::Metadata(name) => Some((name.to_string(), v.as_ref().to_string())),
            _ => None,
        })
        .collect()
}

fn attributes<'a>(metadata: impl IntoIterator<Item = (&'static str, &'a str)>) -> Attributes {
    metadata
        .into_iter()
        .map(|(k, v)| (Attribute::Metadata(k.into()), v.to_string()))
        .collect()
}

impl CheckpointStore {
    /// A store over `store` (rooted where the checkpoint URL points), for `address`.
    pub fn new(store: Arc<dyn ObjectStore>, address: Address, label: &str) -> Self {
        CheckpointStore {
            store,
            address,
            label: label.into(),
            owners: Arc::default(),
            lister: None,
            lister_refused: Arc::default(),
        }
    }

    /// Requests the listing with metadata has sent; `None` when this store lists without it.
    pub fn metadata_listings(&self) -> Option<u64> {
        self.lister
            .as_ref()
            .filter(|_| !self.lister_refused.load(Ordering::Relaxed))
            .map(|l| l.requests.load(Ordering::Relaxed))
    }

    /// The store at `INGEST_EVENTHUBS_CHECKPOINT_URL`, with the storage credentials. `None`
    /// when the source is not Event Hubs. Sends nothing.
    pub fn from_config(config: &Config) -> Result<Option<Self>, String> {
        let Some(eh) = &config.eventhubs else {
            return Ok(None);
        };
        let (store, _) = crate::storage::store_at(
            config,
            &eh.checkpoint_url,
            crate::storage::Holds::Checkpoints,
        )?;
        let address = Address {
            fully_qualified_namespace: eh.fully_qualified_namespace.clone(),
            event_hub: eh.event_hub.clone(),
            consumer_group: eh.consumer_group.clone(),
        };
        let mut this = Self::new(store, address, &redact_url(&eh.checkpoint_url));
        if crate::config::is_azure(&eh.checkpoint_url) {
            this.lister = Lister::new(config, &eh.checkpoint_url);
        }
        Ok(Some(this))
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    fn error(&self, op: &'static str, path: &str, source: object_store::Error) -> StoreError {
        StoreError::Storage {
            op,
            path: path.to_string(),
            store: self.label.to_string(),
            source,
        }
    }

    /// A blob's metadata, ETag and last-modified time; `None` when it does not exist.
    async fn read(
        &self,
        path: &str,
    ) -> Result<Option<(Vec<(String, String)>, String, i64)>, StoreError> {
        match self.store.get(&Path::from(path)).await {
            Ok(r) => Ok(Some((
                metadata_of(&r.attributes),
                r.meta.e_tag.clone().unwrap_or_default(),
                r.meta.last_modified.timestamp_millis(),
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", path, e)),
        }
    }

    /// The checkpoint of `partition`: the lowercased SDK name, else the Rust SDK's case-kept
    /// name. `None` when neither exists or carries a position.
    pub async fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        let names = std::iter::once(self.address.checkpoint_blob(partition))
            .chain(self.address.as_given_checkpoint_blob(partition));
        for path in names {
            if let Some((metadata, _, _)) = self.read(&path).await? {
                let parsed = Checkpoint::from_metadata(&metadata).map_err(|source| {
                    StoreError::BadCheckpoint {
                        path: path.clone(),
                        store: self.label.to_string(),
                        source,
                    }
                })?;
                if parsed.is_some() {
                    return Ok(parsed);
                }
            }
        }
        Ok(None)
    }

    /// Writes the checkpoint of `partition` (an empty blob with `sequencenumber` and `offset`),
    /// replacing the previous one. Call only after the events it names have landed.
    pub async fn set_checkpoint(
        &self,
        partition: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let path = self.address.checkpoint_blob(partition);
        let metadata = checkpoint.to_metadata();
        let opts = PutOptions {
            mode: PutMode::Overwrite,
            attributes: attributes(metadata.iter().map(|(k, v)| (*k, v.as_str()))),
            ..Default::default()
        };
        self.store
            .put_opts(&Path::from(path.as_str()), PutPayload::new(), opts)
            .await
            .map(|_| ())
            .map_err(|e| self.error("write checkpoint", &path, e))
    }

    /// Every ownership record of this event hub and consumer group: one listing, plus a read
    /// of each blob whose ETag changed since this store last read or wrote it (listings do not
    /// carry metadata).
    pub async fn ownerships(&self) -> Result<Vec<Ownership>, StoreError> {
        let prefix = self.address.ownership_prefix();
        if let Some(lister) = self
            .lister
            .as_ref()
            .filter(|_| !self.lister_refused.load(Ordering::Relaxed))
        {
            match lister.list(&prefix).await {
                Ok(listed) => return Ok(self.listed_with_metadata(listed)),
                Err(ListError::Failed(e)) => {
                    return Err(self.error(
                        "list with metadata",
                        &prefix,
                        object_store::Error::Generic {
                            store: "MicrosoftAzure",
                            source: e.into(),
                        },
                    ))
                }
                Err(ListError::Refused(e)) => {
                    self.lister_refused.store(true, Ordering::Relaxed);
                    tracing::warn!(store = %self.label, error = %e,
                        "listing ownership with metadata was refused; listing and reading changed blobs instead (a few more requests per round)");
                }
            }
        }
        let listed: Vec<_> = self
            .store
            .list(Some(&Path::from(prefix.as_str())))
            .try_collect()
            .await
            .map_err(|e| self.error("list", &prefix, e))?;
        let mut records = Vec::with_capacity(listed.len());
        for meta in &listed {
            let path = meta.location.to_string();
            let Some(partition) = super::layout::partition_of(&path) else {
                continue;
            };
            let known = lock(&self.owners).get(&path).cloned().filter(|seen| {
                meta.e_tag
                    .as_deref()
                    .is_some_and(|listed| same_etag(listed, &seen.etag))
            });
            let record = match known {
                Some(seen) => Some((seen.owner, seen.etag, meta.last_modified.timestamp_millis())),
                // Gone meanwhile: skip.
                None => self
                    .read(&path)
                    .await?
                    .map(|(metadata, etag, last_modified_ms)| {
                        let owner = owner_from_metadata(&metadata);
                        let seen = Seen {
                            etag: etag.clone(),
                            owner: owner.clone(),
                        };
                        lock(&self.owners).insert(path.clone(), seen);
                        (owner, etag, last_modified_ms)
                    }),
            };
            if let Some((owner, etag, last_modified_ms)) = record {
                records.push(Ownership {
                    partition: partition.to_string(),
                    owner,
                    last_modified_ms,
                    etag,
                });
            }
        }
        lock(&self.owners).retain(|path, _| listed.iter().any(|m| m.location.as_ref() == path));
        Ok(records)
    }

    /// The ownership records of a listing that carried metadata; what they say is remembered
    /// as if read, should a later round list without metadata.
    fn listed_with_metadata(&self, listed: Vec<super::listing::Listed>) -> Vec<Ownership> {
        let mut owners = lock(&self.owners);
        owners.clear();
        let mut records = Vec::with_capacity(listed.len());
        for blob in listed {
            let Some(partition) = super::layout::partition_of(&blob.name) else {
                continue;
            };
            // Listings give the bare ETag; `If-Match` takes it as headers carry it, quoted.
            let etag = if blob.etag.starts_with('"') {
                blob.etag.clone()
            } else {
                format!("\"{}\"", blob.etag)
            };
            let owner = owner_from_metadata(&blob.metadata);
            owners.insert(
                blob.name.clone(),
                Seen {
                    etag: etag.clone(),
                    owner: owner.clone(),
                },
            );
            records.push(Ownership {
                partition: partition.to_string(),
                owner,
                last_modified_ms: blob.last_modified_ms,
                etag,
            });
        }
        records
    }

    /// Writes `owner` into the ownership blob of `claim.partition` if it still has the ETag
    /// `claim.etag` (or does not exist, when `None`). Returns the new ETag, or `None` when
    /// another replica wrote it first.
    pub async fn claim(&self, claim: &Claim, owner: &str) -> Result<Option<String>, StoreError> {
        let path = self.address.ownership_blob(&claim.partition);
        let mode = match &claim.etag {
            None => PutMode::Create,
            Some(e) => PutMode::Update(UpdateVersion {
                e_tag: Some(e.clone()),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            attributes: attributes([(OWNER_ID, owner)]),
            ..Default::default()
        };
        match self
            .store
            .put_opts(&Path::from(path.as_str()), PutPayload::new(), opts)
            .await
        {
            Ok(r) => {
                let etag = r.e_tag.unwrap_or_default();
                let seen = Seen {
                    etag: etag.clone(),
                    owner: (!owner.is_empty()).then(|| owner.to_string()),
                };
                lock(&self.owners).insert(path, seen);
                Ok(Some(etag))
            }
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(None),
            Err(e) => Err(self.error("claim", &path, e)),
        }
    }

    /// Gives `partition` up (empty `ownerid`, as the SDKs do) if it still has `etag`, so
    /// another replica can take it at once instead of after the expiry. Returns whether it did.
    pub async fn release(&self, partition: &str, etag: &str) -> Result<bool, StoreError> {
        let claim = Claim {
            partition: partition.to_string(),
            etag: Some(etag.to_string()),
        };
        self.claim(&claim, "").await.map(|e| e.is_some())
    }
}
