//! The buffer cap with many partitions: when every partition holds a small batch and the cap
//! pauses fetching, memory-pressure flushes must keep going until the pause can end, instead
//! of waiting for the age trigger (found by `make bench`: 147 partitions stalled for the whole
//! 300 s flush age).

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_over_many_partitions_drains_under_the_cap_without_waiting_for_age() {
    let Fixture {
        topic,
        group,
        broker,
        dir,
        vars,
    } = Fixture::new("many", 20);
    produce_json(&broker.brokers, &topic, 20, 10, 0);
    let high = high_watermarks(&broker.brokers, &topic, 20);
    // ~9 KB over 20 partitions against a 6 KB cap: no partition holds more than ~450 bytes
    // (under 10 % of the cap), so one flush alone cannot bring memory under the resume mark
    // (90 %) and, fetching being paused, no new record would ever trigger another.
    let (token, mut progress, handle) = start(only_memory_pressure(&vars, 6000));
    // Memory-pressure flushes land several batches; the tail below the cap waits for
    // shutdown.
    assert_eq!(high.values().sum::<i64>(), 200);
    let pressure = progress.wait_for(|p| p.records >= 60);
    tokio::time::timeout(WAIT, pressure)
        .await
        .expect("memory-pressure flushes kept going while fetching was paused")
        .unwrap();
    token.cancel();
    handle.await.unwrap().unwrap();
    let done = committed(&broker.brokers, &group, &topic, 20)
        .into_iter()
        .map(|(p, c)| (p, c.max(0)))
        .collect();
    assert_exactly_once(dir.path(), &topic, &done);
}
