//! Rebalances: partitions assigned start empty under a new epoch, waiting for their start to be
//! read from the store ([`super::start`]); partitions revoked are forgotten at once.
//!
//! Invariant ("How exactly-once works" in the book, docs/src/delivery.md, step 6): a revoked partition's buffers are
//! dropped uncommitted and its flush's owner token cancelled, so nothing of it is committed by this
//! consumer again; the new owner re-reads from the committed offset.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Loop, Owned, Starting};
use crate::batch::PartitionState;
use crate::source::RebalanceEvent;

impl Loop {
    pub(super) fn on_rebalance(&mut self, event: RebalanceEvent) {
        match event {
            RebalanceEvent::Assigned(partitions) => {
                for p in &partitions {
                    self.next_epoch += 1;
                    // Where a start without a chain seeks, when the earlier ownership asked to
                    // start over (`start_again` on Event Hubs): what it dropped is read again.
                    let resume = self.partitions.get(p).and_then(|o| o.resume);
                    // Assigned again without a revoke between: the earlier ownership ends here,
                    // as a revoke would end it (its flush must not commit under the new one).
                    self.forget(*p, "partition assigned again while owned; its unlanded records are dropped uncommitted and re-read");
                    let owner = CancellationToken::new();
                    self.partitions.insert(
                        *p,
                        Owned {
                            starting: Starting::Deciding,
                            chain_next: None,
                            start_commit: None,
                            state: PartitionState::default(),
                            next_offset: None,
                            first_offset: None,
                            resume,
                            owner: owner.clone(),
                            epoch: self.next_epoch,
                            completing: None,
                            assigned_at: Instant::now(),
                            stall_warned_at: None,
                        },
                    );
                    self.begin_start(*p, self.next_epoch, owner);
                }
                tracing::info!(
                    ?partitions,
                    "partitions assigned; reading where each starts from the store"
                );
                // Each starts (sought and resumed) once its start is decided: a pause the loop
                // asked for before it saw a revoke is undone then, since `forget` dropped it.
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
