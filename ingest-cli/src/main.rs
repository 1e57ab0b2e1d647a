//! `ingest-cli`: scaffold, inspect and demo ingest sink services.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use ingest_cli::{autoloader, names, scaffold, services, values};

mod demo;
mod status;

#[derive(Parser)]
#[command(
    name = "ingest-cli",
    version,
    about = "Tools for ingest sink services",
    after_help = "Examples:\n  ingest-cli new-service payments\n  ingest-cli list\n  \
                  ingest-cli validate payments\n  ingest-cli autoloader payments\n  \
                  ingest-cli demo --out ./landed\n  \
                  ingest-cli status --storage-url s3://lake/raw --topic orders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct ServiceArgs {
    /// The service: its directory under the services directory, or its crate name.
    service: String,
    /// Directory holding the services.
    #[arg(long, default_value = "services")]
    services_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a sink service for one topic: Cargo.toml, src/main.rs, values.yaml, README.md.
    #[command(after_help = "Examples:\n  \
        ingest-cli new-service payments --storage-url s3://lake/raw\n  \
        ingest-cli new-service clicks.v2 --source eventhubs \
        --bootstrap-servers myns.servicebus.windows.net:9093 \
        --storage-url abfss://raw@lake.dfs.core.windows.net/events\n  \
        ingest-cli new-service telemetry --source eventhubs-native \
        --storage-url abfss://raw@lake.dfs.core.windows.net/events\n  \
        ingest-cli new-service payments --force    # regenerate, overwriting\n\n\
        The workspace builds services/* automatically: cargo build -p <crate>.")]
    NewService(scaffold::NewServiceArgs),
    /// List the services and their topics.
    #[command(
        after_help = "Examples:\n  ingest-cli list\n  ingest-cli list --services-dir ../other/services"
    )]
    List {
        /// Directory holding the services.
        #[arg(long, default_value = "services")]
        services_dir: PathBuf,
    },
    /// Check a service's values.yaml as `helm install` (the chart's schema) and the service at
    /// start (its configuration rules) would; one line per problem, exit 1 if any.
    #[command(after_help = "Examples:\n  ingest-cli validate orders\n  \
        ingest-cli validate orders --services-dir ./services")]
    Validate(ServiceArgs),
    /// Print the Databricks Auto Loader (Spark readStream) options for a service's files.
    #[command(after_help = "Examples:\n  ingest-cli autoloader orders\n  \
        ingest-cli autoloader orders > notebooks/orders_stream.py")]
    Autoloader(ServiceArgs),
    /// Run the pipeline end to end on an embedded Kafka (librdkafka's mock cluster) into a
    /// local directory, then print what landed.
    #[command(after_help = "Examples:\n  ingest-cli demo\n  \
        ingest-cli demo --records 100000 --partitions 6 --out ./landed")]
    Demo(demo::DemoArgs),
    /// What has landed for a topic, read from the store (never written): per partition its
    /// claim chain, the last file and whether it is there, offsets gone before they landed;
    /// with a broker, committed offsets and lag; the running Parquet schema.
    #[command(
        after_help = "Examples:\n  ingest-cli status --storage-url ./landed --topic orders\n  \
        ingest-cli status --storage-url s3://lake/raw --topic orders \
        --bootstrap-servers kafka:9092 --group ingest-orders --json"
    )]
    Status(status::StatusArgs),
    /// Print the settings reference (the book's configuration table) from the table the service
    /// is built with.
    #[command(after_help = "Examples:\n  ingest-cli settings\n  ingest-cli settings --eventhubs")]
    Settings {
        /// The native Event Hubs source's settings instead.
        #[arg(long)]
        eventhubs: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            // One line: the cause chain joined, most general first.
            eprintln!("ingest-cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::NewService(args) => {
            let dir = scaffold::run(&args)?;
            let names = names::Names::for_topic(&args.topic)?;
            println!("created {}", dir.display());
            println!(
                "next: edit {0}/values.yaml, then\n  ingest-cli validate {1}\n  make image SERVICE={1}\n  \
                 helm install {2} ./helm/ingest-sink -f {0}/values.yaml",
                dir.display(),
                names.crate_name,
                names.release
            );
        }
        Command::List { services_dir } => {
            let all = services::list(&services_dir)?;
            println!("{:<24} {:<32} DIRECTORY", "SERVICE", "TOPIC");
            for s in all {
                let topic = s.topic.as_deref().unwrap_or("(no values.yaml)");
                println!("{:<24} {topic:<32} {}", s.crate_name, s.dir.display());
            }
        }
        Command::Validate(args) => {
            let service = services::find(&args.services_dir, &args.service)?;
            let path = service.values_path();
            let problems = values::check(&values::load(&path)?);
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("{}: {p}", path.display());
                }
                return Ok(ExitCode::FAILURE);
            }
            println!("{}: ok", path.display());
        }
        Command::Autoloader(args) => {
            let service = services::find(&args.services_dir, &args.service)?;
            let config = values::config(&values::load(&service.values_path())?)?;
            print!("{}", autoloader::snippet(&config));
        }
        Command::Demo(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(demo::run(args))?;
        }
        Command::Settings { eventhubs } => {
            use ingest::config::reference::{markdown, EVENTHUBS_SETTINGS, SETTINGS};
            print!(
                "{}",
                markdown(if eventhubs {
                    EVENTHUBS_SETTINGS
                } else {
                    SETTINGS
                })
            );
        }
        Command::Status(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(status::run(args))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
