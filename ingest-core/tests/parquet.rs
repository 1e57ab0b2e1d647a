//! Parquet files read back by a real engine: varied JSON records land as Parquet (librdkafka's
//! mock cluster over TCP, local disk), DuckDB reads every file with Hive partitioning, and each
//! row, rebuilt from its columns and `_rescued_data`, equals its input record (up to key order,
//! integer/double representation and null fields, which a column cannot tell from absent ones).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};

use common::servers::python_module;
use common::*;

/// Record `i` of the test: nested objects, arrays (some empty), unicode, nulls, integers and
/// doubles in one field, a field that appears late, one that changes type, mixed arrays.
fn record(i: usize) -> Value {
    let mut r = json!({
        "id": i,
        "name": format!("n{i} ✓ ünïcødé 日本"),
        "price": if i.is_multiple_of(2) { json!(i) } else { json!(i as f64 + 0.5) },
        "tags": (0..i % 3).map(|t| format!("t{t}")).collect::<Vec<_>>(),
        "nested": {"a": i, "b": {"c": format!("x{i}"), "d": i.is_multiple_of(2)}},
        "maybe": if i.is_multiple_of(5) { Value::Null } else { json!(i % 7) },
    });
    let m = r.as_object_mut().unwrap();
    if i >= 800 {
        m.insert("late".into(), json!({"since": i}));
    }
    m.insert(
        "flip".into(),
        if i < 600 {
            json!(i)
        } else {
            json!(format!("s{i}"))
        },
    );
    if i.is_multiple_of(250) {
        m.insert("mixed".into(), json!([1, "a", {"b": 2}]));
    }
    r
}

/// Drops null fields (recursively) and reads every number as a double.
fn normal(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normal(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normal).collect()),
        Value::Number(n) => json!(n.as_f64().unwrap()),
        other => other.clone(),
    }
}

fn duckdb_rows(root: &std::path::Path, topic: &str) -> Option<Vec<Value>> {
    python_module("duckdb", "pip install duckdb");
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/read_parquet.py"
        ))
        .arg(root)
        .arg(topic)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "DuckDB: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varied_records_land_as_parquet_and_every_field_reads_back() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("parquet", 2);
    let per_partition = 1_000;
    for p in 0..2 {
        let values: Vec<Vec<u8>> = (0..per_partition)
            .map(|i| record(p * per_partition + i).to_string().into_bytes())
            .collect();
        produce_to(&broker.brokers, &topic, p as i32, &values);
    }
    let high = high_watermarks(&broker.brokers, &topic, 2);
    let (token, mut progress, handle) = start(config(
        &vars,
        &[
            ("INGEST_FORMAT", "parquet"),
            ("INGEST_ENVELOPE", "metadata"),
            ("INGEST_FLUSH_MAX_RECORDS", "400"),
        ],
    ));
    until_committed(&mut progress, &high).await;
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert_eq!((run.records, run.dead_letters), (2_000, 0));

    let Some(rows) = duckdb_rows(dir.path(), &topic) else {
        return;
    };
    assert_eq!(rows.len(), 2_000, "every record is one row");
    let mut seen = BTreeMap::new();
    for row in &rows {
        let file = row["file"].as_str().unwrap();
        assert!(file.ends_with(".parquet"), "{file}");
        let (p, offset) = (
            row["partition"].as_i64().unwrap(),
            row["offset"].as_i64().unwrap(),
        );
        assert_eq!(row["topic"], topic.as_str());
        assert!(
            row["timestamp_us"].as_i64().unwrap() > 1_600_000_000_000_000,
            "{row}"
        );
        assert_eq!(row["key_hex"], hex(format!("k{offset}").as_bytes()));
        assert!(row["dt"].as_str().unwrap().starts_with("20"), "{row}");
        let input = record(p as usize * per_partition + offset as usize);
        assert_eq!(
            normal(&row["record"]),
            normal(&input),
            "partition {p} offset {offset}"
        );
        assert!(
            seen.insert((p, offset), file.to_string()).is_none(),
            "one row per record"
        );
    }
    // A mixed array has no column type: always rescued. The field that turned from number to
    // string has one column type in every file (the running schema's), the other kind rescued.
    let rescued = |key: &str| {
        rows.iter()
            .filter(|r| r["rescued"].as_array().unwrap().iter().any(|k| k == key))
            .count()
    };
    assert_eq!(rescued("mixed"), 8);
    let flip_types = column_types(dir.path(), &topic)("flip");
    assert_eq!(flip_types.len(), 1, "{flip_types:?}");
    assert!(
        rescued("flip") == 600 || rescued("flip") == 1_400,
        "the other kind's values are rescued: {}",
        rescued("flip")
    );
}

/// The distinct Arrow types of `column` across the topic's Parquet files.
fn column_types(root: &std::path::Path, topic: &str) -> impl Fn(&str) -> Vec<String> {
    let files: Vec<std::path::PathBuf> = landed_files(root, topic)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    move |column: &str| {
        let mut types: Vec<String> = files
            .iter()
            .filter_map(|f| {
                let raw = bytes::Bytes::from(std::fs::read(f).unwrap());
                let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(raw)
                    .unwrap();
                b.schema()
                    .field_with_name(column)
                    .ok()
                    .map(|f| f.data_type().to_string())
            })
            .collect();
        types.sort();
        types.dedup();
        types
    }
}

/// Records `f(i)` for `i` in `range`, as produced values.
fn json_values(range: std::ops::Range<usize>, f: fn(usize) -> Value) -> Vec<Vec<u8>> {
    range.map(|i| f(i).to_string().into_bytes()).collect()
}

/// The running schema's versions of `topic`, oldest first, as written.
fn schema_versions(root: &std::path::Path, topic: &str) -> Vec<Value> {
    let dir = root.join("_ingest/schemas").join(topic);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

fn field_names(version: &Value) -> Vec<String> {
    version["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f[0].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_added_mid_stream_is_one_new_version_and_types_never_flip() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("evolve", 1);
    let settings = [
        ("INGEST_FORMAT", "parquet"),
        ("INGEST_FLUSH_MAX_RECORDS", "100"),
    ];
    produce_to(
        &broker.brokers,
        &topic,
        0,
        &json_values(0..100, |i| json!({"id": i})),
    );
    produce_to(
        &broker.brokers,
        &topic,
        0,
        &json_values(100..200, |i| json!({"id": i, "added": "x"})),
    );
    produce_to(
        &broker.brokers,
        &topic,
        0,
        &json_values(200..300, |i| json!({"id": format!("s{i}")})),
    );
    let high = high_watermarks(&broker.brokers, &topic, 1);
    let (token, mut progress, handle) = start(config(&vars, &settings));
    until_committed(&mut progress, &high).await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().files, 3);

    let versions = schema_versions(dir.path(), &topic);
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(field_names(&versions[0]), ["id"]);
    assert_eq!(field_names(&versions[1]), ["id", "added"]);
    let types = column_types(dir.path(), &topic);
    assert_eq!(types("id"), ["Int64"], "the id column never turns to text");
    let files = landed_files(dir.path(), &topic);
    let has_added: Vec<bool> = files
        .iter()
        .map(|(path, _)| {
            let raw = bytes::Bytes::from(std::fs::read(path).unwrap());
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(raw)
                .unwrap()
                .schema()
                .field_with_name("added")
                .is_ok()
        })
        .collect();
    assert_eq!(
        has_added,
        [false, true, true],
        "a column from the first file that has it"
    );
    let last = &files[2].1;
    assert!(last.iter().all(|r| r.get("id").is_none_or(Value::is_null)));
    let rescued: Value = serde_json::from_str(last[0]["_rescued_data"].as_str().unwrap()).unwrap();
    assert_eq!(rescued, json!({"id": "s200"}));
    assert_exactly_once(dir.path(), &topic, &high);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_with_ever_new_field_names_stop_growing_the_schema_at_its_caps() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("flood", 2);
    // Ids used as field names, top level and in a struct: a new name in every record.
    let flood = |i: usize| json!({"n": i, format!("id{i}"): i, "by": {format!("k{i}"): i}});
    for p in 0..2 {
        produce_to(
            &broker.brokers,
            &topic,
            p,
            &json_values(
                p as usize * 3_000..(p as usize + 1) * 3_000,
                |i| json!({"n": i, format!("id{i}"): i, "by": {format!("k{i}"): i}}),
            ),
        );
    }
    let settings = [
        ("INGEST_FORMAT", "parquet"),
        ("INGEST_FLUSH_MAX_RECORDS", "500"),
        ("INGEST_PARQUET_MAX_COLUMNS", "40"),
        ("INGEST_PARQUET_MAX_FIELDS", "70"),
    ];
    let high = high_watermarks(&broker.brokers, &topic, 2);
    let (token, mut progress, handle) = start(config(&vars, &settings));
    until_committed(&mut progress, &high).await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().records, 6_000);

    let versions = schema_versions(dir.path(), &topic);
    let last = versions.last().unwrap();
    let names = field_names(last);
    assert!(names.len() <= 40, "{} columns", names.len());
    let by = last["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0] == "by")
        .unwrap();
    assert!(by[1]["struct"].as_array().unwrap().len() <= 40, "{by}");
    assert!(
        versions.len() <= 12,
        "{} versions for 12 files at most",
        versions.len()
    );
    // Every field of every record is in its column or in `_rescued_data`.
    let mut seen = 0;
    for (_, rows) in landed_files(dir.path(), &topic) {
        for row in rows {
            let i = row["n"].as_u64().unwrap() as usize;
            let mut value = serde_json::Map::new();
            for (k, v) in row.as_object().unwrap() {
                if !k.starts_with('_') && k != "partition" && k != "offset" && !v.is_null() {
                    value.insert(k.clone(), v.clone());
                }
            }
            if let Some(by) = value.get_mut("by").and_then(Value::as_object_mut) {
                by.retain(|_, v| !v.is_null());
            }
            if let Some(r) = row["_rescued_data"].as_str() {
                let rescued: serde_json::Map<String, Value> = serde_json::from_str(r).unwrap();
                value.extend(rescued);
            }
            assert_eq!(Value::Object(value), flood(i), "record {i}");
            seen += 1;
        }
    }
    assert_eq!(seen, 6_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_the_race_for_a_version_encodes_against_the_winner() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("race", 1);
    let settings = [
        ("INGEST_FORMAT", "parquet"),
        ("INGEST_FLUSH_MAX_RECORDS", "50"),
    ];
    produce_to(
        &broker.brokers,
        &topic,
        0,
        &json_values(0..50, |i| json!({"id": i})),
    );
    let (token, mut progress, handle) = start(config(&vars, &settings));
    until_committed(&mut progress, &high_watermarks(&broker.brokers, &topic, 1)).await;
    // Meanwhile another replica published version 2 with a field this one has not seen, as
    // text; this replica still has version 1 cached and meets the field as a number.
    let v2 = json!({"fields": [["id", "int"], ["other", "str"]]});
    let path = dir
        .path()
        .join("_ingest/schemas")
        .join(&topic)
        .join("0000000002.json");
    std::fs::write(&path, v2.to_string()).unwrap();
    produce_to(
        &broker.brokers,
        &topic,
        0,
        &json_values(50..100, |i| json!({"id": i, "other": i})),
    );
    let high = high_watermarks(&broker.brokers, &topic, 1);
    until_committed(&mut progress, &high).await;
    token.cancel();
    handle.await.unwrap().unwrap();

    let versions = schema_versions(dir.path(), &topic);
    assert_eq!(
        versions.len(),
        2,
        "no version past the winner's: {versions:?}"
    );
    let types = column_types(dir.path(), &topic);
    assert_eq!(types("other"), ["Utf8"], "the winner's type");
    let files = landed_files(dir.path(), &topic);
    let rescued: Value =
        serde_json::from_str(files[1].1[0]["_rescued_data"].as_str().unwrap()).unwrap();
    assert_eq!(rescued, json!({"other": 50}), "the number is kept, rescued");
    assert_exactly_once(dir.path(), &topic, &high);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_reads_every_file_with_merge_schema_and_its_stream_reads_each_record_once() {
    python_module("pyspark", "pip install 'pyspark==3.5.*'");
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("spark", 2);
    for p in 0..2 {
        let values: Vec<Vec<u8>> = (0..300)
            .map(|i| {
                let mut r = json!({"id": i, "nested": {"a": i}, "tags": ["x"]});
                if i >= 150 {
                    r["added"] = json!(format!("a{i}"));
                }
                r.to_string().into_bytes()
            })
            .collect();
        produce_to(&broker.brokers, &topic, p, &values);
    }
    let high = high_watermarks(&broker.brokers, &topic, 2);
    let settings = [
        ("INGEST_FORMAT", "parquet"),
        ("INGEST_ENVELOPE", "metadata"),
        ("INGEST_FLUSH_MAX_RECORDS", "100"),
    ];
    let (token, mut progress, handle) = start(config(&vars, &settings));
    until_committed(&mut progress, &high).await;
    token.cancel();
    handle.await.unwrap().unwrap();

    let work = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/spark_read.py"
        ))
        .arg(dir.path())
        .arg(&topic)
        .arg(work.path())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "Spark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let got: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(got["rows"], 600, "{got}");
    assert_eq!(got["distinct"], 600, "{got}");
    let columns: Vec<&str> = got["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        "_offset",
        "_timestamp",
        "id",
        "nested",
        "tags",
        "added",
        "_rescued_data",
        "dt",
        "hour",
    ] {
        assert!(columns.contains(&c), "{c} in {columns:?}");
    }
    assert_eq!(
        got["added_nulls"], 300,
        "null before the field existed: {got}"
    );
    assert_eq!(
        (got["stream_first"].as_i64(), got["stream_second"].as_i64()),
        (Some(600), Some(600)),
        "{got}"
    );
}
