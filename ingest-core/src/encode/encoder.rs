//! The encoder of one file: a batch's records into NDJSON lines (optionally gzip-compressed,
//! in parts) plus a dead-letter file for records that are not valid JSON.
//!
//! Pure and CPU-bound: the flush runs it on a blocking thread. Invariant: every record of the
//! batch ends up in exactly one of: the data file, the dead-letter file, the skipped count, the
//! filtered count (a transform dropped it), or an [`InvalidRecord`] error that stops the service
//! (policy `fail`); and encoding in several calls writes the same file as one call.

use super::gzip::GzParts;
use super::ndjson::{
    check_json, check_size, compact_into, push_dead_letter_line, push_metadata_line,
};
use super::transform::Transform;
use crate::batch::{Attachment, Batch, Flaw, StoredRecord};
use crate::config::{Compression, Envelope, Format, InvalidRecordPolicy};

/// How records are written, fixed per service.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    pub topic: String,
    pub envelope: Envelope,
    pub compression: Compression,
    pub invalid: InvalidRecordPolicy,
    /// Values larger than this are invalid records (`INGEST_MAX_RECORD_BYTES`).
    pub max_record_bytes: usize,
    /// Per-topic transform of valid record values (`ingest::Service::transform`).
    pub transform: Option<Transform>,
    /// NDJSON or Parquet data files.
    pub format: Format,
    /// The schema registry values were decoded through (`INGEST_VALUE_FORMAT`): it says why
    /// a value did not decode.
    pub registry: Option<std::sync::Arc<crate::registry::Registry>>,
    /// `INGEST_FORMAT=delta`: the table's partition columns. A record field Delta would refuse
    /// as a column (a partition column's name, a name differing from another only in case, one
    /// with a character Delta refuses) is kept in `_rescued_data` instead.
    pub table_columns: Option<std::sync::Arc<[String]>>,
}

impl EncodeOptions {
    /// Why the source or the registry could not hand record `r` over as JSON (it has a flaw).
    pub(super) fn flaw_reason(&self, partition: i32, r: &StoredRecord<'_>) -> String {
        match (r.flaw(), &self.registry) {
            (Some(Flaw::Undecodable), Some(registry)) => registry.reason(partition, r.offset()),
            (flaw, _) => flaw.map_or("", Flaw::reason).to_string(),
        }
    }
}

/// The encoded files of one batch.
#[derive(Debug)]
pub struct Encoded {
    pub data: Vec<u8>,
    /// NDJSON (compressed like the data) of the records that went to the dead-letter path.
    pub dead_letters: Option<Vec<u8>>,
    /// Lines in `data`.
    pub records: usize,
    pub dead_lettered: usize,
    pub skipped: usize,
    /// Records the transform dropped.
    pub filtered: usize,
    /// Bytes of NDJSON before compression.
    pub uncompressed_bytes: usize,
    /// A Parquet file's columns (what the topic's running schema must hold before it lands).
    pub columns: Option<super::parquet::shape::Columns>,
}

impl Encoded {
    /// Memory the encoded files hold.
    pub fn held_bytes(&self) -> usize {
        self.data.capacity() + self.dead_letters.as_ref().map_or(0, Vec::capacity)
    }
}

/// A record that is not valid JSON under policy `fail`: the service stops, nothing is committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "record {topic}/{partition}@{offset} is not valid JSON ({reason}); set \
     INGEST_INVALID_RECORD_POLICY=dead-letter (or skip) to land the rest of the topic past it"
)]
pub struct InvalidRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
}

/// Why a record without a value is invalid under the raw envelope (a line needs one).
pub(super) const TOMBSTONE: &str = "the record has no value (a tombstone)";

/// Text between compressor calls: lines are compressed in chunks rather than one by one.
const CHUNK: usize = 256 * 1024;

/// Text buffers kept for reuse, one per encoder running at once at most.
static SPARE_TEXT: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

fn take_text_buffer() -> Vec<u8> {
    let spare = SPARE_TEXT.lock().unwrap_or_else(|e| e.into_inner()).pop();
    spare.unwrap_or_else(|| Vec::with_capacity(CHUNK + 4096))
}

fn give_back_text_buffer(mut buffer: Vec<u8>) {
    let mut spare = SPARE_TEXT.lock().unwrap_or_else(|e| e.into_inner());
    if spare.len() < crate::cores::available() {
        buffer.clear();
        spare.push(buffer);
    }
}

/// Where the lines of a file go.
enum Output {
    Plain(Vec<u8>),
    Gzip(GzParts),
}

/// A file being encoded, possibly in several calls (each on any thread), each taking the next
/// records of the batch. The result is the same as encoding them all in one call.
pub struct Encoder {
    out: Output,
    rejects: Rejects,
    records: usize,
    filtered: usize,
    uncompressed_bytes: usize,
}

/// Invalid records, handled as `INGEST_INVALID_RECORD_POLICY` says (by every format's encoder).
#[derive(Default)]
pub(super) struct Rejects {
    /// Dead-letter lines, uncompressed until the file is finished (there are few).
    dead: Vec<u8>,
    pub(super) dead_lettered: usize,
    pub(super) skipped: usize,
}

impl Rejects {
    /// Handles invalid record `r` of `partition`: an error under `fail`, else skipped (logged)
    /// or kept as a dead-letter line.
    pub(super) fn reject(
        &mut self,
        opts: &EncodeOptions,
        partition: i32,
        r: &StoredRecord<'_>,
        reason: String,
    ) -> Result<(), InvalidRecord> {
        match opts.invalid {
            InvalidRecordPolicy::Fail => Err(InvalidRecord {
                topic: opts.topic.clone(),
                partition,
                offset: r.offset(),
                reason,
            }),
            InvalidRecordPolicy::Skip => {
                tracing::warn!(
                    topic = %opts.topic, partition, offset = r.offset(), %reason,
                    "skipping an invalid record (INGEST_INVALID_RECORD_POLICY=skip)"
                );
                self.skipped += 1;
                Ok(())
            }
            InvalidRecordPolicy::DeadLetter => {
                push_dead_letter_line(&mut self.dead, &opts.topic, partition, r, &reason);
                self.dead_lettered += 1;
                Ok(())
            }
        }
    }

    /// The dead-letter file, compressed like NDJSON data, if there is one.
    pub(super) fn dead_letters(self, compression: Compression) -> Option<Vec<u8>> {
        (self.dead_lettered > 0).then(|| compress(self.dead, compression))
    }
}

impl Encoder {
    /// `capacity`: a guess of the uncompressed size.
    pub fn new(compression: Compression, capacity: usize) -> Encoder {
        let out = match compression {
            Compression::None => Output::Plain(Vec::with_capacity(capacity)),
            // Text compresses to well under a fifth; the output grows if not.
            Compression::Gzip { level } => Output::Gzip(GzParts::new(level, capacity / 5)),
        };
        Encoder {
            out,
            rejects: Rejects::default(),
            records: 0,
            filtered: 0,
            uncompressed_bytes: 0,
        }
    }

    /// Memory held: the output so far (and the compression window).
    pub fn held_bytes(&self) -> usize {
        let out = match &self.out {
            Output::Plain(v) => v.capacity(),
            Output::Gzip(gz) => gz.held_bytes(),
        };
        out + self.rejects.dead.capacity()
    }

    /// Encodes the next `records` of the batch (records of `partition`); `last` when no more
    /// follow. Fails only under policy `fail`, leaving the encoder unusable.
    pub fn encode<'a>(
        &mut self,
        records: impl IntoIterator<Item = StoredRecord<'a>>,
        partition: i32,
        opts: &EncodeOptions,
        last: bool,
    ) -> Result<(), InvalidRecord> {
        match &mut self.out {
            Output::Plain(out) => {
                let mut out = std::mem::take(out);
                let result = self.lines(records, partition, opts, &mut out, |_| {});
                self.uncompressed_bytes = out.len();
                self.out = Output::Plain(out);
                result
            }
            Output::Gzip(gz) => {
                let mut gz = std::mem::replace(gz, GzParts::new(0, 0));
                let mut part = gz.part();
                let mut pending = take_text_buffer();
                let mut total = 0;
                let result = self.lines(records, partition, opts, &mut pending, |pending| {
                    if pending.len() >= CHUNK {
                        total += pending.len();
                        part.write(pending);
                        pending.clear();
                    }
                });
                total += pending.len();
                part.write(&pending);
                part.end(last);
                give_back_text_buffer(pending);
                self.uncompressed_bytes += total;
                self.out = Output::Gzip(gz);
                result
            }
        }
    }

    /// Appends the lines of `records` to `out`, calling `written` after each.
    fn lines<'a>(
        &mut self,
        records: impl IntoIterator<Item = StoredRecord<'a>>,
        partition: i32,
        opts: &EncodeOptions,
        out: &mut Vec<u8>,
        mut written: impl FnMut(&mut Vec<u8>),
    ) -> Result<(), InvalidRecord> {
        for r in records {
            // A transform parses the value anyway, so it is also the validity check (one parse).
            let line;
            let (checked, value) = match (r.value(), &opts.transform, opts.envelope) {
                _ if r.flaw().is_some() => (Err(opts.flaw_reason(partition, &r)), r.value()),
                (Some(v), Some(t), _) => {
                    match check_size(v, opts.max_record_bytes).and_then(|()| t.apply(v)) {
                        Ok(None) => {
                            self.filtered += 1;
                            continue;
                        }
                        Ok(Some(transformed)) => {
                            line = transformed;
                            (Ok(false), Some(&line[..]))
                        }
                        Err(reason) => (Err(reason), Some(v)),
                    }
                }
                // Decoded through the registry: compact JSON by construction, already bounded.
                (Some(v), None, _)
                    if opts
                        .registry
                        .as_ref()
                        .is_some_and(|r| r.writes_checked_json()) =>
                {
                    (Ok(false), Some(v))
                }
                (Some(v), None, _) => (check_json(v, opts.max_record_bytes), Some(v)),
                (None, _, Envelope::Metadata) => (Ok(false), None),
                (None, _, Envelope::Raw) => (Err(TOMBSTONE.to_string()), None),
            };
            match checked {
                Ok(compact) => {
                    match opts.envelope {
                        Envelope::Metadata => {
                            let key_json = opts.registry.as_ref().is_some_and(|r| r.decodes_keys());
                            push_metadata_line(
                                out,
                                &opts.topic,
                                partition,
                                &r,
                                value,
                                compact,
                                key_json,
                            )
                        }
                        Envelope::Raw => {
                            let v = value.unwrap_or_default();
                            if compact {
                                compact_into(out, v);
                            } else {
                                out.extend_from_slice(v);
                            }
                        }
                    }
                    out.push(b'\n');
                    written(out);
                    self.records += 1;
                }
                Err(reason) => self.rejects.reject(opts, partition, &r, reason)?,
            }
        }
        Ok(())
    }

    /// The encoded files. The last [`Encoder::encode`] call must have had `last` set.
    pub fn finish(self, compression: Compression) -> Encoded {
        let data = match self.out {
            Output::Plain(v) => v,
            Output::Gzip(gz) => gz.finish(),
        };
        let (dead_lettered, skipped) = (self.rejects.dead_lettered, self.rejects.skipped);
        let dead_letters = self.rejects.dead_letters(compression);
        Encoded {
            data,
            dead_letters,
            records: self.records,
            dead_lettered,
            skipped,
            filtered: self.filtered,
            uncompressed_bytes: self.uncompressed_bytes,
            columns: None,
        }
    }
}

/// Dead-letter lines as their file holds them.
fn compress(lines: Vec<u8>, compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => lines,
        Compression::Gzip { level } => {
            let mut gz = GzParts::new(level, lines.len() / 2);
            let mut part = gz.part();
            part.write(&lines);
            part.end(true);
            gz.finish()
        }
    }
}

/// Encodes `batch` (records of `partition`) in one call. Fails only under policy `fail`.
pub fn encode<A: Attachment>(
    batch: &Batch<A>,
    partition: i32,
    opts: &EncodeOptions,
) -> Result<Encoded, InvalidRecord> {
    let mut encoder = Encoder::new(opts.compression, batch.bytes() + batch.len() * 8);
    encoder.encode(batch.records(), partition, opts, true)?;
    Ok(encoder.finish(opts.compression))
}

#[cfg(test)]
mod tests;
