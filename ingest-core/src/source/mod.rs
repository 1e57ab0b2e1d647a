//! Sources: where records come from. A Kafka consumer group ([`kafka`]) or Azure Event Hubs
//! ([`eventhubs`]), behind one seam ([`Source`], [`Receiver`], [`Control`]) that the pipeline
//! loop polls, commits through and pauses.
//!
//! Invariants: an assignment reaches the loop before any record of it; `commit(p, last)` means
//! "everything through `last` has landed" (Kafka commits `last + 1`, Event Hubs checkpoints
//! `last`), and nothing else moves a committed position.
//!
//! A new source: a module here that yields [`RebalanceEvent`]s and records (a borrowed
//! [`crate::batch::RecordRef`] per record), a variant in [`Source`], [`Receiver`], [`Next`]
//! and [`Control`], and a branch in [`open`].

pub mod eventhubs;
mod facts;
pub mod kafka;
mod rebalance;
mod seam;

pub use facts::{Hint, PartitionFacts};
pub use rebalance::RebalanceEvent;
pub use seam::{open, Control, Next, Opened, Receiver, Source};
