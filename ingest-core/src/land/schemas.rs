//! The topic's running Parquet schema: create-only versions under `_ingest/schemas/<topic>/`,
//! one more each time a file adds a field, written before that file lands.
//!
//! Invariant: every landed Parquet file's columns are in the version it was encoded against
//! or in the one its flush published before uploading it, so a column keeps one type across
//! files. Replicas racing on a new version converge: the create is create-only, and the loser
//! reads the winner's version and encodes its batch again against it.

use bytes::Bytes;

use super::flush::Flusher;
use super::naming::padded_number;
use crate::encode::parquet::shape::Columns;
use crate::storage::{Created, StorageError, STATE_PREFIX};

/// A version of the running schema (0: none yet, no columns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versioned {
    pub version: u64,
    pub columns: Columns,
}

fn dir(topic: &str) -> String {
    format!("{STATE_PREFIX}/schemas/{topic}/")
}

/// Where version `version` of `topic`'s schema lives.
pub fn version_path(topic: &str, version: u64) -> String {
    format!("{}{version:010}.json", dir(topic))
}

impl Flusher {
    /// The running schema: the cached one, or (`reload`, or nothing cached) the latest in
    /// storage.
    pub(super) async fn running_schema(&self, reload: bool) -> Result<Versioned, StorageError> {
        let mut cached = self.schema.lock().await;
        if let (Some(v), false) = (cached.as_ref(), reload) {
            return Ok(v.clone());
        }
        let topic = &self.namer.topic;
        let names = self
            .storage
            .names_between(&dir(topic), None, &format!("{}~", dir(topic)))
            .await?;
        let latest = names.iter().filter_map(|n| padded_number(n, 10)).max();
        let loaded = match latest {
            None => Versioned::default(),
            Some(version) => {
                let path = version_path(topic, version);
                let bytes = self.storage.get(&path).await?.unwrap_or_default();
                let columns = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    // Unreadable: start a file's schema afresh rather than stop; it is only a
                    // guide for column types, and the next version supersedes it.
                    tracing::warn!(schema = %path, error = %e, "running schema unreadable; inferring from the batch");
                    Columns::default()
                });
                Versioned { version, columns }
            }
        };
        *cached = Some(loaded.clone());
        Ok(loaded)
    }

    /// Publishes `columns` as the version after `after`. `false`: another replica published
    /// that version first (the caller reloads and encodes again).
    pub(super) async fn publish_schema(
        &self,
        after: &Versioned,
        columns: &Columns,
    ) -> Result<bool, StorageError> {
        let version = after.version + 1;
        let path = version_path(&self.namer.topic, version);
        let json = Bytes::from(serde_json::to_vec_pretty(columns).expect("columns serialise"));
        match self.storage.create(&path, json).await? {
            Created::New => {
                tracing::info!(schema = %path, columns = columns.fields.len(), "running schema: new version");
                metrics::counter!("ingest_schema_versions_total").increment(1);
                *self.schema.lock().await = Some(Versioned {
                    version,
                    columns: columns.clone(),
                });
                Ok(true)
            }
            Created::AlreadyExists => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_name_and_read_back() {
        assert_eq!(
            version_path("orders", 12),
            "_ingest/schemas/orders/0000000012.json"
        );
        assert!(version_path("t", 9) < version_path("t", 10));
        assert_eq!(padded_number(&version_path("t", 12), 10), Some(12));
        assert_eq!(padded_number("_ingest/schemas/t/12.json", 10), None);
        assert_eq!(
            padded_number("_ingest/schemas/t/0000000012.json.tmp", 10),
            None
        );
    }
}
