//! Reading the schemas records wait for, and what each becomes: a decoder, or the reason its
//! records are invalid.
//!
//! Invariant: an unavailable registry is retried with backoff while anything waits (the reason
//! on `/readyz`), never taken for an answer; a refusal is returned to stop the service; an id
//! the registry does not know makes its records invalid, naming it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::client::{FetchError, Fetched};
use super::{avro, protobuf, Entry, Kept, Refused, Registry, SchemaKey, MAX_SCHEMAS};
use crate::config::ValueFormat;
use crate::ops::health::Health;

const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Registry {
    /// Whether a schema is wanted and not read yet.
    pub fn wants(&self) -> bool {
        !self
            .wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Reads every wanted schema, waiting out an unavailable registry with backoff (the reason
    /// on `/readyz`), until all are read or `cancel` fires. A refusal is returned.
    pub async fn fetch_wanted(
        &self,
        health: &Health,
        cancel: &CancellationToken,
    ) -> Result<(), Refused> {
        let _reading = tokio::select! {
            reading = self.reading.lock() => reading,
            _ = cancel.cancelled() => return Ok(()),
        };
        let mut backoff = BACKOFF_START;
        loop {
            let next = {
                let wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
                wanted.iter().next().cloned()
            };
            let Some(key) = next else {
                health.update(|f| f.registry_error = None);
                return Ok(());
            };
            let fetched = match &key {
                SchemaKey::Confluent(id) => {
                    let serialized = self.format == ValueFormat::Protobuf
                        || self.key_format == Some(ValueFormat::Protobuf);
                    self.client.schema(*id, serialized).await
                }
                SchemaKey::Azure(id) => self.client.azure_schema(id).await,
            };
            let entry = match fetched {
                Ok(fetched) => Some(self.parse(&key, fetched)),
                Err(FetchError::Unknown(why)) => {
                    tracing::warn!(schema = %key, %why, "the schema registry does not know this schema: its records are invalid records");
                    Some(Entry::Invalid(format!(
                        "unknown to the schema registry ({why})"
                    )))
                }
                Err(FetchError::Refused(why)) => {
                    metrics::counter!("ingest_schema_registry_errors_total").increment(1);
                    return Err(Refused(why));
                }
                Err(FetchError::Unavailable(why)) => {
                    metrics::counter!("ingest_schema_registry_errors_total").increment(1);
                    tracing::warn!(schema = %key, error = %why, retry_in_ms = backoff.as_millis() as u64,
                        "schema registry unavailable: the partitions that need this schema wait, and nothing is skipped");
                    health.update(|f| f.registry_error = Some(why.clone()));
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    None
                }
            };
            if let Some(entry) = entry {
                metrics::counter!("ingest_schema_registry_reads_total").increment(1);
                self.keep(key, entry);
                backoff = BACKOFF_START;
            }
        }
    }

    /// What records with schema `key` decode with.
    fn parse(&self, key: &SchemaKey, fetched: Fetched) -> Entry {
        // Parsed as its kind says (a kind neither values nor keys take makes invalid records
        // naming both settings); whether it is the kind its use expects is checked as it is
        // used ([`Registry::decode`], [`Registry::decode_key`]).
        let kind = match fetched.kind.to_ascii_uppercase().as_str() {
            "AVRO" => ValueFormat::Avro,
            "JSON" => ValueFormat::JsonSchema,
            "PROTOBUF" => ValueFormat::Protobuf,
            other => {
                return Entry::Invalid(format!("a schema of kind {other}, which is not decoded"))
            }
        };
        if kind != self.format && Some(kind) != self.key_format {
            let keys = match self.key_format {
                Some(k) => format!(" and INGEST_KEY_FORMAT {}", super::kind_name(k)),
                None => String::new(),
            };
            return Entry::Invalid(format!(
                "a {} schema, but INGEST_VALUE_FORMAT expects {}{keys}",
                fetched.kind,
                super::kind_name(self.format)
            ));
        }
        match kind {
            ValueFormat::JsonSchema | ValueFormat::Json => Entry::Json,
            ValueFormat::Protobuf => {
                match protobuf::Schema::parse(&fetched.text, &fetched.references) {
                    Ok(schema) => {
                        tracing::info!(schema = %key, "read a Protobuf schema from the registry");
                        Entry::Protobuf(schema)
                    }
                    Err(why) => Entry::Invalid(format!("the Protobuf schema does not load: {why}")),
                }
            }
            _ => match avro::Schema::parse(&fetched.text, &fetched.references) {
                Ok(schema) => {
                    tracing::info!(schema = %key, "read an Avro schema from the registry");
                    Entry::Avro(schema)
                }
                Err(why) => Entry::Invalid(format!("the Avro schema does not parse: {why}")),
            },
        }
    }

    fn keep(&self, key: SchemaKey, entry: Entry) {
        let mut schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        if schemas.len() >= MAX_SCHEMAS {
            if let Some(evicted) = schemas.keys().next().cloned() {
                schemas.remove(&evicted);
            }
        }
        self.wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let declared = AtomicBool::new(false);
        schemas.insert(key, Arc::new(Kept { entry, declared }));
    }
}
