//! Landing: the delivery protocol that puts each sealed batch in storage exactly once. A claim
//! names the batch's extent before any file is written ([`recovery`]); files are named by topic,
//! partition and first offset ([`naming`]); the flush claims, encodes, uploads create-only and only
//! then commits ([`flush`]).
//!
//! Invariants (the README's "How exactly-once works" says why each exists): the claim is written
//! before any file; nothing is committed before its file landed, and never for a partition no
//! longer owned; no file is ever rewritten (every write is create-only); an existing claim is
//! always honoured (its file is skipped or completed exactly as claimed); a storage outage pauses
//! the partition with backoff and loses nothing.

pub mod claimed;
pub mod cover;
mod encoding;
pub mod event_time;
pub mod flush;
pub mod naming;
mod planned;
mod publish;
pub mod recovery;
mod resume;
pub mod schemas;

pub use encoding::encoders;
pub use flush::{Flusher, Outcome};
