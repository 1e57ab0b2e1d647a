//! Rebalances: partitions assigned start empty under a new epoch and fetching; partitions
//! revoked are forgotten at once.
//!
//! Invariant (the README's "How exactly-once works", step 6): a revoked partition's buffers are
//! dropped uncommitted and its flush's owner token cancelled, so nothing of it is committed by this
//! consumer again; the new owner re-reads from the committed offset.

use tokio_util::sync::CancellationToken;

use super::{Loop, Owned, Starting};
use crate::batch::PartitionState;
use crate::source::RebalanceEvent;

impl Loop {
    pub(super) fn on_rebalance(&mut self, event: RebalanceEvent) {
        match event {
            RebalanceEvent::Assigned(partitions) => {
                let gated = self.source.starts_from_store();
                for p in &partitions {
                    self.next_epoch += 1;
                    // Assigned again without a revoke between: the earlier ownership ends here,
                    // as a revoke would end it (its flush must not commit under the new one).
                    self.forget(*p, "partition assigned again while owned; its unlanded records are dropped uncommitted and re-read");
                    let owner = CancellationToken::new();
                    self.partitions.insert(
                        *p,
                        Owned {
                            starting: if gated {
                                Starting::Deciding
                            } else {
                                Starting::Started
                            },
                            chain_next: None,
                            start_commit: None,
                            state: PartitionState::default(),
                            next_offset: None,
                            owner: owner.clone(),
                            epoch: self.next_epoch,
                            completing: None,
                            flushed: false,
                        },
                    );
                    if gated {
                        self.begin_start(*p, self.next_epoch, owner);
                    }
                }
                if gated {
                    tracing::info!(
                        ?partitions,
                        "partitions assigned; reading where each starts from the store"
                    );
                    let owned = self.partitions.len();
                    self.health.update(|f| f.assigned = owned);
                    metrics::gauge!("ingest_assigned_partitions").set(owned as f64);
                    return;
                }
                // A pause the loop asked for after librdkafka reassigned a partition but before
                // the loop saw its revoke would otherwise outlive the reassignment (the loop
                // forgets a revoked partition's pause). Resuming here, in event order, undoes
                // it; a partition not paused is unaffected.
                let fetch: Vec<(i32, Option<i64>)> =
                    partitions.iter().map(|p| (*p, None)).collect();
                self.source.resume(&fetch);
                tracing::info!(
                    ?partitions,
                    "partitions assigned; resuming from their committed offsets"
                );
            }
            RebalanceEvent::Revoked(partitions) => {
                for p in &partitions {
                    self.forget(*p, "partition revoked; its unlanded records are dropped uncommitted for the new owner to re-read");
                }
                self.health.update(|f| {
                    for p in &partitions {
                        f.last_landed_ms.remove(p);
                    }
                });
                // The new owner reports how long since it landed; a last value left here could
                // win its `max by (partition)` (the scrape only updates owned partitions).
                for p in &partitions {
                    metrics::gauge!("ingest_seconds_since_last_landed", "partition" => p.to_string())
                        .set(0.0);
                }
            }
        }
        let owned = self.partitions.len();
        self.health.update(|f| f.assigned = owned);
        metrics::gauge!("ingest_assigned_partitions").set(owned as f64);
    }

    /// Ends this consumer's ownership of `p`, if it has one: its pause, buffers and owner token
    /// (so its flush commits nothing more).
    fn forget(&mut self, p: i32, why: &str) {
        self.paused.remove(&p);
        if let Some(owned) = self.partitions.remove(&p) {
            owned.owner.cancel();
            tracing::info!(
                partition = p,
                dropped_bytes = owned.state.held_bytes(),
                "{why}"
            );
        }
    }
}
