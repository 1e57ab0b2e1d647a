//! The file format: `INGEST_FORMAT=ndjson|parquet|delta` and the Parquet and Delta settings.
//!
//! Pure: parsing only.

use std::time::Duration;

use super::parse::{choice, positive, ConfigError};

/// What data files are written as. Dead letters are NDJSON either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Newline-delimited JSON, compressed as `INGEST_COMPRESSION` says.
    Ndjson,
    Parquet(ParquetSettings),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetSettings {
    pub compression: ParquetCompression,
    /// A row group is closed once it holds about this much (`INGEST_PARQUET_ROW_GROUP_BYTES`).
    pub row_group_bytes: usize,
    /// The most top-level columns a topic's schema takes (`INGEST_PARQUET_MAX_COLUMNS`).
    pub max_columns: usize,
    /// The most fields, columns and nested fields, it takes (`INGEST_PARQUET_MAX_FIELDS`).
    pub max_fields: usize,
}

/// `INGEST_PARQUET_COMPRESSION` (default zstd) and `INGEST_PARQUET_COMPRESSION_LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCompression {
    Zstd { level: i32 },
    Snappy,
    Gzip { level: u32 },
    None,
}

/// zstd's level when none is set: about gzip -6's ratio at a fraction of its CPU.
pub const ZSTD_LEVEL: i32 = 3;
/// gzip's level when none is set (NDJSON's default too).
pub const GZIP_LEVEL: u32 = super::defaults::COMPRESSION_LEVEL;

/// The codecs by name, at their default levels.
const CODECS: [(&str, ParquetCompression); 4] = [
    ("zstd", ParquetCompression::Zstd { level: ZSTD_LEVEL }),
    ("snappy", ParquetCompression::Snappy),
    ("gzip", ParquetCompression::Gzip { level: GZIP_LEVEL }),
    ("none", ParquetCompression::None),
];

impl ParquetCompression {
    /// The codec's name, as `INGEST_PARQUET_COMPRESSION` and claims spell it.
    pub fn name(self) -> &'static str {
        match self {
            ParquetCompression::Zstd { .. } => "zstd",
            ParquetCompression::Snappy => "snappy",
            ParquetCompression::Gzip { .. } => "gzip",
            ParquetCompression::None => "none",
        }
    }

    /// The codec's level, for codecs that have one.
    pub fn level(self) -> Option<i64> {
        match self {
            ParquetCompression::Zstd { level } => Some(i64::from(level)),
            ParquetCompression::Gzip { level } => Some(i64::from(level)),
            _ => None,
        }
    }

    /// This codec at `level` (codecs without levels ignore it); `Err` names the range when the
    /// level is outside it.
    fn at_level(self, level: i64) -> Result<ParquetCompression, &'static str> {
        Ok(match self {
            ParquetCompression::Zstd { .. } => ParquetCompression::Zstd {
                level: i32::try_from(level)
                    .ok()
                    .filter(|l| (1..=22).contains(l))
                    .ok_or("a zstd level from 1 to 22")?,
            },
            ParquetCompression::Gzip { .. } => ParquetCompression::Gzip {
                level: u32::try_from(level)
                    .ok()
                    .filter(|l| (1..=9).contains(l))
                    .ok_or("a gzip level from 1 to 9")?,
            },
            other => other,
        })
    }

    /// The codec `name` names at `level` (its default level when `None` or out of range), as
    /// a claim records it; `None` for a name this release does not know.
    pub fn named(name: &str, level: Option<i64>) -> Option<ParquetCompression> {
        let codec = CODECS.iter().find(|(n, _)| *n == name)?.1;
        Some(level.and_then(|l| codec.at_level(l).ok()).unwrap_or(codec))
    }
}

/// Row groups of 64 MiB: one per file at the default batch size (64 MiB of JSON is far less
/// as columns), large enough for column statistics to skip well.
pub const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;
/// Top-level columns a schema takes at most, when none is set: more than real topics have.
pub const MAX_COLUMNS: usize = 1_000;
/// Fields in all a schema takes at most, when none is set.
pub const MAX_FIELDS: usize = 10_000;

/// `INGEST_FORMAT=delta`: the Parquet files of a topic added to a Delta table at
/// `<root>/<topic>/` ([`crate::table`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaSettings {
    /// Files landed meanwhile go into one commit this often (`INGEST_DELTA_COMMIT_INTERVAL_MS`).
    pub commit_interval: Duration,
    /// A checkpoint every this many commits (`INGEST_DELTA_CHECKPOINT_INTERVAL`).
    pub checkpoint_interval: u64,
}

/// Commit interval when none is set.
pub const DELTA_COMMIT_INTERVAL_MS: u64 = 10_000;
/// Commits between checkpoints when none is set (Delta's own default).
pub const DELTA_CHECKPOINT_INTERVAL: u64 = 100;

/// `INGEST_FORMAT=delta`'s settings; `None` for other formats (whose Delta settings are refused).
pub(super) fn delta(
    kind: Option<&str>,
    commit_interval_ms: Option<String>,
    checkpoint_interval: Option<String>,
) -> Result<Option<DeltaSettings>, ConfigError> {
    if !kind.is_some_and(|k| k.trim().eq_ignore_ascii_case("delta")) {
        if let Some(v) = commit_interval_ms.or(checkpoint_interval) {
            return Err(ConfigError::invalid(
                "DELTA_COMMIT_INTERVAL_MS",
                &v,
                "unset unless INGEST_FORMAT=delta (as is INGEST_DELTA_CHECKPOINT_INTERVAL)",
            ));
        }
        return Ok(None);
    }
    let ms = positive(
        "DELTA_COMMIT_INTERVAL_MS",
        commit_interval_ms,
        DELTA_COMMIT_INTERVAL_MS,
    )?;
    let checkpoint_interval = positive(
        "DELTA_CHECKPOINT_INTERVAL",
        checkpoint_interval,
        DELTA_CHECKPOINT_INTERVAL,
    )?;
    Ok(Some(DeltaSettings {
        commit_interval: Duration::from_millis(ms),
        checkpoint_interval,
    }))
}

/// Parses `INGEST_FORMAT` and, for Parquet (and Delta, whose files are Parquet), its settings.
pub(super) fn format(
    kind: Option<String>,
    compression: Option<String>,
    level: Option<String>,
    row_group_bytes: Option<String>,
    caps: (Option<String>, Option<String>),
) -> Result<Format, ConfigError> {
    #[derive(Clone, Copy)]
    enum Kind {
        Ndjson,
        Parquet,
    }
    let kind = choice(
        "FORMAT",
        kind,
        &[
            ("ndjson", Kind::Ndjson),
            ("parquet", Kind::Parquet),
            // Parquet files, added to a Delta table ([`DeltaSettings`]).
            ("delta", Kind::Parquet),
        ],
        Kind::Ndjson,
    )?;
    if let Kind::Ndjson = kind {
        return Ok(Format::Ndjson);
    }
    let codec = choice("PARQUET_COMPRESSION", compression, &CODECS, CODECS[0].1)?;
    let compression = match level {
        None => codec,
        Some(text) => {
            let level = positive("PARQUET_COMPRESSION_LEVEL", Some(text.clone()), 0i64)?;
            codec
                .at_level(level)
                .map_err(|range| ConfigError::invalid("PARQUET_COMPRESSION_LEVEL", &text, range))?
        }
    };
    let row_group_bytes = positive("PARQUET_ROW_GROUP_BYTES", row_group_bytes, ROW_GROUP_BYTES)?;
    let max_columns = positive("PARQUET_MAX_COLUMNS", caps.0, MAX_COLUMNS)?;
    let max_fields = positive("PARQUET_MAX_FIELDS", caps.1.clone(), MAX_FIELDS)?;
    if max_fields < max_columns {
        return Err(ConfigError::invalid(
            "PARQUET_MAX_FIELDS",
            &max_fields.to_string(),
            format!("at least INGEST_PARQUET_MAX_COLUMNS ({max_columns}): every column is a field"),
        ));
    }
    Ok(Format::Parquet(ParquetSettings {
        compression,
        row_group_bytes,
        max_columns,
        max_fields,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.into())
    }

    #[test]
    fn delta_is_parquet_files_with_a_commit_interval_and_checkpoints() {
        assert_eq!(
            format(s("delta"), None, None, None, (None, None)),
            format(s("parquet"), None, None, None, (None, None))
        );
        let d = delta(Some("Delta"), None, None).unwrap().unwrap();
        assert_eq!(d.commit_interval, Duration::from_secs(10));
        assert_eq!(d.checkpoint_interval, 100);
        let d = delta(Some("delta"), s("2000"), s("10")).unwrap().unwrap();
        assert_eq!(
            (d.commit_interval.as_millis(), d.checkpoint_interval),
            (2000, 10)
        );
        assert_eq!(delta(Some("parquet"), None, None), Ok(None));
        let e = delta(Some("parquet"), s("2000"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unless INGEST_FORMAT=delta"), "{e}");
        assert!(delta(Some("delta"), s("0"), None).is_err());
    }

    #[test]
    fn ndjson_by_default_and_parquet_with_zstd_3_by_default() {
        assert_eq!(
            format(None, None, None, None, (None, None)),
            Ok(Format::Ndjson)
        );
        assert_eq!(
            format(s("parquet"), None, None, None, (None, None)),
            Ok(Format::Parquet(ParquetSettings {
                compression: ParquetCompression::Zstd { level: 3 },
                row_group_bytes: ROW_GROUP_BYTES,
                max_columns: MAX_COLUMNS,
                max_fields: MAX_FIELDS,
            }))
        );
        assert_eq!(
            format(s("Parquet"), s("gzip"), s("9"), s("1048576"), (None, None)),
            Ok(Format::Parquet(ParquetSettings {
                compression: ParquetCompression::Gzip { level: 9 },
                row_group_bytes: 1 << 20,
                max_columns: MAX_COLUMNS,
                max_fields: MAX_FIELDS,
            }))
        );
    }

    #[test]
    fn codecs_read_back_by_name_and_level_as_claims_record_them() {
        assert_eq!(
            format(s("parquet"), s(" Snappy "), None, None, (None, None)).map(|f| match f {
                Format::Parquet(p) => p.compression,
                Format::Ndjson => ParquetCompression::None,
            }),
            Ok(ParquetCompression::Snappy),
            "names are read as every other choice is"
        );
        for (_, codec) in CODECS {
            for level in [None, Some(1), Some(99)] {
                let c = codec.at_level(level.unwrap_or(1)).unwrap_or(codec);
                assert_eq!(ParquetCompression::named(c.name(), c.level()), Some(c));
            }
        }
        assert_eq!(
            ParquetCompression::named("gzip", Some(99)),
            Some(ParquetCompression::Gzip { level: GZIP_LEVEL }),
            "a level out of range falls back to the default"
        );
        assert_eq!(ParquetCompression::named("lz4", None), None);
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for (k, c, l) in [
            (s("avro"), None, None),
            (s("parquet"), s("lz4"), None),
            (s("parquet"), s("zstd"), s("23")),
            (s("parquet"), s("gzip"), s("0")),
        ] {
            let e = format(k, c, l, None, (None, None)).unwrap_err().to_string();
            assert!(e.contains("INGEST_"), "{e}");
        }
    }

    #[test]
    fn schema_caps_default_and_fields_are_at_least_columns() {
        let Ok(Format::Parquet(p)) = format(s("parquet"), None, None, None, (s("20"), s("300")))
        else {
            panic!("parquet");
        };
        assert_eq!((p.max_columns, p.max_fields), (20, 300));
        let e = format(s("parquet"), None, None, None, (s("20"), s("10"))).unwrap_err();
        assert!(
            e.to_string()
                .contains("at least INGEST_PARQUET_MAX_COLUMNS (20)"),
            "{e}"
        );
        assert!(format(s("parquet"), None, None, None, (s("0"), None)).is_err());
    }
}
