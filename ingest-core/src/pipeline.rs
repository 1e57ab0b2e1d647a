//! The pipeline loop: one `select!` over shutdown, finished flushes, the flush timer and the
//! source's next rebalance, Kafka message or Event Hubs event.
//!
//! Invariants: a partition has at most one flush in flight; buffered bytes across partitions
//! stay under `INGEST_MAX_BUFFER_BYTES` (plus what librdkafka already queued) by flushing early
//! and pausing fetch; revoked partitions are forgotten at once; on shutdown fetching stops, every
//! buffer is flushed and committed, or the loop gives up at the timeout having committed nothing
//! that did not land.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{BorrowedMessage, Headers, Message};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::batch::{FlushReason, RecordRef};
use crate::config::Config;
use crate::encode::EncodeOptions;
use crate::error::Error;
use crate::eventhubs::source::Event;
use crate::flush::{now_ms, Flusher, Outcome};
use crate::health::Health;
use crate::naming::Namer;
use crate::ops;
use crate::partition::PartitionState;
use crate::progress::Progress;
use crate::source::{self, Control, Next, RebalanceEvent};
use crate::storage::Storage;

/// A configured pipeline, not yet running.
pub struct Pipeline {
    config: Config,
    progress: watch::Sender<Progress>,
    pub(crate) transform: Option<crate::transform::Transform>,
}

impl Pipeline {
    pub fn new(config: Config) -> Self {
        Pipeline {
            config,
            progress: watch::Sender::new(Progress::default()),
            transform: None,
        }
    }

    /// Watches what has landed and been committed while the pipeline runs.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Runs until `shutdown` is cancelled and every buffer is flushed (or a fatal error).
    /// Returns what this run landed.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Progress, Error> {
        let config = self.config;
        let health = Arc::new(Health::new(now_ms()));
        // Stops the endpoint and the storage watch when this function returns, however it ends.
        let background = CancellationToken::new();
        let _stop_background = background.clone().drop_guard();
        if let Some(addr) = config.http_addr {
            let listener = ops::bind(addr).await.map_err(Error::Endpoint)?;
            let bound = listener.local_addr().ok();
            if let Some(a) = bound {
                tracing::info!(addr = %a, "serving /healthz, /readyz and /metrics");
            }
            self.progress.send_modify(|p| p.http_addr = bound);
            tokio::spawn(ops::serve(
                listener,
                Arc::clone(&health),
                ops::recorder(),
                config.health_stall,
                background.clone(),
            ));
        }
        metrics::gauge!("ingest_buffer_cap_bytes").set(config.max_buffer_bytes as f64);
        let mut storage = Storage::from_config(&config).map_err(Error::Storage)?;
        let caps = storage.probe().await.map_err(Error::Storage)?;
        tokio::spawn(watch_storage(
            storage.clone(),
            Arc::clone(&health),
            config.storage_check_interval,
            background.clone(),
        ));
        let opened = tokio::select! {
            opened = source::open(&config, background.child_token()) => opened?,
            _ = shutdown.cancelled() => {
                tracing::info!("shutdown requested during start-up; nothing was consumed");
                return Ok(Progress::default());
            }
        };
        let source::Opened {
            mut receiver,
            control,
            partitions: partition_count,
            label,
        } = opened;
        health.update(|f| f.started = true);
        tracing::info!(topic = %config.topic, source = %label, storage = storage.label(),
            create_only = caps.create_only, multipart = caps.multipart,
            partitions = partition_count, "ingest started");

        let flusher = Arc::new(Flusher {
            storage,
            source: control.clone(),
            namer: Namer {
                topic: config.topic.clone(),
                dead_letter_prefix: config.dead_letter_prefix.clone(),
                compression: config.compression,
                time_source: config.time_source,
            },
            encode: EncodeOptions {
                topic: config.topic.clone(),
                envelope: config.envelope,
                compression: config.compression,
                invalid: config.invalid,
                max_record_bytes: config.max_record_bytes,
                transform: self.transform,
            },
            fault: config.fault,
            uploads: AtomicU64::new(0),
            progress: self.progress.clone(),
            health: Arc::clone(&health),
        });
        let mut lp = Loop {
            config,
            source: control.clone(),
            flusher,
            partitions: BTreeMap::new(),
            tasks: JoinSet::new(),
            next_epoch: 0,
            paused: BTreeSet::new(),
            draining: false,
            buffered: 0,
            seal_headroom: 0,
            consumed: Consumed::register(),
            health: Arc::clone(&health),
        };
        let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        let mut tick_at: Option<Instant> = None;
        // Whether partition-wide state may have changed since the last scan. Most messages only
        // append to an open batch; they skip the O(partitions) scan below.
        let mut attention = true;
        loop {
            if attention {
                lp.start_uploads();
                lp.balance_memory();
                if lp.draining && lp.drained() {
                    break;
                }
                tick_at = if lp.draining {
                    None
                } else {
                    lp.next_deadline()
                };
            }
            attention = true;
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if !lp.draining => {
                    drain_deadline = Some(tokio::time::Instant::now() + lp.config.shutdown_timeout);
                    lp.begin_drain();
                }
                _ = tokio::time::sleep_until(drain_deadline.unwrap_or(far)), if drain_deadline.is_some() => {
                    let pending = lp.partitions.iter().filter(|(_, o)| !o.state.is_drained()).map(|(p, _)| *p).collect();
                    return Err(Error::ShutdownTimeout { timeout: lp.config.shutdown_timeout, pending });
                }
                Some(joined) = lp.tasks.join_next(), if !lp.tasks.is_empty() => lp.on_flushed(joined)?,
                _ = heartbeat.tick() => {
                    lp.health.update(|f| f.heartbeat_ms = now_ms());
                    attention = false;
                }
                _ = tokio::time::sleep_until(tick_at.map_or(far, tokio::time::Instant::from_std)), if tick_at.is_some() => lp.tick(),
                next = receiver.next() => match next {
                    Next::Rebalance(event) => lp.on_rebalance(event),
                    Next::Kafka { message, rebalanced_first } => {
                        let rebalanced = !rebalanced_first.is_empty();
                        for event in rebalanced_first {
                            lp.on_rebalance(event);
                        }
                        match message {
                            Ok(m) => attention = lp.on_kafka_message(&m) || rebalanced,
                            Err(rdkafka::error::KafkaError::PartitionEOF(p)) => lp.on_caught_up(p),
                            Err(e) => tracing::warn!(error = %e, "Kafka consumer error"),
                        }
                    }
                    Next::Event(event) => attention = lp.on_event(&event),
                    Next::Closed => {
                        return Err(Error::Internal("the source stopped delivering".into()));
                    }
                },
            }
        }
        let landed = self.progress.borrow().clone();
        tracing::info!(
            files = landed.files,
            records = landed.records,
            bytes = landed.bytes,
            dead_letters = landed.dead_letters,
            "ingest stopped cleanly: every buffered record landed and was committed"
        );
        control.close().await;
        Ok(landed)
    }
}

/// A partition this consumer owns. `epoch` tells a flush of an earlier ownership apart.
struct Owned {
    state: PartitionState,
    /// Offset after the last record received (for the caught-up log).
    next_offset: Option<i64>,
    owner: CancellationToken,
    epoch: u64,
}

type Joined = Result<(i32, u64, Result<Outcome, Error>), JoinError>;

struct Loop {
    health: Arc<Health>,
    config: Config,
    source: Control,
    flusher: Arc<Flusher>,
    partitions: BTreeMap<i32, Owned>,
    tasks: JoinSet<(i32, u64, Result<Outcome, Error>)>,
    next_epoch: u64,
    paused: BTreeSet<i32>,
    draining: bool,
    /// Record bytes held across partitions: exact after `balance_memory`, plus what
    /// `on_message` added since.
    buffered: usize,
    /// Bytes open batches may still grow by before memory pressure needs a look (only pushes
    /// grow them), so most messages skip the scan over partitions.
    seal_headroom: usize,
    consumed: Consumed,
}

/// The per-message counters, registered once: a `counter!` call looks its series up in the
/// recorder's registry, which is too much for every message.
struct Consumed {
    records: metrics::Counter,
    bytes: metrics::Counter,
}

impl Consumed {
    fn register() -> Consumed {
        Consumed {
            records: metrics::counter!("ingest_records_consumed_total"),
            bytes: metrics::counter!("ingest_bytes_consumed_total"),
        }
    }
}

impl Loop {
    /// Buffers a Kafka message (see `on_record`).
    fn on_kafka_message(&mut self, m: &BorrowedMessage<'_>) -> bool {
        if m.topic() != self.config.topic {
            return false;
        }
        let mut headers = Vec::new();
        if let Some(h) = m.headers() {
            headers.extend(h.iter().map(|h| (h.key, h.value)));
        }
        let record = RecordRef {
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key(),
            value: m.payload(),
            headers: &headers,
        };
        self.on_record(m.partition(), &record)
    }

    /// Buffers an Event Hubs event: the sequence number is the offset, the partition key the
    /// key, application properties the headers.
    fn on_event(&mut self, e: &Event) -> bool {
        let headers: Vec<(&str, Option<&[u8]>)> = e
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
            .collect();
        let record = RecordRef {
            offset: e.sequence_number,
            timestamp_ms: e.enqueued_ms,
            key: e.partition_key.as_deref().map(str::as_bytes),
            value: e.body.as_deref(),
            headers: &headers,
        };
        self.on_record(e.partition, &record)
    }

    /// Buffers a record. Returns whether the loop must rescan partitions: a batch was sealed
    /// or opened (uploads, deadlines) or the buffer cap was reached.
    fn on_record(&mut self, partition: i32, record: &RecordRef<'_>) -> bool {
        if self.draining {
            return false;
        }
        let Some(owned) = self.partitions.get_mut(&partition) else {
            return false;
        };
        owned.next_offset = Some(record.offset + 1);
        let policy = &self.config.flush;
        let deadline = owned.state.deadline(policy);
        if owned.state.push(record, Instant::now(), now_ms(), policy) {
            self.buffered += record.size();
            self.seal_headroom = self.seal_headroom.saturating_sub(record.size());
        }
        self.consumed.records.increment(1);
        self.consumed.bytes.increment(record.size() as u64);
        owned.state.ready_to_upload()
            || owned.state.deadline(policy) != deadline
            || self.seal_headroom == 0
            || self.buffered >= self.config.max_buffer_bytes
    }

    fn on_caught_up(&self, partition: i32) {
        if let Some(owned) = self.partitions.get(&partition) {
            tracing::debug!(
                partition,
                next_offset = owned.next_offset,
                buffered_bytes = owned.state.bytes(),
                "caught up: reached the end of the partition"
            );
        }
    }

    fn on_rebalance(&mut self, event: RebalanceEvent) {
        match event {
            RebalanceEvent::Assigned(partitions) => {
                for p in &partitions {
                    self.next_epoch += 1;
                    self.partitions.insert(
                        *p,
                        Owned {
                            state: PartitionState::default(),
                            next_offset: None,
                            owner: CancellationToken::new(),
                            epoch: self.next_epoch,
                        },
                    );
                }
                tracing::info!(
                    ?partitions,
                    "partitions assigned; resuming from their committed offsets"
                );
            }
            RebalanceEvent::Revoked(partitions) => {
                for p in &partitions {
                    self.paused.remove(p);
                    if let Some(owned) = self.partitions.remove(p) {
                        owned.owner.cancel();
                        tracing::info!(partition = p, dropped_bytes = owned.state.bytes(),
                            "partition revoked; its unlanded records are dropped uncommitted for the new owner to re-read");
                    }
                }
                self.health.update(|f| {
                    for p in &partitions {
                        f.last_landed_ms.remove(p);
                    }
                });
            }
        }
        let owned = self.partitions.len();
        self.health.update(|f| f.assigned = owned);
        metrics::gauge!("ingest_assigned_partitions").set(owned as f64);
    }

    fn on_flushed(&mut self, joined: Joined) -> Result<(), Error> {
        let (partition, epoch, result) =
            joined.map_err(|e| Error::Internal(format!("flush task failed: {e}")))?;
        let outcome = result?;
        let Some(owned) = self
            .partitions
            .get_mut(&partition)
            .filter(|o| o.epoch == epoch)
        else {
            return Ok(()); // revoked meanwhile: the state it would update is gone
        };
        match outcome {
            Outcome::Landed { through } => owned.state.landed(through),
            Outcome::NeedMore {
                batch,
                through,
                landed,
            } => {
                if let Some(l) = landed {
                    owned.state.landed(l);
                }
                owned.state.need_more(batch, through);
            }
            Outcome::Revoked => {}
        }
        Ok(())
    }

    fn start_uploads(&mut self) {
        for (p, owned) in &mut self.partitions {
            if let Some(sealed) = owned.state.start_next() {
                let (flusher, owner, p, epoch) =
                    (self.flusher.clone(), owned.owner.clone(), *p, owned.epoch);
                self.tasks
                    .spawn(async move { (p, epoch, flusher.flush(p, sealed, owner).await) });
            }
        }
    }

    /// Keeps buffered bytes under the cap. From 3/4 of the cap, the largest batches that can
    /// upload at once are sealed until open batches hold less than that, so compression runs
    /// while fetching goes on; at the cap, fetching pauses (except for partitions completing a
    /// claim) until memory drops below 90 %. While paused, open batches hold under 3/4 (or
    /// nothing idle is left to seal), so flushes are in flight and the pause always ends.
    fn balance_memory(&mut self) {
        let cap = self.config.max_buffer_bytes;
        let low = cap / 10 * 9;
        let mut open: usize = self.partitions.values().map(|o| o.state.open_bytes()).sum();
        if open >= seal_mark(cap) && !self.draining {
            let mut idle: Vec<(usize, i32)> = self
                .partitions
                .iter()
                .filter_map(|(p, o)| o.state.idle_open_bytes().map(|b| (b, *p)))
                .collect();
            idle.sort_unstable_by(|a, b| b.cmp(a));
            for (bytes, p) in idle {
                if open < seal_mark(cap) {
                    break;
                }
                if let Some(owned) = self.partitions.get_mut(&p) {
                    owned.state.seal_open(FlushReason::MemoryPressure);
                }
                open -= bytes;
            }
            self.start_uploads();
        }
        // Look again when open batches could reach the mark (at least 1/64 of the cap later, so
        // a buffer full of in-flight batches is not rescanned for every message).
        self.seal_headroom = seal_mark(cap).saturating_sub(open).max(cap / 64);
        let total: usize = self.partitions.values().map(|o| o.state.bytes()).sum();
        self.buffered = total;
        metrics::gauge!("ingest_buffered_bytes").set(total as f64);
        let over = total >= cap || (!self.paused.is_empty() && total >= low);
        let wanted: BTreeSet<i32> = self
            .partitions
            .iter()
            .filter(|(_, o)| self.draining || (over && !o.state.completing_claim()))
            .map(|(p, _)| *p)
            .collect();
        if wanted != self.paused {
            let pause: Vec<i32> = wanted.difference(&self.paused).copied().collect();
            let resume: Vec<i32> = self.paused.difference(&wanted).copied().collect();
            self.source.set_paused(&pause, true);
            self.source.set_paused(&resume, false);
            if !self.draining {
                tracing::info!(
                    buffered_bytes = total,
                    cap,
                    ?pause,
                    ?resume,
                    "buffer cap: fetch paused/resumed"
                );
            }
            metrics::gauge!("ingest_paused_partitions").set(wanted.len() as f64);
            self.paused = wanted;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.partitions
            .values()
            .filter_map(|o| o.state.deadline(&self.config.flush))
            .min()
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for owned in self.partitions.values_mut() {
            owned.state.tick(now, &self.config.flush);
        }
    }

    fn begin_drain(&mut self) {
        self.draining = true;
        self.health.update(|f| f.draining = true);
        let buffered: usize = self.partitions.values().map(|o| o.state.bytes()).sum();
        tracing::info!(
            buffered_bytes = buffered,
            timeout_ms = self.config.shutdown_timeout.as_millis() as u64,
            "shutdown requested: fetching stopped, flushing every buffer"
        );
        for owned in self.partitions.values_mut() {
            owned.state.seal_open(FlushReason::Shutdown);
        }
    }

    /// Everything that can land has landed. A partition completing an earlier claim cannot
    /// finish without fetching; its records stay uncommitted for the next run.
    fn drained(&self) -> bool {
        self.tasks.is_empty()
            && self
                .partitions
                .values()
                .all(|o| o.state.is_drained() || o.state.completing_claim())
    }
}

/// Buffered bytes from which memory-pressure flushes start (before the cap pauses fetching).
fn seal_mark(cap: usize) -> usize {
    cap / 4 * 3
}

/// Re-checks storage every `interval` so readiness follows an outage even when no flush is
/// running; flushes update the same fact as they succeed or fail.
async fn watch_storage(
    storage: Storage,
    health: Arc<Health>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = storage.check() => r,
        };
        health.update(|f| f.storage_error = result.err());
    }
}
