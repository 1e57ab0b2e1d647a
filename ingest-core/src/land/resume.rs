//! The first batch after an assignment: does it start inside a landed range?
//!
//! Invariant: a batch that starts where this service committed (Kafka: an offset committed with
//! [`crate::source::kafka::COMMIT_MARK`]; Event Hubs: just after our checkpoint) starts at a
//! claim boundary; any other first batch is checked against the greatest claim before it
//! ([`super::cover`]) before it may claim anything.

use super::cover::{decide_cover, greatest_before, search_from, Cover};
use super::flush::Flusher;
use super::naming::{claim_path, claims_dir};
use crate::error::Error;
use crate::storage::StorageError;

impl Flusher {
    /// For a partition's first batch, starting at `first`: the offset through which records are
    /// already landed by a claim that starts before `first` and reaches it, if one does.
    pub(super) async fn landed_before(
        &self,
        partition: i32,
        first: i64,
    ) -> Result<Result<Option<i64>, StorageError>, Error> {
        if self.source.resumed_at(partition).await == Some(first) {
            return Ok(Ok(None));
        }
        let topic = &self.namer.topic;
        let found = match self.claim_before(partition, first).await {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let Some(path) = found else {
            return Ok(Ok(None));
        };
        let claim = match self.read_claim(&path).await? {
            Ok(Some(claim)) => claim,
            Ok(None) => return Ok(Ok(None)), // moved aside meanwhile: nothing covers us
            Err(e) => return Ok(Err(e)),
        };
        if claim.last_offset < first {
            // The usual case (the claim before ends before us): no need to look for its file.
            return Ok(Ok(None));
        }
        let data_exists = match self.present(&claim).await {
            Ok(present) => present.iter().all(|p| *p),
            Err(e) => return Ok(Err(e)),
        };
        let cover = decide_cover(topic, partition, first, &claim, data_exists).map_err(|e| {
            Error::CorruptClaim {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        match cover {
            Cover::Before => Ok(Ok(None)),
            Cover::Landed { through } => {
                tracing::info!(claim = %path, resumed_at = first, through,
                    "resumed inside a landed file (expired group offsets, retention, compaction or a reset): skipping to its end");
                metrics::counter!("ingest_recoveries_total").increment(1);
                Ok(Ok(Some(through)))
            }
            Cover::Stranded { through } => Err(Error::ClaimStranded {
                path,
                first: claim.first_offset,
                through,
                resumed_at: first,
            }),
        }
    }

    /// The claim with the greatest first offset before `first`, searching back in widening
    /// windows on stores that list in order (one full listing on local disk).
    async fn claim_before(
        &self,
        partition: i32,
        first: i64,
    ) -> Result<Option<String>, StorageError> {
        let topic = &self.namer.topic;
        let dir = claims_dir(topic, partition);
        let until = claim_path(topic, partition, first);
        let in_order = self.storage.lists_in_order();
        for from in search_from(first).filter(|f| in_order || f.is_none()) {
            // Listings start after a name: the one just before `from` includes a claim at it.
            let after = from.map(|f| claim_path(topic, partition, f - 1));
            let names = self
                .storage
                .names_between(&dir, after.as_deref(), &until)
                .await?;
            if let Some((_, name)) = greatest_before(names.iter().map(String::as_str), first) {
                return Ok(Some(name.to_string()));
            }
        }
        Ok(None)
    }
}
