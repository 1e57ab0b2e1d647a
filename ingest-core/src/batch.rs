//! The records of one future file and the rules that decide when it is flushed.
//!
//! Pure: no I/O, no async runtime; the clock is always an argument. A [`Batch`] copies every
//! record into its arena at once, so borrowed Kafka messages are released immediately. Each
//! record is stored whole in one chunk as a 28-byte header (offset, timestamp, lengths) followed
//! by its bytes, so there is no separate index. Chunks are never reallocated (a growing `Vec`
//! would copy everything and hold up to twice what it stores); a full chunk is frozen behind an
//! `Arc`, so an encoder can read it while the batch keeps growing. What the batch holds in memory
//! is [`Batch::held_bytes`]: its chunks' capacity (record bytes, headers and at most one partly
//! filled chunk of 64 KiB).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ahead::{Ahead, Job};
use crate::encode::Encoder;

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

    /// Bytes the record takes in a chunk.
    fn stored_len(&self) -> usize {
        RECORD_HEADER
            + self.key.map_or(0, <[u8]>::len)
            + self.value.map_or(0, <[u8]>::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| HEADER_HEADER + k.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>()
    }
}

/// A stored record starts with offset (i64), timestamp (i64), key length, value length (u32,
/// [`ABSENT`] for none) and header count (u32), little-endian.
const RECORD_HEADER: usize = 8 + 8 + 4 + 4 + 4;
/// Each stored header starts with its key and value lengths (u32).
const HEADER_HEADER: usize = 4 + 4;
/// Length of an absent key or value.
const ABSENT: u32 = u32::MAX;
/// Timestamp of a record that has none (Kafka timestamps are never negative but -1).
const NO_TIMESTAMP: i64 = i64::MIN;

/// The first arena chunk; each next one doubles, up to [`MAX_CHUNK`].
pub const MIN_CHUNK: usize = 4 * 1024;
/// Largest arena chunk, unless a single record is larger (it then gets a chunk of its own size).
pub const MAX_CHUNK: usize = 64 * 1024;

/// Records of one partition, in offset order, destined for one file.
#[derive(Debug)]
pub struct Batch {
    /// Full chunks, never written again.
    frozen: Vec<Arc<Vec<u8>>>,
    /// Bytes stored in the frozen chunks.
    frozen_bytes: usize,
    /// Encoding ahead of the flush, once a job was handed out (see `ahead`).
    ahead: Option<Arc<Ahead>>,
    /// Frozen chunks, and their bytes, handed to encoding jobs.
    ahead_chunks: usize,
    ahead_bytes: usize,
    /// The chunk being filled.
    open: Vec<u8>,
    len: usize,
    bytes: usize,
    held: usize,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    first_timestamp_ms: Option<i64>,
    opened_at: Instant,
    opened_at_ms: i64,
}

fn put_len(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    let len = bytes.map_or(ABSENT, |b| b.len() as u32);
    out.extend_from_slice(&len.to_le_bytes());
}

impl Batch {
    /// An empty batch opened at `now` (monotonic, for the age trigger) and `now_ms` (wall clock,
    /// for ingestion-time partitioning).
    pub fn new(now: Instant, now_ms: i64) -> Self {
        Batch {
            frozen: Vec::new(),
            frozen_bytes: 0,
            ahead: None,
            ahead_chunks: 0,
            ahead_bytes: 0,
            open: Vec::new(),
            len: 0,
            bytes: 0,
            held: 0,
            first_offset: None,
            last_offset: None,
            first_timestamp_ms: None,
            opened_at: now,
            opened_at_ms: now_ms,
        }
    }

    /// Makes room for `need` bytes in the open chunk, freezing it if it is too full.
    fn reserve(&mut self, need: usize) {
        if self.open.capacity() - self.open.len() >= need {
            return;
        }
        let next = if self.open.capacity() == 0 && self.frozen.is_empty() {
            MIN_CHUNK
        } else {
            (self.open.capacity() * 2).clamp(MIN_CHUNK, MAX_CHUNK)
        };
        let full = std::mem::replace(&mut self.open, Vec::with_capacity(next.max(need)));
        if !full.is_empty() {
            self.frozen_bytes += full.len();
            self.frozen.push(Arc::new(full));
        }
        self.held += self.open.capacity();
    }

    /// Appends a record. Offsets must increase; a record at or below the last offset is a bug
    /// in the caller and is rejected by a debug assertion.
    pub fn push(&mut self, record: &RecordRef<'_>) {
        debug_assert!(
            self.last_offset.is_none_or(|last| record.offset > last),
            "offsets must increase within a batch"
        );
        self.reserve(record.stored_len());
        let out = &mut self.open;
        out.extend_from_slice(&record.offset.to_le_bytes());
        out.extend_from_slice(&record.timestamp_ms.unwrap_or(NO_TIMESTAMP).to_le_bytes());
        put_len(out, record.key);
        put_len(out, record.value);
        out.extend_from_slice(&(record.headers.len() as u32).to_le_bytes());
        out.extend_from_slice(record.key.unwrap_or_default());
        out.extend_from_slice(record.value.unwrap_or_default());
        for (k, v) in record.headers {
            put_len(out, Some(k.as_bytes()));
            put_len(out, *v);
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(v.unwrap_or_default());
        }
        if self.len == 0 {
            self.first_offset = Some(record.offset);
            self.first_timestamp_ms = record.timestamp_ms;
        }
        self.last_offset = Some(record.offset);
        self.len += 1;
        self.bytes += record.size();
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Uncompressed payload bytes (keys, values, headers) held: what the flush limits count.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Memory the batch holds: its chunks' capacity. What the buffer cap counts.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    pub fn first_offset(&self) -> Option<i64> {
        self.first_offset
    }

    pub fn last_offset(&self) -> Option<i64> {
        self.last_offset
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
        self.first_timestamp_ms
    }

    /// A job encoding the frozen chunks that no job has had yet, once there are `min_bytes` of
    /// them and the previous job is done. `encoder` makes the batch's encoder at the first job.
    pub(crate) fn ahead_job(
        &mut self,
        min_bytes: usize,
        encoder: impl FnOnce() -> Encoder,
    ) -> Option<Job> {
        if self.frozen_bytes - self.ahead_bytes < min_bytes {
            return None;
        }
        let ahead = self
            .ahead
            .get_or_insert_with(|| Arc::new(Ahead::new(encoder())));
        let job = ahead.job(&self.frozen, self.ahead_chunks, min_bytes)?;
        self.ahead_chunks = self.frozen.len();
        self.ahead_bytes = self.frozen_bytes;
        Some(job)
    }

    /// The encoder that went ahead, with how many frozen chunks it has encoded (the rest are
    /// [`Batch::records_after`] them); `None` if none did. Waits while a job is running.
    pub(crate) fn take_ahead(&self) -> Option<(Encoder, usize)> {
        self.ahead.as_ref()?.take()
    }

    /// Memory held by the encoder that went ahead (while no job runs).
    pub fn ahead_held_bytes(&self) -> usize {
        self.ahead.as_ref().map_or(0, |a| a.held_bytes())
    }

    /// Iterates the records in offset order.
    pub fn records(&self) -> impl Iterator<Item = StoredRecord<'_>> {
        self.records_after(0)
    }

    /// Iterates the records after the first `chunks` frozen chunks.
    pub fn records_after(&self, chunks: usize) -> impl Iterator<Item = StoredRecord<'_>> {
        self.frozen
            .iter()
            .skip(chunks)
            .map(|c| &c[..])
            .chain(std::iter::once(&self.open[..]))
            .flat_map(records_in)
    }

    /// Splits into the records at or below `offset` and those above it. Both halves keep this
    /// batch's opening times, so the age of the remainder keeps counting.
    pub fn split_after(self, offset: i64) -> (Batch, Batch) {
        let empty = Batch::new(self.opened_at, self.opened_at_ms);
        // The common cases move the batch instead of copying its arena.
        if self.last_offset.is_none_or(|last| last <= offset) {
            return (self, empty);
        }
        if self.first_offset.is_some_and(|first| first > offset) {
            return (empty, self);
        }
        let (mut head, mut tail) = (Batch::new(self.opened_at, self.opened_at_ms), empty);
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

impl Clone for Batch {
    /// A copy of the records; what was encoded ahead stays with the original.
    fn clone(&self) -> Batch {
        let open = self.open.clone();
        Batch {
            frozen: self.frozen.clone(),
            frozen_bytes: self.frozen_bytes,
            ahead: None,
            ahead_chunks: 0,
            ahead_bytes: 0,
            held: self.held - self.open.capacity() + open.capacity(),
            open,
            len: self.len,
            bytes: self.bytes,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            first_timestamp_ms: self.first_timestamp_ms,
            opened_at: self.opened_at,
            opened_at_ms: self.opened_at_ms,
        }
    }
}

/// The records stored in one chunk, in order.
pub fn records_in(chunk: &[u8]) -> impl Iterator<Item = StoredRecord<'_>> {
    let mut rest = chunk;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (record, after) = StoredRecord::parse(rest);
        rest = after;
        Some(record)
    })
}

/// A record inside a [`Batch`].
#[derive(Clone, Copy)]
pub struct StoredRecord<'a> {
    offset: i64,
    timestamp_ms: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    header_count: u32,
    headers: &'a [u8],
}

/// Reads a little-endian number at the front of `bytes` (written by [`Batch::push`]).
fn take<const N: usize>(bytes: &mut &[u8]) -> [u8; N] {
    let (head, rest) = bytes.split_at(N);
    *bytes = rest;
    head.try_into().expect("split_at gave N bytes")
}

fn take_bytes<'a>(bytes: &mut &'a [u8], len: u32) -> Option<&'a [u8]> {
    (len != ABSENT).then(|| {
        let (head, rest) = bytes.split_at(len as usize);
        *bytes = rest;
        head
    })
}

impl<'a> StoredRecord<'a> {
    /// Parses the record at the front of `chunk`; returns it and what follows.
    fn parse(mut chunk: &'a [u8]) -> (StoredRecord<'a>, &'a [u8]) {
        let offset = i64::from_le_bytes(take(&mut chunk));
        let timestamp_ms = i64::from_le_bytes(take(&mut chunk));
        let key_len = u32::from_le_bytes(take(&mut chunk));
        let value_len = u32::from_le_bytes(take(&mut chunk));
        let header_count = u32::from_le_bytes(take(&mut chunk));
        let key = take_bytes(&mut chunk, key_len);
        let value = take_bytes(&mut chunk, value_len);
        let mut headers_len = 0;
        let mut h = chunk;
        for _ in 0..header_count {
            let k = u32::from_le_bytes(take(&mut h));
            let v = u32::from_le_bytes(take(&mut h));
            let len = k as usize + if v == ABSENT { 0 } else { v as usize };
            h = &h[len..];
            headers_len += HEADER_HEADER + len;
        }
        let (headers, rest) = chunk.split_at(headers_len);
        let record = StoredRecord {
            offset,
            timestamp_ms,
            key,
            value,
            header_count,
            headers,
        };
        (record, rest)
    }

    pub fn offset(&self) -> i64 {
        self.offset
    }
    pub fn timestamp_ms(&self) -> Option<i64> {
        (self.timestamp_ms != NO_TIMESTAMP).then_some(self.timestamp_ms)
    }
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let mut rest = self.headers;
        (0..self.header_count).map(move |_| {
            let k = u32::from_le_bytes(take(&mut rest));
            let v = u32::from_le_bytes(take(&mut rest));
            let key = take_bytes(&mut rest, k).unwrap_or_default();
            let value = take_bytes(&mut rest, v);
            // Header keys were copied in from `&str`, so they are valid UTF-8.
            (std::str::from_utf8(key).unwrap_or_default(), value)
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
        let held: usize = b.frozen.iter().map(|c| c.capacity()).sum::<usize>() + b.open.capacity();
        assert_eq!(held, b.held_bytes());
        let stored = b.bytes() + b.len() * RECORD_HEADER;
        assert!(
            held <= stored + stored / 100 + MAX_CHUNK,
            "{held} for {stored}"
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
