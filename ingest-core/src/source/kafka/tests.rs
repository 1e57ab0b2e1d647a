use super::{batch_budget, client_config, prefetch_kbytes, subscribe};
use crate::config::Config;

fn refused(name: &str, value: &str) -> String {
    let config = Config::from_pairs([
        ("INGEST_TOPIC", "orders"),
        ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        ("INGEST_STORAGE_URL", "file:///tmp/lake"),
        (name, value),
    ])
    .unwrap();
    match subscribe(&config) {
        Ok(_) => panic!("{name} was accepted"),
        Err(e @ crate::Error::KafkaSetting(_)) => {
            assert!(!e.is_retryable());
            e.to_string()
        }
        Err(e) => panic!("{name}: not a settings error: {e}"),
    }
}

#[tokio::test]
async fn an_invalid_property_is_named_without_its_value() {
    let secret = "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"$ConnectionString\" password=\"Endpoint=sb://x/;SharedAccessKey=s3cr3t\";";
    let e = refused("INGEST_KAFKA_SASL_JAAS_CONFIG", secret);
    assert!(
        !e.contains("s3cr3t") && !e.contains("PlainLoginModule"),
        "{e}"
    );
    assert!(
        e.starts_with("INGEST_KAFKA_SASL_JAAS_CONFIG is not a valid Kafka setting")
            && e.contains("INGEST_KAFKA_SASL_PASSWORD"),
        "{e}"
    );
    let e = refused("INGEST_KAFKA_SESSION_TIMEOUT_MS", "hunter2-secret");
    assert!(!e.contains("hunter2"), "{e}");
    assert!(
        e.starts_with("INGEST_KAFKA_SESSION_TIMEOUT_MS is not a valid"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn prefetch_is_a_thirty_second_of_the_cap_within_bounds() {
    assert_eq!(
        prefetch_kbytes(256 * 1024 * 1024),
        8 * 1024,
        "the default cap"
    );
    assert_eq!(prefetch_kbytes(64 * 1024 * 1024), 2 * 1024);
    assert_eq!(prefetch_kbytes(6_000), 1024, "at least 1 MiB");
    assert_eq!(prefetch_kbytes(8 << 30), 8 * 1024, "at most 8 MiB");
}

fn config_with(extra: &[(&str, &str)]) -> Config {
    let mut pairs = vec![
        ("INGEST_TOPIC", "orders"),
        ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        ("INGEST_STORAGE_URL", "file:///tmp/lake"),
    ];
    pairs.extend_from_slice(extra);
    Config::from_pairs(pairs).unwrap()
}

#[test]
fn the_prefetch_is_bounded_in_messages_too_and_reserved_from_the_cap() {
    const MIB: usize = 1024 * 1024;
    let config = config_with(&[]);
    let client = client_config(&config);
    // 8 MiB of 170-byte records would be 49,000 messages, each with a 320-byte op.
    assert_eq!(client.get("queued.max.messages.kbytes"), Some("8192"));
    assert_eq!(client.get("queued.min.messages"), Some("16384"));
    assert_eq!(batch_budget(&config), 256 * MIB - 24 * MIB);

    // A user's bounds win, and what they let librdkafka hold is reserved.
    let config = config_with(&[("INGEST_KAFKA_QUEUED_MIN_MESSAGES", "100000")]);
    assert_eq!(
        client_config(&config).get("queued.min.messages"),
        Some("100000")
    );
    assert_eq!(batch_budget(&config), 256 * MIB - 16 * MIB - 100_000 * 320);
    let config = config_with(&[("INGEST_KAFKA_QUEUED_MAX_MESSAGES_KBYTES", "2048")]);
    assert_eq!(
        client_config(&config).get("queued.min.messages"),
        Some("4096"),
        "follows the user's byte bound"
    );
    assert_eq!(batch_budget(&config), 256 * MIB - 6 * MIB);
}
