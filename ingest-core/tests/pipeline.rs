//! The pipeline in process against a real Kafka-protocol broker (librdkafka's mock cluster over
//! TCP) and the local filesystem.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_over_three_partitions_land_exactly_once_and_restart_adds_no_duplicates() {
    let Fixture {
        topic,
        group,
        broker,
        dir,
        vars,
    } = Fixture::new("orders", 3);
    produce_json(&broker.brokers, &topic, 3, 400, 0);
    let high = high_watermarks(&broker.brokers, &topic, 3);
    assert_eq!(high.values().sum::<i64>(), 1200);

    let (token, mut progress, handle) = start(config(&vars, &[]));
    until_committed(&mut progress, &high).await;
    token.cancel();
    let first = handle.await.unwrap().unwrap();
    assert_eq!(first.records, 1200);
    assert!(
        first.files >= 9,
        "150-record files: at least 3 per partition, got {}",
        first.files
    );
    assert_exactly_once(dir.path(), &topic, &high);
    // The broker holds last + 1 for every partition.
    assert_eq!(committed(&broker.brokers, &group, &topic, 3), high);
    // File names: Hive directories, no partition= directory, first offset zero-padded.
    for (path, lines) in landed_files(dir.path(), &topic) {
        let rel = path
            .strip_prefix(dir.path())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(rel.contains("/dt=") && rel.contains("/hour="), "{rel}");
        assert!(!rel.contains("partition="), "{rel}");
        let first_offset = lines[0]["offset"].as_i64().unwrap();
        assert!(
            rel.ends_with(&format!(
                "+{}+{first_offset:020}.ndjson.gz",
                lines[0]["partition"]
            )),
            "{rel}"
        );
        assert!(lines.len() <= 150);
    }
    let before = snapshot(dir.path());

    // Restart with more data: only the new records land, nothing is rewritten.
    produce_json(&broker.brokers, &topic, 3, 100, 400);
    let high = high_watermarks(&broker.brokers, &topic, 3);
    let (token, mut progress, handle) = start(config(&vars, &[]));
    until_committed(&mut progress, &high).await;
    token.cancel();
    let second = handle.await.unwrap().unwrap();
    assert_eq!(
        second.records, 300,
        "the restart resumes from the committed offsets"
    );
    assert_exactly_once(dir.path(), &topic, &high);
    assert_nothing_rewritten(&before, dir.path());
    // Nothing temporary is left anywhere, and nothing at all under the data path but data files.
    let staging = dir.path().join("_ingest/staging");
    assert!(
        std::fs::read_dir(&staging).map_or(0, |d| d.count()) == 0,
        "staging files left over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_consumer_joining_mid_stream_leaves_an_exact_landed_set() {
    let Fixture {
        topic,
        group,
        broker,
        dir,
        vars,
    } = Fixture::new("rebalance", 4);
    produce_json(&broker.brokers, &topic, 4, 300, 0);

    let (token_a, mut progress_a, handle_a) = start(config(&vars, &[]));
    tokio::time::timeout(WAIT, progress_a.wait_for(|p| p.files >= 4))
        .await
        .unwrap()
        .unwrap();

    let (token_b, mut progress_b, handle_b) = start(config(&vars, &[]));
    // Keep producing while the group rebalances.
    let brokers = broker.brokers.clone();
    let t = topic.clone();
    let producer = tokio::task::spawn_blocking(move || {
        for round in 0..5 {
            produce_json(&brokers, &t, 4, 60, 300 + round * 60);
        }
    });
    producer.await.unwrap();
    tokio::time::timeout(WAIT, progress_b.wait_for(|p| p.records > 0))
        .await
        .expect("the second consumer got partitions")
        .unwrap();

    let high = high_watermarks(&broker.brokers, &topic, 4);
    let committed_now = tokio::task::spawn_blocking({
        let (b, g, t) = (broker.brokers.clone(), group.clone(), topic.clone());
        move || wait_committed(&b, &g, &t, 4, WAIT)
    });
    assert_eq!(committed_now.await.unwrap(), high);
    token_a.cancel();
    token_b.cancel();
    let (a, b) = (
        handle_a.await.unwrap().unwrap(),
        handle_b.await.unwrap().unwrap(),
    );
    assert!(a.records > 0 && b.records > 0);
    assert_exactly_once(dir.path(), &topic, &high);
    assert_eq!(
        a.records + b.records,
        high.values().sum::<i64>() as u64,
        "no record landed twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_file_never_landed_is_completed_at_its_end() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("claimed", 1);
    produce_json(&broker.brokers, &topic, 1, 40, 0);
    // The earlier incarnation claimed 0..=17 (its batches were larger) and died before uploading.
    let data = format!(
        "{topic}/dt=2020-01-01/hour=00/{topic}+0+{:020}.ndjson.gz",
        0
    );
    write_claim(dir.path(), &topic, 17, &data);

    let (token, mut progress, handle) = start(config(&vars, &[("INGEST_FLUSH_MAX_RECORDS", "5")]));
    until_committed(&mut progress, &high_watermarks(&broker.brokers, &topic, 1)).await;
    token.cancel();
    handle.await.unwrap().unwrap();

    let completed = read_lines(&dir.path().join(&data));
    let offsets: Vec<i64> = completed
        .iter()
        .map(|l| l["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(
        offsets,
        (0..=17).collect::<Vec<_>>(),
        "the claimed file holds exactly the claimed range"
    );
    assert_exactly_once(
        dir.path(),
        &topic,
        &high_watermarks(&broker.brokers, &topic, 1),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landed_but_uncommitted_file_is_skipped_not_duplicated_or_rewritten() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("landed", 1);
    produce_json(&broker.brokers, &topic, 1, 30, 0);
    // The earlier incarnation landed 0..=11 in one file and died before committing.
    let data = format!("{topic}/dt=2020-01-01/hour=00/{topic}+0+{:020}.ndjson", 0);
    let lines: String = (0..=11)
        .map(|o| format!("{{\"partition\":0,\"offset\":{o}}}\n"))
        .collect();
    std::fs::create_dir_all(dir.path().join(&data).parent().unwrap()).unwrap();
    std::fs::write(dir.path().join(&data), lines).unwrap();
    write_claim(dir.path(), &topic, 11, &data);
    let before = snapshot(dir.path());

    let (token, mut progress, handle) = start(config(&vars, &[("INGEST_FLUSH_MAX_RECORDS", "5")]));
    let high = high_watermarks(&broker.brokers, &topic, 1);
    until_committed(&mut progress, &high).await;
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert_eq!(run.records, 18, "only offsets 12..=29 are new");
    assert_exactly_once(dir.path(), &topic, &high);
    assert_nothing_rewritten(&before, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_goes_to_dead_letters_outside_the_data_path_or_stops_the_service() {
    let Fixture {
        topic,
        group,
        broker,
        dir,
        vars,
    } = Fixture::new("invalid", 1);
    let values: Vec<Vec<u8>> = vec![
        b"{\"ok\":1}".to_vec(),
        b"{broken".to_vec(),
        b"{\n  \"pretty\": true\n}".to_vec(),
    ];
    produce_to(&broker.brokers, &topic, 0, &values);

    // Policy fail: the service stops with the coordinates, and commits nothing.
    let (_token, _progress, handle) = start(config(
        &vars,
        &[
            ("INGEST_INVALID_RECORD_POLICY", "fail"),
            ("INGEST_ENVELOPE", "raw"),
        ],
    ));
    let err = tokio::time::timeout(WAIT, handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{topic}/0@1")) && err.contains("INGEST_INVALID_RECORD_POLICY"),
        "{err}"
    );
    assert_eq!(committed(&broker.brokers, &group, &topic, 1)[&0], -1);

    // Policy dead-letter: valid records land (compacted), the bad one is kept with its error.
    let (token, mut progress, handle) = start(config(&vars, &[("INGEST_ENVELOPE", "raw")]));
    until_committed(&mut progress, &high_watermarks(&broker.brokers, &topic, 1)).await;
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert_eq!((run.records, run.dead_letters), (2, 1));
    let data = landed_files(dir.path(), &topic);
    assert_eq!(data.len(), 1);
    assert_eq!(
        data[0].1,
        vec![
            serde_json::json!({"ok": 1}),
            serde_json::json!({"pretty": true})
        ]
    );
    let dead = landed_files(&dir.path().join("_dead_letters"), &topic);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1[0]["offset"], 1);
    assert_eq!(dead[0].1[0]["value_base64"], "e2Jyb2tlbg==");
    assert!(
        dead[0].1[0]["error"]
            .as_str()
            .unwrap()
            .contains("key must be a string"),
        "{}",
        dead[0].1[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_partition_is_flushed_by_the_timer() {
    let Fixture {
        topic,
        broker,
        dir: _dir,
        vars,
        ..
    } = Fixture::new("quiet", 2);
    produce_json(&broker.brokers, &topic, 2, 3, 0);
    // Neither size trigger can fire: only the age timer lands these records.
    let (token, mut progress, handle) = start(config(
        &vars,
        &[
            ("INGEST_FLUSH_MAX_RECORDS", "1000000"),
            ("INGEST_FLUSH_MAX_AGE_MS", "200"),
        ],
    ));
    until_committed(&mut progress, &high_watermarks(&broker.brokers, &topic, 2)).await;
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert_eq!((run.files, run.records), (2, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_buffer_cap_forces_early_flushes_and_pauses_yet_lands_exactly_once() {
    let Fixture {
        topic,
        group,
        broker,
        dir,
        vars,
    } = Fixture::new("capped", 3);
    produce_json(&broker.brokers, &topic, 3, 400, 0);
    let high = high_watermarks(&broker.brokers, &topic, 3);
    // Each record is ~40 bytes: 1,200 records are ~50 KB against a 6 KB cap. No size or age
    // trigger can fire, so every flush is a memory-pressure flush.
    let (token, mut progress, handle) = start(only_memory_pressure(&vars, 6000));
    // Memory-pressure flushes land most records; the tail below the cap waits for its age
    // trigger, so shutdown flushes it.
    let pressure = progress.wait_for(|p| p.records >= 1000);
    tokio::time::timeout(WAIT, pressure)
        .await
        .expect("pressure flushes")
        .unwrap();
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert!(
        run.files >= 8,
        "the cap forced many small files, got {}",
        run.files
    );
    // Shutdown stops fetching: what landed is exactly what was committed, no more, no less.
    let done: std::collections::BTreeMap<i32, i64> = committed(&broker.brokers, &group, &topic, 3)
        .into_iter()
        .map(|(p, c)| (p, c.max(0)))
        .collect();
    assert_exactly_once(dir.path(), &topic, &done);
    // A second run under the same cap lands the rest. Partitions that were already complete
    // get no commit from this run, so the broker's view is what we wait for.
    let (token, _progress, handle) = start(config(
        &vars,
        &[
            ("INGEST_MAX_BUFFER_BYTES", "6000"),
            ("INGEST_FLUSH_MAX_BYTES", "6000"),
        ],
    ));
    let (b, g, t) = (broker.brokers.clone(), group.clone(), topic.clone());
    tokio::task::spawn_blocking(move || wait_committed(&b, &g, &t, 3, WAIT))
        .await
        .unwrap();
    token.cancel();
    handle.await.unwrap().unwrap();
    assert_exactly_once(dir.path(), &topic, &high);
}
