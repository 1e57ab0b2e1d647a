//! Event time from a record field (`INGEST_TIME_SOURCE=field`): a batch whose records' times
//! span several hours lands as one file per hour, each record exactly once, in the directory
//! of its own time; and a crash between the uploads of one batch's files lands each record
//! once after the restart, completing only the files that were missing.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::process::*;
use common::servers::duckdb_script;
use common::*;
use serde_json::Value;

/// 2024-03-01T10:00:00Z.
const BASE_MS: i64 = 1_709_287_200_000;
const HOUR_MS: i64 = 3_600_000;

/// A record whose `placed_at` is in hour `10 + h` of 2024-03-01, out of order across the three.
fn order(n: usize) -> Vec<u8> {
    let h = (n * 7 + n / 5) % 3;
    let ms = BASE_MS + h as i64 * HOUR_MS + (n as i64 * 7_919) % HOUR_MS;
    let at = chrono::DateTime::from_timestamp_millis(ms).unwrap();
    format!(
        r#"{{"n":{n},"placed_at":"{}","item":"ünïcode {n}"}}"#,
        at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
    .into_bytes()
}

/// The `dt=`/`hour=` directory a record's own `placed_at` names.
fn own_dir(value: &Value) -> String {
    let at = chrono::DateTime::parse_from_rfc3339(value["placed_at"].as_str().unwrap()).unwrap();
    at.format("dt=%Y-%m-%d/hour=%H").to_string()
}

/// Every landed line's directory, relative to `<root>/<topic>/`, with the line.
fn lines_by_dir(root: &std::path::Path, topic: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (path, lines) in landed_files(root, topic) {
        let rel = path.strip_prefix(root.join(topic)).unwrap();
        let dir = rel.parent().unwrap().to_str().unwrap().to_string();
        out.extend(lines.into_iter().map(|l| (dir.clone(), l)));
    }
    out
}

fn field_vars() -> [(&'static str, &'static str); 3] {
    [
        ("INGEST_TIME_SOURCE", "field"),
        ("INGEST_TIME_FIELD", "placed_at"),
        ("INGEST_ENVELOPE", "metadata"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_over_three_hours_out_of_order_land_in_three_hour_directories_each_once() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("evtime", 1);
    let values: Vec<Vec<u8>> = (0..600).map(order).collect();
    produce_to(&broker.brokers, &topic, 0, &values);
    let high = high_watermarks(&broker.brokers, &topic, 1);
    let mut extra = field_vars().to_vec();
    extra.push(("INGEST_FLUSH_MAX_RECORDS", "250"));
    let (token, mut progress, handle) = start(config(&vars, &extra));
    until_committed(&mut progress, &high).await;
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert_eq!(run.records, 600);

    assert_exactly_once(dir.path(), &topic, &high);
    let lines = lines_by_dir(dir.path(), &topic);
    let dirs: BTreeSet<&str> = lines.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        dirs.into_iter().collect::<Vec<_>>(),
        [
            "dt=2024-03-01/hour=10",
            "dt=2024-03-01/hour=11",
            "dt=2024-03-01/hour=12"
        ]
    );
    for (d, line) in &lines {
        assert_eq!(d, &own_dir(&line["value"]), "offset {}", line["offset"]);
    }
    // Three batches (250, 250, 100 records), each spanning the three hours: nine files, each
    // named by its own first offset.
    let files = landed_files(dir.path(), &topic);
    assert_eq!(
        files.len(),
        9,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (path, lines) in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let first = lines
            .iter()
            .map(|l| l["offset"].as_i64().unwrap())
            .min()
            .unwrap();
        assert_eq!(name, format!("{topic}+0+{first:020}.ndjson.gz"));
    }
    // Each batch's claim lists its files.
    let claims = std::fs::read_dir(dir.path().join(format!("_ingest/claims/{topic}/0"))).unwrap();
    let mut listed = 0;
    for c in claims {
        let claim: Value =
            serde_json::from_slice(&std::fs::read(c.unwrap().path()).unwrap()).unwrap();
        assert_eq!(claim["version"], 2);
        assert_eq!(claim["placed_by"]["field"], "placed_at");
        listed += claim["files"].as_array().unwrap().len();
    }
    assert_eq!(listed, 9);

    // DuckDB derives dt and hour from the directories; they match each record's own field.
    let rows = duckdb_script(
        "read_event_time.py",
        &[dir.path().to_str().unwrap(), &topic, "placed_at"],
    );
    assert_eq!(rows.len(), 600);
    for row in &rows {
        let own =
            chrono::DateTime::from_timestamp_millis(row["field_ms"].as_i64().unwrap()).unwrap();
        assert_eq!(row["dt"], own.format("%Y-%m-%d").to_string(), "{row}");
        assert_eq!(
            row["hour"],
            own.format("%H").to_string().parse::<i64>().unwrap(),
            "{row}"
        );
    }
}

#[test]
fn sigkill_between_the_uploads_of_one_batchs_files_then_restart_lands_each_record_once() {
    let Fixture {
        topic,
        group,
        broker,
        dir,
        mut vars,
    } = Fixture::new("evcrash", 1);
    vars.extend(
        field_vars()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    // Some records lack the field: they land by their Kafka timestamp (now), a fourth hour.
    let values: Vec<Vec<u8>> = (0..300)
        .map(|n| {
            if n % 50 == 7 {
                format!(r#"{{"n":{n}}}"#).into_bytes()
            } else {
                order(n)
            }
        })
        .collect();
    produce_to(&broker.brokers, &topic, 0, &values);
    let high = high_watermarks(&broker.brokers, &topic, 1);

    // One batch of all 300 records, four files; the first incarnation hangs after the first
    // file's upload, before the others and the commit.
    let one_batch = [
        ("INGEST_FLUSH_MAX_RECORDS", "300"),
        ("INGEST_FLUSH_MAX_AGE_MS", "600000"),
    ];
    let mut first = service(
        &vars,
        &[
            one_batch[0],
            one_batch[1],
            ("INGEST_FAULT_HANG_AFTER_UPLOADS", "1"),
        ],
    )
    .spawn()
    .unwrap();
    let rx = lines(first.stderr.take().unwrap());
    let addr = endpoint_addr(&rx);
    wait_line(&rx, "the fault", |l| {
        l.starts_with("FAULT: hanging before commit")
    });
    // The records without the field were counted when the batch was claimed.
    let metrics = parse_metrics(&http_get(&addr, "/metrics").1);
    assert_eq!(
        metrics.get("ingest_time_fallbacks_total"),
        Some(&6.0),
        "{metrics:?}"
    );
    signal(&first, "-KILL");
    assert_eq!(first.wait().unwrap().code(), None, "killed by a signal");
    let landed_at_crash = landed_files(dir.path(), &topic);
    assert_eq!(
        landed_at_crash.len(),
        1,
        "one of the batch's files landed before the crash"
    );
    let before = snapshot(dir.path());
    let at_crash = committed(&broker.brokers, &group, &topic, 1);
    assert!(
        at_crash.get(&0).copied().unwrap_or(-1) < high[&0],
        "nothing of the batch committed: {at_crash:?}"
    );

    // Second incarnation: completes the claim, writing only the missing files, then commits.
    let mut second = service(&vars, &one_batch).spawn().unwrap();
    let rx = lines(second.stderr.take().unwrap());
    wait_line(&rx, "the claim's completion", |l| {
        l.contains("existing claim") && l.contains("Complete")
    });
    wait_committed(&broker.brokers, &group, &topic, 1, WAIT);
    signal(&second, "-TERM");
    assert_eq!(wait_exit(&mut second), 0);
    drop(rx);

    assert_exactly_once(dir.path(), &topic, &high);
    assert_nothing_rewritten(&before, dir.path());
    let lines = lines_by_dir(dir.path(), &topic);
    let mut per_dir: BTreeMap<&str, usize> = BTreeMap::new();
    for (d, line) in &lines {
        *per_dir.entry(d.as_str()).or_default() += 1;
        if line["value"].get("placed_at").is_some() {
            assert_eq!(d, &own_dir(&line["value"]));
        } else {
            let ts = line["timestamp"].as_i64().unwrap();
            let kafka = chrono::DateTime::from_timestamp_millis(ts).unwrap();
            assert_eq!(
                d,
                &kafka.format("dt=%Y-%m-%d/hour=%H").to_string(),
                "by its Kafka timestamp"
            );
        }
    }
    assert_eq!(per_dir.values().sum::<usize>(), 300);
    assert!(
        per_dir.len() >= 4,
        "three hours of events and the fallback's: {per_dir:?}"
    );
    assert_eq!(
        landed_files(dir.path(), &topic).len(),
        per_dir.len(),
        "one file per hour"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_template_with_a_field_lands_each_record_under_its_value_and_duckdb_reads_the_column(
) {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("evtmpl", 2);
    let region = |n: usize| match n % 4 {
        0 => Some("eu"),
        1 => Some("us/east 1"),
        2 => Some("ünï"),
        _ => None,
    };
    for p in 0..2 {
        let values: Vec<Vec<u8>> = (0..200)
            .map(|n| match region(n) {
                Some(r) => format!(r#"{{"n":{n},"region":"{r}"}}"#),
                None => format!(r#"{{"n":{n}}}"#),
            })
            .map(String::into_bytes)
            .collect();
        produce_to(&broker.brokers, &topic, p, &values);
    }
    let high = high_watermarks(&broker.brokers, &topic, 2);
    let (token, mut progress, handle) = start(config(
        &vars,
        &[
            (
                "INGEST_PATH_TEMPLATE",
                "{topic}/region={record.region}/dt={date}",
            ),
            ("INGEST_ENVELOPE", "metadata"),
            ("INGEST_FLUSH_MAX_RECORDS", "120"),
        ],
    ));
    until_committed(&mut progress, &high).await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().records, 400);
    assert_exactly_once(dir.path(), &topic, &high);

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let dirs: BTreeSet<String> = lines_by_dir(dir.path(), &topic)
        .into_iter()
        .map(|(d, line)| {
            let n = line["value"]["n"].as_u64().unwrap() as usize;
            let expected = match region(n) {
                Some("eu") => "region=eu",
                Some("us/east 1") => "region=us%2Feast%201",
                Some(_) => "region=ünï",
                None => "region=__HIVE_DEFAULT_PARTITION__",
            };
            assert!(d.starts_with(&format!("{expected}/dt=")), "{d} for n={n}");
            d
        })
        .collect();
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    assert!(dirs.iter().all(|d| d.ends_with(&format!("dt={today}"))
        || d.ends_with(&format!(
            "dt={}",
            (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d")
        ))));

    let rows = duckdb_script(
        "read_hive.py",
        &[dir.path().to_str().unwrap(), &topic, "region", "dt"],
    );
    assert_eq!(rows.len(), 400);
    for row in &rows {
        // The column is the record's own field, decoded; a missing field reads as null.
        assert_eq!(row["region"], row["value"]["region"], "{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_files_split_by_event_time_hold_each_record_once_in_its_own_hour() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("evparquet", 1);
    let values: Vec<Vec<u8>> = (0..300).map(order).collect();
    produce_to(&broker.brokers, &topic, 0, &values);
    let high = high_watermarks(&broker.brokers, &topic, 1);
    let mut extra = field_vars().to_vec();
    extra.extend([
        ("INGEST_FORMAT", "parquet"),
        ("INGEST_FLUSH_MAX_RECORDS", "150"),
    ]);
    let (token, mut progress, handle) = start(config(&vars, &extra));
    until_committed(&mut progress, &high).await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().records, 300);
    assert_exactly_once(dir.path(), &topic, &high);
    let files = landed_files(dir.path(), &topic);
    assert_eq!(files.len(), 6, "two batches of three hours");
    for (d, row) in lines_by_dir(dir.path(), &topic) {
        assert!(files
            .iter()
            .all(|(p, _)| p.extension().unwrap() == "parquet"));
        assert_eq!(d, own_dir(&row), "{row}");
    }
}
