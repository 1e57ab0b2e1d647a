//! Readiness follows storage even when no flush runs: a background check every
//! `INGEST_STORAGE_CHECK_INTERVAL_MS`.
//!
//! Invariant: the check only reads (a probe object's existence) and only updates the health
//! facts; flushes update the same fact as they succeed or fail.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::health::Health;
use crate::storage::Storage;

/// Re-checks storage every `interval` until `stop` is cancelled.
pub async fn storage(
    storage: Storage,
    health: Arc<Health>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = storage.check() => r,
        };
        health.update(|f| f.storage_error = result.err());
    }
}
