//! Reading a partition's claim chain from the store: its last claim, found from the group's
//! committed hint (a GET of the claim it names and one of the name after its end: no listing on
//! a normal restart) or, without a usable hint, by listing the partition's claims back from its
//! high watermark. What the chain means for the start is [`super::start`]'s to decide.
//!
//! Invariant: nothing here writes; a store that refuses the listing stops the service with the
//! permission to grant, never a silent stall.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::flush::Flusher;
use super::naming::{claim_path, claims_dir};
use super::recovery::Claim;
use super::search::{claim_first_offset, greatest_before, search_from};
use super::start::{decide_start, Found, Last, Partition, Refused, Start};
use crate::error::Error;
use crate::storage::StorageError;

const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How long a chain that ends past the partition's high watermark is read again before the
/// start is refused: a broker may answer a watermark older than the records it already served
/// (tansu does, by a produce batch, under load); a recreated topic stays behind for good.
const BEYOND_HIGH_PATIENCE: Duration = Duration::from_secs(10);

/// What reading a partition's chain decided.
enum Decided {
    Start(Start),
    /// The chain cannot be this partition's (or not yet: [`BEYOND_HIGH_PATIENCE`]).
    Refused(Refused),
    /// Storage failed; the start retries.
    Storage(StorageError),
}

/// A claim read from the store, with its path.
type Read = Result<Result<Option<(String, Claim)>, StorageError>, Error>;

impl Flusher {
    /// Where `partition` starts, retrying through broker and storage outages with backoff (the
    /// error on `/readyz`) until it is decided, the partition is revoked (`None`), or the chain
    /// cannot be this partition's.
    pub async fn start(
        self: Arc<Self>,
        partition: i32,
        owner: CancellationToken,
    ) -> Result<Option<Start>, Error> {
        // A record of the partition needs a schema not read yet (`crate::pipeline`'s decode):
        // read it first, waiting out a registry that is down; nothing is taken meanwhile.
        if let Some(registry) = self.encode.registry.as_ref().filter(|r| r.wants()) {
            registry.fetch_wanted(&self.health, &owner).await?;
            if owner.is_cancelled() {
                return Ok(None);
            }
        }
        let mut backoff = BACKOFF_START;
        let mut beyond_high_since = None;
        loop {
            let failed = match self
                .source
                .partition_facts(partition, self.cluster.clone())
                .await
            {
                Err(e) => e,
                Ok(facts) => match self.find_start(partition, &facts).await? {
                    Decided::Refused(refused @ Refused::BeyondHigh { .. })
                        if beyond_high_since
                            .get_or_insert_with(std::time::Instant::now)
                            .elapsed()
                            < BEYOND_HIGH_PATIENCE =>
                    {
                        format!("{refused} (the broker's watermark may lag what it served; read again for up to {} s before the start is refused)", BEYOND_HIGH_PATIENCE.as_secs())
                    }
                    Decided::Refused(refused) => {
                        return Err(Error::ChainRefused {
                            topic: self.namer.topic.clone(),
                            partition,
                            reason: refused.to_string(),
                        })
                    }
                    Decided::Start(start) => {
                        self.health.update(|f| f.storage_error = None);
                        tracing::debug!(partition, ?facts, ?start, "start decided");
                        return Ok(Some(start));
                    }
                    Decided::Storage(e) if e.is_refused() => {
                        return Err(Error::StorageRefused(format!(
                            "{} {} in {} was refused (no permission or bad credentials): reading where partition {partition} starts needs read access to {}/; grant it and restart",
                            e.op,
                            e.path,
                            e.store,
                            crate::storage::STATE_PREFIX
                        )));
                    }
                    Decided::Storage(e) => {
                        metrics::counter!("ingest_storage_errors_total").increment(1);
                        let line = crate::storage::one_line(&e);
                        self.health.update(|f| f.storage_error = Some(line.clone()));
                        line
                    }
                },
            };
            tracing::warn!(partition, error = %failed, retry_in_ms = backoff.as_millis() as u64,
                "cannot read where the partition starts yet; it waits, and nothing is consumed");
            tokio::select! {
                _ = owner.cancelled() => return Ok(None),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Where `partition` starts, given what the source says of it; the error stops the service
    /// (a claim that cannot be read as one).
    async fn find_start(&self, partition: i32, source: &Partition) -> Result<Decided, Error> {
        let found = match self.chain_end(partition, source).await? {
            Ok(found) => found,
            Err(e) => return Ok(Decided::Storage(e)),
        };
        let topic = &self.namer.topic;
        Ok(
            match decide_start(topic, partition, source, &found, |f| {
                claim_path(topic, partition, f)
            }) {
                Ok(start) => Decided::Start(start),
                Err(refused) => Decided::Refused(refused),
            },
        )
    }

    async fn chain_end(
        &self,
        partition: i32,
        source: &Partition,
    ) -> Result<Result<Found, StorageError>, Error> {
        macro_rules! storage {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                }
            };
        }
        let topic = &self.namer.topic;
        let mut last = None;
        if let Some((next, first)) = source.hint.and_then(|h| h.claim.map(|c| (h.next, c))) {
            let named = storage!(self.claim_at(claim_path(topic, partition, first)).await?);
            last = named.filter(|(_, c)| c.last_offset + 1 == next);
        }
        if last.is_none() {
            let (beyond_high, greatest) = storage!(self.list_chain(partition, source.high).await?);
            if let Some(path) = beyond_high {
                // The greatest claim past the partition's end, read for the error's sake.
                let read = storage!(self.claim_at(path.clone()).await?);
                let end = read.map_or(source.high, |(_, c)| c.last_offset);
                return Ok(Ok(Found {
                    last: None,
                    beyond_high: Some((path, end)),
                }));
            }
            if let Some(path) = greatest {
                last = storage!(self.claim_at(path).await?);
            }
        }
        let Some((mut path, mut claim)) = last else {
            return Ok(Ok(Found::default()));
        };
        // Claims made after the last commit (a crash between landing and committing, or a
        // commit refused): each starts at the offset after the one before.
        while let Some((p, c)) = storage!(
            self.claim_at(claim_path(topic, partition, claim.last_offset + 1))
                .await?
        ) {
            if c.last_offset < c.first_offset {
                break; // check_claim refuses it with its reason
            }
            tracing::info!(partition, claim = %p, through = c.last_offset,
                "a claim past the group's committed offset (a crash or a refused commit after it was made): the chain goes on through it");
            (path, claim) = (p, c);
        }
        let committed_past = source.hint.is_some_and(|h| h.next > claim.last_offset);
        let files_present = committed_past || {
            self.progress
                .send_modify(|p| p.chain_reads += claim.data_files().len() as u64);
            storage!(self.present(&claim).await).iter().all(|p| *p)
        };
        Ok(Ok(Found {
            last: Some(Last {
                path,
                claim,
                files_present,
            }),
            beyond_high: None,
        }))
    }

    async fn claim_at(&self, path: String) -> Read {
        self.progress.send_modify(|p| p.chain_reads += 1);
        Ok(self
            .read_claim(&path)
            .await?
            .map(|c| c.map(|claim| (path, claim))))
    }

    /// Lists the partition's claims: any named at or past `high` (a chain this log cannot have
    /// written), else the greatest before it, searching back in widening windows on stores that
    /// list in order (one full listing on local disk). A refused listing stops the service.
    async fn list_chain(
        &self,
        partition: i32,
        high: i64,
    ) -> Result<Result<(Option<String>, Option<String>), StorageError>, Error> {
        let topic = &self.namer.topic;
        let dir = claims_dir(topic, partition);
        let end = format!("{dir}~");
        let count = |n: u64| {
            metrics::counter!("ingest_chain_listings_total").increment(n);
            self.progress.send_modify(|p| p.chain_listings += n);
        };
        count(1);
        let from_high = (high > 0).then(|| claim_path(topic, partition, high - 1));
        let listed = self
            .storage
            .names_between(&dir, from_high.as_deref(), &end)
            .await;
        let names = match listed {
            Ok(names) => names,
            Err(e) => return refused_listing(e, &dir),
        };
        if let Some(name) = names
            .into_iter()
            .filter(|n| claim_first_offset(n).is_some())
            .max()
        {
            return Ok(Ok((Some(name), None)));
        }
        let until = claim_path(topic, partition, high);
        let in_order = self.storage.lists_in_order();
        for from in search_from(high).filter(|f| in_order || f.is_none()) {
            // Listings start after a name: the one just before `from` includes a claim at it.
            let after = from.map(|f| claim_path(topic, partition, f - 1));
            count(1);
            let names = match self
                .storage
                .names_between(&dir, after.as_deref(), &until)
                .await
            {
                Ok(names) => names,
                Err(e) => return refused_listing(e, &dir),
            };
            if let Some((_, name)) = greatest_before(names.iter().map(String::as_str), high) {
                return Ok(Ok((None, Some(name.to_string()))));
            }
        }
        Ok(Ok((None, None)))
    }
}

/// A listing that failed: permission errors stop the service with what to grant; anything
/// else is storage failing, retried.
fn refused_listing<T>(e: StorageError, dir: &str) -> Result<Result<T, StorageError>, Error> {
    match e.is_refused() {
        true => Err(Error::StorageRefused(format!(
            "listing {dir} in {} was refused (no permission): a partition whose committed offset names no claim (a new consumer group, expired offsets, an upgrade) is found by listing its claims; grant list permission on the {} prefix (S3: s3:ListBucket; Azure: Storage Blob Data Reader, or a SAS with 'l') and restart",
            e.store,
            crate::storage::STATE_PREFIX
        ))),
        false => Ok(Err(e)),
    }
}
