//! Partitions starting: an assigned partition waits, paused, while its start is read from the
//! store ([`crate::land::start`]); then it is sought there and fetches.
//!
//! Invariant: no record of a partition is buffered before its start is decided; the first
//! record after a start whose chain's last record is to be checked is compared before anything
//! else of the partition is taken, and a mismatch stops the service with nothing committed.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Completing, Loop, Starting};
use crate::batch::RecordRef;
use crate::error::Error;
use crate::land::recovery::digest_of;
use crate::land::start::Start;
use crate::land::Flusher;

/// What a start task reports: the partition, its ownership's epoch, where it starts (`None`:
/// revoked meanwhile).
pub(super) type Started = (i32, u64, Result<Option<Start>, Error>);

impl Loop {
    /// Begins deciding where `partition` (just assigned, paused) starts.
    pub(super) fn begin_start(&mut self, partition: i32, epoch: u64, owner: CancellationToken) {
        let flusher: Arc<Flusher> = Arc::clone(&self.flusher);
        self.starts
            .spawn(async move { (partition, epoch, flusher.start(partition, owner).await) });
    }

    /// Applies a decided start: the partition's chain position, what it skips or completes,
    /// and the seek.
    pub(super) fn on_started(
        &mut self,
        joined: Result<Started, tokio::task::JoinError>,
    ) -> Result<(), Error> {
        let (partition, epoch, result) =
            joined.map_err(|e| Error::Internal(format!("start task failed: {e}")))?;
        let Some(owned) = self
            .partitions
            .get_mut(&partition)
            .filter(|o| o.epoch == epoch)
        else {
            return Ok(()); // revoked meanwhile
        };
        let Some(start) = result? else {
            return Ok(());
        };
        owned.chain_next = start.chain_next();
        let seek = match &start {
            Start::New => owned.resume,
            Start::After {
                seek,
                chain_next,
                gone,
                verify,
                commit,
            } => {
                owned.state.start_after(chain_next - 1);
                if *gone > 0 {
                    gone_offsets(&self.flusher, partition, *chain_next, *gone);
                }
                owned.start_commit = *commit;
                if let Some(v) = verify {
                    owned.starting = Starting::Verifying(v.clone());
                }
                Some(*seek)
            }
            Start::Complete {
                seek, claim, gone, ..
            } => {
                owned.state.complete_first(claim.last_offset);
                owned.completing = Some(Completing {
                    since: Instant::now(),
                    first: claim.first_offset,
                    through: claim.last_offset,
                });
                if *gone > 0 {
                    gone_offsets(&self.flusher, partition, claim.first_offset, *gone);
                }
                Some(*seek)
            }
        };
        if !matches!(owned.starting, Starting::Verifying(_)) {
            owned.starting = Starting::Started;
        }
        tracing::info!(
            partition,
            ?seek,
            chain_next = owned.chain_next,
            "partition starts where its claim chain ends"
        );
        let verifying = matches!(owned.starting, Starting::Verifying(_));
        let paused = self.paused.contains(&partition);
        self.source.start_at(partition, seek, paused);
        if !verifying {
            self.commit_start(partition);
        }
        Ok(())
    }

    /// Drops what `partition` holds and decides its start from the store again, as a new
    /// assignment would, because the record at `offset` cannot be taken as things stand (the
    /// source went back, or its schema is not read yet: the start task reads it first). Without
    /// a chain the start is where this ownership began (or `offset`, if earlier): what was
    /// dropped is read again, as a fresh assignment would read it from the group's position.
    pub(super) fn start_again(&mut self, partition: i32, offset: i64) {
        let Some(owned) = self.partitions.get(&partition) else {
            return;
        };
        let resume = owned.first_offset.map_or(offset, |first| first.min(offset));
        self.source.pause(&[partition]);
        if self.source.restart(partition) {
            // Event Hubs: a new receiver delivers `Assigned`, which ends this ownership; until
            // then the old one's events are dropped.
            if let Some(owned) = self.partitions.get_mut(&partition) {
                owned.starting = Starting::Deciding;
                owned.resume = Some(resume);
            }
            return;
        }
        self.on_rebalance(crate::source::RebalanceEvent::Assigned(vec![partition]));
        if let Some(again) = self.partitions.get_mut(&partition) {
            again.resume = Some(resume);
        }
    }

    /// Whether `partition` is owned and takes records (its start is decided).
    pub(super) fn takes_records(&self, partition: i32) -> bool {
        !self.draining
            && self
                .partitions
                .get(&partition)
                .is_some_and(|o| !matches!(o.starting, Starting::Deciding))
    }

    /// Whether a record of a starting partition may be buffered: not while its start is being
    /// decided; the one checked against the chain's last claim is compared first.
    pub(super) fn admit(&mut self, partition: i32, record: &RecordRef<'_>) -> bool {
        let Some(owned) = self.partitions.get_mut(&partition) else {
            return false;
        };
        let verify = match &owned.starting {
            Starting::Started => {
                let Some(expected) = owned.next_offset.filter(|n| record.offset < *n) else {
                    return true;
                };
                if owned.state.holds_same(record) {
                    // Served again as it was (a broker that re-reads its log after a gap does;
                    // tansu 0.6 with compacted offsets): nothing to decide, nothing new.
                    tracing::debug!(
                        partition,
                        offset = record.offset,
                        expected,
                        "the source served a buffered record again: dropped"
                    );
                    return false;
                }
                // Offsets only grow within an ownership: the source went back (librdkafka
                // resets a partition whose log was truncated, an unclean leader election).
                // The records now at those offsets may not be the landed ones: the partition
                // starts again from the store, which checks the chain's last record.
                tracing::warn!(
                    partition,
                    offset = record.offset,
                    expected,
                    "the source went back to an offset it had delivered (a truncated log?): the partition starts again from the store, which checks what the log holds now"
                );
                self.start_again(partition, record.offset);
                return false;
            }
            Starting::Deciding => return false,
            Starting::Verifying(v) => v.clone(),
        };
        if record.offset < verify.offset {
            return false; // fetched before the seek
        }
        if record.offset == verify.offset {
            let found = digest_of(record.timestamp_ms, record.key, record.value);
            if found != verify.digest {
                self.fatal.get_or_insert(Error::ChainMismatch {
                    topic: self.config.topic.clone(),
                    partition,
                    offset: verify.offset,
                    path: verify.path,
                    claimed: verify.digest,
                    found,
                });
                return false;
            }
            tracing::debug!(
                partition,
                offset = verify.offset,
                "the chain's last record is the one claimed"
            );
        } else {
            tracing::info!(partition, offset = verify.offset, "the chain's last record is gone from the log (compaction, retention): nothing to compare");
        }
        owned.starting = Starting::Started;
        self.commit_start(partition);
        true
    }

    /// Commits a started partition's chain end when the group's offset was elsewhere (a new
    /// group, a reset, a crash before the last commit), once the chain is trusted. A commit
    /// that fails, or lands after a later one, only costs the next start a listing or a read.
    fn commit_start(&mut self, partition: i32) {
        let Some(owned) = self.partitions.get_mut(&partition) else {
            return;
        };
        let Some((claim, through)) = owned.start_commit.take() else {
            return;
        };
        let (flusher, owner) = (Arc::clone(&self.flusher), owned.owner.clone());
        tracing::info!(
            partition,
            next_offset = through + 1,
            "committing the claim chain's end as the group's offset"
        );
        tokio::spawn(async move {
            flusher
                .commit(partition, (claim, through), None, &owner)
                .await
        });
    }
}

fn gone_offsets(flusher: &Flusher, partition: i32, from: i64, gone: i64) {
    flusher
        .progress
        .send_modify(|p| p.offsets_gone += gone as u64);
    tracing::warn!(partition, from, gone,
        "offsets after the claim chain's end are no longer in the log (retention, compaction): they never landed and cannot");
    metrics::counter!("ingest_offsets_gone_total").increment(gone as u64);
}
