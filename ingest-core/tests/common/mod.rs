//! Shared test helpers: a real Kafka-protocol broker (librdkafka's mock cluster, in process,
//! reachable over TCP by other processes too), a producer, and readers for what landed.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use ingest::{CancellationToken, Pipeline, Progress};

pub mod process;
pub mod proxy;
pub mod registry;
pub mod servers;
pub mod tansu;

/// A fresh, collision-free name for topics and groups.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Broker {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub brokers: String,
}

impl Broker {
    pub fn with_topic(topic: &str, partitions: i32) -> Broker {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster
            .create_topic(topic, partitions, 1)
            .expect("create topic");
        let brokers = cluster.bootstrap_servers();
        Broker { cluster, brokers }
    }
}

/// What most tests start from: a fresh topic on its own mock broker, a consumer group, an
/// empty landing directory, and the pipeline environment for them.
pub struct Fixture {
    pub topic: String,
    pub group: String,
    pub broker: Broker,
    pub dir: tempfile::TempDir,
    pub vars: Vec<(String, String)>,
}

impl Fixture {
    pub fn new(prefix: &str, partitions: i32) -> Fixture {
        let (topic, group) = (unique(prefix), unique("group"));
        let broker = Broker::with_topic(&topic, partitions);
        let dir = tempfile::tempdir().unwrap();
        let vars = env(&broker.brokers, &topic, &group, dir.path());
        Fixture {
            topic,
            group,
            broker,
            dir,
            vars,
        }
    }
}

/// Produces `values` to `partition` (in order, keyed `k0`, `k1`, ...) and waits until the
/// broker acknowledged them.
pub fn produce_to(brokers: &str, topic: &str, partition: i32, values: &[Vec<u8>]) {
    let keyed: Vec<(Vec<u8>, Vec<u8>)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}").into_bytes(), v.clone()))
        .collect();
    produce_keyed(brokers, topic, partition, &keyed);
}

/// Produces `(key, value)` records to `partition` (in order) and waits until the broker
/// acknowledged them.
pub fn produce_keyed(brokers: &str, topic: &str, partition: i32, records: &[(Vec<u8>, Vec<u8>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "2")
        .create()
        .expect("producer");
    for (key, v) in records {
        let mut record = BaseRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(v);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(5));
                    record = r;
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("flush producer");
}

/// Produces `per_partition` JSON records `{"p":..,"n":..}` to each of `partitions`.
pub fn produce_json(
    brokers: &str,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    start: usize,
) {
    for p in 0..partitions {
        let values: Vec<Vec<u8>> = (start..start + per_partition)
            .map(|n| format!(r#"{{"p":{p},"n":{n},"text":"héllo wörld {n}"}}"#).into_bytes())
            .collect();
        produce_to(brokers, topic, p, &values);
    }
}

/// High watermark (next offset) per partition.
pub fn high_watermarks(brokers: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            (
                p,
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap()
                    .1,
            )
        })
        .collect()
}

/// Offsets committed by `group` per partition, as the broker reports them (-1: none).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    got.elements()
        .iter()
        .map(|e| {
            (
                e.partition(),
                if let Offset::Offset(o) = e.offset() {
                    o
                } else {
                    -1
                },
            )
        })
        .collect()
}

/// Sets `group`'s committed offset of `partition` as an operator's tool would (no metadata):
/// as a member of the group, which the mock broker requires for a commit.
pub fn reset_group(brokers: &str, group: &str, topic: &str, partition: i32, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while consumer.assignment().unwrap().count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never joined the group"
        );
        let _ = consumer.poll(Duration::from_millis(50));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
    // Leave the group before the service joins it (or it waits out the session timeout).
    consumer.unsubscribe();
    for _ in 0..20 {
        let _ = consumer.poll(Duration::from_millis(50));
    }
}

/// [`committed`], from an async test (it blocks on the broker).
pub async fn committed_now(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let (b, g, t) = (brokers.to_string(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || committed(&b, &g, &t, partitions))
        .await
        .unwrap()
}

/// Waits (with a deadline) until the broker reports `group`'s commits at the high watermarks.
/// The commit is the observable event; it happens in another component, so it is polled.
pub fn wait_committed(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    within: Duration,
) -> BTreeMap<i32, i64> {
    let high = high_watermarks(brokers, topic, partitions);
    let deadline = Instant::now() + within;
    loop {
        let c = committed(brokers, group, topic, partitions);
        if c == high {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "commits {c:?} did not reach {high:?} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every landed data file under `<root>/<topic>/`, with its decoded lines.
pub fn landed_files(root: &Path, topic: &str) -> Vec<(PathBuf, Vec<Value>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(topic)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), read_lines(&path)));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn read_lines(path: &Path) -> Vec<Value> {
    let raw = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "parquet") {
        return parquet_rows(raw);
    }
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(raw).unwrap()
    };
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()))
        })
        .collect()
}

/// A Parquet file's rows as JSON (arrow-json's writer, `_timestamp` left out), with the
/// coordinates also under the
/// NDJSON metadata envelope's names (`partition`, `offset`), so the same checks read both.
pub fn parquet_rows(raw: Vec<u8>) -> Vec<Value> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(raw),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let mut batch = batch.unwrap();
        // arrow-json writes a "UTC" timestamp only with chrono-tz; the tests compare offsets.
        if let Ok(i) = batch.schema().index_of("_timestamp") {
            batch.remove_column(i);
        }
        let mut w = arrow_json::ArrayWriter::new(Vec::new());
        w.write(&batch).unwrap();
        w.finish().unwrap();
        let rows: Vec<Value> = serde_json::from_slice(&w.into_inner()).unwrap();
        for mut row in rows {
            let m = row.as_object_mut().unwrap();
            for (from, to) in [("_partition", "partition"), ("_offset", "offset")] {
                if let Some(v) = m.get(from).cloned() {
                    m.insert(to.into(), v);
                }
            }
            out.push(row);
        }
    }
    out
}

/// (partition, offset) of every line (metadata envelope), asserting no pair appears twice.
pub fn landed_offsets(root: &Path, topic: &str) -> BTreeMap<i32, Vec<i64>> {
    let mut seen = BTreeSet::new();
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (path, lines) in landed_files(root, topic) {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with(&format!("{topic}+")),
            "unexpected file {name}"
        );
        for line in lines {
            let (p, o) = (
                line["partition"].as_i64().unwrap() as i32,
                line["offset"].as_i64().unwrap(),
            );
            assert!(
                seen.insert((p, o)),
                "offset {p}@{o} landed twice (second time in {name})"
            );
            by_partition.entry(p).or_default().push(o);
        }
    }
    for offsets in by_partition.values_mut() {
        offsets.sort_unstable();
    }
    by_partition
}

/// Asserts every offset below the high watermark of every partition landed exactly once.
pub fn assert_exactly_once(root: &Path, topic: &str, high: &BTreeMap<i32, i64>) {
    let landed = landed_offsets(root, topic);
    for (p, hw) in high {
        let expected: Vec<i64> = (0..*hw).collect();
        let got = landed.get(p).cloned().unwrap_or_default();
        assert_eq!(
            got.len(),
            expected.len(),
            "partition {p}: {} offsets landed, expected {hw}",
            got.len()
        );
        assert_eq!(got, expected, "partition {p}");
    }
}

/// Identity of every file under `root`: (size, mtime ns, inode, content). A rewrite changes it.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, i64, u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let id = (
                    meta.len(),
                    meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                    meta.ino(),
                    std::fs::read(&path).unwrap(),
                );
                out.insert(path, id);
            }
        }
    }
    out
}

/// Asserts every file in `before` is still there, unchanged.
pub fn assert_nothing_rewritten(before: &BTreeMap<PathBuf, (u64, i64, u64, Vec<u8>)>, root: &Path) {
    let after = snapshot(root);
    for (path, id) in before {
        let now = after
            .get(path)
            .unwrap_or_else(|| panic!("{} disappeared", path.display()));
        assert!(now == id, "{} was rewritten", path.display());
    }
}

/// Environment for a pipeline on `brokers`/`topic` landing in `dir`, fast flushes for tests.
pub fn env(brokers: &str, topic: &str, group: &str, dir: &Path) -> Vec<(String, String)> {
    [
        ("INGEST_TOPIC", topic),
        ("INGEST_KAFKA_BOOTSTRAP_SERVERS", brokers),
        ("INGEST_KAFKA_GROUP_ID", group),
        ("INGEST_STORAGE_URL", dir.to_str().unwrap()),
        ("INGEST_ENVELOPE", "metadata"),
        ("INGEST_FLUSH_MAX_RECORDS", "150"),
        ("INGEST_FLUSH_MAX_AGE_MS", "300"),
        ("INGEST_KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ("INGEST_KAFKA_HEARTBEAT_INTERVAL_MS", "500"),
        ("INGEST_LOG_FORMAT", "text"),
        ("INGEST_HTTP_ADDR", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A buffer cap of `cap` bytes with the other flush triggers out of reach, so every flush before
/// shutdown is a memory-pressure flush.
pub fn only_memory_pressure(vars: &[(String, String)], cap: usize) -> ingest::Config {
    let cap = cap.to_string();
    config(
        vars,
        &[
            ("INGEST_MAX_BUFFER_BYTES", &cap),
            ("INGEST_FLUSH_MAX_BYTES", &cap),
            ("INGEST_FLUSH_MAX_RECORDS", "1000000"),
            ("INGEST_FLUSH_MAX_AGE_MS", "3600000"),
        ],
    )
}

pub fn config(vars: &[(String, String)], extra: &[(&str, &str)]) -> ingest::Config {
    let mut vars = vars.to_vec();
    for (k, v) in extra {
        vars.retain(|(key, _)| key != k);
        vars.push((k.to_string(), v.to_string()));
    }
    ingest::Config::from_pairs(vars).expect("valid test config")
}

pub const WAIT: Duration = Duration::from_secs(60);

/// The service's logs, captured with the test's output (shown when it fails): `info` unless
/// `INGEST_TEST_LOG` names another filter.
fn test_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("INGEST_TEST_LOG").unwrap_or_else(|_| "ingest=info".into());
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .try_init();
    });
}

/// A pipeline running in the background: its shutdown token, progress and handle.
pub type Running = (
    CancellationToken,
    tokio::sync::watch::Receiver<Progress>,
    tokio::task::JoinHandle<Result<Progress, ingest::Error>>,
);

/// Runs a pipeline in the background.
pub fn start(config: ingest::Config) -> Running {
    test_logs();
    let pipeline = Pipeline::new(config);
    let progress = pipeline.progress();
    let token = CancellationToken::new();
    let handle = tokio::spawn(pipeline.run(token.clone()));
    (token, progress, handle)
}

/// Waits until `progress` shows commits at the high watermarks.
pub async fn until_committed(
    progress: &mut tokio::sync::watch::Receiver<Progress>,
    high: &std::collections::BTreeMap<i32, i64>,
) {
    let wait = progress.wait_for(|p| {
        high.iter()
            .all(|(part, hw)| *hw == 0 || p.committed.get(part) == Some(hw))
    });
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("records landed in time")
        .expect("pipeline running");
}

/// Makes every local-disk write fail, root or not: a file where the staging directory goes.
pub fn break_storage(root: &std::path::Path) {
    let staging = root.join("_ingest").join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::write(&staging, b"not a directory").unwrap();
}

pub fn restore_storage(root: &std::path::Path) {
    std::fs::remove_file(root.join("_ingest").join("staging")).unwrap();
}

/// Writes a claim as an earlier release would have (no digest, no encoding), for partition 0
/// at offset 0.
pub fn write_claim(root: &std::path::Path, topic: &str, last: i64, data: &str) {
    let claim = ingest::land::recovery::Claim {
        version: 1,
        topic: topic.into(),
        partition: 0,
        first_offset: 0,
        last_offset: last,
        data: data.into(),
        dead_letters: format!("_dead_letters/{data}"),
        claimed_at_ms: 0,
        first_record: None,
        first_record_offset: None,
        last_record: None,
        cluster: None,
        encoding: None,
        files: Vec::new(),
        placed_by: None,
    };
    let path = root.join(ingest::land::naming::claim_path(topic, 0, 0));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec(&claim).unwrap()).unwrap();
}
