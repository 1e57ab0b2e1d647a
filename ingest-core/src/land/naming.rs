//! Object names: where a batch's data file, dead-letter file and claim live.
//!
//! Pure. Invariant: a data file's name is a function of topic, partition and first offset (its
//! directory also of the batch's UTC hour), zero-padded so names sort in offset order, and every
//! object that is not finished data lives outside `<topic>/`, the path readers watch.

use std::borrow::Cow;

use crate::config::{Compression, Format, Granularity, Layout, TimeSource};
pub use crate::storage::STATE_PREFIX;

/// Where the objects of one batch go. All paths are relative to the storage root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchNames {
    pub data: String,
    pub dead_letters: String,
    pub claim: String,
}

/// Names objects for one topic.
#[derive(Debug, Clone)]
pub struct Namer {
    pub topic: String,
    pub dead_letter_prefix: String,
    pub compression: Compression,
    pub format: Format,
    pub time_source: TimeSource,
    pub layout: Layout,
}

impl Namer {
    /// NDJSON's extension (dead letters are NDJSON whatever the format).
    fn ndjson_extension(&self) -> &'static str {
        match self.compression {
            Compression::None => "ndjson",
            Compression::Gzip { .. } => "ndjson.gz",
        }
    }

    fn extension(&self) -> &'static str {
        match self.format {
            Format::Ndjson => self.ndjson_extension(),
            Format::Parquet(_) => "parquet",
        }
    }

    /// Names for a batch whose first record has `first_offset`. `record_ts_ms` is that record's
    /// timestamp, `ingested_ms` when it arrived; which one picks the directory is configured.
    /// A record without a timestamp falls back to ingestion time.
    pub fn batch(
        &self,
        partition: i32,
        first_offset: i64,
        record_ts_ms: Option<i64>,
        ingested_ms: i64,
    ) -> BatchNames {
        let ts = match self.time_source {
            // A batch placed record by record is planned file by file (`event_time`); these
            // names are its first record's by its Kafka timestamp until then.
            TimeSource::Record | TimeSource::Field(_) => record_ts_ms
                .filter(|t| placeable(*t))
                .unwrap_or(ingested_ms),
            TimeSource::Ingestion => ingested_ms,
        };
        self.batch_in(partition, first_offset, &self.dir(ts))
    }

    /// Names for a batch whose first record has `first_offset` and belongs in `dir` (under
    /// `<topic>/`): its data file, its dead letters in the same directories, its claim.
    pub fn batch_in(&self, partition: i32, first_offset: i64, dir: &str) -> BatchNames {
        let file = |ext: &str| format!("{}+{partition}+{first_offset:020}.{ext}", self.topic);
        BatchNames {
            data: self.data_file(partition, first_offset, dir),
            dead_letters: format!(
                "{}/{}/{dir}/{}",
                self.dead_letter_prefix,
                self.topic,
                file(self.ndjson_extension())
            ),
            claim: claim_path(&self.topic, partition, first_offset),
        }
    }

    /// Whether a record's directory depends on the record itself (its time field, or its fields
    /// in the path template): a batch is then planned file by file ([`super::event_time`]).
    pub fn per_record(&self) -> bool {
        matches!(self.time_source, TimeSource::Field(_)) || self.layout.reads_fields()
    }

    /// The directories under `<topic>/` of a time in ms since the epoch (`dt=.../hour=...`,
    /// `dt=...` by day, or the template's, its fields missing).
    pub fn dir(&self, ts_ms: i64) -> String {
        let mut out = String::new();
        self.write_dir(ts_ms, |_| None, &mut out);
        out
    }

    /// Appends the directories under `<topic>/` for time `ts_ms`, with `field` giving a
    /// top-level field of the record as text (a template's `{record.<name>}`).
    pub fn write_dir<'a>(
        &self,
        ts_ms: i64,
        field: impl FnMut(&str) -> Option<Cow<'a, str>>,
        out: &mut String,
    ) {
        match &self.layout {
            Layout::Time(Granularity::Hour) => out.push_str(&hive_dir(ts_ms)),
            Layout::Time(Granularity::Day) => out.push_str(&hive_day(ts_ms)),
            Layout::Template(t) => t.render(ts_ms, field, out),
        }
    }

    /// The data file of `partition` starting at `first_offset` in `dir` (under `<topic>/`).
    pub fn data_file(&self, partition: i32, first_offset: i64, dir: &str) -> String {
        format!(
            "{topic}/{dir}/{topic}+{partition}+{first_offset:020}.{ext}",
            topic = self.topic,
            ext = self.extension()
        )
    }
}

/// 10000-01-01T00:00:00Z in ms since the epoch: the first time a four-digit year cannot name.
pub const PLACEABLE_UNTIL_MS: i64 = 253_402_300_800_000;

/// Whether a record's time can place it: from the epoch (Kafka's timestamps are never earlier;
/// -1 is none) to the end of year 9999 (`dt` has four digits for Spark and DuckDB). Any other
/// takes the fallback, as a missing time does.
pub fn placeable(ts_ms: i64) -> bool {
    (0..PLACEABLE_UNTIL_MS).contains(&ts_ms)
}

/// The claim for the batch of `topic`/`partition` that starts at `first_offset`. Independent of
/// time, so a restarted consumer finds it whatever clock the earlier incarnation saw.
pub fn claim_path(topic: &str, partition: i32, first_offset: i64) -> String {
    format!("{}{first_offset:020}.json", claims_dir(topic, partition))
}

/// The directory of a partition's claims, with its trailing slash.
pub fn claims_dir(topic: &str, partition: i32) -> String {
    format!("{STATE_PREFIX}/claims/{topic}/{partition}/")
}

/// The number a zero-padded state object's name (`.../<digits>.json`, as claims and schema
/// versions are named) stands for; `None` for any other name.
pub fn padded_number(name: &str, digits: usize) -> Option<u64> {
    let n = name.rsplit('/').next()?.strip_suffix(".json")?;
    if n.len() != digits || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// `dt=YYYY-MM-DD/hour=HH` in UTC for a time in ms since the epoch.
pub fn hive_dir(ts_ms: i64) -> String {
    let secs = ts_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3600;
    let (y, m, d) = civil_from_days(days);
    format!("dt={y:04}-{m:02}-{d:02}/hour={hour:02}")
}

/// `dt=YYYY-MM-DD` in UTC for a time in ms since the epoch.
pub fn hive_day(ts_ms: i64) -> String {
    let (y, m, d) = civil_from_days(ts_ms.div_euclid(86_400_000));
    format!("dt={y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC, milliseconds) for a time in ms since the epoch.
pub fn rfc3339_ms(ts_ms: i64) -> String {
    let secs = ts_ms.div_euclid(1000);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    let ms = ts_ms.rem_euclid(1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namer(time_source: TimeSource, compression: Compression) -> Namer {
        Namer {
            topic: "orders".into(),
            dead_letter_prefix: "_dead_letters".into(),
            compression,
            format: Format::Ndjson,
            time_source,
            layout: Layout::Time(Granularity::Hour),
        }
    }

    #[test]
    fn data_names_are_hive_partitioned_zero_padded_and_have_no_partition_directory() {
        // 2024-02-29T23:59:59.999Z, a leap day at the end of an hour.
        let n = namer(TimeSource::Record, Compression::Gzip { level: 6 });
        let names = n.batch(3, 42, Some(1_709_251_199_999), 0);
        assert_eq!(
            names.data,
            "orders/dt=2024-02-29/hour=23/orders+3+00000000000000000042.ndjson.gz"
        );
        assert_eq!(
            names.dead_letters,
            "_dead_letters/orders/dt=2024-02-29/hour=23/orders+3+00000000000000000042.ndjson.gz"
        );
        assert_eq!(
            names.claim,
            "_ingest/claims/orders/3/00000000000000000042.json"
        );
        assert!(!names.data.contains("partition="));
    }

    #[test]
    fn parquet_files_are_named_parquet_and_their_dead_letters_stay_ndjson() {
        let mut n = namer(TimeSource::Record, Compression::Gzip { level: 6 });
        n.format = Format::Parquet(crate::config::ParquetSettings {
            compression: crate::config::ParquetCompression::Zstd { level: 3 },
            row_group_bytes: 1 << 20,
            max_columns: crate::config::format::MAX_COLUMNS,
            max_fields: crate::config::format::MAX_FIELDS,
        });
        let names = n.batch(3, 42, Some(1_709_251_199_999), 0);
        assert_eq!(
            names.data,
            "orders/dt=2024-02-29/hour=23/orders+3+00000000000000000042.parquet"
        );
        assert!(names
            .dead_letters
            .ends_with("+00000000000000000042.ndjson.gz"));
    }

    #[test]
    fn names_sort_in_offset_order() {
        let n = namer(TimeSource::Record, Compression::None);
        let a = n.batch(0, 9, Some(0), 0).data;
        let b = n.batch(0, 10, Some(0), 0).data;
        let c = n.batch(0, i64::MAX, Some(0), 0).data;
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(a.ends_with(".ndjson"));
    }

    #[test]
    fn time_source_picks_the_directory() {
        let record = 0; // 1970-01-01T00
        let ingested = 86_400_000 + 3_600_000 * 5; // 1970-01-02T05
        let by_record = namer(TimeSource::Record, Compression::None);
        let by_ingest = namer(TimeSource::Ingestion, Compression::None);
        assert!(by_record
            .batch(0, 0, Some(record), ingested)
            .data
            .contains("dt=1970-01-01/hour=00/"));
        assert!(by_ingest
            .batch(0, 0, Some(record), ingested)
            .data
            .contains("dt=1970-01-02/hour=05/"));
        // A record without a timestamp (-1 from Kafka, or none) falls back to ingestion time.
        assert!(by_record
            .batch(0, 0, Some(-1), ingested)
            .data
            .contains("dt=1970-01-02/"));
        assert!(by_record
            .batch(0, 0, None, ingested)
            .data
            .contains("dt=1970-01-02/"));
    }

    #[test]
    fn by_day_there_is_no_hour_directory() {
        let mut n = namer(TimeSource::Record, Compression::None);
        n.layout = Layout::Time(Granularity::Day);
        assert_eq!(
            n.batch(1, 7, Some(1_709_251_199_999), 0).data,
            "orders/dt=2024-02-29/orders+1+00000000000000000007.ndjson"
        );
        assert_eq!(hive_day(-1), "dt=1969-12-31");
    }

    #[test]
    fn a_time_no_four_digit_year_can_name_falls_back() {
        let n = namer(TimeSource::Record, Compression::None);
        let now = 1_709_214_356_789; // 2024-02-29T13
        for bad in [PLACEABLE_UNTIL_MS, i64::MAX, -2, i64::MIN] {
            let names = n.batch(0, 7, Some(bad), now);
            assert!(
                names.data.contains("/dt=2024-02-29/hour=13/"),
                "{bad}: {}",
                names.data
            );
        }
        let last = n.batch(0, 7, Some(PLACEABLE_UNTIL_MS - 1), now);
        assert!(
            last.data.contains("/dt=9999-12-31/hour=23/"),
            "{}",
            last.data
        );
    }

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_709_210_096_007), "2024-02-29T12:34:56.007Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(hive_dir(-1), "dt=1969-12-31/hour=23");
        assert_eq!(hive_dir(4_102_444_800_000), "dt=2100-01-01/hour=00");
    }
}
