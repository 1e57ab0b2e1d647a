//! The pipeline: starts every stage and runs the loop, one `select!` over shutdown, finished
//! flushes, the flush timer and the source's next rebalance, Kafka message or Event Hubs event
//! (taken in bursts of what is already queued). The loop's work is split by concern: intake and
//! bursts ([`intake`]), memory balance and fetch control ([`memory`]), starting flushes and
//! applying their outcomes ([`flushes`]), rebalances ([`rebalance`]) and the drain at shutdown
//! ([`drain`]).
//!
//! Invariants: a partition has at most one flush in flight (and at most `max_flushes` run);
//! buffered bytes across partitions stay under `INGEST_MAX_BUFFER_BYTES` (plus what librdkafka
//! already queued) by flushing early, leaving messages in the source's bounded queue at the cap,
//! and pausing fetch if that lasts; revoked partitions are forgotten at once; on shutdown
//! fetching stops, every buffer is flushed and committed, or the loop gives up at the timeout
//! having committed nothing that did not land.

mod decode;
mod drain;
mod flushes;
mod intake;
mod memory;
mod rebalance;
mod stalls;
mod start;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::batch::PartitionState;
use crate::clock::now_ms;
use crate::config::Config;
use crate::encode::transform::Transform;
use crate::encode::{Ahead, EncodeOptions};
use crate::error::Error;
use crate::land::naming::Namer;
use crate::land::{Flusher, Outcome};
use crate::ops::health::Health;
use crate::ops::progress::Progress;
use crate::ops::{http, watch as ops_watch};
use crate::source::{self, Control};
use crate::storage::Storage;
use intake::Consumed;
use memory::HOLD_MAX;

/// A configured pipeline, not yet running.
pub struct Pipeline {
    config: Config,
    progress: watch::Sender<Progress>,
    transform: Option<Transform>,
}

impl Pipeline {
    pub fn new(config: Config) -> Self {
        Pipeline {
            config,
            progress: watch::Sender::new(Progress::default()),
            transform: None,
        }
    }

    /// Sets (or clears) the per-topic transform applied by the encoder.
    pub fn with_transform(mut self, transform: Option<Transform>) -> Self {
        self.transform = transform;
        self
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
            let listener = http::bind(addr).await.map_err(Error::Endpoint)?;
            let bound = listener.local_addr().ok();
            if let Some(a) = bound {
                tracing::info!(addr = %a, "serving /healthz, /readyz and /metrics");
            }
            self.progress.send_modify(|p| p.http_addr = bound);
            tokio::spawn(http::serve(
                listener,
                Arc::clone(&health),
                crate::ops::metrics::recorder(),
                config.health_stall,
                background.clone(),
            ));
        }
        let mut storage = Storage::from_config(&config).map_err(Error::Storage)?;
        // A store or broker that cannot be reached at start may be an outage: wait for it
        // (not ready, the error on /readyz) instead of exiting into a crash loop whose growing
        // delay outlasts the outage. Settings and permissions stop the service.
        let mut waiting = StartWait::new(Arc::clone(&health), shutdown.clone());
        let caps = loop {
            match storage.probe().await {
                Ok(caps) => break caps,
                Err(e) if e.transient => {
                    if !waiting.wait("storage", &e.message).await {
                        return Ok(Progress::default());
                    }
                }
                Err(e) => return Err(Error::Storage(e.message)),
            }
        };
        tokio::spawn(ops_watch::storage(
            storage.clone(),
            Arc::clone(&health),
            config.storage_check_interval,
            background.clone(),
        ));
        let opened = loop {
            let attempt = tokio::select! {
                opened = source::open(&config, background.child_token()) => opened,
                _ = shutdown.cancelled() => {
                    tracing::info!("shutdown requested during start-up; nothing was consumed");
                    return Ok(Progress::default());
                }
            };
            match attempt {
                Ok(opened) => break opened,
                Err(Error::Unavailable(why)) => {
                    if !waiting.wait("the source", &why).await {
                        return Ok(Progress::default());
                    }
                }
                Err(e) => return Err(e),
            }
        };
        health.update(|f| f.start_error = None);
        let source::Opened {
            mut source,
            control,
            partitions: partition_count,
            label,
            cluster: opened_cluster,
        } = opened;
        // What `ingest_buffered_bytes` is held under: the cap less librdkafka's share.
        let cap = control.batch_budget(&config);
        metrics::gauge!("ingest_buffer_cap_bytes").set(cap as f64);
        // Freed chunks kept for the next batches: a quarter of the cap at most.
        crate::batch::pool::set_limit(cap / 4);
        health.update(|f| {
            f.started = true;
            f.heartbeat_ms = now_ms();
        });
        tracing::info!(topic = %config.topic, source = %label, storage = storage.label(),
            create_only = caps.create_only, multipart = caps.multipart,
            partitions = partition_count, "ingest started");
        for warning in crate::config::transport::plaintext_warnings(&config) {
            tracing::warn!("{warning}");
        }

        let registry = decode::registry(&config)?;
        let flusher = Arc::new(Flusher {
            storage,
            source: control.clone(),
            namer: Namer {
                topic: config.topic.clone(),
                dead_letter_prefix: config.dead_letter_prefix.clone(),
                compression: config.compression,
                format: config.format,
                time_source: config.time_source.clone(),
                layout: config.layout.clone(),
            },
            encode: EncodeOptions {
                topic: config.topic.clone(),
                envelope: config.envelope,
                compression: config.compression,
                invalid: config.invalid,
                max_record_bytes: config.max_record_bytes,
                transform: self.transform,
                format: config.format,
                registry: registry.clone(),
                table_columns: config.delta.map(|_| config.layout.columns().into()),
            },
            fault: config.fault,
            uploads: AtomicU64::new(0),
            encoded_bytes: AtomicUsize::new(0),
            progress: self.progress.clone(),
            health: Arc::clone(&health),
            schema: tokio::sync::Mutex::new(None),
            cluster: opened_cluster,
            commits: Default::default(),
        });
        let mut lp = Loop {
            cap,
            config,
            source: control.clone(),
            flusher,
            partitions: BTreeMap::new(),
            tasks: JoinSet::new(),
            starts: JoinSet::new(),
            fatal: None,
            last_started: -1,
            next_epoch: 0,
            paused: BTreeSet::new(),
            held_since: None,
            draining: false,
            buffered: 0,
            seal_headroom: 0,
            consumed: Consumed::register(),
            decoded_value: Vec::new(),
            decoded_key: Vec::new(),
            kept_at: None,
            keeping: None,
            tabling: None,
            health: Arc::clone(&health),
        };
        lp.tabling = table::tabling(&lp.config, &lp.flusher)?;
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
                Some(joined) = lp.starts.join_next(), if !lp.starts.is_empty() => lp.on_started(joined)?,
                _ = heartbeat.tick() => {
                    lp.health.update(|f| f.heartbeat_ms = now_ms());
                    lp.check_completions(Instant::now())?;
                    lp.warn_stalled(Instant::now());
                    lp.keep_commits(Instant::now());
                    lp.commit_table(Instant::now());
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
        lp.last_table_commit(drain_deadline.unwrap_or(far)).await;
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

/// How far a partition's start is ([`start`]).
enum Starting {
    /// Being read from the store: the partition is paused and its records are dropped.
    Deciding,
    /// Fetching from the chain's last record, which is compared before anything is taken.
    Verifying(crate::land::start::Verify),
    Started,
}

/// A partition this consumer owns. `epoch` tells a flush of an earlier ownership apart.
struct Owned {
    starting: Starting,
    /// Where the partition's next claim starts (the offset after its chain's last claim);
    /// `None` until the chain has one.
    chain_next: Option<i64>,
    /// What to commit once the start is trusted ([`crate::land::start::Start::After`]).
    start_commit: Option<(i64, i64)>,
    state: PartitionState<Ahead>,
    /// Offset after the last record received (for the caught-up log).
    next_offset: Option<i64>,
    /// The first record received in this ownership.
    first_offset: Option<i64>,
    /// Where a start that finds no chain seeks: set when the partition decides its start again
    /// within an ownership (the source went back), to the first record it dropped, which no
    /// file holds; otherwise the group's position.
    resume: Option<i64>,
    owner: CancellationToken,
    epoch: u64,
    /// Since when, and for which claim (first and last offset), the partition has been
    /// waiting for records to complete an earlier claim.
    completing: Option<Completing>,
    /// When this ownership began (its start is timed from it).
    assigned_at: Instant,
    /// When a wait of the partition was last reported ([`stalls`]).
    stall_warned_at: Option<Instant>,
}

/// A claim the partition waits to complete ([`flushes`] gives up after
/// `INGEST_CLAIM_COMPLETION_TIMEOUT_MS`).
struct Completing {
    since: Instant,
    first: i64,
    through: i64,
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
    /// Partitions' starts being decided ([`start`]).
    starts: JoinSet<start::Started>,
    /// An error found while taking records, returned once the burst ends.
    fatal: Option<Error>,
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
    /// The last value decoded through the schema registry (reused: [`decode`]).
    decoded_value: Vec<u8>,
    /// The last key decoded through the schema registry (reused: [`decode`]).
    decoded_key: Vec<u8>,
    /// The last check of the group's positions against this replica's commits, and its task
    /// ([`Loop::keep_commits`]).
    kept_at: Option<Instant>,
    keeping: Option<tokio::task::JoinHandle<()>>,
    /// `INGEST_FORMAT=delta`: the table and its commits ([`table`]).
    tabling: Option<table::Tabling>,
}

/// Waits between start-up attempts on a store or broker that cannot be reached yet: backoff
/// from 1 s doubling to 30 s, the reason on `/readyz` (liveness passes while starting).
struct StartWait {
    health: Arc<Health>,
    shutdown: CancellationToken,
    backoff: std::time::Duration,
}

impl StartWait {
    const FIRST: std::time::Duration = std::time::Duration::from_secs(1);
    const MOST: std::time::Duration = std::time::Duration::from_secs(30);

    fn new(health: Arc<Health>, shutdown: CancellationToken) -> StartWait {
        StartWait {
            health,
            shutdown,
            backoff: Self::FIRST,
        }
    }

    /// Waits before the next attempt on `what`; `false` when shutdown was requested meanwhile.
    async fn wait(&mut self, what: &str, why: &str) -> bool {
        tracing::warn!(
            retry_in_ms = self.backoff.as_millis() as u64,
            "start-up waits for {what}: {why}"
        );
        metrics::counter!("ingest_start_retries_total").increment(1);
        let reason = format!("{what}: {why}");
        self.health.update(|f| f.start_error = Some(reason));
        let waited = tokio::select! {
            _ = tokio::time::sleep(self.backoff) => true,
            _ = self.shutdown.cancelled() => {
                tracing::info!("shutdown requested during start-up; nothing was consumed");
                false
            }
        };
        self.backoff = (self.backoff * 2).min(Self::MOST);
        waited
    }
}
