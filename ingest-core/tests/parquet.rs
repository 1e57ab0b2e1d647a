//! Parquet files read back by a real engine: varied JSON records land as Parquet (librdkafka's
//! mock cluster over TCP, local disk), DuckDB reads every file with Hive partitioning, and each
//! row, rebuilt from its columns and `_rescued_data`, equals its input record (up to key order,
//! integer/double representation and null fields, which a column cannot tell from absent ones).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};

use common::servers::servers_required;
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
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/read_parquet.py"
        ))
        .arg(root)
        .arg(topic)
        .output()
        .expect("python3");
    if !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("No module named 'duckdb'")
    {
        assert!(
            !servers_required(),
            "DuckDB is not installed (pip install duckdb)"
        );
        return None;
    }
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
    // string is rescued in the files that saw it as a number first, a column in the others.
    let rescued = |key: &str| {
        rows.iter()
            .filter(|r| r["rescued"].as_array().unwrap().iter().any(|k| k == key))
            .count()
    };
    assert_eq!(rescued("mixed"), 8);
    assert!((1..1_400).contains(&rescued("flip")), "{}", rescued("flip"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
