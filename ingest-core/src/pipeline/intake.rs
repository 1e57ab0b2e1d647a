//! Intake: records from the source into their partition's open batch, taken in bursts of what
//! is already queued (one clock reading and one metrics update per burst, not per record).
//!
//! Invariant: a record is copied into its batch at once (the source's message is released when
//! the burst moves on); records of partitions not owned, and any taken while draining, are left
//! uncommitted for whoever reads them next.

use std::sync::Arc;
use std::time::Instant;

use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::flushes::max_flushes;
use super::Loop;
use crate::batch::{Flaw, RecordRef};
use crate::clock::now_ms;
use crate::config::{Compression, Envelope, Format};
use crate::encode::{ahead, Encoder};
use crate::error::Error;
use crate::land::{encoders, Flusher};
use crate::source::eventhubs::Event;
use crate::source::{Next, Receiver};

/// The per-message counters, registered once: a `counter!` call looks its series up in the
/// recorder's registry, which is too much for every message. Incremented once per burst.
pub(super) struct Consumed {
    records: metrics::Counter,
    bytes: metrics::Counter,
}

impl Consumed {
    pub(super) fn register() -> Consumed {
        Consumed {
            records: metrics::counter!("ingest_records_consumed_total"),
            bytes: metrics::counter!("ingest_bytes_consumed_total"),
        }
    }

    fn add(&self, burst: &Burst) {
        self.records.increment(burst.records);
        self.bytes.increment(burst.bytes);
    }
}

/// Messages taken from the source's queue in one go: they share one clock reading.
pub(super) struct Burst {
    now: Instant,
    now_ms: i64,
    records: u64,
    bytes: u64,
}

impl Burst {
    fn new() -> Burst {
        Burst {
            now: Instant::now(),
            now_ms: now_ms(),
            records: 0,
            bytes: 0,
        }
    }
}

/// Most messages taken in one burst before the other branches of the loop get a turn.
const BURST_MAX: u64 = 256;

/// Frozen chunks of an open batch worth a job compressing them ahead of its flush. Each job
/// primes the deflate window with the text before it, so the ratio does not suffer.
const AHEAD_BYTES: usize = 1024 * 1024;

/// Runs an encode-ahead job when an encoder is free (flushes and jobs take turns in order).
fn spawn_ahead(flusher: Arc<Flusher>, partition: i32, job: ahead::Job) {
    tokio::spawn(async move {
        let Ok(_permit) = encoders().acquire().await else {
            return;
        };
        let encoded = tokio::task::spawn_blocking(move || job.run(partition, &flusher.encode));
        match encoded.await {
            Ok(bytes) => {
                metrics::counter!("ingest_encoded_ahead_bytes_total").increment(bytes as u64)
            }
            // The flush encodes everything itself (see `ahead`).
            Err(e) => tracing::warn!(partition, error = %e, "encoding ahead failed"),
        }
    });
}

/// Headers a message carries, without allocating for the usual few.
const INLINE_HEADERS: usize = 8;

impl Loop {
    /// Handles `first` and whatever else is already queued, without yielding to the runtime
    /// (one clock reading per burst, not per message), until something needs the partitions
    /// rescanned or the burst is long enough for the other branches to get a turn. Returns
    /// whether the loop must rescan.
    pub(super) fn take_burst<'a>(
        &mut self,
        first: Next<'a>,
        receiver: &mut Receiver<'a>,
    ) -> Result<bool, Error> {
        let mut burst = Burst::new();
        let mut next = first;
        let attention = loop {
            let attention = match next {
                Next::Rebalance(event) => {
                    self.on_rebalance(event);
                    true
                }
                Next::Kafka {
                    message,
                    rebalanced_first,
                } => {
                    let rebalanced = !rebalanced_first.is_empty();
                    for event in rebalanced_first {
                        self.on_rebalance(event);
                    }
                    match message {
                        Ok(m) => self.on_kafka_message(&m, &mut burst) || rebalanced,
                        Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                            self.on_caught_up(p);
                            true
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "Kafka consumer error");
                            true
                        }
                    }
                }
                Next::Event(event) => self.on_event(&event, &mut burst),
                Next::Closed => {
                    return Err(Error::Internal("the source stopped delivering".into()));
                }
            };
            if self.fatal.is_some() {
                break true;
            }
            if attention || burst.records >= BURST_MAX {
                break attention;
            }
            match receiver.next_now() {
                Some(n) => next = n,
                None => break false,
            }
        };
        self.consumed.add(&burst);
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        Ok(attention)
    }

    /// Buffers a Kafka message (see `on_record`).
    fn on_kafka_message(&mut self, m: &BorrowedMessage<'_>, burst: &mut Burst) -> bool {
        if m.topic() != self.config.topic {
            return false;
        }
        // Headers are kept only where a line shows them (the metadata envelope).
        let mut inline = [("", None); INLINE_HEADERS];
        let mut spilled = Vec::new();
        let wanted = self.config.envelope == Envelope::Metadata;
        let mut flaw = None;
        let headers: &[(&str, Option<&[u8]>)] = match wanted.then(|| m.headers()).flatten() {
            // rdkafka panics on a header key that is not UTF-8 (a poison record a non-Rust
            // producer can write): the record then goes the invalid-record way, named by offset,
            // instead of the panic stopping the service at it again after every restart.
            Some(h) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if h.count() <= INLINE_HEADERS {
                    for (slot, h) in inline.iter_mut().zip(h.iter()) {
                        *slot = (h.key, h.value);
                    }
                } else {
                    spilled.extend(h.iter().map(|h| (h.key, h.value)));
                }
            })) {
                Ok(()) if h.count() <= INLINE_HEADERS => &inline[..h.count()],
                Ok(()) => &spilled,
                Err(_) => {
                    tracing::warn!(partition = m.partition(), offset = m.offset(),
                        "a header key is not valid UTF-8; the record is handled as invalid (INGEST_INVALID_RECORD_POLICY)");
                    flaw = Some(Flaw::UnreadableHeaders);
                    &[]
                }
            },
            _ => &[],
        };
        let record = RecordRef {
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key(),
            value: m.payload(),
            headers,
            flaw,
            cursor: None,
        };
        self.on_record(m.partition(), &record, None, burst)
    }

    /// Buffers an Event Hubs event: the sequence number is the offset, the partition key the
    /// key, application properties the headers (kept only for the metadata envelope).
    fn on_event(&mut self, e: &Event, burst: &mut Burst) -> bool {
        let headers: Vec<(&str, Option<&[u8]>)> = if self.config.envelope == Envelope::Metadata {
            e.properties
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
                .collect()
        } else {
            Vec::new()
        };
        let record = RecordRef {
            offset: e.sequence_number,
            timestamp_ms: e.enqueued_ms,
            key: e.partition_key.as_deref().map(str::as_bytes),
            value: e.body.as_deref(),
            headers: &headers,
            flaw: e.flaw,
            cursor: e.offset.as_deref(),
        };
        self.on_record(e.partition, &record, e.content_type.as_deref(), burst)
    }

    /// Buffers a record (decoded first when values come through a schema registry: see
    /// [`super::decode`]). Returns whether the loop must rescan partitions: a batch was sealed
    /// or opened (uploads, deadlines) or the buffer cap was reached.
    fn on_record(
        &mut self,
        partition: i32,
        record: &RecordRef<'_>,
        content_type: Option<&str>,
        burst: &mut Burst,
    ) -> bool {
        match self.flusher.encode.registry.clone() {
            Some(registry) => self.decoded(&registry, partition, record, content_type, burst),
            None => self.buffer(partition, record, burst),
        }
    }

    /// Buffers a record as it is.
    pub(super) fn buffer(
        &mut self,
        partition: i32,
        record: &RecordRef<'_>,
        burst: &mut Burst,
    ) -> bool {
        if self.draining || !self.admit(partition, record) {
            return false;
        }
        let Some(owned) = self.partitions.get_mut(&partition) else {
            return false;
        };
        owned.next_offset = Some(record.offset + 1);
        owned.first_offset.get_or_insert(record.offset);
        let policy = &self.config.flush;
        let deadline = owned.state.deadline(policy);
        let size = record.size();
        if let Some(grown) = owned.state.push(record, burst.now, burst.now_ms, policy) {
            self.buffered += grown;
            self.seal_headroom = self.seal_headroom.saturating_sub(grown);
            // A new chunk means the last one froze: maybe enough to compress ahead (NDJSON
            // only: a Parquet file's columns need the whole batch).
            // Nor when records are placed one by one: a batch is then several files,
            // planned when it is sealed.
            if grown > 0 && self.config.format == Format::Ndjson && !self.flusher.namer.per_record()
            {
                if let Compression::Gzip { .. } = self.config.compression {
                    let opts = &self.flusher.encode;
                    let encoder = || Encoder::new(opts.compression, AHEAD_BYTES);
                    if let Some(job) = owned
                        .state
                        .open_mut()
                        .and_then(|open| ahead::job(open, AHEAD_BYTES, encoder))
                    {
                        spawn_ahead(Arc::clone(&self.flusher), partition, job);
                    }
                }
            }
        }
        burst.records += 1;
        burst.bytes += size as u64;
        (owned.state.ready_to_upload() && self.tasks.len() < max_flushes())
            || owned.state.deadline(policy) != deadline
            || self.seal_headroom == 0
            || self.buffered >= self.cap
    }

    fn on_caught_up(&mut self, partition: i32) {
        if let Some(owned) = self.partitions.get_mut(&partition) {
            if owned.state.end_of_log() {
                tracing::info!(
                    partition,
                    "reached the partition's end while completing a claim: it is completed with the records the log still has"
                );
            }
            tracing::debug!(
                partition,
                next_offset = owned.next_offset,
                buffered_bytes = owned.state.held_bytes(),
                "caught up: reached the end of the partition"
            );
        }
    }
}
