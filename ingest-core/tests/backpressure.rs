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

type Running = (
    ingest::CancellationToken,
    tokio::sync::watch::Receiver<ingest::Progress>,
    tokio::task::JoinHandle<Result<ingest::Progress, ingest::Error>>,
);

/// Starts the pipeline with a 16 KB cap (plus `extra`), lands 100 records per partition of two,
/// then breaks storage and produces 400 more each, and waits until both partitions are paused
/// at the cap. Returns the running pipeline and its metrics address.
async fn paused_at_the_cap(f: &Fixture, extra: &[(&str, &str)]) -> (Running, String) {
    produce_json(&f.broker.brokers, &f.topic, 2, 100, 0);
    let mut settings = vec![
        ("INGEST_MAX_BUFFER_BYTES", "16384"),
        ("INGEST_FLUSH_MAX_BYTES", "16384"),
        ("INGEST_FLUSH_MAX_RECORDS", "50"),
    ];
    settings.extend_from_slice(extra);
    let (token, mut progress, handle) = start(config(&f.vars, &settings));
    until_committed(
        &mut progress,
        &high_watermarks(&f.broker.brokers, &f.topic, 2),
    )
    .await;
    let addr = progress
        .borrow()
        .http_addr
        .expect("metrics endpoint")
        .to_string();

    break_storage(f.dir.path());
    produce_json(&f.broker.brokers, &f.topic, 2, 400, 100);
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
    ((token, progress, handle), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stall_at_the_cap_pauses_then_resumes_where_it_stopped() {
    let f = Fixture::new("stall", 2);
    let ((token, mut progress, handle), addr) = paused_at_the_cap(&f, &[]).await;

    restore_storage(f.dir.path());
    let high = high_watermarks(&f.broker.brokers, &f.topic, 2);
    until_committed(&mut progress, &high).await;
    assert_eq!(paused(&addr), 0.0, "resumed");
    token.cancel();
    handle.await.unwrap().unwrap();
    assert_exactly_once(f.dir.path(), &f.topic, &high);
}

/// A group member that takes partitions and never commits, standing in for a replica that
/// joins and leaves. It polls (so rebalances complete) until `leave` is set, then leaves.
fn bystander(
    brokers: &str,
    group: &str,
    topic: &str,
    leave: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (
    std::sync::mpsc::Receiver<usize>,
    std::thread::JoinHandle<()>,
) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use std::sync::atomic::Ordering;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let (assigned_tx, assigned) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut told = false;
        while !leave.load(Ordering::Relaxed) {
            let _ = consumer.poll(std::time::Duration::from_millis(50));
            let n = consumer.assignment().map(|a| a.count()).unwrap_or(0);
            if n > 0 && !told {
                told = assigned_tx.send(n).is_ok();
            }
        }
        consumer.unsubscribe();
        for _ in 0..20 {
            let _ = consumer.poll(std::time::Duration::from_millis(50));
        }
    });
    (assigned, handle)
}

/// A partition this member had paused (at the cap) when it was revoked is read again when it is
/// assigned back: the loop resumes every partition it is assigned, undoing a pause of its own
/// that crossed the rebalance, whatever librdkafka itself does with the application's pause flag
/// on reassignment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_paused_when_revoked_is_read_again_when_assigned_back() {
    let f = Fixture::new("repaused", 2);
    // Members that leave are noticed in seconds, not the default 45 s.
    let session = [
        ("INGEST_KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ("INGEST_KAFKA_HEARTBEAT_INTERVAL_MS", "500"),
    ];
    let ((token, _progress, handle), _) = paused_at_the_cap(&f, &session).await;
    let Fixture {
        topic,
        group,
        broker,
        dir,
        ..
    } = &f;

    // Another member takes one of them (revoked here while paused) ...
    let leave = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (assigned, member) = bystander(&broker.brokers, group, topic, leave.clone());
    let taken = tokio::task::spawn_blocking(move || assigned.recv_timeout(WAIT))
        .await
        .unwrap()
        .expect("the other member got a partition");
    assert_eq!(taken, 1);
    restore_storage(dir.path());
    // ... and leaves without committing, so it comes back here.
    leave.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::task::spawn_blocking(move || member.join().unwrap())
        .await
        .unwrap();

    let committed = tokio::task::spawn_blocking({
        let (b, g, t) = (broker.brokers.clone(), group.clone(), topic.clone());
        move || wait_committed(&b, &g, &t, 2, WAIT)
    })
    .await
    .unwrap();
    token.cancel();
    handle.await.unwrap().unwrap();
    assert_exactly_once(dir.path(), topic, &committed);
}
