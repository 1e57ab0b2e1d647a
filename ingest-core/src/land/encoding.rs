//! Encoding a flush's batch: NDJSON continuing what was encoded ahead while the batch filled,
//! or Parquet against the topic's running schema, whose next version is published first when
//! the file adds a field ([`super::schemas`]). One encode per core at a time.

use std::sync::atomic::Ordering;

use super::claimed::Encoding;
use super::flush::{Batch, Flusher};
use crate::config::Format;
use crate::encode::{ahead, EncodeOptions, Encoded, Encoder};
use crate::error::Error;
use crate::storage::StorageError;

impl Flusher {
    /// How this service encodes files now (what a new claim records).
    pub(super) fn encoding(&self) -> Encoding {
        encoding_of(&self.encode)
    }

    /// Encodes `batch` with `opts` (default: the service's), continuing what was encoded ahead
    /// while it filled when that used the same options. A Parquet file that adds columns to the
    /// topic's running schema publishes the new version first ([`super::schemas`]); the inner
    /// error is storage failing meanwhile (the flush retries).
    ///
    /// `pick`: encode only the records of one planned file (those whose entry in the plan's
    /// `file_of` is the file's index; [`super::event_time`]), else all of them.
    pub(super) async fn encode(
        &self,
        partition: i32,
        batch: Batch,
        opts: Option<EncodeOptions>,
        pick: Option<Pick>,
    ) -> Result<(Batch, Result<Encoded, StorageError>), Error> {
        let same = opts
            .as_ref()
            .is_none_or(|o| encoding_of(o) == self.encoding());
        let opts = opts.unwrap_or_else(|| self.encode.clone());
        let Format::Parquet(settings) = opts.format else {
            let (batch, encoded) = self
                .encode_with(batch, move |batch| {
                    if let Some(pick) = &pick {
                        let mut encoder = Encoder::new(opts.compression, batch.bytes() / 2);
                        return encoder
                            .encode(picked(batch, pick), partition, &opts, true)
                            .map(|()| encoder.finish(opts.compression));
                    }
                    // Continue what was encoded ahead while the batch filled, if anything was.
                    let ahead = if same { ahead::take(batch) } else { None };
                    let (mut encoder, done) = ahead.unwrap_or_else(|| {
                        let guess = batch.bytes() + batch.len() * 8;
                        (Encoder::new(opts.compression, guess), 0)
                    });
                    encoder
                        .encode(batch.records_after(done), partition, &opts, true)
                        .map(|()| encoder.finish(opts.compression))
                })
                .await?;
            return Ok((batch, Ok(encoded)));
        };
        let mut reload = false;
        let mut batch = batch;
        loop {
            let running = match self.running_schema(reload).await {
                Ok(r) => r,
                Err(e) => return Ok((batch, Err(e))),
            };
            let (opts, columns, pick) = (opts.clone(), running.columns.clone(), pick.clone());
            // The Parquet writer holds about a batch's worth while it encodes (row groups,
            // dictionaries, the file), and leaves as much again in the heap's free lists
            // (arrays and pages of many sizes): counted in the cap at twice the batch
            // meanwhile, so fetching holds. 7-10 MB less peak RSS over a backlog at the default
            // cap (bench/RESULTS.md, 2026-12-07).
            let writing = 2 * batch.bytes();
            self.encoded_bytes.fetch_add(writing, Ordering::Relaxed);
            let result = self
                .encode_with(batch, move |batch| match &pick {
                    Some(pick) => crate::encode::parquet::encode_records(
                        || picked(batch, pick),
                        partition,
                        &opts,
                        &settings,
                        &columns,
                    ),
                    None => {
                        crate::encode::parquet::encode(batch, partition, &opts, &settings, &columns)
                    }
                })
                .await;
            self.encoded_bytes.fetch_sub(writing, Ordering::Relaxed);
            let (returned, encoded) = result?;
            batch = returned;
            let new = encoded
                .columns
                .as_ref()
                .filter(|c| c.adds_to(&running.columns));
            let Some(new) = new else {
                return Ok((batch, Ok(encoded)));
            };
            let published = self.publish_schema(&running, new).await;
            if let Ok(true) = published {
                return Ok((batch, Ok(encoded)));
            }
            // This file is not landing: what it holds is no longer held.
            self.encoded_bytes
                .fetch_sub(encoded.held_bytes(), Ordering::Relaxed);
            match published {
                // Another replica added a version first: encode against it instead.
                Ok(_) => reload = true,
                Err(e) => return Ok((batch, Err(e))),
            }
        }
    }

    /// Runs `encode` on a blocking thread, one per core at a time, and counts what the
    /// encoded files hold.
    async fn encode_with(
        &self,
        batch: Batch,
        encode: impl FnOnce(&Batch) -> Result<Encoded, crate::encode::InvalidRecord> + Send + 'static,
    ) -> Result<(Batch, Encoded), Error> {
        // One encode per core at a time: more would add threads and memory (an encoder and its
        // output each), not speed. Waiting batches are already counted in the buffer cap.
        let _permit = encoders()
            .acquire()
            .await
            .map_err(|e| Error::Internal(format!("encoder pool closed: {e}")))?;
        let (batch, encoded) = tokio::task::spawn_blocking(move || {
            let encoded = encode(&batch);
            (batch, encoded)
        })
        .await
        .map_err(|e| Error::Internal(format!("encoder task failed: {e}")))?;
        let encoded = encoded?;
        self.encoded_bytes
            .fetch_add(encoded.held_bytes(), Ordering::Relaxed);
        Ok((batch, encoded))
    }
}

/// One planned file of a batch: the plan's `file_of` and the file's index in it.
pub(super) type Pick = (std::sync::Arc<[u16]>, u16);

/// The records of `batch` in the planned file `pick` names.
fn picked<'a>(
    batch: &'a Batch,
    (file_of, file): &'a Pick,
) -> impl Iterator<Item = crate::batch::StoredRecord<'a>> + 'a {
    batch
        .records()
        .zip(file_of.iter())
        .filter(move |(_, f)| *f == file)
        .map(|(r, _)| r)
}

fn encoding_of(o: &EncodeOptions) -> Encoding {
    Encoding {
        envelope: o.envelope,
        compression: o.compression,
        format: o.format,
    }
}

/// Encoding jobs at once: one per core (flushes and encoding ahead alike, first come first
/// served).
pub fn encoders() -> &'static tokio::sync::Semaphore {
    static ENCODERS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    ENCODERS.get_or_init(|| tokio::sync::Semaphore::new(crate::cores::available()))
}
