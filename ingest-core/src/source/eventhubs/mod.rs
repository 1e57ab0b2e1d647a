//! The Azure Event Hubs source: partition ownership and checkpoints in the Azure SDKs' blob
//! checkpoint store layout (so a service can resume from a checkpoint an Azure SDK processor
//! wrote, and the other way round), one receiver per owned partition
//! (`azure_messaging_eventhubs`), and checkpoints written after files land.
//!
//! Invariants:
//! - The loop sees `Assigned(p)` before any event of that ownership and `Revoked(p)` before
//!   events of a later one: both travel through the one channel the events use, and events of an
//!   earlier ownership (an older generation) are dropped on arrival ([`receiver`]).
//! - A receiver starts just after the partition's checkpoint (the last landed event), else at
//!   the configured earliest/latest; after a broken link it resumes after the last event it
//!   handed over, so nothing is skipped or handed twice within one ownership ([`partition`]).
//! - A checkpoint is written only by `commit`, which the flusher calls after the file landed, and
//!   names the last landed event's sequence number and offset (a batch keeps its last event's
//!   offset, nothing is kept per event) ([`receiver::Control`]).
//! - What the receivers hold ahead of the loop (link credit, the channel) is bounded by a quarter
//!   of the buffer cap for events of the largest size, and batches get the rest ([`credit`]).
//! - Ownership is renewed every load-balancing round; a partition whose record another replica
//!   overwrote is revoked at once. Ownership is released only after the final commits
//!   ([`ownership`]).
//!
//! `layout` (names, metadata, start position) and `balance` (which partition to claim) are pure;
//! `store` reads and writes the blobs through object_store with ETag conditions; `connect`
//! opens the client and starts balancing.

pub mod balance;
pub mod body;
mod connect;
mod context;
pub mod credit;
pub mod encoding;
pub mod identity;
pub mod layout;
pub mod listing;
mod management;
mod ownership;
mod partition;
pub mod receiver;
pub mod store;

pub use connect::{open, unreachable};
pub use receiver::{Control, Event, Next, Receiver};
