//! `ingest-cli`: tools around ingest sink services.

use clap::{Parser, Subcommand};

mod demo;

#[derive(Parser)]
#[command(name = "ingest-cli", version, about = "Tools for ingest sink services")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline end to end on an embedded Kafka (librdkafka's mock cluster) into a
    /// local directory, then print what landed.
    ///
    /// Example: ingest-cli demo --records 100000 --out ./landed
    Demo(demo::DemoArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args).await,
    }
}
