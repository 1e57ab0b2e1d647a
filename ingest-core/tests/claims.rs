//! Claims under what deployments meet over months, in process against real Kafka-protocol
//! brokers (librdkafka's mock cluster over TCP) and the local filesystem: another cluster (or a
//! recreated topic: offsets start again at 0 under an old claim chain), a claim completed after
//! the encoding settings changed, files found at claimed names.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cluster_under_an_old_chain_stops_instead_of_skipping_its_records() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("recreated", 1);
    produce_json(&broker.brokers, &topic, 1, 30, 0);
    let (token, mut progress, handle) = start(config(&vars, &[("INGEST_FLUSH_MAX_RECORDS", "10")]));
    until_committed(&mut progress, &high_watermarks(&broker.brokers, &topic, 1)).await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().records, 30);
    let landed = snapshot(dir.path());

    // The same topic name on another cluster (a migration, a disaster-recovery cluster): its
    // offsets start at 0 again under the old claim chain, with other records; a new group.
    let recreated = Broker::with_topic(&topic, 1);
    produce_json(&recreated.brokers, &topic, 1, 40, 1_000);
    let group = unique("group");
    let vars = env(&recreated.brokers, &topic, &group, dir.path());
    let (_token, _progress, handle) = start(config(&vars, &[("INGEST_FLUSH_MAX_RECORDS", "10")]));
    let stopped = tokio::time::timeout(WAIT, handle)
        .await
        .expect("the service stops instead of skipping")
        .unwrap();
    let error = stopped.expect_err("the old claims do not stand for the new records");
    let line = error.to_string();
    assert!(
        matches!(error, ingest::Error::ChainRefused { partition: 0, .. }) && !error.is_retryable(),
        "{line}"
    );
    assert!(
        line.contains(&ingest::land::naming::claim_path(&topic, 0, 20))
            && line.contains("cluster")
            && line.contains("recreated")
            && line.contains("INGEST_STORAGE_URL")
            && !line.contains('\n'),
        "{line}"
    );
    let committed = committed_now(&recreated.brokers, &group, &topic, 1).await;
    assert!(
        committed.values().all(|o| *o < 0),
        "nothing committed past the new records: {committed:?}"
    );
    assert_nothing_rewritten(&landed, dir.path());
    assert_eq!(snapshot(dir.path()).len(), landed.len(), "no file added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_completed_with_the_encoding_it_was_made_with() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("reencoded", 1);
    produce_json(&broker.brokers, &topic, 1, 20, 0);
    // An earlier release, gzip-compressing, claimed 0..=11 and died before uploading; the
    // service now runs with compression off.
    let data = format!(
        "{topic}/dt=2020-01-01/hour=00/{topic}+0+{:020}.ndjson.gz",
        0
    );
    write_claim(dir.path(), &topic, 11, &data);
    let (token, mut progress, handle) = start(config(
        &vars,
        &[
            ("INGEST_COMPRESSION", "none"),
            ("INGEST_FLUSH_MAX_RECORDS", "5"),
        ],
    ));
    until_committed(&mut progress, &high_watermarks(&broker.brokers, &topic, 1)).await;
    token.cancel();
    handle.await.unwrap().unwrap();

    let raw = std::fs::read(dir.path().join(&data)).unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "a .gz name holds gzip");
    let offsets: Vec<i64> = read_lines(&dir.path().join(&data))
        .iter()
        .map(|l| l["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, (0..=11).collect::<Vec<_>>());
    // What lands after it follows today's setting.
    let later: Vec<_> = landed_files(dir.path(), &topic)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    assert!(!later.is_empty(), "the rest lands uncompressed");
    assert_exactly_once(
        dir.path(),
        &topic,
        &high_watermarks(&broker.brokers, &topic, 1),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_conflict_is_retried_not_taken_for_an_existing_file() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("conflict", 1);
    produce_json(&broker.brokers, &topic, 1, 30, 0);
    // The first claim and the first data file meet a 409 conflict (another conditional write in
    // flight) although nothing is there.
    let (token, mut progress, handle) = start(config(
        &vars,
        &[
            ("INGEST_FLUSH_MAX_RECORDS", "10"),
            ("INGEST_FAULT_CONFLICT_CREATES", "1,3"),
        ],
    ));
    let high = high_watermarks(&broker.brokers, &topic, 1);
    until_committed(&mut progress, &high).await;
    token.cancel();
    let landed = handle.await.unwrap().unwrap();
    assert!(landed.storage_errors >= 2, "{landed:?}");
    assert_exactly_once(dir.path(), &topic, &high);
    let offsets: usize = landed_files(dir.path(), &topic)
        .iter()
        .map(|(_, lines)| lines.len())
        .sum();
    assert_eq!(offsets, 30, "every record landed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_ending_past_the_partitions_end_stops_the_service_at_once() {
    let Fixture {
        topic,
        group,
        broker,
        dir,
        vars,
    } = Fixture::new("unreachable", 1);
    produce_json(&broker.brokers, &topic, 1, 20, 0);
    // A claim of 0..=100 on a partition whose next offset is 20: those records were never
    // this partition's (a recreated topic; an earlier release's claim names no cluster).
    let data = format!(
        "{topic}/dt=2020-01-01/hour=00/{topic}+0+{:020}.ndjson.gz",
        0
    );
    write_claim(dir.path(), &topic, 100, &data);
    let (_token, _progress, handle) = start(config(
        &vars,
        &[("INGEST_CLAIM_COMPLETION_TIMEOUT_MS", "2000")],
    ));
    // The chain is read again for 10 s (a broker's watermark may lag what it served), then the
    // start is refused.
    let began = std::time::Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(40), handle)
        .await
        .expect("the service stops at the start instead of waiting for ever")
        .unwrap();
    assert!(
        began.elapsed() >= Duration::from_secs(10),
        "read again first"
    );
    let error = stopped.expect_err("a chain past the partition's end stops the service");
    let line = error.to_string();
    assert!(
        matches!(error, ingest::Error::ChainRefused { partition: 0, .. }),
        "{line}"
    );
    assert!(
        line.contains(&ingest::land::naming::claim_path(&topic, 0, 0))
            && line.contains("ends at offset 100")
            && line.contains("next offset is 20"),
        "{line}"
    );
    assert!(
        !dir.path().join(&data).exists(),
        "nothing written at the claimed name"
    );
    let committed = committed_now(&broker.brokers, &group, &topic, 1).await;
    assert_eq!(committed.get(&0), Some(&-1), "nothing committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_file_whose_claim_is_gone_is_never_committed_past() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("unclaimed", 1);
    produce_json(&broker.brokers, &topic, 1, 30, 0);
    let flush = [("INGEST_FLUSH_MAX_RECORDS", "10")];
    let (token, mut progress, handle) = start(config(&vars, &flush));
    until_committed(&mut progress, &high_watermarks(&broker.brokers, &topic, 1)).await;
    token.cancel();
    handle.await.unwrap().unwrap();
    // A lifecycle rule deleted the claims but kept the files; then the group's offsets are
    // gone too, and a consumer reads the partition from the start.
    let claims = dir.path().join("_ingest/claims").join(&topic);
    std::fs::remove_dir_all(&claims).unwrap();
    let landed = snapshot(dir.path());
    // Cut the same way, the batches encode to the very bytes of the files: those are ours, and
    // the chain is claimed again over them, nothing rewritten.
    let group = unique("replay");
    let same_cut = [
        ("INGEST_FLUSH_MAX_RECORDS", "10"),
        ("INGEST_KAFKA_GROUP_ID", group.as_str()),
    ];
    let (token, mut progress, handle) = start(config(&vars, &same_cut));
    until_committed(&mut progress, &high_watermarks(&broker.brokers, &topic, 1)).await;
    token.cancel();
    let again = handle.await.unwrap().unwrap();
    assert_eq!(again.files, 3, "{again:?}");
    assert_nothing_rewritten(&landed, dir.path());
    assert_eq!(landed_files(dir.path(), &topic).len(), 3, "no file added");
    // Cut otherwise, the first batch meets a file of unknown extent at its name.
    std::fs::remove_dir_all(&claims).unwrap();
    let group = unique("replay");
    let (_token, _progress, handle) = start(config(
        &vars,
        &[
            ("INGEST_FLUSH_MAX_RECORDS", "7"),
            ("INGEST_KAFKA_GROUP_ID", &group),
        ],
    ));
    let stopped = tokio::time::timeout(WAIT, handle)
        .await
        .expect("the service stops instead of guessing what the file holds")
        .unwrap();
    let error = stopped.expect_err("a file of unknown extent is not committed past");
    let line = error.to_string();
    assert!(
        matches!(error, ingest::Error::UnclaimedFile { .. }),
        "{line}"
    );
    assert!(
        line.contains(&topic) && line.contains("move it aside"),
        "{line}"
    );
    let claim = dir
        .path()
        .join(ingest::land::naming::claim_path(&topic, 0, 0));
    assert!(!claim.exists(), "the claim made for it is removed again");
    assert_nothing_rewritten(&landed, dir.path());
    let committed = committed_now(&broker.brokers, &group, &topic, 1).await;
    assert_eq!(committed.get(&0), Some(&-1), "nothing committed");
}
