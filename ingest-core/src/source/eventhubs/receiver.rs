//! The two halves the pipeline holds: the [`Receiver`] it polls for ownership changes and
//! events, and the [`Control`] it pauses, commits and closes through; and the state they share
//! with the balancer and the partition tasks.
//!
//! Invariant: an event of an ownership that has ended (an older generation) never reaches the
//! loop, and a checkpoint names only an event the loop was handed and whose file landed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::layout::Checkpoint;
use super::store::CheckpointStore;
use crate::source::RebalanceEvent;

/// One event, owned: received on a partition task and handed to the loop.
pub struct Event {
    pub partition: i32,
    pub(super) generation: u64,
    pub sequence_number: i64,
    /// Kept for the checkpoint: the batch keeps its last event's ([`crate::batch::RecordRef::cursor`]).
    pub(crate) offset: Option<String>,
    pub enqueued_ms: Option<i64>,
    pub partition_key: Option<String>,
    pub body: Option<Vec<u8>>,
    /// Set when the body has no JSON form ([`super::body`]): `body` is its AMQP encoding.
    pub flaw: Option<crate::batch::Flaw>,
    /// Application properties, values rendered as text.
    pub properties: Vec<(String, Vec<u8>)>,
    /// The message's content type: Azure Schema Registry's serializers write
    /// `avro/binary+<schema id>` there.
    pub content_type: Option<String>,
}

pub(super) enum Delivery {
    Assigned(i32, u64),
    Revoked(i32),
    Event(Event),
}

/// What the loop gets next.
pub enum Next {
    Rebalance(RebalanceEvent),
    Event(Event),
}

/// State shared by the balancer, the partition tasks, the loop side and the committer.
#[derive(Default)]
pub(super) struct Shared {
    /// Partitions being received: their pause flag.
    pub(super) paused: Mutex<HashMap<i32, watch::Sender<bool>>>,
    /// Partitions owned: ownership ETag and the receiver's cancel token.
    pub(super) held: Mutex<BTreeMap<String, Held>>,
    /// The sequence number of the last landed event of each partition received (its
    /// checkpoint), for the lag.
    pub(super) landed: Mutex<HashMap<i32, i64>>,
    /// Partitions whose receiver waits for the pipeline to say where it starts.
    pub(super) starts: Mutex<HashMap<i32, StartSlot>>,
    /// Signalled when a receiver posts a [`StartSlot`].
    pub(super) start_posted: tokio::sync::Notify,
    /// Partitions whose receiver the pipeline asked to start over ([`Control::restart`]).
    pub(super) restarts: Mutex<std::collections::BTreeSet<i32>>,
    /// Signalled with each such request, so the balancer handles it at once.
    pub(super) restart_wanted: tokio::sync::Notify,
    /// Held by a partition's receiver task while it lives: the next one waits for it.
    pub(super) links: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>,
}

/// A receiver waiting for its start: what it read of the partition, and where to reply.
pub(super) struct StartSlot {
    pub(super) generation: u64,
    pub(super) facts: crate::source::PartitionFacts,
    /// The first sequence number to receive, or `None`: after the checkpoint (or at the
    /// configured earliest/latest), as without a claim chain.
    pub(super) reply: Option<tokio::sync::oneshot::Sender<Option<i64>>>,
}

pub(super) struct Held {
    pub(super) etag: String,
    pub(super) receiver: CancellationToken,
}

/// The receiving half, polled by the pipeline loop.
pub struct Receiver {
    pub(super) rx: mpsc::Receiver<Delivery>,
    pub(super) generations: HashMap<i32, u64>,
}

/// Pauses, commits and closes; cheap to clone.
#[derive(Clone)]
pub struct Control {
    pub(super) shared: Arc<Shared>,
    pub(super) store: CheckpointStore,
    pub(super) stop: CancellationToken,
    /// What batches and encoded files may hold ([`super::credit::Ahead::batch_budget`]).
    pub(crate) batch_budget: usize,
    pub(super) balancer: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Receiver {
    /// The next assignment change or event. `None` when the source stopped.
    pub async fn next(&mut self) -> Option<Next> {
        loop {
            let delivery = self.rx.recv().await?;
            if let Some(next) = self.accept(delivery) {
                return Some(next);
            }
        }
    }

    /// The next assignment change or event already delivered, without waiting.
    pub fn try_next(&mut self) -> Option<Next> {
        loop {
            let delivery = self.rx.try_recv().ok()?;
            if let Some(next) = self.accept(delivery) {
                return Some(next);
            }
        }
    }

    /// Applies a delivery to the generations; `None` for an event from an ownership that has
    /// ended.
    fn accept(&mut self, delivery: Delivery) -> Option<Next> {
        match delivery {
            Delivery::Assigned(p, generation) => {
                self.generations.insert(p, generation);
                Some(Next::Rebalance(RebalanceEvent::Assigned(vec![p])))
            }
            Delivery::Revoked(p) => {
                self.generations.remove(&p);
                Some(Next::Rebalance(RebalanceEvent::Revoked(vec![p])))
            }
            Delivery::Event(e) => {
                if self.generations.get(&e.partition) != Some(&e.generation) {
                    return None;
                }
                Some(Next::Event(e))
            }
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Control {
    pub fn set_paused(&self, partitions: &[i32], paused: bool) {
        let flags = lock(&self.shared.paused);
        for p in partitions {
            if let Some(flag) = flags.get(p) {
                flag.send_replace(paused);
            }
        }
    }

    /// Writes the checkpoint of `partition` at `through`, the last landed sequence number, with
    /// that event's offset when the batch kept it (it keeps its last event's; a checkpoint
    /// inside a batch, after completing a claim, has the sequence number alone, which every
    /// SDK resumes from as well).
    pub async fn commit(
        &self,
        partition: i32,
        (claim, through): (i64, i64),
        offset: Option<&str>,
    ) -> Result<(), String> {
        let checkpoint = Checkpoint {
            sequence_number: Some(through),
            offset: offset.map(str::to_owned),
            claim: Some(claim),
        };
        self.store
            .set_checkpoint(&partition.to_string(), &checkpoint)
            .await
            .map_err(|e| e.to_string())?;
        lock(&self.shared.landed).insert(partition, through);
        Ok(())
    }

    /// What `partition`'s receiver read of it (sequence numbers as offsets, its checkpoint as
    /// the hint), once the receiver waits for its start; an error after `wait` without one
    /// (the caller retries).
    pub async fn partition_facts(
        &self,
        partition: i32,
        wait: std::time::Duration,
    ) -> Result<crate::source::PartitionFacts, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let posted = self.shared.start_posted.notified();
            if let Some(slot) = lock(&self.shared.starts).get(&partition) {
                return Ok(slot.facts.clone());
            }
            if tokio::time::timeout_at(deadline, posted).await.is_err() {
                return Err(format!(
                    "partition {partition}'s receiver has not read the partition yet"
                ));
            }
        }
    }

    /// Asks for `partition`'s receiver to be replaced by a new one, as if the partition were
    /// assigned again (it delivers `Assigned` with a new generation, reads the partition and
    /// waits for its start): what the old one delivered after this is dropped.
    pub fn restart(&self, partition: i32) {
        lock(&self.shared.restarts).insert(partition);
        self.shared.restart_wanted.notify_one();
    }

    /// The sequence number each of `partitions`' checkpoint names, for those that have one.
    pub async fn checkpointed(&self, partitions: &[i32]) -> Result<BTreeMap<i32, i64>, String> {
        let mut found = BTreeMap::new();
        for p in partitions {
            let checkpoint = self
                .store
                .checkpoint(&p.to_string())
                .await
                .map_err(|e| e.to_string())?;
            if let Some(s) = checkpoint.and_then(|c| c.sequence_number) {
                found.insert(*p, s);
            }
        }
        Ok(found)
    }

    /// Tells `partition`'s waiting receiver where to start (see [`StartSlot::reply`]).
    pub fn start_at(&self, partition: i32, first: Option<i64>) {
        let reply = lock(&self.shared.starts)
            .get_mut(&partition)
            .and_then(|slot| slot.reply.take());
        match reply {
            Some(reply) => {
                let _ = reply.send(first);
            }
            None => tracing::warn!(
                partition,
                "no receiver waits for its start (the ownership moved meanwhile)"
            ),
        }
    }

    /// Stops balancing and receiving and releases the partitions held (so another replica takes
    /// them at once); the connection closes when the last task drops the client. Call after the
    /// final commits.
    pub async fn close(&self) {
        self.stop.cancel();
        if let Some(balancer) = self.balancer.lock().await.take() {
            let _ = balancer.await;
        }
        let held: Vec<(String, Held)> = std::mem::take(&mut *lock(&self.shared.held))
            .into_iter()
            .collect();
        for (partition, h) in held {
            h.receiver.cancel();
            match self.store.release(&partition, &h.etag).await {
                Ok(true) => tracing::info!(partition, "ownership released"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(partition, error = %e, "could not release ownership; another replica takes it after the expiry")
                }
            }
        }
    }
}
