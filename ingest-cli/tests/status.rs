//! `ingest-cli status` against what the demo landed on local disk, and against the same store
//! with a stranded claim added: the figures are the ones the files and claims hold, and the
//! store is not written.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ingest-cli"))
        .args(args)
        .output()
        .expect("ingest-cli runs")
}

/// Every file under `root` with its bytes.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// `ingest-cli status` of the demo's topic in `root` with `extra` arguments: its stdout, once
/// it succeeded.
fn status_output(root: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "status",
        "--storage-url",
        root.to_str().unwrap(),
        "--topic",
        "orders",
    ];
    args.extend_from_slice(extra);
    let out = cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn status(root: &Path) -> Value {
    serde_json::from_slice(&status_output(root, &["--json"])).unwrap()
}

/// `ingest-cli status` of the demo's topic in `root`, as the table people read.
fn status_table(root: &Path) -> String {
    String::from_utf8(status_output(root, &[])).unwrap()
}

#[test]
fn status_reports_the_landed_demo_and_a_stranded_claim_without_writing() {
    let root = tempfile::tempdir().unwrap();
    let demo = cli(&[
        "demo",
        "--records",
        "3000",
        "--partitions",
        "3",
        "--out",
        root.path().to_str().unwrap(),
    ]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let before = files(root.path());

    // What each partition's claims say, read directly.
    let mut claims: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for (name, bytes) in &before {
        if let Some(rest) = name.strip_prefix("_ingest/claims/orders/") {
            let p: i64 = rest.split('/').next().unwrap().parse().unwrap();
            claims
                .entry(p)
                .or_default()
                .push(serde_json::from_slice(bytes).unwrap());
        }
    }
    let report = status(root.path());
    assert_eq!(files(root.path()), before, "status wrote nothing");
    let partitions = report["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3, "{report:#}");
    for p in partitions {
        let mine = &claims[&p["partition"].as_i64().unwrap()];
        let last = mine
            .iter()
            .max_by_key(|c| c["first_offset"].as_i64().unwrap())
            .unwrap();
        assert_eq!(p["claims"].as_u64().unwrap() as usize, mine.len());
        assert_eq!(p["first_offset"], 0);
        assert_eq!(p["last_offset"], last["last_offset"]);
        assert_eq!(p["last_file"], last["data"]);
        assert_eq!(p["last_file_exists"], true);
        assert_eq!(
            (p["gone_offsets"].as_i64(), p["chain_breaks"].as_i64()),
            (Some(0), Some(0))
        );
    }
    assert_eq!(report["schema"], Value::Null, "NDJSON: no Parquet schema");

    // A replica claimed partition 0's next range and died before its upload.
    let p0 = &partitions.iter().find(|p| p["partition"] == 0).unwrap();
    let next = p0["last_offset"].as_i64().unwrap() + 1;
    let mut stranded = claims[&0][0].clone();
    stranded["first_offset"] = next.into();
    stranded["last_offset"] = (next + 99).into();
    stranded["data"] = format!("orders/dt=2026-01-01/hour=00/orders+0+{next:020}.ndjson.gz").into();
    stranded
        .as_object_mut()
        .unwrap()
        .remove("first_record_offset");
    std::fs::write(
        root.path()
            .join(format!("_ingest/claims/orders/0/{next:020}.json")),
        serde_json::to_vec(&stranded).unwrap(),
    )
    .unwrap();
    let before = files(root.path());
    let report = status(root.path());
    assert_eq!(files(root.path()), before, "status wrote nothing");
    let p0 = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == 0)
        .unwrap()
        .clone();
    assert_eq!(p0["last_offset"], next + 99);
    assert_eq!(p0["last_file_exists"], false, "stranded: {p0:#}");
    assert_eq!(p0["chain_breaks"], 0);

    // The table says the same for people.
    let table = status_table(root.path());
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains(" yes ") && row.contains(&(next + 99).to_string()),
        "{table}"
    );
}

/// The demo's 2,000 records over 2 partitions landed in `format`, in a new directory.
fn demo_in(format: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let demo = Command::new(env!("CARGO_BIN_EXE_ingest-cli"))
        .args(["demo", "--records", "2000", "--partitions", "2", "--out"])
        .arg(root.path())
        .env("INGEST_FORMAT", format)
        .output()
        .expect("ingest-cli runs");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    root
}

#[test]
fn status_names_the_running_parquet_schema() {
    let root = demo_in("parquet");
    let versions = files(&root.path().join("_ingest/schemas/orders"));
    let (latest, bytes) = versions.iter().next_back().expect("a schema version");
    let written: Value = serde_json::from_slice(bytes).unwrap();
    let columns: Vec<Value> = written["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f[0].clone())
        .collect();
    let report = status(root.path());
    assert_eq!(
        report["schema"]["version"].as_u64(),
        latest.trim_end_matches(".json").parse::<u64>().ok()
    );
    assert_eq!(report["schema"]["columns"].as_array().unwrap(), &columns);
}

#[test]
fn status_reads_the_groups_committed_offsets_and_lag_from_the_broker() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("orders", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for (p, n) in [(0, 10), (1, 4)] {
        for i in 0..n {
            let v = format!("{{\"i\":{i}}}");
            producer
                .send(BaseRecord::<(), _>::to("orders").partition(p).payload(&v))
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
    producer.flush(std::time::Duration::from_secs(10)).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "sink")
        .create()
        .unwrap();
    let mut at = TopicPartitionList::new();
    at.add_partition_offset("orders", 0, Offset::Offset(7))
        .unwrap();
    consumer.commit(&at, CommitMode::Sync).unwrap();

    let empty = tempfile::tempdir().unwrap();
    let out = cli(&[
        "status",
        "--storage-url",
        empty.path().to_str().unwrap(),
        "--topic",
        "orders",
        "--bootstrap-servers",
        &brokers,
        "--group",
        "sink",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let figures: Vec<(Value, Value, Value, Value)> = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].clone(),
                p["committed"].clone(),
                p["high_watermark"].clone(),
                p["lag"].clone(),
            )
        })
        .collect();
    assert_eq!(
        figures,
        [
            (0.into(), 7.into(), 10.into(), 3.into()),
            (1.into(), Value::Null, 4.into(), 4.into())
        ]
    );
}

#[test]
fn status_reads_a_delta_tables_version_and_what_each_partition_added() {
    let root = demo_in("delta");
    let before = files(root.path());
    let report = status(root.path());
    assert!(report["table_version"].as_u64().is_some(), "{report}");
    let partitions = report["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{report}");
    for p in partitions {
        // The stop's last table commit added everything the chain landed.
        assert!(p["last_offset"].as_i64().is_some(), "{p}");
        assert_eq!(p["in_table"], p["last_offset"], "{p}");
    }
    let text = status_table(root.path());
    assert!(text.contains("Delta table version"), "{text}");
    assert_eq!(files(root.path()), before, "status writes nothing");
}
