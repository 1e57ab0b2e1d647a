//! A per-topic transform in the real pipeline (in-process broker, local disk): dropped records
//! are committed with their batch, so a topic whose tail is entirely filtered never stalls.

mod common;

use std::time::Duration;

use common::*;
use ingest::transform::{mask_field, Transform};
use ingest::{CancellationToken, Keep, Pipeline};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_records_are_committed_and_kept_ones_are_transformed() {
    let fx = Fixture::new("filtered", 2);
    // `n` runs 0..300 per partition; odd ones are dropped, `text` is masked.
    produce_json(&fx.broker.brokers, &fx.topic, 2, 300, 0);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 2);

    let transform = Transform::new(|v| {
        mask_field(v, "text");
        Keep::from(v["n"].as_u64().is_some_and(|n| n % 2 == 0))
    });
    let pipeline = Pipeline::new(config(&fx.vars, &[])).with_transform(Some(transform));
    let mut progress = pipeline.progress();
    let token = CancellationToken::new();
    let handle = tokio::spawn(pipeline.run(token.clone()));
    let all_committed = progress.wait_for(|p| {
        high.iter()
            .all(|(part, hw)| p.committed.get(part) == Some(hw))
    });
    tokio::time::timeout(Duration::from_secs(60), all_committed)
        .await
        .expect("every offset committed, filtered ones included")
        .expect("pipeline running");
    token.cancel();
    handle.await.unwrap().unwrap();

    let mut kept = 0;
    for (_, lines) in landed_files(fx.dir.path(), &fx.topic) {
        for line in lines {
            assert_eq!(line["value"]["n"].as_u64().unwrap() % 2, 0, "{line}");
            assert_eq!(line["value"]["text"], "***");
            kept += 1;
        }
    }
    assert_eq!(kept, 300, "half of 2 x 300 records kept");
    assert_eq!(committed(&fx.broker.brokers, &fx.group, &fx.topic, 2), high);
}
