//! One flush: claim a sealed batch, encode it, upload its files create-only, then commit.
//!
//! Invariants ("How exactly-once works" in the book, docs/src/delivery.md): the claim is written before any file; the
//! commit of `last + 1` happens only after the data file is in storage, and never for a partition
//! this consumer no longer owns; an existing claim is always honoured (its file is skipped or
//! completed exactly as claimed); a storage outage pauses this partition with backoff and loses
//! nothing.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::event_time::MAX_FILES_PER_BATCH;
use super::met::Met;
use super::naming::Namer;
use super::recovery::{
    record_digest, Claim, ClaimedEncoding, ClaimedFile, ClaimedPlacement, Meeting,
};
use crate::batch::FlushReason;
use crate::clock::now_ms;
use crate::config::Fault;
use crate::encode::{Ahead, EncodeOptions};
use crate::error::Error;
use crate::ops::health::Health;
use crate::ops::progress::Progress;
use crate::source::Control;
use crate::storage::{Created, Storage, StorageError};

/// A batch on its way to storage, with what was encoded ahead while it filled.
pub type Batch = crate::batch::Batch<Ahead>;
/// A sealed batch on its way to storage.
pub type Sealed = crate::batch::Sealed<Ahead>;

/// What happened to a batch.
#[derive(Debug)]
pub enum Outcome {
    /// Offsets up to `through` are in landed files (ours or an earlier incarnation's).
    Landed { through: i64 },
    /// An earlier claim ends beyond this batch: give the records back and wait for more.
    /// `landed` is set when part of the batch was landed first.
    NeedMore {
        batch: Box<Batch>,
        through: i64,
        landed: Option<i64>,
    },
    /// The partition was revoked while the flush waited; nothing was committed.
    Revoked,
}

/// Shared by all flush tasks of a pipeline.
pub struct Flusher {
    pub storage: Storage,
    pub source: Control,
    pub namer: Namer,
    pub encode: EncodeOptions,
    pub fault: Fault,
    pub uploads: AtomicU64,
    /// Memory held by encoded files waiting for (or in) their upload; counted in the cap.
    pub encoded_bytes: AtomicUsize,
    pub progress: watch::Sender<Progress>,
    pub health: Arc<Health>,
    /// The topic's running Parquet schema as last read or published ([`super::schemas`]).
    pub schema: tokio::sync::Mutex<Option<super::schemas::Versioned>>,
    /// The Kafka cluster id records are read from, written into each claim.
    pub cluster: Option<String>,
    /// Per partition, the newest commit this process made: a commit never leaves the group's
    /// offset behind it ([`Flusher::commit`]).
    pub commits: std::sync::Mutex<super::publish::CommitOrder>,
}

/// Where a flush's batch stands in its partition's claim chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The offset the batch's claim starts at: the one after the chain's last claim (`None`: the
    /// partition has no chain yet, and the claim starts at the batch's first record).
    pub chain_next: Option<i64>,
}

enum Step {
    Done(Outcome),
    /// Storage failed; retry the whole flush after a pause (claims make retries idempotent).
    Retry(StorageError),
}

const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Flusher {
    /// Flushes `sealed` for `partition` at `position` in its claim chain, retrying through
    /// storage outages until it lands, the partition is revoked (`owner` cancelled), or a fatal
    /// error stops the service. A flush that fails after its partition was revoked reports it
    /// revoked: the new owner meets whatever it left.
    pub async fn flush(
        self: Arc<Self>,
        partition: i32,
        sealed: Sealed,
        owner: CancellationToken,
        position: Position,
    ) -> Result<Outcome, Error> {
        let span = tracing::info_span!(
            "flush",
            topic = %self.namer.topic,
            partition,
            first_offset = sealed.batch.first_offset(),
            last_offset = sealed.batch.last_offset(),
            records = sealed.batch.len(),
            bytes = sealed.batch.bytes(),
            reason = sealed.reason.as_str(),
        );
        metrics::counter!("ingest_flushes_total", "reason" => sealed.reason.as_str()).increment(1);
        let mut batch = sealed.batch;
        // Nothing more of a claim being completed will come: the consumer reached the
        // partition's end, or a record past the claim's end arrived (the claim's own last
        // records may be gone: compaction, retention). A batch cut short for any other reason
        // waits for more.
        let range_closed = matches!(sealed.reason, FlushReason::EndOfLog | FlushReason::Recovery);
        let mut backoff = BACKOFF_START;
        loop {
            let attempt = self
                .attempt(partition, batch, &owner, position, range_closed)
                .instrument(span.clone())
                .await;
            let (step, returned) = match attempt {
                Err(e) if owner.is_cancelled() => {
                    tracing::warn!(parent: &span, error = %e,
                        "the partition was revoked while its flush failed; its new owner meets what this flush left");
                    return Ok(Outcome::Revoked);
                }
                other => other?,
            };
            match step {
                Step::Done(outcome) => {
                    self.health.update(|f| f.storage_error = None);
                    return Ok(outcome);
                }
                // A refused permission or credential is a setting to change, not an outage to
                // wait out: one line saying what, and nothing past the last landed file
                // committed.
                Step::Retry(e) if e.is_refused() => {
                    return Err(Error::StorageRefused(e.refused_line()));
                }
                Step::Retry(e) => {
                    metrics::counter!("ingest_storage_errors_total").increment(1);
                    self.progress.send_modify(|p| p.storage_errors += 1);
                    self.health
                        .update(|f| f.storage_error = Some(crate::storage::one_line(&e)));
                    tracing::warn!(parent: &span, error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "storage unavailable; this partition waits and nothing is committed");
                    tokio::select! {
                        _ = owner.cancelled() => return Ok(Outcome::Revoked),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    batch = returned.expect("a retried attempt returns its batch");
                }
            }
        }
    }

    /// One pass of the protocol. Returns the batch back when the caller should retry.
    async fn attempt(
        &self,
        partition: i32,
        batch: Batch,
        owner: &CancellationToken,
        position: Position,
        range_closed: bool,
    ) -> Result<(Step, Option<Batch>), Error> {
        let mut batch = batch;
        // What the checkpoint of the batch's last record names besides its offset (Event Hubs).
        let cursor = batch.last_cursor().map(|(o, c)| (o, c.to_owned()));
        let cursor_at = |through: i64| {
            cursor
                .as_ref()
                .filter(|(o, _)| *o == through)
                .map(|(_, c)| c.as_str())
        };
        // The last claim landed (its first offset, named in the commit as the start's hint) and
        // the offset it landed through; the next claim starts after it.
        let mut landed: Option<(i64, i64)> = None;
        // On a storage error, hand back what is not landed yet; landed parts stay claimed.
        macro_rules! storage {
            ($e:expr, $batch:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Ok((Step::Retry(e), Some($batch))),
                }
            };
        }
        while let (Some(first), Some(last)) = (batch.first_offset(), batch.last_offset()) {
            // The claim starts where the chain left off, whatever the batch's first offset.
            let at = landed
                .map(|(_, through)| through + 1)
                .or(position.chain_next)
                .unwrap_or(first);
            let claimed_at_ms = now_ms();
            // Placed record by record (a time field, record fields in the path template), a
            // batch lands as one file per directory its records fall in, at most
            // MAX_FILES_PER_BATCH (the rest is the next claim's).
            let mut plan = None;
            if self.namer.per_record() {
                let namer = self.namer.clone();
                let (returned, p) = self
                    .plan(batch, namer, claimed_at_ms, MAX_FILES_PER_BATCH)
                    .await?;
                batch = returned;
                plan = Some(p);
            }
            let names = match plan.as_ref().and_then(|p| p.files.first()) {
                Some(f) => self.namer.batch_in(partition, at, &f.dir),
                None => self.namer.batch(
                    partition,
                    at,
                    batch.first_timestamp_ms(),
                    batch.opened_at_ms(),
                ),
            };
            let fallbacks = plan.as_ref().map(|p| p.fallbacks as u64);
            let several = plan.filter(|p| p.files.len() > 1 || p.through < last);
            let through = several.as_ref().map_or(last, |p| p.through);
            // The first file is named by the claim's start, the others by their first records.
            let files: Vec<ClaimedFile> = several.as_ref().map_or_else(Vec::new, |p| {
                p.files
                    .iter()
                    .enumerate()
                    .map(|(i, f)| ClaimedFile {
                        data: if i == 0 {
                            names.data.clone()
                        } else {
                            self.namer.data_file(partition, f.first_offset, &f.dir)
                        },
                        first_offset: f.first_offset,
                        records: f.records,
                    })
                    .collect()
            });
            let first_record = batch
                .records()
                .next()
                .map(|r| record_digest(&r))
                .unwrap_or_default();
            let placed_by = (!files.is_empty())
                .then(|| ClaimedPlacement::new(&self.namer.time_source, &self.namer.layout));
            let claim = Claim {
                version: if files.is_empty() {
                    Claim::ONE_FILE
                } else {
                    Claim::VERSION
                },
                topic: self.namer.topic.clone(),
                partition,
                first_offset: at,
                last_offset: through,
                data: names.data,
                dead_letters: names.dead_letters,
                claimed_at_ms,
                first_record: Some(first_record.clone()),
                first_record_offset: Some(first),
                last_record: digest_at(&batch, through),
                cluster: self.cluster.clone(),
                encoding: Some(ClaimedEncoding::new(&self.encoding())),
                files,
                placed_by,
            };
            let claim_json = Bytes::from(serde_json::to_vec(&claim).expect("claims serialise"));
            match storage!(self.storage.create(&names.claim, claim_json).await, batch) {
                Created::New => {
                    if let Some(n) = fallbacks {
                        metrics::counter!("ingest_time_fallbacks_total").increment(n);
                    }
                    if let Some(plan) = several {
                        let present = vec![false; claim.files.len()];
                        let (returned, written) = self
                            .land_planned(
                                partition,
                                batch,
                                &claim,
                                None,
                                plan.file_of.into(),
                                &present,
                                true,
                            )
                            .await?;
                        batch = returned;
                        if let Some(found) = storage!(written, batch) {
                            return Err(self.unclaimed_file(&names.claim, &found, owner).await);
                        }
                        landed = Some((at, through));
                        batch = batch.split_after(through).1;
                        continue;
                    }
                    // Finish the encoding only once the batch is ours to write (what went ahead
                    // while it filled is used as is): an earlier claim's batch is re-encoded from
                    // its records instead, and retries while storage is down encode nothing.
                    let (returned, encoded) = self.encode(partition, batch, None, None).await?;
                    batch = returned;
                    let encoded = storage!(encoded, batch);
                    let data = storage!(self.write_files(&claim, encoded).await, batch);
                    if data == Created::AlreadyExists {
                        return Err(self.unclaimed_file(&names.claim, &claim.data, owner).await);
                    }
                    landed = Some((at, last));
                    break;
                }
                Created::AlreadyExists => {
                    // A recreated topic, or another cluster, reuses offsets: its claims must not
                    // stand for ours, so the decision checks whose records the claim covers.
                    let meeting = Meeting {
                        first,
                        last,
                        first_record: &first_record,
                        range_closed,
                    };
                    match self
                        .meet(partition, batch, names.claim, at, meeting)
                        .await?
                    {
                        Met::After { through, rest } => {
                            landed = Some((at, through));
                            batch = rest;
                        }
                        Met::Retry(e, back) => return Ok((Step::Retry(e), Some(back))),
                        Met::NeedMore { through, batch } => {
                            if let Some((claim, l)) = landed {
                                self.commit(partition, (claim, l), cursor_at(l), owner)
                                    .await;
                            }
                            return Ok((
                                Step::Done(Outcome::NeedMore {
                                    batch: Box::new(batch),
                                    through,
                                    landed: landed.map(|(_, l)| l),
                                }),
                                None,
                            ));
                        }
                    }
                }
            }
        }
        let (claim, through) = landed.expect("a non-empty batch lands somewhere");
        self.commit(partition, (claim, through), cursor_at(through), owner)
            .await;
        Ok((Step::Done(Outcome::Landed { through }), None))
    }
}

/// The [`record_digest`] of the record at `offset` in `batch`, if it holds one: the last
/// record's is read from the last chunk; only a claim that ends inside its batch (several files
/// by field time) walks the batch.
fn digest_at(batch: &Batch, offset: i64) -> Option<String> {
    let found = match batch.last_record() {
        Some(last) if last.offset() == offset => Some(last),
        _ => batch.records().find(|r| r.offset() == offset),
    };
    found.map(|r| record_digest(&r))
}
