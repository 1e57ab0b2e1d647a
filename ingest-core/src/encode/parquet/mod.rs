//! Parquet data files: a batch's JSON records as columns, with a schema inferred from the whole
//! batch ([`shape`]) and nothing dropped.
//!
//! Pure and CPU-bound, like the NDJSON encoder. Records are read as bytes and never built as
//! JSON values ([`walk`]). Each record is checked (as NDJSON does; a value that is not a JSON
//! object is invalid too, since its fields are the columns), and its fields that fit their
//! column are appended to that column's Arrow array ([`arrays`]), in chunks of rows; the others
//! are kept, verbatim, as JSON in `_rescued_data` (Auto Loader's name for it). The columns are
//! the topic's running schema's when the batch adds nothing to them (one pass, the usual case
//! once a topic has files); a batch with a value that would grow them is learned first, in a
//! pass of its own, and written in a second. Under the metadata envelope the record's
//! coordinates are columns too, as Spark's Kafka source names them with a leading underscore:
//! `_topic`, `_partition`, `_offset`, `_timestamp` (UTC, microseconds: Spark and Databricks
//! cannot read nanoseconds), `_key` (binary) and `_headers` (a list of key and binary value).
//! Memory: a chunk of rows as arrays, and the row group being written (closed at
//! `INGEST_PARQUET_ROW_GROUP_BYTES`).
//!
//! Invariant: every record ends up in exactly one of the file's rows, the dead-letter lines, a
//! counted skip or filter, or an [`InvalidRecord`] error; every field of a row is in a column
//! or in `_rescued_data`.

mod arrays;
mod file;
mod rows;
pub mod shape;
pub mod typed;
pub(crate) mod walk;

use std::borrow::Cow;

use self::file::File;
#[cfg(test)]
use self::file::{schema, struct_fields, CHUNK_ROWS};
use self::shape::Columns;
use super::encoder::{EncodeOptions, Encoded, InvalidRecord, Rejects};
use super::ndjson::{check_json, check_size};
use crate::batch::{Attachment, Batch, StoredRecord};
use crate::config::{Envelope, InvalidRecordPolicy, ParquetSettings};

/// Names the service writes itself; a record field of the same name is rescued.
pub const RESERVED: [&str; 7] = [
    "_topic",
    "_partition",
    "_offset",
    "_timestamp",
    "_key",
    "_headers",
    RESCUED,
];
/// The column holding, as a JSON object, a record's fields that do not fit their column.
pub const RESCUED: &str = "_rescued_data";
/// A record's value as the columns see it: its JSON (transformed, if the topic has a
/// transform), or none (a tombstone under metadata).
enum Row<'a> {
    Json(Cow<'a, [u8]>),
    Tombstone,
}

/// Checks one record as the NDJSON encoder would (unless `checked`: pass 1 did) and applies the
/// transform. `Ok(None)`: the transform dropped it.
fn row<'a>(
    r: &StoredRecord<'a>,
    partition: i32,
    opts: &EncodeOptions,
    checked: bool,
) -> Result<Option<Row<'a>>, String> {
    if r.flaw().is_some() {
        return Err(opts.flaw_reason(partition, r));
    }
    match (r.value(), &opts.transform) {
        (None, _) if opts.envelope == Envelope::Metadata => Ok(Some(Row::Tombstone)),
        (None, _) => Err(super::encoder::TOMBSTONE.to_string()),
        (Some(v), Some(t)) => {
            if !checked {
                check_size(v, opts.max_record_bytes)?;
            }
            Ok(t.apply(v)?.map(|out| Row::Json(Cow::Owned(out))))
        }
        (Some(v), None) => {
            if !checked {
                check_json(v, opts.max_record_bytes)?;
            }
            Ok(Some(Row::Json(Cow::Borrowed(v))))
        }
    }
}

/// Encodes `batch` as one Parquet file (dead letters as NDJSON, compressed as
/// `opts.compression` says), with the topic's `running` schema's columns first and as they
/// are; the file's columns come back in [`Encoded::columns`].
pub fn encode<A: Attachment>(
    batch: &Batch<A>,
    partition: i32,
    opts: &EncodeOptions,
    settings: &ParquetSettings,
    running: &Columns,
) -> Result<Encoded, InvalidRecord> {
    encode_records(|| batch.records(), partition, opts, settings, running)
}

/// As [`encode`], for the records `batch` yields (each call yields the same ones: the
/// encoder may read them twice).
///
/// Once the topic has a running schema, most batches add nothing to it: they are encoded in
/// one pass against it, and only a batch with a value that would grow it (a new field, or a
/// new nested one) is learned first, in a pass of its own. Both give the same file.
pub fn encode_records<'a, I: Iterator<Item = StoredRecord<'a>>>(
    batch: impl Fn() -> I,
    partition: i32,
    opts: &EncodeOptions,
    settings: &ParquetSettings,
    running: &Columns,
) -> Result<Encoded, InvalidRecord> {
    let declared = opts.registry.as_ref().map(|r| r.declared());
    encode_declared(
        batch,
        partition,
        opts,
        settings,
        running,
        declared.as_deref(),
    )
}

/// As [`encode_records`], with the columns `declared` by a schema registry, if any, typed as
/// it declares them.
fn encode_declared<'a, I: Iterator<Item = StoredRecord<'a>>>(
    batch: impl Fn() -> I,
    partition: i32,
    opts: &EncodeOptions,
    settings: &ParquetSettings,
    running: &Columns,
    declared: Option<&Columns>,
) -> Result<Encoded, InvalidRecord> {
    // The running schema's columns, fixed, and those the registry declares; under Delta, only
    // names the table takes.
    let mut base = Columns::from_running(running, caps(settings));
    if let Some(partition) = &opts.table_columns {
        base.names = shape::Names::table(partition.clone());
    }
    let declares = declared.is_some_and(|d| base.declare(d, &RESERVED));
    if !running.fields.is_empty() && !declares {
        if let Some(encoded) = one_pass(batch(), partition, opts, settings, &base)? {
            return Ok(encoded);
        }
    }
    two_passes(batch, partition, opts, settings, base)
}

/// The batch's records checked and written against the `running` columns as they are, in one
/// pass; `None` (nothing logged or kept) as soon as a record would grow them.
fn one_pass<'a>(
    records: impl Iterator<Item = StoredRecord<'a>>,
    partition: i32,
    opts: &EncodeOptions,
    settings: &ParquetSettings,
    running: &Columns,
) -> Result<Option<Encoded>, InvalidRecord> {
    // `running` comes with the settings' caps (and, under Delta, the table's names).
    let columns = running.typed();
    let mut records = records.peekable();
    let first = records.peek().map_or(0, |r| r.offset());
    let mut file = File::new(opts, settings, columns, partition, first)?;
    // Invalid records are handled (logged, dead-lettered) only once the pass completes;
    // failing on the first is what the two passes would do too.
    let mut rejected = Vec::new();
    let mut filtered = 0;
    for r in records {
        let row = row(&r, partition, opts, false).and_then(|row| match row {
            Some(Row::Json(json)) => shape::object(&json).map(|_| Some(Some(json))),
            Some(Row::Tombstone) => Ok(Some(None)),
            None => Ok(None),
        });
        let json = match row {
            Ok(Some(json)) => json,
            Ok(None) => {
                filtered += 1;
                continue;
            }
            Err(reason) if opts.invalid == InvalidRecordPolicy::Fail => {
                return Err(invalid(opts, partition, r.offset(), reason))
            }
            Err(reason) => {
                rejected.push((r, reason));
                continue;
            }
        };
        if !file.push(&r, json.as_deref(), true)? {
            return Ok(None);
        }
    }
    let mut rejects = Rejects::default();
    for (r, reason) in rejected {
        rejects.reject(opts, partition, &r, reason)?;
    }
    file.finish(rejects, filtered).map(Some)
}

/// Pass 1 checks every record and learns the columns, starting from `columns` (the running
/// schema's, fixed, and the declared ones); pass 2 writes the rows.
fn two_passes<'a, I: Iterator<Item = StoredRecord<'a>>>(
    batch: impl Fn() -> I,
    partition: i32,
    opts: &EncodeOptions,
    settings: &ParquetSettings,
    columns: Columns,
) -> Result<Encoded, InvalidRecord> {
    // Pass 1: check every record, learn the columns.
    let mut filtered = 0;
    let mut rejects = Rejects::default();
    let mut valid = Vec::with_capacity(batch().size_hint().0);
    let mut columns = columns;
    for r in batch() {
        let learned = row(&r, partition, opts, false).and_then(|row| match row {
            Some(Row::Json(json)) => columns.observe(&json, &RESERVED).map(|()| Some(())),
            Some(Row::Tombstone) => Ok(Some(())),
            None => Ok(None),
        });
        match learned {
            Ok(Some(())) => valid.push(true),
            Ok(None) => {
                filtered += 1;
                valid.push(false);
            }
            Err(reason) => {
                valid.push(false);
                rejects.reject(opts, partition, &r, reason)?;
            }
        }
    }
    // Parquet cannot write a column without a type (or a struct without fields): such fields
    // get none yet (their nulls need none; empty lists and objects are rescued).
    let columns = columns.typed();
    let first = batch().next().map_or(0, |r| r.offset());
    let mut file = File::new(opts, settings, columns, partition, first)?;
    // Pass 2: rows, in chunks.
    for (r, ok) in batch().zip(valid) {
        if !ok {
            continue;
        }
        let json = match row(&r, partition, opts, true)
            .map_err(|e| invalid(opts, partition, r.offset(), e))?
        {
            Some(Row::Json(json)) => Some(json),
            Some(Row::Tombstone) => None,
            None => continue,
        };
        file.push(&r, json.as_deref(), false)?;
    }
    file.finish(rejects, filtered)
}

/// The Arrow schema of a file with `columns` (a running schema's) under `envelope`: the
/// coordinates, the columns, `_rescued_data`.
pub fn file_schema(
    envelope: crate::config::Envelope,
    columns: &Columns,
) -> arrow_schema::SchemaRef {
    file::schema(envelope, &columns.typed())
}

fn caps(settings: &ParquetSettings) -> shape::Caps {
    shape::Caps {
        columns: settings.max_columns,
        fields: settings.max_fields,
    }
}

pub(super) fn invalid(
    opts: &EncodeOptions,
    partition: i32,
    offset: i64,
    reason: String,
) -> InvalidRecord {
    InvalidRecord {
        topic: opts.topic.clone(),
        partition,
        offset,
        reason,
    }
}

#[cfg(test)]
mod tests;
