//! A claimed file's encoding, as the claim records it: completing the claim writes what its
//! name says, whatever the settings are now (a rollout from gzip to none, or from NDJSON to
//! Parquet, never lands one format under the other's name).
//!
//! Pure.

use serde::{Deserialize, Serialize};

use super::recovery::Claim;
use crate::config::{
    defaults, Compression, Envelope, Format, Layout, ParquetCompression, ParquetSettings,
    TimeField, TimeFormat, TimeSource,
};

/// A claimed file's encoding, in words that stay stable across releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedEncoding {
    /// `raw` or `metadata`.
    pub envelope: String,
    /// NDJSON: `none` or `gzip`. Parquet: its codec, `zstd`, `snappy`, `gzip` or `none`.
    pub compression: String,
    /// The compression level, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i64>,
    /// `parquet`; absent for NDJSON (and in claims of releases before Parquet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// How a claim of several files placed its records: the time source (with its field and
/// format) and the layout, in the words of the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedPlacement {
    /// `record`, `ingestion` or `field` (`INGEST_TIME_SOURCE`).
    pub time_source: String,
    /// The dotted path (`INGEST_TIME_FIELD`), by field time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `INGEST_TIME_FORMAT`, by field time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `hour`, `day` (`INGEST_PARTITION_BY`) or the path template (`INGEST_PATH_TEMPLATE`).
    pub layout: String,
}

impl ClaimedPlacement {
    pub fn new(source: &TimeSource, layout: &Layout) -> ClaimedPlacement {
        let (time_source, field, format) = match source {
            TimeSource::Record => ("record", None, None),
            TimeSource::Ingestion => ("ingestion", None, None),
            TimeSource::Field(f) => (
                "field",
                Some(f.path.join(".")),
                Some(f.format.name().to_string()),
            ),
        };
        ClaimedPlacement {
            time_source: time_source.into(),
            field,
            format,
            layout: layout.name().to_string(),
        }
    }

    /// The settings back; `Err` says which word is not one.
    pub fn settings(&self) -> Result<(TimeSource, Layout), String> {
        let source = match (self.time_source.as_str(), &self.field) {
            ("record", _) => TimeSource::Record,
            ("ingestion", _) => TimeSource::Ingestion,
            ("field", Some(field)) => {
                let path = crate::config::time::field_path(field)
                    .map_err(|e| format!("its time field {field:?} is not {e}"))?;
                let format = self.format.as_deref().unwrap_or("rfc3339");
                let format = TimeFormat::parse(format)
                    .map_err(|e| format!("its time format {format:?} is not {e}"))?;
                TimeSource::Field(TimeField { path, format })
            }
            (other, _) => {
                return Err(format!(
                    "its time source {other:?} is not record, ingestion or field (with a field)"
                ))
            }
        };
        let layout = Layout::named(&self.layout)
            .map_err(|e| format!("its layout {:?} is not {e}", self.layout))?;
        Ok((source, layout))
    }
}

/// How to write a claimed file again: the envelope, NDJSON's compression (the data file's when
/// NDJSON, the dead letters' either way) and the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub envelope: Envelope,
    pub compression: Compression,
    pub format: Format,
}

impl ClaimedEncoding {
    pub fn new(e: &Encoding) -> ClaimedEncoding {
        let envelope = match e.envelope {
            Envelope::Raw => "raw",
            Envelope::Metadata => "metadata",
        }
        .to_string();
        let (compression, level, format) = match e.format {
            Format::Ndjson => match e.compression {
                Compression::None => ("none", None, None),
                Compression::Gzip { level } => ("gzip", Some(i64::from(level)), None),
            },
            Format::Parquet(p) => (
                p.compression.name(),
                p.compression.level(),
                Some("parquet".to_string()),
            ),
        };
        ClaimedEncoding {
            envelope,
            compression: compression.into(),
            level,
            format,
        }
    }
}

fn gzip_level(level: Option<i64>, now: Compression) -> u32 {
    level
        .and_then(|l| u32::try_from(l).ok())
        .unwrap_or(match now {
            Compression::Gzip { level } => level,
            Compression::None => defaults::COMPRESSION_LEVEL,
        })
}

impl Claim {
    /// The encoding to complete this claim's file with: as claimed, else (a claim of an earlier
    /// release) NDJSON compressed as its file name says, with the envelope as `now`.
    pub fn encoding_or(&self, now: &Encoding) -> Encoding {
        // Dead letters are NDJSON named like the claim's dead-letter path says.
        let ndjson = |name: &str, level| {
            if name.ends_with(".gz") {
                Compression::Gzip {
                    level: gzip_level(level, now.compression),
                }
            } else {
                Compression::None
            }
        };
        let Some(e) = &self.encoding else {
            return Encoding {
                envelope: now.envelope,
                compression: ndjson(&self.data, None),
                format: Format::Ndjson,
            };
        };
        let envelope = if e.envelope == "metadata" {
            Envelope::Metadata
        } else {
            Envelope::Raw
        };
        if e.format.as_deref() != Some("parquet") {
            let compression = if e.compression == "gzip" {
                Compression::Gzip {
                    level: gzip_level(e.level, now.compression),
                }
            } else {
                Compression::None
            };
            return Encoding {
                envelope,
                compression,
                format: Format::Ndjson,
            };
        }
        let compression =
            ParquetCompression::named(&e.compression, e.level).unwrap_or(ParquetCompression::None);
        // What the claim does not record (row groups, schema caps) is today's setting.
        let now_parquet = match now.format {
            Format::Parquet(p) => p,
            Format::Ndjson => ParquetSettings {
                compression,
                row_group_bytes: crate::config::format::ROW_GROUP_BYTES,
                max_columns: crate::config::format::MAX_COLUMNS,
                max_fields: crate::config::format::MAX_FIELDS,
            },
        };
        Encoding {
            envelope,
            compression: ndjson(&self.dead_letters, None),
            format: Format::Parquet(ParquetSettings {
                compression,
                ..now_parquet
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(data: &str, encoding: Option<ClaimedEncoding>) -> Claim {
        Claim {
            version: 1,
            files: Vec::new(),
            placed_by: None,
            topic: "t".into(),
            partition: 0,
            first_offset: 0,
            last_offset: 9,
            data: data.into(),
            dead_letters: format!("_dead_letters/{data}"),
            claimed_at_ms: 0,
            first_record: None,
            first_record_offset: None,
            last_record: None,
            cluster: None,
            encoding,
        }
    }

    const NOW: Encoding = Encoding {
        envelope: Envelope::Raw,
        compression: Compression::None,
        format: Format::Ndjson,
    };

    #[test]
    fn every_encoding_reads_back_as_claimed() {
        let parquet = Format::Parquet(ParquetSettings {
            compression: ParquetCompression::Zstd { level: 7 },
            row_group_bytes: crate::config::format::ROW_GROUP_BYTES,
            max_columns: crate::config::format::MAX_COLUMNS,
            max_fields: crate::config::format::MAX_FIELDS,
        });
        for e in [
            Encoding {
                envelope: Envelope::Metadata,
                compression: Compression::Gzip { level: 9 },
                format: Format::Ndjson,
            },
            Encoding {
                envelope: Envelope::Raw,
                compression: Compression::None,
                format: Format::Ndjson,
            },
            Encoding {
                envelope: Envelope::Metadata,
                compression: Compression::Gzip { level: 6 },
                format: parquet,
            },
        ] {
            let data = match e.format {
                Format::Parquet(_) => "t/x.parquet",
                Format::Ndjson => "t/x.ndjson",
            };
            let mut c = claim(data, Some(ClaimedEncoding::new(&e)));
            c.dead_letters = "_dead_letters/t/x.ndjson.gz".into();
            let back = c.encoding_or(&NOW);
            assert_eq!(
                (back.envelope, back.format),
                (e.envelope, e.format),
                "{e:?}"
            );
            if e.format == Format::Ndjson {
                assert_eq!(back.compression, e.compression);
            }
        }
    }

    #[test]
    fn a_claim_of_an_earlier_release_is_ndjson_compressed_as_its_name_says() {
        let back = claim("t/x.ndjson.gz", None).encoding_or(&NOW);
        assert_eq!(back.format, Format::Ndjson);
        assert_eq!(back.compression, Compression::Gzip { level: 6 });
        let json = r#"{"envelope":"raw","compression":"gzip","level":4}"#;
        let old: ClaimedEncoding = serde_json::from_str(json).unwrap();
        assert_eq!(old.format, None, "claims before Parquet parse");
        assert_eq!(
            claim("t/x.ndjson.gz", Some(old))
                .encoding_or(&NOW)
                .compression,
            Compression::Gzip { level: 4 }
        );
    }
}
