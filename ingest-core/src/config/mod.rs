//! Configuration: every `INGEST_*` environment variable, read in one place ([`env`]) and
//! validated into a typed [`Config`], one file per concern: [`kafka`], [`storage`] (and
//! [`cloud`] credentials), [`flush`] limits, [`encoding`], [`eventhubs`], and [`ops`] (logs,
//! endpoint, health, fault injection).
//!
//! Reading (`envy`, flat struct of strings) is separate from [`RawEnv::validate`], which is pure:
//! it never builds clients or touches the network. Invariant: a bad variable is reported in one
//! line naming the variable, the value (unless secret) and what is expected; secrets never
//! appear in `Debug` output. This is the bottom layer: it imports no other stage.

use std::fmt;
use std::time::Duration;

use url::Url;

pub mod cloud;
pub mod encoding;
pub mod env;
pub mod eventhubs;
pub mod flush;
pub mod format;
pub mod kafka;
pub mod layout;
pub mod ops;
mod parse;
pub mod reference;
pub mod registry;
pub mod storage;
pub mod time;
pub mod transport;

use cloud::{AzureConnection, CloudEnv};
pub use encoding::{Compression, Envelope, InvalidRecordPolicy};
pub use env::RawEnv;
use eventhubs::EventHubsConfig;
pub use flush::FlushPolicy;
pub use format::{DeltaSettings, Format, ParquetCompression, ParquetSettings};
pub use kafka::{validate_topic, KafkaConfig, Property};
pub use layout::{Layout, PathTemplate};
pub use ops::{Fault, LogFormat};
pub use parse::ConfigError;
pub use registry::{RegistryAuth, RegistryConfig, ValueFormat};
pub use storage::{is_azure, redact_url, MultipartPolicy};
pub use time::{Granularity, TimeField, TimeFormat, TimeSource};

/// Defaults, documented in docs/src/configuration.md next to each variable.
pub mod defaults {
    pub const FLUSH_MAX_RECORDS: usize = 500_000;
    pub const FLUSH_MAX_BYTES: usize = 64 * 1024 * 1024;
    pub const FLUSH_MAX_AGE_MS: u64 = 300_000;
    pub const MAX_BUFFER_BYTES: usize = 256 * 1024 * 1024;
    pub const MAX_RECORD_BYTES: usize = 8 * 1024 * 1024;
    pub const COMPRESSION_LEVEL: u32 = 6;
    pub const DEAD_LETTER_PREFIX: &str = "_dead_letters";
    pub const SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
    pub const MULTIPART_THRESHOLD_BYTES: usize = 16 * 1024 * 1024;
    pub const MULTIPART_PART_BYTES: usize = 8 * 1024 * 1024;
    pub const HTTP_ADDR: &str = "0.0.0.0:8080";
    pub const HEALTH_STALL_MS: u64 = 60_000;
    pub const STORAGE_CHECK_INTERVAL_MS: u64 = 15_000;
    pub const CLAIM_COMPLETION_TIMEOUT_MS: u64 = 600_000;
    /// S3's smallest part (all but the last).
    pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// `INGEST_TOPIC` (required): the one topic this service lands.
    pub topic: String,
    pub kafka: KafkaConfig,
    /// `INGEST_SOURCE=eventhubs` (default `kafka`): the Event Hubs settings; `kafka` is then
    /// unused, and `INGEST_TOPIC` defaults to the event hub name.
    pub eventhubs: Option<EventHubsConfig>,
    /// `INGEST_STORAGE_URL` (required): where files land.
    pub storage_url: Url,
    /// `AWS_*` / `AZURE_*` variables for the storage client (credentials, endpoint, region).
    pub cloud_env: CloudEnv,
    /// `AZURE_STORAGE_CONNECTION_STRING`, parsed, when the storage URL is Azure.
    pub azure_connection: Option<AzureConnection>,
    /// `INGEST_MULTIPART_THRESHOLD_BYTES`, `INGEST_MULTIPART_PART_BYTES`.
    pub multipart: MultipartPolicy,
    /// `INGEST_ACCEPT_AT_LEAST_ONCE` (default `false`): run on a store that overwrites despite
    /// create-only writes, landing at-least-once; refused otherwise.
    pub accept_at_least_once: bool,
    /// `INGEST_FLUSH_MAX_RECORDS`, `INGEST_FLUSH_MAX_BYTES`, `INGEST_FLUSH_MAX_AGE_MS`.
    pub flush: FlushPolicy,
    /// `INGEST_MAX_BUFFER_BYTES`: cap on buffered record bytes across all partitions.
    pub max_buffer_bytes: usize,
    /// `INGEST_MAX_RECORD_BYTES`: larger values are invalid records.
    pub max_record_bytes: usize,
    /// `INGEST_ENVELOPE`.
    pub envelope: Envelope,
    /// `INGEST_COMPRESSION`, `INGEST_COMPRESSION_LEVEL`: NDJSON data files and dead letters.
    pub compression: Compression,
    /// `INGEST_FORMAT` and the `INGEST_PARQUET_*` settings (`delta`: Parquet).
    pub format: Format,
    /// `INGEST_FORMAT=delta` and the `INGEST_DELTA_*` settings: the files added to a Delta table.
    pub delta: Option<DeltaSettings>,
    /// `INGEST_VALUE_FORMAT` and the `INGEST_SCHEMA_REGISTRY_*` settings: `None` for JSON values.
    pub registry: Option<RegistryConfig>,
    /// `INGEST_INVALID_RECORD_POLICY`.
    pub invalid: InvalidRecordPolicy,
    /// `INGEST_DEAD_LETTER_PREFIX`, relative to the storage root.
    pub dead_letter_prefix: String,
    /// `INGEST_TIME_SOURCE`, with `INGEST_TIME_FIELD` and `INGEST_TIME_FORMAT`.
    pub time_source: TimeSource,
    /// `INGEST_PARTITION_BY` (hour or day directories) or `INGEST_PATH_TEMPLATE`.
    pub layout: Layout,
    /// `INGEST_SHUTDOWN_TIMEOUT_MS`.
    pub shutdown_timeout: Duration,
    /// `INGEST_CLAIM_COMPLETION_TIMEOUT_MS` (default 10 min): how long a partition may wait for
    /// the records that complete an earlier claim before the service stops.
    pub claim_completion_timeout: Duration,
    /// `INGEST_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `INGEST_HTTP_ADDR` (default `0.0.0.0:8080`, `off` disables): `/healthz`, `/readyz`,
    /// `/metrics`.
    pub http_addr: Option<std::net::SocketAddr>,
    /// `INGEST_HEALTH_STALL_MS`: `/healthz` fails when the loop has not turned for this long.
    pub health_stall: Duration,
    /// `INGEST_STORAGE_CHECK_INTERVAL_MS`: how often readiness re-checks storage.
    pub storage_check_interval: Duration,
    pub fault: Fault,
    /// `INGEST_*` variables that are not settings (warned about at start).
    pub unknown_variables: Vec<String>,
}

impl Config {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        RawEnv::from_vars(std::env::vars())?.validate()
    }

    /// Reads and validates the given pairs, e.g. `[("INGEST_TOPIC", "orders"), ...]`.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Config, ConfigError> {
        RawEnv::from_vars(pairs.into_iter().map(|(k, v)| (k.into(), v.into())))?.validate()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("topic", &self.topic)
            .field("kafka", &self.kafka)
            .field("eventhubs", &self.eventhubs)
            .field("storage_url", &redact_url(&self.storage_url))
            .field("cloud_env", &self.cloud_env)
            .field("azure_connection", &self.azure_connection)
            .field("multipart", &self.multipart)
            .field("accept_at_least_once", &self.accept_at_least_once)
            .field("flush", &self.flush)
            .field("max_buffer_bytes", &self.max_buffer_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("envelope", &self.envelope)
            .field("compression", &self.compression)
            .field("format", &self.format)
            .field("registry", &self.registry)
            .field("invalid", &self.invalid)
            .field("dead_letter_prefix", &self.dead_letter_prefix)
            .field("time_source", &self.time_source)
            .field("layout", &self.layout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("claim_completion_timeout", &self.claim_completion_timeout)
            .field("log_format", &self.log_format)
            .field("http_addr", &self.http_addr)
            .field("health_stall", &self.health_stall)
            .field("storage_check_interval", &self.storage_check_interval)
            .field("fault", &self.fault)
            .finish()
    }
}

#[cfg(test)]
mod tests;
