//! Landing: the delivery protocol that puts each sealed batch in storage exactly once. Where a
//! partition starts is the end of its claim chain in storage ([`start`], read by `chain`); a
//! claim names the batch's extent before any file is written ([`recovery`]), at the offset after
//! the previous claim's end; files are named by topic, partition and that offset ([`naming`]);
//! the flush claims, encodes, uploads create-only and only then commits ([`flush`]).
//!
//! Invariants ("How exactly-once works" in the book, docs/src/delivery.md says why each exists): the claim is written
//! before any file; nothing is committed before its file landed, and never for a partition no
//! longer owned; no file is ever rewritten (every write is create-only); an existing claim is
//! always honoured (its file is skipped or completed exactly as claimed); a storage outage pauses
//! the partition with backoff and loses nothing.

mod chain;
pub mod claimed;
mod encoding;
pub mod event_time;
pub mod flush;
mod met;
pub mod naming;
mod planned;
mod publish;
pub mod recovery;
pub mod refuge;
pub mod schemas;
pub mod search;
pub mod start;
pub mod table;

pub use encoding::encoders;
pub use flush::{Flusher, Outcome};
