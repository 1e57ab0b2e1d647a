//! Full-size arena chunks ([`MAX_CHUNK`]) freed by batches, kept for the next batches instead
//! of going back to the allocator.
//!
//! Why: a batch's chunks live from its first record until its file is uploaded, and hundreds
//! of batches fill and empty at once. Freed to the heap, they leave holes among what was
//! allocated meanwhile (the Parquet writer's arrays and pages, librdkafka's buffers) that later
//! allocations only partly fill. Reused, they keep chunk memory within the most the batches
//! ever held at once, which the buffer cap bounds: 7-10 MB less peak RSS for Parquet over a
//! backlog (`make bench-formats`, bench/RESULTS.md).
//!
//! Invariant: the pool holds at most its limit in bytes; chunks beyond it are freed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::arena::MAX_CHUNK;

/// The pool batches use. Its limit until the service sets its own ([`set_limit`]).
static POOL: Pool = Pool::new(16 << 20);

/// Keeps at most `bytes` of freed chunks (the service: a quarter of its buffer cap).
pub fn set_limit(bytes: usize) {
    POOL.set_limit(bytes);
}

/// An empty chunk of `capacity` bytes: a kept one when it is full-size and one is free.
pub(super) fn take(capacity: usize) -> Vec<u8> {
    POOL.take(capacity)
}

/// Takes back a chunk no batch holds any more.
pub(super) fn give(chunk: Vec<u8>) {
    POOL.give(chunk);
}

/// Freed full-size chunks, up to a limit in bytes.
struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    limit: AtomicUsize,
}

impl Pool {
    const fn new(limit: usize) -> Pool {
        Pool {
            free: Mutex::new(Vec::new()),
            limit: AtomicUsize::new(limit),
        }
    }

    fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Relaxed);
        self.lock().truncate(bytes / MAX_CHUNK);
    }

    #[cfg(test)]
    fn pooled_bytes(&self) -> usize {
        self.lock().len() * MAX_CHUNK
    }

    fn take(&self, capacity: usize) -> Vec<u8> {
        if capacity == MAX_CHUNK {
            if let Some(chunk) = self.lock().pop() {
                return chunk;
            }
        }
        Vec::with_capacity(capacity)
    }

    /// Keeps `chunk` if it is full-size and the pool has room; frees it otherwise.
    fn give(&self, mut chunk: Vec<u8>) {
        if chunk.capacity() != MAX_CHUNK {
            return;
        }
        let limit = self.limit.load(Ordering::Relaxed);
        let mut free = self.lock();
        if (free.len() + 1) * MAX_CHUNK <= limit {
            chunk.clear();
            free.push(chunk);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_size_chunks_come_back_emptied_and_the_limit_frees_the_rest() {
        let pool = Pool::new(2 * MAX_CHUNK);
        let mut a = pool.take(MAX_CHUNK);
        a.extend_from_slice(b"record");
        let at = a.as_ptr();
        pool.give(a);
        pool.give(Vec::with_capacity(MAX_CHUNK));
        pool.give(Vec::with_capacity(MAX_CHUNK));
        assert_eq!(pool.pooled_bytes(), 2 * MAX_CHUNK, "the third is freed");
        pool.give(Vec::with_capacity(MIN));
        assert_eq!(
            pool.pooled_bytes(),
            2 * MAX_CHUNK,
            "a small chunk is never kept"
        );
        let small = pool.take(MIN);
        assert_eq!(
            small.capacity(),
            MIN,
            "small chunks are not taken from the pool"
        );
        let again = pool.take(MAX_CHUNK);
        let first = pool.take(MAX_CHUNK);
        assert!(again.is_empty() && first.is_empty());
        assert_eq!(
            first.as_ptr(),
            at,
            "the first chunk given is the last taken"
        );
        assert_eq!(pool.pooled_bytes(), 0);
        let fresh = pool.take(MAX_CHUNK);
        assert_eq!(fresh.capacity(), MAX_CHUNK);
        pool.give(again);
        pool.give(first);
        pool.set_limit(MAX_CHUNK);
        assert_eq!(
            pool.pooled_bytes(),
            MAX_CHUNK,
            "a lower limit frees what is over it"
        );
    }

    const MIN: usize = super::super::arena::MIN_CHUNK;
}
