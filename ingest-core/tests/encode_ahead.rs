//! Batches large enough to be compressed while they fill (encoding ahead): what lands is one
//! standard gzip member per file holding exactly the records, dead letters included.

mod common;

use std::io::Read;

use common::process::{http_get, parse_metrics};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_compressed_while_filling_land_exactly_once_as_single_gzip_members() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("ahead", 2);
    // About 2.6 MB per partition: several 1 MiB jobs ahead of each flush.
    for p in 0..2 {
        let values: Vec<Vec<u8>> = (0..4000)
            .map(|n| {
                if n % 997 == 5 {
                    b"{not json".to_vec()
                } else {
                    let pad = "é🥐x".repeat(60 + n % 90);
                    format!(r#"{{"p":{p},"n":{n},"pad":"{pad}"}}"#).into_bytes()
                }
            })
            .collect();
        produce_to(&broker.brokers, &topic, p, &values);
    }
    let high = high_watermarks(&broker.brokers, &topic, 2);
    let (token, mut progress, handle) = start(config(
        &vars,
        &[
            ("INGEST_FLUSH_MAX_RECORDS", "1000000"),
            ("INGEST_FLUSH_MAX_AGE_MS", "1500"),
            ("INGEST_INVALID_RECORD_POLICY", "dead-letter"),
        ],
    ));
    let dead = tokio::time::timeout(
        WAIT,
        progress.wait_for(|p| p.records + p.dead_letters == 8000),
    )
    .await
    .expect("everything landed in time")
    .unwrap()
    .clone();
    let addr = dead.http_addr.expect("metrics endpoint").to_string();
    let (_, metrics) = tokio::task::spawn_blocking(move || http_get(&addr, "/metrics"))
        .await
        .unwrap();
    token.cancel();
    handle.await.unwrap().unwrap();

    let ahead = parse_metrics(&metrics)
        .get("ingest_encoded_ahead_bytes_total")
        .copied()
        .unwrap_or(0.0);
    assert!(ahead >= 2e6, "{ahead} bytes encoded ahead");
    assert_eq!(dead.dead_letters, 2 * 5);
    // Every offset once: the valid ones in data files, the rest as dead letters.
    let landed = landed_offsets(dir.path(), &topic);
    for (p, offsets) in &landed {
        assert_eq!(offsets.len(), 4000 - 5, "partition {p}");
    }
    assert_eq!(landed.len(), high.len());
    for (path, lines) in landed_files(dir.path(), &topic) {
        // A single-member decoder reads the whole file: the parts form one member.
        let mut text = String::new();
        flate2::read::GzDecoder::new(&std::fs::read(&path).unwrap()[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), lines.len(), "{}", path.display());
        for line in &lines {
            let n = line["value"]["n"].as_u64().unwrap() as usize;
            assert_eq!(line["offset"].as_u64().unwrap() as usize, n);
            assert_eq!(
                line["value"]["pad"].as_str().unwrap(),
                "é🥐x".repeat(60 + n % 90)
            );
        }
    }
}
