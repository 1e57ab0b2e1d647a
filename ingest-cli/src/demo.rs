//! `ingest-cli demo`: the main job on an embedded default. Starts librdkafka's in-process mock
//! cluster, produces a realistic order stream while the pipeline lands it into a local
//! directory, then stops the pipeline the way SIGTERM would and prints what landed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Records to produce.
    #[arg(long, default_value_t = 60_000)]
    records: u64,
    /// Partitions of the demo topic.
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    /// Where files land (created if missing).
    #[arg(long, default_value = "landed")]
    out: PathBuf,
    /// Topic name.
    #[arg(long, default_value = "orders")]
    topic: String,
}

/// Order event `n` (see `ingest_cli::sample`), except that every 5,000th is not JSON at all:
/// it goes to the dead-letter path.
pub fn order_event(n: u64) -> Vec<u8> {
    if n % 5_000 == 4_999 {
        return format!("order {n} <corrupted by a legacy producer>").into_bytes();
    }
    ingest_cli::sample::order_event(n)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out)?;
    let cluster = MockCluster::new(1).context("cannot start the mock Kafka cluster")?;
    cluster
        .create_topic(&args.topic, args.partitions, 1)
        .context("cannot create the demo topic")?;
    let brokers = cluster.bootstrap_servers();
    println!(
        "mock Kafka cluster at {brokers}: topic {} with {} partitions",
        args.topic, args.partitions
    );

    // Demo defaults; any INGEST_* variable in the environment overrides them.
    let mut vars: Vec<(String, String)> = [
        ("INGEST_TOPIC", args.topic.as_str()),
        ("INGEST_KAFKA_BOOTSTRAP_SERVERS", brokers.as_str()),
        (
            "INGEST_STORAGE_URL",
            out.to_str().context("output path is not UTF-8")?,
        ),
        ("INGEST_FLUSH_MAX_AGE_MS", "2000"),
        ("INGEST_FLUSH_MAX_RECORDS", "20000"),
        ("INGEST_LOG_FORMAT", "text"),
        ("INGEST_HTTP_ADDR", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("INGEST_")) {
        if k != "INGEST_KAFKA_BOOTSTRAP_SERVERS" && k != "INGEST_TOPIC" {
            vars.retain(|(key, _)| key != &k);
            vars.push((k, v));
        }
    }
    let config = ingest::Config::from_pairs(vars)?;
    ingest::init_tracing(config.log_format);
    let pipeline = ingest::Pipeline::new(config);
    let mut progress = pipeline.progress();
    let shutdown = ingest::CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(pipeline.run(shutdown.clone()));

    let (topic, n, b) = (args.topic.clone(), args.records, brokers.clone());
    let produced_bytes = tokio::task::spawn_blocking(move || produce(&b, &topic, n)).await??;
    let high = high_watermarks(&brokers, &args.topic, args.partitions)?;
    println!(
        "produced {n} records ({:.1} MB); waiting for them to land",
        produced_bytes as f64 / 1e6
    );

    let all_committed = |p: &ingest::Progress| {
        high.iter()
            .all(|(part, hw)| *hw == 0 || p.committed.get(part).is_some_and(|c| c >= hw))
    };
    tokio::select! {
        r = progress.wait_for(all_committed) => { r.context("pipeline stopped early")?; }
        r = async { tokio::time::sleep(Duration::from_secs(600)).await } => { let () = r; bail!("records did not land within 10 minutes"); }
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    let landed = running.await??;

    let mb = landed.uncompressed_bytes as f64 / 1e6;
    println!();
    println!("landed in {}", out.display());
    println!("  files            {}", landed.files);
    println!(
        "  records          {} (+ {} dead letters under _dead_letters/)",
        landed.records, landed.dead_letters
    );
    println!(
        "  NDJSON bytes     {:.1} MB, stored {:.1} MB (gzip ratio {:.2})",
        mb,
        landed.bytes as f64 / 1e6,
        landed.bytes as f64 / landed.uncompressed_bytes.max(1) as f64
    );
    println!(
        "  elapsed          {:.2} s (produce and land concurrently)",
        elapsed.as_secs_f64()
    );
    println!(
        "  throughput       {:.0} records/s, {:.1} MB/s uncompressed",
        landed.records as f64 / elapsed.as_secs_f64(),
        mb / elapsed.as_secs_f64()
    );
    println!("  committed        {:?}", landed.committed);
    if landed.records + landed.dead_letters != n {
        bail!(
            "landed {} + {} dead letters, expected {n}",
            landed.records,
            landed.dead_letters
        );
    }
    println!(
        "every record landed exactly once; try: zcat {}/{}/dt=*/hour=*/*.ndjson.gz | head -2",
        out.display(),
        args.topic
    );
    Ok(())
}

/// Produces `n` order events round-robin by key; returns the payload bytes produced.
pub fn produce(brokers: &str, topic: &str, n: u64) -> anyhow::Result<u64> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let mut bytes = 0;
    for i in 0..n {
        let payload = order_event(i);
        bytes += payload.len() as u64;
        let key = format!("cust-{}", i % 997);
        let headers = OwnedHeaders::new().insert(Header {
            key: "source",
            value: Some("ingest-demo"),
        });
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                        bail!("produce failed: {e}");
                    }
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(bytes)
}

/// High watermark (next offset) of every partition.
pub fn high_watermarks(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Vec<(i32, i64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    (0..partitions)
        .map(|p| {
            Ok((
                p,
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))?
                    .1,
            ))
        })
        .collect()
}
