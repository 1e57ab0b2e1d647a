//! Writing one Parquet file: its schema from the columns (with the coordinates and
//! `_rescued_data`), the writer's properties, and rows pushed in chunks ([`File`]).
//!
//! Pure: the file is written into memory.

use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as Codec, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::rows::Chunk;
use super::shape::{Columns, Shape};
use super::{invalid, RESCUED};
use crate::batch::StoredRecord;
use crate::config::{Envelope, ParquetCompression, ParquetSettings};
use crate::encode::encoder::{EncodeOptions, Encoded, InvalidRecord, Rejects};

/// Rows built and written at a time, at most (and at most about [`CHUNK_BYTES`] of values, and
/// [`CHUNK_CELLS`] entries in all columns).
pub(super) const CHUNK_ROWS: usize = 16384;
/// Column entries a chunk holds at most: Arrow's arrays are dense (a null takes its slot), so a
/// schema of many sparse columns gets fewer rows a chunk (1,000 columns: 512 rows, about 5 MB)
/// instead of 16,384 rows of nulls in every column (150 MB).
const CHUNK_CELLS: usize = 512 * 1024;
/// The fewest rows a chunk is cut at.
const MIN_CHUNK_ROWS: usize = 64;
/// A column's dictionary stops growing here and its later values are written plain: columns
/// of few values (a status, a city, a currency) keep their dictionary, while an id column falls
/// back early, which zstd then compresses better than dictionary indices (measured with
/// `ingest-bench encode`: files 0.86x -> 0.72x the NDJSON+gzip-6 ones at 4 MiB batches, 0.73x ->
/// 0.61x at 64 MiB, for less CPU; parquet's default is 1 MiB).
const DICTIONARY_PAGE_BYTES: usize = 32 * 1024;
/// Record bytes per chunk, at most about: keeps a chunk's text within Arrow's 32-bit offsets.
const CHUNK_BYTES: usize = 64 << 20;

fn data_type(shape: &Shape) -> DataType {
    match shape {
        Shape::Unknown => DataType::Utf8,
        Shape::Bool => DataType::Boolean,
        Shape::Int => DataType::Int64,
        Shape::Float => DataType::Float64,
        Shape::Str => DataType::Utf8,
        Shape::List(elem) => DataType::List(item_field(elem)),
        Shape::Struct(fields) => DataType::Struct(struct_fields(fields)),
        Shape::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        Shape::Timestamp { utc } => {
            DataType::Timestamp(TimeUnit::Microsecond, utc.then(|| "UTC".into()))
        }
        Shape::Date => DataType::Date32,
        Shape::Binary => DataType::Binary,
        Shape::Map(value) => DataType::Map(entries_field(value), false),
    }
}

/// The field of a map column's entries: a key (text, never null) and a value.
pub(super) fn entries_field(value: &Shape) -> FieldRef {
    let entries = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", data_type(value), true),
    ]);
    Arc::new(Field::new("entries", DataType::Struct(entries), false))
}

/// The field of a list column's items.
pub(super) fn item_field(elem: &Shape) -> FieldRef {
    Arc::new(Field::new("item", data_type(elem), true))
}

pub(super) fn struct_fields(fields: &[(String, Shape)]) -> Fields {
    fields
        .iter()
        .map(|(name, s)| Field::new(name, data_type(s), true))
        .collect()
}

pub(super) fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("value", DataType::Binary, true),
    ])
}

/// The file's schema: coordinates (metadata envelope), the value's columns, `_rescued_data`.
pub(super) fn schema(envelope: Envelope, columns: &Columns) -> SchemaRef {
    let mut all = Vec::new();
    if envelope == Envelope::Metadata {
        all.extend([
            Field::new("_topic", DataType::Utf8, false),
            Field::new("_partition", DataType::Int32, false),
            Field::new("_offset", DataType::Int64, false),
            Field::new(
                "_timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("_key", DataType::Binary, true),
            Field::new(
                "_headers",
                DataType::List(Arc::new(Field::new(
                    "item",
                    DataType::Struct(header_fields()),
                    true,
                ))),
                true,
            ),
        ]);
    }
    all.extend(
        struct_fields(&columns.fields)
            .iter()
            .map(|f| Field::clone(f)),
    );
    all.push(Field::new(RESCUED, DataType::Utf8, true));
    Arc::new(Schema::new(all))
}

fn properties(p: &ParquetSettings) -> Result<WriterProperties, String> {
    let codec = match p.compression {
        ParquetCompression::Zstd { level } => {
            Codec::ZSTD(ZstdLevel::try_new(level).map_err(|e| e.to_string())?)
        }
        ParquetCompression::Gzip { level } => {
            Codec::GZIP(GzipLevel::try_new(level).map_err(|e| e.to_string())?)
        }
        ParquetCompression::Snappy => Codec::SNAPPY,
        ParquetCompression::None => Codec::UNCOMPRESSED,
    };
    Ok(WriterProperties::builder()
        .set_compression(codec)
        .set_dictionary_enabled(true)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(concat!("ingest ", env!("CARGO_PKG_VERSION")).into())
        .build())
}

/// A Parquet file being written: its writer, the chunk of rows being built, and counts.
pub(super) struct File<'c> {
    writer: ArrowWriter<Vec<u8>>,
    chunk: Chunk,
    schema: SchemaRef,
    columns: Columns,
    opts: &'c EncodeOptions,
    row_group_bytes: usize,
    /// Rows a chunk takes before it is written ([`CHUNK_ROWS`], fewer for many columns).
    chunk_rows: usize,
    partition: i32,
    /// Where an internal error is reported: the batch's first record.
    first: i64,
    records: usize,
    uncompressed: usize,
}

impl<'c> File<'c> {
    pub(super) fn new(
        opts: &'c EncodeOptions,
        settings: &ParquetSettings,
        columns: Columns,
        partition: i32,
        first: i64,
    ) -> Result<File<'c>, InvalidRecord> {
        let internal = |e: String| {
            invalid(
                opts,
                partition,
                first,
                format!("writing Parquet failed: {e}"),
            )
        };
        let schema = schema(opts.envelope, &columns);
        let chunk_rows = (CHUNK_CELLS / columns.size().max(1)).clamp(MIN_CHUNK_ROWS, CHUNK_ROWS);
        let props = properties(settings).map_err(internal)?;
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
            .map_err(|e| internal(e.to_string()))?;
        Ok(File {
            writer,
            chunk: Chunk::new(&columns),
            schema,
            columns,
            opts,
            row_group_bytes: settings.row_group_bytes,
            chunk_rows,
            partition,
            first,
            records: 0,
            uncompressed: 0,
        })
    }

    fn internal(&self, e: impl std::fmt::Display) -> InvalidRecord {
        invalid(
            self.opts,
            self.partition,
            self.first,
            format!("writing Parquet failed: {e}"),
        )
    }

    /// Adds record `r`'s row (`json`: its value, `None` for a tombstone); `Ok(false)`: the
    /// value would grow the columns (`fixed`, see [`Chunk::push`]).
    pub(super) fn push(
        &mut self,
        r: &StoredRecord<'_>,
        json: Option<&[u8]>,
        fixed: bool,
    ) -> Result<bool, InvalidRecord> {
        let pushed = self
            .chunk
            .push(
                &self.opts.topic,
                self.partition,
                r,
                &self.columns,
                json,
                fixed,
            )
            .map_err(|e| self.internal(e))?;
        if !pushed {
            return Ok(false);
        }
        self.uncompressed += r.value().map_or(0, <[u8]>::len) + 1;
        self.records += 1;
        if self.chunk.rows >= self.chunk_rows || self.chunk.bytes >= CHUNK_BYTES {
            self.write_chunk()?;
            if self.writer.in_progress_size() >= self.row_group_bytes {
                self.writer.flush().map_err(|e| self.internal(e))?;
            }
        }
        Ok(true)
    }

    fn write_chunk(&mut self) -> Result<(), InvalidRecord> {
        let rows = self
            .chunk
            .take(self.opts.envelope, &self.schema)
            .map_err(|e| self.internal(e))?;
        self.writer.write(&rows).map_err(|e| self.internal(e))
    }

    /// The file, the dead letters and the counts; the file's columns come back in
    /// [`Encoded::columns`].
    pub(super) fn finish(
        mut self,
        rejects: Rejects,
        filtered: usize,
    ) -> Result<Encoded, InvalidRecord> {
        if self.chunk.rows > 0 {
            self.write_chunk()?;
        }
        let internal = self.internal("");
        let data = self.writer.into_inner().map_err(|e| InvalidRecord {
            reason: format!("{}{e}", internal.reason),
            ..internal
        })?;
        let (dead_lettered, skipped) = (rejects.dead_lettered, rejects.skipped);
        Ok(Encoded {
            data,
            dead_letters: rejects.dead_letters(self.opts.compression),
            records: self.records,
            dead_lettered,
            skipped,
            filtered,
            uncompressed_bytes: self.uncompressed,
            columns: Some(self.columns),
        })
    }
}
