//! One chunk of a Parquet file's rows: the value's columns ([`Column`]), the coordinates and
//! `_rescued_data` in Arrow builders, joined into a record batch.

use std::sync::Arc;

use super::arrays::Column;
use super::shape::{rescued, Columns, Part, Scratch};
use super::{header_fields, RESERVED};
use crate::batch::StoredRecord;
use crate::config::Envelope;
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
    /// Which of `values` the record being pushed wrote.
    written: Vec<bool>,
    /// The record being pushed's rescued fields, as a JSON object (empty: none).
    rescued_json: Vec<u8>,
    scratch: Scratch,
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
            written: Vec::new(),
            rescued_json: Vec::new(),
            scratch: Scratch::default(),
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
    pub(super) fn push(
        &mut self,
        topic: &str,
        partition: i32,
        r: &StoredRecord<'_>,
        columns: &Columns,
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        self.written.clear();
        self.written.resize(self.values.len(), false);
        self.rescued_json.clear();
        if let Some(v) = value {
            let whole = !columns.split(v, &RESERVED, &mut self.scratch);
            let Scratch { seen, fields } = &mut self.scratch;
            for f in fields.iter().filter(|_| !whole) {
                if let Part::Keep(at) = f.part {
                    self.values[at].append(&columns.fields[at].1, v, f.value, seen)?;
                    self.written[at] = true;
                }
            }
            rescued(v, &self.scratch, whole, &mut self.rescued_json);
            self.bytes += v.len();
        }
        for (column, written) in self.values.iter_mut().zip(&self.written) {
            if !written {
                column.append_null();
            }
        }
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
        Ok(())
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
