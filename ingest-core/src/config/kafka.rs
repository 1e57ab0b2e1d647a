//! Kafka settings: `INGEST_KAFKA_BOOTSTRAP_SERVERS`, `INGEST_KAFKA_GROUP_ID` and any
//! librdkafka property as `INGEST_KAFKA_<NAME>`, and Kafka's topic name rules.
//!
//! Pure. Invariant: the properties exactly-once landing depends on (manual commits) cannot be
//! set; a secret-looking property's value never appears in `Debug`.

use std::fmt;

use super::parse::{is_secret_name, ConfigError};

/// librdkafka properties the pipeline owns; setting them would break exactly-once landing.
const RESERVED_KAFKA: &[&str] = &["enable.auto.commit", "enable.auto.offset.store"];

/// Kafka's topic name rules.
pub fn validate_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() || topic.len() > super::layout::MAX_TOPIC_BYTES {
        // Kafka allows 249; a file's name is `<topic>+<partition>+<20 digits>.ndjson.gz`, and
        // a name is at most 255 bytes in every store.
        Err("a topic name of 1 to 213 characters (file names are at most 255 bytes)")
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

/// Validates the Kafka settings of `topic`. Bootstrap servers are optional for an Event Hubs
/// source (`eventhubs`), where nothing uses them.
pub(super) fn kafka(
    bootstrap_servers: Option<String>,
    group_id: Option<String>,
    properties: Vec<(String, String)>,
    topic: &str,
    eventhubs: bool,
) -> Result<KafkaConfig, ConfigError> {
    let bootstrap_servers = match (bootstrap_servers, eventhubs) {
        (Some(b), _) => b,
        (None, true) => "unused:9092".to_string(),
        (None, false) => {
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
    for (name, _) in &properties {
        if RESERVED_KAFKA.contains(&name.as_str()) {
            let var = format!("KAFKA_{}", name.to_ascii_uppercase().replace('.', "_"));
            return Err(ConfigError::invalid(
                &var,
                "(set)",
                "it unset: ingest commits offsets itself, only after each file is uploaded",
            ));
        }
    }
    let group_id = group_id.unwrap_or_else(|| format!("ingest-{topic}"));
    Ok(KafkaConfig {
        bootstrap_servers,
        group_id,
        properties: properties
            .into_iter()
            .map(|(name, value)| Property { name, value })
            .collect(),
    })
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

#[cfg(test)]
mod tests;
