//! When a batch is flushed: the three triggers (records, bytes, age) over the limits
//! `INGEST_FLUSH_*` set, and why each flush happened.
//!
//! Pure; the clock is an argument, so a quiet partition is flushed by the timer even when no
//! record arrives, and every trigger is unit-tested without waiting.

use std::time::Instant;

use super::arena::{Attachment, Batch};
use super::record::RecordRef;
pub use crate::config::FlushPolicy;

/// Why a batch was flushed; logged with every flush and counted in `ingest_flushes_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlushReason {
    /// `INGEST_FLUSH_MAX_RECORDS` reached.
    Records,
    /// `INGEST_FLUSH_MAX_BYTES` reached (or the next record would exceed it).
    Bytes,
    /// `INGEST_FLUSH_MAX_AGE_MS` elapsed since the batch's first record: the wall-clock timer.
    Age,
    /// Buffered bytes reached 3/4 of the global cap and this was among the largest idle batches.
    MemoryPressure,
    /// The service is shutting down.
    Shutdown,
    /// The batch ends where an earlier incarnation's claimed file ends (crash recovery).
    Recovery,
    /// The batch completes an earlier claim with what the log still has: the consumer reached
    /// the partition's end before an offset at or past the claim's end (compaction removed it).
    EndOfLog,
}

impl FlushReason {
    pub const ALL: [FlushReason; 7] = [
        FlushReason::Records,
        FlushReason::Bytes,
        FlushReason::Age,
        FlushReason::MemoryPressure,
        FlushReason::Shutdown,
        FlushReason::Recovery,
        FlushReason::EndOfLog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::Records => "records",
            FlushReason::Bytes => "bytes",
            FlushReason::Age => "age",
            FlushReason::MemoryPressure => "memory_pressure",
            FlushReason::Shutdown => "shutdown",
            FlushReason::Recovery => "recovery",
            FlushReason::EndOfLog => "end_of_log",
        }
    }
}

/// The flush triggers of a [`FlushPolicy`] (the limits live in `config`; the rules here).
pub trait Triggers {
    /// Whether `record` must go into a new batch because it would push `batch` over the byte
    /// limit. A single record larger than the limit still gets a batch of its own.
    fn must_seal_before<A: Attachment>(&self, batch: &Batch<A>, record: &RecordRef<'_>) -> bool;

    /// The trigger that fires for `batch` at `now`, if any. Size triggers win over age.
    fn reason<A: Attachment>(&self, batch: &Batch<A>, now: Instant) -> Option<FlushReason>;

    /// When the age trigger fires for `batch`; `None` for an empty batch.
    fn deadline<A: Attachment>(&self, batch: &Batch<A>) -> Option<Instant>;
}

impl Triggers for FlushPolicy {
    fn must_seal_before<A: Attachment>(&self, batch: &Batch<A>, record: &RecordRef<'_>) -> bool {
        !batch.is_empty() && batch.bytes() + record.size() > self.max_bytes
    }

    fn reason<A: Attachment>(&self, batch: &Batch<A>, now: Instant) -> Option<FlushReason> {
        if batch.is_empty() {
            None
        } else if batch.len() >= self.max_records {
            Some(FlushReason::Records)
        } else if batch.bytes() >= self.max_bytes {
            Some(FlushReason::Bytes)
        } else if now >= self.deadline(batch)? {
            Some(FlushReason::Age)
        } else {
            None
        }
    }

    fn deadline<A: Attachment>(&self, batch: &Batch<A>) -> Option<Instant> {
        (!batch.is_empty()).then(|| batch.opened_at() + self.max_age)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::batch::record::tests::rec;

    type Batch = super::Batch;

    fn policy() -> FlushPolicy {
        FlushPolicy {
            max_records: 3,
            max_bytes: 100,
            max_age: Duration::from_secs(10),
        }
    }

    #[test]
    fn records_trigger_fires_at_the_limit() {
        let t0 = Instant::now();
        let mut b = Batch::new(t0, 0);
        for o in 0..2 {
            b.push(&rec(o, b"{}"));
            assert_eq!(policy().reason(&b, t0), None);
        }
        b.push(&rec(2, b"{}"));
        assert_eq!(policy().reason(&b, t0), Some(FlushReason::Records));
    }

    #[test]
    fn bytes_trigger_fires_at_the_limit_and_seals_before_overflow() {
        let t0 = Instant::now();
        let big = [b'1'; 60];
        let mut b = Batch::new(t0, 0);
        b.push(&rec(0, &big));
        assert_eq!(policy().reason(&b, t0), None);
        assert!(policy().must_seal_before(&b, &rec(1, &big)));
        assert!(!policy().must_seal_before(&b, &rec(1, &big[..40])));
        b.push(&rec(1, &big[..40]));
        assert_eq!(b.bytes(), 100);
        assert_eq!(policy().reason(&b, t0), Some(FlushReason::Bytes));
        // A single oversized record is never refused a batch.
        let empty = Batch::new(t0, 0);
        assert!(!policy().must_seal_before(&empty, &rec(0, &[b'1'; 500])));
    }

    #[test]
    fn age_trigger_uses_the_injected_clock_and_fires_without_new_records() {
        let t0 = Instant::now();
        let mut b = Batch::new(t0, 0);
        assert_eq!(policy().deadline(&b), None, "an empty batch never expires");
        b.push(&rec(7, b"1"));
        assert_eq!(policy().deadline(&b), Some(t0 + Duration::from_secs(10)));
        assert_eq!(policy().reason(&b, t0 + Duration::from_secs(9)), None);
        assert_eq!(
            policy().reason(&b, t0 + Duration::from_secs(10)),
            Some(FlushReason::Age)
        );
    }
}
