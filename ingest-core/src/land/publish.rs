//! Publishing a flush's result: the files written create-only (dead letters first, then the
//! data file) and the commit after them, retried through a rebalance while the partition is
//! owned.
//!
//! Invariant: a commit follows only a data file that is in storage; a file found at a name we
//! write is ours only when its bytes are the ones we wrote (a create retried after its first
//! attempt wrote it), and otherwise is reported, never overwritten or counted as ours.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::flush::Flusher;
use super::recovery::Claim;
use crate::clock::now_ms;
use crate::encode::Encoded;
use crate::error::Error;
use crate::storage::{Created, StorageError};

impl Flusher {
    /// A data file with other bytes than ours was found at the name of a claim we just made:
    /// it was there before its claim (claims deleted by a lifecycle rule, say), so what it holds
    /// is unknown. Nothing is skipped or committed past it. The claim, which does not describe
    /// that file, is removed again while the partition is ours, so a restart meets the same
    /// question instead of trusting it; a revoked owner leaves it to the new one.
    pub(super) async fn unclaimed_file(
        &self,
        claim: &str,
        data: &str,
        owner: &CancellationToken,
    ) -> Error {
        if !owner.is_cancelled() {
            if let Err(e) = self.storage.delete(claim).await {
                tracing::warn!(claim, error = %e, "could not remove the claim just made for a file it does not describe; remove it by hand");
            }
        }
        Error::UnclaimedFile {
            path: data.to_string(),
            claim: claim.to_string(),
        }
    }

    /// Writes the dead letters (if any), then the data file, both create-only. Tells whether
    /// the data file was new (the caller decides what an existing one means).
    pub(super) async fn write_files(
        &self,
        claim: &Claim,
        encoded: Encoded,
    ) -> Result<Created, StorageError> {
        let held = encoded.held_bytes();
        let result = self
            .upload(claim.partition, &claim.data, &claim.dead_letters, encoded)
            .await;
        self.encoded_bytes.fetch_sub(held, Ordering::Relaxed);
        result
    }

    /// Writes the files of a claim of several, encoded in its order: the dead letters of all
    /// of them (one file, the gzip members or lines one after the other), then each data file
    /// not `present` already. Returns the first data file found at its name when `fresh` (the
    /// claim was just made: such a file was there before its claim).
    pub(super) async fn write_planned(
        &self,
        claim: &Claim,
        encoded: Vec<Encoded>,
        present: &[bool],
        fresh: bool,
    ) -> Result<Option<String>, StorageError> {
        let held: usize = encoded.iter().map(Encoded::held_bytes).sum();
        let result = self.upload_planned(claim, encoded, present, fresh).await;
        self.encoded_bytes.fetch_sub(held, Ordering::Relaxed);
        result
    }

    async fn upload_planned(
        &self,
        claim: &Claim,
        mut encoded: Vec<Encoded>,
        present: &[bool],
        fresh: bool,
    ) -> Result<Option<String>, StorageError> {
        let dead: Vec<u8> = encoded
            .iter_mut()
            .filter_map(|e| e.dead_letters.take())
            .flatten()
            .collect();
        if !dead.is_empty() {
            self.create_named(&claim.dead_letters, Bytes::from(dead))
                .await?;
        }
        for ((file, encoded), present) in claim.files.iter().zip(encoded).zip(present) {
            if *present {
                continue;
            }
            let created = self
                .upload(claim.partition, &file.data, "", encoded)
                .await?;
            if fresh && created == Created::AlreadyExists {
                return Ok(Some(file.data.clone()));
            }
        }
        Ok(None)
    }

    /// Writes the dead letters (if any, at `dead_letters`), then the data file at `data`.
    async fn upload(
        &self,
        partition: i32,
        data: &str,
        dead_letters: &str,
        encoded: Encoded,
    ) -> Result<Created, StorageError> {
        if let Some(dead) = encoded.dead_letters {
            self.create_named(dead_letters, Bytes::from(dead)).await?;
        }
        let started = Instant::now();
        let size = encoded.data.len();
        let bytes = Bytes::from(encoded.data);
        // At its name, or at its refuge if the store refuses the name ([`super::refuge`]).
        let (mut created, at) = self.create_named(data, bytes.clone()).await?;
        if created == Created::AlreadyExists
            && self.storage.get(&at).await?.as_ref() == Some(&bytes)
        {
            // Our own bytes: a create the client retried after its first attempt had written
            // the object (a timeout, a 5xx from a proxy), or another owner writing the same
            // claim's records identically. Landed either way.
            tracing::info!(path = %at, "the file at our name holds exactly our bytes (a retried write): landed");
            created = Created::New;
        }
        metrics::histogram!("ingest_upload_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if created == Created::New {
            metrics::counter!("ingest_files_landed_total").increment(1);
            // Freshness gauges are derived from this at scrape time (`ops`).
            self.health.update(|f| {
                f.last_landed_ms.insert(partition, now_ms());
            });
            metrics::counter!("ingest_records_landed_total").increment(encoded.records as u64);
            metrics::counter!("ingest_bytes_landed_total").increment(size as u64);
            metrics::counter!("ingest_dead_letters_total").increment(encoded.dead_lettered as u64);
            metrics::counter!("ingest_records_skipped_total").increment(encoded.skipped as u64);
            metrics::counter!("ingest_records_filtered_total").increment(encoded.filtered as u64);
            tracing::info!(path = %at, records = encoded.records, bytes = size,
                uncompressed_bytes = encoded.uncompressed_bytes, dead_letters = encoded.dead_lettered, "landed");
            self.progress.send_modify(|p| {
                p.files += 1;
                p.records += encoded.records as u64;
                p.bytes += size as u64;
                p.uncompressed_bytes += encoded.uncompressed_bytes as u64;
                p.dead_letters += encoded.dead_lettered as u64;
                p.skipped += encoded.skipped as u64;
            });
        }
        let n = self.uploads.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fault.hang_after_uploads == Some(n) {
            eprintln!("FAULT: hanging before commit after upload {n} ({data})");
            std::future::pending::<()>().await;
        }
        Ok(created)
    }

    /// Commits through `through` unless the partition was revoked. A commit refused during a
    /// rebalance (the partition may well stay ours: cooperative rebalancing keeps most
    /// partitions where they are) is retried with backoff for a few seconds while the partition
    /// is owned; otherwise a quiet partition would keep showing the landed file as lag until
    /// its next file. A commit that still fails is not fatal: the file is landed and claimed,
    /// so whoever reads from the older position skips it.
    ///
    /// A partition's committed offset never goes back for good: a commit older than one already
    /// made is dropped, and one that went through after a newer one (the commit of a start's
    /// chain end, retried through a rebalance while the files after it were committed) makes
    /// the newest again. Commits never wait for each other: a commit can block for as long as
    /// the group coordinator takes.
    pub(crate) async fn commit(
        &self,
        partition: i32,
        (claim, through): (i64, i64),
        cursor: Option<&str>,
        owner: &CancellationToken,
    ) {
        let newest = |commits: &CommitOrder| commits.get(&partition).cloned();
        let mut next = Some(Committed {
            claim,
            through,
            cursor: cursor.map(str::to_owned),
        });
        while let Some(this) = next.take() {
            {
                let commits = self.commits.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(done) = newest(&commits).filter(|d| d.through > this.through) {
                    tracing::debug!(
                        partition,
                        through = this.through,
                        committed = done.through,
                        "a later commit already went through; this one is dropped"
                    );
                    return;
                }
            }
            if !self.commit_once(partition, &this, owner).await {
                return;
            }
            let mut commits = self.commits.lock().unwrap_or_else(|e| e.into_inner());
            match newest(&commits) {
                // A newer commit went through while this one was under way: this one may have
                // replaced it at the broker, so it is made again.
                Some(done) if done.through > this.through => next = Some(done),
                _ => {
                    commits.insert(partition, this);
                }
            }
        }
    }

    /// Makes each of `owned`'s newest commit again where the group's position is behind it: a
    /// commit another member queued before a rebalance can go through after ours (a broker
    /// that does not check the group's generation takes it), and a quiet partition would then
    /// show lag for good.
    pub(crate) async fn keep_commits(&self, owned: Vec<(i32, CancellationToken)>) {
        let newest: Vec<(i32, Committed, CancellationToken)> = {
            let commits = self.commits.lock().unwrap_or_else(|e| e.into_inner());
            owned
                .into_iter()
                .filter_map(|(p, owner)| commits.get(&p).cloned().map(|c| (p, c, owner)))
                .collect()
        };
        if newest.is_empty() {
            return;
        }
        let ids: Vec<i32> = newest.iter().map(|(p, ..)| *p).collect();
        let group = match self.source.committed_through(&ids).await {
            Ok(group) => group,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the group's positions; checked again later");
                return;
            }
        };
        for (p, c, owner) in newest {
            if group.get(&p).is_none_or(|g| *g < c.through) {
                tracing::info!(partition = p, through = c.through, group = ?group.get(&p),
                    "the group's position is behind this replica's newest commit; committing it again");
                self.commit(p, (c.claim, c.through), c.cursor.as_deref(), &owner)
                    .await;
            }
        }
    }

    /// One commit, retried while refused and owned; whether it went through.
    async fn commit_once(
        &self,
        partition: i32,
        this: &Committed,
        owner: &CancellationToken,
    ) -> bool {
        let (claim, through) = (this.claim, this.through);
        let mut backoff = COMMIT_RETRY_START;
        for attempt in 1..=COMMIT_ATTEMPTS {
            if owner.is_cancelled() {
                tracing::info!(
                    partition,
                    through,
                    "partition revoked before commit; the next owner skips the landed file"
                );
                return false;
            }
            match self
                .source
                .commit(partition, (claim, through), this.cursor.as_deref())
                .await
            {
                Ok(()) => {
                    let position = self.source.committed_position(through);
                    tracing::debug!(partition, through, position, attempt, "committed");
                    metrics::gauge!("ingest_committed_offset", "partition" => partition.to_string())
                        .set(position as f64);
                    self.progress.send_modify(|p| {
                        p.committed.insert(partition, position);
                    });
                    return true;
                }
                Err(e) if attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(partition, through, attempt, error = %e, "commit refused; retrying");
                    tokio::select! {
                        _ = owner.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff *= 2;
                }
                Err(e) => {
                    metrics::counter!("ingest_commit_failures_total").increment(1);
                    self.progress.send_modify(|p| p.commit_failures += 1);
                    tracing::warn!(partition, through, error = %e, "commit failed; the landed file stays claimed and will be skipped on re-read");
                }
            }
        }
        false
    }
}

/// A commit made (or to make): what it names besides the offset.
#[derive(Debug, Clone)]
pub struct Committed {
    claim: i64,
    through: i64,
    cursor: Option<String>,
}

/// Per partition, the newest commit this process made ([`Flusher::commit`]).
pub type CommitOrder = std::collections::HashMap<i32, Committed>;

/// Commit attempts for one landed file, and the first wait between them (doubling: about 4 s
/// in all, longer than a cooperative rebalance usually takes).
const COMMIT_ATTEMPTS: u32 = 5;
const COMMIT_RETRY_START: Duration = Duration::from_millis(250);
