//! Placing records one by one: the directory each record of a batch belongs in (its time from
//! a field, `INGEST_TIME_SOURCE=field`, and its fields in a path template), and the files the
//! batch therefore lands as, one per directory.
//!
//! Pure. Invariant: the plan is a function of the records, the placement settings and the
//! fallback time alone, so the claim's files are found again from the same records by whoever
//! completes the claim (it passes the claim's settings and `claimed_at_ms`); each record is in
//! exactly one file, and a file's name is its first record's offset, so names never collide.

use std::borrow::Cow;

use super::naming::Namer;
use crate::batch::{Attachment, Batch, StoredRecord};
use crate::config::{TimeField, TimeSource};
use crate::encode::parquet::walk::{self, Kind, Step};

/// The most files one batch lands as (the bound on the directories one partition's batch
/// spans): past it the batch is cut, and the rest is the next claim's, so late events spread
/// over weeks, or a field with a million values, never turn one batch into thousands of files.
pub const MAX_FILES_PER_BATCH: usize = 64;

/// One file of a planned batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Its first record's offset (what names it).
    pub first_offset: i64,
    /// Its directories under `<topic>/`.
    pub dir: String,
    pub records: usize,
}

/// How a batch lands when each record picks its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The file (an index into `files`) of each record the plan covers, in batch order.
    pub file_of: Vec<u16>,
    /// In order of their first offsets.
    pub files: Vec<PlannedFile>,
    /// Records whose time field was missing or not a time in the format: placed by their
    /// Kafka timestamp (the Event Hubs enqueued time), else by the fallback.
    pub fallbacks: usize,
    /// The last offset the plan covers: the batch's, or the one before the record that would
    /// have opened file `max_files + 1`.
    pub through: i64,
}

/// The value at `path` in a record's JSON value (its start and end), if the value is an object
/// that has it.
fn lookup<'v>(v: &'v [u8], path: &[impl AsRef<str>]) -> Option<(Kind, &'v [u8])> {
    let mut at = walk::ws(v, 0);
    for name in path {
        if walk::head(v, at).0 != Kind::Object {
            return None;
        }
        let mut step = walk::first_member(v, at);
        at = loop {
            match step {
                Step::Member(m) if m.is(name.as_ref()) => break m.value,
                Step::Member(m) => step = walk::next_member(v, walk::skip(v, m.value)),
                _ => return None,
            }
        };
    }
    let (kind, end) = walk::head(v, at);
    Some((kind, v.get(at..end)?))
}

/// The time `field` gives in a record's value; `None` when the value is not a JSON object, the
/// field is missing, or it is not a time in the field's format.
pub fn field_time_ms(value: Option<&[u8]>, field: &TimeField) -> Option<i64> {
    match lookup(value?, &field.path)? {
        (Kind::Str, bytes) => field.format.read_ms(&walk::text(bytes).ok()?, false),
        (Kind::Int | Kind::Float, bytes) => {
            field.format.read_ms(std::str::from_utf8(bytes).ok()?, true)
        }
        _ => None,
    }
}

/// A top-level field of a record's value as a path template shows it: a string's text, a
/// number's or a boolean's JSON; `None` for anything else (missing, null, objects, arrays).
pub fn field_text<'v>(value: Option<&'v [u8]>, name: &str) -> Option<Cow<'v, str>> {
    match lookup(value?, &[name])? {
        (Kind::Str, bytes) => walk::text(bytes).ok(),
        (Kind::Int | Kind::Float | Kind::Bool, bytes) => {
            std::str::from_utf8(bytes).ok().map(Cow::Borrowed)
        }
        _ => None,
    }
}

/// The time a record lands by, and whether it fell back: by field time its field's, else its
/// own timestamp, else `fallback_ms` (the claim's time); by record time its timestamp, else
/// `fallback_ms`; by ingestion time `fallback_ms`.
pub fn record_time_ms(
    record: &StoredRecord<'_>,
    source: &TimeSource,
    fallback_ms: i64,
) -> (i64, bool) {
    let own = || {
        record
            .timestamp_ms()
            .filter(|t| super::naming::placeable(*t))
    };
    match source {
        TimeSource::Field(field) => {
            match field_time_ms(record.value(), field).filter(|t| super::naming::placeable(*t)) {
                Some(t) => (t, false),
                None => (own().unwrap_or(fallback_ms), true),
            }
        }
        TimeSource::Record => (own().unwrap_or(fallback_ms), false),
        TimeSource::Ingestion => (fallback_ms, false),
    }
}

/// Writes the directories (under `<topic>/`) of `record` into `out`; tells whether its time
/// fell back.
pub fn record_dir(
    namer: &Namer,
    record: &StoredRecord<'_>,
    fallback_ms: i64,
    out: &mut String,
) -> bool {
    let (t, fell_back) = record_time_ms(record, &namer.time_source, fallback_ms);
    out.clear();
    let value = record.value();
    namer.write_dir(t, |name| field_text(value, name), out);
    fell_back
}

/// Plans the files of `batch`: records by their directory, at most `max_files` files (the
/// batch is cut before the record that would open one more).
pub fn plan<A: Attachment>(
    batch: &Batch<A>,
    namer: &Namer,
    fallback_ms: i64,
    max_files: usize,
) -> Plan {
    let max_files = max_files.clamp(1, usize::from(u16::MAX));
    let mut plan = Plan {
        file_of: Vec::with_capacity(batch.len()),
        files: Vec::new(),
        fallbacks: 0,
        through: batch.first_offset().unwrap_or(0),
    };
    let mut dir = String::new();
    // Most records go where the record before went: look there first.
    let mut last = 0;
    for r in batch.records() {
        let fell_back = record_dir(namer, &r, fallback_ms, &mut dir);
        let file = if plan.files.get(last).is_some_and(|f| f.dir == dir) {
            last
        } else if let Some(i) = plan.files.iter().position(|f| f.dir == dir) {
            i
        } else if plan.files.len() == max_files {
            break;
        } else {
            plan.files.push(PlannedFile {
                first_offset: r.offset(),
                dir: dir.clone(),
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
    use crate::config::{Compression, Format, Granularity, Layout, TimeFormat};

    const HOUR: i64 = 3_600_000;

    fn namer(time_source: TimeSource, layout: Layout) -> Namer {
        Namer {
            topic: "t".into(),
            dead_letter_prefix: "_dead_letters".into(),
            compression: Compression::None,
            format: Format::Ndjson,
            time_source,
            layout,
        }
    }

    fn by_field(path: &str, granularity: Granularity) -> Namer {
        namer(
            TimeSource::Field(field(path, TimeFormat::UnixMs)),
            Layout::Time(granularity),
        )
    }

    fn hour_of(dir: &str) -> i64 {
        dir.rsplit("hour=").next().unwrap().parse().unwrap()
    }

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
        let p = plan(&b, &by_field("t", Granularity::Hour), 0, 64);
        assert_eq!(p.file_of, vec![0, 1, 0, 2, 1]);
        let files: Vec<_> = p
            .files
            .iter()
            .map(|f| (f.first_offset, f.dir.as_str(), f.records))
            .collect();
        assert_eq!(
            files,
            vec![
                (100, "dt=1970-01-01/hour=02", 2),
                (101, "dt=1970-01-01/hour=00", 2),
                (103, "dt=1970-01-01/hour=01", 1)
            ]
        );
        assert_eq!((p.through, p.fallbacks), (104, 0));
        let by_day = plan(&b, &by_field("t", Granularity::Day), 0, 64);
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
        let p = plan(&b, &by_field("t", Granularity::Hour), 7 * HOUR + 1, 64);
        let dirs: Vec<_> = p.files.iter().map(|f| hour_of(&f.dir)).collect();
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
        let p = plan(&b, &by_field("t", Granularity::Hour), 0, 3);
        assert_eq!(p.files.len(), 3);
        assert_eq!(
            p.through, 104,
            "the hour-3 record at 105 starts the next claim"
        );
        assert_eq!(p.file_of.len(), 5);
        let same = plan(&b, &by_field("t", Granularity::Hour), 0, 3);
        assert_eq!(p, same, "a plan is a function of its inputs");
    }

    #[test]
    fn a_template_places_records_by_their_fields_and_their_own_kafka_time() {
        let t =
            crate::config::PathTemplate::parse("{topic}/region={record.region}/dt={date}").unwrap();
        let n = namer(TimeSource::Record, Layout::Template(t));
        let b = batch(&[
            (r#"{"region":"eu"}"#, Some(0)),
            (r#"{"region":"us/east"}"#, Some(0)),
            (r#"{"region":"eu"}"#, Some(25 * HOUR)),
            (r#"{"region":null}"#, Some(0)),
            (r#"{"region":7}"#, None),
        ]);
        let p = plan(&b, &n, 0, 64);
        let dirs: Vec<_> = p.files.iter().map(|f| f.dir.as_str()).collect();
        assert_eq!(
            dirs,
            [
                "region=eu/dt=1970-01-01",
                "region=us%2Feast/dt=1970-01-01",
                "region=eu/dt=1970-01-02",
                "region=__HIVE_DEFAULT_PARTITION__/dt=1970-01-01",
                "region=7/dt=1970-01-01",
            ]
        );
        assert_eq!(p.fallbacks, 0, "only a time field falls back");
    }
}
