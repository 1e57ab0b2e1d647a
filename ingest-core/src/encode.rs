//! NDJSON encoding of a batch: one compact JSON value per line, optionally gzip-compressed,
//! plus a dead-letter file for records that are not valid JSON.
//!
//! Pure and CPU-bound: the pipeline calls [`encode`] on a blocking thread. Invariant: every
//! record of the batch ends up in exactly one of: the data file, the dead-letter file, the
//! skipped count, or an [`InvalidRecord`] error that stops the service (policy `fail`).

use std::io::Write;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::de::IgnoredAny;

use crate::batch::{Batch, StoredRecord};
use crate::config::{Compression, Envelope, InvalidRecordPolicy};
use crate::gzip::GzParts;
use crate::json;
use crate::transform::Transform;

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

/// Checks `value` and tells whether it must be compacted to fit on one line.
fn check_json(value: &[u8], max_bytes: usize) -> Result<bool, String> {
    check_size(value, max_bytes)?;
    if let json::Scan::Valid { compact } = json::scan(value) {
        return Ok(compact);
    }
    // Not valid (or deeper than the fast scan goes): serde_json decides and words the error.
    serde_json::from_slice::<IgnoredAny>(value).map_err(|e| e.to_string())?;
    // Raw newlines inside valid JSON can only be insignificant whitespace (strings escape them).
    let padded = value.first().is_some_and(u8::is_ascii_whitespace)
        || value.last().is_some_and(u8::is_ascii_whitespace);
    Ok(padded || memchr::memchr2(b'\n', b'\r', value).is_some())
}

fn check_size(value: &[u8], max_bytes: usize) -> Result<(), String> {
    if value.len() > max_bytes {
        return Err(format!(
            "{} bytes, above INGEST_MAX_RECORD_BYTES={max_bytes}",
            value.len()
        ));
    }
    Ok(())
}

/// Appends `value` (valid JSON) to `out` without insignificant whitespace. Bytes inside strings,
/// numbers and literals are copied verbatim, so nothing is re-interpreted or re-formatted.
pub fn compact_into(out: &mut Vec<u8>, value: &[u8]) {
    let (mut in_string, mut escaped) = (false, false);
    for &b in value {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = b == b'"';
            out.push(b);
        }
    }
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes `"name":"<utf-8>"`, or `"name":null,"name_base64":"..."` for bytes that are not UTF-8.
fn push_bytes_field(out: &mut Vec<u8>, name: &str, bytes: Option<&[u8]>) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    match bytes.map(std::str::from_utf8) {
        None => out.extend_from_slice(b"null"),
        Some(Ok(s)) => push_json_str(out, s),
        Some(Err(_)) => {
            out.extend_from_slice(b"null,\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"_base64\":\"");
            out.extend_from_slice(B64.encode(bytes.unwrap_or_default()).as_bytes());
            out.push(b'"');
        }
    }
}

fn push_coordinates(out: &mut Vec<u8>, topic: &str, partition: i32, r: &StoredRecord<'_>) {
    out.extend_from_slice(b"{\"topic\":");
    push_json_str(out, topic);
    let ts = r
        .timestamp_ms()
        .map_or("null".to_string(), |t| t.to_string());
    let _ = write!(
        out,
        ",\"partition\":{partition},\"offset\":{},\"timestamp\":{ts}",
        r.offset()
    );
}

/// One line of the `metadata` envelope, without the trailing newline.
fn push_metadata_line(
    out: &mut Vec<u8>,
    topic: &str,
    partition: i32,
    r: &StoredRecord<'_>,
    value: Option<&[u8]>,
    compact: bool,
) {
    push_coordinates(out, topic, partition, r);
    out.push(b',');
    push_bytes_field(out, "key", r.key());
    out.extend_from_slice(b",\"headers\":[");
    for (i, (k, v)) in r.headers().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        push_json_str(out, k);
        out.push(b',');
        push_bytes_field(out, "value", v);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"value\":");
    match value {
        None => out.extend_from_slice(b"null"),
        Some(v) if compact => compact_into(out, v),
        Some(v) => out.extend_from_slice(v),
    }
    out.push(b'}');
}

fn push_dead_letter_line(
    out: &mut Vec<u8>,
    topic: &str,
    partition: i32,
    r: &StoredRecord<'_>,
    error: &str,
) {
    push_coordinates(out, topic, partition, r);
    out.extend_from_slice(b",\"error\":");
    push_json_str(out, error);
    for (name, bytes) in [("key_base64", r.key()), ("value_base64", r.value())] {
        let _ = write!(out, ",\"{name}\":");
        match bytes {
            Some(b) => {
                out.push(b'"');
                out.extend_from_slice(B64.encode(b).as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b"}\n");
}

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
    if spare.len() < std::thread::available_parallelism().map_or(2, usize::from) {
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
    /// Dead-letter lines, uncompressed until [`Encoder::finish`] (there are few).
    dead: Vec<u8>,
    records: usize,
    dead_lettered: usize,
    skipped: usize,
    filtered: usize,
    uncompressed_bytes: usize,
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
            dead: Vec::new(),
            records: 0,
            dead_lettered: 0,
            skipped: 0,
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
        out + self.dead.capacity()
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
                (Some(v), None, _) => (check_json(v, opts.max_record_bytes), Some(v)),
                (None, _, Envelope::Metadata) => (Ok(false), None),
                (None, _, Envelope::Raw) => (
                    Err("the record has no value (a tombstone)".to_string()),
                    None,
                ),
            };
            match checked {
                Ok(compact) => {
                    match opts.envelope {
                        Envelope::Metadata => {
                            push_metadata_line(out, &opts.topic, partition, &r, value, compact)
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
                Err(reason) => match opts.invalid {
                    InvalidRecordPolicy::Fail => {
                        return Err(InvalidRecord {
                            topic: opts.topic.clone(),
                            partition,
                            offset: r.offset(),
                            reason,
                        })
                    }
                    InvalidRecordPolicy::Skip => {
                        tracing::warn!(
                            topic = %opts.topic, partition, offset = r.offset(), %reason,
                            "skipping a record that is not valid JSON (INGEST_INVALID_RECORD_POLICY=skip)"
                        );
                        self.skipped += 1;
                    }
                    InvalidRecordPolicy::DeadLetter => {
                        push_dead_letter_line(&mut self.dead, &opts.topic, partition, &r, &reason);
                        self.dead_lettered += 1;
                    }
                },
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
        let dead_letters = (self.dead_lettered > 0).then(|| match compression {
            Compression::None => self.dead,
            Compression::Gzip { level } => {
                let mut gz = GzParts::new(level, self.dead.len() / 2);
                let mut part = gz.part();
                part.write(&self.dead);
                part.end(true);
                gz.finish()
            }
        });
        Encoded {
            data,
            dead_letters,
            records: self.records,
            dead_lettered: self.dead_lettered,
            skipped: self.skipped,
            filtered: self.filtered,
            uncompressed_bytes: self.uncompressed_bytes,
        }
    }
}

/// Encodes `batch` (records of `partition`) in one call. Fails only under policy `fail`.
pub fn encode(
    batch: &Batch,
    partition: i32,
    opts: &EncodeOptions,
) -> Result<Encoded, InvalidRecord> {
    let mut encoder = Encoder::new(opts.compression, batch.bytes() + batch.len() * 8);
    encoder.encode(batch.records(), partition, opts, true)?;
    Ok(encoder.finish(opts.compression))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::Instant;

    use super::*;
    use crate::batch::RecordRef;

    fn opts(
        envelope: Envelope,
        compression: Compression,
        invalid: InvalidRecordPolicy,
    ) -> EncodeOptions {
        EncodeOptions {
            topic: "t".into(),
            envelope,
            compression,
            invalid,
            max_record_bytes: 1000,
            transform: None,
        }
    }

    fn batch(values: &[Option<&[u8]>]) -> Batch {
        let mut b = Batch::new(Instant::now(), 0);
        for (i, v) in values.iter().enumerate() {
            b.push(&RecordRef {
                offset: 100 + i as i64,
                timestamp_ms: Some(1000 + i as i64),
                key: Some(b"k\xff"),
                value: *v,
                headers: &[
                    ("trace", Some(b"abc")),
                    ("bin", Some(b"\xfe")),
                    ("none", None),
                ],
            });
        }
        b
    }

    fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
        std::str::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn raw_envelope_keeps_compact_input_verbatim_and_compacts_pretty_input() {
        let pretty = b"{\n  \"a\": [1, 2.50],\n  \"s\": \"x  y\\n\\\" }\"\n}\n";
        let spaced = br#"{"a": 1e3}"#;
        let b = batch(&[Some(spaced), Some(pretty)]);
        let out = encode(
            &b,
            0,
            &opts(Envelope::Raw, Compression::None, InvalidRecordPolicy::Fail),
        )
        .unwrap();
        let text = String::from_utf8(out.data).unwrap();
        assert_eq!(
            text, "{\"a\": 1e3}\n{\"a\":[1,2.50],\"s\":\"x  y\\n\\\" }\"}\n",
            "number text and string contents must be preserved byte for byte"
        );
        assert_eq!(out.records, 2);
        assert_eq!(out.uncompressed_bytes, text.len());
    }

    #[test]
    fn metadata_envelope_carries_coordinates_key_and_headers() {
        let b = batch(&[Some(b" [1, {\"b\" : null}] "), None]);
        let out = encode(
            &b,
            7,
            &opts(
                Envelope::Metadata,
                Compression::None,
                InvalidRecordPolicy::Fail,
            ),
        )
        .unwrap();
        let got = lines(&out.data);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            serde_json::json!({
                "topic": "t", "partition": 7, "offset": 100, "timestamp": 1000,
                "key": null, "key_base64": "a/8=",
                "headers": [
                    {"key": "trace", "value": "abc"},
                    {"key": "bin", "value": null, "value_base64": "/g=="},
                    {"key": "none", "value": null}
                ],
                "value": [1, {"b": null}]
            })
        );
        assert_eq!(
            got[1]["value"],
            serde_json::Value::Null,
            "a tombstone is a null value"
        );
        assert!(
            !String::from_utf8(out.data).unwrap().contains(" "),
            "compacted onto one line"
        );
    }

    #[test]
    fn invalid_records_follow_the_policy() {
        let values: [Option<&[u8]>; 4] = [Some(b"{}"), Some(b"{not json"), None, Some(b"[1] [2]")];
        let b = batch(&values);

        let err = encode(
            &b,
            1,
            &opts(Envelope::Raw, Compression::None, InvalidRecordPolicy::Fail),
        )
        .unwrap_err();
        assert_eq!((err.partition, err.offset), (1, 101));
        assert!(
            err.to_string().contains("INGEST_INVALID_RECORD_POLICY"),
            "{err}"
        );

        let skip = encode(
            &b,
            1,
            &opts(Envelope::Raw, Compression::None, InvalidRecordPolicy::Skip),
        )
        .unwrap();
        assert_eq!((skip.records, skip.skipped, skip.dead_lettered), (1, 3, 0));
        assert_eq!(skip.data, b"{}\n");
        assert!(skip.dead_letters.is_none());

        let dl = encode(
            &b,
            1,
            &opts(
                Envelope::Raw,
                Compression::None,
                InvalidRecordPolicy::DeadLetter,
            ),
        )
        .unwrap();
        assert_eq!((dl.records, dl.skipped, dl.dead_lettered), (1, 0, 3));
        let dead = lines(&dl.dead_letters.unwrap());
        assert_eq!(
            dead.iter()
                .map(|d| d["offset"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![101, 102, 103]
        );
        assert_eq!(dead[0]["value_base64"], "e25vdCBqc29u");
        assert_eq!(dead[0]["key_base64"], "a/8=");
        assert_eq!(dead[0]["partition"], 1);
        assert_eq!(dead[1]["value_base64"], serde_json::Value::Null);
        assert!(dead[1]["error"].as_str().unwrap().contains("tombstone"));
        assert!(
            dead[2]["error"].as_str().unwrap().contains("trailing"),
            "{}",
            dead[2]["error"]
        );
    }

    #[test]
    fn oversized_records_are_invalid() {
        let big = vec![b'1'; 1001];
        let b = batch(&[Some(&big)]);
        let out = encode(
            &b,
            0,
            &opts(
                Envelope::Raw,
                Compression::None,
                InvalidRecordPolicy::DeadLetter,
            ),
        )
        .unwrap();
        assert_eq!(out.dead_lettered, 1);
        let dead = lines(&out.dead_letters.unwrap());
        assert!(dead[0]["error"]
            .as_str()
            .unwrap()
            .contains("INGEST_MAX_RECORD_BYTES"));
    }

    #[test]
    fn gzip_output_decompresses_to_the_same_lines_with_a_plain_header() {
        let b = batch(&[Some(b"{\"a\":1}"), Some(b"2")]);
        let plain = encode(
            &b,
            0,
            &opts(Envelope::Raw, Compression::None, InvalidRecordPolicy::Fail),
        )
        .unwrap();
        let gz = encode(
            &b,
            0,
            &opts(
                Envelope::Raw,
                Compression::Gzip { level: 6 },
                InvalidRecordPolicy::Fail,
            ),
        )
        .unwrap();
        let mut decoder = flate2::read::GzDecoder::new(&gz.data[..]);
        let mut text = Vec::new();
        decoder.read_to_end(&mut text).unwrap();
        assert_eq!(text, plain.data);
        let header = decoder.header().unwrap();
        assert!(header.comment().is_none() && header.filename().is_none());
        assert_eq!(
            gz.data[3], 0,
            "no optional header fields (FLG = 0), as strict readers expect"
        );
    }

    #[test]
    fn compaction_is_whitespace_only() {
        let mut out = Vec::new();
        compact_into(
            &mut out,
            b" { \"a b\" :\t\"\\\\\" , \"c\" : [ true , -0.0e+1 ] } ",
        );
        assert_eq!(out, br#"{"a b":"\\","c":[true,-0.0e+1]}"#);
    }
}
