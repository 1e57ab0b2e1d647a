//! Delta tables (issue 37, part 1): Parquet files encoded by ingest's own encoder, landed on
//! local disk in Hive directories, added to a table by `ingest::table::Table` through the Delta
//! kernel, and read back by delta-rs (the `deltalake` Python package), which is not ours: every
//! record once, the history, the schema that grew with the files, the transaction identifiers;
//! files a commit already added are never added again, by a retry or by another replica.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ingest::batch::{Batch, RecordRef};
use ingest::config::{
    Compression, Envelope, Format, InvalidRecordPolicy, ParquetCompression, ParquetSettings,
};
use ingest::encode::parquet::shape::Columns;
use ingest::encode::EncodeOptions;
use ingest::table::{Held, Landed, Table};
use object_store::local::LocalFileSystem;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

const TOPIC: &str = "orders";
const SETTINGS: ParquetSettings = ParquetSettings {
    compression: ParquetCompression::Zstd { level: 3 },
    row_group_bytes: 1 << 20,
    max_columns: 1_000,
    max_fields: 10_000,
};

/// Encodes `values` (offsets from `first`) of `partition` as ingest's Parquet file against the
/// `running` columns, writes it under `root/<topic>/dt=2026-12-07/hour=05/`, and says what it is.
fn land(
    root: &Path,
    partition: i32,
    first: i64,
    values: &[String],
    running: &mut Columns,
) -> (Landed, arrow_schema::SchemaRef) {
    let mut batch: Batch = Batch::new(Instant::now(), 0);
    for (i, v) in values.iter().enumerate() {
        batch.push(&RecordRef {
            offset: first + i as i64,
            timestamp_ms: Some(1_796_000_000_000 + i as i64),
            key: Some(b"k"),
            value: Some(v.as_bytes()),
            headers: &[],
            flaw: None,
            cursor: None,
        });
    }
    let opts = EncodeOptions {
        topic: TOPIC.into(),
        envelope: Envelope::Metadata,
        compression: Compression::None,
        invalid: InvalidRecordPolicy::DeadLetter,
        max_record_bytes: 1 << 20,
        transform: None,
        format: Format::Parquet(SETTINGS),
        registry: None,
        table_columns: None,
    };
    let encoded =
        ingest::encode::parquet::encode(&batch, partition, &opts, &SETTINGS, running).unwrap();
    if let Some(columns) = encoded.columns {
        *running = columns;
    }
    let last = first + values.len() as i64 - 1;
    let path = format!("dt=2026-12-07/hour=05/{TOPIC}+{partition}+{first:020}.parquet");
    let file = root.join(TOPIC).join(&path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &encoded.data).unwrap();
    let schema = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(encoded.data.clone()))
        .unwrap()
        .schema()
        .clone();
    let landed = Landed {
        path,
        partition,
        last_offset: last,
        size: encoded.data.len() as u64,
        modified_ms: 1_796_000_000_000,
        records: Some(values.len() as u64),
        partition_values: BTreeMap::from([
            ("dt".to_string(), Some("2026-12-07".to_string())),
            ("hour".to_string(), Some("05".to_string())),
        ]),
    };
    (landed, schema)
}

/// `per_partition` files of ten records each (offsets 0, 10, ...) for each of `partitions`, in
/// that order, and the schema of the last.
fn land_tens(
    root: &Path,
    partitions: std::ops::Range<i32>,
    per_partition: i64,
) -> (Vec<Landed>, arrow_schema::SchemaRef) {
    let mut running = Columns::default();
    let mut files = Vec::new();
    let mut schema = None;
    for p in partitions {
        for k in 0..per_partition {
            let first = k * 10;
            let (f, s) = land(
                root,
                p,
                first,
                &values(first..first + 10, false),
                &mut running,
            );
            files.push(f);
            schema = Some(s);
        }
    }
    (files, schema.expect("a file landed"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn table(root: &Path) -> Table {
    let store = Arc::new(LocalFileSystem::new_with_prefix(root).unwrap());
    Table::new(
        store,
        TOPIC,
        "ingest-orders",
        tokio::runtime::Handle::current(),
    )
    .unwrap()
}

fn read(root: &Path, args: &[&str]) -> Value {
    read_table(&root.join(TOPIC), args)
}

/// The table at `dir` as delta-rs reads it (`scripts/read_delta.py`).
fn read_table(dir: &Path, args: &[&str]) -> Value {
    common::servers::python_module("deltalake", "pip install deltalake");
    common::servers::python_module("duckdb", "pip install duckdb");
    let mut all = vec![dir.to_str().unwrap()];
    all.extend_from_slice(args);
    common::servers::python_script("read_delta.py", &all)
        .pop()
        .expect("read_delta.py's line")
}

fn values(range: std::ops::Range<i64>, extra: bool) -> Vec<String> {
    range
        .map(|n| match extra {
            false => format!(r#"{{"id":{n},"name":"n{n}","nested":{{"a":{n}}}}}"#),
            true => format!(
                r#"{{"id":{n},"name":"n{n}","nested":{{"a":{n},"b":"new"}},"extra":{}}}"#,
                n % 3 == 0
            ),
        })
        .collect()
}

const PARTITIONS: [&str; 2] = ["dt", "hour"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_added_once_with_their_columns_and_delta_rs_reads_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let partitions: Vec<String> = PARTITIONS.map(String::from).to_vec();
    let mut running = Columns::default();
    let (a, _) = land(&root, 0, 0, &values(0..10, false), &mut running);
    let (b, schema) = land(&root, 1, 0, &values(100..110, false), &mut running);
    let (c, grown) = land(&root, 1, 10, &values(110..120, true), &mut running);
    let r = root.clone();
    tokio::task::spawn_blocking(move || {
        let t = table(&r);
        assert_eq!(t.landed_through(&[0]).unwrap()[&0], None, "no table yet");
        let first = t
            .commit(&[a.clone(), b.clone()], &schema, &partitions, &Held::new())
            .unwrap();
        assert_eq!((first.added, first.held), (2, 0));
        // The same files again (a flush retried after a crash before its commit was known):
        // the table holds them, nothing is committed.
        let again = t
            .commit(&[a.clone(), b.clone()], &schema, &partitions, &Held::new())
            .unwrap();
        assert_eq!(
            (again.version, again.added, again.held),
            (first.version, 0, 2)
        );
        // Another replica, which took partition 1 over and lands from its chain's end: the
        // file the table holds is left out, the new one adds its columns.
        let other = table(&r);
        let third = other
            .commit(&[b.clone(), c.clone()], &grown, &partitions, &Held::new())
            .unwrap();
        assert_eq!(
            (third.version, third.added, third.held),
            (first.version + 1, 1, 1)
        );
        let held = t.landed_through(&[0, 1]).unwrap();
        assert_eq!((held[&0], held[&1]), (Some(9), Some(19)));
        t.checkpoint(now_ms()).unwrap();
    })
    .await
    .unwrap();
    assert!(
        std::fs::read_dir(root.join(TOPIC).join("_delta_log"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".checkpoint.")),
        "a checkpoint"
    );
    let got = read(
        &root,
        &[
            "--nonnull",
            "extra",
            "nested",
            "--txn",
            "ingest:orders:ingest-orders:0",
            "ingest:orders:ingest-orders:1",
        ],
    );
    assert_eq!(
        (&got["rows"], &got["distinct"]),
        (&30.into(), &30.into()),
        "{got}"
    );
    assert_eq!(got["nonnull"]["extra"], 10, "{got}");
    assert_eq!(got["files"], 3, "{got}");
    assert_eq!(
        got["partition_columns"],
        serde_json::json!(PARTITIONS),
        "{got}"
    );
    assert_eq!(got["txn"]["ingest:orders:ingest-orders:0"], 9, "{got}");
    assert_eq!(got["txn"]["ingest:orders:ingest-orders:1"], 19, "{got}");
    let fields: Vec<&str> = got["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for f in [
        "_topic",
        "_partition",
        "_offset",
        "id",
        "name",
        "nested",
        "extra",
        "_rescued_data",
        "dt",
        "hour",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    assert_eq!(got["history"].as_array().map(Vec::len), Some(3), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_committing_at_once_each_land_their_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let r = root.clone();
    commit_at_once(&root, move || table(&r)).await;
    assert_read_all(&root);
}

/// As above, the log on S3 (s3s-fs behind the fixture's front, whose create-only writes are
/// atomic as S3's are; on s3s-fs alone two commits of one version both succeed and the later
/// one overwrites the earlier, losing its files).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_committing_at_once_to_a_table_on_s3_each_land_their_files_once() {
    use common::servers::{s3_env, Server as _, S3_ACCESS_KEY, S3_SECRET_KEY};
    let s3 = common::servers::S3Fs::start();
    let bucket = common::servers::bucket_name("deltaonce");
    s3.create_container(&bucket);
    let keys = (S3_ACCESS_KEY, S3_SECRET_KEY);
    let store = common::servers::reader(&s3_env(&bucket, "raw", s3.port, keys));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let s = Arc::clone(&store);
    commit_at_once(&root, move || {
        let handle = tokio::runtime::Handle::current();
        Table::new(Arc::clone(&s), TOPIC, "ingest-orders", handle).unwrap()
    })
    .await;
    // The data files are on local disk already; the log joins them there for delta-rs.
    common::servers::mirror(&store, &format!("{TOPIC}/_delta_log"), &root).await;
    assert_read_all(&root);
}

/// Writers (replicas), each with two of eight partitions, each committing its three files of
/// ten records one by one through the table `open` gives, all at once; every commit says it
/// added its file.
async fn commit_at_once(root: &Path, open: impl Fn() -> Table + Clone + Send + 'static) {
    let partitions: Vec<String> = PARTITIONS.map(String::from).to_vec();
    let (files, schema) = land_tens(root, 0..8, 3);
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let (open, s, ps) = (open.clone(), schema.clone(), partitions.clone());
        let mine: Vec<Landed> = files
            .iter()
            .filter(|f| f.partition / 2 == writer)
            .cloned()
            .collect();
        tasks.push(tokio::task::spawn_blocking(move || {
            let t = open();
            for f in mine {
                let c = t.commit(&[f], &s, &ps, &Held::new()).unwrap();
                assert_eq!(c.added, 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// The table at `root` holds what [`commit_at_once`] committed: 24 files, 240 records, once.
fn assert_read_all(root: &Path) {
    let got = read(root, &[]);
    assert_eq!(
        (&got["rows"], &got["distinct"]),
        (&240.into(), &240.into()),
        "{got}"
    );
    assert_eq!(got["files"], 24, "{got}");
}

/// Files of a partition the table holds less of than the caller assumed (it read the chain from
/// there, so the files between were never offered) are left out, and the partition is reported
/// with what the table holds; the other partitions' files are added. Offered again from there,
/// every file is added once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_the_table_holds_less_of_than_assumed_is_left_out_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let partitions: Vec<String> = PARTITIONS.map(String::from).to_vec();
    // Offsets 0-9, 10-19, 20-29 of partition 0, then of partition 1.
    let (files, schema) = land_tens(&root, 0..2, 3);
    let r = root.clone();
    tokio::task::spawn_blocking(move || {
        let t = table(&r);
        let c = t
            .commit(&files[..1], &schema, &partitions, &Held::new())
            .unwrap();
        assert_eq!(c.added, 1);
        // A replica that believes the table holds partition 0 to offset 19 offers its 20-29.
        let believed = Held::from([(0, Some(19)), (1, None)]);
        let offered = [files[2].clone(), files[3].clone(), files[4].clone()];
        let c = t.commit(&offered, &schema, &partitions, &believed).unwrap();
        assert_eq!((c.added, c.held), (2, 0), "{c:?}");
        assert_eq!(c.behind, Held::from([(0, Some(9))]), "{c:?}");
        // Read again from offset 9: partition 0's two files, and partition 1's last.
        let believed = Held::from([(0, Some(9)), (1, Some(19))]);
        let offered = [files[1].clone(), files[2].clone(), files[5].clone()];
        let c = t.commit(&offered, &schema, &partitions, &believed).unwrap();
        assert_eq!((c.added, c.held, c.behind.len()), (3, 0, 0), "{c:?}");
    })
    .await
    .unwrap();
    let got = read(&root, &[]);
    assert_eq!(
        (&got["rows"], &got["distinct"], &got["files"]),
        (&60.into(), &60.into(), &6.into()),
        "{got}"
    );
}

/// The table's log deleted while the service runs (an operator beginning the table again): the
/// running replica, which believed the table held its partitions to their ends, finds it
/// holding nothing at its next commit and reads its chains again from their first claims, so the
/// table begun again holds every record once, old and new. Deleted again while nothing new
/// comes, it is filled again when the replica next reads what the table holds afresh (every
/// 30 rounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_begun_again_while_the_service_runs_is_filled_from_the_claim_chains() {
    use common::*;
    let fx = Fixture::new("deltaagain", 2);
    produce_json(&fx.broker.brokers, &fx.topic, 2, 120, 0);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 2);
    let (token, mut progress, handle) = start(delta_settings(&fx.vars, &[]));
    until_committed(&mut progress, &high).await;
    let all_in = progress.wait_for(|p| p.files > 0 && p.table_files == p.files);
    tokio::time::timeout(std::time::Duration::from_secs(60), all_in)
        .await
        .expect("every landed file added to the table in time")
        .unwrap();
    let before = progress.borrow().files;
    let table = fx.dir.path().join(&fx.topic);
    std::fs::remove_dir_all(table.join("_delta_log")).unwrap();
    produce_json(&fx.broker.brokers, &fx.topic, 2, 60, 120);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 2);
    until_committed(&mut progress, &high).await;
    // The files landed before the log went are added a second time (to the new table), the
    // new ones once.
    let refilled = progress.wait_for(|p| p.table_files == p.files + before);
    tokio::time::timeout(std::time::Duration::from_secs(60), refilled)
        .await
        .expect("the table begun again holds every landed file in time")
        .unwrap();
    let (files, added) = {
        let p = progress.borrow();
        (p.files, p.table_files)
    };
    std::fs::remove_dir_all(table.join("_delta_log")).unwrap();
    let idle_refill = progress.wait_for(|p| p.table_files == added + files);
    tokio::time::timeout(std::time::Duration::from_secs(60), idle_refill)
        .await
        .expect("the table begun again while idle holds every landed file in time")
        .unwrap();
    token.cancel();
    handle.await.unwrap().expect("clean stop");
    let txn: Vec<String> = (0..2)
        .map(|p| format!("ingest:{}:{}:{p}", fx.topic, fx.group))
        .collect();
    let got = read_table(&table, &["--txn", &txn[0], &txn[1]]);
    assert_eq!(
        (&got["rows"], &got["distinct"]),
        (&360.into(), &360.into()),
        "{got}"
    );
    assert_eq!(got["txn"][&txn[0]], high[&0] - 1, "{got}");
    assert_eq!(got["txn"][&txn[1]], high[&1] - 1, "{got}");
}

/// The service with `INGEST_FORMAT=delta` on the mock broker: what each partition landed is in
/// the table once, with each partition's identifier at its high watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_lands_a_topic_as_a_delta_table_and_a_crash_before_the_table_commit_loses_nothing(
) {
    use common::*;
    let fx = Fixture::new("delta", 2);
    produce_json(&fx.broker.brokers, &fx.topic, 2, 150, 0);
    // Fields a Delta table cannot take as columns (a partition column's name, a space): kept
    // in `_rescued_data`, so the table's commits go through.
    let odd: Vec<Vec<u8>> = (0..10)
        .map(|n| format!(r#"{{"n":{n},"dt":"theirs","a b":{n}}}"#).into_bytes())
        .collect();
    produce_to(&fx.broker.brokers, &fx.topic, 0, &odd);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 2);
    let settings = |interval: &'static str| {
        config(
            &fx.vars,
            &[
                ("INGEST_FORMAT", "delta"),
                ("INGEST_ENVELOPE", "metadata"),
                ("INGEST_FLUSH_MAX_RECORDS", "40"),
                ("INGEST_DELTA_COMMIT_INTERVAL_MS", interval),
                ("INGEST_DELTA_CHECKPOINT_INTERVAL", "2"),
            ],
        )
    };
    // A first run that lands everything and stops dead before its table commit (its commit
    // interval is an hour, and it is aborted, not stopped): the files and the group's offsets
    // are there, the table is not.
    let (_token, mut progress, handle) = start(settings("3600000"));
    until_committed(&mut progress, &high).await;
    let landed_files = progress.borrow().files;
    handle.abort();
    let _ = handle.await;
    let log = fx.dir.path().join(&fx.topic).join("_delta_log");
    assert!(!log.exists(), "no table yet");
    // The next run has nothing to consume: it reads each partition's chain from where the
    // table stands (nowhere yet) and adds every landed file, once.
    let (token, mut progress, handle) = start(settings("200"));
    let table = fx.dir.path().join(&fx.topic);
    let txn = |p: i32| format!("ingest:{}:{}:{p}", fx.topic, fx.group);
    let (t0, t1) = (txn(0), txn(1));
    let args = [
        "--nonnull",
        "_rescued_data",
        "--txn",
        t0.as_str(),
        t1.as_str(),
    ];
    // Until the next run's rounds added every file the first run landed.
    let wait = progress.wait_for(|p| p.table_files == landed_files);
    tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .expect("the table's first commit in time")
        .unwrap();
    token.cancel();
    handle.await.unwrap().expect("clean stop");
    let got = read_table(&table, &args);
    assert_eq!(
        (&got["rows"], &got["distinct"]),
        (&310.into(), &310.into()),
        "{got}"
    );
    // DuckDB, over the files delta-rs says the table holds: the same records.
    assert_eq!(
        (&got["duckdb"]["rows"], &got["duckdb"]["distinct"]),
        (&310.into(), &310.into()),
        "{got}"
    );
    assert_eq!(got["nonnull"]["_rescued_data"], 10, "{got}");
    assert_eq!(got["txn"][&t0], high[&0] - 1, "{got}");
    assert_eq!(got["txn"][&t1], high[&1] - 1, "{got}");
    assert_eq!(
        got["partition_columns"],
        serde_json::json!(["dt", "hour"]),
        "{got}"
    );
    // Another start adds nothing: every file is in the table once (after its first round).
    let files = got["files"].clone();
    let (token, mut progress, handle) = start(settings("200"));
    let round = progress.wait_for(|p| p.table_rounds > 0);
    tokio::time::timeout(std::time::Duration::from_secs(60), round)
        .await
        .expect("a round of the table's commits in time")
        .unwrap();
    assert_eq!(progress.borrow().table_files, 0, "nothing added");
    token.cancel();
    handle.await.unwrap().expect("clean stop");
    let again = read_table(&table, &args);
    assert_eq!(
        (&again["rows"], &again["files"]),
        (&310.into(), &files),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_expired_entries_go_after_a_checkpoint_and_the_table_reads_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let partitions: Vec<String> = PARTITIONS.map(String::from).to_vec();
    let (files, schema) = land_tens(&root, 0..1, 6);
    let log = root.join(TOPIC).join("_delta_log");
    let r = root.clone();
    let gone = tokio::task::spawn_blocking(move || {
        let t = table(&r);
        // Version 0 creates the table, 1 to 6 add a file each; checkpoints at 4 and at 6.
        // Within the 30 days a table keeps its log by default, nothing goes.
        for (i, f) in files.into_iter().enumerate() {
            t.commit(&[f], &schema, &partitions, &Held::new()).unwrap();
            if i == 3 || i == 5 {
                assert_eq!(t.checkpoint(now_ms()).unwrap(), 0);
            }
        }
        // 31 days on (the checkpoint at 6 is there): everything before it, the one at 4 too.
        t.checkpoint(now_ms() + 31 * 24 * 3600 * 1000).unwrap()
    })
    .await
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert_eq!(gone, 7, "{names:?}");
    assert_eq!(
        names,
        [
            "00000000000000000006.checkpoint.parquet",
            "00000000000000000006.json",
            "_last_checkpoint"
        ]
    );
    // delta-rs reads every record of the table from what is left.
    let got = read(&root, &["--txn", "ingest:orders:ingest-orders:0"]);
    assert_eq!(
        (&got["rows"], &got["version"]),
        (&60.into(), &6.into()),
        "{got}"
    );
    assert_eq!(got["txn"]["ingest:orders:ingest-orders:0"], 59, "{got}");
}

/// The service's Delta settings for the service tests below (small files, frequent rounds),
/// and `extra`.
fn delta_settings(vars: &[(String, String)], extra: &[(&str, &str)]) -> ingest::Config {
    let mut settings = vec![
        ("INGEST_FORMAT", "delta"),
        ("INGEST_ENVELOPE", "metadata"),
        ("INGEST_FLUSH_MAX_RECORDS", "40"),
        ("INGEST_DELTA_COMMIT_INTERVAL_MS", "200"),
    ];
    settings.extend_from_slice(extra);
    common::config(vars, &settings)
}

/// Runs the service until every record is committed and every landed file is in the table,
/// then stops it; its progress at the end.
async fn land_into_the_table(
    config: ingest::Config,
    high: &BTreeMap<i32, i64>,
) -> ingest::Progress {
    let (token, mut progress, handle) = common::start(config);
    common::until_committed(&mut progress, high).await;
    let all_in = progress.wait_for(|p| p.files > 0 && p.table_files == p.files);
    tokio::time::timeout(std::time::Duration::from_secs(60), all_in)
        .await
        .expect("every landed file added to the table in time")
        .unwrap();
    token.cancel();
    handle.await.unwrap().expect("clean stop");
    let end = progress.borrow().clone();
    end
}

/// The table the service wrote on `vars`' store, copied to a local directory as delta-rs and
/// DuckDB read it: every record once, no file added twice, the identifiers at the watermarks.
async fn assert_read_once(
    vars: &[(String, String)],
    fx: &common::Fixture,
    high: &BTreeMap<i32, i64>,
    files: u64,
) -> Value {
    let store = common::servers::reader(vars);
    let local = tempfile::tempdir().unwrap();
    common::servers::mirror(&store, &fx.topic, local.path()).await;
    let txn: Vec<String> = high
        .keys()
        .map(|p| format!("ingest:{}:{}:{p}", fx.topic, fx.group))
        .collect();
    let mut args = vec!["--txn"];
    args.extend(txn.iter().map(String::as_str));
    let got = read_table(&local.path().join(&fx.topic), &args);
    let records: i64 = high.values().sum();
    assert_eq!(
        (&got["rows"], &got["distinct"]),
        (&records.into(), &records.into()),
        "{got}"
    );
    assert_eq!(
        (&got["duckdb"]["rows"], &got["duckdb"]["distinct"]),
        (&records.into(), &records.into()),
        "{got}"
    );
    assert_eq!(
        (&got["files"], &got["adds"]),
        (&files.into(), &files.into()),
        "{got}"
    );
    assert_eq!(got["added_twice"], serde_json::json!([]), "{got}");
    for (p, h) in high {
        let id = format!("ingest:{}:{}:{p}", fx.topic, fx.group);
        assert_eq!(got["txn"][&id], h - 1, "{got}");
    }
    got
}

/// On Azure Blob (Azurite): the log's commits are create-only blobs there too, and the table
/// reads as on local disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_azure_blob_the_service_lands_a_topic_as_a_delta_table_read_once() {
    use common::servers::{bucket_name, landing_in, Server as _};
    let azurite = common::servers::Azurite::start();
    let fx = common::Fixture::new("deltaaz", 2);
    let container = bucket_name("deltaaz");
    azurite.create_container(&container);
    let vars = landing_in(&fx.vars, azurite.env(&container, "raw"));
    common::produce_json(&fx.broker.brokers, &fx.topic, 2, 120, 0);
    let high = common::high_watermarks(&fx.broker.brokers, &fx.topic, 2);
    let end = land_into_the_table(delta_settings(&vars, &[]), &high).await;
    assert!(end.table_rounds > 0, "{end:?}");
    assert_read_once(&vars, &fx, &high, end.files).await;
}

/// s3s-fs with a bucket, and a topic `name` of two partitions with 120 records each; the
/// topic's high watermarks.
fn two_partitions_on_s3(
    name: &str,
) -> (
    common::servers::S3Fs,
    common::Fixture,
    String,
    BTreeMap<i32, i64>,
) {
    use common::servers::Server as _;
    let s3 = common::servers::S3Fs::start();
    let fx = common::Fixture::new(name, 2);
    let bucket = common::servers::bucket_name(name);
    s3.create_container(&bucket);
    common::produce_json(&fx.broker.brokers, &fx.topic, 2, 120, 0);
    let high = common::high_watermarks(&fx.broker.brokers, &fx.topic, 2);
    (s3, fx, bucket, high)
}

/// `fx`'s variables landing in `bucket/raw` on S3 at `port` (the server or a proxy).
fn s3_vars(fx: &common::Fixture, bucket: &str, port: u16) -> Vec<(String, String)> {
    use common::servers::{s3_env, S3_ACCESS_KEY, S3_SECRET_KEY};
    let keys = (S3_ACCESS_KEY, S3_SECRET_KEY);
    common::servers::landing_in(&fx.vars, s3_env(bucket, "raw", port, keys))
}

/// The first commit of files is written, but the client is told 503 (a proxy's timeout in front
/// of s3s-fs); the retried create-only PUT meets its own first attempt. The service finds its
/// own commit in the log by its transaction identifiers: every file is added once, and counted
/// as added (the table's progress, its metric, its checkpoints) once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_commit_retried_after_it_was_written_is_known_as_ours_and_adds_each_file_once() {
    use common::proxy::{Proxy, Rule};
    let (s3, fx, bucket, high) = two_partitions_on_s3("deltaretry");
    let first_files = format!("/{bucket}/raw/{}/_delta_log/{:020}.json", fx.topic, 1);
    let proxy = Proxy::start(s3.port, Rule::UnavailableAfterForwarding(first_files)).await;
    let settings = delta_settings(&s3_vars(&fx, &bucket, proxy.port), &[]);
    let end = land_into_the_table(settings, &high).await;
    assert!(proxy.fired(), "the rule met the first commit of files");
    assert_read_once(&s3_vars(&fx, &bucket, s3.port), &fx, &high, end.files).await;
}

/// A path template puts a record's field in the file's name, and the store refuses some of
/// those names (a proxy in front of s3s-fs answers 400 `KeyTooLongError` to any request naming
/// `region=refuseme`): those files land whole at their refuge under the dead-letter prefix and
/// are not added to the table, whose rounds go on adding every other file, once; no partition
/// stalls. The table's partition columns are the template's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_whose_names_the_store_refuses_go_to_their_refuge_and_the_table_holds_the_rest_once()
{
    use common::proxy::{Proxy, Rule};
    use common::servers::Server as _;
    let s3 = common::servers::S3Fs::start();
    let fx = common::Fixture::new("deltarefused", 1);
    let bucket = common::servers::bucket_name("deltarefused");
    s3.create_container(&bucket);
    let proxy = Proxy::start(s3.port, Rule::RefuseName("refuseme".into())).await;
    let refused = |n: i64| n < 5 || n % 3 == 0;
    let values: Vec<Vec<u8>> = (0..60)
        .map(|n| {
            let region = if refused(n) { "refuseme" } else { "eu" };
            format!(r#"{{"n":{n},"region":"{region}"}}"#).into_bytes()
        })
        .collect();
    common::produce_to(&fx.broker.brokers, &fx.topic, 0, &values);
    let high = common::high_watermarks(&fx.broker.brokers, &fx.topic, 1);
    let template = [(
        "INGEST_PATH_TEMPLATE",
        "{topic}/region={record.region}/dt={date}/hour={hour}",
    )];
    let settings = delta_settings(&s3_vars(&fx, &bucket, proxy.port), &template);
    // Until every record is committed; the stop then commits to the table once more.
    let (token, mut progress, handle) = common::start(settings);
    common::until_committed(&mut progress, &high).await;
    token.cancel();
    let end = handle.await.unwrap().expect("clean stop");
    assert!(end.refused_names >= 2, "{end:?}");
    assert!(end.table_files > 0, "{end:?}");
    assert!(proxy.fired());

    let store = common::servers::reader(&s3_vars(&fx, &bucket, s3.port));
    let local = tempfile::tempdir().unwrap();
    common::servers::mirror(&store, "", local.path()).await;
    let got = read_table(&local.path().join(&fx.topic), &[]);
    let kept = (0..60).filter(|n| !refused(*n)).count() as i64;
    assert_eq!(
        (&got["rows"], &got["distinct"], &got["duckdb"]["rows"]),
        (&kept.into(), &kept.into(), &kept.into()),
        "{got}"
    );
    assert_eq!(got["added_twice"], serde_json::json!([]), "{got}");
    assert_eq!(
        got["partition_columns"],
        serde_json::json!(["region", "dt", "hour"]),
        "{got}"
    );
    // The refused records, each once, in the refuges' Parquet files.
    let refuges = local
        .path()
        .join("_dead_letters")
        .join(&fx.topic)
        .join("_refused")
        .join("data");
    let mut at_refuge = 0;
    for entry in std::fs::read_dir(&refuges).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap();
            at_refuge += reader.map(|b| b.unwrap().num_rows()).sum::<usize>();
        }
    }
    assert_eq!(
        at_refuge as i64,
        60 - kept,
        "every refused record at a refuge"
    );
}

/// The store stops answering the log's writes as the service stops (a proxy holds every PUT
/// under `_delta_log/`): the last table commit ends at the shutdown timeout instead of holding
/// the service until Kubernetes kills it. The held write then reaches the store late, as a
/// request in flight may; the next start reads the table either way, and every record is in it
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_table_commit_the_store_never_answers_ends_at_the_shutdown_timeout() {
    use common::proxy::{Proxy, Rule};
    let (s3, fx, bucket, high) = two_partitions_on_s3("deltastop");
    let proxy = Proxy::start(s3.port, Rule::Hold("/_delta_log/".into())).await;
    let vars = s3_vars(&fx, &bucket, proxy.port);
    let stop_within = [
        ("INGEST_DELTA_COMMIT_INTERVAL_MS", "3600000"),
        ("INGEST_SHUTDOWN_TIMEOUT_MS", "3000"),
    ];
    let (token, mut progress, handle) = common::start(delta_settings(&vars, &stop_within));
    common::until_committed(&mut progress, &high).await;
    token.cancel();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), handle).await;
    stopped
        .expect("stopped at its shutdown timeout, not held by the store")
        .unwrap()
        .expect("a stop with every record landed and committed");
    assert!(proxy.held() > 0, "the table's commit was held at the stop");
    let first = progress.borrow().clone();
    assert_eq!(first.table_files, 0, "no commit went through: {first:?}");

    proxy.release();
    let (token, mut progress, handle) = common::start(delta_settings(&vars, &[]));
    let round = progress.wait_for(|p| p.table_rounds > 0);
    tokio::time::timeout(std::time::Duration::from_secs(60), round)
        .await
        .expect("a round of the table's commits in time")
        .unwrap();
    token.cancel();
    handle.await.unwrap().expect("clean stop");
    assert_read_once(&s3_vars(&fx, &bucket, s3.port), &fx, &high, first.files).await;
}

/// The same stop, of the service as its own process: it exits 0 within its shutdown timeout,
/// saying the next start adds the files, and prints no panic, though the commit is still in
/// flight on a blocking thread as the process ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_process_stopped_with_its_table_commit_held_exits_cleanly() {
    use common::process::{lines, service, signal, wait_exit, wait_line};
    use common::proxy::{Proxy, Rule};
    let (s3, fx, bucket, high) = two_partitions_on_s3("deltaexit");
    let proxy = Proxy::start(s3.port, Rule::Hold("/_delta_log/".into())).await;
    let vars = s3_vars(&fx, &bucket, proxy.port);
    let extra = [
        ("INGEST_FORMAT", "delta"),
        ("INGEST_FLUSH_MAX_RECORDS", "40"),
        ("INGEST_DELTA_COMMIT_INTERVAL_MS", "3600000"),
        ("INGEST_SHUTDOWN_TIMEOUT_MS", "2000"),
    ];
    let mut child = service(&vars, &extra).spawn().unwrap();
    let rx = lines(child.stderr.take().unwrap());
    let records: i64 = high.values().sum();
    let mut landed = 0;
    wait_line(&rx, "every record landed", |line| {
        if let Some(at) = line.find("landed path=") {
            let n = line[at..].split(" records=").nth(1).unwrap_or_default();
            landed += n.split(' ').next().unwrap().parse::<i64>().unwrap();
        }
        landed == records
    });
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0, "a clean stop");
    let rest: Vec<String> = rx.iter().collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("last commit failed") && l.contains("shutdown timeout")),
        "{rest:#?}"
    );
    assert!(!rest.iter().any(|l| l.contains("panicked")), "{rest:#?}");
    assert!(proxy.held() > 0, "the table's commit was held at the stop");
    proxy.release();
}
