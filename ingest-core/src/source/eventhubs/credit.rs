//! What the Event Hubs source may hold ahead of the loop, inside `INGEST_MAX_BUFFER_BYTES`.
//!
//! Pure. AMQP link credit counts events, not bytes, so it is sized for events of the largest
//! size accepted: `INGEST_MAX_RECORD_BYTES`, at most [`EVENT_MAX`]. A receiver holds up to one
//! and a half times its credit (the client tops the credit up when half of it was used, while
//! the other half may still wait), and the channel to the loop holds whole events too. Together
//! they get a quarter of the cap; batches and encoded files get what is left
//! ([`Ahead::batch_budget`]), as for Kafka, whose prefetch is bounded in bytes.

/// The largest event Event Hubs accepts on every tier but Dedicated (1 MiB).
pub const EVENT_MAX: usize = 1 << 20;

/// The most credit a receiver gets: the Azure SDKs' default prefetch.
pub const PREFETCH_MAX: u32 = 300;

/// Sizes credit and the channel from the cap and the largest event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ahead {
    cap: usize,
    /// The size credit is counted in: the largest event a receiver may be sent.
    event_bytes: usize,
}

impl Ahead {
    pub fn new(max_buffer_bytes: usize, max_record_bytes: usize) -> Ahead {
        Ahead {
            cap: max_buffer_bytes,
            event_bytes: max_record_bytes.clamp(1, EVENT_MAX),
        }
    }

    /// Events the channel from the receivers to the loop holds (a sixteenth of the cap, 4 to 256).
    pub fn channel(&self) -> usize {
        (self.cap / 16 / self.event_bytes).clamp(4, 256)
    }

    /// Link credit for each receiver when the hub has `partitions` (one replica may hold them
    /// all): their share of the quarter of the cap, at least one event, at most [`PREFETCH_MAX`].
    pub fn prefetch(&self, partitions: usize) -> u32 {
        let receivers = self.cap / 4 - self.channel_bytes().min(self.cap / 4);
        let events = receivers / partitions.max(1) * 2 / 3 / self.event_bytes;
        events.clamp(1, PREFETCH_MAX as usize) as u32
    }

    fn channel_bytes(&self) -> usize {
        self.channel() * self.event_bytes
    }

    /// The most the receivers of `partitions` and the channel hold.
    pub fn held(&self, partitions: usize) -> usize {
        let credit = self.prefetch(partitions) as usize;
        partitions * credit * self.event_bytes * 3 / 2 + self.channel_bytes()
    }

    /// What batches and encoded files may hold: the cap less [`Ahead::held`], and at least
    /// half of it (a cap too small for the partitions is then exceeded; see [`Ahead::too_small`]).
    pub fn batch_budget(&self, partitions: usize) -> usize {
        self.cap - self.held(partitions).min(self.cap / 2)
    }

    /// The one-line warning when credit of one event per partition already holds more than
    /// half the cap.
    pub fn too_small(&self, partitions: usize) -> Option<String> {
        let held = self.held(partitions);
        (held > self.cap / 2).then(|| {
            format!(
                "INGEST_MAX_BUFFER_BYTES={} is small for {partitions} partitions of events up to {} bytes: receivers may hold {held} bytes besides the batches; raise it to at least {} or lower INGEST_MAX_RECORD_BYTES to the largest event",
                self.cap,
                self.event_bytes,
                2 * held
            )
        })
    }

    /// The size credit is counted in.
    pub fn event_bytes(&self) -> usize {
        self.event_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn credit_and_channel_hold_a_quarter_of_the_cap_for_events_of_the_largest_size() {
        let a = Ahead::new(256 * MIB, 8 * MIB);
        assert_eq!(a.event_bytes(), MIB, "the hub accepts nothing larger");
        assert_eq!(a.channel(), 16);
        // (64 MiB - 16 MiB) / 8 partitions * 2/3 / 1 MiB = 4
        assert_eq!(a.prefetch(8), 4);
        assert!(a.held(8) <= 64 * MIB, "{}", a.held(8));
        assert_eq!(a.batch_budget(8), 256 * MIB - a.held(8));
        assert_eq!(a.too_small(8), None);
    }

    #[test]
    fn the_readme_figures() {
        let defaults = Ahead::new(256 * MIB, 8 * MIB);
        assert_eq!((defaults.prefetch(8), defaults.prefetch(32)), (4, 1));
        assert_eq!(Ahead::new(256 * MIB, 16 << 10).prefetch(8), PREFETCH_MAX);
        assert_eq!(Ahead::new(256 * MIB, 4 << 10).prefetch(32), PREFETCH_MAX);
    }

    #[test]
    fn small_events_get_the_sdk_default_credit() {
        let a = Ahead::new(256 * MIB, 4096);
        assert_eq!(a.channel(), 256);
        assert_eq!(a.prefetch(32), PREFETCH_MAX);
        assert!(a.held(32) < 64 * MIB);
    }

    #[test]
    fn more_partitions_get_less_credit_each_and_at_least_one_event() {
        let a = Ahead::new(256 * MIB, MIB);
        assert!(a.prefetch(2) > a.prefetch(8));
        assert_eq!(a.prefetch(1000), 1);
        let held = a.held(1000);
        assert!(held > 128 * MIB);
        assert_eq!(a.batch_budget(1000), 128 * MIB, "batches keep half");
        let warning = a.too_small(1000).expect("a warning");
        assert!(warning.contains("INGEST_MAX_BUFFER_BYTES"), "{warning}");
        assert!(warning.contains(&(2 * held).to_string()), "{warning}");
    }

    #[test]
    fn the_bound_holds_across_sizes_and_partition_counts() {
        for cap in [MIB, 16 * MIB, 256 * MIB, 4096 * MIB] {
            for record in [100, 4096, 100_000, MIB, 8 * MIB] {
                for partitions in [1, 2, 8, 32, 100] {
                    let a = Ahead::new(cap, record);
                    let budget = a.batch_budget(partitions);
                    assert!(budget >= cap / 2 && budget <= cap);
                    if a.too_small(partitions).is_none() {
                        assert!(
                            budget + a.held(partitions) <= cap,
                            "cap {cap} record {record} partitions {partitions}"
                        );
                    }
                }
            }
        }
    }
}
