//! A store or broker that cannot be reached when the service starts is an outage to wait for,
//! not a reason to exit: the service stays up, not ready with the reason on `/readyz`, alive on
//! `/healthz`, and lands everything once it is back. (Before, it exited 1 at start, and under
//! Kubernetes a crash loop's growing delay outlasted the outage.) The service runs as its own
//! process against s3s-fs and tansu, each stopped before it starts.

mod common;

use std::process::Child;

use common::process::*;
use common::servers::{S3Fs, Server};
use common::tansu::*;
use common::*;

/// Waits until the service has retried at least twice, still running and not ready.
fn waits_for(child: &mut Child, rx: &std::sync::mpsc::Receiver<String>, what: &str) {
    let addr = endpoint_addr(rx);
    for _ in 0..2 {
        wait_line(rx, "a start-up retry", |l| {
            l.contains(&format!("start-up waits for {what}"))
        });
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the service is still running"
    );
    let (status, body) = http_get(&addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with(&format!(
            "starting: waiting, retrying with backoff: {what}: "
        )),
        "{body}"
    );
    assert_eq!(http_get(&addr, "/healthz").0, 200, "waiting is not stuck");
}

#[test]
fn a_store_down_at_start_is_waited_for_then_every_record_lands_once() {
    let mut s3 = S3Fs::start();
    let f = Fixture::new("storewait", 2);
    let bucket = unique("storewait").to_ascii_lowercase();
    s3.create_container(&bucket);
    let mut vars = f.vars.clone();
    vars.retain(|(k, _)| k != "INGEST_STORAGE_URL");
    vars.extend(s3.env(&bucket, "raw"));
    produce_json(&f.broker.brokers, &f.topic, 2, 150, 0);
    s3.stop();

    let mut child = service(&vars, &[]).spawn().unwrap();
    let rx = lines(child.stderr.take().unwrap());
    waits_for(&mut child, &rx, "storage");

    s3.restart();
    wait_committed(
        &f.broker.brokers,
        &f.group,
        &f.topic,
        2,
        std::time::Duration::from_secs(120),
    );
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let copy = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let store = common::servers::reader(&vars);
        common::servers::mirror(&store, &f.topic, copy.path()).await;
    });
    let high = high_watermarks(&f.broker.brokers, &f.topic, 2);
    assert_exactly_once(copy.path(), &f.topic, &high);
}

#[test]
fn a_broker_down_at_start_is_waited_for_then_every_record_lands_once() {
    let mut tansu = Tansu::start();
    let (topic, group) = (unique("brokerwait"), unique("group"));
    create_topic(&tansu.brokers, &topic, 2);
    produce_json(&tansu.brokers, &topic, 2, 150, 0);
    let dir = tempfile::tempdir().unwrap();
    let vars = env(&tansu.brokers, &topic, &group, dir.path());
    tansu.stop();

    let mut child = service(&vars, &[]).spawn().unwrap();
    let rx = lines(child.stderr.take().unwrap());
    waits_for(&mut child, &rx, "the source");

    tansu.restart();
    wait_committed(
        &tansu.brokers,
        &group,
        &topic,
        2,
        std::time::Duration::from_secs(120),
    );
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
    let high = high_watermarks(&tansu.brokers, &topic, 2);
    assert_exactly_once(dir.path(), &topic, &high);
}
