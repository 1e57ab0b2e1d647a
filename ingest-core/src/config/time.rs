//! Which time picks a file's `dt=`/`hour=` directory: `INGEST_TIME_SOURCE`, `INGEST_TIME_FIELD`
//! and `INGEST_TIME_FORMAT`; the granularity of `INGEST_PARTITION_BY`; and how a field's value
//! is read as a time.
//!
//! Pure. Invariant: a format accepted here reads back the times it writes (checked at start on
//! a sample), so a record's directory never depends on a format that cannot tell the date.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::parse::{choice, ConfigError};

/// What picks the directory of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    /// The first record's Kafka timestamp (the Event Hubs enqueued time) picks `dt=`/`hour=`.
    Record,
    /// The time the first record arrived picks them.
    Ingestion,
    /// Each record's own time, from a field of its JSON value: a batch spanning several hours
    /// lands as one file per hour.
    Field(TimeField),
}

/// `INGEST_TIME_SOURCE=field`: where the time is in a record and how it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeField {
    /// The dotted path into the JSON value (`order.placed_at`), split at the dots.
    pub path: Vec<String>,
    pub format: TimeFormat,
}

/// `INGEST_TIME_FORMAT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2024-02-29T23:59:59.999Z`, any offset (a string).
    Rfc3339,
    /// Seconds (milli-, microseconds) since the epoch: a JSON number, or a string of one.
    UnixS,
    UnixMs,
    UnixUs,
    /// A strftime pattern (chrono's), for a string; without an offset the time is UTC.
    Strftime(String),
}

/// `INGEST_PARTITION_BY`: the time directories a topic's files are laid out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// `dt=YYYY-MM-DD/hour=HH` (the default).
    Hour,
    /// `dt=YYYY-MM-DD`.
    Day,
}

impl Granularity {
    /// How long one directory's span is, in ms.
    pub fn span_ms(self) -> i64 {
        match self {
            Granularity::Hour => 3_600_000,
            Granularity::Day => 86_400_000,
        }
    }

    /// The partition columns the directories give readers.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Granularity::Hour => &["dt", "hour"],
            Granularity::Day => &["dt"],
        }
    }
}

/// Earliest and latest times a field may give: years 1 to 9999 (what every reader's date type
/// holds). Anything outside falls back like an unreadable value.
const EARLIEST_MS: i64 = -62_135_596_800_000;
const LATEST_MS: i64 = 253_402_300_799_999;

impl TimeFormat {
    /// The name claims and `INGEST_TIME_FORMAT` use.
    pub fn name(&self) -> &str {
        match self {
            TimeFormat::Rfc3339 => "rfc3339",
            TimeFormat::UnixS => "unix-s",
            TimeFormat::UnixMs => "unix-ms",
            TimeFormat::UnixUs => "unix-us",
            TimeFormat::Strftime(p) => p,
        }
    }

    /// Reads `name` as a format: one of the names above, else a strftime pattern that can
    /// tell at least the date. `Err` says what is wrong with it.
    pub fn parse(name: &str) -> Result<TimeFormat, String> {
        let format = match name.trim() {
            "rfc3339" => TimeFormat::Rfc3339,
            "unix-s" => TimeFormat::UnixS,
            "unix-ms" => TimeFormat::UnixMs,
            "unix-us" => TimeFormat::UnixUs,
            pattern if pattern.contains('%') => TimeFormat::Strftime(pattern.to_string()),
            _ => return Err(
                "rfc3339, unix-s, unix-ms, unix-us or a strftime pattern such as %Y-%m-%d %H:%M:%S"
                    .into(),
            ),
        };
        if let TimeFormat::Strftime(pattern) = &format {
            // 2024-02-29T13:45:56Z, written with the pattern, must read back on the same day.
            let sample = DateTime::from_timestamp_millis(1_709_214_356_000).expect("in range");
            let mut written = String::new();
            use std::fmt::Write;
            if write!(written, "{}", sample.format(pattern)).is_err() {
                return Err(format!("a valid strftime pattern ({pattern:?} is not one)"));
            }
            let read = format.read_ms(&written, false);
            if read.map(|ms| ms.div_euclid(86_400_000)) != Some(1_709_214_356_000 / 86_400_000) {
                return Err(format!(
                    "a strftime pattern that holds at least the year, month and day (it wrote {written:?} and could not read the date back)"
                ));
            }
        }
        Ok(format)
    }

    /// The time in ms since the epoch that `text` stands for in this format; `number` tells
    /// that it was a JSON number (not a string). `None`: not a time in this format.
    pub fn read_ms(&self, text: &str, number: bool) -> Option<i64> {
        let ms = match self {
            TimeFormat::Rfc3339 if !number => {
                DateTime::parse_from_rfc3339(text).ok()?.timestamp_millis()
            }
            TimeFormat::UnixS => unix(text, 1_000, 0)?,
            TimeFormat::UnixMs => unix(text, 1, 0)?,
            TimeFormat::UnixUs => unix(text, 0, 1_000)?,
            TimeFormat::Strftime(p) if !number => strftime(text, p)?,
            _ => return None,
        };
        (EARLIEST_MS..=LATEST_MS).contains(&ms).then_some(ms)
    }
}

/// A count of units since the epoch, `per_ms` units per ms (`ms_per` ms per unit when 0),
/// whole or with a fraction; floored to the ms.
fn unix(text: &str, ms_per: i64, per_ms: i64) -> Option<i64> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return if per_ms > 0 {
            Some(n.div_euclid(per_ms))
        } else {
            n.checked_mul(ms_per)
        };
    }
    let f: f64 = text.parse().ok()?;
    let ms = if per_ms > 0 {
        (f / per_ms as f64).floor()
    } else {
        (f * ms_per as f64).floor()
    };
    (ms.is_finite() && ms.abs() < 9.0e15).then_some(ms as i64)
}

fn strftime(text: &str, pattern: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_str(text, pattern) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, pattern) {
        return Some(t.and_utc().timestamp_millis());
    }
    let day = NaiveDate::parse_from_str(text, pattern).ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// `INGEST_TIME_SOURCE` (default record), with `INGEST_TIME_FIELD` and `INGEST_TIME_FORMAT`
/// (default rfc3339), which only `field` reads.
pub(super) fn time_source(
    source: Option<String>,
    field: Option<String>,
    format: Option<String>,
) -> Result<TimeSource, ConfigError> {
    #[derive(Clone, Copy)]
    enum Kind {
        Record,
        Ingestion,
        Field,
    }
    let kind = choice(
        "TIME_SOURCE",
        source.clone(),
        &[
            ("record", Kind::Record),
            ("ingestion", Kind::Ingestion),
            ("field", Kind::Field),
        ],
        Kind::Record,
    )?;
    let simple = match kind {
        Kind::Record => TimeSource::Record,
        Kind::Ingestion => TimeSource::Ingestion,
        Kind::Field => {
            let Some(field) = field else {
                return Err(ConfigError::missing(
                    "TIME_FIELD",
                    "the dotted path of the record's time field (e.g. placed_at or order.placed_at), as INGEST_TIME_SOURCE=field needs",
                ));
            };
            let path = field_path(&field)
                .map_err(|why| ConfigError::invalid("TIME_FIELD", &field, why))?;
            let format = match format {
                None => TimeFormat::Rfc3339,
                Some(f) => TimeFormat::parse(&f)
                    .map_err(|why| ConfigError::invalid("TIME_FORMAT", &f, why))?,
            };
            return Ok(TimeSource::Field(TimeField { path, format }));
        }
    };
    // The field's settings mean nothing without `field`: say so rather than ignore them.
    for (var, value) in [("TIME_FIELD", field), ("TIME_FORMAT", format)] {
        if let Some(v) = value {
            return Err(ConfigError::invalid(
                var,
                &v,
                format!(
                    "to be unset unless INGEST_TIME_SOURCE=field (it is {})",
                    source.as_deref().unwrap_or("record, the default")
                ),
            ));
        }
    }
    Ok(simple)
}

/// A dotted path's parts: none empty.
pub fn field_path(field: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = field.trim().split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(
            "a dotted path of field names, none empty (e.g. placed_at or order.placed_at)".into(),
        );
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_709_214_356_789; // 2024-02-29T13:45:56.789Z

    #[test]
    fn each_format_reads_its_own_kind_of_value() {
        let rfc = TimeFormat::Rfc3339;
        assert_eq!(rfc.read_ms("2024-02-29T13:45:56.789Z", false), Some(T));
        assert_eq!(rfc.read_ms("2024-02-29T15:45:56.789+02:00", false), Some(T));
        assert_eq!(
            rfc.read_ms("2024-02-29", false),
            None,
            "a date is not RFC 3339"
        );
        assert_eq!(
            rfc.read_ms("1709214356", true),
            None,
            "a number is not RFC 3339"
        );
        assert_eq!(TimeFormat::UnixS.read_ms("1709214356.789", true), Some(T));
        assert_eq!(
            TimeFormat::UnixS.read_ms("1709214356", false),
            Some(T - 789)
        );
        assert_eq!(TimeFormat::UnixMs.read_ms("1709214356789", true), Some(T));
        assert_eq!(
            TimeFormat::UnixUs.read_ms("1709214356789123", true),
            Some(T)
        );
        assert_eq!(TimeFormat::UnixUs.read_ms("-1", true), Some(-1), "floored");
        assert_eq!(TimeFormat::UnixMs.read_ms("soon", false), None);
        let p = TimeFormat::parse("%Y-%m-%d %H:%M:%S%.3f").unwrap();
        assert_eq!(p.read_ms("2024-02-29 13:45:56.789", false), Some(T), "UTC");
        let day = TimeFormat::parse("%d/%m/%Y").unwrap();
        assert_eq!(day.read_ms("29/02/2024", false), Some(T - T % 86_400_000));
        let zoned = TimeFormat::parse("%Y-%m-%d %H:%M:%S %z").unwrap();
        assert_eq!(
            zoned.read_ms("2024-02-29 14:45:56 +0100", false),
            Some(T - 789)
        );
    }

    #[test]
    fn times_no_reader_can_hold_are_not_times() {
        assert_eq!(TimeFormat::UnixS.read_ms("1e300", true), None);
        assert_eq!(TimeFormat::UnixS.read_ms("9223372036854775807", true), None);
        assert_eq!(
            TimeFormat::UnixMs.read_ms("253402300800000", true),
            None,
            "year 10000"
        );
        assert_eq!(TimeFormat::UnixMs.read_ms("NaN", false), None);
    }

    #[test]
    fn a_pattern_that_cannot_tell_the_date_is_refused_at_start() {
        for bad in ["%H:%M", "%Y", "%Q", "placed", ""] {
            assert!(TimeFormat::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(TimeFormat::parse("unix-ms"), Ok(TimeFormat::UnixMs));
        assert_eq!(TimeFormat::parse("%Y%m%d").unwrap().name(), "%Y%m%d");
    }

    #[test]
    fn the_field_settings_need_the_field_source_and_a_path() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(time_source(None, None, None), Ok(TimeSource::Record));
        assert_eq!(
            time_source(some("field"), some("order.placed_at"), some("unix-ms")),
            Ok(TimeSource::Field(TimeField {
                path: vec!["order".into(), "placed_at".into()],
                format: TimeFormat::UnixMs
            }))
        );
        let e = time_source(some("field"), None, None).unwrap_err();
        assert!(
            e.to_string().contains("INGEST_TIME_FIELD is not set"),
            "{e}"
        );
        let e = time_source(some("field"), some("a..b"), None).unwrap_err();
        assert!(e.to_string().contains("none empty"), "{e}");
        let e = time_source(None, some("placed_at"), None).unwrap_err();
        assert!(
            e.to_string().contains("unless INGEST_TIME_SOURCE=field"),
            "{e}"
        );
        let e = time_source(some("field"), some("t"), some("%H")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("INGEST_TIME_FORMAT=\"%H\" is invalid"),
            "{e}"
        );
    }
}
