//! Partitions that wait without a storage error to show for it: a start still reading the
//! store, a chain's last record not yet served again, the records that complete an earlier
//! claim not yet fetched. Each is logged as a warning once it has lasted [`STALL_WARNING`], and
//! again every [`STALL_WARNING`] while it lasts, so a partition that does not move says where it
//! waits (a completion that lasts `INGEST_CLAIM_COMPLETION_TIMEOUT_MS` stops the service,
//! [`super::flushes`]).

use std::time::{Duration, Instant};

use super::{Loop, Starting};
use crate::land::naming::claim_path;

/// How long a partition waits before it says so.
pub(super) const STALL_WARNING: Duration = Duration::from_secs(30);

/// Where a partition waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Its start is being read from the store.
    Start,
    /// For the chain's last record at this offset, to compare it.
    Verify(i64),
    /// For the records that complete the claim of these offsets.
    Complete { first: i64, through: i64 },
}

/// Whether a wait that began at `since` is to be reported at `now`, given the last report.
fn due(since: Instant, warned: Option<Instant>, now: Instant) -> bool {
    now.duration_since(since) >= STALL_WARNING
        && warned.is_none_or(|w| now.duration_since(w) >= STALL_WARNING)
}

impl Loop {
    /// Logs each partition that has waited [`STALL_WARNING`] or more (see the module).
    pub(super) fn warn_stalled(&mut self, now: Instant) {
        for (partition, owned) in &mut self.partitions {
            let (waiting, since) = match (&owned.starting, &owned.completing) {
                (Starting::Deciding, _) => (Waiting::Start, owned.assigned_at),
                (Starting::Verifying(v), _) => (Waiting::Verify(v.offset), owned.assigned_at),
                (Starting::Started, Some(c)) => (
                    Waiting::Complete {
                        first: c.first,
                        through: c.through,
                    },
                    c.since,
                ),
                (Starting::Started, None) => {
                    owned.stall_warned_at = None;
                    continue;
                }
            };
            if !due(since, owned.stall_warned_at, now) {
                continue;
            }
            owned.stall_warned_at = Some(now);
            let waited_s = now.duration_since(since).as_secs();
            let received_through = owned.next_offset.map(|n| n - 1);
            match waiting {
                Waiting::Start => tracing::warn!(
                    partition,
                    waited_s,
                    "the partition is still reading where it starts from the store: nothing of it is consumed meanwhile"
                ),
                Waiting::Verify(offset) => tracing::warn!(
                    partition,
                    waited_s,
                    offset,
                    ?received_through,
                    "the partition waits for the source to serve its chain's last record again, to compare it: nothing of it is taken meanwhile"
                ),
                Waiting::Complete { first, through } => tracing::warn!(
                    partition,
                    waited_s,
                    claim = %claim_path(&self.config.topic, *partition, first),
                    through,
                    ?received_through,
                    "the partition waits for the records that complete an earlier claim: nothing past it is committed meanwhile"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_reported_after_the_warning_time_and_then_once_per_warning_time() {
        let t0 = Instant::now();
        assert!(!due(t0, None, t0 + STALL_WARNING / 2));
        assert!(due(t0, None, t0 + STALL_WARNING));
        let warned = t0 + STALL_WARNING;
        assert!(!due(t0, Some(warned), warned + STALL_WARNING / 2));
        assert!(due(t0, Some(warned), warned + STALL_WARNING));
    }
}
