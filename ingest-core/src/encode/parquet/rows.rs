//! One chunk of a Parquet file's rows: the value columns as JSON rows for arrow-json's strict
//! decoder, the coordinates and `_rescued_data` in Arrow builders, joined into a record batch.

use std::sync::Arc;

use super::shape::{Columns, Scratch};
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
    json: Vec<u8>,
    /// The record being pushed's rescued fields, as a JSON object (empty: none).
    rescued_json: Vec<u8>,
    scratch: Scratch,
    pub(super) rows: usize,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    key: BinaryBuilder,
    headers: ListBuilder<StructBuilder>,
    rescued: StringBuilder,
}

impl Chunk {
    pub(super) fn new() -> Chunk {
        Chunk {
            json: Vec::new(),
            rescued_json: Vec::new(),
            scratch: Scratch::default(),
            rows: 0,
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            key: BinaryBuilder::new(),
            headers: ListBuilder::new(StructBuilder::from_fields(header_fields(), 0)),
            rescued: StringBuilder::new(),
        }
    }

    /// Adds one record's row: its value's fields that fit `columns` (none for a tombstone),
    /// the rest in `_rescued_data`, its coordinates.
    pub(super) fn push(
        &mut self,
        topic: &str,
        partition: i32,
        r: &StoredRecord<'_>,
        columns: &Columns,
        value: Option<&[u8]>,
    ) {
        match value {
            Some(v) => columns.write_row(
                v,
                &RESERVED,
                &mut self.scratch,
                &mut self.json,
                &mut self.rescued_json,
            ),
            None => {
                self.json.extend_from_slice(b"{}");
                self.rescued_json.clear();
            }
        }
        self.json.push(b'\n');
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
    }

    /// The chunk's rows as one record batch of `schema`; the chunk is empty after.
    pub(super) fn take(
        &mut self,
        envelope: Envelope,
        schema: &SchemaRef,
        values: &SchemaRef,
    ) -> Result<RecordBatch, String> {
        let mut decoder = arrow_json::ReaderBuilder::new(values.clone())
            .with_batch_size(self.rows.max(1))
            .with_strict_mode(true)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let mut at = 0;
        while at < self.json.len() {
            let used = decoder
                .decode(&self.json[at..])
                .map_err(|e| e.to_string())?;
            if used == 0 {
                break;
            }
            at += used;
        }
        let decoded = decoder
            .flush()
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| RecordBatch::new_empty(values.clone()));
        if decoded.num_rows() != self.rows {
            return Err(format!(
                "{} rows decoded of {} (internal)",
                decoded.num_rows(),
                self.rows
            ));
        }
        let coordinates: [ArrayRef; 6] = [
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.key.finish()),
            Arc::new(self.headers.finish()),
        ];
        let mut columns: Vec<ArrayRef> = Vec::new();
        if envelope == Envelope::Metadata {
            columns.extend(coordinates);
        }
        columns.extend(decoded.columns().iter().cloned());
        columns.push(Arc::new(self.rescued.finish()));
        self.json.clear();
        self.rows = 0;
        let options =
            arrow_array::RecordBatchOptions::new().with_row_count(Some(decoded.num_rows()));
        RecordBatch::try_new_with_options(schema.clone(), columns, &options)
            .map_err(|e| e.to_string())
    }
}
