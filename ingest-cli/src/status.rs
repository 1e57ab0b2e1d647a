//! `ingest-cli status`: what has landed for a topic, read from the store (and, when a broker is
//! given, its committed offsets and high watermarks). It only reads: listings and GETs, never a
//! write.
//!
//! Per partition: its claim chain (claims, the offsets they cover, offsets no file holds
//! because the log had lost them, breaks in the chain), the chain's last claim (its last offset,
//! its file, when it was claimed, whether its file exists: a stranded claim the next start
//! completes), and the broker's view (committed offset, high watermark, lag). For the topic: the
//! running Parquet schema's version and columns, if it has one; and when the topic is a Delta
//! table (`INGEST_FORMAT=delta`), the table's version and, per partition, the last offset its
//! transaction identifier says the table holds.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::{StreamExt as _, TryStreamExt as _};
use ingest::land::recovery::Claim;
use ingest::storage::{Storage, STATE_PREFIX};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The storage URL the service lands into (file://, s3://, az://, ...); credentials come from
    /// the environment as for the service (AWS_*, AZURE_*).
    #[arg(long)]
    storage_url: String,
    /// The topic (or event hub) whose files to report.
    #[arg(long)]
    topic: String,
    /// Kafka bootstrap servers: adds each partition's committed offset, high watermark and lag.
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// The consumer group whose committed offsets to read (default `ingest-<topic>`).
    #[arg(long)]
    group: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What landed for one topic.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    pub topic: String,
    pub storage: String,
    pub partitions: Vec<PartitionReport>,
    /// The running Parquet schema, when the topic has one.
    pub schema: Option<SchemaReport>,
    /// The Delta table's latest version, when the topic is a table.
    pub table_version: Option<u64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SchemaReport {
    pub version: u64,
    pub columns: Vec<String>,
}

/// One partition's claim chain and, when a broker was given, its offsets.
#[derive(Debug, Serialize, PartialEq, Default)]
pub struct PartitionReport {
    pub partition: i32,
    pub claims: usize,
    /// The chain's first offset and the last offset its last claim covers.
    pub first_offset: Option<i64>,
    pub last_offset: Option<i64>,
    /// The last claim's data file, when it was claimed (ms since the epoch), and whether the file
    /// is there (`false`: stranded, completed by the next start).
    pub last_file: Option<String>,
    pub last_claimed_at_ms: Option<i64>,
    pub last_file_exists: Option<bool>,
    /// Offsets inside the chain no file holds: gone from the log before they landed
    /// (retention, compaction).
    pub gone_offsets: i64,
    /// Claims that do not start at the offset after the previous one's last (claims of
    /// releases before the chain, or claims moved by hand).
    pub chain_breaks: usize,
    pub committed: Option<i64>,
    pub high_watermark: Option<i64>,
    pub lag: Option<i64>,
    /// A Delta table's: the last offset of this partition its commits added (the version of the
    /// partition's transaction identifier for the group); behind `last_offset` until the next
    /// table commit.
    pub in_table: Option<i64>,
}

/// Summarises one partition's claims, in chain order. Pure.
pub fn summarise(partition: i32, claims: &[Claim]) -> PartitionReport {
    let mut report = PartitionReport {
        partition,
        claims: claims.len(),
        first_offset: claims.first().map(|c| c.first_offset),
        ..PartitionReport::default()
    };
    let mut previous: Option<&Claim> = None;
    for claim in claims {
        if previous.is_some_and(|p| p.last_offset + 1 != claim.first_offset) {
            report.chain_breaks += 1;
        }
        let first_record = claim.first_record_offset.unwrap_or(claim.first_offset);
        report.gone_offsets += (first_record - claim.first_offset).max(0);
        previous = Some(claim);
    }
    if let Some(last) = claims.last() {
        report.last_offset = Some(last.last_offset);
        report.last_file = Some(last.data.clone());
        report.last_claimed_at_ms = Some(last.claimed_at_ms);
    }
    report
}

/// Claims read at once.
const READS_AT_ONCE: usize = 16;

/// Reads the report from `storage` (and the broker, when given).
async fn gather(args: &StatusArgs, storage: &Storage) -> Result<Report> {
    let claims_dir = format!("{STATE_PREFIX}/claims/{}/", args.topic);
    let names = storage
        .names_between(&claims_dir, None, &format!("{claims_dir}~"))
        .await
        .context("listing the claims")?;
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for name in names {
        let rest = &name[claims_dir.len()..];
        let Some((partition, file)) = rest.split_once('/') else {
            continue;
        };
        let (Ok(partition), true) = (partition.parse::<i32>(), file.ends_with(".json")) else {
            continue;
        };
        by_partition.entry(partition).or_default().push(name);
    }
    let mut partitions = Vec::new();
    for (partition, names) in by_partition {
        // One GET a claim, READS_AT_ONCE at a time.
        let read = |name: String| async move {
            let bytes = storage
                .get(&name)
                .await?
                .with_context(|| format!("{name} vanished while it was read"))?;
            serde_json::from_slice::<Claim>(&bytes)
                .with_context(|| format!("{name} is not a claim"))
        };
        let mut claims: Vec<Claim> = futures::stream::iter(names.into_iter().map(read))
            .buffer_unordered(READS_AT_ONCE)
            .try_collect()
            .await?;
        claims.sort_by_key(|c| c.first_offset);
        let mut report = summarise(partition, &claims);
        if let Some(last) = claims.last() {
            let mut exists = storage.exists(&last.data).await?;
            for file in &last.files {
                exists = exists && storage.exists(&file.data).await?;
            }
            report.last_file_exists = Some(exists);
        }
        partitions.push(report);
    }
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("ingest-{}", args.topic));
    if let Some(brokers) = &args.bootstrap_servers {
        broker_offsets(brokers, &group, &args.topic, &mut partitions)?;
    }
    let schema = schema(storage, &args.topic).await?;
    let table_version = table(storage, &args.topic, &group, &mut partitions).await?;
    Ok(Report {
        topic: args.topic.clone(),
        storage: storage.label().to_string(),
        partitions,
        schema,
        table_version,
    })
}

/// The Delta table at `<topic>/`, if there is one: its version, and each partition's
/// transaction identifier (for `group`) into `partitions`.
async fn table(
    storage: &Storage,
    topic: &str,
    group: &str,
    partitions: &mut [PartitionReport],
) -> Result<Option<u64>> {
    let store = storage.object_store();
    let table = ingest::table::Table::new(store, topic, group, tokio::runtime::Handle::current())
        .map_err(|e| anyhow::anyhow!("reading the Delta table: {e}"))?;
    let ids: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
    let held = tokio::task::spawn_blocking(move || table.version_and_held(&ids))
        .await?
        .map_err(|e| anyhow::anyhow!("reading the Delta table: {e}"))?;
    let Some((version, held)) = held else {
        return Ok(None);
    };
    for p in partitions {
        p.in_table = held.get(&p.partition).copied().flatten();
    }
    Ok(Some(version))
}

/// The latest running Parquet schema version, if any.
async fn schema(storage: &Storage, topic: &str) -> Result<Option<SchemaReport>> {
    let dir = format!("{STATE_PREFIX}/schemas/{topic}/");
    let names = storage
        .names_between(&dir, None, &format!("{dir}~"))
        .await
        .context("listing the schema versions")?;
    let Some((version, name)) = names
        .iter()
        .filter_map(|n| Some((ingest::land::naming::padded_number(n, 10)?, n)))
        .max()
    else {
        return Ok(None);
    };
    let bytes = storage.get(name).await?.context("the schema vanished")?;
    let columns: ingest::encode::parquet::shape::Columns =
        serde_json::from_slice(&bytes).with_context(|| format!("{name} is not a schema"))?;
    Ok(Some(SchemaReport {
        version,
        columns: columns.fields.into_iter().map(|(n, _)| n).collect(),
    }))
}

/// Adds the group's committed offsets, the high watermarks and the lag (reads only: no group is
/// joined, nothing is committed).
fn broker_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: &mut Vec<PartitionReport>,
) -> Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("creating a Kafka client")?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("reading {topic}'s metadata from {brokers}"))?;
    let count = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len() as i32);
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..count {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, timeout)
        .context("reading the group's committed offsets")?;
    for p in 0..count {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .with_context(|| format!("reading partition {p}'s high watermark"))?;
        let at = committed
            .find_partition(topic, p)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0);
        if !partitions.iter().any(|r| r.partition == p) {
            partitions.push(PartitionReport {
                partition: p,
                ..PartitionReport::default()
            });
        }
        let report = partitions
            .iter_mut()
            .find(|r| r.partition == p)
            .expect("added above");
        report.committed = at;
        report.high_watermark = Some(high);
        report.lag = Some(high - at.unwrap_or(0));
    }
    partitions.sort_by_key(|r| r.partition);
    Ok(())
}

impl Report {
    /// The report as a table, one line per partition.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("topic {} in {}\n", self.topic, self.storage);
        let _ = writeln!(
            out,
            "{:>9} {:>7} {:>12} {:>12} {:>9} {:>6} {:>10} {:>12} {:>12} {:>10}  LAST FILE",
            "PARTITION",
            "CLAIMS",
            "FIRST",
            "LAST",
            "STRANDED",
            "GONE",
            "BREAKS",
            "COMMITTED",
            "HIGH",
            "LAG"
        );
        let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        for p in &self.partitions {
            let stranded = match p.last_file_exists {
                Some(true) => "no",
                Some(false) => "yes",
                None => "-",
            };
            let _ = writeln!(
                out,
                "{:>9} {:>7} {:>12} {:>12} {:>9} {:>6} {:>10} {:>12} {:>12} {:>10}  {}",
                p.partition,
                p.claims,
                opt(p.first_offset),
                opt(p.last_offset),
                stranded,
                p.gone_offsets,
                p.chain_breaks,
                opt(p.committed),
                opt(p.high_watermark),
                opt(p.lag),
                p.last_file.as_deref().unwrap_or("-"),
            );
        }
        match &self.schema {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "Parquet schema version {}: {} columns ({})",
                    s.version,
                    s.columns.len(),
                    s.columns.join(", ")
                );
            }
            None => out.push_str("no Parquet schema (NDJSON, or nothing landed as Parquet)\n"),
        }
        if let Some(version) = self.table_version {
            let _ = writeln!(
                out,
                "Delta table version {version}; the last offset each partition's commits added:"
            );
            for p in &self.partitions {
                let _ = writeln!(out, "{:>9} {:>12}", p.partition, opt(p.in_table));
            }
        }
        out
    }
}

/// The storage URL as the service takes it: a local path made absolute.
fn storage_url(given: &str) -> Result<String> {
    if given.contains("://") {
        return Ok(given.to_string());
    }
    let path =
        std::fs::canonicalize(given).with_context(|| format!("{given} is not a directory"))?;
    Ok(path.to_str().context("the path is not UTF-8")?.to_string())
}

pub async fn run(args: StatusArgs) -> Result<()> {
    let mut pairs: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| ingest::config::cloud::CloudEnv::wants(k))
        .collect();
    pairs.extend([
        ("INGEST_TOPIC".to_string(), args.topic.clone()),
        (
            "INGEST_STORAGE_URL".to_string(),
            storage_url(&args.storage_url)?,
        ),
        // Only the store is used; the broker, when given, is read through its own client.
        (
            "INGEST_KAFKA_BOOTSTRAP_SERVERS".to_string(),
            args.bootstrap_servers
                .clone()
                .unwrap_or_else(|| "127.0.0.1:9092".into()),
        ),
    ]);
    let config = ingest::Config::from_pairs(pairs).map_err(|e| anyhow::anyhow!("{e}"))?;
    let storage = Storage::from_config(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = gather(&args, &storage).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(first: i64, last: i64, first_record: Option<i64>) -> Claim {
        Claim {
            version: 1,
            topic: "t".into(),
            partition: 0,
            first_offset: first,
            last_offset: last,
            data: format!("t/dt=2026-01-01/hour=00/t+0+{first:020}.ndjson.gz"),
            dead_letters: String::new(),
            claimed_at_ms: first * 10,
            first_record: None,
            first_record_offset: first_record,
            last_record: None,
            cluster: None,
            encoding: None,
            files: Vec::new(),
            placed_by: None,
        }
    }

    #[test]
    fn a_chain_is_summed_up_with_its_gone_offsets_and_breaks() {
        let claims = [
            claim(0, 99, None),
            claim(100, 199, Some(150)), // 100..=149 left the log before they landed
            claim(250, 299, None),      // a break: 200..=249 are in no claim
        ];
        let r = summarise(3, &claims);
        assert_eq!(
            (
                r.claims,
                r.first_offset,
                r.last_offset,
                r.gone_offsets,
                r.chain_breaks
            ),
            (3, Some(0), Some(299), 50, 1)
        );
        assert_eq!(r.last_claimed_at_ms, Some(2500));
        assert!(r
            .last_file
            .unwrap()
            .ends_with("t+0+00000000000000000250.ndjson.gz"));
        assert_eq!(summarise(0, &[]), PartitionReport::default());
    }
}
