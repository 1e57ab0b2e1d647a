//! Where a Kafka partition stands: the commits (marked as this service's, naming the claim
//! that landed), what the broker says of a partition when it starts, and the seeks, pauses and
//! resumes that move its fetch position.
//!
//! Invariant: a commit carries `last + 1` and [`COMMIT_MARK`]; a partition's fetch position is
//! moved only to where its start was decided, or to where it stopped.

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaConsumer;

/// The metadata of every offset this service commits: it marks the offset as the one after a
/// landed file, unlike offsets set by `kafka-consumer-groups --reset-offsets`, and names the
/// claim that file landed under ([`commit_metadata`]), so a restart finds the end of the claim
/// chain without listing.
pub const COMMIT_MARK: &str = "ingest:landed";

/// The metadata committed after the claim starting at `claim` landed: `ingest:landed claim=N`.
pub fn commit_metadata(claim: i64) -> String {
    format!("{COMMIT_MARK} claim={claim}")
}

/// What a committed offset's metadata says, if this service wrote it: the claim it names
/// (`None` in an earlier release's mark, [`COMMIT_MARK`] alone).
pub fn parse_commit_metadata(metadata: &str) -> Option<Option<i64>> {
    let rest = metadata.strip_prefix(COMMIT_MARK)?;
    if rest.is_empty() {
        return Some(None);
    }
    rest.strip_prefix(" claim=")?.parse().ok().map(Some)
}

/// Commits `next_offset` (last landed offset + 1) for one partition, synchronously, with the
/// metadata naming the claim (first offset `claim`) that landed through it. Blocking: call from
/// a blocking thread.
pub fn commit(
    consumer: &KafkaConsumer,
    topic: &str,
    partition: i32,
    (claim, next_offset): (i64, i64),
) -> KafkaResult<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(next_offset))?;
    if let Some(mut e) = tpl.find_partition(topic, partition) {
        e.set_metadata(commit_metadata(claim));
    }
    consumer.commit(&tpl, CommitMode::Sync)
}

/// What the broker says of `partition` when it starts: its first and next offsets and the
/// group's committed offset when this service committed it (a hint for finding the chain's
/// end). Blocking: call from a blocking thread.
pub fn partition_facts(
    consumer: &KafkaConsumer,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<crate::source::PartitionFacts, String> {
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .map_err(|e| format!("cannot read the offsets of {topic}/{partition}: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = consumer
        .committed_offsets(tpl, timeout)
        .map_err(|e| format!("cannot read the committed offset of {topic}/{partition}: {e}"))?;
    // A metadata string that is not UTF-8 panics in rdkafka: treated as not ours.
    let hint = got.find_partition(topic, partition).and_then(|e| {
        let Offset::Offset(next) = e.offset() else {
            return None;
        };
        let metadata = std::panic::catch_unwind(|| e.metadata().to_string()).ok()?;
        parse_commit_metadata(&metadata).map(|claim| crate::source::Hint { next, claim })
    });
    Ok(crate::source::PartitionFacts {
        low,
        high,
        cluster: None,
        hint,
    })
}

/// Seeks `partition` to `offset` (it was paused while its start was decided) and, if `resume`,
/// starts fetching there.
pub fn start_at(consumer: &KafkaConsumer, topic: &str, partition: i32, offset: i64, resume: bool) {
    let mut tpl = TopicPartitionList::new();
    if tpl
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .is_err()
    {
        return;
    }
    // Seek first (the partition is paused, so nothing is fetched from elsewhere), then resume;
    // both are queued to the partition in this order. Asynchronous (no timeout): this runs on
    // the loop, which must not block.
    if let Err(e) = consumer.seek_partitions(tpl.clone(), Duration::ZERO) {
        tracing::warn!(partition, offset, error = %e, "could not seek the partition to its start");
    }
    if resume {
        if let Err(e) = consumer.resume(&tpl) {
            tracing::warn!(partition, error = %e, "could not resume fetching");
        }
    }
}

/// Pauses fetching for the given partitions. librdkafka drops what it had prefetched for them.
pub fn pause(consumer: &KafkaConsumer, topic: &str, partitions: &[i32]) {
    if partitions.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    if let Err(e) = consumer.pause(&tpl) {
        tracing::warn!(error = %e, ?partitions, "could not pause fetching");
    }
}

/// Resumes fetching for the given partitions, each from `next_offset` when known (the offset
/// after the last record received, so nothing is skipped or read twice).
///
/// A resume alone does not wake librdkafka's broker thread, which sleeps up to a second when
/// every partition was paused; a seek to the position it would resume from anyway does.
pub fn resume(consumer: &KafkaConsumer, topic: &str, partitions: &[(i32, Option<i64>)]) {
    if partitions.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (p, _) in partitions {
        tpl.add_partition(topic, *p);
    }
    if let Err(e) = consumer.resume(&tpl) {
        tracing::warn!(error = %e, ?partitions, "could not resume fetching");
        return;
    }
    let mut positions = TopicPartitionList::new();
    for (p, next) in partitions {
        if let Some(next) = next {
            // Cannot fail for a valid offset; a failure only leaves the wake-up to librdkafka.
            let _ = positions.add_partition_offset(topic, *p, Offset::Offset(*next));
        }
    }
    if positions.count() > 0 {
        // Asynchronous (no timeout): it only restarts fetching where it stopped.
        if let Err(e) = consumer.seek_partitions(positions, Duration::ZERO) {
            tracing::debug!(error = %e, ?partitions, "could not wake fetching after a resume");
        }
    }
}
