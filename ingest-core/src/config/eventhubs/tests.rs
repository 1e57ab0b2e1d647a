use super::*;
use crate::config::Config;

const KEY: &str = "c2VjcmV0LWtleS1ub3QtcmVhbA==";

const BASE: &[(&str, &str)] = &[
    ("INGEST_SOURCE", "eventhubs"),
    ("INGEST_EVENTHUBS_NAMESPACE", "MyNamespace"),
    ("INGEST_EVENTHUBS_EVENT_HUB", "orders"),
    ("INGEST_STORAGE_URL", "az://lake/raw"),
];

fn with(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    crate::config::tests::base_with(BASE, extra)
}

fn without(var: &str) -> Result<Config, ConfigError> {
    crate::config::tests::base_without(BASE, var)
}

#[test]
fn minimal_environment_gets_documented_defaults() {
    let c = with(&[]).unwrap();
    let eh = c.eventhubs.expect("eventhubs settings");
    assert_eq!(
        eh.fully_qualified_namespace,
        "mynamespace.servicebus.windows.net"
    );
    assert_eq!(eh.event_hub, "orders");
    assert_eq!(eh.consumer_group, "$Default");
    assert_eq!(eh.credential, Credential::Identity);
    assert_eq!(eh.start_position, StartAt::Earliest);
    assert_eq!(eh.ownership_expiry, Duration::from_millis(60_000));
    assert_eq!(eh.load_balancing_interval, Duration::from_millis(10_000));
    assert_eq!(eh.checkpoint_url.as_str(), "az://lake/raw");
    assert_eq!(eh.owner_id, None);
    assert_eq!(eh.endpoint, None);
    // The event hub names the data directory; no Kafka settings are needed.
    assert_eq!(c.topic, "orders");
    assert!(c.unknown_variables.is_empty());
}

#[test]
fn kafka_stays_the_default_source_without_eventhubs_settings() {
    let c = Config::from_pairs([
        ("INGEST_TOPIC", "orders"),
        ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        ("INGEST_STORAGE_URL", "file:///tmp/lake"),
        // Ignored (not the source), but known: not reported as a typo.
        ("INGEST_EVENTHUBS_EVENT_HUB", "orders"),
    ])
    .unwrap();
    assert!(c.eventhubs.is_none());
    assert!(c.unknown_variables.is_empty());
}

#[test]
fn connection_string_names_namespace_and_hub_and_stays_secret() {
    let cs = format!(
        "Endpoint=sb://Prod-NS.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={KEY};EntityPath=clicks"
    );
    let c = Config::from_pairs([
        ("INGEST_SOURCE", "eventhubs"),
        ("INGEST_EVENTHUBS_CONNECTION_STRING", cs.as_str()),
        ("INGEST_STORAGE_URL", "az://lake"),
    ])
    .unwrap();
    let eh = c.eventhubs.clone().unwrap();
    assert_eq!(
        eh.fully_qualified_namespace,
        "prod-ns.servicebus.windows.net"
    );
    assert_eq!(eh.event_hub, "clicks");
    assert_eq!(c.topic, "clicks");
    assert_eq!(
        eh.credential,
        Credential::SharedAccessKey(SharedAccessKey::Key {
            name: "listen".into(),
            key: KEY.into()
        })
    );
    let shown = format!("{c:?}");
    assert!(shown.contains("listen"), "{shown}");
    assert!(!shown.contains(KEY), "{shown}");
}

#[test]
fn missing_settings_name_the_variable() {
    for var in ["INGEST_EVENTHUBS_NAMESPACE", "INGEST_EVENTHUBS_EVENT_HUB"] {
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
        ("INGEST_EVENTHUBS_NAMESPACE", "my ns", "a namespace name"),
        ("INGEST_EVENTHUBS_EVENT_HUB", "a/b", "ASCII letters"),
        ("INGEST_EVENTHUBS_CONSUMER_GROUP", "", "1 to 256"),
        (
            "INGEST_EVENTHUBS_START_POSITION",
            "newest",
            "earliest, latest",
        ),
        (
            "INGEST_EVENTHUBS_OWNERSHIP_EXPIRY_MS",
            "0",
            "a positive whole number",
        ),
        (
            "INGEST_EVENTHUBS_LOAD_BALANCING_INTERVAL_MS",
            "40000",
            "at most half of INGEST_EVENTHUBS_OWNERSHIP_EXPIRY_MS (60000)",
        ),
        (
            "INGEST_EVENTHUBS_CHECKPOINT_URL",
            "s3://bucket/cp",
            "an Azure Blob URL",
        ),
        ("INGEST_EVENTHUBS_ENDPOINT", "http://x", "amqp://"),
        ("INGEST_EVENTHUBS_OWNER_ID", " ", "non-empty"),
        ("INGEST_SOURCE", "pulsar", "one of kafka, eventhubs"),
    ];
    for (var, value, expected) in cases {
        let err = with(&[(var, value)]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{var}=")), "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn checkpoints_need_azure_blob_storage() {
    let err = with(&[("INGEST_STORAGE_URL", "file:///tmp/lake")])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("INGEST_STORAGE_URL="), "{err}");
    assert!(err.contains("INGEST_EVENTHUBS_CHECKPOINT_URL"), "{err}");
    let c = with(&[
        ("INGEST_STORAGE_URL", "file:///tmp/lake"),
        ("INGEST_EVENTHUBS_CHECKPOINT_URL", "az://checkpoints"),
    ])
    .unwrap();
    assert_eq!(
        c.eventhubs.unwrap().checkpoint_url.as_str(),
        "az://checkpoints"
    );
}

#[test]
fn bad_connection_strings_are_named_without_their_values() {
    for (s, why) in [
        (
            "Endpoint=sb://ns.servicebus.windows.net/",
            "neither SharedAccessKey",
        ),
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=c2VjcmV0",
            "needs SharedAccessKeyName",
        ),
        (
            "SharedAccessKeyName=a;SharedAccessKey=c2VjcmV0",
            "no Endpoint",
        ),
        (
            "Endpoint=https://x/;SharedAccessSignature=c2VjcmV0",
            "sb://",
        ),
        (
            "Endpoint=sb://x/;Sharedaccesskey=c2VjcmV0",
            "case-sensitive: SharedAccessKey",
        ),
        (
            "Endpoint=sb://x/;c2VjcmV0c2VjcmV0=",
            "an unknown key (not printed",
        ),
    ] {
        let err = with(&[("INGEST_EVENTHUBS_CONNECTION_STRING", s)])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("INGEST_EVENTHUBS_CONNECTION_STRING=*** is invalid"),
            "{err}"
        );
        assert!(err.contains(why), "{s}: {err}");
        assert!(!err.contains("c2VjcmV0"), "{err} leaks the key");
    }
}

#[test]
fn hub_must_match_the_connection_strings_entity_path() {
    let cs = format!(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey={KEY};EntityPath=clicks"
    );
    let err = with(&[
        ("INGEST_EVENTHUBS_CONNECTION_STRING", cs.as_str()),
        ("INGEST_EVENTHUBS_EVENT_HUB", "orders"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("scoped to (clicks)"), "{err}");
}

#[test]
fn typos_in_eventhubs_names_are_reported() {
    let c = with(&[("INGEST_EVENTHUBS_CONSUMERGROUP", "x")]).unwrap();
    assert_eq!(c.unknown_variables, vec!["INGEST_EVENTHUBS_CONSUMERGROUP"]);
}

#[test]
fn registry_keys_are_refused_on_event_hubs_where_a_key_is_a_partition_key() {
    let registry = (
        "INGEST_SCHEMA_REGISTRY_URL",
        "https://ns.servicebus.windows.net",
    );
    let e = with(&[registry, ("INGEST_KEY_FORMAT", "avro")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("INGEST_KEY_FORMAT") && e.contains("partition key"),
        "{e}"
    );
    let ok = with(&[registry, ("INGEST_VALUE_FORMAT", "avro")]).unwrap();
    assert_eq!(ok.registry.unwrap().key_format, None);
}
