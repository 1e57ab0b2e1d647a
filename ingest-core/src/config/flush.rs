//! Flush limits: `INGEST_FLUSH_MAX_RECORDS`, `INGEST_FLUSH_MAX_BYTES` and
//! `INGEST_FLUSH_MAX_AGE_MS`. The rules that apply them to a batch are `batch::trigger`'s.

use std::time::Duration;

use super::defaults;
use super::parse::{positive, ConfigError};

/// When a batch is flushed: at `max_records` records, at `max_bytes` uncompressed payload
/// bytes, or `max_age` after its first record arrived, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

/// `INGEST_FLUSH_*`, and `INGEST_MAX_BUFFER_BYTES`, which a batch must fit in. Returns the
/// policy and the buffer cap.
pub(super) fn limits(
    max_records: Option<String>,
    max_bytes: Option<String>,
    max_age_ms: Option<String>,
    max_buffer_bytes: Option<String>,
) -> Result<(FlushPolicy, usize), ConfigError> {
    let flush = FlushPolicy {
        max_records: positive(
            "FLUSH_MAX_RECORDS",
            max_records,
            defaults::FLUSH_MAX_RECORDS,
        )?,
        max_bytes: positive("FLUSH_MAX_BYTES", max_bytes, defaults::FLUSH_MAX_BYTES)?,
        max_age: Duration::from_millis(positive(
            "FLUSH_MAX_AGE_MS",
            max_age_ms,
            defaults::FLUSH_MAX_AGE_MS,
        )?),
    };
    let max_buffer_bytes = positive(
        "MAX_BUFFER_BYTES",
        max_buffer_bytes,
        defaults::MAX_BUFFER_BYTES,
    )?;
    if flush.max_bytes > max_buffer_bytes {
        return Err(ConfigError::invalid(
            "FLUSH_MAX_BYTES",
            &flush.max_bytes.to_string(),
            format!("at most INGEST_MAX_BUFFER_BYTES ({max_buffer_bytes}): a batch must fit in the buffer cap"),
        ));
    }
    Ok((flush, max_buffer_bytes))
}

#[cfg(test)]
mod tests;
