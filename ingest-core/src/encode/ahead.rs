//! Encoding ahead: an open batch's full chunks are encoded and compressed while the batch keeps
//! filling, so compression overlaps fetching and a flush only encodes the rest.
//!
//! Pure (std threads only). Invariants: at most one job works on a batch at a time, in chunk
//! order; the flush takes the encoder exactly once, waiting only for a job that is running
//! (which needs nothing but CPU, so the wait ends); a job that has not started when the flush
//! comes, or that fails (an invalid record under policy `fail`, a panic), leaves the flush to
//! encode everything itself, so the file is always exactly what one encode would write.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::encoder::{EncodeOptions, Encoder};
use crate::batch::{records_in, Attachment, Batch, Chunk};

/// A job encoding the frozen chunks of `batch` that no job has had yet, once there are
/// `min_bytes` of them and the previous job is done. `encoder` makes the batch's encoder at the
/// first job.
pub fn job(
    batch: &mut Batch<Ahead>,
    min_bytes: usize,
    encoder: impl FnOnce() -> Encoder,
) -> Option<Job> {
    batch.hand_out_frozen(
        min_bytes,
        || Ahead::new(encoder()),
        |ahead, frozen, submitted| ahead.job(frozen, submitted, min_bytes),
    )
}

/// The encoder that went ahead for `batch`, with how many frozen chunks it has encoded (the
/// rest are [`Batch::records_after`] them); `None` if none did. Waits while a job is running.
pub fn take(batch: &Batch<Ahead>) -> Option<(Encoder, usize)> {
    batch.attachment()?.take()
}

/// The encoder of one batch, between the batch (on the loop) and the job encoding its chunks.
#[derive(Debug, Default)]
pub struct Ahead {
    state: Mutex<State>,
    ended: Condvar,
}

#[derive(Default)]
enum State {
    /// The first `chunks` frozen chunks are encoded; no job runs.
    Ready { encoder: Encoder, chunks: usize },
    /// A job is encoding.
    Running,
    /// The flush took it, or a job failed: nothing more to do ahead.
    #[default]
    Gone,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Ready { .. } => "Ready",
            State::Running => "Running",
            State::Gone => "Gone",
        })
    }
}

/// Frozen chunks of a batch to encode ahead, after `from` earlier ones.
pub struct Job {
    ahead: Arc<Ahead>,
    from: usize,
    chunks: Vec<Arc<Chunk>>,
}

impl Attachment for Ahead {
    fn held_bytes(&self) -> usize {
        Ahead::held_bytes(self)
    }
}

impl Ahead {
    pub fn new(encoder: Encoder) -> Ahead {
        Ahead {
            state: Mutex::new(State::Ready { encoder, chunks: 0 }),
            ended: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking job leaves `Running` behind; its guard has already set `Gone`.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job for the chunks of `frozen` (the batch's frozen chunks so far) after the first
    /// `submitted` (those handed to earlier jobs), if those jobs are done and at least
    /// `min_bytes` are left.
    pub fn job(
        self: &Arc<Self>,
        frozen: &[Arc<Chunk>],
        submitted: usize,
        min_bytes: usize,
    ) -> Option<Job> {
        if !matches!(&*self.lock(), State::Ready { chunks, .. } if *chunks == submitted) {
            return None;
        }
        let todo = frozen.get(submitted..)?;
        (todo.iter().map(|c| c.len()).sum::<usize>() >= min_bytes).then(|| Job {
            ahead: Arc::clone(self),
            from: submitted,
            chunks: todo.to_vec(),
        })
    }

    /// Takes the encoder for the flush, with the number of frozen chunks it has encoded;
    /// `None` if it is gone. Waits while a job is running.
    pub fn take(&self) -> Option<(Encoder, usize)> {
        let mut state = self.lock();
        while matches!(*state, State::Running) {
            state = self.ended.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        match std::mem::take(&mut *state) {
            State::Ready { encoder, chunks } => Some((encoder, chunks)),
            _ => None,
        }
    }

    /// Memory held by the encoder while no job runs (a running job's is counted by the job).
    pub fn held_bytes(&self) -> usize {
        match &*self.lock() {
            State::Ready { encoder, .. } => encoder.held_bytes(),
            _ => 0,
        }
    }
}

/// Ends a job: puts the encoder back, or marks it gone if the job did not finish.
struct Ending<'a> {
    ahead: &'a Ahead,
    encoder: Option<(Encoder, usize)>,
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        let mut state = self.ahead.lock();
        *state = match self.encoder.take() {
            Some((encoder, chunks)) => State::Ready { encoder, chunks },
            None => State::Gone,
        };
        self.ahead.ended.notify_all();
    }
}

impl Job {
    /// Encodes the job's chunks (CPU-bound: run it on a blocking thread). Does nothing if the
    /// flush took the encoder meanwhile. Returns the record bytes encoded.
    pub fn run(self, partition: i32, opts: &EncodeOptions) -> usize {
        let mut encoder = {
            let mut state = self.ahead.lock();
            match std::mem::replace(&mut *state, State::Running) {
                State::Ready { encoder, chunks } if chunks == self.from => encoder,
                other => {
                    *state = other;
                    return 0;
                }
            }
        };
        let mut ending = Ending {
            ahead: &self.ahead,
            encoder: None,
        };
        let records = self.chunks.iter().flat_map(|c| records_in(c));
        if encoder.encode(records, partition, opts, false).is_err() {
            return 0;
        }
        ending.encoder = Some((encoder, self.from + self.chunks.len()));
        self.chunks.iter().map(|c| c.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::Instant;

    use super::{job, take, Ahead};
    use crate::batch::RecordRef;
    use crate::config::{Compression, Envelope, InvalidRecordPolicy};
    use crate::encode::{encode, EncodeOptions, Encoded, Encoder};

    type Batch = crate::batch::Batch<Ahead>;

    fn opts(invalid: InvalidRecordPolicy) -> EncodeOptions {
        EncodeOptions {
            topic: "t".into(),
            envelope: Envelope::Raw,
            compression: Compression::Gzip { level: 6 },
            invalid,
            max_record_bytes: 1 << 20,
            transform: None,
            format: crate::config::Format::Ndjson,
            registry: None,
            table_columns: None,
        }
    }

    fn push(batch: &mut Batch, from: i64, to: i64) {
        for o in from..to {
            let value = if o % 1000 == 999 {
                b"{not json".to_vec()
            } else {
                format!(
                    "{{\"n\":{o},\"pad\":\"{}\"}}",
                    "x".repeat((o % 50) as usize)
                )
                .into_bytes()
            };
            batch.push(&RecordRef {
                offset: o,
                timestamp_ms: Some(o),
                key: None,
                value: Some(&value),
                headers: &[],
                flaw: None,
                cursor: None,
            });
        }
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// What a flush does: take what went ahead and encode the rest.
    fn flush(batch: &Batch, opts: &EncodeOptions) -> Encoded {
        let (mut encoder, done) =
            take(batch).unwrap_or_else(|| (Encoder::new(opts.compression, 0), 0));
        encoder
            .encode(batch.records_after(done), 3, opts, true)
            .unwrap();
        encoder.finish(opts.compression)
    }

    #[test]
    fn encoding_ahead_writes_the_same_file_as_one_encode() {
        let opts = opts(InvalidRecordPolicy::DeadLetter);
        let mut batch = Batch::new(Instant::now(), 0);
        let new = || Encoder::new(opts.compression, 0);
        let mut jobs = 0;
        for step in 0..20 {
            push(&mut batch, step * 1000, (step + 1) * 1000);
            if let Some(job) = job(&mut batch, 64 * 1024, new) {
                assert!(
                    super::job(&mut batch, 0, new).is_none(),
                    "one job at a time, in order"
                );
                job.run(3, &opts);
                jobs += 1;
            }
        }
        assert!(jobs > 3, "{jobs} jobs");
        let whole = encode(&batch, 3, &opts).unwrap();
        let ahead = flush(&batch, &opts);
        assert_eq!(gunzip(&ahead.data), gunzip(&whole.data));
        assert_eq!(
            gunzip(ahead.dead_letters.as_ref().unwrap()),
            gunzip(whole.dead_letters.as_ref().unwrap())
        );
        assert_eq!(
            (ahead.records, ahead.dead_lettered, ahead.uncompressed_bytes),
            (whole.records, whole.dead_lettered, whole.uncompressed_bytes)
        );
        assert!(take(&batch).is_none(), "the flush takes it once");
    }

    #[test]
    fn a_job_the_flush_overtook_does_nothing_and_a_failed_job_leaves_it_all_to_the_flush() {
        let opts = opts(InvalidRecordPolicy::DeadLetter);
        let mut batch = Batch::new(Instant::now(), 0);
        push(&mut batch, 0, 5000);
        let new = || Encoder::new(opts.compression, 0);
        let job = super::job(&mut batch, 1, new).unwrap();
        let whole = encode(&batch, 3, &opts).unwrap();
        let flushed = flush(&batch, &opts);
        job.run(3, &opts);
        assert_eq!(gunzip(&flushed.data), gunzip(&whole.data));

        // Under policy fail the job stops at the invalid record; the flush reports it.
        let fail = super::tests::opts(InvalidRecordPolicy::Fail);
        let mut batch = Batch::new(Instant::now(), 0);
        push(&mut batch, 0, 5000);
        super::job(&mut batch, 1, new).unwrap().run(3, &fail);
        assert!(take(&batch).is_none(), "gone after a failed job");
        assert_eq!(encode(&batch, 3, &fail).unwrap_err().offset, 999);
    }
}
