//! How a path template's values become parts of object keys every store takes: escaped first
//! (ASCII outside letters, digits, `.`, `_` and `-`, and non-ASCII some store refuses or some
//! reader mangles, percent-encoded), then bounded (a directory at most 255 bytes, a key at most
//! 1,024; a value cut to fit keeps a digest of the whole).
//!
//! Pure.

use super::{Part, Segment};

/// The longest object key every store takes (S3 and Azure Blob: 1,024 bytes).
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest path segment every store takes (file systems: 255 bytes a name).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// The longest topic: its files are named `<topic>+<partition>+<20 digits>.ndjson.gz`, one
/// segment of at most [`MAX_SEGMENT_BYTES`].
pub const MAX_TOPIC_BYTES: usize =
    MAX_SEGMENT_BYTES - "+2147483647+".len() - 20 - ".ndjson.gz".len();
/// The longest `INGEST_DEAD_LETTER_PREFIX`.
pub const MAX_DEAD_LETTER_PREFIX_BYTES: usize = 64;
/// The longest prefix an S3 or Azure storage URL gives every key (`s3://bucket/<prefix>/`).
pub const MAX_STORAGE_PREFIX_BYTES: usize = 128;
/// What a key holds besides the template's directories, at most: the storage URL's prefix,
/// the dead-letter prefix, the topic directory and the file name, with their slashes. The
/// field budget is computed from it (not from this deployment's topic or prefix), so a claim's
/// names follow from its template alone.
pub(super) const KEY_BYTES_BESIDES_DIRS: usize = MAX_STORAGE_PREFIX_BYTES
    + 1
    + MAX_DEAD_LETTER_PREFIX_BYTES
    + 1
    + MAX_TOPIC_BYTES
    + 1
    + 1
    + MAX_SEGMENT_BYTES;
/// A cut value ends with `~` and 16 hex digits of its whole value's SHA-256, so two values cut
/// to the same text keep apart (`~` itself is always percent-encoded in a value).
const CUT_MARK_BYTES: usize = 17;
/// The least room a template may leave a field's value.
const MIN_FIELD_BYTES: usize = 2 * CUT_MARK_BYTES;

/// The most bytes each `{record.<field>}` of a template may take, escaped: its share of what a
/// key leaves the directories, and of what its directory leaves after the directory's name and
/// other parts. `Err` when a template leaves a field too little, or a directory is too long.
pub(super) fn field_bytes(segments: &[Segment]) -> Result<usize, String> {
    let fixed = |s: &Segment| {
        s.name.len()
            + 1
            + s.parts
                .iter()
                .map(|p| match p {
                    Part::Literal(l) => l.len(),
                    Part::Date => "YYYY-MM-DD".len(),
                    Part::Year => 4,
                    Part::Month | Part::Day | Part::Hour => 2,
                    Part::Field(_) => 0,
                })
                .sum::<usize>()
    };
    let fields = |s: &Segment| {
        s.parts
            .iter()
            .filter(|p| matches!(p, Part::Field(_)))
            .count()
    };
    let dirs_fixed: usize = segments.iter().map(|s| fixed(s) + 1).sum();
    let all_fields: usize = segments.iter().map(fields).sum();
    let too_long = || {
        format!(
            "directories of at most {MAX_SEGMENT_BYTES} bytes each and {} in all (keys are at most {MAX_KEY_BYTES} bytes), each {{record.<field>}} left at least {MIN_FIELD_BYTES}",
            MAX_KEY_BYTES - KEY_BYTES_BESIDES_DIRS
        )
    };
    let mut budget = (MAX_KEY_BYTES - KEY_BYTES_BESIDES_DIRS)
        .checked_sub(dirs_fixed)
        .ok_or_else(too_long)?;
    if let Some(share) = budget.checked_div(all_fields) {
        budget = share;
    }
    for s in segments {
        let room = MAX_SEGMENT_BYTES
            .checked_sub(fixed(s))
            .ok_or_else(too_long)?;
        if let Some(share) = room.checked_div(fields(s)) {
            budget = budget.min(share);
        }
    }
    if all_fields > 0 && budget < MIN_FIELD_BYTES {
        return Err(too_long());
    }
    Ok(budget)
}

/// Whether `c` goes into a key as it is: ASCII letters, digits, `.`, `_` and `-`, and
/// non-ASCII that stores take and readers keep (not C1 controls, private use, non-characters,
/// invisible formatting and bidirectional controls, or line and paragraph separators).
fn kept(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    }
    let cp = u32::from(c);
    !matches!(cp,
        0x80..=0x9F
        | 0xAD
        | 0x200B..=0x200F
        | 0x2028..=0x202E
        | 0x2060..=0x206F
        | 0xE000..=0xF8FF
        | 0xFDD0..=0xFDEF
        | 0xFEFF
        | 0xFFF0..=0xFFFF
        | 0xF0000..)
        && cp & 0xFFFE != 0xFFFE
}

/// Appends `c` escaped: as it is when [`kept`]; else `%XX` for each of its UTF-8 bytes. (For
/// non-ASCII that is what DuckDB decodes, and refuses anything else, failing the whole query;
/// Spark decodes each `%XX` as one character, so it reads such a value garbled but reads it.)
fn escape_char(c: char, out: &mut String) {
    use std::fmt::Write;
    if kept(c) {
        out.push(c);
    } else {
        let mut utf8 = [0; 4];
        for b in c.encode_utf8(&mut utf8).bytes() {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Appends `value` escaped ([`kept`] characters as they are, others percent-encoded; a
/// trailing `.` too, which Azure's hierarchical namespace drops) in at most `max` bytes. A value
/// longer than that escaped is cut at a character and ends with `~` and 16 hex digits of its
/// SHA-256, so different values never share a directory; a value that fits reads back as itself.
pub fn escape_into(value: &str, max: usize, out: &mut String) {
    use sha2::Digest;
    use std::fmt::Write;
    let start = out.len();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '.' && chars.peek().is_none() {
            out.push_str("%2E");
        } else {
            escape_char(c, out);
        }
    }
    if out.len() - start <= max {
        return;
    }
    let keep = max.saturating_sub(CUT_MARK_BYTES);
    out.truncate(start);
    for c in value.chars() {
        let before = out.len();
        escape_char(c, out);
        if out.len() - start > keep {
            out.truncate(before);
            break;
        }
    }
    let digest = sha2::Sha256::digest(value.as_bytes());
    out.push('~');
    for b in &digest[..8] {
        let _ = write!(out, "{b:02x}");
    }
}
