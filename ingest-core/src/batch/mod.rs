//! Batching: the records of each partition's future files, and when each file is flushed.
//!
//! Pure: no I/O, no async runtime, no knowledge of how batches are encoded or landed; the clock
//! is always an argument. A record is copied into its partition's open batch as it arrives
//! ([`record`], [`arena`]); the flush triggers ([`trigger`]) seal it; the partition's state
//! machine ([`partition`]) queues sealed batches and lets one at a time go to the flush.
//!
//! Invariants: at most one batch per partition is in flight; records at or below an offset
//! known to be landed are dropped; the memory a batch holds is counted exactly
//! ([`Batch::held_bytes`]), which is what the buffer cap adds up.

pub mod arena;
pub mod partition;
pub mod pool;
pub mod record;
pub mod trigger;

pub use arena::{Attachment, Batch, Chunk, MAX_CHUNK, MIN_CHUNK};
pub use partition::{PartitionState, Sealed};
pub use record::{records_in, Flaw, RecordRef, StoredRecord};
pub use trigger::{FlushPolicy, FlushReason, Triggers};
