//! Requests that did their work although the client saw them fail, and owners that lose a
//! partition mid-upload: a small HTTP proxy (`common::proxy`) in front of s3s-fs (S3 with
//! signatures and `If-None-Match`), librdkafka's mock cluster over TCP. On the release before
//! the claim chain, both stopped the service (a claim deleted by its own retried write; a
//! revoked owner's upload finding the new owner's file).

mod common;

use common::proxy::{Proxy, Rule};
use common::servers::*;
use common::*;

fn bucket(prefix: &str) -> String {
    bucket_name(prefix)
}

/// The fixture's variables, landing in `bucket/raw` on S3 at `port` (the server or a proxy).
fn s3_vars(f: &Fixture, bucket: &str, port: u16) -> Vec<(String, String)> {
    landing_in(
        &f.vars,
        s3_env(bucket, "raw", port, (S3_ACCESS_KEY, S3_SECRET_KEY)),
    )
}

/// Reads back what landed in `bucket/raw`, into a local directory for the readers.
async fn landed_locally(f: &Fixture, s3: &S3Fs, bucket: &str) -> tempfile::TempDir {
    let store = reader(&s3_vars(f, bucket, s3.port));
    let dir = tempfile::tempdir().unwrap();
    mirror(&store, "", dir.path()).await;
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retried_after_its_first_attempt_wrote_the_file_is_landed_once() {
    let s3 = S3Fs::start();
    let f = Fixture::new("retried", 1);
    let bucket = bucket("retried");
    s3.create_container(&bucket);
    // The first data file's PUT reaches the server and is written; the client is told 503 (a
    // proxy's timeout), and object_store retries it into our own object.
    let proxy = Proxy::start(
        s3.port,
        Rule::UnavailableAfterForwarding(format!("/{bucket}/raw/{}/", f.topic)),
    )
    .await;
    produce_json(&f.broker.brokers, &f.topic, 1, 30, 0);
    let high = high_watermarks(&f.broker.brokers, &f.topic, 1);
    let (token, mut progress, handle) = start(config(
        &s3_vars(&f, &bucket, proxy.port),
        &[("INGEST_FLUSH_MAX_RECORDS", "10")],
    ));
    until_committed(&mut progress, &high).await;
    token.cancel();
    let run = handle.await.unwrap().expect("the service never stopped");
    assert!(proxy.fired(), "the rule met the first data file's PUT");
    assert_eq!(run.records, 30, "{run:?}");

    let dir = landed_locally(&f, &s3, &bucket).await;
    assert_exactly_once(dir.path(), &f.topic, &high);
    let claims = dir.path().join("_ingest/claims").join(&f.topic).join("0");
    assert_eq!(
        std::fs::read_dir(&claims).unwrap().count(),
        3,
        "every claim kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_revoked_mid_upload_leaves_the_partition_to_the_new_owner_without_stopping() {
    let s3 = S3Fs::start();
    let f = Fixture::new("revoked", 2);
    let bucket = bucket("revoked");
    s3.create_container(&bucket);
    // A's data files wait in the proxy; B writes to S3 directly.
    let proxy = Proxy::start(s3.port, Rule::Hold(format!("/{bucket}/raw/{}/", f.topic))).await;
    produce_json(&f.broker.brokers, &f.topic, 2, 20, 0);
    let flush = [("INGEST_FLUSH_MAX_RECORDS", "20")];
    let (token_a, _progress_a, handle_a) = start(config(&s3_vars(&f, &bucket, proxy.port), &flush));
    let deadline = std::time::Instant::now() + WAIT;
    while proxy.held() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "A claimed both partitions and uploads"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // B joins: one partition moves to B, whose start finds A's claim without its file and
    // completes it.
    let (token_b, mut progress_b, handle_b) = start(config(&s3_vars(&f, &bucket, s3.port), &flush));
    tokio::time::timeout(WAIT, progress_b.wait_for(|p| p.files >= 1))
        .await
        .expect("B completed the claim A could not finish")
        .unwrap();
    // A's uploads go on now: one finds B's file at its name, the other lands.
    proxy.release();
    produce_json(&f.broker.brokers, &f.topic, 2, 10, 20);
    let high = high_watermarks(&f.broker.brokers, &f.topic, 2);
    let committed = tokio::task::spawn_blocking({
        let (b, g, t) = (f.broker.brokers.clone(), f.group.clone(), f.topic.clone());
        move || wait_committed(&b, &g, &t, 2, WAIT)
    });
    assert_eq!(committed.await.unwrap(), high);
    token_a.cancel();
    token_b.cancel();
    let a = handle_a
        .await
        .unwrap()
        .expect("A never stopped on B's file");
    let b = handle_b.await.unwrap().expect("B never stopped");
    assert!(b.records > 0, "{b:?}");
    let _ = a;
    let dir = landed_locally(&f, &s3, &bucket).await;
    assert_exactly_once(dir.path(), &f.topic, &high);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_permission_revoked_mid_run_stops_the_service_with_what_to_grant() {
    let s3 = S3Fs::start();
    let f = Fixture::new("forbidden", 1);
    let bucket = bucket("forbidden");
    s3.create_container(&bucket);
    let proxy = Proxy::start(
        s3.port,
        Rule::ForbidAfterRelease(format!("/{bucket}/raw/{}/", f.topic)),
    )
    .await;
    produce_json(&f.broker.brokers, &f.topic, 1, 20, 0);
    let high = high_watermarks(&f.broker.brokers, &f.topic, 1);
    let (_token, mut progress, handle) = start(config(
        &s3_vars(&f, &bucket, proxy.port),
        &[("INGEST_FLUSH_MAX_RECORDS", "10")],
    ));
    until_committed(&mut progress, &high).await;
    let store = reader(&s3_vars(&f, &bucket, s3.port));
    let before = listing(&store).await;
    // The data prefix becomes read-only; before, every flush retried for ever (lag growing,
    // the error only on /readyz).
    proxy.release();
    produce_json(&f.broker.brokers, &f.topic, 1, 20, 20);
    let error = tokio::time::timeout(WAIT, handle)
        .await
        .expect("the service stops instead of retrying for ever")
        .unwrap()
        .expect_err("a refused write is a setting to change");
    let line = error.to_string();
    assert!(proxy.fired());
    assert!(
        matches!(error, ingest::Error::StorageRefused(_))
            && line.contains("was refused")
            && line.contains("s3:PutObject")
            && !line.contains('\n'),
        "{line}"
    );
    assert_eq!(
        committed(&f.broker.brokers, &f.group, &f.topic, 1),
        high,
        "nothing past the last landed file committed"
    );
    let after = landed_locally(&f, &s3, &bucket).await;
    assert_exactly_once(after.path(), &f.topic, &high);
    let now = listing(&store).await;
    for (key, meta) in &before {
        assert_eq!(now.get(key), Some(meta), "{key} changed");
    }
}

/// Every file under `dir` whose name ends with `suffix`, recursively.
fn files_under(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_a_name_made_from_records_gets_their_file_at_its_refuge_and_the_partition_goes_on(
) {
    let s3 = S3Fs::start();
    let f = Fixture::new("refused", 1);
    let bucket = bucket("refused");
    s3.create_container(&bucket);
    // The store refuses every name with `region=refuseme` in it, and answers everything else.
    let proxy = Proxy::start(s3.port, Rule::RefuseName("refuseme".into())).await;
    // Five refused records first (the first file), then refused and ordinary ones mixed, with
    // one that is not JSON in a batch whose first record is refused (its dead letters are
    // named after that record's directory too).
    let values: Vec<Vec<u8>> = (0..40)
        .map(|n| match n {
            16 => b"not json".to_vec(),
            n if n < 5 || n % 3 == 0 => format!(r#"{{"n":{n},"region":"refuseme"}}"#).into_bytes(),
            n => format!(r#"{{"n":{n},"region":"eu"}}"#).into_bytes(),
        })
        .collect();
    produce_to(&f.broker.brokers, &f.topic, 0, &values);
    let high = high_watermarks(&f.broker.brokers, &f.topic, 1);
    let vars = s3_vars(&f, &bucket, proxy.port);
    let settings = |fault: Option<&'static str>| {
        let mut s = vec![
            (
                "INGEST_PATH_TEMPLATE",
                "{topic}/region={record.region}/dt={date}/hour={hour}",
            ),
            ("INGEST_FLUSH_MAX_RECORDS", "5"),
        ];
        s.extend(fault.map(|n| ("INGEST_FAULT_HANG_AFTER_UPLOADS", n)));
        config(&vars, &s)
    };

    // The first run lands the first file at its refuge and dies before its commit.
    let (_token, progress, handle) = start(settings(Some("1")));
    let mut watch = progress.clone();
    tokio::time::timeout(WAIT, watch.wait_for(|p| p.files == 1))
        .await
        .expect("the first file lands in time")
        .unwrap();
    assert_eq!(progress.borrow().refused_names, 1, "its name was refused");
    handle.abort();
    let _ = handle.await;

    // The next run meets the claim: the file's name is refused again, its refuge is there, so
    // the range is landed; the rest lands, refused names at their refuges, and nothing stalls.
    let (token, mut progress, handle) = start(settings(None));
    until_committed(&mut progress, &high).await;
    // The start checked the chain's last claim's file (once per start: a rebalance may start
    // the partition again): its name refused, its refuge there.
    assert!(
        progress.borrow().chain_reads >= 1,
        "the claim's file was looked for"
    );
    token.cancel();
    handle.await.unwrap().expect("clean stop");
    assert!(proxy.fired());

    let dir = landed_locally(&f, &s3, &bucket).await;
    let refuges = dir
        .path()
        .join("_dead_letters")
        .join(&f.topic)
        .join("_refused");
    let mut seen = std::collections::BTreeMap::new();
    for (path, lines) in landed_files(dir.path(), &f.topic) {
        for line in lines {
            assert_eq!(line["value"]["region"], "eu", "{path:?}");
            *seen.entry(line["offset"].as_i64().unwrap()).or_insert(0) += 1;
        }
    }
    let kept = files_under(&refuges.join("data"), ".ndjson.gz");
    assert!(kept.len() >= 2, "{kept:?}");
    for path in &kept {
        for line in read_lines(path) {
            assert_eq!(line["value"]["region"], "refuseme", "{path:?}");
            *seen.entry(line["offset"].as_i64().unwrap()).or_insert(0) += 1;
        }
        // Next to each, what was refused and how.
        let note = format!("{}.refused.json", path.display());
        let note: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&note).expect("a note")).unwrap();
        let name = note["name"].as_str().unwrap();
        assert!(
            name.starts_with(&format!("{}/region=refuseme/", f.topic)),
            "{note}"
        );
        assert!(
            note["error"].as_str().unwrap().contains("KeyTooLongError"),
            "{note}"
        );
    }
    let dead: Vec<serde_json::Value> = files_under(&refuges.join("dead_letters"), ".ndjson.gz")
        .iter()
        .flat_map(|p| read_lines(p))
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["offset"], 16, "{dead:?}");
    *seen.entry(16).or_insert(0) += 1;
    let expected: std::collections::BTreeMap<i64, i32> = (0..40).map(|o| (o, 1)).collect();
    assert_eq!(
        seen, expected,
        "every record once: at its name, its refuge, or dead letters"
    );
}

/// The claim chain and the Delta log rely on create-only writes being atomic, as S3's and
/// Azure's are. The fixture's S3 (s3s-fs behind `common::proxy::Front`) is: of creates of one
/// key at once, one succeeds, the others are told the object exists, and the object is the
/// winner's. s3s-fs alone checks before writing and renames after, so all of them succeed, each
/// overwriting the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_creates_of_one_key_at_once_one_succeeds_and_the_object_is_its() {
    use object_store::path::Path;
    use object_store::{ObjectStoreExt as _, PutMode};
    let s3 = S3Fs::start();
    let bucket = bucket("creates");
    s3.create_container(&bucket);
    let env = s3_env(&bucket, "raw", s3.port, (S3_ACCESS_KEY, S3_SECRET_KEY));
    let store = reader(&env);
    for k in 0..8 {
        let path = Path::from(format!("key-{k}"));
        let puts = (1..=4u8).map(|writer| {
            let (store, path) = (std::sync::Arc::clone(&store), path.clone());
            async move {
                let body = vec![writer; 2 << 20];
                let put = store
                    .put_opts(&path, body.into(), PutMode::Create.into())
                    .await;
                (writer, put)
            }
        });
        let results = futures::future::join_all(puts).await;
        let won: Vec<u8> = results
            .iter()
            .filter(|(_, put)| put.is_ok())
            .map(|(w, _)| *w)
            .collect();
        assert_eq!(won.len(), 1, "one create of {path} succeeds: {results:?}");
        for (_, put) in &results {
            if let Err(e) = put {
                assert!(
                    matches!(e, object_store::Error::AlreadyExists { .. }),
                    "a losing create is told the object exists: {e}"
                );
            }
        }
        let got = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.len(), 2 << 20);
        assert!(got.iter().all(|b| *b == won[0]), "{path} is the winner's");
    }
}
