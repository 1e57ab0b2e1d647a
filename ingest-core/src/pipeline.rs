//! The pipeline loop: one `select!` over shutdown, finished flushes, the flush timer and the
//! source's next rebalance, Kafka message or Event Hubs event (taken in bursts of what is
//! already queued).
//!
//! Invariants: a partition has at most one flush in flight (and at most `max_flushes` run); buffered bytes across partitions
//! stay under `INGEST_MAX_BUFFER_BYTES` (plus what librdkafka already queued) by flushing early,
//! leaving messages in the source's bounded queue at the cap, and pausing fetch if that lasts;
//! revoked partitions are forgotten at once; on shutdown fetching stops, every
//! buffer is flushed and committed, or the loop gives up at the timeout having committed nothing
//! that did not land.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{BorrowedMessage, Headers, Message};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::ahead::Job;
use crate::batch::{FlushReason, RecordRef};
use crate::config::{Compression, Config, Envelope};
use crate::encode::EncodeOptions;
use crate::encode::Encoder;
use crate::error::Error;
use crate::eventhubs::source::Event;
use crate::flush::{now_ms, Flusher, Outcome};
use crate::health::Health;
use crate::naming::Namer;
use crate::ops;
use crate::partition::PartitionState;
use crate::progress::Progress;
use crate::source::{self, Control, Next, RebalanceEvent, Receiver};
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
            mut source,
            control,
            partitions: partition_count,
            label,
        } = opened;
        // What `ingest_buffered_bytes` is held under: the cap less librdkafka's share.
        let cap = control.batch_budget(&config);
        metrics::gauge!("ingest_buffer_cap_bytes").set(cap as f64);
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
            encoded_bytes: AtomicUsize::new(0),
            progress: self.progress.clone(),
            health: Arc::clone(&health),
        });
        let mut lp = Loop {
            cap,
            config,
            source: control.clone(),
            flusher,
            partitions: BTreeMap::new(),
            tasks: JoinSet::new(),
            last_started: -1,
            next_epoch: 0,
            paused: BTreeSet::new(),
            held_since: None,
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
        let mut receiver = source.receiver();
        // Whether partition-wide state may have changed since the last scan. Most messages only
        // append to an open batch; they skip the O(partitions) scan below.
        let mut attention = true;
        loop {
            if attention {
                lp.start_uploads();
                lp.balance_memory(Instant::now());
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
            let hold_until = lp.held_since.map(|t| t + HOLD_MAX);
            let mut taken = None;
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
                // Held at the cap for too long: balance_memory pauses partitions instead.
                _ = tokio::time::sleep_until(hold_until.map_or(far, tokio::time::Instant::from_std)), if hold_until.is_some() => {}
                next = receiver.next(), if lp.held_since.is_none() => taken = Some(next),
            }
            if let Some(first) = taken {
                attention = lp.take_burst(first, &mut receiver)?;
            }
        }
        let landed = self.progress.borrow().clone();
        tracing::info!(
            files = landed.files,
            records = landed.records,
            bytes = landed.bytes,
            dead_letters = landed.dead_letters,
            commit_failures = landed.commit_failures,
            "ingest stopped: every buffered record landed"
        );
        if landed.commit_failures > 0 {
            tracing::warn!(
                commit_failures = landed.commit_failures,
                "some commits failed; their files stay claimed and are skipped when re-read, so nothing lands twice"
            );
        }
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
    /// What batches and encoded files may hold ([`Control::batch_budget`]).
    cap: usize,
    health: Arc<Health>,
    config: Config,
    source: Control,
    flusher: Arc<Flusher>,
    partitions: BTreeMap<i32, Owned>,
    tasks: JoinSet<(i32, u64, Result<Outcome, Error>)>,
    /// The partition whose flush started last (flushes start in turn).
    last_started: i32,
    next_epoch: u64,
    paused: BTreeSet<i32>,
    /// Since when messages are left in librdkafka's (bounded) queue because the buffers are at
    /// the cap. Nothing is refetched when taking resumes, unlike after a pause.
    held_since: Option<Instant>,
    draining: bool,
    /// Memory held by batches across partitions: exact after `balance_memory`, plus what
    /// `on_message` added since.
    buffered: usize,
    /// Memory open batches may still grow by before memory pressure needs a look (only pushes
    /// grow them), so most messages skip the scan over partitions.
    seal_headroom: usize,
    consumed: Consumed,
}

/// The per-message counters, registered once: a `counter!` call looks its series up in the
/// recorder's registry, which is too much for every message. Incremented once per burst.
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

    fn add(&self, burst: &Burst) {
        self.records.increment(burst.records);
        self.bytes.increment(burst.bytes);
    }
}

/// Messages taken from the source's queue in one go: they share one clock reading.
struct Burst {
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

/// How long messages may wait in librdkafka's queue at the cap before partitions are paused
/// instead, so the consumer polls again (rebalances, group liveness).
const HOLD_MAX: Duration = Duration::from_secs(2);

/// Frozen chunks of an open batch worth a job compressing them ahead of its flush. Each job
/// primes the deflate window with the text before it, so the ratio does not suffer.
const AHEAD_BYTES: usize = 1024 * 1024;

/// Runs an encode-ahead job when an encoder is free (flushes and jobs take turns in order).
fn spawn_ahead(flusher: Arc<Flusher>, partition: i32, job: Job) {
    tokio::spawn(async move {
        let Ok(_permit) = crate::flush::encoders().acquire().await else {
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
    fn take_burst<'a>(
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
            if attention || burst.records >= BURST_MAX {
                break attention;
            }
            match receiver.next_now() {
                Some(n) => next = n,
                None => break false,
            }
        };
        self.consumed.add(&burst);
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
        let headers: &[(&str, Option<&[u8]>)] = match wanted.then(|| m.headers()).flatten() {
            Some(h) => {
                if h.count() <= INLINE_HEADERS {
                    for (slot, h) in inline.iter_mut().zip(h.iter()) {
                        *slot = (h.key, h.value);
                    }
                    &inline[..h.count()]
                } else {
                    spilled.extend(h.iter().map(|h| (h.key, h.value)));
                    &spilled
                }
            }
            _ => &[],
        };
        let record = RecordRef {
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key(),
            value: m.payload(),
            headers,
        };
        self.on_record(m.partition(), &record, burst)
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
        };
        self.on_record(e.partition, &record, burst)
    }

    /// Buffers a record. Returns whether the loop must rescan partitions: a batch was sealed
    /// or opened (uploads, deadlines) or the buffer cap was reached.
    fn on_record(&mut self, partition: i32, record: &RecordRef<'_>, burst: &mut Burst) -> bool {
        if self.draining {
            return false;
        }
        let Some(owned) = self.partitions.get_mut(&partition) else {
            return false;
        };
        owned.next_offset = Some(record.offset + 1);
        let policy = &self.config.flush;
        let deadline = owned.state.deadline(policy);
        let size = record.size();
        if let Some(grown) = owned.state.push(record, burst.now, burst.now_ms, policy) {
            self.buffered += grown;
            self.seal_headroom = self.seal_headroom.saturating_sub(grown);
            // A new chunk means the last one froze: maybe enough to compress ahead.
            if grown > 0 {
                if let Compression::Gzip { .. } = self.config.compression {
                    let opts = &self.flusher.encode;
                    let encoder = || Encoder::new(opts.compression, AHEAD_BYTES);
                    if let Some(job) = owned.state.ahead_job(AHEAD_BYTES, encoder) {
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

    fn on_caught_up(&self, partition: i32) {
        if let Some(owned) = self.partitions.get(&partition) {
            tracing::debug!(
                partition,
                next_offset = owned.next_offset,
                buffered_bytes = owned.state.held_bytes(),
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
                        tracing::info!(partition = p, dropped_bytes = owned.state.held_bytes(),
                            "partition revoked; its unlanded records are dropped uncommitted for the new owner to re-read");
                    }
                }
                self.health.update(|f| {
                    for p in &partitions {
                        f.last_landed_ms.remove(p);
                    }
                });
                // The new owner reports how long since it landed; a last value left here could
                // win its `max by (partition)` (the scrape only updates owned partitions).
                for p in &partitions {
                    metrics::gauge!("ingest_seconds_since_last_landed", "partition" => p.to_string())
                        .set(0.0);
                }
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

    /// Starts the flushes that can start, up to [`max_flushes`] at once, taking partitions in
    /// turn from where the last call stopped so none waits behind the others for long.
    fn start_uploads(&mut self) {
        let max = max_flushes();
        let after = self.last_started;
        let order: Vec<i32> = self
            .partitions
            .range((Bound::Excluded(after), Bound::Unbounded))
            .chain(self.partitions.range(..=after))
            .map(|(p, _)| *p)
            .collect();
        for p in order {
            if self.tasks.len() >= max {
                return;
            }
            let Some(owned) = self.partitions.get_mut(&p) else {
                continue;
            };
            if let Some(sealed) = owned.state.start_next() {
                let (flusher, owner, epoch) =
                    (self.flusher.clone(), owned.owner.clone(), owned.epoch);
                self.tasks
                    .spawn(async move { (p, epoch, flusher.flush(p, sealed, owner).await) });
                self.last_started = p;
            }
        }
    }

    /// Keeps buffered bytes under the cap. From 3/4 of the cap, the largest batches that can
    /// upload at once are sealed until open batches hold less than that, so compression runs
    /// while fetching goes on. At the cap, messages wait in librdkafka's bounded queue until
    /// memory drops below the cap; if that takes longer than [`HOLD_MAX`] (or a partition must
    /// keep fetching to complete a claim), fetching pauses instead (except for partitions
    /// completing a claim) until memory drops below 90 %. While held or paused, open batches hold
    /// under 3/4 (or nothing idle is left to seal), so flushes are in flight and it always ends.
    fn balance_memory(&mut self, now: Instant) {
        let cap = self.cap;
        let mut open: usize = self
            .partitions
            .values()
            .map(|o| o.state.open_held_bytes())
            .sum();
        if open >= seal_mark(cap) && !self.draining {
            let mut idle: Vec<(usize, i32)> = self
                .partitions
                .iter()
                .filter_map(|(p, o)| o.state.idle_held_bytes().map(|b| (b, *p)))
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
        let total: usize = self
            .partitions
            .values()
            .map(|o| o.state.held_bytes())
            .sum::<usize>()
            + self.flusher.encoded_bytes.load(Ordering::Relaxed);
        self.buffered = total;
        metrics::gauge!("ingest_buffered_bytes").set(total as f64);
        let fetch = FetchControl {
            buffered: total,
            cap,
            paused: !self.paused.is_empty(),
            completing_claim: self.partitions.values().any(|o| o.state.completing_claim()),
            held_since: self.held_since,
        }
        .decide(now);
        let pause = self.draining || fetch == Fetch::Pause;
        self.held_since = match fetch {
            Fetch::Hold { since } if !self.draining => Some(since),
            _ => None,
        };
        let wanted: BTreeSet<i32> = self
            .partitions
            .iter()
            .filter(|(_, o)| self.draining || (pause && !o.state.completing_claim()))
            .map(|(p, _)| *p)
            .collect();
        if wanted != self.paused {
            let pause: Vec<i32> = wanted.difference(&self.paused).copied().collect();
            let resume: Vec<(i32, Option<i64>)> = self
                .paused
                .difference(&wanted)
                .map(|p| (*p, self.partitions.get(p).and_then(|o| o.next_offset)))
                .collect();
            self.source.pause(&pause);
            self.source.resume(&resume);
            if !self.draining {
                tracing::info!(
                    buffered_bytes = total,
                    cap,
                    ?pause,
                    resume = ?resume.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
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
        let buffered: usize = self.partitions.values().map(|o| o.state.held_bytes()).sum();
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

/// What the loop does about fetching, given how full the buffers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// Take messages.
    Take,
    /// At the cap: leave messages in librdkafka's bounded queue, since `since`.
    Hold { since: Instant },
    /// Pause the partitions (all but those completing a claim) and keep polling.
    Pause,
}

/// The facts [`Fetch`] is decided from. Pure, so the thresholds are unit-tested.
struct FetchControl {
    buffered: usize,
    cap: usize,
    /// Partitions are paused now.
    paused: bool,
    /// A partition must keep fetching to complete an earlier claim (it cannot be held).
    completing_claim: bool,
    held_since: Option<Instant>,
}

impl FetchControl {
    /// At the cap, hold (nothing is dropped or refetched, unlike a pause) for up to
    /// [`HOLD_MAX`]; then pause, and resume below 90 % of the cap.
    fn decide(&self, now: Instant) -> Fetch {
        if self.paused {
            return if self.buffered >= self.cap / 10 * 9 {
                Fetch::Pause
            } else {
                Fetch::Take
            };
        }
        if self.buffered < self.cap {
            return Fetch::Take;
        }
        let since = self.held_since.unwrap_or(now);
        if self.completing_claim || now.duration_since(since) >= HOLD_MAX {
            Fetch::Pause
        } else {
            Fetch::Hold { since }
        }
    }
}

/// Flushes in flight at once (each partition has at most one): four per core, at least 16.
/// Uploads mostly wait on storage, but every local-disk write holds a blocking thread, and a
/// thread per partition at once (at shutdown, say) costs memory for nothing.
fn max_flushes() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (4 * cores).max(16)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn control(buffered: usize, paused: bool, held_since: Option<Instant>) -> FetchControl {
        FetchControl {
            buffered,
            cap: 1000,
            paused,
            completing_claim: false,
            held_since,
        }
    }

    #[test]
    fn at_the_cap_messages_wait_then_partitions_pause_and_resume_below_ninety_percent() {
        let t0 = Instant::now();
        assert_eq!(control(999, false, None).decide(t0), Fetch::Take);
        assert_eq!(
            control(1000, false, None).decide(t0),
            Fetch::Hold { since: t0 }
        );
        let later = t0 + HOLD_MAX / 2;
        assert_eq!(
            control(1200, false, Some(t0)).decide(later),
            Fetch::Hold { since: t0 },
            "a hold keeps its start"
        );
        assert_eq!(control(999, false, Some(t0)).decide(later), Fetch::Take);
        assert_eq!(
            control(1000, false, Some(t0)).decide(t0 + HOLD_MAX),
            Fetch::Pause,
            "held too long: pause, so the consumer polls again"
        );
        assert_eq!(control(950, true, None).decide(t0), Fetch::Pause);
        assert_eq!(control(899, true, None).decide(t0), Fetch::Take);
    }

    #[test]
    fn a_partition_completing_a_claim_pauses_the_others_at_once() {
        let t0 = Instant::now();
        let mut c = control(1000, false, None);
        c.completing_claim = true;
        assert_eq!(c.decide(t0), Fetch::Pause);
    }
}
