//! Back-pressure at the buffer cap when uploads stop: messages first wait in librdkafka's
//! queue, then (after 2 s) partitions pause; when storage returns they resume exactly where
//! they stopped (a seek to the next offset wakes the fetcher), so nothing is skipped or doubled.

mod common;

use common::process::{http_get, parse_metrics};
use common::*;

fn paused(addr: &str) -> f64 {
    let (_, body) = http_get(addr, "/metrics");
    parse_metrics(&body)
        .get("ingest_paused_partitions")
        .copied()
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stall_at_the_cap_pauses_then_resumes_where_it_stopped() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("stall", 2);
    produce_json(&broker.brokers, &topic, 2, 100, 0);
    let (token, mut progress, handle) = start(config(
        &vars,
        &[
            ("INGEST_MAX_BUFFER_BYTES", "16384"),
            ("INGEST_FLUSH_MAX_BYTES", "16384"),
            ("INGEST_FLUSH_MAX_RECORDS", "50"),
        ],
    ));
    until_committed(&mut progress, &high_watermarks(&broker.brokers, &topic, 2)).await;
    let addr = progress
        .borrow()
        .http_addr
        .expect("metrics endpoint")
        .to_string();

    break_storage(dir.path());
    produce_json(&broker.brokers, &topic, 2, 400, 100);
    let probe = addr.clone();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + WAIT;
        while paused(&probe) < 2.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "fetching never paused"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(progress.borrow().storage_errors > 0);

    restore_storage(dir.path());
    let high = high_watermarks(&broker.brokers, &topic, 2);
    until_committed(&mut progress, &high).await;
    assert_eq!(paused(&addr), 0.0, "resumed");
    token.cancel();
    handle.await.unwrap().unwrap();
    assert_exactly_once(dir.path(), &topic, &high);
}
