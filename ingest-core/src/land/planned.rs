//! Landing a batch as several files (placed record by record, one per directory): planning them off the
//! runtime, encoding each, writing those not in storage yet, and completing such a claim.
//!
//! Invariant: a claim of several files is completed only when its records, placed with the
//! claim's own time settings and fallback time, make exactly the files it lists; every file
//! is written create-only, and the caller commits only after the last one.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::event_time::{self, Plan};
use super::flush::{Batch, Flusher};
use super::naming::Namer;
use super::recovery::{same_files, Claim};
use crate::encode::{EncodeOptions, Encoded};
use crate::error::Error;
use crate::storage::StorageError;

impl Flusher {
    /// Plans the files of `batch` placed by `namer` ([`event_time::plan`]) on a blocking
    /// thread (a batch is up to tens of MB to walk).
    pub(super) async fn plan(
        &self,
        batch: Batch,
        namer: Namer,
        fallback_ms: i64,
        max_files: usize,
    ) -> Result<(Batch, Plan), Error> {
        tokio::task::spawn_blocking(move || {
            let plan = event_time::plan(&batch, &namer, fallback_ms, max_files);
            (batch, plan)
        })
        .await
        .map_err(|e| Error::Internal(format!("planning task failed: {e}")))
    }

    /// Which of the claim's data files are in storage, in its order.
    pub(super) async fn present(&self, claim: &Claim) -> Result<Vec<bool>, StorageError> {
        let mut present = Vec::new();
        for data in claim.data_files() {
            present.push(self.landed_named(data).await?);
        }
        Ok(present)
    }

    /// Encodes every file of `claim` from `batch` (`file_of`: each record's file) and writes
    /// those not `present`. The inner `Some` is a data file found at its name although the claim
    /// is `fresh`; the inner error is storage failing (the flush retries).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn land_planned(
        &self,
        partition: i32,
        batch: Batch,
        claim: &Claim,
        opts: Option<EncodeOptions>,
        file_of: Arc<[u16]>,
        present: &[bool],
        fresh: bool,
    ) -> Result<(Batch, Result<Option<String>, StorageError>), Error> {
        let mut batch = batch;
        let mut encoded = Vec::with_capacity(claim.files.len());
        for file in 0..claim.files.len() {
            let pick = Some((Arc::clone(&file_of), file as u16));
            let (returned, e) = self.encode(partition, batch, opts.clone(), pick).await?;
            batch = returned;
            match e {
                Ok(e) => encoded.push(e),
                Err(err) => {
                    let held: usize = encoded.iter().map(Encoded::held_bytes).sum();
                    self.encoded_bytes.fetch_sub(held, Ordering::Relaxed);
                    return Ok((batch, Err(err)));
                }
            }
        }
        let written = self.write_planned(claim, encoded, present, fresh).await;
        Ok((batch, written))
    }

    /// Completes a claim of several files (found at `path`) from `head`, exactly its records:
    /// placed as the claim says, they must make the files it lists.
    pub(super) async fn complete_planned(
        &self,
        partition: i32,
        head: Batch,
        (path, claim): (&str, &Claim),
        opts: EncodeOptions,
        present: &[bool],
    ) -> Result<(Batch, Result<(), StorageError>), Error> {
        let corrupt = |reason: String| Error::CorruptClaim {
            path: path.to_string(),
            reason,
        };
        let Some(placed) = &claim.placed_by else {
            return Err(corrupt(
                "it lists several files but not how their records were placed (placed_by)".into(),
            ));
        };
        let (time_source, layout) = placed.settings().map_err(corrupt)?;
        let namer = Namer {
            time_source,
            layout,
            ..self.namer.clone()
        };
        let (head, plan) = self
            .plan(head, namer, claim.claimed_at_ms, usize::MAX)
            .await?;
        let planned: Vec<i64> = plan.files.iter().map(|f| f.first_offset).collect();
        same_files(claim, &planned).map_err(|e| corrupt(e.to_string()))?;
        let file_of: Arc<[u16]> = plan.file_of.into();
        let (head, written) = self
            .land_planned(partition, head, claim, Some(opts), file_of, present, false)
            .await?;
        Ok((head, written.map(|_| ())))
    }
}
