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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_that_panics_on_a_record_dead_letters_it_and_the_rest_lands() {
    let fx = Fixture::new("poison", 1);
    produce_json(&fx.broker.brokers, &fx.topic, 1, 50, 0);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 1);
    let transform = Transform::new(|v| {
        assert!(v["n"] != 17, "cannot handle order 17");
        Keep::Yes
    });
    let pipeline = Pipeline::new(config(&fx.vars, &[])).with_transform(Some(transform));
    let mut progress = pipeline.progress();
    let token = CancellationToken::new();
    let handle = tokio::spawn(pipeline.run(token.clone()));
    let all_committed = progress.wait_for(|p| p.committed.get(&0) == high.get(&0));
    tokio::time::timeout(Duration::from_secs(60), all_committed)
        .await
        .expect("the service went on past the poison record")
        .expect("pipeline running");
    token.cancel();
    let landed = handle.await.unwrap().unwrap();
    assert_eq!((landed.records, landed.dead_letters), (49, 1));
    let dead: Vec<_> = landed_files(&fx.dir.path().join("_dead_letters"), &fx.topic)
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["offset"], 17);
    let error = dead[0]["error"].as_str().unwrap();
    assert!(
        error.contains("panicked") && error.contains("cannot handle order 17"),
        "{error}"
    );
}
