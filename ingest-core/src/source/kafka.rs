//! The Kafka source: a consumer-group member with manual commits and cooperative rebalancing.
//!
//! Invariants: offsets are never committed automatically (`enable.auto.commit=false`,
//! `enable.auto.offset.store=false`); rebalance callbacks only forward events over a channel (no
//! blocking work, no spawns, no panics); commits are synchronous and carry `last + 1`.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::mpsc;

use super::RebalanceEvent;
use crate::config::Config;
use crate::error::Error;

/// Forwards rebalances to the pipeline loop, routes librdkafka logs to `tracing` and keeps the
/// lag gauges of the partitions this member owns.
pub struct Context {
    topic: String,
    events: mpsc::UnboundedSender<RebalanceEvent>,
    /// Partitions assigned now: lag is reported for these only.
    assigned: std::sync::Mutex<std::collections::BTreeSet<i32>>,
}

fn partitions_of(topic: &str, tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
}

impl ClientContext for Context {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel::*;
        match level {
            Emerg | Alert | Critical | Error => {
                tracing::error!(target: "librdkafka", fac, "{log_message}")
            }
            Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            Notice | Info => tracing::info!(target: "librdkafka", fac, "{log_message}"),
            Debug => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }

    /// librdkafka statistics (every `statistics.interval.ms`): per-partition consumer lag.
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.record_lag(&statistics);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            return; // reaching the end of a partition is normal; the pipeline logs it
        }
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl Context {
    fn assigned(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<i32>> {
        self.assigned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record_lag(&self, statistics: &rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let assigned = self.assigned();
        for (p, part) in &topic.partitions {
            // -1 is librdkafka's unassigned pseudo-partition; lag -1 means not known yet.
            if assigned.contains(p) && part.consumer_lag >= 0 {
                metrics::gauge!("ingest_consumer_lag", "partition" => p.to_string())
                    .set(part.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let revoked = partitions_of(&self.topic, tpl);
                let mut assigned = self.assigned();
                for p in &revoked {
                    assigned.remove(p);
                    // Its new owner reports its lag: this member is behind on nothing there, so
                    // a last value left here cannot win a `max by (partition)`.
                    metrics::gauge!("ingest_consumer_lag", "partition" => p.to_string()).set(0.0);
                }
                drop(assigned);
                let _ = self.events.send(RebalanceEvent::Revoked(revoked));
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Assign(_) => {}
        }
    }

    /// Assigned partitions are paused at once: where each starts is read from the store
    /// ([`crate::land::start`]) before the loop seeks it there and resumes it.
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let added = partitions_of(&self.topic, tpl);
            if let Err(e) = consumer.pause(tpl) {
                // The loop drops records of a partition still starting: nothing is lost, the
                // records are fetched again from where it starts.
                tracing::warn!(error = %e, partitions = ?added, "could not pause partitions while they start");
            }
            self.assigned().extend(added.iter().copied());
            let _ = self.events.send(RebalanceEvent::Assigned(added));
        }
    }
}

pub type KafkaConsumer = StreamConsumer<Context>;

/// How long closing the consumer (leaving the group) may take once everything is flushed.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The consumer, shared; when the last handle goes, it is closed (leaving the group) on a
/// thread of its own for at most [`CLOSE_WAIT`]. librdkafka's close polls until the group
/// lets go, which a rebalance in progress can hold up indefinitely; nothing is at stake by
/// then (every landed file is committed or claimed), so the service exits anyway.
pub struct SharedConsumer(Option<KafkaConsumer>);

impl std::ops::Deref for SharedConsumer {
    type Target = KafkaConsumer;

    fn deref(&self) -> &KafkaConsumer {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for SharedConsumer {
    fn drop(&mut self) {
        let Some(consumer) = self.0.take() else {
            return;
        };
        let (done, closed) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("ingest-close".into())
            .spawn(move || {
                drop(consumer);
                let _ = done.send(());
            });
        if spawned.is_ok() && closed.recv_timeout(CLOSE_WAIT).is_err() {
            tracing::warn!(
                wait_s = CLOSE_WAIT.as_secs(),
                "the Kafka consumer did not leave its group in time (a rebalance in progress?); exiting anyway: the group drops this member after session.timeout.ms, and every landed file is committed or claimed"
            );
        }
    }
}

/// How long librdkafka waits before fetching again for a partition whose queue was full.
pub const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// librdkafka's prefetch bound (`queued.max.messages.kbytes`) for a buffer cap: a
/// thirty-second of the cap, between 1 MiB and 8 MiB (at 300 MB/s, 8 MiB is 27 ms of records,
/// many fetch round trips). With a consumer group every partition's fetch queue feeds one
/// consumer queue, so this bounds the whole prefetch, not each partition.
pub fn prefetch_kbytes(max_buffer_bytes: usize) -> usize {
    (max_buffer_bytes / 32 / 1024).clamp(1024, 8 * 1024)
}

/// What librdkafka allocates for each message it queues besides the payload: an op of 304
/// bytes (`rd_kafka_op_t` up to its union, plus the fetch member; librdkafka 2.12), 320 with
/// malloc's header.
pub const QUEUED_MESSAGE_BYTES: usize = 320;

/// librdkafka's bound on the messages it prefetches (`queued.min.messages`; with a consumer
/// group, like the byte bound, it counts the one consumer queue): one per 512 bytes of the byte
/// bound, so the ops of small records hold at most 5/8 of the bound. The byte bound counts
/// payloads only: without this, 8 MiB of 170-byte records queued 49,000 ops (16 MB) and the
/// process peaked at the cap + 55 MB.
pub fn prefetch_messages(kbytes: usize) -> usize {
    kbytes * 1024 / 512
}

/// What librdkafka may hold for a prefetch bound of `kbytes` and `messages`: the queued
/// payloads, the fetch response being read (`fetch.max.bytes`, which librdkafka lowers to the
/// bound; queued records keep their whole response buffer alive), and the queued messages' ops,
/// counted as one bound more at least (measured: 38 MiB for a 16 MiB bound with 600-byte
/// records).
pub fn prefetch_held_bytes(kbytes: usize, messages: usize) -> usize {
    let bound = kbytes * 1024;
    2 * bound + bound.max(messages * QUEUED_MESSAGE_BYTES)
}

/// What batches and encoded files may hold: `INGEST_MAX_BUFFER_BYTES` less what librdkafka may
/// hold ([`prefetch_held_bytes`], for the bounds set, ours or the user's), so the cap bounds the
/// records in the whole process. A cap too small for that keeps half of it for batches.
pub fn batch_budget(config: &Config) -> usize {
    let cap = config.max_buffer_bytes;
    let client = client_config(config);
    let kbytes = prefetch_kbytes_set(&client, cap);
    let messages = client
        .get("queued.min.messages")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| prefetch_messages(kbytes));
    cap - prefetch_held_bytes(kbytes, messages).min(cap / 2)
}

/// The prefetch byte bound a configuration sets: the user's, else ours for the cap.
fn prefetch_kbytes_set(client: &ClientConfig, cap: usize) -> usize {
    client
        .get("queued.max.messages.kbytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| prefetch_kbytes(cap))
}

/// The librdkafka configuration the service runs with: our defaults, then the user's properties
/// (which override them), then the settings the service needs (brokers, group, no
/// auto-commit), which they cannot.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("partition.assignment.strategy", "cooperative-sticky")
        .set("auto.offset.reset", "earliest")
        // Prefetched records are part of the buffer cap: bound them by it (see batch_budget).
        .set(
            "queued.max.messages.kbytes",
            prefetch_kbytes(config.max_buffer_bytes).to_string(),
        )
        // The default (1 s) idles the consumer for up to a second each time the prefetch queue
        // was full, which caps throughput near one queue per second.
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        // Reaching the end of a partition is logged ("caught up") at debug level.
        // (and tells a partition completing a claim that nothing more of it will come).
        .set("enable.partition.eof", "true")
        // Statistics feed the per-partition lag gauge.
        .set("statistics.interval.ms", "10000")
        .set("client.id", format!("ingest-{}", config.topic));
    for p in &config.kafka.properties {
        c.set(&p.name, &p.value);
    }
    // After the user's: follows their byte bound unless they set this one too.
    if c.get("queued.min.messages").is_none() {
        let kbytes = prefetch_kbytes_set(&c, config.max_buffer_bytes);
        c.set("queued.min.messages", prefetch_messages(kbytes).to_string());
    }
    c.set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("enable.partition.eof", "true")
        .set("group.id", &config.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    c
}

/// Creates the consumer and subscribes it to the topic.
pub fn subscribe(
    config: &Config,
) -> Result<(Arc<SharedConsumer>, mpsc::UnboundedReceiver<RebalanceEvent>), Error> {
    let (tx, rx) = mpsc::unbounded_channel();
    let context = Context {
        topic: config.topic.clone(),
        events: tx,
        assigned: Default::default(),
    };
    let consumer: KafkaConsumer = client_config(config)
        .create_with_context(context)
        .map_err(|e| Error::KafkaSetting(config_error(&e, config)))?;
    consumer
        .subscribe(&[&config.topic])
        .map_err(|e| Error::Kafka(format!("cannot subscribe to topic {}: {e}", config.topic)))?;
    Ok((Arc::new(SharedConsumer(Some(consumer))), rx))
}

/// A librdkafka configuration error in one line that names the property but never shows a
/// value (librdkafka's own messages repeat them, and property values are often secrets).
pub fn config_error(e: &rdkafka::error::KafkaError, config: &Config) -> String {
    // Values too short to be secrets would mangle the message if hidden.
    let hide = |text: &str| {
        config
            .kafka
            .properties
            .iter()
            .filter(|p| p.value.len() >= 4)
            .fold(text.to_string(), |t, p| t.replace(p.value.as_str(), "***"))
    };
    let rdkafka::error::KafkaError::ClientConfig(_, description, key, value) = e else {
        return format!(
            "invalid Kafka configuration: {}; check the INGEST_KAFKA_* variables",
            hide(&e.to_string())
        );
    };
    let description = if value.is_empty() {
        hide(description)
    } else {
        hide(&description.replace(value.as_str(), "***"))
    };
    let var = format!(
        "INGEST_KAFKA_{}",
        key.to_ascii_uppercase().replace('.', "_")
    );
    let hint = if key == "sasl.jaas.config" {
        "sasl.jaas.config is a Java client property: for Event Hubs set INGEST_KAFKA_SASL_USERNAME=$ConnectionString and the connection string as INGEST_KAFKA_SASL_PASSWORD instead"
    } else {
        "check its name and value against librdkafka's CONFIGURATION.md"
    };
    format!("{var} is not a valid Kafka setting ({description}); {hint}")
}

/// Checks, blocking up to `timeout`, that the brokers answer and the topic exists; returns its
/// partition count and the cluster id, when the broker gives one.
pub fn check_topic(
    consumer: &KafkaConsumer,
    config: &Config,
    timeout: Duration,
) -> Result<(usize, Option<String>), Error> {
    // Unreachable may be an outage (the service waits) or a wrong address (the line says
    // which setting to check).
    let metadata = consumer.fetch_metadata(Some(&config.topic), timeout).map_err(|e| {
        Error::Unavailable(format!(
            "cannot reach Kafka at {} within {}s ({e}); check INGEST_KAFKA_BOOTSTRAP_SERVERS and the security settings",
            config.kafka.bootstrap_servers,
            timeout.as_secs()
        ))
    })?;
    let topic = metadata.topics().iter().find(|t| t.name() == config.topic);
    match topic {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok((
            t.partitions().len(),
            consumer.client().fetch_cluster_id(timeout),
        )),
        _ => Err(Error::Kafka(format!(
            "topic {} does not exist on {}; create it or fix INGEST_TOPIC",
            config.topic, config.kafka.bootstrap_servers
        ))),
    }
}

mod positions;
pub use positions::{
    commit, commit_metadata, parse_commit_metadata, partition_facts, pause, resume, start_at,
    COMMIT_MARK,
};

#[cfg(test)]
mod tests;
