//! Encoding settings: the envelope, compression, what happens to invalid records, where dead
//! letters go, and which time picks a file's `dt=`/`hour=` directory.
//!
//! Pure. Invariant: dead letters never land inside the data path readers watch.

use super::defaults;
use super::parse::{positive, ConfigError};
use super::storage::STATE_PREFIX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// Each line is the record value.
    Raw,
    /// Each line is `{topic, partition, offset, timestamp, key, headers, value}`.
    Metadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip { level: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRecordPolicy {
    /// Stop the service; nothing past the last landed file is committed.
    Fail,
    /// Drop the record, log and count it.
    Skip,
    /// Write it (base64) with its error and coordinates under the dead-letter prefix.
    DeadLetter,
}

/// `INGEST_COMPRESSION` (default gzip) and `INGEST_COMPRESSION_LEVEL` (1-9, default 6).
pub(super) fn compression(
    kind: Option<String>,
    level: Option<String>,
) -> Result<Compression, ConfigError> {
    let compression = match kind.as_deref().unwrap_or("gzip") {
        "none" => Compression::None,
        "gzip" => {
            let level: u32 = positive("COMPRESSION_LEVEL", level, defaults::COMPRESSION_LEVEL)?;
            if level > 9 {
                return Err(ConfigError::invalid(
                    "COMPRESSION_LEVEL",
                    &level.to_string(),
                    "a gzip level from 1 (fastest) to 9 (smallest)",
                ));
            }
            Compression::Gzip { level }
        }
        other => {
            return Err(ConfigError::invalid(
                "COMPRESSION",
                other,
                "one of gzip, none",
            ))
        }
    };
    Ok(compression)
}

/// `INGEST_DEAD_LETTER_PREFIX` (default `_dead_letters`): a relative path outside `topic`'s.
pub(super) fn dead_letter_prefix(raw: Option<String>, topic: &str) -> Result<String, ConfigError> {
    let dead_letter_prefix = raw.unwrap_or_else(|| defaults::DEAD_LETTER_PREFIX.into());
    let trimmed = dead_letter_prefix.trim_matches('/');
    let first = trimmed.split('/').next().unwrap_or_default();
    // Readers watch `<topic>/`, and `_ingest/` is the service's own: dead letters go elsewhere.
    if trimmed.is_empty()
        || trimmed.len() > super::layout::MAX_DEAD_LETTER_PREFIX_BYTES
        || first == topic
        || first == STATE_PREFIX
        || trimmed
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(ConfigError::invalid(
            "DEAD_LETTER_PREFIX",
            &dead_letter_prefix,
            format!("a relative path of at most {} bytes outside the data path ({topic}/) and {STATE_PREFIX}/, e.g. _dead_letters", super::layout::MAX_DEAD_LETTER_PREFIX_BYTES),
        ));
    }
    Ok(trimmed.to_string())
}
