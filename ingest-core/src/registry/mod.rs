//! Schema-registry values: records written in Confluent's wire format ([`wire`]) decoded into
//! the JSON every later stage reads, with their writer's schema fetched by id once
//! ([`client`]) and kept (bounded); Avro decoded by [`avro`], JSON Schema values passed on.
//!
//! Invariant: a record is decoded only with its schema in hand. One whose schema is not read yet
//! is [`Decoded::Missing`]: the caller takes none of its partition's records until
//! [`Registry::fetch_wanted`] has read it (the partition then starts again from the store, so
//! nothing is skipped). A registry that is down is waited out; one that refuses stops the
//! service; an id it does not know, or bytes that do not decode, make an invalid record.

pub mod avro;
pub mod client;
pub mod protobuf;
pub mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{RegistryConfig, ValueFormat};
use crate::ops::health::Health;
use client::{Client, FetchError};

/// What the registry said about one schema id.
#[derive(Debug)]
enum Entry {
    Avro(avro::Schema),
    Protobuf(protobuf::Schema),
    /// JSON Schema: the payload is the JSON.
    Json,
    /// Records with this id are invalid, for this reason.
    Invalid(String),
}

/// Schemas kept at most; past it one is dropped (and read again if a record needs it).
const MAX_SCHEMAS: usize = 4096;

/// What [`Registry::decode`] made of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// `out` holds the value as JSON.
    Json,
    /// The value is an invalid record ([`Registry::explain`] says why).
    Invalid,
    /// Its schema is not read yet; it is wanted now.
    Missing(u32),
}

pub struct Registry {
    format: ValueFormat,
    client: Client,
    schemas: Mutex<HashMap<u32, Arc<Entry>>>,
    wanted: Mutex<BTreeSet<u32>>,
    /// One reading at a time: partitions waiting for the same id read it once.
    reading: tokio::sync::Mutex<()>,
    /// `INGEST_MAX_RECORD_BYTES`: a value decoding to more JSON is invalid.
    max_json_bytes: usize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// The registry refused (credentials, permissions, a URL that is not a registry): one line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the schema registry refused: {0}")]
pub struct Refused(pub String);

const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Registry {
    pub fn new(config: &RegistryConfig, max_json_bytes: usize) -> Result<Registry, String> {
        Ok(Registry {
            format: config.format,
            client: Client::new(config)?,
            schemas: Mutex::new(HashMap::new()),
            wanted: Mutex::new(BTreeSet::new()),
            reading: tokio::sync::Mutex::new(()),
            max_json_bytes,
        })
    }

    fn entry(&self, id: u32) -> Option<Arc<Entry>> {
        let schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        schemas.get(&id).cloned()
    }

    /// Decodes `value` into `out` (cleared first) when its schema is at hand.
    pub fn decode(&self, value: &[u8], out: &mut Vec<u8>) -> Decoded {
        out.clear();
        let Ok(framed) = wire::frame(value) else {
            return Decoded::Invalid;
        };
        let Some(entry) = self.entry(framed.schema_id) else {
            let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            wanted.insert(framed.schema_id);
            return Decoded::Missing(framed.schema_id);
        };
        match &*entry {
            Entry::Avro(schema) => {
                match avro::to_json(schema, framed.payload, out, self.max_json_bytes) {
                    Ok(()) => Decoded::Json,
                    Err(_) => Decoded::Invalid,
                }
            }
            Entry::Protobuf(schema) => {
                match protobuf::to_json(schema, framed.payload, out, self.max_json_bytes) {
                    Ok(()) => Decoded::Json,
                    Err(_) => Decoded::Invalid,
                }
            }
            Entry::Json => {
                out.extend_from_slice(framed.payload);
                Decoded::Json
            }
            Entry::Invalid(_) => Decoded::Invalid,
        }
    }

    /// Whether what [`Registry::decode`] writes is JSON by construction (compact, UTF-8,
    /// bounded in size and depth), so the encoder need not check it again: Avro and Protobuf,
    /// not JSON Schema, whose payload is the producer's own text.
    pub fn writes_checked_json(&self) -> bool {
        matches!(self.format, ValueFormat::Avro | ValueFormat::Protobuf)
    }

    /// Why `value` is an invalid record, in one line naming its schema id.
    pub fn explain(&self, value: &[u8]) -> String {
        let framed = match wire::frame(value) {
            Ok(f) => f,
            Err(why) => return why.to_string(),
        };
        let id = framed.schema_id;
        match self.entry(id).as_deref() {
            None => format!("schema id {id} could not be read when the record was decoded"),
            Some(Entry::Invalid(why)) => format!("schema id {id}: {why}"),
            Some(Entry::Json) => format!("schema id {id}: the payload is not JSON"),
            Some(Entry::Avro(schema)) => {
                let mut out = Vec::new();
                match avro::to_json(schema, framed.payload, &mut out, self.max_json_bytes) {
                    Err(e) => format!("schema id {id}: the Avro payload does not decode ({e})"),
                    Ok(()) => format!("schema id {id}: decoded only on a second try"),
                }
            }
            Some(Entry::Protobuf(schema)) => {
                let mut out = Vec::new();
                match protobuf::to_json(schema, framed.payload, &mut out, self.max_json_bytes) {
                    Err(e) => format!("schema id {id}: the Protobuf payload does not decode ({e})"),
                    Ok(()) => format!("schema id {id}: decoded only on a second try"),
                }
            }
        }
    }

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
                wanted.iter().next().copied()
            };
            let Some(id) = next else {
                health.update(|f| f.registry_error = None);
                return Ok(());
            };
            let serialized = self.format == ValueFormat::Protobuf;
            let entry = match self.client.schema(id, serialized).await {
                Ok(fetched) => Some(self.parse(id, fetched)),
                Err(FetchError::Unknown(why)) => {
                    tracing::warn!(schema_id = id, %why, "the schema registry does not know this schema id: its records are invalid records");
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
                    tracing::warn!(schema_id = id, error = %why, retry_in_ms = backoff.as_millis() as u64,
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
                self.keep(id, entry);
                backoff = BACKOFF_START;
            }
        }
    }

    /// What records with schema `id` decode with.
    fn parse(&self, id: u32, fetched: client::Fetched) -> Entry {
        let expected = match self.format {
            ValueFormat::Avro => "AVRO",
            ValueFormat::JsonSchema => "JSON",
            ValueFormat::Protobuf => "PROTOBUF",
            ValueFormat::Json => "none",
        };
        if fetched.kind != expected {
            return Entry::Invalid(format!(
                "a {} schema, but INGEST_VALUE_FORMAT expects {expected}",
                fetched.kind
            ));
        }
        match self.format {
            ValueFormat::JsonSchema => Entry::Json,
            ValueFormat::Protobuf => {
                match protobuf::Schema::parse(&fetched.text, &fetched.references) {
                    Ok(schema) => {
                        tracing::info!(schema_id = id, "read a Protobuf schema from the registry");
                        Entry::Protobuf(schema)
                    }
                    Err(why) => Entry::Invalid(format!("the Protobuf schema does not load: {why}")),
                }
            }
            _ => match avro::Schema::parse(&fetched.text, &fetched.references) {
                Ok(schema) => {
                    tracing::info!(schema_id = id, "read an Avro schema from the registry");
                    Entry::Avro(schema)
                }
                Err(why) => Entry::Invalid(format!("the Avro schema does not parse: {why}")),
            },
        }
    }

    fn keep(&self, id: u32, entry: Entry) {
        let mut schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        if schemas.len() >= MAX_SCHEMAS {
            if let Some(evicted) = schemas.keys().next().copied() {
                schemas.remove(&evicted);
            }
        }
        schemas.insert(id, Arc::new(entry));
        self.wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}
