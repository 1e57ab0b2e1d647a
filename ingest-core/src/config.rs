//! Configuration: every `INGEST_*` environment variable, read in one place and validated into a
//! typed [`Config`].
//!
//! Reading (`envy`, flat struct of strings) is separate from [`RawEnv::validate`], which is pure:
//! it never builds clients or touches the network. Invariant: a bad variable is reported in one
//! line naming the variable, the value (unless secret) and what is expected; secrets never
//! appear in `Debug` output.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::batch::FlushPolicy;

pub mod cloud;
pub mod eventhubs;
use cloud::{parse_azure_connection_string, AzureConnection, CloudEnv};
use eventhubs::{EventHubsConfig, RawEventHubs};

/// Defaults, documented in the README next to each variable.
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
    /// S3's smallest part (all but the last).
    pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
}

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
    pub invalid_record_policy: Option<String>,
    pub dead_letter_prefix: Option<String>,
    pub time_source: Option<String>,
    pub shutdown_timeout_ms: Option<String>,
    pub log_format: Option<String>,
    pub http_addr: Option<String>,
    pub health_stall_ms: Option<String>,
    pub storage_check_interval_ms: Option<String>,
    pub multipart_threshold_bytes: Option<String>,
    pub multipart_part_bytes: Option<String>,
    pub fault_hang_after_uploads: Option<String>,
    pub fault_fail_multipart_after_parts: Option<String>,
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

const TYPED: &[&str] = &[
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
    "INVALID_RECORD_POLICY",
    "DEAD_LETTER_PREFIX",
    "TIME_SOURCE",
    "SHUTDOWN_TIMEOUT_MS",
    "LOG_FORMAT",
    "HTTP_ADDR",
    "HEALTH_STALL_MS",
    "STORAGE_CHECK_INTERVAL_MS",
    "MULTIPART_THRESHOLD_BYTES",
    "MULTIPART_PART_BYTES",
    "FAULT_HANG_AFTER_UPLOADS",
    "FAULT_FAIL_MULTIPART_AFTER_PARTS",
];

/// librdkafka properties the pipeline owns; setting them would break exactly-once landing.
const RESERVED_KAFKA: &[&str] = &["enable.auto.commit", "enable.auto.offset.store"];

/// A configuration problem, displayed as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}{shown} {problem}: expected {expected}")]
pub struct ConfigError {
    pub variable: String,
    shown: String,
    problem: &'static str,
    pub expected: String,
}

impl ConfigError {
    fn missing(variable: &str, expected: impl Into<String>) -> Self {
        ConfigError {
            variable: format!("INGEST_{variable}"),
            shown: String::new(),
            problem: "is not set",
            expected: expected.into(),
        }
    }

    fn invalid(variable: &str, value: &str, expected: impl Into<String>) -> Self {
        let variable = format!("INGEST_{variable}");
        let shown = if is_secret_name(&variable) {
            "=***".to_string()
        } else {
            format!("={value:?}")
        };
        ConfigError {
            variable,
            shown,
            problem: "is invalid",
            expected: expected.into(),
        }
    }
}

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
        validate_topic(&topic).map_err(|why| ConfigError::invalid("TOPIC", &topic, why))?;
        let bootstrap_servers = match (self.kafka_bootstrap_servers, &eventhubs) {
            (Some(b), _) => b,
            (None, Some(_)) => "unused:9092".to_string(),
            (None, None) => {
                return Err(ConfigError::missing(
                    "KAFKA_BOOTSTRAP_SERVERS",
                    "host:port[,host:port...], e.g. localhost:9092",
                ))
            }
        };
        if bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::invalid(
                "KAFKA_BOOTSTRAP_SERVERS",
                &bootstrap_servers,
                "host:port[,host:port...]",
            ));
        }
        for (name, _) in &self.kafka_properties {
            if RESERVED_KAFKA.contains(&name.as_str()) {
                let var = format!("KAFKA_{}", name.to_ascii_uppercase().replace('.', "_"));
                return Err(ConfigError::invalid(
                    &var,
                    "(set)",
                    "it unset: ingest commits offsets itself, only after each file is uploaded",
                ));
            }
        }
        let group_id = self
            .kafka_group_id
            .unwrap_or_else(|| format!("ingest-{topic}"));
        let storage_url = match parsed_storage_url {
            Some(url) => url,
            None => parse_storage_url(raw_storage_url)?,
        };
        let any_azure = is_azure(&storage_url)
            || eventhubs
                .as_ref()
                .is_some_and(|e| is_azure(&e.checkpoint_url));
        let azure_connection = match self.cloud.get("AZURE_STORAGE_CONNECTION_STRING") {
            Some(s) if any_azure => {
                Some(parse_azure_connection_string(s).map_err(|why| ConfigError {
                    variable: "AZURE_STORAGE_CONNECTION_STRING".into(),
                    shown: "=***".into(),
                    problem: "is invalid",
                    expected: format!("an Azure Storage connection string ({why}); copy it from the portal's Access keys page"),
                })?)
            }
            _ => None,
        };
        let multipart = MultipartPolicy {
            part_bytes: positive(
                "MULTIPART_PART_BYTES",
                self.multipart_part_bytes,
                defaults::MULTIPART_PART_BYTES,
            )?,
            threshold_bytes: positive(
                "MULTIPART_THRESHOLD_BYTES",
                self.multipart_threshold_bytes,
                defaults::MULTIPART_THRESHOLD_BYTES,
            )?,
        };
        if multipart.part_bytes < defaults::MIN_PART_BYTES {
            return Err(ConfigError::invalid(
                "MULTIPART_PART_BYTES",
                &multipart.part_bytes.to_string(),
                format!(
                    "at least {} (5 MiB, S3's smallest part)",
                    defaults::MIN_PART_BYTES
                ),
            ));
        }
        if multipart.threshold_bytes < multipart.part_bytes {
            return Err(ConfigError::invalid(
                "MULTIPART_THRESHOLD_BYTES",
                &multipart.threshold_bytes.to_string(),
                format!(
                    "at least INGEST_MULTIPART_PART_BYTES ({})",
                    multipart.part_bytes
                ),
            ));
        }

        let flush = FlushPolicy {
            max_records: positive(
                "FLUSH_MAX_RECORDS",
                self.flush_max_records,
                defaults::FLUSH_MAX_RECORDS,
            )?,
            max_bytes: positive(
                "FLUSH_MAX_BYTES",
                self.flush_max_bytes,
                defaults::FLUSH_MAX_BYTES,
            )?,
            max_age: Duration::from_millis(positive(
                "FLUSH_MAX_AGE_MS",
                self.flush_max_age_ms,
                defaults::FLUSH_MAX_AGE_MS,
            )?),
        };
        let max_buffer_bytes = positive(
            "MAX_BUFFER_BYTES",
            self.max_buffer_bytes.clone(),
            defaults::MAX_BUFFER_BYTES,
        )?;
        if flush.max_bytes > max_buffer_bytes {
            return Err(ConfigError::invalid(
                "FLUSH_MAX_BYTES",
                &flush.max_bytes.to_string(),
                format!("at most INGEST_MAX_BUFFER_BYTES ({max_buffer_bytes}): a batch must fit in the buffer cap"),
            ));
        }
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
        let compression = match self.compression.as_deref().unwrap_or("gzip") {
            "none" => Compression::None,
            "gzip" => {
                let level: u32 = positive(
                    "COMPRESSION_LEVEL",
                    self.compression_level.clone(),
                    defaults::COMPRESSION_LEVEL,
                )?;
                if level > 9 {
                    return Err(ConfigError::invalid(
                        "COMPRESSION_LEVEL",
                        &level.to_string(),
                        "a gzip level from 1 (fastest) to 9 (smallest)",
                    ));
                }
                Compression::Gzip { level }
            }
            other => {
                return Err(ConfigError::invalid(
                    "COMPRESSION",
                    other,
                    "one of gzip, none",
                ))
            }
        };
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
        let dead_letter_prefix = self
            .dead_letter_prefix
            .unwrap_or_else(|| defaults::DEAD_LETTER_PREFIX.into());
        let trimmed = dead_letter_prefix.trim_matches('/');
        if trimmed.is_empty()
            || trimmed == topic
            || trimmed
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(ConfigError::invalid(
                "DEAD_LETTER_PREFIX",
                &dead_letter_prefix,
                "a relative path outside the data path, e.g. _dead_letters",
            ));
        }
        let time_source = choice(
            "TIME_SOURCE",
            self.time_source,
            &[
                ("record", TimeSource::Record),
                ("ingestion", TimeSource::Ingestion),
            ],
            TimeSource::Record,
        )?;
        let shutdown_timeout = Duration::from_millis(positive(
            "SHUTDOWN_TIMEOUT_MS",
            self.shutdown_timeout_ms,
            defaults::SHUTDOWN_TIMEOUT_MS,
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
        let http_addr = match self.http_addr.as_deref().map(str::trim) {
            Some("off") | Some("") => None,
            other => {
                let v = other.unwrap_or(defaults::HTTP_ADDR);
                Some(v.parse::<std::net::SocketAddr>().map_err(|_| {
                    ConfigError::invalid(
                        "HTTP_ADDR",
                        v,
                        "ip:port for /healthz, /readyz and /metrics (e.g. 0.0.0.0:8080), or off",
                    )
                })?)
            }
        };
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
            kafka: KafkaConfig {
                bootstrap_servers,
                group_id,
                properties: self
                    .kafka_properties
                    .into_iter()
                    .map(|(name, value)| Property { name, value })
                    .collect(),
            },
            eventhubs,
            storage_url,
            cloud_env: self.cloud,
            azure_connection,
            multipart,
            flush,
            max_buffer_bytes,
            max_record_bytes,
            envelope,
            compression,
            invalid,
            dead_letter_prefix: trimmed.to_string(),
            time_source,
            shutdown_timeout,
            log_format,
            http_addr,
            health_stall,
            storage_check_interval,
            fault: Fault {
                hang_after_uploads,
                fail_multipart_after_parts,
            },
            unknown_variables: self.unknown,
        })
    }
}

fn positive<T: std::str::FromStr + Default + PartialEq>(
    var: &str,
    value: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => match v.trim().replace('_', "").parse::<T>() {
            Ok(n) if n != T::default() => Ok(n),
            _ => Err(ConfigError::invalid(var, &v, "a positive whole number")),
        },
    }
}

/// A positive whole number that has no default (unset means off).
fn optional<T: std::str::FromStr + Default + PartialEq>(
    var: &str,
    value: Option<String>,
) -> Result<Option<T>, ConfigError> {
    value
        .map(|v| positive(var, Some(v), T::default()))
        .transpose()
}

fn choice<T: Copy>(
    var: &str,
    value: Option<String>,
    options: &[(&str, T)],
    default: T,
) -> Result<T, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v.trim()))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            ConfigError::invalid(var, &v, format!("one of {}", names.join(", ")))
        })
}

/// Kafka's topic name rules.
pub fn validate_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() || topic.len() > 249 {
        Err("a topic name of 1 to 249 characters")
    } else if topic == "." || topic == ".." {
        Err("a topic name other than '.' or '..'")
    } else if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        Err("a topic name made of ASCII letters, digits, '.', '_' and '-'")
    } else {
        Ok(())
    }
}

fn parse_storage_url(value: Option<String>) -> Result<Url, ConfigError> {
    const EXPECTED: &str = "file:///absolute/path, s3://bucket/prefix or az://container/prefix";
    let v = value.ok_or_else(|| ConfigError::missing("STORAGE_URL", EXPECTED))?;
    let url = if v.starts_with('/') {
        Url::from_directory_path(&v)
            .map_err(|_| ConfigError::invalid("STORAGE_URL", &v, EXPECTED))?
    } else {
        Url::parse(&v).map_err(|_| ConfigError::invalid("STORAGE_URL", &v, EXPECTED))?
    };
    match url.scheme() {
        "file" if url.host_str().is_none_or(str::is_empty) => Ok(url),
        "s3" | "s3a" | "az" | "azure" | "abfs" | "abfss"
            if url.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(url)
        }
        _ => Err(ConfigError::invalid(
            "STORAGE_URL",
            &redact_url(&url),
            EXPECTED,
        )),
    }
}

/// Whether the storage URL is an Azure Blob URL.
pub fn is_azure(url: &Url) -> bool {
    matches!(url.scheme(), "az" | "azure" | "abfs" | "abfss")
}

/// A URL without credentials or query string (SAS tokens live there).
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.set_query(None);
    shown.to_string()
}

fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "key.pem",
        "token",
        "sasl.oauthbearer.config",
        "connection",
    ]
    .iter()
    .any(|s| n.contains(s) || n.contains(&s.replace('.', "_")))
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
    /// `INGEST_FLUSH_MAX_RECORDS`, `INGEST_FLUSH_MAX_BYTES`, `INGEST_FLUSH_MAX_AGE_MS`.
    pub flush: FlushPolicy,
    /// `INGEST_MAX_BUFFER_BYTES`: cap on buffered record bytes across all partitions.
    pub max_buffer_bytes: usize,
    /// `INGEST_MAX_RECORD_BYTES`: larger values are invalid records.
    pub max_record_bytes: usize,
    /// `INGEST_ENVELOPE`.
    pub envelope: Envelope,
    /// `INGEST_COMPRESSION`, `INGEST_COMPRESSION_LEVEL`.
    pub compression: Compression,
    /// `INGEST_INVALID_RECORD_POLICY`.
    pub invalid: InvalidRecordPolicy,
    /// `INGEST_DEAD_LETTER_PREFIX`, relative to the storage root.
    pub dead_letter_prefix: String,
    /// `INGEST_TIME_SOURCE`.
    pub time_source: TimeSource,
    /// `INGEST_SHUTDOWN_TIMEOUT_MS`.
    pub shutdown_timeout: Duration,
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
            .field("flush", &self.flush)
            .field("max_buffer_bytes", &self.max_buffer_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("envelope", &self.envelope)
            .field("compression", &self.compression)
            .field("invalid", &self.invalid)
            .field("dead_letter_prefix", &self.dead_letter_prefix)
            .field("time_source", &self.time_source)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("log_format", &self.log_format)
            .field("http_addr", &self.http_addr)
            .field("health_stall", &self.health_stall)
            .field("storage_check_interval", &self.storage_check_interval)
            .field("fault", &self.fault)
            .finish()
    }
}

/// Kafka connection: `INGEST_KAFKA_BOOTSTRAP_SERVERS`, `INGEST_KAFKA_GROUP_ID` (default
/// `ingest-<topic>`) and any librdkafka property as `INGEST_KAFKA_<NAME>` (dots as underscores).
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub properties: Vec<Property>,
}

/// A librdkafka property; its value is hidden in `Debug` when the name suggests a secret.
#[derive(Clone)]
pub struct Property {
    pub name: String,
    pub value: String,
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if is_secret_name(&self.name) {
            "***"
        } else {
            &self.value
        };
        write!(f, "{}={value}", self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// Each line is the record value.
    Raw,
    /// Each line is `{topic, partition, offset, timestamp, key, headers, value}`.
    Metadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip { level: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRecordPolicy {
    /// Stop the service; nothing past the last landed file is committed.
    Fail,
    /// Drop the record, log and count it.
    Skip,
    /// Write it (base64) with its error and coordinates under the dead-letter prefix.
    DeadLetter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The first record's Kafka timestamp picks `dt=`/`hour=`.
    Record,
    /// The time the first record arrived picks them.
    Ingestion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr (where logs go) is not a terminal, text otherwise.
    Auto,
    Json,
    Text,
}

impl LogFormat {
    pub fn is_json(self) -> bool {
        match self {
            LogFormat::Auto => !std::io::stderr().is_terminal(),
            LogFormat::Json => true,
            LogFormat::Text => false,
        }
    }
}

/// Files above `threshold_bytes` are uploaded in parts of `part_bytes` (S3 multipart, Azure
/// blocks) to a staging name, then published create-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartPolicy {
    pub threshold_bytes: usize,
    pub part_bytes: usize,
}

/// Fault injection for crash tests. `INGEST_FAULT_HANG_AFTER_UPLOADS=N`: after the N-th data
/// file is uploaded, print `FAULT: hanging before commit` to stderr and hang without committing.
/// `INGEST_FAULT_FAIL_MULTIPART_AFTER_PARTS=N`: every multipart upload fails after N parts
/// (the upload is then aborted and the flush retried).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fault {
    pub hang_after_uploads: Option<u64>,
    pub fail_multipart_after_parts: Option<usize>,
}

#[cfg(test)]
mod tests;
