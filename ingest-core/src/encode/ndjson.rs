//! The NDJSON line formats: the JSON check, compaction onto one line, the `metadata` envelope
//! and dead-letter lines.
//!
//! Pure. Invariants: a value is written byte for byte (only insignificant whitespace is removed,
//! so numbers and strings are never re-formatted); every line is one JSON value and ends with a
//! newline; a key, value or header that is not UTF-8 is kept, base64-encoded, next to a `null`.

use std::io::Write;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::de::IgnoredAny;

use super::json;
use crate::batch::StoredRecord;

/// Checks `value` and tells whether it must be compacted to fit on one line.
pub(super) fn check_json(value: &[u8], max_bytes: usize) -> Result<bool, String> {
    check_size(value, max_bytes)?;
    if let json::Scan::Valid { compact } = json::scan(value) {
        return Ok(compact);
    }
    // Not valid (or deeper than the fast scan goes): serde_json decides and words a grammar
    // error; what its grammar allows but readers refuse is checked after.
    serde_json::from_slice::<IgnoredAny>(value).map_err(|e| e.to_string())?;
    json::strict(value)?;
    // Raw newlines inside valid JSON can only be insignificant whitespace (strings escape them).
    let padded = value.first().is_some_and(u8::is_ascii_whitespace)
        || value.last().is_some_and(u8::is_ascii_whitespace);
    Ok(padded || memchr::memchr2(b'\n', b'\r', value).is_some())
}

pub(super) fn check_size(value: &[u8], max_bytes: usize) -> Result<(), String> {
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

/// One line of the `metadata` envelope, without the trailing newline. `key_json`: the key was
/// decoded through the schema registry, compact JSON written as it is.
pub(super) fn push_metadata_line(
    out: &mut Vec<u8>,
    topic: &str,
    partition: i32,
    r: &StoredRecord<'_>,
    value: Option<&[u8]>,
    compact: bool,
    key_json: bool,
) {
    push_coordinates(out, topic, partition, r);
    out.push(b',');
    match r.key() {
        Some(key) if key_json => {
            out.extend_from_slice(b"\"key\":");
            out.extend_from_slice(key);
        }
        key => push_bytes_field(out, "key", key),
    }
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

pub(super) fn push_dead_letter_line(
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
