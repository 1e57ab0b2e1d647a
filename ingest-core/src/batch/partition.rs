//! The state of one assigned partition: its open batch, sealed batches waiting to upload, and
//! the one batch in flight.
//!
//! Pure. Invariants: at most one batch per partition is in flight (uploaded-but-uncommitted
//! files never pile up); records at or below an offset known to be landed are dropped; while an
//! earlier incarnation's claim is being completed, the open batch is cut exactly at the claim's
//! end and no other trigger applies.

use std::collections::VecDeque;
use std::time::Instant;

use super::arena::{Attachment, Batch};
use super::record::RecordRef;
use super::trigger::{FlushPolicy, FlushReason, Triggers};

/// A batch that will not grow any more, waiting for its turn to upload.
#[derive(Debug)]
pub struct Sealed<A: Attachment = ()> {
    pub batch: Batch<A>,
    pub reason: FlushReason,
}

/// One partition's batches. `A` is what a later stage attaches to a batch while it fills.
#[derive(Debug)]
pub struct PartitionState<A: Attachment = ()> {
    open: Option<Batch<A>>,
    sealed: VecDeque<Sealed<A>>,
    /// Memory held by the batch in flight.
    in_flight_bytes: Option<usize>,
    /// Offsets at or below this are in a landed file.
    skip_through: Option<i64>,
    /// The open batch must end exactly at this offset (completing someone else's claim).
    cut_at: Option<i64>,
    /// The consumer reached the partition's end and no record came since.
    at_end: bool,
}

impl<A: Attachment> Default for PartitionState<A> {
    fn default() -> Self {
        PartitionState {
            open: None,
            sealed: VecDeque::new(),
            in_flight_bytes: None,
            skip_through: None,
            cut_at: None,
            at_end: false,
        }
    }
}

impl<A: Attachment> PartitionState<A> {
    /// Adds a record. Returns how much more memory the partition holds (the arena grows in
    /// chunks, so mostly 0), or `None` when the record was dropped because it is already landed.
    pub fn push(
        &mut self,
        r: &RecordRef<'_>,
        now: Instant,
        now_ms: i64,
        policy: &FlushPolicy,
    ) -> Option<usize> {
        if self.skip_through.is_some_and(|s| r.offset <= s) {
            return None;
        }
        self.at_end = false;
        if let Some(cut) = self.cut_at {
            let open = self.open.get_or_insert_with(|| Batch::new(now, now_ms));
            let before = open.held_bytes();
            open.push(r);
            let grown = open.held_bytes() - before;
            if r.offset >= cut {
                self.cut_open(cut);
            }
            return Some(grown);
        }
        if self
            .open
            .as_ref()
            .is_some_and(|b| policy.must_seal_before(b, r))
        {
            self.seal_open(FlushReason::Bytes);
        }
        let open = self.open.get_or_insert_with(|| Batch::new(now, now_ms));
        let before = open.held_bytes();
        open.push(r);
        let grown = open.held_bytes() - before;
        if let Some(reason) = policy.reason(open, now) {
            self.seal_open(reason);
        }
        Some(grown)
    }

    fn cut_open(&mut self, cut: i64) {
        self.cut_open_for(cut, FlushReason::Recovery);
    }

    fn cut_open_for(&mut self, cut: i64, reason: FlushReason) {
        if let Some(open) = self.open.take() {
            let (head, tail) = open.split_after(cut);
            if !head.is_empty() {
                self.sealed.push_back(Sealed {
                    batch: head,
                    reason,
                });
            }
            self.open = (!tail.is_empty()).then_some(tail);
        }
        self.cut_at = None;
    }

    /// The partition starts after the end of its claim chain: offsets through `through` are
    /// landed, and records at or below it (re-read to check the chain's last one) are dropped.
    pub fn start_after(&mut self, through: i64) {
        self.skip_through = Some(self.skip_through.map_or(through, |s| s.max(through)));
    }

    /// The partition starts by completing the chain's last claim, which ends at `through`: the
    /// open batch is cut exactly there.
    pub fn complete_first(&mut self, through: i64) {
        self.cut_at = Some(through);
    }

    /// The consumer reached the partition's end: if a claim is being completed, nothing more in
    /// its range will come (its records existed when it was made, and the log only grows), so
    /// what is buffered of it is sealed to complete it. Returns whether anything was sealed.
    pub fn end_of_log(&mut self) -> bool {
        self.at_end = true;
        let Some(cut) = self.cut_at else {
            return false;
        };
        // With nothing of it buffered, there is nothing to complete: the next batch meets the
        // claim and finds its records gone.
        let before = self.sealed.len();
        self.cut_open_for(cut, FlushReason::EndOfLog);
        self.sealed.len() > before
    }

    /// Seals the open batch if its age trigger fired by `now` (the wall-clock timer).
    pub fn tick(&mut self, now: Instant, policy: &FlushPolicy) -> bool {
        match self.open.as_ref().and_then(|b| policy.reason(b, now)) {
            Some(reason) if self.cut_at.is_none() => self.seal_open(reason),
            _ => false,
        }
    }

    /// When the open batch's age trigger fires, if there is one.
    pub fn deadline(&self, policy: &FlushPolicy) -> Option<Instant> {
        if self.cut_at.is_some() {
            return None;
        }
        self.open.as_ref().and_then(|b| policy.deadline(b))
    }

    /// Seals the open batch (shutdown, memory pressure). Not while completing a claim, whose
    /// end is fixed. Returns whether anything was sealed.
    pub fn seal_open(&mut self, reason: FlushReason) -> bool {
        if self.cut_at.is_some() {
            return false;
        }
        match self.open.take() {
            Some(batch) if !batch.is_empty() => {
                self.sealed.push_back(Sealed { batch, reason });
                true
            }
            _ => false,
        }
    }

    /// The next batch to upload, if none is in flight.
    pub fn start_next(&mut self) -> Option<Sealed<A>> {
        if self.in_flight_bytes.is_some() {
            return None;
        }
        let next = self.sealed.pop_front()?;
        self.in_flight_bytes = Some(next.batch.held_bytes() + next.batch.ahead_held_bytes());
        Some(next)
    }

    /// The in-flight batch landed (or was found landed) through `through`, inclusive.
    pub fn landed(&mut self, through: i64) {
        self.in_flight_bytes = None;
        self.skip_through = Some(self.skip_through.map_or(through, |s| s.max(through)));
        let mut kept = VecDeque::new();
        for s in self.sealed.drain(..) {
            let (_, tail) = s.batch.split_after(through);
            if !tail.is_empty() {
                kept.push_back(Sealed {
                    batch: tail,
                    reason: s.reason,
                });
            }
        }
        self.sealed = kept;
        if let Some(open) = self.open.take() {
            let (_, tail) = open.split_after(through);
            self.open = (!tail.is_empty()).then_some(tail);
        }
    }

    /// The in-flight batch starts at a claim whose file is missing and ends at `through`, beyond
    /// what it holds: merge everything buffered back into one open batch and cut it at `through`.
    pub fn need_more(&mut self, mut batch: Batch<A>, through: i64) {
        self.in_flight_bytes = None;
        for s in self.sealed.drain(..) {
            batch.append(&s.batch);
        }
        if let Some(open) = self.open.take() {
            batch.append(&open);
        }
        self.open = Some(batch);
        self.cut_at = Some(through);
        if self
            .open
            .as_ref()
            .and_then(Batch::last_offset)
            .is_some_and(|l| l >= through)
        {
            self.cut_open(through);
        } else if self.at_end {
            self.end_of_log();
        }
    }

    /// The in-flight batch could not be uploaded: it goes back to the head of the queue.
    pub fn retry(&mut self, sealed: Sealed<A>) {
        self.in_flight_bytes = None;
        self.sealed.push_front(sealed);
    }

    /// Memory held by the partition's batches (and what they encoded ahead): open, sealed and
    /// in flight.
    pub fn held_bytes(&self) -> usize {
        let held = |b: &Batch<A>| b.held_bytes() + b.ahead_held_bytes();
        self.open.as_ref().map_or(0, held)
            + self.sealed.iter().map(|s| held(&s.batch)).sum::<usize>()
            + self.in_flight_bytes.unwrap_or(0)
    }

    /// The open batch, for a later stage to attach work to (encoding ahead). Records are only
    /// added through [`PartitionState::push`].
    pub fn open_mut(&mut self) -> Option<&mut Batch<A>> {
        self.open.as_mut()
    }

    /// Memory held by the open batch (not yet sealed or uploading).
    pub fn open_held_bytes(&self) -> usize {
        self.open.as_ref().map_or(0, |b| b.held_bytes())
    }

    /// Memory held by the open batch, when sealing it now would let it upload at once.
    pub fn idle_held_bytes(&self) -> Option<usize> {
        let ready =
            self.in_flight_bytes.is_none() && self.sealed.is_empty() && self.cut_at.is_none();
        self.open.as_ref().filter(|_| ready).map(|b| b.held_bytes())
    }

    /// A sealed batch can start uploading now.
    pub fn ready_to_upload(&self) -> bool {
        self.in_flight_bytes.is_none() && !self.sealed.is_empty()
    }

    /// Nothing buffered, sealed or in flight.
    pub fn is_drained(&self) -> bool {
        self.open.as_ref().is_none_or(Batch::is_empty)
            && self.sealed.is_empty()
            && self.in_flight_bytes.is_none()
    }

    /// Whether a record at `r`'s offset with the same timestamp, key and value is buffered here
    /// (open or sealed, not yet uploading): the source served it again. Looked up record by
    /// record: only ever asked when the source goes back.
    pub fn holds_same(&self, r: &RecordRef<'_>) -> bool {
        let batches = self.open.iter().chain(self.sealed.iter().map(|s| &s.batch));
        batches
            .filter(|b| {
                b.first_offset().is_some_and(|f| f <= r.offset)
                    && b.last_offset().is_some_and(|l| l >= r.offset)
            })
            .flat_map(Batch::records)
            .find(|stored| stored.offset() == r.offset)
            .is_some_and(|stored| {
                stored.timestamp_ms() == r.timestamp_ms
                    && stored.key() == r.key
                    && stored.value() == r.value
            })
    }

    /// Waiting for records to complete an earlier claim: must keep fetching even under pressure.
    pub fn completing_claim(&self) -> bool {
        self.cut_at.is_some()
    }
}

#[cfg(test)]
mod tests;
