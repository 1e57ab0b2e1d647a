//! A poison record a non-Rust producer can write: a Kafka header key that is not UTF-8 (rdkafka
//! panics reading it). Produced by kafka-python over TCP to librdkafka's mock cluster, since
//! rdkafka's own producer only takes `&str` keys. The record goes the invalid-record way, named
//! by its offset, and the service goes on.

mod common;

use common::servers::python_module;
use common::*;

/// Produces three records to partition 0; the second has a header whose key is the bytes
/// ff fe. `false` when kafka-python is missing (CI installs it; see .ci/install-deps).
fn produce_bad_header_key(brokers: &str, topic: &str) -> bool {
    let script = r#"
import sys
from kafka import KafkaProducer

class RawKey(str):
    """A header key whose encoding is not UTF-8 (kafka-python encodes keys with .encode)."""
    def encode(self, *args, **kwargs):
        return b"\xff\xfe"

producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 6))
topic = sys.argv[2]
producer.send(topic, value=b'{"n":0}', partition=0, headers=[("ok", b"1")])
producer.send(topic, value=b'{"n":1}', partition=0, headers=[(RawKey("k"), b"2")])
producer.send(topic, value=b'{"n":2}', partition=0, headers=[("ok", b"3")])
producer.flush(30)
"#;
    python_module("kafka", "pip install kafka-python==2.0.2");
    let out = std::process::Command::new("python3")
        // -O: kafka-python 2.0 asserts that header keys are exactly `str` (a subclass is not).
        .args(["-O", "-c", script, brokers, topic])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kafka-python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_key_that_is_not_utf8_is_a_dead_letter_and_the_service_goes_on() {
    let Fixture {
        topic,
        broker,
        dir,
        vars,
        ..
    } = Fixture::new("poison", 1);
    if !produce_bad_header_key(&broker.brokers, &topic) {
        return;
    }
    let high = high_watermarks(&broker.brokers, &topic, 1);
    assert_eq!(high[&0], 3);
    let (token, mut progress, handle) = start(config(&vars, &[("INGEST_ENVELOPE", "metadata")]));
    until_committed(&mut progress, &high).await;
    token.cancel();
    let run = handle.await.unwrap().unwrap();
    assert_eq!((run.records, run.dead_letters), (2, 1));

    let data = landed_files(dir.path(), &topic);
    let landed: Vec<(i64, String)> = data
        .iter()
        .flat_map(|(_, lines)| lines)
        .map(|l| (l["offset"].as_i64().unwrap(), l["headers"].to_string()))
        .collect();
    assert_eq!(landed.len(), 2, "{landed:?}");
    assert_eq!((landed[0].0, landed[1].0), (0, 2));
    assert!(landed[0].1.contains("ok"), "headers kept: {landed:?}");

    let dead = landed_files(&dir.path().join("_dead_letters"), &topic);
    let line = &dead[0].1[0];
    assert_eq!(line["offset"], 1);
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("header key is not valid UTF-8"),
        "{line}"
    );
}
