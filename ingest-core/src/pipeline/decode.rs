//! Values in a schema registry's wire format, decoded to JSON as they are taken
//! ([`crate::registry`]), so that every later stage (batches, claims and their digests, event
//! time, path templates, NDJSON, Parquet) reads JSON as it does for plain JSON topics.
//!
//! Invariant: a record is buffered decoded, or flawed (`Flaw::Undecodable`, an invalid record),
//! or not at all: one whose schema is not read yet makes its partition start again from the
//! store ([`Loop::start_again`]), and that start reads the schema first, waiting out a registry
//! that is down. Nothing is skipped, and no record is decoded twice differently: a schema id
//! names one schema for ever.

use super::intake::Burst;
use super::Loop;
use crate::batch::{Flaw, RecordRef};
use crate::registry::{Decoded, Registry};

impl Loop {
    /// Decodes `record`'s value and buffers it (see the module's invariant).
    pub(super) fn decoded(
        &mut self,
        registry: &Registry,
        partition: i32,
        record: &RecordRef<'_>,
        burst: &mut Burst,
    ) -> bool {
        let value = match (record.value, record.flaw) {
            (Some(v), None) => v,
            // A tombstone, or a record the source already could not hand over.
            _ => return self.buffer(partition, record, burst),
        };
        // A partition deciding its start drops what it is sent: nothing to decode.
        if !self.takes_records(partition) {
            return false;
        }
        let mut json = std::mem::take(&mut self.decoded_value);
        let rescan = match registry.decode(value, &mut json) {
            Decoded::Json => {
                let decoded = RecordRef {
                    value: Some(&json),
                    ..*record
                };
                self.buffer(partition, &decoded, burst)
            }
            Decoded::Invalid => {
                let flawed = RecordRef {
                    flaw: Some(Flaw::Undecodable),
                    ..*record
                };
                self.buffer(partition, &flawed, burst)
            }
            Decoded::Missing(schema_id) => {
                tracing::info!(
                    partition,
                    offset = record.offset,
                    schema_id,
                    "a record's schema is not read yet: the partition reads it, then starts again from the store"
                );
                metrics::counter!("ingest_schema_waits_total").increment(1);
                self.start_again(partition, record.offset);
                true
            }
        };
        self.decoded_value = json;
        rescan
    }
}
