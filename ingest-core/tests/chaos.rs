//! Chaos: replicas of the service (`ingest-sink` processes) in one consumer group, killed
//! (SIGKILL) and stopped (SIGTERM) at random every few seconds while records are produced, with
//! the S3 server (s3s-fs) stopped and started again now and then; then a settle phase until the
//! group's commits reach the high watermarks, and a verifier that reads every landed file and
//! reports lost, duplicated and rewritten records and files. The broker is tansu (SQLite
//! storage) in a process of its own, which outlives every replica.
//!
//! Sized by `CHAOS_SECONDS` (20 by default, what CI runs), `CHAOS_RECORDS` (records produced,
//! spread over the chaos: 20,000), `CHAOS_PARTITIONS` (8) and `CHAOS_REPLICAS` (3); `make chaos`
//! runs 600 s, 1,000,000 records over 64 partitions. A one-line summary is printed either way.
//!
//! The second test lands a Delta table instead (`make chaos-delta`): every replica commits
//! its files to the table's log at once, every `CHAOS_DELTA_COMMIT_MS` (1,000), with a
//! checkpoint every 5 commits; after the replicas stop, if any partition's transaction identifier
//! is behind its high watermark (a replica killed before its round, its partitions not started
//! again by the last replicas before they stopped), one replica is started until the table
//! catches up, as a running service would; the verifier is delta-rs (`scripts/read_delta.py`):
//! every record once in the latest snapshot, no file added by two commits, the log readable.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::{service, signal};
use common::servers::{listing, mirror, reader, S3Fs, Server};
use common::tansu::{create_topic, Tansu};
use common::*;

/// A size from the environment, or its default.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A tiny deterministic generator for the schedule (seeded from the clock, printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The replicas' log filter: `CHAOS_LOG`, else the service's info lines in the short run (what
/// `make test` runs: shown only if it fails, to say where a partition waited) and warnings in
/// longer ones.
fn log_filter() -> String {
    std::env::var("CHAOS_LOG").unwrap_or_else(|_| {
        let short = setting("CHAOS_SECONDS", 20) <= 60;
        let level = if short { "info" } else { "warn" };
        format!("{level},librdkafka=error,delta_kernel=warn")
    })
}

fn spawn(vars: &[(String, String)]) -> Child {
    let mut child = service(vars, &[])
        .env("RUST_LOG", log_filter())
        .spawn()
        .expect("ingest-sink starts");
    // Drained to the end, so the child never blocks on a full pipe; shown when the test fails.
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
        }
    });
    child
}

/// Waits for a stopped replica's exit, killing it if it takes longer than `within`.
fn reap(child: &mut Child, within: Duration) {
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

type Seen = BTreeMap<String, (Option<String>, i64, u64)>;

/// Notes every data object's identity the first time it is seen; counts the ones that changed.
fn track(seen: &mut Seen, now: Seen, topic: &str, rewritten: &mut Vec<String>) {
    for (key, identity) in now {
        // Delta's `_last_checkpoint` is a hint the protocol rewrites with each checkpoint.
        if !key.starts_with(&format!("{topic}/")) || key.ends_with("/_delta_log/_last_checkpoint") {
            continue;
        }
        match seen.get(&key) {
            Some(first) if *first != identity => rewritten.push(key),
            Some(_) => {}
            None => {
                seen.insert(key, identity);
            }
        }
    }
}

/// The two chaos runs take turns: each is three replicas, a broker and a store on two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn replicas_killed_at_random_and_storage_outages_land_every_record_once() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    chaos(false);
}

#[test]
fn replicas_killed_at_random_and_storage_outages_land_every_record_once_in_a_delta_table() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    chaos(true);
}

/// One chaos run, landing NDJSON files or (`delta`) a Delta table.
fn chaos(delta: bool) {
    let mut s3 = S3Fs::start();
    let chaos = Duration::from_secs(setting("CHAOS_SECONDS", 20));
    let total = setting("CHAOS_RECORDS", 20_000);
    let partitions = setting("CHAOS_PARTITIONS", 8) as i32;
    let replica_count = setting("CHAOS_REPLICAS", 3) as usize;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tansu = Tansu::start();
    let (topic, group) = (unique("chaos"), unique("group"));
    create_topic(&tansu.brokers, &topic, partitions);
    let dir = tempfile::tempdir().unwrap();
    let fx_vars = env(&tansu.brokers, &topic, &group, dir.path());
    let bucket = unique("chaos").to_ascii_lowercase();
    s3.create_container(&bucket);
    let mut vars = fx_vars.clone();
    vars.retain(|(k, _)| k != "INGEST_STORAGE_URL" && k != "INGEST_FLUSH_MAX_RECORDS");
    vars.extend(s3.env(&bucket, "raw"));
    for (k, v) in [
        ("INGEST_FLUSH_MAX_RECORDS", "200"),
        ("INGEST_SHUTDOWN_TIMEOUT_MS", "5000"),
    ] {
        vars.push((k.into(), v.into()));
    }
    if delta {
        common::servers::python_module("deltalake", "pip install deltalake");
        common::servers::python_module("duckdb", "pip install duckdb");
        let interval = setting("CHAOS_DELTA_COMMIT_MS", 1_000).to_string();
        for (k, v) in [
            ("INGEST_FORMAT", "delta"),
            ("INGEST_DELTA_COMMIT_INTERVAL_MS", interval.as_str()),
            ("INGEST_DELTA_CHECKPOINT_INTERVAL", "5"),
        ] {
            vars.push((k.into(), v.into()));
        }
    }
    let store = reader(&vars);

    // `total` records are produced, evenly over the chaos phase.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (brokers, topic, stop) = (tansu.brokers.clone(), topic.clone(), stop.clone());
        std::thread::spawn(move || {
            use rdkafka::producer::{
                BaseRecord, DefaultProducerContext, Producer, ThreadedProducer,
            };
            let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("linger.ms", "5")
                .create()
                .expect("producer");
            let per_round = (total / partitions as u64 / 200).max(10) as usize;
            let started = Instant::now();
            let mut n = 0usize;
            while (n * partitions as usize) < total as usize && !stop.load(Ordering::Relaxed) {
                for i in n..n + per_round {
                    for p in 0..partitions {
                        let value = format!(r#"{{"p":{p},"n":{i},"text":"chaos {i}"}}"#);
                        let key = format!("k{i}");
                        let mut record = BaseRecord::to(&topic)
                            .partition(p)
                            .key(&key)
                            .payload(&value);
                        while let Err((_, r)) = producer.send(record) {
                            producer.poll(Duration::from_millis(5));
                            record = r;
                        }
                    }
                }
                producer
                    .flush(Duration::from_secs(60))
                    .expect("the broker takes the records");
                n += per_round;
                let due = chaos.mul_f64((n * partitions as usize) as f64 / total as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let mut replicas: Vec<Child> = (0..replica_count).map(|_| spawn(&vars)).collect();
    let (mut kills, mut terms, mut outages) = (0, 0, 0);
    let (mut seen, mut rewritten) = (Seen::new(), Vec::new());
    let started = Instant::now();
    while started.elapsed() < chaos {
        std::thread::sleep(Duration::from_millis(1_000 + rng.below(2_000)));
        let i = rng.below(replica_count as u64) as usize;
        match rng.below(5) {
            0 | 1 => {
                signal(&replicas[i], "-KILL");
                reap(&mut replicas[i], Duration::from_secs(5));
                replicas[i] = spawn(&vars);
                kills += 1;
            }
            2 | 3 => {
                signal(&replicas[i], "-TERM");
                reap(&mut replicas[i], Duration::from_secs(15));
                replicas[i] = spawn(&vars);
                terms += 1;
            }
            _ => {
                s3.stop();
                std::thread::sleep(Duration::from_millis(1_000 + rng.below(2_000)));
                s3.restart();
                outages += 1;
            }
        }
        track(
            &mut seen,
            runtime.block_on(listing(&store)),
            &topic,
            &mut rewritten,
        );
    }
    // The producer finishes what it was to produce (it may lag a slow broker), then stops.
    producer.join().unwrap();
    stop.store(true, Ordering::Relaxed);

    // Settle: the survivors land the rest.
    let settle = Instant::now();
    let high = wait_committed(
        &tansu.brokers,
        &group,
        &topic,
        partitions,
        Duration::from_secs(setting("CHAOS_SETTLE_SECONDS", 300)),
    );
    let settled = settle.elapsed();
    // A Delta table holds a file once a replica that owns its partition has run a round since
    // it landed (a file of a replica killed before its round is added by the partition's next
    // owner). The replicas run on until every partition's identifier reaches its high
    // watermark, as a service that keeps running does, and are stopped then. (Stopping them
    // all and starting one more for this, as this test did, met tansu 0.6 holding the new
    // member's JoinGroup for its 300-s rebalance timeout once: no partition assigned at all.)
    let mut caught_up = Duration::ZERO;
    if delta {
        let table = {
            let _inside = runtime.enter();
            let table = ingest::table::Table::new(
                Arc::clone(&store),
                &topic,
                &group,
                runtime.handle().clone(),
            );
            Arc::new(table.unwrap())
        };
        // How many partitions' identifiers are behind their high watermarks.
        let behind = || {
            let (table, ids) = (Arc::clone(&table), (0..partitions).collect::<Vec<i32>>());
            let held = runtime
                .block_on(runtime.spawn_blocking(move || table.landed_through(&ids)))
                .unwrap()
                .unwrap();
            high.iter()
                .filter(|(p, hw)| held.get(p).copied().flatten() != Some(**hw - 1))
                .count()
        };
        let since = Instant::now();
        let deadline = since + Duration::from_secs(setting("CHAOS_SETTLE_SECONDS", 300));
        loop {
            let left = behind();
            if left == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the table caught up in time: {left} partitions behind"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        caught_up = since.elapsed();
    }
    for r in &mut replicas {
        signal(r, "-TERM");
        reap(r, Duration::from_secs(15));
    }
    track(
        &mut seen,
        runtime.block_on(listing(&store)),
        &topic,
        &mut rewritten,
    );

    let landed = tempfile::tempdir().unwrap();
    runtime.block_on(mirror(&store, &topic, landed.path()));
    let records: i64 = high.values().sum();
    if delta {
        // Verify through delta-rs: the table's latest snapshot holds every record once, and no
        // file was added by two commits.
        let table = landed.path().join(&topic);
        let got = common::servers::python_script("read_delta.py", &[table.as_os_str()])
            .pop()
            .expect("read_delta.py's line");
        eprintln!(
            "chaos (delta): {records} records over {partitions} partitions, {replica_count} replicas, {}s, {kills} kills, {terms} stops, {outages} storage outages; the table caught up {:.1}s after the offsets; table version {}, {} files, {} rows, {} distinct, added twice {}, rewritten {}; settled in {:.1}s (seed {seed})",
            chaos.as_secs(),
            caught_up.as_secs_f64(),
            got["version"],
            got["files"],
            got["rows"],
            got["distinct"],
            got["added_twice"],
            rewritten.len(),
            settled.as_secs_f64()
        );
        assert!(kills + terms > 0, "the chaos did something");
        assert_eq!(
            (&got["rows"], &got["distinct"]),
            (&records.into(), &records.into()),
            "every record once in the table: {got}"
        );
        assert_eq!(got["added_twice"], serde_json::json!([]), "{got}");
        assert_eq!(
            (&got["duckdb"]["rows"], &got["duckdb"]["distinct"]),
            (&records.into(), &records.into()),
            "DuckDB over the table's files: {got}"
        );
        assert_eq!(got["adds"], got["files"], "{got}");
        assert_eq!(rewritten, Vec::<String>::new(), "rewritten");
        return;
    }
    // Verify: every landed line, counted by (partition, offset).
    let mut count: BTreeMap<(i32, i64), u32> = BTreeMap::new();
    for (_, lines) in landed_files(landed.path(), &topic) {
        for line in lines {
            let p = line["partition"].as_i64().unwrap() as i32;
            *count
                .entry((p, line["offset"].as_i64().unwrap()))
                .or_default() += 1;
        }
    }
    let lost = high
        .iter()
        .flat_map(|(p, hw)| (0..*hw).map(move |o| (*p, o)))
        .filter(|k| !count.contains_key(k))
        .count();
    let duplicated: u32 = count.values().map(|c| c - 1).sum();
    eprintln!(
        "chaos: {records} records over {partitions} partitions, {replica_count} replicas, {}s, {kills} kills, {terms} stops, {outages} storage outages, {} files; lost {lost}, duplicated {duplicated}, rewritten {}; settled in {:.1}s (seed {seed})",
        chaos.as_secs(),
        seen.len(),
        rewritten.len(),
        settled.as_secs_f64()
    );
    assert!(kills + terms > 0, "the chaos did something");
    assert_eq!(
        (lost, duplicated, rewritten.len()),
        (0, 0, 0),
        "rewritten: {rewritten:?}"
    );
}
