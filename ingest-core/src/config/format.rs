//! The file format: `INGEST_FORMAT=ndjson|parquet` and the Parquet settings.
//!
//! Pure: parsing only.

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
/// Row groups of 64 MiB: one per file at the default batch size (64 MiB of JSON is far less
/// as columns), large enough for column statistics to skip well.
pub const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// Parses `INGEST_FORMAT` and, for Parquet, its settings.
pub(super) fn format(
    kind: Option<String>,
    compression: Option<String>,
    level: Option<String>,
    row_group_bytes: Option<String>,
) -> Result<Format, ConfigError> {
    #[derive(Clone, Copy)]
    enum Kind {
        Ndjson,
        Parquet,
    }
    let kind = choice(
        "FORMAT",
        kind,
        &[("ndjson", Kind::Ndjson), ("parquet", Kind::Parquet)],
        Kind::Ndjson,
    )?;
    if let Kind::Ndjson = kind {
        return Ok(Format::Ndjson);
    }
    let compression = match compression.as_deref().map(str::trim).unwrap_or("zstd") {
        "zstd" => {
            let level = positive("PARQUET_COMPRESSION_LEVEL", level, ZSTD_LEVEL)?;
            if !(1..=22).contains(&level) {
                return Err(ConfigError::invalid(
                    "PARQUET_COMPRESSION_LEVEL",
                    &level.to_string(),
                    "a zstd level from 1 to 22",
                ));
            }
            ParquetCompression::Zstd { level }
        }
        "gzip" => {
            let level = positive("PARQUET_COMPRESSION_LEVEL", level, 6u32)?;
            if level > 9 {
                return Err(ConfigError::invalid(
                    "PARQUET_COMPRESSION_LEVEL",
                    &level.to_string(),
                    "a gzip level from 1 to 9",
                ));
            }
            ParquetCompression::Gzip { level }
        }
        "snappy" => ParquetCompression::Snappy,
        "none" => ParquetCompression::None,
        other => {
            return Err(ConfigError::invalid(
                "PARQUET_COMPRESSION",
                other,
                "one of zstd, snappy, gzip, none",
            ))
        }
    };
    let row_group_bytes = positive("PARQUET_ROW_GROUP_BYTES", row_group_bytes, ROW_GROUP_BYTES)?;
    Ok(Format::Parquet(ParquetSettings {
        compression,
        row_group_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.into())
    }

    #[test]
    fn ndjson_by_default_and_parquet_with_zstd_3_by_default() {
        assert_eq!(format(None, None, None, None), Ok(Format::Ndjson));
        assert_eq!(
            format(s("parquet"), None, None, None),
            Ok(Format::Parquet(ParquetSettings {
                compression: ParquetCompression::Zstd { level: 3 },
                row_group_bytes: ROW_GROUP_BYTES,
            }))
        );
        assert_eq!(
            format(s("Parquet"), s("gzip"), s("9"), s("1048576")),
            Ok(Format::Parquet(ParquetSettings {
                compression: ParquetCompression::Gzip { level: 9 },
                row_group_bytes: 1 << 20,
            }))
        );
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for (k, c, l) in [
            (s("avro"), None, None),
            (s("parquet"), s("lz4"), None),
            (s("parquet"), s("zstd"), s("23")),
            (s("parquet"), s("gzip"), s("0")),
        ] {
            let e = format(k, c, l, None).unwrap_err().to_string();
            assert!(e.contains("INGEST_"), "{e}");
        }
    }
}
