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
    unique(prefix).to_ascii_lowercase().replace('_', "-")
}

/// The fixture's variables, landing in `bucket/raw` on S3 at `port` (the server or a proxy).
fn s3_vars(f: &Fixture, bucket: &str, port: u16) -> Vec<(String, String)> {
    let mut vars = f.vars.clone();
    vars.retain(|(k, _)| k != "INGEST_STORAGE_URL");
    vars.extend(s3_env(bucket, "raw", port, (S3_ACCESS_KEY, S3_SECRET_KEY)));
    vars
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
