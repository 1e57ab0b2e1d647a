//! The records of one future file and the rules that decide when it is flushed.
//!
//! Pure: no I/O, no async runtime; the clock is always an argument. A [`Batch`] copies every
//! payload into its arena at once, so borrowed Kafka messages are released immediately. The
//! arena is a list of chunks that are never reallocated (a growing `Vec` would copy everything
//! and hold up to twice what it stores), so the batch's memory is what [`Batch::bytes`] reports
//! plus at most one partly filled chunk (64 KiB) and a small per-record index.

use std::ops::Range;
use std::time::{Duration, Instant};

/// One record as it arrives from the source, borrowed only for the duration of [`Batch::push`].
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub offset: i64,
    /// Record timestamp in milliseconds since the Unix epoch, when the source has one.
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl RecordRef<'_> {
    /// Uncompressed size counted against the byte limits: key, value and header bytes.
    pub fn size(&self) -> usize {
        self.key.map_or(0, <[u8]>::len)
            + self.value.map_or(0, <[u8]>::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>()
    }
}

/// Where stored bytes live: a chunk of the arena and a range inside it.
#[derive(Debug, Clone)]
struct Span {
    chunk: usize,
    range: Range<usize>,
}

/// A record stored in a batch; borrow its bytes with [`Batch::key`], [`Batch::value`], [`Batch::headers`].
#[derive(Debug, Clone)]
struct Entry {
    offset: i64,
    timestamp_ms: Option<i64>,
    key: Option<Span>,
    value: Option<Span>,
    headers: Range<usize>,
}

#[derive(Debug, Clone)]
struct HeaderEntry {
    key: Span,
    value: Option<Span>,
}

/// The first arena chunk; each next one doubles, up to [`MAX_CHUNK`].
const MIN_CHUNK: usize = 4 * 1024;
/// Largest arena chunk, unless a single value is larger (it then gets a chunk of its own size).
const MAX_CHUNK: usize = 64 * 1024;

/// Records of one partition, in offset order, destined for one file.
#[derive(Debug, Clone)]
pub struct Batch {
    arena: Vec<Vec<u8>>,
    entries: Vec<Entry>,
    headers: Vec<HeaderEntry>,
    bytes: usize,
    opened_at: Instant,
    opened_at_ms: i64,
}

impl Batch {
    /// An empty batch opened at `now` (monotonic, for the age trigger) and `now_ms` (wall clock,
    /// for ingestion-time partitioning).
    pub fn new(now: Instant, now_ms: i64) -> Self {
        Batch {
            arena: Vec::new(),
            entries: Vec::new(),
            headers: Vec::new(),
            bytes: 0,
            opened_at: now,
            opened_at_ms: now_ms,
        }
    }

    fn copy_in(&mut self, bytes: &[u8]) -> Span {
        let last = self.arena.last();
        if last.is_none_or(|c| c.capacity() - c.len() < bytes.len()) {
            let next = last.map_or(MIN_CHUNK, |c| (c.capacity() * 2).min(MAX_CHUNK));
            self.arena.push(Vec::with_capacity(next.max(bytes.len())));
        }
        let chunk = self.arena.len() - 1;
        let stored = &mut self.arena[chunk];
        let start = stored.len();
        stored.extend_from_slice(bytes);
        Span {
            chunk,
            range: start..stored.len(),
        }
    }

    fn bytes_at(&self, span: &Span) -> &[u8] {
        &self.arena[span.chunk][span.range.clone()]
    }

    /// Appends a record. Offsets must increase; a record at or below the last offset is a bug
    /// in the caller and is rejected by a debug assertion.
    pub fn push(&mut self, record: &RecordRef<'_>) {
        debug_assert!(
            self.last_offset().is_none_or(|last| record.offset > last),
            "offsets must increase within a batch"
        );
        let key = record.key.map(|k| self.copy_in(k));
        let value = record.value.map(|v| self.copy_in(v));
        let header_start = self.headers.len();
        for (k, v) in record.headers {
            let key = self.copy_in(k.as_bytes());
            let value = v.map(|v| self.copy_in(v));
            self.headers.push(HeaderEntry { key, value });
        }
        self.entries.push(Entry {
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key,
            value,
            headers: header_start..self.headers.len(),
        });
        self.bytes += record.size();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Uncompressed payload bytes (keys, values, headers) held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn first_offset(&self) -> Option<i64> {
        self.entries.first().map(|e| e.offset)
    }

    pub fn last_offset(&self) -> Option<i64> {
        self.entries.last().map(|e| e.offset)
    }

    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// Wall-clock time the first record arrived, in ms since the epoch.
    pub fn opened_at_ms(&self) -> i64 {
        self.opened_at_ms
    }

    /// Timestamp of the first record, if it has one.
    pub fn first_timestamp_ms(&self) -> Option<i64> {
        self.entries.first().and_then(|e| e.timestamp_ms)
    }

    /// Iterates the records in offset order.
    pub fn records(&self) -> impl Iterator<Item = StoredRecord<'_>> {
        self.entries.iter().map(move |e| StoredRecord {
            batch: self,
            entry: e,
        })
    }

    /// Splits into the records at or below `offset` and those above it. Both halves keep this
    /// batch's opening times, so the age of the remainder keeps counting.
    pub fn split_after(self, offset: i64) -> (Batch, Batch) {
        let empty = Batch::new(self.opened_at, self.opened_at_ms);
        // The common cases move the batch instead of copying its arena.
        if self.last_offset().is_none_or(|last| last <= offset) {
            return (self, empty);
        }
        if self.first_offset().is_some_and(|first| first > offset) {
            return (empty, self);
        }
        let (mut head, mut tail) = (empty.clone(), empty);
        let mut headers = Vec::new();
        for record in self.records() {
            let half = if record.offset() <= offset {
                &mut head
            } else {
                &mut tail
            };
            half.push_stored(&record, &mut headers);
        }
        (head, tail)
    }

    /// Appends every record of `later`, whose offsets must all be above this batch's.
    pub fn append(&mut self, later: &Batch) {
        let mut headers = Vec::new();
        for record in later.records() {
            self.push_stored(&record, &mut headers);
        }
    }

    /// Copies a record of another batch in; `headers` is a reusable scratch buffer.
    fn push_stored<'a>(
        &mut self,
        record: &StoredRecord<'a>,
        headers: &mut Vec<(&'a str, Option<&'a [u8]>)>,
    ) {
        headers.clear();
        headers.extend(record.headers());
        self.push(&RecordRef {
            offset: record.offset(),
            timestamp_ms: record.timestamp_ms(),
            key: record.key(),
            value: record.value(),
            headers,
        });
    }
}

/// A record inside a [`Batch`].
#[derive(Clone, Copy)]
pub struct StoredRecord<'a> {
    batch: &'a Batch,
    entry: &'a Entry,
}

impl<'a> StoredRecord<'a> {
    pub fn offset(&self) -> i64 {
        self.entry.offset
    }
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.entry.timestamp_ms
    }
    pub fn key(&self) -> Option<&'a [u8]> {
        let batch = self.batch;
        self.entry.key.as_ref().map(|s| batch.bytes_at(s))
    }
    pub fn value(&self) -> Option<&'a [u8]> {
        let batch = self.batch;
        self.entry.value.as_ref().map(|s| batch.bytes_at(s))
    }
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let batch = self.batch;
        batch.headers[self.entry.headers.clone()]
            .iter()
            .map(move |h| {
                // Header keys were copied in from `&str`, so they are valid UTF-8.
                let key = std::str::from_utf8(batch.bytes_at(&h.key)).unwrap_or_default();
                (key, h.value.as_ref().map(|s| batch.bytes_at(s)))
            })
    }
}

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
}

impl FlushReason {
    pub const ALL: [FlushReason; 6] = [
        FlushReason::Records,
        FlushReason::Bytes,
        FlushReason::Age,
        FlushReason::MemoryPressure,
        FlushReason::Shutdown,
        FlushReason::Recovery,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::Records => "records",
            FlushReason::Bytes => "bytes",
            FlushReason::Age => "age",
            FlushReason::MemoryPressure => "memory_pressure",
            FlushReason::Shutdown => "shutdown",
            FlushReason::Recovery => "recovery",
        }
    }
}

/// The three flush triggers. The age trigger is evaluated against a clock the caller passes in,
/// so a quiet partition is flushed by the timer even when no record arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

impl FlushPolicy {
    /// Whether `record` must go into a new batch because it would push `batch` over the byte
    /// limit. A single record larger than the limit still gets a batch of its own.
    pub fn must_seal_before(&self, batch: &Batch, record: &RecordRef<'_>) -> bool {
        !batch.is_empty() && batch.bytes() + record.size() > self.max_bytes
    }

    /// The trigger that fires for `batch` at `now`, if any. Size triggers win over age.
    pub fn reason(&self, batch: &Batch, now: Instant) -> Option<FlushReason> {
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

    /// When the age trigger fires for `batch`; `None` for an empty batch.
    pub fn deadline(&self, batch: &Batch) -> Option<Instant> {
        (!batch.is_empty()).then(|| batch.opened_at() + self.max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: i64, value: &[u8]) -> RecordRef<'_> {
        RecordRef {
            offset,
            timestamp_ms: Some(1_700_000_000_000 + offset),
            key: None,
            value: Some(value),
            headers: &[],
        }
    }

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

    #[test]
    fn the_arena_never_holds_much_more_than_it_stores() {
        let t0 = Instant::now();
        let mut b = Batch::new(t0, 0);
        let value = [b'7'; 600];
        for o in 0..10_000 {
            b.push(&rec(o, &value));
        }
        let held: usize = b.arena.iter().map(Vec::capacity).sum();
        assert!(
            held <= b.bytes() + b.bytes() / 100 + MAX_CHUNK,
            "{held} for {}",
            b.bytes()
        );
        let big = vec![b'1'; 3 * MAX_CHUNK];
        b.push(&rec(10_000, &big));
        b.push(&rec(10_001, b"2"));
        let values: Vec<_> = b
            .records()
            .skip(9_999)
            .map(|r| r.value().unwrap().len())
            .collect();
        assert_eq!(values, vec![600, 3 * MAX_CHUNK, 1]);
    }

    #[test]
    fn split_and_append_keep_every_field() {
        let t0 = Instant::now();
        let mut b = Batch::new(t0, 42);
        let headers = [("h", Some(&b"v"[..])), ("n", None)];
        for o in [10, 12, 15] {
            b.push(&RecordRef {
                offset: o,
                timestamp_ms: Some(o * 1000),
                key: Some(b"k"),
                value: Some(b"[1]"),
                headers: &headers,
            });
        }
        let (head, tail) = b.clone().split_after(12);
        assert_eq!(
            (head.first_offset(), head.last_offset()),
            (Some(10), Some(12))
        );
        assert_eq!(
            (tail.first_offset(), tail.last_offset()),
            (Some(15), Some(15))
        );
        assert_eq!(head.bytes() + tail.bytes(), b.bytes());
        assert_eq!(tail.opened_at_ms(), 42);
        let r = tail.records().next().unwrap();
        assert_eq!(r.key(), Some(&b"k"[..]));
        assert_eq!(r.value(), Some(&b"[1]"[..]));
        assert_eq!(r.timestamp_ms(), Some(15_000));
        assert_eq!(r.headers().collect::<Vec<_>>(), headers.to_vec());
        // Splits outside the batch move it whole.
        let (all, none) = b.clone().split_after(15);
        assert_eq!((all.len(), none.len()), (3, 0));
        let (none, all) = b.clone().split_after(9);
        assert_eq!((none.len(), all.len(), all.bytes()), (0, 3, b.bytes()));
        let mut joined = head;
        joined.append(&tail);
        assert_eq!(
            joined.records().map(|r| r.offset()).collect::<Vec<_>>(),
            vec![10, 12, 15]
        );
        assert_eq!(joined.bytes(), b.bytes());
    }
}
