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

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use azure_core::credentials::TokenCredential;

use crate::config::{RegistryConfig, ValueFormat};
use crate::encode::parquet::shape::{Caps, Columns, Shape};
use client::Client;
pub use key::SchemaKey;

/// What the registry said about one schema id, whatever it is used for (values or keys).
#[derive(Debug)]
enum Entry {
    Avro(avro::Schema),
    Protobuf(protobuf::Schema),
    /// JSON Schema: the payload is the JSON.
    Json,
    /// Records with this id are invalid, for this reason.
    Invalid(String),
}

impl Entry {
    /// The format a schema of this kind is decoded as.
    fn kind(&self) -> Option<ValueFormat> {
        match self {
            Entry::Avro(_) => Some(ValueFormat::Avro),
            Entry::Protobuf(_) => Some(ValueFormat::Protobuf),
            Entry::Json => Some(ValueFormat::JsonSchema),
            Entry::Invalid(_) => None,
        }
    }
}

/// A schema kept, and whether its Parquet columns are declared (done when a value first
/// decodes with it: a key's schema declares no columns).
#[derive(Debug)]
struct Kept {
    entry: Entry,
    declared: AtomicBool,
}

thread_local! {
    /// The schema this thread decoded with last, by registry ([`Registry::entry`]). A schema id
    /// names one schema for ever, so what is cached here never goes stale.
    static LAST: RefCell<Option<(u64, SchemaKey, Arc<Kept>)>> = const { RefCell::new(None) };
}

/// What a decoded payload is: a record's value or its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Value,
    Key,
}

/// Schemas kept at most; past it one is dropped (and read again if a record needs it).
const MAX_SCHEMAS: usize = 4096;
/// Reasons kept for invalid records not encoded yet; past it they are dropped (the encoder then
/// gives a shorter reason, and the log has the full one).
const MAX_REASONS: usize = 65_536;

/// The registry's name of the schema kind `format` expects.
fn kind_name(format: ValueFormat) -> &'static str {
    match format {
        ValueFormat::Avro => "AVRO",
        ValueFormat::Protobuf => "PROTOBUF",
        ValueFormat::JsonSchema => "JSON",
        ValueFormat::Json => "none",
    }
}

/// `payload`, one JSON document, written compactly into `out` (at most `limit` bytes).
fn compact_json(payload: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("not JSON ({e})"))?;
    serde_json::to_writer(&mut *out, &value).map_err(|e| e.to_string())?;
    if out.len() > limit {
        out.clear();
        return Err("decodes to JSON larger than INGEST_MAX_RECORD_BYTES".into());
    }
    Ok(())
}

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
    /// `INGEST_KEY_FORMAT`: `None`, keys are not decoded.
    key_format: Option<ValueFormat>,
    client: Client,
    schemas: Mutex<HashMap<SchemaKey, Arc<Kept>>>,
    wanted: Mutex<BTreeSet<SchemaKey>>,
    /// Why each invalid record taken and not yet encoded is invalid, by partition and offset.
    reasons: Mutex<HashMap<(i32, i64), String>>,
    /// One reading at a time: partitions waiting for the same id read it once.
    reading: tokio::sync::Mutex<()>,
    /// `INGEST_MAX_RECORD_BYTES`: a value decoding to more JSON is invalid.
    max_json_bytes: usize,
    /// Values land in typed columns ([`Registry::new`]).
    typed: bool,
    /// This registry among those of the process (the per-thread last schema is per registry).
    id: u64,
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
        static REGISTRIES: AtomicU64 = AtomicU64::new(0);
        Ok(Registry {
            id: REGISTRIES.fetch_add(1, Ordering::Relaxed),
            typed,
            format: config.format,
            key_format: config.key_format,
            client: Client::new(config, entra)?,
            schemas: Mutex::new(HashMap::new()),
            wanted: Mutex::new(BTreeSet::new()),
            reasons: Mutex::new(HashMap::new()),
            reading: tokio::sync::Mutex::new(()),
            max_json_bytes,
            declared: Mutex::new(Arc::new(Columns::new(Vec::new(), DECLARED_CAPS))),
        })
    }

    /// The schema `key` names, if read: the one this thread used last without taking the lock
    /// (records mostly carry one schema id after another), else from the kept ones.
    fn entry(&self, key: &SchemaKey) -> Option<Arc<Kept>> {
        let last = LAST.with_borrow(|last| match last {
            Some((id, k, kept)) if *id == self.id && k == key => Some(Arc::clone(kept)),
            _ => None,
        });
        if last.is_some() {
            return last;
        }
        let kept = {
            let schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
            schemas.get(key).cloned()?
        };
        LAST.with_borrow_mut(|last| *last = Some((self.id, key.clone(), Arc::clone(&kept))));
        Some(kept)
    }

    /// Whether values are decoded (`INGEST_VALUE_FORMAT` is not `json`).
    pub fn decodes_values(&self) -> bool {
        self.format != ValueFormat::Json
    }

    /// Whether keys are decoded (`INGEST_KEY_FORMAT` is not `bytes`): a decoded key is compact
    /// JSON, which the `metadata` envelope writes as it is.
    pub fn decodes_keys(&self) -> bool {
        self.key_format.is_some()
    }

    /// Decodes `value` (with its Event Hubs content type, if any) into `out` (cleared first)
    /// when its schema is at hand.
    pub fn decode(&self, value: &[u8], content_type: Option<&str>, out: &mut Vec<u8>) -> Decoded {
        self.decode_part(Part::Value, value, content_type, out)
    }

    /// Decodes a record's `key` into `out` (cleared first), as [`Registry::decode`] does a
    /// value; a JSON Schema key is compacted (it is written into the envelope as it is).
    pub fn decode_key(&self, key: &[u8], out: &mut Vec<u8>) -> Decoded {
        self.decode_part(Part::Key, key, None, out)
    }

    fn decode_part(
        &self,
        part: Part,
        bytes: &[u8],
        content_type: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Decoded {
        out.clear();
        let (key, payload) = match key::framed(bytes, content_type) {
            Ok(framed) => framed,
            Err(why) if part == Part::Key => return Decoded::Invalid(format!("the key: {why}")),
            Err(why) => return Decoded::Invalid(why),
        };
        let Some(kept) = self.entry(&key) else {
            let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            wanted.insert(key.clone());
            return Decoded::Missing(key);
        };
        let (expected, setting) = match part {
            Part::Value => (self.format, "INGEST_VALUE_FORMAT"),
            Part::Key => (
                self.key_format.unwrap_or(ValueFormat::Json),
                "INGEST_KEY_FORMAT",
            ),
        };
        let limit = self.max_json_bytes;
        let decoded = match (&kept.entry, kept.entry.kind()) {
            (_, Some(kind)) if kind != expected => Err(format!(
                "a {} schema, but {setting} expects {}",
                kind_name(kind),
                kind_name(expected)
            )),
            (Entry::Avro(schema), _) => avro::to_json(schema, payload, out, limit)
                .map_err(|e| format!("the Avro payload does not decode ({e})")),
            (Entry::Protobuf(schema), _) => {
                protobuf::to_json(schema, payload, out, limit, self.typed)
                    .map_err(|e| format!("the Protobuf payload does not decode ({e})"))
            }
            (Entry::Json, _) if part == Part::Key => compact_json(payload, out, limit),
            (Entry::Json, _) => {
                out.extend_from_slice(payload);
                Ok(())
            }
            (Entry::Invalid(why), _) => Err(why.clone()),
        };
        match decoded {
            Ok(()) => {
                if part == Part::Value
                    && !kept.declared.load(Ordering::Relaxed)
                    && !kept.declared.swap(true, Ordering::Relaxed)
                {
                    self.declare_columns(&kept.entry);
                }
                Decoded::Json
            }
            Err(why) if part == Part::Key => Decoded::Invalid(format!("the key's {key}: {why}")),
            Err(why) => Decoded::Invalid(format!("{key}: {why}")),
        }
    }

    /// Whether what [`Registry::decode`] writes is JSON by construction (compact, UTF-8,
    /// bounded in size and depth), so the encoder need not check it again: Avro and Protobuf,
    /// not JSON Schema, whose payload is the producer's own text.
    pub fn writes_checked_json(&self) -> bool {
        matches!(self.format, ValueFormat::Avro | ValueFormat::Protobuf)
    }

    /// Declares the Parquet columns of a schema values decode with.
    fn declare_columns(&self, entry: &Entry) {
        match entry {
            Entry::Avro(schema) => self.declare(&avro::columns::fields(schema)),
            Entry::Protobuf(schema) => {
                for message in schema.columns(self.typed) {
                    self.declare(&message);
                }
            }
            Entry::Json | Entry::Invalid(_) => {}
        }
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
        if grown.declare(&Columns::new(fields.to_vec(), DECLARED_CAPS), &[]) {
            *declared = Arc::new(grown);
        }
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
