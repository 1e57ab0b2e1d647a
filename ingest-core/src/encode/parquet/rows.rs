//! One chunk of a Parquet file's rows: the value's columns ([`Column`]), the coordinates and
//! `_rescued_data` in Arrow builders, joined into a record batch.

use std::sync::Arc;

use super::arrays::Column;
use super::file::header_fields;
use super::shape::{over_cap, Columns, Shape};
use super::walk::{self, Kind, Step};
use super::RESERVED;
use crate::batch::StoredRecord;
use crate::config::Envelope;
use crate::encode::compact_into;
use arrow_array::builder::{
    BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

/// One chunk of rows on its way into the file.
pub(super) struct Chunk {
    /// The value's columns, as the file's columns list them.
    values: Vec<Column>,
    /// The record being pushed's rescued fields, as a JSON object (empty: none).
    rescued_json: Vec<u8>,
    pub(super) rows: usize,
    /// Record value bytes in the chunk.
    pub(super) bytes: usize,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    key: BinaryBuilder,
    headers: ListBuilder<StructBuilder>,
    rescued: StringBuilder,
}

impl Chunk {
    pub(super) fn new(columns: &Columns) -> Chunk {
        Chunk {
            values: columns.fields.iter().map(|(_, s)| Column::new(s)).collect(),
            rescued_json: Vec::new(),
            rows: 0,
            bytes: 0,
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            key: BinaryBuilder::new(),
            headers: ListBuilder::new(StructBuilder::from_fields(header_fields(), 0)),
            rescued: StringBuilder::new(),
        }
    }

    /// Adds one record's row: its value's fields that fit `columns` (the chunk's), none for a
    /// tombstone; the rest in `_rescued_data`; its coordinates.
    ///
    /// `fixed`: `columns` are the running schema's and nothing learned them from this batch
    /// (one pass). Then a value that would grow them (a new field, or a new nested one, with a
    /// type) is not rescued: `Ok(false)` says so, the chunk is left part-way through the row,
    /// and the batch must be learned first (two passes).
    pub(super) fn push(
        &mut self,
        topic: &str,
        partition: i32,
        r: &StoredRecord<'_>,
        columns: &Columns,
        value: Option<&[u8]>,
        fixed: bool,
    ) -> Result<bool, String> {
        self.rescued_json.clear();
        if let Some(v) = value {
            if !self.fields(columns, v, fixed)? {
                return Ok(false);
            }
            self.bytes += v.len();
        }
        // Columns the record has no value for are padded with nulls when next written to, or
        // when the chunk is taken: a record costs what its fields cost, not what the schema has.
        self.rows += 1;
        self.topic.append_value(topic);
        self.partition.append_value(partition);
        self.offset.append_value(r.offset());
        self.timestamp
            .append_option(r.timestamp_ms().map(|ms| ms.saturating_mul(1000)));
        self.key.append_option(r.key());
        let list = self.headers.values();
        for (k, v) in r.headers() {
            list.field_builder::<StringBuilder>(0)
                .expect("key builder")
                .append_value(k);
            list.field_builder::<BinaryBuilder>(1)
                .expect("value builder")
                .append_option(v);
            list.append(true);
        }
        self.headers.append(true);
        if self.rescued_json.is_empty() {
            self.rescued.append_null();
        } else {
            // Bytes of the checked (UTF-8) value: the conversion never replaces anything.
            self.rescued
                .append_value(String::from_utf8_lossy(&self.rescued_json));
        }
        Ok(true)
    }

    /// Appends the top-level fields of `v` (a checked JSON object, as [`Columns::observe`] saw
    /// it) that fit their columns, and puts the others, compacted, in `rescued_json`: names in
    /// [`RESERVED`], and values that do not fit. A null whose field has no column is left out (it
    /// reads back as the same null). A key repeated after its value went in its column rescues
    /// the whole record: a row holds one value per column.
    ///
    /// `fixed` (see [`Chunk::push`]): `Ok(false)` when a value would grow `columns`.
    fn fields(&mut self, columns: &Columns, v: &[u8], fixed: bool) -> Result<bool, String> {
        let open = walk::ws(v, 0);
        let mut step = walk::first_member(v, open);
        let mut hint = 0;
        while let Step::Member(m) = step {
            let reserved = m.is_any(&RESERVED);
            let field = (!reserved).then(|| columns.find(&m, &mut hint)).flatten();
            let (kept, end) = match field {
                Some(at) if self.values[at].len() > self.rows => {
                    if fixed && columns.grow_with(v, &RESERVED) {
                        return Ok(false);
                    }
                    for column in &mut self.values {
                        column.truncate(self.rows);
                    }
                    self.rescued_json.clear();
                    compact_into(&mut self.rescued_json, &v[open..]);
                    return Ok(true);
                }
                Some(at) => {
                    let shape = &columns.fields[at].1;
                    self.values[at].pad_to(self.rows);
                    let (fits, end) = self.values[at].append(shape, v, m.value)?;
                    if !fits {
                        if fixed && shape.grows_with(v, m.value, columns.caps.columns) {
                            if columns.size() < columns.caps.fields {
                                return Ok(false);
                            }
                            over_cap();
                        }
                        self.values[at].truncate(self.rows);
                    }
                    (fits, end)
                }
                None => match walk::head(v, m.value) {
                    (Kind::Null, end) if !reserved => (true, end),
                    _ if fixed && !reserved && Shape::makes_column(v, m.value) => {
                        if columns.room_for(1) {
                            return Ok(false);
                        }
                        over_cap();
                        (false, walk::skip(v, m.value))
                    }
                    _ => (false, walk::skip(v, m.value)),
                },
            };
            if !kept {
                let sep = if self.rescued_json.is_empty() {
                    b'{'
                } else {
                    b','
                };
                self.rescued_json.push(sep);
                compact_into(&mut self.rescued_json, &v[m.start..end]);
            }
            step = walk::next_member(v, end);
        }
        if !self.rescued_json.is_empty() {
            self.rescued_json.push(b'}');
        }
        Ok(true)
    }

    /// The chunk's rows as one record batch of `schema`; the chunk is empty after.
    pub(super) fn take(
        &mut self,
        envelope: Envelope,
        schema: &SchemaRef,
    ) -> Result<RecordBatch, String> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        let coordinates: [ArrayRef; 6] = [
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.key.finish()),
            Arc::new(self.headers.finish()),
        ];
        if envelope == Envelope::Metadata {
            columns.extend(coordinates);
        }
        for column in &mut self.values {
            column.pad_to(self.rows);
            columns.push(column.finish()?);
        }
        columns.push(Arc::new(self.rescued.finish()));
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new_with_options(schema.clone(), columns, &options)
            .map_err(|e| e.to_string())
    }
}
