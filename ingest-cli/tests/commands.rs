//! The `ingest-cli` binary as users run it: `new-service` (names, `--force`), `list`,
//! `validate` and `autoloader`, in temporary directories; and the committed `services/orders`
//! is exactly what the CLI renders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ORDERS_ARGS: &[&str] = &["--storage-url", "s3://example-lake/landing"];

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ingest-cli"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ingest-cli")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts failure with exactly one line on stderr containing `expect`.
fn assert_one_line_error(out: &Output, expect: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(expect), "{err:?} should contain {expect:?}");
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn new_service_writes_the_four_files_and_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(tmp.path(), &["new-service", "Payments.EU"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = tmp.path().join("services/Payments.EU");
    for f in ["Cargo.toml", "src/main.rs", "values.yaml", "README.md"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"payments-eu\""), "{manifest}");
    let values = std::fs::read_to_string(dir.join("values.yaml")).unwrap();
    assert!(
        values.contains("groupId: \"payments-eu\"") && values.contains("topic: \"Payments.EU\"")
    );
    assert!(!values.contains("@@"), "every placeholder filled");

    std::fs::write(dir.join("src/main.rs"), "// edited\n").unwrap();
    let again = cli(tmp.path(), &["new-service", "Payments.EU"]);
    assert_one_line_error(&again, "exists; pass --force");
    assert_eq!(
        std::fs::read_to_string(dir.join("src/main.rs")).unwrap(),
        "// edited\n"
    );

    let forced = cli(tmp.path(), &["new-service", "Payments.EU", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    assert!(main.contains("ingest::run()"), "{main}");
}

#[test]
fn bad_topics_and_options_are_refused_in_one_line_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "x".repeat(214);
    for (args, expect) in [
        (vec!["new-service", "bad topic"], "ASCII letters, digits"),
        (vec!["new-service", ".."], "other than '.' or '..'"),
        (vec!["new-service", &long], "1 to 213 characters"),
        (
            vec!["new-service", "ok", "--storage-url", "ftp://nope"],
            "INGEST_STORAGE_URL",
        ),
    ] {
        assert_one_line_error(&cli(tmp.path(), &args), expect);
    }
    assert!(!tmp.path().join("services").exists(), "nothing written");
    let out = cli(tmp.path(), &["new-service", "x", "--source", "pulsar"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("eventhubs"),
        "clap lists the sources"
    );
}

#[test]
fn two_topics_folding_to_one_crate_name_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(cli(tmp.path(), &["new-service", "Orders"]).status.success());
    assert_one_line_error(
        &cli(tmp.path(), &["new-service", "orders"]),
        "already has the crate name orders",
    );
}

#[test]
fn two_topics_folding_to_one_helm_release_and_group_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(cli(tmp.path(), &["new-service", "a.b"]).status.success());
    assert_one_line_error(
        &cli(tmp.path(), &["new-service", "a_b"]),
        "already has the Helm release and consumer group a-b",
    );
}

#[test]
fn list_shows_services_and_topics() {
    let tmp = tempfile::tempdir().unwrap();
    for topic in ["clicks", "billing.invoices"] {
        assert!(cli(tmp.path(), &["new-service", topic]).status.success());
    }
    let out = cli(tmp.path(), &["list"]);
    let listing = text(&out.stdout);
    assert!(out.status.success());
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["SERVICE", "TOPIC", "DIRECTORY"]);
    assert_eq!(rows[1][..2], ["billing-invoices", "billing.invoices"]);
    assert_eq!(rows[2][..2], ["clicks", "clicks"]);
    assert_one_line_error(
        &cli(tmp.path(), &["list", "--services-dir", "nope"]),
        "cannot read nope",
    );
}

#[test]
fn validate_accepts_good_values_and_names_each_problem_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let good = [
        "new-service",
        "good",
        "--storage-url",
        "file:///data/landed",
    ];
    assert!(cli(tmp.path(), &good).status.success());
    let ok = cli(tmp.path(), &["validate", "good"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("values.yaml: ok"));

    // The default storage URL is a placeholder to replace.
    assert!(cli(tmp.path(), &["new-service", "todo"]).status.success());
    assert_one_line_error(&cli(tmp.path(), &["validate", "todo"]), "CHANGE-ME");

    let values = tmp.path().join("services/good/values.yaml");
    let original = std::fs::read_to_string(&values).unwrap();
    for (from, to, expect) in [
        ("replicas: 1", "replicas: 0", "/replicas"),
        (
            "INGEST_FLUSH_MAX_AGE_MS: \"300000\"",
            "INGEST_FLUSH_MAX_AGE_MS: \"soon\"",
            "INGEST_FLUSH_MAX_AGE_MS=\"soon\" is invalid",
        ),
        (
            "INGEST_FLUSH_MAX_AGE_MS: \"300000\"",
            "INGEST_KAFKA_SASL_PASSWORD: \"hunter2\"",
            "/env",
        ),
        (
            "INGEST_STORAGE_URL: \"file:///data/landed\"",
            "INGEST_STORAGE_URL: \"ftp://x\"",
            "INGEST_STORAGE_URL=\"ftp://x/\" is invalid",
        ),
        (
            "INGEST_FLUSH_MAX_AGE_MS: \"300000\"",
            "INGEST_TIME_SOURCE: \"field\"",
            "INGEST_TIME_FIELD is not set: INGEST_TIME_SOURCE=field",
        ),
        (
            "INGEST_FLUSH_MAX_AGE_MS: \"300000\"",
            "INGEST_PARTITION_BY: \"minute\"",
            "/env/INGEST_PARTITION_BY",
        ),
        (
            "INGEST_FLUSH_MAX_AGE_MS: \"300000\"",
            "INGEST_TIME_SOURCE: \"field\"\n  INGEST_TIME_FIELD: \"placed_at\"\n  INGEST_TIME_FORMAT: \"%H\"",
            "INGEST_TIME_FORMAT=\"%H\" is invalid",
        ),
        (
            "INGEST_FLUSH_MAX_AGE_MS: \"300000\"",
            "INGEST_PATH_TEMPLATE: \"{topic}/region={record.region}/when={bogus}\"",
            "INGEST_PATH_TEMPLATE=",
        ),
        (
            "INGEST_FLUSH_MAX_AGE_MS: \"300000\"",
            "INGEST_PATH_TEMPLATE: \"region={record.region}\"",
            "/env/INGEST_PATH_TEMPLATE",
        ),
        ("topic: \"good\"", "topic: \"no good\"", "/topic"),
        ("replicas: 1", "replica: 1", "replica"),
    ] {
        assert!(original.contains(from), "{from}");
        std::fs::write(&values, original.replace(from, to)).unwrap();
        let out = cli(tmp.path(), &["validate", "good"]);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{to} should be refused");
        assert!(err.contains(expect), "{to}: {err}");
        assert!(
            err.lines()
                .all(|l| l.starts_with("services/good/values.yaml: ")),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "secrets never echoed: {err}");
    }
    assert_one_line_error(
        &cli(tmp.path(), &["validate", "missing"]),
        "no service \"missing\"",
    );
}

#[test]
fn autoloader_prints_the_stream_for_the_service() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["new-service", "clicks.v2", "--storage-url", "s3://lake/raw"];
    assert!(cli(tmp.path(), &args).status.success());
    let out = cli(tmp.path(), &["autoloader", "clicks-v2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for expected in [
        r#".option("cloudFiles.format", "json")"#,
        r#".option("cloudFiles.partitionColumns", "dt,hour")"#,
        r#".option("cloudFiles.allowOverwrites", "false")"#,
        r#".option("cloudFiles.schemaHints", "dt DATE, hour INT")"#,
        r#".option("pathGlobFilter", "*.ndjson.gz")"#,
        r#".load("s3://lake/raw/clicks.v2/")"#,
        "`_ingest/` (claims) and `_dead_letters/`",
    ] {
        assert!(s.contains(expected), "missing {expected} in\n{s}");
    }
}

/// Renders service `events` with `--format <format>` on S3, checks its values name the format
/// and that `validate` takes it; what `autoloader` prints for it.
fn rendered_with_format(format: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "new-service",
        "events",
        "--storage-url",
        "s3://lake/raw",
        "--format",
        format,
    ];
    assert!(cli(tmp.path(), &args).status.success());
    let values = std::fs::read_to_string(tmp.path().join("services/events/values.yaml")).unwrap();
    assert!(
        values.contains(&format!(r#"INGEST_FORMAT: "{format}""#)),
        "{values}"
    );
    let validate = cli(tmp.path(), &["validate", "events"]);
    assert!(validate.status.success(), "{}", text(&validate.stderr));
    let out = cli(tmp.path(), &["autoloader", "events"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_delta_service_renders_its_format_validates_and_prints_its_table() {
    let s = rendered_with_format("delta");
    assert!(
        s.contains("USING DELTA LOCATION 's3://lake/raw/events/'") && !s.contains("cloudFiles"),
        "{s}"
    );
}

#[test]
fn a_parquet_service_renders_its_format_validates_and_prints_the_parquet_stream() {
    let s = rendered_with_format("parquet");
    for expected in [
        r#".option("cloudFiles.format", "parquet")"#,
        r#".option("cloudFiles.schemaEvolutionMode", "addNewColumns")"#,
        r#".option("rescuedDataColumn", "_rescued_data")"#,
        r#".load("s3://lake/raw/events/")"#,
    ] {
        assert!(s.contains(expected), "missing {expected} in\n{s}");
    }
}

#[test]
fn the_committed_orders_service_is_a_fresh_render() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["new-service", "orders"];
    args.extend_from_slice(ORDERS_ARGS);
    assert!(cli(tmp.path(), &args).status.success());
    let committed = workspace_root().join("services/orders");
    for f in ["Cargo.toml", "src/main.rs", "values.yaml", "README.md"] {
        let fresh = std::fs::read_to_string(tmp.path().join("services/orders").join(f)).unwrap();
        let ours = std::fs::read_to_string(committed.join(f)).unwrap();
        assert_eq!(
            ours,
            fresh,
            "services/orders/{f} differs from a fresh render; regenerate it with \
             `ingest-cli new-service orders {} --force`",
            ORDERS_ARGS.join(" ")
        );
    }
    let ok = cli(&workspace_root(), &["validate", "orders"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
}

#[test]
fn every_command_has_help_with_examples() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in ["new-service", "list", "validate", "autoloader", "demo"] {
        let out = cli(tmp.path(), &[cmd, "--help"]);
        assert!(out.status.success());
        assert!(
            text(&out.stdout).contains(&format!("Examples:\n  ingest-cli {cmd}")),
            "{cmd}"
        );
    }
}

#[test]
fn a_native_event_hubs_service_validates_once_its_namespace_and_storage_are_filled_in() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["new-service", "telemetry", "--source", "eventhubs-native"];
    assert!(cli(tmp.path(), &args).status.success());
    let out = cli(tmp.path(), &["validate", "telemetry"]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("/env/INGEST_EVENTHUBS_NAMESPACE"), "{err}");
    assert!(err.contains("/env/INGEST_STORAGE_URL"), "{err}");

    let values = tmp.path().join("services/telemetry/values.yaml");
    let filled = std::fs::read_to_string(&values)
        .unwrap()
        .replace("CHANGE-ME", "lake");
    std::fs::write(&values, &filled).unwrap();
    let ok = cli(tmp.path(), &["validate", "telemetry"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let config = ingest_cli::values::config(&ingest_cli::values::load(&values).unwrap()).unwrap();
    let eh = config.eventhubs.expect("the native Event Hubs source");
    assert_eq!(eh.fully_qualified_namespace, "lake.servicebus.windows.net");
    assert_eq!(eh.event_hub, "telemetry");
    assert_eq!(
        eh.consumer_group, "telemetry",
        "a consumer group of its own"
    );

    // Without INGEST_SOURCE it would be read as Kafka, which needs bootstrap servers.
    std::fs::write(&values, filled.replace("INGEST_SOURCE: \"eventhubs\"", "")).unwrap();
    let out = cli(tmp.path(), &["validate", "telemetry"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("INGEST_KAFKA_BOOTSTRAP_SERVERS is not set"),
        "{}",
        text(&out.stderr)
    );

    // Files outside Azure Blob: checkpoints still need a container.
    let args = [
        "new-service",
        "clicks",
        "--source",
        "eventhubs-native",
        "--storage-url",
        "s3://lake/raw",
    ];
    assert!(cli(tmp.path(), &args).status.success());
    let clicks = std::fs::read_to_string(tmp.path().join("services/clicks/values.yaml")).unwrap();
    assert!(
        clicks.contains("INGEST_EVENTHUBS_CHECKPOINT_URL: \"az://CHANGE-ME\""),
        "{clicks}"
    );

    let wrong = cli(
        tmp.path(),
        &[
            "new-service",
            "x",
            "--source",
            "eventhubs-native",
            "--bootstrap-servers",
            "k:9092",
        ],
    );
    assert_one_line_error(&wrong, "--bootstrap-servers is for Kafka sources");
    assert!(!tmp.path().join("services/x").exists(), "nothing written");
}
