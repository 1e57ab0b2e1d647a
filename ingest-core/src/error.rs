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
    /// The store refused an operation the service needs (a permission or credential to grant).
    #[error("{0}")]
    StorageRefused(String),
    /// The schema registry refused to serve a schema (credentials, permissions, the URL).
    #[error("{0}")]
    RegistryRefused(#[from] crate::registry::Refused),
    /// At start, the store or the broker cannot be reached (yet): the service waits with
    /// backoff, not ready, instead of exiting.
    #[error("{0}")]
    Unavailable(String),
    /// Kafka could not be reached, or the topic does not exist.
    #[error("{0}")]
    Kafka(String),
    /// librdkafka refused an `INGEST_KAFKA_*` property (named, its value never shown).
    #[error("{0}")]
    KafkaSetting(String),
    /// Event Hubs could not be reached, or the event hub cannot be read.
    #[error("{0}")]
    EventHubs(String),
    /// A record is not valid JSON and the policy is `fail`.
    #[error(transparent)]
    InvalidRecord(#[from] InvalidRecord),
    /// A claim object cannot be read; recovery cannot continue safely.
    #[error("claim {path} is unreadable ({reason}); move it aside only after checking which file it describes")]
    CorruptClaim { path: String, reason: String },
    /// A claim at a batch's name was written for other records (a recreated topic, or another
    /// cluster landing into the same root): nothing is skipped or committed on its account.
    #[error("claim {path} was written for other records than {topic}/{partition}@{offset} holds now ({reason}): the topic was recreated or another cluster lands into this storage root; nothing was skipped or committed. Land this topic under a new INGEST_STORAGE_URL prefix, or move {topic}/ and _ingest/claims/{topic}/ aside first")]
    ForeignClaim {
        path: String,
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    /// A data file exists at a new batch's name without the claim that should precede it.
    #[error("data file {path} exists but its claim does not (deleted by a lifecycle rule?), so what it holds is unknown; nothing was skipped or committed past it. Check which records it holds, then move it aside (or put its claim back at {claim}) and restart; keep claims as long as their files")]
    UnclaimedFile { path: String, claim: String },
    /// The records that complete an earlier claim did not arrive in time.
    #[error("claim {path} ends at offset {through}, but no record at or past it arrived within {waited:?} (removed by retention or compaction, or hidden by isolation.level?); nothing past the claim was committed. Check the partition's earliest and latest offsets, then raise INGEST_CLAIM_COMPLETION_TIMEOUT_MS or move the claim aside")]
    ClaimIncomplete {
        path: String,
        through: i64,
        waited: Duration,
    },
    /// The claim chain in storage cannot be this partition's (a recreated topic, another
    /// cluster, claims deleted): nothing was consumed, skipped or committed.
    #[error("partition {partition} of {topic} cannot start: {reason}; nothing was consumed or committed. If the topic was recreated or another cluster lands here, land it under a new INGEST_STORAGE_URL prefix (or move {topic}/ and _ingest/claims/{topic}/ aside); if claims were deleted, put them back, and keep claims as long as their files")]
    ChainRefused {
        topic: String,
        partition: i32,
        reason: String,
    },
    /// The record at the end of the claim chain is not the one the claim was made for.
    #[error("partition {partition} of {topic} cannot start: the record at offset {offset} is not the one claim {path} landed there (digest {claimed}, now {found}): the topic was recreated or another cluster lands here; nothing was consumed or committed. Land it under a new INGEST_STORAGE_URL prefix, or move {topic}/ and _ingest/claims/{topic}/ aside first")]
    ChainMismatch {
        topic: String,
        partition: i32,
        offset: i64,
        path: String,
        claimed: String,
        found: String,
    },
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
                | Error::Unavailable(_)
                | Error::Kafka(_)
                | Error::EventHubs(_)
                | Error::ShutdownTimeout { .. }
                | Error::Internal(_)
        )
    }
}
