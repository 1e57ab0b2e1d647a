//! The library's one public error. Every message says what failed, with which input, and what
//! to do about it, in one line.

use std::time::Duration;

use crate::config::ConfigError;
use crate::encode::InvalidRecord;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An `INGEST_*` variable is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage could not be set up or the start-up write probe failed.
    #[error("{0}")]
    Storage(String),
    /// Kafka could not be reached, or the topic does not exist.
    #[error("{0}")]
    Kafka(String),
    /// Event Hubs could not be reached, or the event hub cannot be read.
    #[error("{0}")]
    EventHubs(String),
    /// A record is not valid JSON and the policy is `fail`.
    #[error(transparent)]
    InvalidRecord(#[from] InvalidRecord),
    /// A claim object cannot be read; recovery cannot continue safely.
    #[error("claim {path} is unreadable ({reason}); move it aside only after checking which file it describes")]
    CorruptClaim { path: String, reason: String },
    /// Graceful shutdown did not finish within `INGEST_SHUTDOWN_TIMEOUT_MS`.
    #[error("shutdown did not finish within {timeout:?} (partitions still flushing: {pending:?}); nothing unlanded was committed, raise INGEST_SHUTDOWN_TIMEOUT_MS")]
    ShutdownTimeout {
        timeout: Duration,
        pending: Vec<i32>,
    },
    /// The operations endpoint (`INGEST_HTTP_ADDR`) cannot listen.
    #[error("{0}")]
    Endpoint(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether restarting the service may succeed without changing anything (a transient
    /// condition), as opposed to needing a configuration or data fix.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Storage(_)
                | Error::Kafka(_)
                | Error::EventHubs(_)
                | Error::ShutdownTimeout { .. }
                | Error::Internal(_)
        )
    }
}
