//! Flushes: starting them (one in flight per partition, a bounded number at once, partitions in
//! turn), the age timer that seals quiet batches, applying what each flush reports, and keeping
//! the group's positions at this replica's newest commits.
//!
//! Invariant: a partition has at most one flush in flight, and a flush's outcome only updates
//! the ownership (epoch) it was started for.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Completing, Joined, Loop, Starting};
use crate::error::Error;
use crate::land::flush::Position;
use crate::land::naming::claim_path;
use crate::land::Outcome;

impl Loop {
    /// Stops the service when a partition has waited longer than
    /// `INGEST_CLAIM_COMPLETION_TIMEOUT_MS` for the records that complete an earlier claim
    /// (removed by retention or compaction, or hidden by `isolation.level`): nothing past the
    /// claim is committed, so nothing is lost by stopping.
    pub(super) fn check_completions(&mut self, now: Instant) -> Result<(), Error> {
        let timeout = self.config.claim_completion_timeout;
        for (partition, owned) in &mut self.partitions {
            if !owned.state.completing_claim() {
                owned.completing = None;
                continue;
            }
            if let Some(c) = &owned.completing {
                if now.duration_since(c.since) >= timeout {
                    return Err(Error::ClaimIncomplete {
                        path: claim_path(&self.config.topic, *partition, c.first),
                        through: c.through,
                        waited: timeout,
                    });
                }
            }
        }
        Ok(())
    }

    pub(super) fn on_flushed(&mut self, joined: Joined) -> Result<(), Error> {
        let (partition, epoch, result) =
            joined.map_err(|e| Error::Internal(format!("flush task failed: {e}")))?;
        let outcome = result?;
        let Some(owned) = self
            .partitions
            .get_mut(&partition)
            .filter(|o| o.epoch == epoch)
        else {
            return Ok(()); // revoked meanwhile: the state it would update is gone
        };
        match outcome {
            Outcome::Landed { through } => {
                owned.state.landed(through);
                owned.chain_next = Some(through + 1);
            }
            Outcome::NeedMore {
                batch,
                through,
                landed,
            } => {
                if let Some(l) = landed {
                    owned.state.landed(l);
                    owned.chain_next = Some(l + 1);
                }
                let first = batch.first_offset().unwrap_or(through);
                owned.state.need_more(*batch, through);
                if owned.state.completing_claim() {
                    owned.completing.get_or_insert(Completing {
                        since: Instant::now(),
                        first,
                        through,
                    });
                }
            }
            Outcome::Revoked => {}
        }
        Ok(())
    }

    /// Starts the flushes that can start, up to [`max_flushes`] at once, taking partitions in
    /// turn from where the last call stopped so none waits behind the others for long.
    pub(super) fn start_uploads(&mut self) {
        let max = max_flushes();
        let after = self.last_started;
        let order: Vec<i32> = self
            .partitions
            .range((Bound::Excluded(after), Bound::Unbounded))
            .chain(self.partitions.range(..=after))
            .map(|(p, _)| *p)
            .collect();
        for p in order {
            if self.tasks.len() >= max {
                return;
            }
            let Some(owned) = self.partitions.get_mut(&p) else {
                continue;
            };
            if let Some(sealed) = owned.state.start_next() {
                let (flusher, owner, epoch) =
                    (self.flusher.clone(), owned.owner.clone(), owned.epoch);
                let position = Position {
                    chain_next: owned.chain_next,
                };
                self.tasks.spawn(async move {
                    (p, epoch, flusher.flush(p, sealed, owner, position).await)
                });
                self.last_started = p;
            }
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.partitions
            .values()
            .filter_map(|o| o.state.deadline(&self.config.flush))
            .min()
    }

    pub(super) fn tick(&mut self) {
        let now = Instant::now();
        for owned in self.partitions.values_mut() {
            owned.state.tick(now, &self.config.flush);
        }
    }
}

/// Flushes in flight at once (each partition has at most one): four per core, at least 16.
/// Uploads mostly wait on storage, but every local-disk write holds a blocking thread, and a
/// thread per partition at once (at shutdown, say) costs memory for nothing.
pub(super) fn max_flushes() -> usize {
    let cores = crate::cores::available();
    (4 * cores).max(16)
}

/// How often the group's positions are compared with this replica's newest commits.
const KEEP_COMMITS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Loop {
    /// Every [`KEEP_COMMITS_EVERY`], off the loop: makes the newest commit of each started
    /// partition again where the group's position fell behind it ([`Flusher::keep_commits`]).
    pub(super) fn keep_commits(&mut self, now: Instant) {
        if self.draining
            || self.keeping.as_ref().is_some_and(|k| !k.is_finished())
            || self.kept_at.is_some_and(|at| now < at + KEEP_COMMITS_EVERY)
        {
            return;
        }
        self.kept_at = Some(now);
        let owned: Vec<(i32, CancellationToken)> = self
            .partitions
            .iter()
            .filter(|(_, o)| matches!(o.starting, Starting::Started))
            .map(|(p, o)| (*p, o.owner.clone()))
            .collect();
        let flusher = Arc::clone(&self.flusher);
        self.keeping = Some(tokio::spawn(
            async move { flusher.keep_commits(owned).await },
        ));
    }
}
