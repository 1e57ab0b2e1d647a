//! Reading the environment: every `INGEST_*` variable as a string ([`RawEnv::from_vars`]), then
//! [`RawEnv::validate`], which hands each concern's variables to its file and assembles the
//! [`Config`].
//!
//! Pure but for the caller's `std::env::vars()`. Invariant: validation never builds clients or
//! touches the network, and checks settings in a fixed order, so the first problem reported is
//! always the same one.

use std::time::Duration;

use serde::Deserialize;

use super::cloud::CloudEnv;
use super::encoding::{self, Envelope, InvalidRecordPolicy};
use super::eventhubs::RawEventHubs;
use super::ops::{self, Fault, LogFormat};
use super::parse::{choice, optional, positive, ConfigError};
use super::storage::{self, is_azure, parse_storage_url, STATE_PREFIX};
use super::{defaults, flush, kafka, Config};

/// The variables as strings, exactly as found in the environment (prefix `INGEST_` removed).
#[derive(Default, Deserialize)]
pub struct RawEnv {
    pub source: Option<String>,
    pub topic: Option<String>,
    pub kafka_bootstrap_servers: Option<String>,
    pub kafka_group_id: Option<String>,
    pub storage_url: Option<String>,
    pub flush_max_records: Option<String>,
    pub flush_max_bytes: Option<String>,
    pub flush_max_age_ms: Option<String>,
    pub max_buffer_bytes: Option<String>,
    pub max_record_bytes: Option<String>,
    pub envelope: Option<String>,
    pub compression: Option<String>,
    pub compression_level: Option<String>,
    pub format: Option<String>,
    pub parquet_compression: Option<String>,
    pub parquet_compression_level: Option<String>,
    pub parquet_row_group_bytes: Option<String>,
    pub parquet_max_columns: Option<String>,
    pub parquet_max_fields: Option<String>,
    pub delta_commit_interval_ms: Option<String>,
    pub delta_checkpoint_interval: Option<String>,
    pub invalid_record_policy: Option<String>,
    pub dead_letter_prefix: Option<String>,
    pub time_source: Option<String>,
    pub time_field: Option<String>,
    pub time_format: Option<String>,
    pub partition_by: Option<String>,
    pub path_template: Option<String>,
    pub shutdown_timeout_ms: Option<String>,
    pub log_format: Option<String>,
    pub http_addr: Option<String>,
    pub health_stall_ms: Option<String>,
    pub storage_check_interval_ms: Option<String>,
    pub multipart_threshold_bytes: Option<String>,
    pub multipart_part_bytes: Option<String>,
    pub fault_hang_after_uploads: Option<String>,
    pub fault_fail_multipart_after_parts: Option<String>,
    pub fault_conflict_creates: Option<String>,
    pub accept_at_least_once: Option<String>,
    pub claim_completion_timeout_ms: Option<String>,
    pub value_format: Option<String>,
    pub key_format: Option<String>,
    pub schema_registry_url: Option<String>,
    pub schema_registry_username: Option<String>,
    pub schema_registry_password: Option<String>,
    pub schema_registry_bearer_token: Option<String>,
    /// `AWS_*`, `AZURE_*` and `IDENTITY_ENDPOINT`: handed to the storage client as they are.
    #[serde(skip)]
    pub cloud: CloudEnv,
    /// `INGEST_KAFKA_*` variables other than the ones above: librdkafka properties.
    #[serde(skip)]
    pub kafka_properties: Vec<(String, String)>,
    /// `INGEST_EVENTHUBS_*` settings, read when `INGEST_SOURCE=eventhubs`.
    #[serde(skip)]
    pub eventhubs: RawEventHubs,
    /// `INGEST_*` variables nobody reads (probably typos); logged as warnings at start.
    #[serde(skip)]
    pub unknown: Vec<String>,
}

pub(super) const TYPED: &[&str] = &[
    "SOURCE",
    "TOPIC",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_GROUP_ID",
    "STORAGE_URL",
    "FLUSH_MAX_RECORDS",
    "FLUSH_MAX_BYTES",
    "FLUSH_MAX_AGE_MS",
    "MAX_BUFFER_BYTES",
    "MAX_RECORD_BYTES",
    "ENVELOPE",
    "COMPRESSION",
    "COMPRESSION_LEVEL",
    "FORMAT",
    "PARQUET_COMPRESSION",
    "PARQUET_COMPRESSION_LEVEL",
    "PARQUET_ROW_GROUP_BYTES",
    "PARQUET_MAX_COLUMNS",
    "PARQUET_MAX_FIELDS",
    "DELTA_COMMIT_INTERVAL_MS",
    "DELTA_CHECKPOINT_INTERVAL",
    "INVALID_RECORD_POLICY",
    "DEAD_LETTER_PREFIX",
    "TIME_SOURCE",
    "TIME_FIELD",
    "TIME_FORMAT",
    "PARTITION_BY",
    "PATH_TEMPLATE",
    "SHUTDOWN_TIMEOUT_MS",
    "LOG_FORMAT",
    "HTTP_ADDR",
    "HEALTH_STALL_MS",
    "STORAGE_CHECK_INTERVAL_MS",
    "MULTIPART_THRESHOLD_BYTES",
    "MULTIPART_PART_BYTES",
    "FAULT_HANG_AFTER_UPLOADS",
    "FAULT_FAIL_MULTIPART_AFTER_PARTS",
    "FAULT_CONFLICT_CREATES",
    "ACCEPT_AT_LEAST_ONCE",
    "CLAIM_COMPLETION_TIMEOUT_MS",
    "VALUE_FORMAT",
    "KEY_FORMAT",
    "SCHEMA_REGISTRY_URL",
    "SCHEMA_REGISTRY_USERNAME",
    "SCHEMA_REGISTRY_PASSWORD",
    "SCHEMA_REGISTRY_BEARER_TOKEN",
];

impl RawEnv {
    /// Reads `INGEST_*` from `vars` (usually `std::env::vars()`).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut cloud = CloudEnv::default();
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter_map(|(k, v)| {
                if k.starts_with("INGEST_") {
                    Some((k, v))
                } else {
                    if CloudEnv::wants(&k) {
                        cloud.push(k, v);
                    }
                    None
                }
            })
            .collect();
        let mut raw: RawEnv = envy::prefixed("INGEST_")
            .from_iter(vars.clone())
            .map_err(|e| ConfigError {
                variable: "INGEST_*".into(),
                shown: String::new(),
                problem: "could not be read",
                expected: e.to_string(),
            })?;
        for (key, value) in vars {
            let name = &key["INGEST_".len()..];
            if TYPED.contains(&name) {
                continue;
            }
            if let Some(setting) = name.strip_prefix("EVENTHUBS_") {
                if !raw.eventhubs.accept(setting, value) {
                    raw.unknown.push(key);
                }
                continue;
            }
            match name.strip_prefix("KAFKA_") {
                Some(prop) if !prop.is_empty() => raw
                    .kafka_properties
                    .push((prop.to_ascii_lowercase().replace('_', "."), value)),
                _ => raw.unknown.push(key),
            }
        }
        raw.kafka_properties.sort();
        raw.unknown.sort();
        raw.cloud = cloud;
        Ok(raw)
    }

    /// Validates into a [`Config`]. Pure: no I/O.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let eventhubs_source = match self.source.as_deref().unwrap_or("kafka") {
            "kafka" => false,
            "eventhubs" => true,
            other => {
                return Err(ConfigError::invalid(
                    "SOURCE",
                    other,
                    "one of kafka, eventhubs",
                ))
            }
        };
        // Event Hubs: checked first, since the event hub names the topic by default.
        // The storage URL is parsed here for Event Hubs (its default checkpoint location), after
        // the topic otherwise, so a bare Kafka environment is told about INGEST_TOPIC first.
        let mut raw_storage_url = self.storage_url;
        let (eventhubs, parsed_storage_url) = if eventhubs_source {
            let url = parse_storage_url(raw_storage_url.take())?;
            (Some(self.eventhubs.validate(&url)?), Some(url))
        } else {
            (None, None)
        };
        let topic = match (self.topic, &eventhubs) {
            (Some(t), _) => t,
            (None, Some(eh)) => eh.event_hub.clone(),
            (None, None) => {
                return Err(ConfigError::missing(
                    "TOPIC",
                    "the Kafka topic to land, e.g. orders",
                ))
            }
        };
        kafka::validate_topic(&topic).map_err(|why| ConfigError::invalid("TOPIC", &topic, why))?;
        if topic == STATE_PREFIX {
            return Err(ConfigError::invalid(
                "TOPIC",
                &topic,
                format!("a topic other than {STATE_PREFIX}, where the service keeps its claims and staging files (for Event Hubs, set INGEST_TOPIC to name the files otherwise)"),
            ));
        }
        let kafka = kafka::kafka(
            self.kafka_bootstrap_servers,
            self.kafka_group_id,
            self.kafka_properties,
            &topic,
            eventhubs.is_some(),
        )?;
        let storage_url = match parsed_storage_url {
            Some(url) => url,
            None => parse_storage_url(raw_storage_url)?,
        };
        let any_azure = is_azure(&storage_url)
            || eventhubs
                .as_ref()
                .is_some_and(|e| is_azure(&e.checkpoint_url));
        let azure_connection = storage::azure_connection(&self.cloud, any_azure)?;
        let multipart =
            storage::multipart(self.multipart_part_bytes, self.multipart_threshold_bytes)?;
        let accept_at_least_once = choice(
            "ACCEPT_AT_LEAST_ONCE",
            self.accept_at_least_once,
            &[("false", false), ("true", true)],
            false,
        )?;
        let (flush, max_buffer_bytes) = flush::limits(
            self.flush_max_records,
            self.flush_max_bytes,
            self.flush_max_age_ms,
            self.max_buffer_bytes,
        )?;
        let max_record_bytes = positive(
            "MAX_RECORD_BYTES",
            self.max_record_bytes,
            defaults::MAX_RECORD_BYTES,
        )?;
        let envelope = choice(
            "ENVELOPE",
            self.envelope,
            &[("raw", Envelope::Raw), ("metadata", Envelope::Metadata)],
            Envelope::Raw,
        )?;
        let compression = encoding::compression(self.compression, self.compression_level)?;
        let delta = super::format::delta(
            self.format.as_deref(),
            self.delta_commit_interval_ms,
            self.delta_checkpoint_interval,
        )?;
        if delta.is_some() && accept_at_least_once {
            return Err(ConfigError::invalid(
                "ACCEPT_AT_LEAST_ONCE",
                "true",
                "false (unset) with INGEST_FORMAT=delta: a Delta log needs a store that refuses to overwrite, or two commits of one version replace each other and lose files; land Parquet on this store, or use one with conditional writes",
            ));
        }
        let format = super::format::format(
            self.format,
            self.parquet_compression,
            self.parquet_compression_level,
            self.parquet_row_group_bytes,
            (self.parquet_max_columns, self.parquet_max_fields),
        )?;
        let invalid = choice(
            "INVALID_RECORD_POLICY",
            self.invalid_record_policy,
            &[
                ("fail", InvalidRecordPolicy::Fail),
                ("skip", InvalidRecordPolicy::Skip),
                ("dead-letter", InvalidRecordPolicy::DeadLetter),
            ],
            InvalidRecordPolicy::DeadLetter,
        )?;
        let registry = super::registry::registry(super::registry::RawRegistry {
            format: self.value_format,
            key_format: self.key_format,
            url: self.schema_registry_url,
            username: self.schema_registry_username,
            password: self.schema_registry_password,
            bearer_token: self.schema_registry_bearer_token,
        })?;
        if eventhubs.is_some() && registry.as_ref().is_some_and(|r| r.key_format.is_some()) {
            return Err(ConfigError::invalid(
                "KEY_FORMAT",
                "",
                "bytes (unset) with INGEST_SOURCE=eventhubs: an event's key is its partition key, a string no serializer wrote",
            ));
        }
        let dead_letter_prefix = encoding::dead_letter_prefix(self.dead_letter_prefix, &topic)?;
        let time_source =
            super::time::time_source(self.time_source, self.time_field, self.time_format)?;
        let layout = super::layout::layout(self.partition_by, self.path_template)?;
        let shutdown_timeout = Duration::from_millis(positive(
            "SHUTDOWN_TIMEOUT_MS",
            self.shutdown_timeout_ms,
            defaults::SHUTDOWN_TIMEOUT_MS,
        )?);
        let claim_completion_timeout = Duration::from_millis(positive(
            "CLAIM_COMPLETION_TIMEOUT_MS",
            self.claim_completion_timeout_ms,
            defaults::CLAIM_COMPLETION_TIMEOUT_MS,
        )?);
        let log_format = choice(
            "LOG_FORMAT",
            self.log_format,
            &[
                ("auto", LogFormat::Auto),
                ("json", LogFormat::Json),
                ("text", LogFormat::Text),
            ],
            LogFormat::Auto,
        )?;
        let http_addr = ops::http_addr(self.http_addr.as_deref())?;
        let health_stall = Duration::from_millis(positive(
            "HEALTH_STALL_MS",
            self.health_stall_ms,
            defaults::HEALTH_STALL_MS,
        )?);
        let storage_check_interval = Duration::from_millis(positive(
            "STORAGE_CHECK_INTERVAL_MS",
            self.storage_check_interval_ms,
            defaults::STORAGE_CHECK_INTERVAL_MS,
        )?);
        let hang_after_uploads =
            optional("FAULT_HANG_AFTER_UPLOADS", self.fault_hang_after_uploads)?;
        let fail_multipart_after_parts = optional(
            "FAULT_FAIL_MULTIPART_AFTER_PARTS",
            self.fault_fail_multipart_after_parts,
        )?;
        Ok(Config {
            topic,
            kafka,
            eventhubs,
            storage_url,
            cloud_env: self.cloud,
            azure_connection,
            multipart,
            accept_at_least_once,
            flush,
            max_buffer_bytes,
            max_record_bytes,
            envelope,
            compression,
            format,
            delta,
            registry,
            invalid,
            dead_letter_prefix,
            time_source,
            layout,
            shutdown_timeout,
            claim_completion_timeout,
            log_format,
            http_addr,
            health_stall,
            storage_check_interval,
            fault: Fault {
                hang_after_uploads,
                fail_multipart_after_parts,
                conflict_creates: ops::conflict_creates(self.fault_conflict_creates)?,
            },
            unknown_variables: self.unknown,
        })
    }
}
