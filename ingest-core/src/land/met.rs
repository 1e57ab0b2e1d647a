//! A flush whose claim name is taken: another incarnation (a crashed owner, a zombie, this
//! service before a restart) claimed the range first. The claim is read and honoured as the
//! pure decision ([`super::recovery::decide`]) says: its range is skipped (landed, or gone from
//! the log), completed exactly as claimed, or waited for.
//!
//! Invariant: nothing here writes anything but the files the existing claim names.

use super::flush::{Batch, Flusher};
use super::recovery::{decide, Claim, ClaimMismatch, Meeting, Recovery};
use crate::encode::EncodeOptions;
use crate::error::Error;
use crate::storage::StorageError;

/// What the batch does at an existing claim.
pub(super) enum Met {
    /// The claim's range is landed, completed now, or gone: go on after `through` with `rest`.
    After { through: i64, rest: Batch },
    /// Storage failed: the flush retries with the batch handed back.
    Retry(StorageError, Batch),
    /// The claim ends past what is buffered: the batch waits for more records.
    NeedMore { through: i64, batch: Batch },
}

impl Flusher {
    /// Honours the claim at `path`, which the batch met at chain position `at`.
    pub(super) async fn meet(
        &self,
        partition: i32,
        batch: Batch,
        path: String,
        at: i64,
        meeting: Meeting<'_>,
    ) -> Result<Met, Error> {
        let existing = match self.read_claim(&path).await? {
            Ok(Some(existing)) => existing,
            Ok(None) => {
                return Err(Error::CorruptClaim {
                    path,
                    reason: "it vanished while being read".into(),
                })
            }
            Err(e) => return Ok(Met::Retry(e, batch)),
        };
        let present = match self.present(&existing).await {
            Ok(present) => present,
            Err(e) => return Ok(Met::Retry(e, batch)),
        };
        let data_exists = present.iter().all(|p| *p);
        let topic = &self.namer.topic;
        let decision =
            decide(topic, partition, at, meeting, &existing, data_exists).map_err(|e| match e {
                ClaimMismatch::OtherRecords { .. } => Error::ForeignClaim {
                    path: path.clone(),
                    topic: topic.clone(),
                    partition,
                    offset: meeting.first,
                    reason: e.to_string(),
                },
                _ => Error::CorruptClaim {
                    path: path.clone(),
                    reason: e.to_string(),
                },
            })?;
        tracing::info!(claim = %path, ?decision, "batch starts at an existing claim");
        metrics::counter!("ingest_recoveries_total").increment(1);
        match decision {
            Recovery::AlreadyLanded { through } => Ok(Met::After {
                through,
                rest: batch.split_after(through).1,
            }),
            Recovery::Gone { through } => {
                tracing::warn!(claim = %path, through,
                    "the claim's file never landed and the log no longer holds its records (retention): they are gone; the partition continues after it");
                metrics::counter!("ingest_offsets_gone_total")
                    .increment((through + 1 - at).max(0) as u64);
                Ok(Met::After {
                    through,
                    rest: batch.split_after(through).1,
                })
            }
            Recovery::Complete { through } => {
                let (head, tail) = batch.split_after(through);
                // As claimed, whatever the settings are now: the name says it.
                let claimed = existing.encoding_or(&self.encoding());
                let claimed = EncodeOptions {
                    envelope: claimed.envelope,
                    compression: claimed.compression,
                    format: claimed.format,
                    ..self.encode.clone()
                };
                let (mut head, written) = if existing.files.is_empty() {
                    let (head, encoded) = self.encode(partition, head, Some(claimed), None).await?;
                    let written = match encoded {
                        Ok(encoded) => self.write_files(&existing, encoded).await.map(|_| ()),
                        Err(e) => Err(e),
                    };
                    (head, written)
                } else {
                    let claim = (path.as_str(), &existing);
                    self.complete_planned(partition, head, claim, claimed, &present)
                        .await?
                };
                match written {
                    Ok(()) => Ok(Met::After {
                        through,
                        rest: tail,
                    }),
                    Err(e) => {
                        head.append(&tail);
                        Ok(Met::Retry(e, head))
                    }
                }
            }
            Recovery::NeedMore { through } => Ok(Met::NeedMore { through, batch }),
        }
    }

    /// Reads and parses the claim at `path` (`None`: not there). The inner error is storage
    /// failing (the flush retries); an unreadable claim stops the service.
    pub(super) async fn read_claim(
        &self,
        path: &str,
    ) -> Result<Result<Option<Claim>, StorageError>, Error> {
        let bytes = match self.storage.get(path).await {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Ok(None)),
            Err(e) => return Ok(Err(e)),
        };
        let claim = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptClaim {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Ok(Some(claim)))
    }
}
