//! The topic's running Parquet schema: create-only versions under `_ingest/schemas/<topic>/`,
//! one more each time a file adds a field, written before that file lands.
//!
//! Invariant: every landed Parquet file's columns are in the version it was encoded against
//! or in the one its flush published before uploading it, so a column keeps one type across
//! files. Replicas racing on a new version converge: the create is create-only, and the loser
//! reads the winner's version and encodes its batch again against it. Versions are numbered
//! 1, 2, 3... without gaps, so the latest is found by existence checks ([`Search`]): no
//! listing, and no list permission needed.

use bytes::Bytes;

use super::flush::Flusher;
use crate::encode::parquet::shape::Columns;
use crate::storage::{Created, StorageError, STATE_PREFIX};

/// A version of the running schema (0: none yet, no columns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versioned {
    pub version: u64,
    pub columns: Columns,
}

/// Finds the latest of versions numbered 1, 2, 3... without gaps by existence checks:
/// doubling until one is missing, then halving the gap (2 log n checks; 3 for 2 versions).
#[derive(Debug, Default)]
struct Search {
    /// The greatest version known to exist (0: none known).
    low: u64,
    /// The least version known not to exist.
    high: Option<u64>,
}

impl Search {
    /// The version to check next, if the latest is not known yet.
    fn probe(&self) -> Option<u64> {
        match self.high {
            None => Some((self.low * 2).max(1)),
            Some(high) if high - self.low > 1 => Some(self.low + (high - self.low) / 2),
            Some(_) => None,
        }
    }

    fn found(&mut self, version: u64, exists: bool) {
        if exists {
            self.low = version;
        } else {
            self.high = Some(version);
        }
    }

    fn latest(&self) -> Option<u64> {
        (self.low > 0).then_some(self.low)
    }
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
        let mut search = Search::default();
        while let Some(version) = search.probe() {
            let exists = self.storage.exists(&version_path(topic, version)).await?;
            search.found(version, exists);
        }
        let latest = search.latest();
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
    use crate::land::naming::padded_number;

    #[test]
    fn the_latest_version_is_found_by_a_few_existence_checks() {
        for latest in 0..300u64 {
            let mut search = Search::default();
            let mut checks = 0;
            while let Some(v) = search.probe() {
                checks += 1;
                search.found(v, v <= latest);
            }
            assert_eq!(search.latest(), (latest > 0).then_some(latest));
            let bound = 2 * (64 - latest.leading_zeros()) + 2;
            assert!(checks <= bound, "{latest}: {checks} checks");
        }
    }

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
