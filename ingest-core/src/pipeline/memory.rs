//! Memory balance and fetch control: buffered bytes across partitions stay under
//! `INGEST_MAX_BUFFER_BYTES` (less what the source may prefetch, [`crate::source::Control::batch_budget`]).
//!
//! Invariant: from 3/4 of the cap the largest idle batches are sealed early; at the cap messages
//! wait in the source's bounded queue; if that lasts, fetching pauses (but for partitions
//! completing a claim) until memory drops below 90 %. While held or paused, flushes are in
//! flight, so it always ends.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Loop;
use crate::batch::FlushReason;

/// How long messages may wait in librdkafka's queue at the cap before partitions are paused
/// instead, so the consumer polls again (rebalances, group liveness).
pub(super) const HOLD_MAX: Duration = Duration::from_secs(2);

impl Loop {
    /// Keeps buffered bytes under the cap. From 3/4 of the cap, the largest batches that can
    /// upload at once are sealed until open batches hold less than that, so compression runs
    /// while fetching goes on. At the cap, messages wait in librdkafka's bounded queue until
    /// memory drops below the cap; if that takes longer than [`HOLD_MAX`] (or a partition must
    /// keep fetching to complete a claim), fetching pauses instead (except for partitions
    /// completing a claim) until memory drops below 90 %. While held or paused, open batches hold
    /// under 3/4 (or nothing idle is left to seal), so flushes are in flight and it always ends.
    pub(super) fn balance_memory(&mut self, now: Instant) {
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

/// Buffered bytes from which memory-pressure flushes start (before the cap pauses fetching).
fn seal_mark(cap: usize) -> usize {
    cap / 4 * 3
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
