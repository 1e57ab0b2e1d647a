//! The records of one future file: an arena of chunks that a batch copies every record into at
//! once, so borrowed source messages are released immediately.
//!
//! Pure: no I/O, no async runtime; the clock is always an argument. Each record is stored whole
//! in one chunk ([`super::record`]), so there is no separate index. Chunks are never reallocated
//! (a growing `Vec` would copy everything and hold up to twice what it stores); a full chunk is
//! frozen behind an `Arc`, so a later stage can read it while the batch keeps growing
//! ([`Batch::hand_out_frozen`]). Invariant: what the batch holds in memory is
//! [`Batch::held_bytes`], its chunks' capacity (record bytes, headers and at most one partly
//! filled chunk of 64 KiB), plus what its [`Attachment`] reports.

use std::sync::Arc;
use std::time::Instant;

use super::pool;
use super::record::{self, records_in, RecordRef, StoredRecord};

/// Work a later stage attaches to a batch while it fills (the encoder going ahead), carried with
/// it to its flush. The batch only counts its memory; it never looks inside.
pub trait Attachment: std::fmt::Debug + Send + Sync {
    /// Memory the attachment holds, counted with the batch's.
    fn held_bytes(&self) -> usize;
}

/// No attachment.
impl Attachment for () {
    fn held_bytes(&self) -> usize {
        0
    }
}

/// The first arena chunk; each next one doubles, up to [`MAX_CHUNK`].
pub const MIN_CHUNK: usize = 4 * 1024;
/// Largest arena chunk, unless a single record is larger (it then gets a chunk of its own size).
pub const MAX_CHUNK: usize = 64 * 1024;

/// An arena chunk. A full-size one goes back to the [`pool`] when its last holder (the batch,
/// or a job encoding ahead) drops it.
#[derive(Debug, Default)]
pub struct Chunk(Vec<u8>);

impl Chunk {
    fn with_capacity(capacity: usize) -> Chunk {
        Chunk(pool::take(capacity))
    }
}

impl std::ops::Deref for Chunk {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Chunk {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Clone for Chunk {
    /// A copy of the bytes (never pooled: its capacity is its length).
    fn clone(&self) -> Chunk {
        Chunk(self.0.clone())
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.0));
    }
}

/// Records of one partition, in offset order, destined for one file.
#[derive(Debug)]
pub struct Batch<A: Attachment = ()> {
    /// Full chunks, never written again.
    frozen: Vec<Arc<Chunk>>,
    /// Bytes stored in the frozen chunks.
    frozen_bytes: usize,
    /// What a later stage attached while the batch fills (encoding ahead), once it handed out
    /// frozen chunks.
    ahead: Option<Arc<A>>,
    /// Frozen chunks, and their bytes, handed out (see [`Batch::hand_out_frozen`]).
    ahead_chunks: usize,
    ahead_bytes: usize,
    /// The chunk being filled.
    open: Chunk,
    len: usize,
    bytes: usize,
    held: usize,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    /// The last record's [`RecordRef::cursor`] (its buffer reused from record to record).
    cursor: Option<String>,
    first_timestamp_ms: Option<i64>,
    opened_at: Instant,
    opened_at_ms: i64,
}

impl<A: Attachment> Batch<A> {
    /// An empty batch opened at `now` (monotonic, for the age trigger) and `now_ms` (wall clock,
    /// for ingestion-time partitioning).
    pub fn new(now: Instant, now_ms: i64) -> Self {
        Batch {
            frozen: Vec::new(),
            frozen_bytes: 0,
            ahead: None,
            ahead_chunks: 0,
            ahead_bytes: 0,
            open: Chunk::default(),
            len: 0,
            bytes: 0,
            held: 0,
            first_offset: None,
            last_offset: None,
            cursor: None,
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
        let full = std::mem::replace(&mut self.open, Chunk::with_capacity(next.max(need)));
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
        record::store(&mut self.open, record);
        if self.len == 0 {
            self.first_offset = Some(record.offset);
            self.first_timestamp_ms = record.timestamp_ms;
        }
        self.last_offset = Some(record.offset);
        match (&mut self.cursor, record.cursor) {
            (Some(kept), Some(c)) => {
                kept.clear();
                kept.push_str(c);
            }
            (kept, c) => *kept = c.map(str::to_owned),
        }
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

    /// The last record's offset and its [`RecordRef::cursor`], when it had one.
    pub fn last_cursor(&self) -> Option<(i64, &str)> {
        Some((self.last_offset?, self.cursor.as_deref()?))
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

    /// Hands the frozen chunks nobody has had yet to `start`, once there are `min_bytes` of
    /// them: with this batch's attachment (made by `attach` the first time), all frozen chunks
    /// so far, and how many of them were handed out before. If `start` declines (`None`, say
    /// the previous job still runs), the chunks stay unhanded.
    pub fn hand_out_frozen<J>(
        &mut self,
        min_bytes: usize,
        attach: impl FnOnce() -> A,
        start: impl FnOnce(&Arc<A>, &[Arc<Chunk>], usize) -> Option<J>,
    ) -> Option<J> {
        if self.frozen_bytes - self.ahead_bytes < min_bytes {
            return None;
        }
        let ahead = self.ahead.get_or_insert_with(|| Arc::new(attach()));
        let job = start(ahead, &self.frozen, self.ahead_chunks)?;
        self.ahead_chunks = self.frozen.len();
        self.ahead_bytes = self.frozen_bytes;
        Some(job)
    }

    /// What a later stage attached to this batch, if anything.
    pub fn attachment(&self) -> Option<&Arc<A>> {
        self.ahead.as_ref()
    }

    /// Memory held by the attachment.
    pub fn ahead_held_bytes(&self) -> usize {
        self.ahead.as_ref().map_or(0, |a| a.held_bytes())
    }

    /// Iterates the records in offset order.
    pub fn records(&self) -> impl Iterator<Item = StoredRecord<'_>> {
        self.records_after(0)
    }

    /// The last record, read from the last chunk alone (the open one, or the last frozen one
    /// when the open one is empty).
    pub fn last_record(&self) -> Option<StoredRecord<'_>> {
        self.records_after(self.frozen.len().saturating_sub(1))
            .last()
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
    pub fn split_after(self, offset: i64) -> (Batch<A>, Batch<A>) {
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
        // Cursors are kept for the last record only: the tail's is this batch's.
        tail.cursor = self.cursor;
        (head, tail)
    }

    /// Appends every record of `later`, whose offsets must all be above this batch's.
    pub fn append(&mut self, later: &Batch<A>) {
        let mut headers = Vec::new();
        for record in later.records() {
            self.push_stored(&record, &mut headers);
        }
        if !later.is_empty() {
            self.cursor.clone_from(&later.cursor);
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
            flaw: record.flaw(),
            cursor: None,
        });
    }
}

impl<A: Attachment> Clone for Batch<A> {
    /// A copy of the records; the attachment (what was encoded ahead) stays with the original.
    fn clone(&self) -> Batch<A> {
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
            cursor: self.cursor.clone(),
            first_timestamp_ms: self.first_timestamp_ms,
            opened_at: self.opened_at,
            opened_at_ms: self.opened_at_ms,
        }
    }
}

#[cfg(test)]
mod tests;
