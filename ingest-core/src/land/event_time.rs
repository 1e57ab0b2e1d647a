//! Event time from a record field (`INGEST_TIME_SOURCE=field`): the time each record of a batch
//! carries, and the files the batch therefore lands as, one per time directory.
//!
//! Pure. Invariant: the plan is a function of the records, the settings and the fallback time
//! alone, so the claim's files are found again from the same records by whoever completes the
//! claim (it passes the claim's settings and `claimed_at_ms`); each record is in exactly one
//! file, and a file's name is its first record's offset, so names never collide.

use crate::batch::{Attachment, Batch, StoredRecord};
use crate::config::{Granularity, TimeField};
use crate::encode::parquet::walk::{self, Kind, Step};

/// The most files one batch lands as: past it the batch is cut, and the rest is the next
/// claim's (late events spread over weeks must not turn one batch into thousands of files).
pub const MAX_FILES_PER_BATCH: usize = 64;

/// One file of a planned batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedFile {
    /// Its first record's offset (what names it).
    pub first_offset: i64,
    /// The start of its time directory, ms since the epoch.
    pub dir_ms: i64,
    pub records: usize,
}

/// How a batch lands by field time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The file (an index into `files`) of each record the plan covers, in batch order.
    pub file_of: Vec<u16>,
    /// In order of their first offsets.
    pub files: Vec<PlannedFile>,
    /// Records whose field was missing or not a time in the format: placed by their Kafka
    /// timestamp (the Event Hubs enqueued time), else by the fallback.
    pub fallbacks: usize,
    /// The last offset the plan covers: the batch's, or the one before the record that would
    /// have opened file `MAX_FILES_PER_BATCH + 1`.
    pub through: i64,
}

/// The time `field` gives in a record's value; `None` when the value is not a JSON object, the
/// field is missing, or it is not a time in the field's format.
pub fn field_time_ms(value: Option<&[u8]>, field: &TimeField) -> Option<i64> {
    let v = value?;
    let mut at = walk::ws(v, 0);
    for name in &field.path {
        if walk::head(v, at).0 != Kind::Object {
            return None;
        }
        let mut step = walk::first_member(v, at);
        at = loop {
            match step {
                Step::Member(m) if m.is(name) => break m.value,
                Step::Member(m) => step = walk::next_member(v, walk::skip(v, m.value)),
                _ => return None,
            }
        };
    }
    let (kind, end) = walk::head(v, at);
    let bytes = v.get(at..end)?;
    match kind {
        Kind::Str => field.format.read_ms(&walk::text(bytes).ok()?, false),
        Kind::Int | Kind::Float => field.format.read_ms(std::str::from_utf8(bytes).ok()?, true),
        _ => None,
    }
}

/// The time a record lands by: its field's, else its own timestamp, else `fallback_ms`; and
/// whether it fell back.
pub fn record_time_ms(
    record: &StoredRecord<'_>,
    field: &TimeField,
    fallback_ms: i64,
) -> (i64, bool) {
    match field_time_ms(record.value(), field) {
        Some(t) => (t, false),
        None => (
            record
                .timestamp_ms()
                .filter(|t| *t >= 0)
                .unwrap_or(fallback_ms),
            true,
        ),
    }
}

/// Plans the files of `batch`: records by the directory of their time, at most `max_files`
/// files (the batch is cut before the record that would open one more).
pub fn plan<A: Attachment>(
    batch: &Batch<A>,
    field: &TimeField,
    granularity: Granularity,
    fallback_ms: i64,
    max_files: usize,
) -> Plan {
    let span = granularity.span_ms();
    let max_files = max_files.clamp(1, usize::from(u16::MAX));
    let mut plan = Plan {
        file_of: Vec::with_capacity(batch.len()),
        files: Vec::new(),
        fallbacks: 0,
        through: batch.first_offset().unwrap_or(0),
    };
    // Most records fall in the directory of the record before: look there first.
    let mut last = 0;
    for r in batch.records() {
        let (t, fell_back) = record_time_ms(&r, field, fallback_ms);
        let dir_ms = t.div_euclid(span) * span;
        let file = if plan.files.get(last).is_some_and(|f| f.dir_ms == dir_ms) {
            last
        } else if let Some(i) = plan.files.iter().position(|f| f.dir_ms == dir_ms) {
            i
        } else if plan.files.len() == max_files {
            break;
        } else {
            plan.files.push(PlannedFile {
                first_offset: r.offset(),
                dir_ms,
                records: 0,
            });
            plan.files.len() - 1
        };
        last = file;
        plan.files[file].records += 1;
        plan.file_of.push(file as u16);
        plan.fallbacks += usize::from(fell_back);
        plan.through = r.offset();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::RecordRef;
    use crate::config::TimeFormat;

    const HOUR: i64 = 3_600_000;

    fn field(path: &str, format: TimeFormat) -> TimeField {
        TimeField {
            path: path.split('.').map(str::to_string).collect(),
            format,
        }
    }

    fn batch(values: &[(&str, Option<i64>)]) -> Batch {
        let mut b = Batch::new(std::time::Instant::now(), 0);
        for (i, (v, ts)) in values.iter().enumerate() {
            b.push(&RecordRef {
                offset: 100 + i as i64,
                timestamp_ms: *ts,
                key: None,
                value: Some(v.as_bytes()),
                headers: &[],
                flaw: None,
                cursor: None,
            });
        }
        b
    }

    #[test]
    fn the_field_is_found_at_its_dotted_path_whatever_else_the_record_holds() {
        let f = field("order.placed_at", TimeFormat::UnixMs);
        let read = |v: &str| field_time_ms(Some(v.as_bytes()), &f);
        assert_eq!(read(r#"{"order":{"placed_at":1234}}"#), Some(1234));
        assert_eq!(
            read(
                r#" { "id" : [1,{"placed_at":9}], "order" : { "x":{"placed_at":7}, "placed_at" : "1234" } } "#
            ),
            Some(1234),
            "nested lookalikes are skipped; a numeric string is read"
        );
        assert_eq!(
            read(r#"{"order":{"placed\u005fat":5}}"#),
            Some(5),
            "escaped keys"
        );
        for missing in [
            r#"{"order":{}}"#,
            r#"{"order":[{"placed_at":1}]}"#,
            r#"{"placed_at":1}"#,
            r#"{"order":{"placed_at":null}}"#,
            r#"{"order":{"placed_at":true}}"#,
            r#"[1,2]"#,
            r#"not json {"#,
            "",
        ] {
            assert_eq!(read(missing), None, "{missing}");
        }
        assert_eq!(field_time_ms(None, &f), None, "a tombstone has no time");
        let rfc = field("t", TimeFormat::Rfc3339);
        assert_eq!(
            field_time_ms(Some(br#"{"t":"1970-01-01T01:00:00+01:00"}"#), &rfc),
            Some(0)
        );
    }

    #[test]
    fn out_of_order_hours_make_one_file_each_named_by_its_first_record() {
        let b = batch(&[
            (r#"{"t":7200000}"#, None), // hour 2
            (r#"{"t":0}"#, None),       // hour 0
            (r#"{"t":7300000}"#, None), // hour 2
            (r#"{"t":3600000}"#, None), // hour 1
            (r#"{"t":10}"#, None),      // hour 0
        ]);
        let p = plan(
            &b,
            &field("t", TimeFormat::UnixMs),
            Granularity::Hour,
            0,
            64,
        );
        assert_eq!(p.file_of, vec![0, 1, 0, 2, 1]);
        let files: Vec<_> = p
            .files
            .iter()
            .map(|f| (f.first_offset, f.dir_ms, f.records))
            .collect();
        assert_eq!(files, vec![(100, 2 * HOUR, 2), (101, 0, 2), (103, HOUR, 1)]);
        assert_eq!((p.through, p.fallbacks), (104, 0));
        let by_day = plan(&b, &field("t", TimeFormat::UnixMs), Granularity::Day, 0, 64);
        assert_eq!(by_day.files.len(), 1, "all on one day");
        assert_eq!(by_day.files[0].records, 5);
    }

    #[test]
    fn a_record_without_its_field_falls_back_to_its_timestamp_then_to_the_fallback() {
        let b = batch(&[
            (r#"{"t":"soon"}"#, Some(5 * HOUR)),
            (r#"{}"#, None),
            (r#"{"t":1}"#, Some(9 * HOUR)),
        ]);
        let p = plan(
            &b,
            &field("t", TimeFormat::UnixMs),
            Granularity::Hour,
            7 * HOUR + 1,
            64,
        );
        let dirs: Vec<_> = p.files.iter().map(|f| f.dir_ms / HOUR).collect();
        assert_eq!(
            dirs,
            vec![5, 7, 0],
            "field, then Kafka timestamp, then fallback"
        );
        assert_eq!(p.fallbacks, 2);
    }

    #[test]
    fn past_the_most_files_the_batch_is_cut_before_the_record_that_would_open_one_more() {
        let values: Vec<String> = [0, 1, 0, 2, 1, 3, 0]
            .iter()
            .map(|h| format!(r#"{{"t":{}}}"#, h * HOUR))
            .collect();
        let b = batch(
            &values
                .iter()
                .map(|v| (v.as_str(), None))
                .collect::<Vec<_>>(),
        );
        let p = plan(&b, &field("t", TimeFormat::UnixMs), Granularity::Hour, 0, 3);
        assert_eq!(p.files.len(), 3);
        assert_eq!(
            p.through, 104,
            "the hour-3 record at 105 starts the next claim"
        );
        assert_eq!(p.file_of.len(), 5);
        let same = plan(&b, &field("t", TimeFormat::UnixMs), Granularity::Hour, 0, 3);
        assert_eq!(p, same, "a plan is a function of its inputs");
    }
}
