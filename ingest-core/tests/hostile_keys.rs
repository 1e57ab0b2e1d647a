//! Hostile values in a path template's field and hostile Kafka timestamps, among ordinary
//! records, on local disk, s3s-fs (S3) and Azurite (Azure Blob): every record lands once, every
//! key fits every store (a directory at most 255 bytes, a key at most 1,024), a value that fits
//! reads back as itself (DuckDB's Hive partitioning), and a time no four-digit year can name
//! takes the ingestion time. (On the release before, a 300-slash value jammed its partition on
//! local disk with `File name too long`, and Azure refused names with U+0081, U+E000, U+FFFE.)

mod common;

use std::time::Duration;

use common::servers::*;
use common::*;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

const TEMPLATE: &str = "{topic}/region={record.region}/dt={date}/hour={hour}";

/// The hostile values of `region`; each comes between ordinary records.
fn hostile() -> Vec<String> {
    vec![
        "/".repeat(300),
        "x".repeat(5_000),
        "é".repeat(1_000),
        "\u{81}".into(),
        "\u{e000}".into(),
        "\u{fffe}".into(),
        "a\u{202e}b".into(),
        "..".into(),
        ".".into(),
        "%".into(),
        "日本 語".into(),
        "a/../../b".into(),
        "\u{0}\u{1f}\u{7f}".into(),
    ]
}

/// Kafka timestamps no `dt` can name (past year 9999), and one that can.
const FAR: [i64; 2] = [253_402_300_800_000, i64::MAX / 2];

/// Produces the test's records to partition 0: ordinary ones (`region` "eu") around each
/// hostile value, and two records with far timestamps. Returns how many.
fn produce(brokers: &str, topic: &str) -> usize {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut values: Vec<(Value, Option<i64>)> = Vec::new();
    for (i, h) in hostile().into_iter().enumerate() {
        values.push((json!({"n": values.len(), "region": "eu"}), None));
        values.push((json!({"n": values.len(), "region": h, "kind": i}), None));
    }
    for t in FAR {
        values.push((json!({"n": values.len(), "region": "far"}), Some(t)));
    }
    values.push((json!({"n": values.len(), "region": "eu"}), None));
    for (v, ts) in &values {
        let payload = serde_json::to_vec(v).unwrap();
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .partition(0)
            .payload(&payload);
        if let Some(t) = ts {
            record = record.timestamp(*t);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    values.len()
}

/// Every key within every store's limits.
fn assert_keys_fit<'a>(keys: impl IntoIterator<Item = &'a str>) {
    for key in keys {
        assert!(key.len() <= 1024, "{} bytes: {key}", key.len());
        for segment in key.split('/') {
            assert!(segment.len() <= 255, "{} bytes: {segment}", segment.len());
        }
    }
}

/// Lands the records with `vars` and checks them in the local copy `root`.
async fn lands_each_once(f: &Fixture, vars: &[(String, String)]) -> u64 {
    let high = high_watermarks(&f.broker.brokers, &f.topic, 1);
    let (token, mut progress, handle) = start(config(
        vars,
        &[
            ("INGEST_PATH_TEMPLATE", TEMPLATE),
            ("INGEST_ENVELOPE", "metadata"),
            ("INGEST_FLUSH_MAX_RECORDS", "7"),
        ],
    ));
    until_committed(&mut progress, &high).await;
    token.cancel();
    handle.await.unwrap().unwrap().records
}

/// What each landed record's directory says, checked against the record.
fn check_landed(root: &std::path::Path, topic: &str, produced: usize) {
    let high = std::collections::BTreeMap::from([(0, produced as i64)]);
    assert_exactly_once(root, topic, &high);
    let today = chrono::Utc::now();
    for (path, lines) in landed_files(root, topic) {
        let rel = path
            .strip_prefix(root.join(topic))
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        for line in lines {
            let region = line["value"]["region"].as_str().unwrap();
            if region == "far" {
                let days = [today, today - chrono::Duration::hours(1)]
                    .map(|t| t.format("dt=%Y-%m-%d/hour=%H").to_string());
                assert!(
                    days.iter().any(|d| rel.contains(d)),
                    "a far timestamp takes the ingestion time: {rel}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_land_on_local_disk_within_limits_and_read_back_as_themselves() {
    let f = Fixture::new("hostile", 1);
    let produced = produce(&f.broker.brokers, &f.topic);
    let records = lands_each_once(&f, &f.vars).await;
    assert_eq!(records as usize, produced);
    check_landed(f.dir.path(), &f.topic, produced);
    let keys: Vec<String> = snapshot(f.dir.path())
        .keys()
        .map(|p| {
            p.strip_prefix(f.dir.path())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_keys_fit(keys.iter().map(String::as_str));

    // DuckDB reads the column back: a value that fits is itself; one cut ends with a digest.
    let dir = f.dir.path().to_str().unwrap();
    let rows = duckdb_script("read_hive.py", &[dir, &f.topic, "region"]);
    assert_eq!(rows.len(), produced);
    let mut cut = 0;
    for row in &rows {
        let original = row["value"]["region"].as_str().unwrap();
        let column = row["region"].as_str().unwrap_or_default();
        if column == original {
            continue;
        }
        let escaped_whole = original.len() * 3;
        let (kept, mark) = column.rsplit_once('~').unwrap_or_else(|| {
            panic!("{original:?} reads back as {column:?}, neither itself nor cut")
        });
        assert!(
            escaped_whole > 200 && mark.len() == 16,
            "{original:?} -> {column:?}"
        );
        assert!(original.starts_with(kept), "{original:?} -> {column:?}");
        cut += 1;
    }
    assert_eq!(
        cut, 3,
        "the three long values are cut; the rest read back as themselves"
    );
}

async fn hostile_values_land_in_a_cloud_store(server: &dyn Server) {
    let f = Fixture::new("hostile", 1);
    let bucket = unique("hostile").to_ascii_lowercase().replace('_', "-");
    server.create_container(&bucket);
    let mut vars = f.vars.clone();
    vars.retain(|(k, _)| k != "INGEST_STORAGE_URL");
    vars.extend(server.env(&bucket, "raw"));
    let produced = produce(&f.broker.brokers, &f.topic);
    let records = lands_each_once(&f, &vars).await;
    assert_eq!(records as usize, produced);
    let store = reader(&vars);
    let listed = listing(&store).await;
    assert_keys_fit(listed.keys().map(String::as_str));
    let copy = tempfile::tempdir().unwrap();
    mirror(&store, &f.topic, copy.path()).await;
    check_landed(copy.path(), &f.topic, produced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_land_in_s3_within_limits() {
    let s3 = S3Fs::start();
    hostile_values_land_in_a_cloud_store(&s3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_land_in_azure_within_limits() {
    let azurite = Azurite::start();
    hostile_values_land_in_a_cloud_store(&azurite).await;
}
