//! `ingest-bench`: the end-to-end benchmark (`make bench`). It starts a Kafka-protocol broker
//! and the sink as separate processes of this binary, measures the sink from `/proc`, and puts
//! the result next to a gzip-only ceiling measured in the same run on the same bytes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use records::Records;

mod avro;
mod broker;
mod ceiling;
mod encoders;
mod landed;
mod procs;
mod records;
mod registry;
mod report;
mod runs;

#[derive(Parser)]
#[command(
    name = "ingest-bench",
    about = "Benchmark ingest against this machine's gzip ceiling"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmark and print the table (and a `BENCH_JSON {...}` line).
    #[command(
        after_help = "Examples:\n  ingest-bench run --results bench\n  ingest-bench run --smoke"
    )]
    Run(RunArgs),
    /// Host a mock Kafka cluster with one topic; prints its address, serves until stdin closes.
    Broker {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partitions: i32,
    },
    /// The sink under test: `ingest::run()`, exactly a generated service's `main`.
    Sink,
    /// The encoders alone on one thread (no broker, no storage) against gzip alone.
    Encode {
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// Which bench records: `orders` (0.5-1 KB) or `clicks` (150-200 B).
        #[arg(long, value_enum, default_value_t = Records::Orders)]
        kind: Records,
        /// Batch size in MiB.
        #[arg(long, default_value_t = 64)]
        batch_mib: usize,
        #[arg(long, default_value_t = ingest::config::defaults::COMPRESSION_LEVEL)]
        level: u32,
        /// Parquet's zstd level.
        #[arg(long, default_value_t = ingest::config::format::ZSTD_LEVEL)]
        zstd_level: i32,
        /// Only the encoders whose name contains this (gzip alone always runs), e.g. `Parquet`.
        #[arg(long)]
        only: Option<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// A few thousand records, throughput mode only: checks the benchmark works (CI).
    #[arg(long)]
    smoke: bool,
    /// Records of the throughput run [default: a backlog of twice the default buffer cap].
    #[arg(long)]
    records: Option<u64>,
    /// Skip the latency and memory runs.
    #[arg(long)]
    throughput_only: bool,
    /// Only the memory run (its NDJSON then feeds the ceiling).
    #[arg(long, conflicts_with = "throughput_only")]
    memory_only: bool,
    /// Only the throughput run of this record kind (`orders` or `clicks`), e.g. to compare two
    /// builds in alternated runs; `flood`, the Parquet run under new field names alone; or
    /// `avro`, the clicks as Avro through a schema registry, to NDJSON and to Parquet.
    #[arg(long, value_enum, conflicts_with = "memory_only")]
    only: Option<Records>,
    /// Runs each throughput run this many times in all (each extra run with its own gzip
    /// timing right after it) and reports the factor's median and range over the runs: one run
    /// moves by a tenth on shared cores.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=15), conflicts_with = "memory_only")]
    repeat: u32,
    /// Extra sink setting for every run, e.g. `--set INGEST_COMPRESSION_LEVEL=1` (shown in the
    /// table's settings column).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Only the orders as Parquet files and as a Delta table (`INGEST_FORMAT=delta`), this many
    /// times each, alternated: Delta's CPU per GB against Parquet's.
    #[arg(long, value_name = "TIMES", conflicts_with_all = ["memory_only", "only"])]
    formats: Option<u32>,
    /// Keep the sink logs in this directory instead of a temporary one.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Write latest.md (the table) and throughput.csv (the samples) into this directory.
    #[arg(long)]
    results: Option<PathBuf>,
}

/// How much of a run's NDJSON the level table compresses (level 9 is slow).
const LEVEL_SAMPLE_BYTES: usize = 128 << 20;

/// Records of the flood run, each with a field name never seen before: five times the
/// columns a schema takes by default.
const FLOOD_RECORDS: u64 = 50_000;

/// The memory run's buffer cap; its backlog is more than ten times this.
const MEMORY_CAP_BYTES: u64 = 32 * 1024 * 1024;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Sink => ingest::run(),
        Command::Broker { topic, partitions } => report_err(broker::serve(&topic, partitions)),
        Command::Run(args) => report_err(run(args)),
        Command::Encode {
            records,
            kind,
            batch_mib,
            level,
            zstd_level,
            only,
        } => report_err(encoders::run(
            kind,
            records,
            batch_mib << 20,
            level,
            zstd_level,
            only.as_deref(),
        )),
    }
}

fn report_err(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Partitions enough for the mock broker to keep `bytes` (it keeps 5 MiB per partition).
fn partitions_for(bytes: f64) -> i32 {
    ((bytes / (broker::MOCK_RETAINED_BYTES as f64 * 0.7)).ceil() as i32).max(4)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let temp = tempfile::Builder::new().prefix("ingest-bench-").tempdir()?;
    let work = args.work.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(work)?;
    let extra: Vec<(&str, &str)> = args
        .set
        .iter()
        .map(|kv| kv.split_once('=').context("--set wants KEY=VALUE"))
        .collect::<anyhow::Result<_>>()?;
    let with_extra = |base: &[(&'static str, &str)]| -> Vec<(String, String)> {
        base.iter()
            .chain(&extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mean = Records::Orders.mean_bytes();
    let level = ingest::config::defaults::COMPRESSION_LEVEL;
    let default_cap = ingest::config::defaults::MAX_BUFFER_BYTES as u64;
    let records = match (args.smoke, args.records) {
        (true, _) => 3_000,
        (false, Some(n)) => n,
        (false, None) => (2.0 * default_cap as f64 / mean).ceil() as u64,
    };

    let mut done: Vec<(runs::Backlog, u64)> = Vec::new();
    // The throughput runs: the orders, then the same bytes in small records, where the
    // per-record cost shows.
    let click_mean = Records::Clicks.mean_bytes();
    let clicks = if args.smoke {
        records
    } else {
        (records as f64 * mean / click_mean).ceil() as u64
    };
    let throughput: Vec<(&str, Records, u64, i32)> = [
        (
            "throughput",
            Records::Orders,
            records,
            records as f64 * mean,
        ),
        (
            "clicks",
            Records::Clicks,
            clicks,
            clicks as f64 * click_mean,
        ),
    ]
    .into_iter()
    .filter(|(_, kind, ..)| {
        !args.memory_only && args.formats.is_none() && args.only.is_none_or(|only| only == *kind)
    })
    .map(|(mode, kind, n, bytes)| (mode, kind, n, partitions_for(bytes)))
    .collect();
    for &(mode, kind, n, partitions) in &throughput {
        let run = runs::backlog(mode, kind, n, partitions, &with_extra(&[]), work)?;
        done.push((run, default_cap));
    }
    let all = !args.smoke && !args.throughput_only && args.only.is_none() && args.formats.is_none();
    if (all && !args.memory_only) || args.formats.is_some() {
        // The same records as Parquet files and as a Delta table: CPU per GB and output size
        // against NDJSON + gzip, and what the table's commits cost over the files alone.
        let ndjson_bytes = done.first().map(|(run, _)| run.uncompressed_bytes);
        for k in 1..=args.formats.unwrap_or(1) {
            for format in ["parquet", "delta"] {
                let mode = match k {
                    1 => format.to_string(),
                    k => format!("{format}-{k}"),
                };
                let mut run = runs::backlog(
                    &mode,
                    Records::Orders,
                    records,
                    partitions_for(records as f64 * mean),
                    &with_extra(&[("INGEST_FORMAT", format)]),
                    work,
                )?;
                if let Some(n) = ndjson_bytes {
                    run.uncompressed_bytes = n;
                }
                done.push((run, default_cap));
            }
        }
    }
    if all || args.only == Some(Records::Avro) {
        // The clicks again, as Avro through a schema registry: decoded to the same NDJSON, and
        // to Parquet typed from the schema. CPU per GB of that NDJSON, as for the clicks.
        let url = registry::serve()?;
        let avro = |format: &str| {
            with_extra(&[
                ("INGEST_VALUE_FORMAT", "avro"),
                ("INGEST_SCHEMA_REGISTRY_URL", url.as_str()),
                ("INGEST_FORMAT", format),
            ])
        };
        let n = if args.smoke { records } else { clicks };
        let partitions = partitions_for(n as f64 * click_mean);
        let run = runs::backlog("avro", Records::Avro, n, partitions, &avro("ndjson"), work)?;
        let ndjson_bytes = run.uncompressed_bytes;
        done.push((run, default_cap));
        if !args.smoke {
            let mut run = runs::backlog(
                "avro-parquet",
                Records::Avro,
                n,
                partitions,
                &avro("parquet"),
                work,
            )?;
            run.uncompressed_bytes = ndjson_bytes;
            done.push((run, default_cap));
        }
    }
    if all || args.only == Some(Records::Flood) {
        // Each record brings a new field name, as Parquet at the default cap: the schema's
        // caps hold the columns, and so the memory a file takes; every record lands.
        let run = runs::backlog(
            "flood",
            Records::Flood,
            FLOOD_RECORDS,
            4,
            &with_extra(&[("INGEST_FORMAT", "parquet")]),
            work,
        )?;
        done.push((run, default_cap));
    }
    if all || args.memory_only {
        let backlog = MEMORY_CAP_BYTES as f64 * 10.5;
        let run = runs::backlog(
            "memory",
            Records::Orders,
            (backlog / mean).ceil() as u64,
            partitions_for(backlog),
            &with_extra(&[
                ("INGEST_MAX_BUFFER_BYTES", &MEMORY_CAP_BYTES.to_string()),
                ("INGEST_FLUSH_MAX_BYTES", &(8 * 1024 * 1024).to_string()),
            ]),
            work,
        )?;
        done.push((run, MEMORY_CAP_BYTES));
    }
    // Each record kind's ceiling on the NDJSON its first run landed (one at a time in memory).
    let mut ceilings: Vec<(&'static str, ceiling::Ceiling)> = Vec::new();
    let mut levels = Vec::new();
    for (run, _) in &mut done {
        let ndjson = std::mem::take(&mut run.ndjson);
        let kind = run.kind;
        if ceilings.iter().any(|(k, _)| *k == kind) {
            continue;
        }
        eprintln!(
            "[ceiling] gzip level {level} over the same {:.0} MB of {kind} NDJSON",
            ndjson.len() as f64 / 1e6
        );
        ceilings.push((kind, ceiling::measure(&ndjson, level)));
        if !args.smoke && args.only.is_none() && !ndjson.is_empty() {
            eprintln!("[ceiling] gzip levels 1, 3, 6 and 9 over {kind}");
            levels.push((
                kind.to_string(),
                ceiling::levels(&ndjson, &[1, 3, 6, 9], LEVEL_SAMPLE_BYTES),
            ));
        }
    }
    let ceiling_of = |kind: &str| {
        ceilings
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, c)| *c)
            .expect("every kind's ceiling was measured")
    };
    let ceiling = ceilings.first().context("no run selected")?.1;
    let mut rows: Vec<report::Row> = done
        .iter()
        .map(|(run, cap)| report::Row::new(run, &ceiling_of(run.kind), *cap))
        .collect();
    // Further runs of each throughput run, each against gzip timed right after it.
    let mut repeated = Vec::new();
    for &(mode, kind, n, partitions) in throughput.iter().filter(|_| args.repeat > 1) {
        let first = rows.iter().find(|r| r.mode == mode);
        let mut factors: Vec<f64> = first.and_then(|r| r.overhead_factor).into_iter().collect();
        for k in 2..=args.repeat {
            let mut run = runs::backlog(mode, kind, n, partitions, &with_extra(&[]), work)?;
            let ndjson = std::mem::take(&mut run.ndjson);
            eprintln!("[ceiling] gzip level {level} after {mode} run {k}");
            let mut row = report::Row::new(&run, &ceiling::measure(&ndjson, level), default_cap);
            row.mode = format!("{mode} #{k}");
            factors.extend(row.overhead_factor);
            rows.push(row);
        }
        let (median, (lowest, highest)) = ceiling::median_and_range(factors.clone());
        repeated.push(report::Repeated {
            kind: kind.name().to_string(),
            factors,
            median,
            range: [lowest, highest],
        });
    }
    let latency = if !all || args.memory_only {
        None
    } else {
        Some(runs::latency(2_000, 20, 8, 1_000, &extra, work)?)
    };
    let backlogs: Vec<runs::Backlog> = done.into_iter().map(|(run, _)| run).collect();
    let report = report::Report {
        machine: procs::machine(),
        level,
        ceiling_one_core_mb_s: ceiling.one_core / 1e6,
        ceiling_all_cores_mb_s: ceiling.all_cores / 1e6,
        threads: ceiling.threads,
        ceilings: ceilings
            .iter()
            .map(|(kind, c)| report::KindCeiling {
                kind: kind.to_string(),
                one_core_mb_s: c.one_core / 1e6,
                one_core_range_mb_s: [c.one_core_range.0 / 1e6, c.one_core_range.1 / 1e6],
                all_cores_mb_s: c.all_cores / 1e6,
            })
            .collect(),
        runs: rows,
        repeated,
        latency,
        levels,
    };
    let table = report.markdown();
    println!("{table}");
    println!("{}", report.json_line());
    if let Some(dir) = args.results {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("latest.md"), &table)
            .with_context(|| format!("cannot write into {}", dir.display()))?;
        std::fs::write(dir.join("throughput.csv"), report::csv(&backlogs))?;
        eprintln!("wrote {0}/latest.md and {0}/throughput.csv", dir.display());
    }
    Ok(())
}
