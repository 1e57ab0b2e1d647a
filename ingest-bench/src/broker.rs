//! The Kafka side of the benchmark: a broker process hosting librdkafka's mock cluster, and the
//! clients that load it, read its watermarks and watch the sink's committed offsets.
//!
//! The mock cluster keeps at most 5 MiB of record batches per partition (hard-coded in
//! librdkafka, `rdkafka_mock.c`), deleting the oldest beyond that. Runs therefore spread their
//! backlog over enough partitions, and [`preload`] checks every partition still starts at
//! offset 0 and that the high watermarks add up to what was produced.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::records::Records;

/// Bytes the mock cluster retains per partition before deleting old batches.
pub const MOCK_RETAINED_BYTES: usize = 5 * 1024 * 1024;

/// `ingest-bench broker`: hosts a mock cluster with one topic, prints its bootstrap address on
/// stdout, and serves until stdin closes (the parent exited or closed it).
pub fn serve(topic: &str, partitions: i32) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("cannot start the mock Kafka cluster")?;
    cluster
        .create_topic(topic, partitions, 1)
        .context("cannot create the topic")?;
    println!("{}", cluster.bootstrap_servers());
    std::io::stdout().flush()?;
    for line in std::io::stdin().lock().lines() {
        line?;
    }
    Ok(())
}

/// A producer for a steady stream: small batches, sent within 5 ms.
pub fn producer(brokers: &str) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    producer_with(brokers, "5", "65536")
}

fn producer_with(
    brokers: &str,
    linger_ms: &str,
    batch_bytes: &str,
) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", linger_ms)
        .set("batch.size", batch_bytes)
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

/// Sends record `n` to `partition` with the producer's clock as its timestamp; returns its
/// value's size.
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: i32,
    n: u64,
    timestamp_ms: i64,
    records: Records,
) -> anyhow::Result<usize> {
    let payload = records.event(n);
    let key = format!("order-{n}");
    let headers = OwnedHeaders::new().insert(Header {
        key: "source",
        value: Some("ingest-bench"),
    });
    let mut record = BaseRecord::to(topic)
        .partition(partition)
        .key(&key)
        .payload(&payload)
        .timestamp(timestamp_ms)
        .headers(headers);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(payload.len()),
            Err((e, r)) => {
                if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                    bail!("produce failed: {e}");
                }
                producer.poll(Duration::from_millis(5));
                record = r;
            }
        }
    }
}

/// Produces records `0..n` round-robin over the partitions, then checks the broker kept them
/// all. Returns the value bytes produced.
///
/// The mock broker answers a fetch with one record batch per partition, so the loader fills
/// 1 MB batches (one partition after the other) as a busy producer would; small batches would
/// make the broker, not the sink, the bottleneck.
pub fn preload(
    brokers: &str,
    topic: &str,
    partitions: i32,
    n: u64,
    records: Records,
) -> anyhow::Result<u64> {
    let p = producer_with(brokers, "50", "1000000")?;
    let mut bytes = 0u64;
    for partition in 0..partitions {
        for i in (partition as u64..n).step_by(partitions as usize) {
            bytes += send(&p, topic, partition, i, now_ms(), records)? as u64;
        }
    }
    p.flush(Duration::from_secs(120))?;
    let marks = watermarks(brokers, topic, partitions)?;
    let kept: i64 = marks.iter().map(|(_, _, high)| high).sum();
    if let Some((p, low, _)) = marks.iter().find(|(_, low, _)| *low != 0) {
        bail!("the mock broker dropped records of partition {p} (log starts at {low}): use more partitions");
    }
    if kept != n as i64 {
        bail!("the broker holds {kept} records, {n} were produced");
    }
    Ok(bytes)
}

/// (partition, low, high) watermarks.
pub fn watermarks(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Vec<(i32, i64, i64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    (0..partitions)
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            Ok((p, low, high))
        })
        .collect()
}

/// Reads a consumer group's committed offsets without joining the group.
pub struct CommitWatch {
    consumer: BaseConsumer,
    tpl: TopicPartitionList,
}

impl CommitWatch {
    pub fn new(brokers: &str, group: &str, topic: &str, partitions: i32) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        Ok(CommitWatch { consumer, tpl })
    }

    /// Sum over partitions of the committed next offset (records landed, as offsets start at 0).
    pub fn committed(&self) -> anyhow::Result<i64> {
        let got = self
            .consumer
            .committed_offsets(self.tpl.clone(), Duration::from_secs(10))?;
        Ok(got
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
