//! Compacted logs under the service (offsets skipped inside a landed chain, inside a stranded
//! claim, and the chain's last record gone), on tansu, a Kafka-protocol broker in its own
//! process. Neither broker here compacts or aborts transactions, so the tests remove records
//! from tansu's SQLite log with the broker running, as compaction would; the consumer meets the
//! gaps through real fetches.

mod common;

use std::collections::BTreeMap;

use common::tansu::*;
use common::*;

struct Topic {
    tansu: Tansu,
    topic: String,
    dir: tempfile::TempDir,
}

impl Topic {
    fn new(prefix: &str) -> Topic {
        let tansu = Tansu::start();
        let topic = unique(prefix);
        // The admin client blocks on a runtime of its own: not on the test's.
        std::thread::scope(|s| {
            s.spawn(|| create_topic(&tansu.brokers, &topic, 1));
        });
        Topic {
            tansu,
            topic,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The service's variables under a consumer group of its own (as after offsets expired).
    ///
    /// Fetches are the least librdkafka allows (1,000 bytes): tansu 0.6 fills a fetch with
    /// reads from its log and moves to the next read by the number of records read, not by the
    /// last one's offset (`tansu-storage/src/service/fetch.rs`), so a read that crosses a gap and
    /// leaves room in the fetch serves the records after the gap twice, which no Kafka broker
    /// does. A full fetch ends there; these tests keep the log's last kilobyte free of gaps.
    fn new_group(&self) -> Vec<(String, String)> {
        let mut vars = env(
            &self.tansu.brokers,
            &self.topic,
            &unique("group"),
            self.dir.path(),
        );
        for name in [
            "INGEST_KAFKA_FETCH_MAX_BYTES",
            "INGEST_KAFKA_MESSAGE_MAX_BYTES",
        ] {
            vars.push((name.into(), "1000".into()));
        }
        vars
    }

    fn high(&self) -> BTreeMap<i32, i64> {
        high_watermarks(&self.tansu.brokers, &self.topic, 1)
    }

    /// Runs the service until it committed the high watermark; returns how many records landed.
    async fn run_to_the_end(&self, vars: &[(String, String)]) -> u64 {
        self.run_to_the_end_in(vars, 100).await
    }

    /// As [`Topic::run_to_the_end`], with files of at most `records` records.
    async fn run_to_the_end_in(&self, vars: &[(String, String)], records: usize) -> u64 {
        let records = records.to_string();
        let (token, mut progress, handle) =
            start(config(vars, &[("INGEST_FLUSH_MAX_RECORDS", &records)]));
        until_committed(&mut progress, &self.high()).await;
        token.cancel();
        handle.await.unwrap().unwrap().records
    }
}

/// The offsets each landed data file holds, by file.
fn offsets_by_file(root: &std::path::Path, topic: &str) -> BTreeMap<std::path::PathBuf, Vec<i64>> {
    landed_files(root, topic)
        .into_iter()
        .map(|(path, lines)| {
            let offsets = lines
                .iter()
                .map(|l| l["offset"].as_i64().unwrap())
                .collect();
            (path, offsets)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_a_compacted_topic_lands_nothing_twice() {
    let t = Topic::new("compacted");
    produce_json(&t.tansu.brokers, &t.topic, 1, 300, 0);
    // Before any gap, fetches of any size: the claims start at 0, 100 and 200.
    let whole_fetches = env(&t.tansu.brokers, &t.topic, &unique("group"), t.dir.path());
    assert_eq!(t.run_to_the_end(&whole_fetches).await, 300);
    let landed = snapshot(t.dir.path());
    assert_eq!(
        landed_files(t.dir.path(), &t.topic).len(),
        3,
        "three files of 100"
    );

    // Compaction removes the first records of the second and third files (on the release
    // before the chain, a replay's second batch began at an offset no claim began at, and every
    // file after it landed twice) and the chain's last record, then the group's offsets expire.
    t.tansu.compact(&t.topic, 0, 90..=110);
    t.tansu.compact(&t.topic, 0, 200..=200);
    t.tansu.compact(&t.topic, 0, 295..=299);
    // (Kept free of gaps: the log's end, see `new_group`.)
    produce_json(&t.tansu.brokers, &t.topic, 1, 100, 300);

    let records = t.run_to_the_end(&t.new_group()).await;
    assert_eq!(records, 100, "only the new records landed");
    assert_exactly_once(t.dir.path(), &t.topic, &t.high());
    assert_nothing_rewritten(&landed, t.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranded_claim_whose_last_record_was_compacted_away_completes() {
    let t = Topic::new("stranded");
    produce_json(&t.tansu.brokers, &t.topic, 1, 300, 0);
    // A replica claimed 0..=199 and died before uploading; compaction has since removed records
    // inside the claim and its last ones (on the release before the chain, completing it looped
    // for ever, one GET and HEADs a round, waiting for offset 199).
    let data = format!(
        "{}/dt=2020-01-01/hour=00/{}+0+{:020}.ndjson.gz",
        t.topic, t.topic, 0
    );
    write_claim(t.dir.path(), &t.topic, 199, &data);
    t.tansu.compact(&t.topic, 0, 50..=59);
    t.tansu.compact(&t.topic, 0, 150..=199);

    let records = t.run_to_the_end(&t.new_group()).await;
    assert_eq!(records, 240, "0..=149 without 50..=59, then 200..=299");
    let files = offsets_by_file(t.dir.path(), &t.topic);
    let claimed: Vec<i64> = (0..50).chain(60..150).collect();
    assert_eq!(
        files.get(&t.dir.path().join(&data)),
        Some(&claimed),
        "the claim completed at its name with what the log still holds: {files:?}"
    );
    let rest: Vec<i64> = files
        .iter()
        .filter(|(path, _)| **path != t.dir.path().join(&data))
        .flat_map(|(_, offsets)| offsets.clone())
        .collect();
    assert_eq!(rest, (200..300).collect::<Vec<_>>(), "{files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_served_again_after_a_gap_land_once() {
    let t = Topic::new("reserved");
    produce_json(&t.tansu.brokers, &t.topic, 1, 300, 0);
    t.tansu.compact(&t.topic, 0, 150..=159);
    // Whole fetches: tansu serves the records after the gap again in the same answer (see
    // `Topic::new_group`), so the offsets the service reads go back (on the release before this
    // check, each time the partition decided its start again, dropped what it had buffered and
    // read the same again, for ever).
    let whole_fetches = env(&t.tansu.brokers, &t.topic, &unique("group"), t.dir.path());
    let records = t.run_to_the_end_in(&whole_fetches, 1_000).await;
    assert_eq!(records, 290);
    let landed: Vec<i64> = landed_offsets(t.dir.path(), &t.topic)[&0].clone();
    assert_eq!(landed, (0..150).chain(160..300).collect::<Vec<_>>());
}
