//! `ingest-cli new-service`: renders the service templates for one topic into
//! `<out>/<topic>/`.
//!
//! Invariant: nothing is written unless every template rendered, the rendered values pass
//! the chart's schema and the service's configuration rules (placeholders marked CHANGE-ME
//! aside), and no existing file would be overwritten without `--force`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::names::Names;
use crate::{render, services, values};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A Kafka cluster (plaintext by default; add SASL/TLS settings to values.yaml).
    Kafka,
    /// Azure Event Hubs through its Kafka endpoint (SASL_SSL, connection string from a Secret).
    Eventhubs,
    /// Azure Event Hubs over AMQP, the native source (checkpoints in Azure Blob, shared with
    /// the Azure SDKs; a connection string from a Secret, or Entra ID).
    EventhubsNative,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    Ndjson,
    Parquet,
    /// Parquet files added to a Delta table at `<root>/<topic>/`.
    Delta,
}

#[derive(clap::Args, Debug)]
pub struct NewServiceArgs {
    /// The Kafka topic: ASCII letters, digits, '.', '_' and '-', at most 213 characters (a file's
    /// name, `<topic>+<partition>+<offset>.ndjson.gz`, is at most 255 bytes).
    pub topic: String,
    /// Where the topic's records come from.
    #[arg(long, value_enum, default_value = "kafka")]
    pub source: Source,
    /// Bootstrap servers [default: kafka:9092, or CHANGE-ME.servicebus.windows.net:9093 for
    /// eventhubs; not for eventhubs-native].
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// Storage root the files land under (`<root>/<topic>/dt=.../hour=.../`) [default:
    /// s3://CHANGE-ME/landing, or az://CHANGE-ME/landing for eventhubs-native].
    #[arg(long)]
    pub storage_url: Option<String>,
    /// The data files' format (INGEST_FORMAT): NDJSON (gzip), Parquet (zstd, with a running
    /// schema and `_rescued_data`) or Delta (those Parquet files added to a Delta table).
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: FileFormat,
    /// Directory holding the services (a workspace's `services/`).
    #[arg(long, default_value = "services")]
    pub out: PathBuf,
    /// Overwrite the service's generated files if they exist.
    #[arg(long)]
    pub force: bool,
}

/// Renders every file of the service: (path relative to the service directory, contents).
pub fn render_service(args: &NewServiceArgs, names: &Names) -> Result<Vec<(String, String)>> {
    let release = &names.release;
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let storage_url = args.storage_url.as_deref().unwrap_or(match args.source {
        Source::EventhubsNative => "az://CHANGE-ME/landing",
        _ => "s3://CHANGE-ME/landing",
    });
    // Azure Blob by the service's own rule (what INGEST_STORAGE_URL accepts as Azure).
    let azure = url::Url::parse(storage_url).is_ok_and(|u| ingest::config::is_azure(&u));
    let (bootstrap, source_env, source) = match args.source {
        Source::Kafka => ("kafka:9092", String::new(), "Kafka"),
        Source::EventhubsNative => {
            if args.bootstrap_servers.is_some() {
                bail!("--bootstrap-servers is for Kafka sources; eventhubs-native reads the namespace set in values.yaml (INGEST_EVENTHUBS_NAMESPACE)");
            }
            ("", native_env(names, azure), "Azure Event Hubs (native)")
        }
        Source::Eventhubs => (
            "CHANGE-ME.servicebus.windows.net:9093",
            "  # Azure Event Hubs through its Kafka endpoint (read as Kafka: INGEST_SOURCE stays kafka).\n  \
             INGEST_KAFKA_SECURITY_PROTOCOL: \"SASL_SSL\"\n  INGEST_KAFKA_SASL_MECHANISM: \"PLAIN\"\n  \
             INGEST_KAFKA_SASL_USERNAME: \"$ConnectionString\"\n"
                .to_string(),
            "Azure Event Hubs (Kafka endpoint)",
        ),
    };
    let bootstrap = args.bootstrap_servers.as_deref().unwrap_or(bootstrap);
    let source_env = if bootstrap.is_empty() {
        source_env
    } else {
        format!(
            "  INGEST_KAFKA_BOOTSTRAP_SERVERS: {}\n{source_env}",
            quoted(bootstrap)
        )
    };
    let mut secrets = String::new();
    if args.source == Source::Eventhubs {
        secrets.push_str(&secret_ref(
            "The namespace's connection string (Endpoint=sb://...).",
            "INGEST_KAFKA_SASL_PASSWORD",
            &format!("{release}-eventhubs"),
            "connection-string",
        ));
    }
    if args.source == Source::EventhubsNative {
        secrets.push_str(&secret_ref(
            "A listen policy's connection string (Endpoint=sb://...). Or remove it to use Entra ID\n  \
             # (workload identity, service principal or managed identity; role: Azure Event Hubs Data Receiver).",
            "INGEST_EVENTHUBS_CONNECTION_STRING",
            &format!("{release}-eventhubs"),
            "connection-string",
        ));
    }
    let scheme = storage_url.split("://").next().unwrap_or_default();
    let storage = format!("{release}-storage");
    match scheme {
        _ if azure => {
            let why = "Storage account (or remove both and use workload identity).";
            secrets.push_str(&secret_ref(
                why,
                "AZURE_STORAGE_ACCOUNT_NAME",
                &storage,
                "account-name",
            ));
            secrets.push_str(&secret_ref(
                "",
                "AZURE_STORAGE_ACCOUNT_KEY",
                &storage,
                "account-key",
            ));
        }
        "s3" | "s3a" => {
            let why = "Storage credentials (or remove both and use IRSA / pod identity).";
            secrets.push_str(&secret_ref(
                why,
                "AWS_ACCESS_KEY_ID",
                &storage,
                "access-key-id",
            ));
            secrets.push_str(&secret_ref(
                "",
                "AWS_SECRET_ACCESS_KEY",
                &storage,
                "secret-access-key",
            ));
        }
        _ => {}
    }
    let secret_env = if secrets.is_empty() {
        "# Variables from Secrets, e.g. for SASL:\n#   INGEST_KAFKA_SASL_PASSWORD: {secretName: <name>, key: password}\nsecretEnv: {}".to_string()
    } else {
        format!(
            "# Variables from Secrets (create them before installing).\nsecretEnv:\n{}",
            secrets.trim_end()
        )
    };
    let vars: BTreeMap<&str, String> = [
        ("topic", names.topic.clone()),
        ("crate_name", names.crate_name.clone()),
        ("release", names.release.clone()),
        ("source", source.to_string()),
        ("source_env", source_env.trim_end().to_string()),
        ("secret_env", secret_env),
        ("storage_url", quoted(storage_url)),
        (
            "format",
            quoted(match args.format {
                FileFormat::Ndjson => "ndjson",
                FileFormat::Parquet => "parquet",
                FileFormat::Delta => "delta",
            }),
        ),
    ]
    .into_iter()
    .collect();
    render::render_all(&vars)
}

/// The native Event Hubs settings: the namespace to fill in, the event hub named like the topic,
/// a consumer group of the service's own, and where checkpoints go when files do not land in
/// Azure Blob (`azure` is false).
fn native_env(names: &Names, azure: bool) -> String {
    let mut env = format!(
        "  INGEST_SOURCE: \"eventhubs\"\n  \
         INGEST_EVENTHUBS_NAMESPACE: \"CHANGE-ME.servicebus.windows.net\"\n  \
         INGEST_EVENTHUBS_EVENT_HUB: \"{topic}\"\n  \
         # Create it first (az eventhubs eventhub consumer-group create ...): sharing $Default with\n  \
         # another reader would split the partitions between you.\n  \
         INGEST_EVENTHUBS_CONSUMER_GROUP: \"{release}\"\n",
        topic = names.topic,
        release = names.release,
    );
    if !azure {
        env.push_str(
            "  # Checkpoints and ownership live in Azure Blob (where the Azure SDKs keep them).\n  \
             INGEST_EVENTHUBS_CHECKPOINT_URL: \"az://CHANGE-ME\"\n",
        );
    }
    env
}

fn secret_ref(comment: &str, name: &str, secret: &str, key: &str) -> String {
    let comment = if comment.is_empty() {
        String::new()
    } else {
        format!("  # {comment}\n")
    };
    format!("{comment}  {name}:\n    secretName: {secret}\n    key: {key}\n")
}

/// Renders and writes the service; returns its directory.
pub fn run(args: &NewServiceArgs) -> Result<PathBuf> {
    let names = Names::for_topic(&args.topic)?;
    let files = render_service(args, &names)?;
    let values_text = &files
        .iter()
        .find(|(p, _)| p == "values.yaml")
        .context("the templates have no values.yaml")?
        .1;
    let rendered = values::parse_yaml(values_text, "the rendered values.yaml")?;
    let problems: Vec<String> = values::check(&rendered)
        .into_iter()
        .filter(|p| !p.contains("CHANGE-ME"))
        .collect();
    if let Some(first) = problems.first() {
        bail!(
            "the service would not validate: {first}; check --storage-url and --bootstrap-servers"
        );
    }
    let dir = args.out.join(&names.topic);
    for other in services::list(&args.out).unwrap_or_default() {
        if other.crate_name == names.crate_name && other.dir != dir {
            bail!(
                "{} already has the crate name {}; pick another topic or rename that service",
                other.dir.display(),
                names.crate_name
            );
        }
        // Helm releases and consumer groups are named from the topic, folding `.` and `_`:
        // two services sharing one would install over each other and split one group.
        let release = other.topic.as_deref().map(crate::names::release_name);
        if release.as_deref() == Some(names.release.as_str()) && other.dir != dir {
            bail!(
                "{} (topic {}) already has the Helm release and consumer group {}; pick another topic, or rename that service's release and set its groupId",
                other.dir.display(),
                other.topic.as_deref().unwrap_or_default(),
                names.release
            );
        }
    }
    if !args.force {
        if let Some(existing) = files.iter().map(|(p, _)| dir.join(p)).find(|p| p.exists()) {
            bail!(
                "{} exists; pass --force to overwrite the generated files",
                existing.display()
            );
        }
    }
    for (rel, text) in &files {
        write(&dir.join(rel), text)?;
    }
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
