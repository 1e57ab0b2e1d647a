use super::*;

fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("INGEST_TOPIC", "orders"),
        ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        ("INGEST_STORAGE_URL", "file:///tmp/lake"),
    ]
}

pub(super) fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
    base_with(&base(), extra)
}

pub(super) fn without(var: &str) -> Result<Config, ConfigError> {
    base_without(&base(), var)
}

/// `base` with `extra` set (replacing what `base` says for the same variable).
pub(super) fn base_with(
    base: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> Result<Config, ConfigError> {
    let mut vars = base.to_vec();
    for (k, v) in extra {
        vars.retain(|(key, _)| key != k);
        vars.push((k, v));
    }
    Config::from_pairs(vars)
}

/// `base` without `var`.
pub(super) fn base_without(base: &[(&str, &str)], var: &str) -> Result<Config, ConfigError> {
    Config::from_pairs(base.iter().copied().filter(|(k, _)| *k != var))
}

#[test]
fn minimal_environment_gets_documented_defaults() {
    let c = with(&[]).unwrap();
    assert_eq!(c.topic, "orders");
    assert_eq!(c.kafka.group_id, "ingest-orders");
    assert_eq!(c.flush.max_records, defaults::FLUSH_MAX_RECORDS);
    assert_eq!(c.flush.max_bytes, defaults::FLUSH_MAX_BYTES);
    assert_eq!(
        c.flush.max_age,
        Duration::from_millis(defaults::FLUSH_MAX_AGE_MS)
    );
    assert_eq!(c.compression, Compression::Gzip { level: 6 });
    assert_eq!(c.envelope, Envelope::Raw);
    assert_eq!(c.invalid, InvalidRecordPolicy::DeadLetter);
    assert_eq!(c.time_source, TimeSource::Record);
    assert_eq!(c.dead_letter_prefix, "_dead_letters");
    assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.fault.hang_after_uploads, None);
}

#[test]
fn missing_required_variables_name_the_variable_and_what_is_expected() {
    for var in [
        "INGEST_TOPIC",
        "INGEST_KAFKA_BOOTSTRAP_SERVERS",
        "INGEST_STORAGE_URL",
    ] {
        let err = without(var).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{var} is not set: expected ")),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }
}

#[test]
fn invalid_values_name_variable_value_and_expectation_in_one_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "INGEST_FLUSH_MAX_RECORDS",
            "lots",
            "a positive whole number",
        ),
        ("INGEST_FLUSH_MAX_BYTES", "0", "a positive whole number"),
        ("INGEST_FLUSH_MAX_AGE_MS", "-5", "a positive whole number"),
        ("INGEST_COMPRESSION", "zstd", "one of gzip, none"),
        ("INGEST_COMPRESSION_LEVEL", "11", "from 1 (fastest) to 9"),
        ("INGEST_ENVELOPE", "avro", "one of raw, metadata"),
        (
            "INGEST_INVALID_RECORD_POLICY",
            "ignore",
            "one of fail, skip, dead-letter",
        ),
        (
            "INGEST_TIME_SOURCE",
            "wall",
            "one of record, ingestion, field",
        ),
        ("INGEST_TOPIC", "bad/topic", "ASCII letters"),
        (
            "INGEST_STORAGE_URL",
            "gs://bucket/x",
            "file:///absolute/path",
        ),
        (
            "INGEST_STORAGE_URL",
            "relative/dir",
            "file:///absolute/path",
        ),
        (
            "INGEST_DEAD_LETTER_PREFIX",
            "../up",
            "outside the data path",
        ),
        (
            "INGEST_DEAD_LETTER_PREFIX",
            "orders",
            "outside the data path",
        ),
        ("INGEST_LOG_FORMAT", "xml", "one of auto, json, text"),
        ("INGEST_SOURCE", "pulsar", "kafka"),
    ];
    for (var, value, expected) in cases {
        let err = with(&[(var, value)]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{var}=")), "{err}");
        assert!(err.contains(&format!("{value:?}")), "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains('\n'));
    }
}

#[test]
fn a_delta_table_on_a_store_that_may_overwrite_is_refused() {
    let err = with(&[
        ("INGEST_FORMAT", "delta"),
        ("INGEST_ACCEPT_AT_LEAST_ONCE", "true"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("INGEST_ACCEPT_AT_LEAST_ONCE="), "{err}");
    assert!(err.contains("INGEST_FORMAT=delta"), "{err}");
    assert!(!err.contains('\n'));
    with(&[("INGEST_FORMAT", "delta")]).expect("delta alone is fine");
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let c = with(&[
        ("INGEST_KAFKA_SASL_PASSWORD", "hunter2-secret"),
        (
            "INGEST_STORAGE_URL",
            "s3://user:pw-secret@bucket/p?sig=sas-secret",
        ),
    ])
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("secret"), "{debug}");
    assert!(debug.contains("sasl.password=***"), "{debug}");
    let err = with(&[
        ("INGEST_KAFKA_SASL_PASSWORD", "hunter2-secret"),
        ("INGEST_KAFKA_ENABLE_AUTO_OFFSET_STORE", "x"),
    ])
    .unwrap_err()
    .to_string();
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn unknown_ingest_variables_are_reported_not_fatal() {
    let c = with(&[("INGEST_FLUSH_MAX_RECORD", "10")]).unwrap();
    assert_eq!(
        c.unknown_variables,
        vec!["INGEST_FLUSH_MAX_RECORD".to_string()]
    );
}

#[test]
fn dead_letters_and_topics_stay_out_of_the_data_path_and_the_state_prefix() {
    for prefix in ["orders/bad", "/orders/dead/", "_ingest", "_ingest/dead"] {
        let err = with(&[("INGEST_DEAD_LETTER_PREFIX", prefix)])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("INGEST_DEAD_LETTER_PREFIX=") && err.contains("outside the data path"),
            "{prefix}: {err}"
        );
    }
    for prefix in ["_dead_letters", "orders_dead", "dead/orders"] {
        let c = with(&[("INGEST_DEAD_LETTER_PREFIX", prefix)]).unwrap();
        assert_eq!(c.dead_letter_prefix, prefix);
    }
    let err = with(&[("INGEST_TOPIC", "_ingest")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("INGEST_TOPIC=\"_ingest\" is invalid") && err.contains("claims"),
        "{err}"
    );
}

#[test]
fn the_settings_reference_is_exactly_what_the_service_reads() {
    use super::reference::{EVENTHUBS_SETTINGS, SETTINGS};
    let documented: Vec<&str> = SETTINGS
        .iter()
        .chain(EVENTHUBS_SETTINGS)
        .map(|s| s.name)
        .filter(|n| !n.contains('<'))
        .collect();
    for name in &documented {
        let raw = RawEnv::from_vars([(name.to_string(), "1".to_string())]).unwrap();
        assert!(
            raw.unknown.is_empty(),
            "{name} is in the reference but not read"
        );
    }
    let read = super::env::TYPED
        .iter()
        .map(|n| format!("INGEST_{n}"))
        .chain(
            super::eventhubs::NAMES
                .iter()
                .map(|n| format!("INGEST_EVENTHUBS_{n}")),
        );
    for name in read {
        assert!(
            documented.contains(&name.as_str()),
            "{name} is read but not in the reference"
        );
    }
}

#[test]
fn every_variable_the_configuration_page_documents_is_read() {
    let readme = [
        include_str!("../../../docs/src/configuration.md"),
        include_str!("../../../docs/src/eventhubs.md"),
        include_str!("../../../docs/src/storage.md"),
    ]
    .concat();
    let documented: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `INGEST_"))
        .filter_map(|l| l.split('`').next())
        .filter(|name| !name.contains('<'))
        .map(|name| format!("INGEST_{name}"))
        .collect();
    assert!(documented.len() > 40, "{documented:?}");
    for var in documented {
        let raw = RawEnv::from_vars([(var.clone(), "1".to_string())]).unwrap();
        assert!(raw.unknown.is_empty(), "{var} is documented but not read");
    }
}

#[test]
fn a_storage_prefix_leaves_keys_their_room_or_is_refused() {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let prefix = "p".repeat(crate::config::layout::MAX_STORAGE_PREFIX_BYTES);
    let url = |p: &str| leak(format!("s3://bucket/{p}/"));
    assert!(with(&[("INGEST_STORAGE_URL", url(&prefix))]).is_ok());
    let e = with(&[("INGEST_STORAGE_URL", url(&format!("{prefix}p")))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("a prefix of at most 128 bytes"), "{e}");
    // A local directory is no part of the keys.
    let deep = leak(format!("/tmp/{}", "d/".repeat(200)));
    assert!(with(&[("INGEST_STORAGE_URL", deep)]).is_ok());
}
