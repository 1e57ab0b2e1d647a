use super::*;
use crate::config::tests::with;

#[test]
fn kafka_passthrough_maps_names_and_refuses_auto_commit() {
    let c = with(&[
        ("INGEST_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("INGEST_KAFKA_SASL_MECHANISM", "PLAIN"),
        ("INGEST_KAFKA_SASL_USERNAME", "$ConnectionString"),
        (
            "INGEST_KAFKA_SASL_PASSWORD",
            "Endpoint=sb://x/;SharedAccessKey=s3cr3t",
        ),
    ])
    .unwrap();
    let props: Vec<(&str, &str)> = c
        .kafka
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        props,
        vec![
            ("sasl.mechanism", "PLAIN"),
            ("sasl.password", "Endpoint=sb://x/;SharedAccessKey=s3cr3t"),
            ("sasl.username", "$ConnectionString"),
            ("security.protocol", "SASL_SSL"),
        ]
    );
    let err = with(&[("INGEST_KAFKA_ENABLE_AUTO_COMMIT", "true")])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("INGEST_KAFKA_ENABLE_AUTO_COMMIT="), "{err}");
}

#[test]
fn topic_rules_follow_kafka() {
    assert!(validate_topic("a.b_c-D9").is_ok());
    assert!(validate_topic(&"x".repeat(213)).is_ok());
    assert!(validate_topic(&"x".repeat(214)).is_err());
    assert!(validate_topic("..").is_err());
    assert!(validate_topic("").is_err());
    assert!(validate_topic("é").is_err());
}
