//! Draining at shutdown: fetching stops, every open batch is sealed, and the loop ends once
//! everything that can land has landed and been committed.
//!
//! Invariant ("How exactly-once works" in the book, docs/src/delivery.md, step 7): nothing is committed that did not
//! land; a partition completing an earlier claim cannot finish without fetching, so its records
//! stay uncommitted for the next run.

use super::Loop;
use crate::batch::FlushReason;

impl Loop {
    pub(super) fn begin_drain(&mut self) {
        self.draining = true;
        self.health.update(|f| f.draining = true);
        let buffered: usize = self.partitions.values().map(|o| o.state.held_bytes()).sum();
        tracing::info!(
            buffered_bytes = buffered,
            timeout_ms = self.config.shutdown_timeout.as_millis() as u64,
            "shutdown requested: fetching stopped, flushing every buffer"
        );
        for owned in self.partitions.values_mut() {
            owned.state.seal_open(FlushReason::Shutdown);
        }
    }

    /// Everything that can land has landed. A partition completing an earlier claim cannot
    /// finish without fetching; its records stay uncommitted for the next run.
    pub(super) fn drained(&self) -> bool {
        self.tasks.is_empty()
            && self
                .partitions
                .values()
                .all(|o| o.state.is_drained() || o.state.completing_claim())
    }
}
