//! End to end against a Kafka-protocol broker in its own process that is not librdkafka's
//! mock: tansu with SQLite storage. The service runs as its own process too, and the landed
//! files are read back by DuckDB. `bash .ci/install-deps` installs both; a missing one fails
//! the test with how to install it.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::tansu::*;
use common::*;

fn run_service_until_committed(
    vars: &[(String, String)],
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingest-sink"))
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "info,librdkafka=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_committed(brokers, group, topic, partitions, Duration::from_secs(120));
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "clean exit after SIGTERM");
}

#[test]
fn lands_exactly_once_from_tansu_and_duckdb_reads_it_back() {
    let tansu = Tansu::start();
    let (topic, group) = (unique("tansu"), unique("group"));
    create_topic(&tansu.brokers, &topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let vars = env(&tansu.brokers, &topic, &group, dir.path());

    produce_json(&tansu.brokers, &topic, 3, 200, 0);
    run_service_until_committed(&vars, &tansu.brokers, &group, &topic, 3);
    let before = snapshot(dir.path());

    // A restart with more data resumes from tansu's committed offsets.
    produce_json(&tansu.brokers, &topic, 3, 50, 200);
    run_service_until_committed(&vars, &tansu.brokers, &group, &topic, 3);
    let high = high_watermarks(&tansu.brokers, &topic, 3);
    assert_eq!(high, BTreeMap::from([(0, 250), (1, 250), (2, 250)]));
    assert_exactly_once(dir.path(), &topic, &high);
    assert_nothing_rewritten(&before, dir.path());

    // DuckDB reads the files with Hive partitioning: counts and fields match.
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/read_landed.py"
        ))
        .arg(dir.path())
        .arg(&topic)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "DuckDB read failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 3);
    let today = ingest::land::naming::hive_dir(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    for (p, row) in rows.iter().enumerate() {
        assert_eq!(row["partition"], p as i64);
        assert_eq!(row["records"], 250);
        assert_eq!(row["distinct_offsets"], 250);
        assert_eq!(row["topic_rows"], 250);
        assert_eq!(
            (row["min_offset"].as_i64(), row["max_offset"].as_i64()),
            (Some(0), Some(249))
        );
        assert!(
            today.starts_with(&format!("dt={}", row["dt"].as_str().unwrap())),
            "{row} vs {today}"
        );
        assert!(
            row["sample_text"]
                .as_str()
                .unwrap()
                .starts_with("héllo wörld"),
            "{row}"
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the service in process until it stops on its own; returns its error.
fn stops_with(vars: &[(String, String)]) -> ingest::Error {
    let rt = runtime();
    rt.block_on(async {
        let (_token, _progress, handle) = start(config(vars, &[]));
        tokio::time::timeout(WAIT, handle)
            .await
            .expect("the service stops instead of skipping")
            .unwrap()
            .expect_err("the old chain does not stand for the new records")
    })
}

#[test]
fn a_topic_deleted_and_recreated_under_its_old_claims_stops_instead_of_skipping() {
    let tansu = Tansu::start();
    let topic = unique("recreated");
    create_topic(&tansu.brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let vars = env(&tansu.brokers, &topic, &unique("group"), dir.path());
    produce_json(&tansu.brokers, &topic, 1, 500, 0);
    let rt = runtime();
    rt.block_on(async {
        let (token, mut progress, handle) = start(config(&vars, &[]));
        until_committed(&mut progress, &high_watermarks(&tansu.brokers, &topic, 1)).await;
        token.cancel();
        assert_eq!(handle.await.unwrap().unwrap().records, 500);
    });
    let landed = snapshot(dir.path());

    // Deleted and created again: offsets start at 0 under the old chain (0..=499). A new group
    // starting at `latest` (on the release before the chain, the next 300 records were skipped,
    // offsets committed to 500 on a partition whose next offset was 300).
    delete_topic(&tansu.brokers, &topic);
    create_topic(&tansu.brokers, &topic, 1);
    let group = unique("group");
    let mut fresh = env(&tansu.brokers, &topic, &group, dir.path());
    fresh.push(("INGEST_KAFKA_AUTO_OFFSET_RESET".into(), "latest".into()));
    let error = stops_with(&fresh);
    let line = error.to_string();
    assert!(
        matches!(error, ingest::Error::ChainRefused { partition: 0, .. }) && !error.is_retryable(),
        "{line}"
    );
    assert!(
        line.contains("ends at offset 499") && line.contains("next offset is 0"),
        "{line}"
    );

    // With more records than the old chain, the chain's last record (offset 499) is another.
    produce_json(&tansu.brokers, &topic, 1, 600, 1_000);
    let error = stops_with(&fresh);
    let line = error.to_string();
    assert!(
        matches!(error, ingest::Error::ChainMismatch { offset: 499, .. }),
        "{line}"
    );
    assert!(line.contains("recreated") && !line.contains('\n'), "{line}");
    let committed = committed(&tansu.brokers, &group, &topic, 1);
    assert!(
        committed.values().all(|o| *o < 0),
        "nothing committed: {committed:?}"
    );
    assert_nothing_rewritten(&landed, dir.path());
    assert_eq!(snapshot(dir.path()).len(), landed.len(), "no file added");
}

/// Commits `next_offset` for `partition` as a client outside the group's current generation
/// would (a member's commit queued before a rebalance and sent after it): tansu takes it.
fn commit_from_outside(brokers: &str, group: &str, topic: &str, partition: i32, next: i64) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(next))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
}

#[test]
fn a_group_offset_put_back_while_the_topic_is_quiet_is_committed_again() {
    let tansu = Tansu::start();
    let (topic, group) = (unique("kept"), unique("group"));
    create_topic(&tansu.brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let vars = env(&tansu.brokers, &topic, &group, dir.path());
    produce_json(&tansu.brokers, &topic, 1, 60, 0);
    let rt = runtime();
    rt.block_on(async {
        let (token, mut progress, handle) = start(config(&vars, &[]));
        let high = high_watermarks(&tansu.brokers, &topic, 1);
        until_committed(&mut progress, &high).await;
        let (b, g, t) = (tansu.brokers.clone(), group.clone(), topic.clone());
        tokio::task::spawn_blocking(move || commit_from_outside(&b, &g, &t, 0, 10))
            .await
            .unwrap();
        assert_eq!(
            committed_now(&tansu.brokers, &group, &topic, 1).await,
            BTreeMap::from([(0, 10)]),
            "the broker took the older commit"
        );
        // Nothing more is produced: only the service's check of the group's positions
        // (every 10 s) can put the offset back where the landed files end.
        let (b, g, t) = (tansu.brokers.clone(), group.clone(), topic.clone());
        let restored = tokio::task::spawn_blocking(move || {
            wait_committed(&b, &g, &t, 1, Duration::from_secs(40))
        });
        assert_eq!(restored.await.unwrap(), high);
        token.cancel();
        handle.await.unwrap().expect("clean stop");
    });
}
