//! Operations: what a running service tells the people and systems that watch it. Liveness and
//! readiness ([`health`], and [`watch`] for storage), the HTTP endpoint ([`http`]), metrics
//! ([`metrics`]), logs ([`telemetry`]) and what has landed so far ([`progress`]).
//!
//! Invariant: nothing here can block or slow the pipeline: the pipeline reports facts (per flush,
//! per second, never per record) and the endpoint only reads them.

pub mod health;
pub mod http;
pub mod metrics;
pub mod progress;
pub mod telemetry;
pub mod watch;
