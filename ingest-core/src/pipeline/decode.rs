//! Values (and keys) in a schema registry's wire format, decoded to JSON as they are taken
//! ([`crate::registry`]), so that every later stage (batches, claims and their digests, event
//! time, path templates, NDJSON, Parquet) reads JSON as it does for plain JSON topics.
//!
//! Invariant: a record is buffered decoded, or flawed (`Flaw::Undecodable`, an invalid record),
//! or not at all: one whose schema is not read yet makes its partition start again from the
//! store ([`Loop::start_again`]), and that start reads the schema first, waiting out a registry
//! that is down. Nothing is skipped, and no record is decoded twice differently: a schema id
//! names one schema for ever.

use std::sync::Arc;

use super::intake::Burst;
use super::Loop;
use crate::batch::{Flaw, RecordRef};
use crate::config::{Config, RegistryAuth};
use crate::error::Error;
use crate::registry::{Decoded, Registry};

/// The registry values are decoded through, if `INGEST_VALUE_FORMAT` names one. With the Event
/// Hubs source and no bearer token, Azure Schema Registry is read with the source's Entra
/// credential (built here, used only when an event names an Azure schema).
pub(super) fn registry(config: &Config) -> Result<Option<Arc<Registry>>, Error> {
    let Some(settings) = &config.registry else {
        return Ok(None);
    };
    let entra = match (&config.eventhubs, &settings.auth) {
        (Some(_), RegistryAuth::None) => {
            crate::source::eventhubs::identity::credential(&config.cloud_env).ok()
        }
        _ => None,
    };
    let typed = matches!(config.format, crate::config::Format::Parquet(_));
    let registry =
        Registry::new(settings, config.max_record_bytes, entra, typed).map_err(Error::Internal)?;
    Ok(Some(Arc::new(registry)))
}

impl Loop {
    /// Decodes `record`'s value and key (as `INGEST_VALUE_FORMAT` and `INGEST_KEY_FORMAT` say)
    /// and buffers it (see the module's invariant).
    pub(super) fn decoded(
        &mut self,
        registry: &Registry,
        partition: i32,
        record: &RecordRef<'_>,
        content_type: Option<&str>,
        burst: &mut Burst,
    ) -> bool {
        // A record the source already could not hand over is buffered as it is.
        let value = record.value.filter(|_| registry.decodes_values());
        let key = record.key.filter(|_| registry.decodes_keys());
        if record.flaw.is_some() || (value.is_none() && key.is_none()) {
            return self.buffer(partition, record, burst);
        }
        // A partition deciding its start drops what it is sent: nothing to decode.
        if !self.takes_records(partition) {
            return false;
        }
        let mut json = std::mem::take(&mut self.decoded_value);
        let mut key_json = std::mem::take(&mut self.decoded_key);
        let mut outcome = match value {
            Some(v) => registry.decode(v, content_type, &mut json),
            None => Decoded::Json,
        };
        if let (Decoded::Json, Some(k)) = (&outcome, key) {
            outcome = registry.decode_key(k, &mut key_json);
        }
        let rescan = match outcome {
            Decoded::Json => {
                let decoded = RecordRef {
                    value: if value.is_some() {
                        Some(&json)
                    } else {
                        record.value
                    },
                    key: if key.is_some() {
                        Some(&key_json)
                    } else {
                        record.key
                    },
                    ..*record
                };
                self.buffer(partition, &decoded, burst)
            }
            Decoded::Invalid(reason) => {
                tracing::debug!(partition, offset = record.offset, %reason, "a record does not decode");
                registry.note_invalid(partition, record.offset, reason);
                let flawed = RecordRef {
                    flaw: Some(Flaw::Undecodable),
                    ..*record
                };
                self.buffer(partition, &flawed, burst)
            }
            Decoded::Missing(schema) => {
                tracing::info!(
                    partition,
                    offset = record.offset,
                    %schema,
                    "a record's schema is not read yet: the partition reads it, then starts again from the store"
                );
                metrics::counter!("ingest_schema_waits_total").increment(1);
                self.start_again(partition, record.offset);
                true
            }
        };
        self.decoded_value = json;
        self.decoded_key = key_json;
        rescan
    }
}
