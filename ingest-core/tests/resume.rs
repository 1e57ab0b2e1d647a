//! Where a partition starts is the end of its claim chain in storage, whatever the group's
//! offset says, in process against librdkafka's mock cluster over TCP and the local filesystem:
//! the group's offsets reset into a landed file (as `kafka-consumer-groups --reset-offsets`
//! does), a replay of the whole topic after the group's offsets are lost, a chain whose last
//! claim never got its file, and how many storage requests a normal restart costs. (Neither test
//! broker deletes records: the mock has no DeleteRecords, tansu's SQLite engine leaves it
//! unimplemented; `land::start`'s unit tests hold the retention cases, and `compaction.rs`
//! removes records from tansu's log for the compaction ones.)

mod common;

use common::*;

/// The metadata of `group`'s commit of partition 0.
fn committed_metadata(brokers: &str, group: &str, topic: &str) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = consumer.committed_offsets(tpl, WAIT).unwrap();
    got.elements()[0].metadata().to_string()
}

/// Lands 300 records in three files of 100 and stops; returns what landed.
async fn land_three_files(
    fixture: &Fixture,
) -> std::collections::BTreeMap<std::path::PathBuf, (u64, i64, u64, Vec<u8>)> {
    produce_json(&fixture.broker.brokers, &fixture.topic, 1, 300, 0);
    let (token, mut progress, handle) = start(config(
        &fixture.vars,
        &[("INGEST_FLUSH_MAX_RECORDS", "100")],
    ));
    until_committed(
        &mut progress,
        &high_watermarks(&fixture.broker.brokers, &fixture.topic, 1),
    )
    .await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().files, 3);
    snapshot(fixture.dir.path())
}

/// The fixture's variables under a new consumer group (as after its offsets expired).
fn new_group(fixture: &Fixture) -> Vec<(String, String)> {
    env(
        &fixture.broker.brokers,
        &fixture.topic,
        &unique("group"),
        fixture.dir.path(),
    )
}

/// Runs the service until everything produced is committed; returns how many records it landed.
async fn run_to_the_end(fixture: &Fixture, group_vars: &[(String, String)]) -> u64 {
    let high = high_watermarks(&fixture.broker.brokers, &fixture.topic, 1);
    let (token, mut progress, handle) =
        start(config(group_vars, &[("INGEST_FLUSH_MAX_RECORDS", "100")]));
    until_committed(&mut progress, &high).await;
    token.cancel();
    handle.await.unwrap().unwrap().records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_reset_into_a_landed_file_skips_to_its_end() {
    let fixture = Fixture::new("reset", 1);
    let landed = land_three_files(&fixture).await;
    assert_eq!(
        committed_metadata(&fixture.broker.brokers, &fixture.group, &fixture.topic),
        ingest::source::kafka::commit_metadata(200),
        "the service's own commits are marked and name the chain's last claim"
    );
    reset_group(
        &fixture.broker.brokers,
        &fixture.group,
        &fixture.topic,
        0,
        150,
    );
    produce_json(&fixture.broker.brokers, &fixture.topic, 1, 100, 300);

    let records = run_to_the_end(&fixture, &fixture.vars).await;
    assert_eq!(records, 100, "only the new records landed");
    let high = high_watermarks(&fixture.broker.brokers, &fixture.topic, 1);
    assert_exactly_once(fixture.dir.path(), &fixture.topic, &high);
    assert_nothing_rewritten(&landed, fixture.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_the_whole_topic_after_lost_offsets_lands_nothing_twice() {
    let fixture = Fixture::new("replay", 1);
    let landed = land_three_files(&fixture).await;
    produce_json(&fixture.broker.brokers, &fixture.topic, 1, 100, 300);
    let vars = new_group(&fixture);

    let records = run_to_the_end(&fixture, &vars).await;
    assert_eq!(records, 100, "only the new records landed");
    let high = high_watermarks(&fixture.broker.brokers, &fixture.topic, 1);
    assert_exactly_once(fixture.dir.path(), &fixture.topic, &high);
    assert_nothing_rewritten(&landed, fixture.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_claim_whose_file_never_landed_is_completed_whatever_the_group_says() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        group,
    } = Fixture::new("stranded", 1);
    produce_json(&broker.brokers, &topic, 1, 300, 0);
    // A replica claimed 0..=199 and died before uploading; the group was reset to 150 since
    // (on today's main the service stopped here, the claim named).
    let data = format!(
        "{topic}/dt=2020-01-01/hour=00/{topic}+0+{:020}.ndjson.gz",
        0
    );
    write_claim(dir.path(), &topic, 199, &data);
    reset_group(&broker.brokers, &group, &topic, 0, 150);

    let high = high_watermarks(&broker.brokers, &topic, 1);
    let (token, mut progress, handle) =
        start(config(&vars, &[("INGEST_FLUSH_MAX_RECORDS", "100")]));
    until_committed(&mut progress, &high).await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let offsets: Vec<i64> = read_lines(&dir.path().join(&data))
        .iter()
        .map(|l| l["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(
        offsets,
        (0..=199).collect::<Vec<_>>(),
        "completed as claimed"
    );
    assert_exactly_once(dir.path(), &topic, &high);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_restart_finds_the_chain_end_without_listing() {
    let fixture = Fixture::new("restart-cost", 1);
    let landed = land_three_files(&fixture).await;
    produce_json(&fixture.broker.brokers, &fixture.topic, 1, 50, 300);
    let high = high_watermarks(&fixture.broker.brokers, &fixture.topic, 1);
    let (token, mut progress, handle) = start(config(
        &fixture.vars,
        &[("INGEST_FLUSH_MAX_RECORDS", "100")],
    ));
    until_committed(&mut progress, &high).await;
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert_eq!(run.records, 50, "only the new records landed");
    assert_eq!(run.chain_listings, 0, "no listing: {run:?}");
    assert_eq!(
        run.chain_reads, 2,
        "the claim the commit names and the name after it: {run:?}"
    );
    assert_exactly_once(fixture.dir.path(), &fixture.topic, &high);
    assert_nothing_rewritten(&landed, fixture.dir.path());

    // A new group has no hint: the chain's end is found by listing.
    let vars = new_group(&fixture);
    produce_json(&fixture.broker.brokers, &fixture.topic, 1, 10, 350);
    let high = high_watermarks(&fixture.broker.brokers, &fixture.topic, 1);
    let (token, mut progress, handle) =
        start(config(&vars, &[("INGEST_FLUSH_MAX_RECORDS", "100")]));
    until_committed(&mut progress, &high).await;
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert_eq!(run.records, 10, "{run:?}");
    assert!(run.chain_listings >= 1, "{run:?}");
    assert_exactly_once(fixture.dir.path(), &fixture.topic, &high);
}

/// Produces `count` records of about 1 KB to partition 0 (the mock keeps about 5 MB a
/// partition: more moves the partition's first offset up, as retention does).
fn produce_large(brokers: &str, topic: &str, count: usize) {
    let pad = "x".repeat(1_000);
    let values: Vec<Vec<u8>> = (0..count)
        .map(|n| format!(r#"{{"n":{n},"pad":"{pad}"}}"#).into_bytes())
        .collect();
    produce_to(brokers, topic, 0, &values);
}

/// The first offset partition 0 still holds.
fn low_watermark(brokers: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    consumer.fetch_watermarks(topic, 0, WAIT).unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranded_claim_whose_first_records_retention_removed_is_completed_with_the_rest() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("retained", 1);
    produce_large(&broker.brokers, &topic, 8_000);
    let low = low_watermark(&broker.brokers, &topic);
    assert!(
        low > 0 && low < 7_000,
        "retention moved the start into the claim: {low}"
    );
    // A replica claimed 0..=6999 and died before uploading; retention removed its first
    // records since (on the release before the chain, the service stopped here).
    let data = format!(
        "{topic}/dt=2020-01-01/hour=00/{topic}+0+{:020}.ndjson.gz",
        0
    );
    write_claim(dir.path(), &topic, 6_999, &data);

    let high = high_watermarks(&broker.brokers, &topic, 1);
    let (token, mut progress, handle) =
        start(config(&vars, &[("INGEST_FLUSH_MAX_RECORDS", "500")]));
    until_committed(&mut progress, &high).await;
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert_eq!(run.offsets_gone, low as u64, "{run:?}");
    let claimed: Vec<i64> = read_lines(&dir.path().join(&data))
        .iter()
        .map(|l| l["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(
        claimed,
        (low..7_000).collect::<Vec<_>>(),
        "what the log still had of it"
    );
    let landed = landed_offsets(dir.path(), &topic);
    assert_eq!(
        landed[&0],
        (low..high[&0]).collect::<Vec<_>>(),
        "every offset the log holds, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_a_lifecycle_rule_deleted_is_never_written_again() {
    let fixture = Fixture::new("lifecycle", 1);
    land_three_files(&fixture).await;
    // A lifecycle rule deleted the middle file (its claim stays); the group's offsets expire
    // too, and a new group starts (on the release before the chain, the replay wrote it again).
    let middle = landed_files(fixture.dir.path(), &fixture.topic)[1]
        .0
        .clone();
    std::fs::remove_file(&middle).unwrap();
    let before = snapshot(fixture.dir.path());
    let vars = new_group(&fixture);
    let records = run_to_the_end(&fixture, &vars).await;
    assert_eq!(records, 0, "nothing landed again");
    assert!(!middle.exists(), "the deleted file stays deleted");
    assert_eq!(snapshot(fixture.dir.path()), before, "nothing written");
}
