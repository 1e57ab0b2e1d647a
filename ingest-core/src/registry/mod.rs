//! Schema-registry values: records written in Confluent's wire format ([`wire`]) or with Azure
//! Schema Registry's content type ([`key`]) decoded into the JSON every later stage reads, with
//! their writer's schema fetched once ([`client`], [`fetch`]) and kept (bounded); Avro decoded
//! by [`avro`], Protobuf by [`protobuf`], JSON Schema values passed on.
//!
//! Invariant: a record is decoded only with its schema in hand. One whose schema is not read yet
//! is [`Decoded::Missing`]: the caller takes none of its partition's records until
//! [`Registry::fetch_wanted`] has read it (the partition then starts again from the store, so
//! nothing is skipped). A registry that is down is waited out; one that refuses stops the
//! service; an id it does not know, or bytes that do not decode, make an invalid record.

pub mod avro;
pub mod client;
mod fetch;
pub mod key;
pub mod protobuf;
pub mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use azure_core::credentials::TokenCredential;

use crate::config::{RegistryConfig, ValueFormat};
use crate::encode::parquet::shape::{Caps, Columns, Shape};
use client::Client;
pub use key::SchemaKey;

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
/// Reasons kept for invalid records not encoded yet; past it they are dropped (the encoder then
/// gives a shorter reason, and the log has the full one).
const MAX_REASONS: usize = 65_536;

/// Bounds on the declared columns kept (a file applies its own caps when it takes them).
const DECLARED_CAPS: Caps = Caps {
    columns: 100_000,
    fields: 1_000_000,
};

/// What [`Registry::decode`] made of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// `out` holds the value as JSON.
    Json,
    /// The value is an invalid record, for this reason (naming its schema).
    Invalid(String),
    /// Its schema is not read yet; it is wanted now.
    Missing(SchemaKey),
}

pub struct Registry {
    format: ValueFormat,
    client: Client,
    schemas: Mutex<HashMap<SchemaKey, Arc<Entry>>>,
    wanted: Mutex<BTreeSet<SchemaKey>>,
    /// Why each invalid record taken and not yet encoded is invalid, by partition and offset.
    reasons: Mutex<HashMap<(i32, i64), String>>,
    /// One reading at a time: partitions waiting for the same id read it once.
    reading: tokio::sync::Mutex<()>,
    /// `INGEST_MAX_RECORD_BYTES`: a value decoding to more JSON is invalid.
    max_json_bytes: usize,
    /// Values land in typed columns ([`Registry::new`]).
    typed: bool,
    /// The Parquet columns the schemas read so far declare, in the order read
    /// ([`Registry::declared`]).
    declared: Mutex<Arc<Columns>>,
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

impl Registry {
    /// `entra`: the credential Azure Schema Registry is read with (the Event Hubs source's),
    /// when no bearer token is set. `typed`: values land in typed columns (Parquet), so
    /// Protobuf's 64-bit integers are decoded as numbers, not as canonical JSON's strings.
    pub fn new(
        config: &RegistryConfig,
        max_json_bytes: usize,
        entra: Option<Arc<dyn TokenCredential>>,
        typed: bool,
    ) -> Result<Registry, String> {
        Ok(Registry {
            typed,
            format: config.format,
            client: Client::new(config, entra)?,
            schemas: Mutex::new(HashMap::new()),
            wanted: Mutex::new(BTreeSet::new()),
            reasons: Mutex::new(HashMap::new()),
            reading: tokio::sync::Mutex::new(()),
            max_json_bytes,
            declared: Mutex::new(Arc::new(Columns::new(Vec::new(), DECLARED_CAPS))),
        })
    }

    fn entry(&self, key: &SchemaKey) -> Option<Arc<Entry>> {
        let schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        schemas.get(key).cloned()
    }

    /// Decodes `value` (with its Event Hubs content type, if any) into `out` (cleared first)
    /// when its schema is at hand.
    pub fn decode(&self, value: &[u8], content_type: Option<&str>, out: &mut Vec<u8>) -> Decoded {
        out.clear();
        let (key, payload) = match key::framed(value, content_type) {
            Ok(framed) => framed,
            Err(why) => return Decoded::Invalid(why),
        };
        let Some(entry) = self.entry(&key) else {
            let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            wanted.insert(key.clone());
            return Decoded::Missing(key);
        };
        let limit = self.max_json_bytes;
        let decoded = match &*entry {
            Entry::Avro(schema) => avro::to_json(schema, payload, out, limit)
                .map_err(|e| format!("the Avro payload does not decode ({e})")),
            Entry::Protobuf(schema) => protobuf::to_json(schema, payload, out, limit, self.typed)
                .map_err(|e| format!("the Protobuf payload does not decode ({e})")),
            Entry::Json => {
                out.extend_from_slice(payload);
                Ok(())
            }
            Entry::Invalid(why) => Err(why.clone()),
        };
        match decoded {
            Ok(()) => Decoded::Json,
            Err(why) => Decoded::Invalid(format!("{key}: {why}")),
        }
    }

    /// Whether what [`Registry::decode`] writes is JSON by construction (compact, UTF-8,
    /// bounded in size and depth), so the encoder need not check it again: Avro and Protobuf,
    /// not JSON Schema, whose payload is the producer's own text.
    pub fn writes_checked_json(&self) -> bool {
        matches!(self.format, ValueFormat::Avro | ValueFormat::Protobuf)
    }

    /// The Parquet columns of the schemas read so far, in the order read: a field's type is
    /// the first schema's that declared it (the later ones' nested fields added). Columns of
    /// a Parquet file take these types ([`Columns::declare`]); a value that does not fit is
    /// rescued, as any other.
    pub fn declared(&self) -> Arc<Columns> {
        Arc::clone(&self.declared.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Adds a schema's fields to [`Registry::declared`] (done for each schema read; public for
    /// what decodes without reading, as the benchmark does).
    pub fn declare(&self, fields: &[(String, Shape)]) {
        if fields.is_empty() {
            return;
        }
        let mut declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        let mut grown = Columns::clone(&declared);
        grown.declare(&Columns::new(fields.to_vec(), DECLARED_CAPS), &[]);
        *declared = Arc::new(grown);
    }

    /// Keeps why the record at `offset` of `partition` is invalid, for its dead letter.
    pub fn note_invalid(&self, partition: i32, offset: i64, reason: String) {
        let mut reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        if reasons.len() >= MAX_REASONS {
            reasons.clear();
        }
        reasons.insert((partition, offset), reason);
    }

    /// Why the record at `offset` of `partition` did not decode.
    pub fn reason(&self, partition: i32, offset: i64) -> String {
        let reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        reasons.get(&(partition, offset)).cloned().unwrap_or_else(|| {
            "the value does not decode through the schema registry (the service's log names the schema and why)".into()
        })
    }
}
