//! The Event Hubs source: partition ownership through the checkpoint store, one receiver per
//! owned partition (`azure_messaging_eventhubs`), and checkpoints written after files land.
//!
//! Invariants:
//! - The loop sees `Assigned(p)` before any event of that ownership and `Revoked(p)` before
//!   events of a later one: both travel through the one channel the events use, and events of an
//!   earlier ownership (an older generation) are dropped on arrival.
//! - A receiver starts just after the partition's checkpoint (the last landed event), else at
//!   the configured earliest/latest; after a broken link it resumes after the last event it
//!   handed over, so nothing is skipped or handed twice within one ownership.
//! - A checkpoint is written only by `commit`, which the flusher calls after the file landed, and
//!   names the last landed event's sequence number and offset.
//! - Ownership is renewed every load-balancing round; a partition whose record another replica
//!   overwrote is revoked at once. Ownership is released only after the final commits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_messaging_eventhubs::{
    ConsumerClient, OpenReceiverOptions, StartLocation, StartPosition,
};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::balance;
use super::layout::{self, Checkpoint, Start};
use super::store::CheckpointStore;
use crate::config::cloud::CloudEnv;
use crate::config::eventhubs::{Credential, EventHubsConfig, SharedAccessKey, StartAt};
use crate::source::RebalanceEvent;
use crate::storage::one_line;

/// One event, owned: received on a partition task and handed to the loop.
pub struct Event {
    pub partition: i32,
    generation: u64,
    pub sequence_number: i64,
    /// Kept for the checkpoint: moved into the pending queue when the loop takes the event.
    offset: Option<String>,
    pub enqueued_ms: Option<i64>,
    pub partition_key: Option<String>,
    pub body: Option<Vec<u8>>,
    /// Application properties, values rendered as text.
    pub properties: Vec<(String, Vec<u8>)>,
}

enum Delivery {
    Assigned(i32, u64),
    Revoked(i32),
    Event(Event),
}

/// What the loop gets next.
pub enum Next {
    Rebalance(RebalanceEvent),
    Event(Event),
}

/// (sequence number, offset) of events received in one partition, oldest first.
type Pending = VecDeque<(i64, Option<String>)>;

/// State shared by the balancer, the partition tasks, the loop side and the committer.
#[derive(Default)]
struct Shared {
    /// Partitions being received: their pause flag.
    paused: Mutex<HashMap<i32, watch::Sender<bool>>>,
    /// Sequence number → offset of events handed to the loop and not yet committed past.
    offsets: Mutex<HashMap<i32, Pending>>,
    /// Partitions owned: ownership ETag and the receiver's cancel token.
    held: Mutex<BTreeMap<String, Held>>,
}

struct Held {
    etag: String,
    receiver: CancellationToken,
}

/// The receiving half, polled by the pipeline loop.
pub struct Receiver {
    rx: mpsc::Receiver<Delivery>,
    generations: HashMap<i32, u64>,
    shared: Arc<Shared>,
}

/// Pauses, commits and closes; cheap to clone.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
    store: CheckpointStore,
    stop: CancellationToken,
    balancer: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// Everything a partition task and the balancer need.
struct Context {
    /// Cancelled when the pipeline ends: stops the balancer and every receiver.
    stop: CancellationToken,
    client: Arc<ConsumerClient>,
    store: CheckpointStore,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Delivery>,
    owner_id: String,
    partition_ids: Vec<String>,
    start: StartAt,
    expiry: Duration,
    interval: Duration,
    prefetch: u32,
}

const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Connects, reads the hub's partitions and starts load balancing. Returns the number of
/// partitions. Errors are one line naming the setting to check.
pub async fn open(
    config: &EventHubsConfig,
    cloud: &CloudEnv,
    store: CheckpointStore,
    prefetch: u32,
    stop: CancellationToken,
) -> Result<(Receiver, Control, usize), String> {
    let client = connect(config, cloud).await?;
    let properties = client.get_eventhub_properties().await.map_err(|e| {
        format!(
            "cannot read event hub {} on {} ({}); check INGEST_EVENTHUBS_EVENT_HUB and INGEST_EVENTHUBS_CONNECTION_STRING (its policy needs Listen)",
            config.event_hub,
            config.fully_qualified_namespace,
            one_line(&e)
        )
    })?;
    let mut partition_ids = properties.partition_ids;
    if let Some(bad) = partition_ids.iter().find(|p| p.parse::<i32>().is_err()) {
        return Err(format!(
            "event hub {} has a partition id {bad:?} that is not a number; files are named by partition number",
            config.event_hub
        ));
    }
    partition_ids.sort_by_key(|p| p.parse::<i32>().unwrap_or_default());
    let count = partition_ids.len();
    let owner_id = config.owner_id.clone().unwrap_or_else(unique_owner_id);
    tracing::info!(
        owner_id,
        partitions = count,
        "event hub reachable; balancing partitions"
    );
    let client = Arc::new(client);
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::channel(256);
    let context = Arc::new(Context {
        stop: stop.clone(),
        client: client.clone(),
        store: store.clone(),
        shared: shared.clone(),
        tx,
        owner_id,
        partition_ids,
        start: config.start_position,
        expiry: config.ownership_expiry,
        interval: config.load_balancing_interval,
        prefetch,
    });
    let balancer = tokio::spawn(balance_loop(context, stop.clone()));
    Ok((
        Receiver {
            rx,
            generations: HashMap::new(),
            shared: shared.clone(),
        },
        Control {
            shared,
            store,
            stop,
            balancer: Arc::new(tokio::sync::Mutex::new(Some(balancer))),
        },
        count,
    ))
}

async fn connect(config: &EventHubsConfig, cloud: &CloudEnv) -> Result<ConsumerClient, String> {
    let mut builder = ConsumerClient::builder().with_consumer_group(config.consumer_group.clone());
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_custom_endpoint(endpoint.to_string());
    }
    let namespace = &config.fully_qualified_namespace;
    let opened = match &config.credential {
        Credential::SharedAccessKey(key) => {
            let secret = match key {
                SharedAccessKey::Key { name, key } => {
                    format!("SharedAccessKeyName={name};SharedAccessKey={key}")
                }
                SharedAccessKey::Signature(sig) => format!("SharedAccessSignature={sig}"),
            };
            let connection_string = format!("Endpoint=sb://{namespace}/;{secret}");
            builder
                .open_with_connection_string(&connection_string, Some(&config.event_hub))
                .await
        }
        Credential::Identity => {
            let credential = super::identity::credential(cloud)?;
            builder
                .open(namespace, config.event_hub.clone(), credential)
                .await
        }
    };
    opened.map_err(|e| {
        format!(
            "cannot connect to Event Hubs namespace {namespace} ({}); check INGEST_EVENTHUBS_CONNECTION_STRING (or the AZURE_* identity), INGEST_EVENTHUBS_ENDPOINT and the network",
            one_line(&e)
        )
    })
}

fn unique_owner_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ingest".into());
    format!("{host}-{:016x}", random())
}

fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::flush::now_ms() as u64);
    h.finish()
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

    /// Applies a delivery to the generations and the pending offsets; `None` for an event
    /// from an ownership that has ended.
    fn accept(&mut self, delivery: Delivery) -> Option<Next> {
        match delivery {
            Delivery::Assigned(p, generation) => {
                self.generations.insert(p, generation);
                lock(&self.shared.offsets).insert(p, VecDeque::new());
                Some(Next::Rebalance(RebalanceEvent::Assigned(vec![p])))
            }
            Delivery::Revoked(p) => {
                self.generations.remove(&p);
                lock(&self.shared.offsets).remove(&p);
                Some(Next::Rebalance(RebalanceEvent::Revoked(vec![p])))
            }
            Delivery::Event(mut e) => {
                if self.generations.get(&e.partition) != Some(&e.generation) {
                    return None;
                }
                if let Some(q) = lock(&self.shared.offsets).get_mut(&e.partition) {
                    q.push_back((e.sequence_number, e.offset.take()));
                }
                Some(Next::Event(e))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
    /// that event's offset when this replica received it.
    pub async fn commit(&self, partition: i32, through: i64) -> Result<(), String> {
        let offset = {
            let mut offsets = lock(&self.shared.offsets);
            offsets.get_mut(&partition).and_then(|q| {
                // Landed events are no longer needed; the last one names the checkpoint.
                let landed = q.iter().take_while(|(s, _)| *s <= through).count();
                q.drain(..landed)
                    .find(|(s, _)| *s == through)
                    .and_then(|(_, o)| o)
            })
        };
        let checkpoint = Checkpoint {
            sequence_number: Some(through),
            offset,
        };
        self.store
            .set_checkpoint(&partition.to_string(), &checkpoint)
            .await
            .map_err(|e| e.to_string())
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

/// Load balancing: a round every interval, and at once after a round that claimed a partition
/// (so a replica reaches its share quickly). Errors are logged; the next round retries.
async fn balance_loop(cx: Arc<Context>, stop: CancellationToken) {
    let mut generation = 0u64;
    loop {
        let claimed = match round(&cx, &mut generation, &stop).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "load balancing round failed; retrying next round");
                false
            }
        };
        if claimed {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(cx.interval) => {}
        }
    }
}

/// One round; returns whether a partition was claimed.
async fn round(
    cx: &Arc<Context>,
    generation: &mut u64,
    stop: &CancellationToken,
) -> Result<bool, String> {
    if stop.is_cancelled() {
        return Ok(false);
    }
    let records = cx.store.ownerships().await.map_err(|e| e.to_string())?;
    // Partitions whose record changed under us were taken by another replica.
    let lost: Vec<String> = lock(&cx.shared.held)
        .iter()
        .filter(|(p, h)| {
            !records.iter().any(|r| {
                &r.partition == *p && r.owner.as_deref() == Some(&cx.owner_id) && r.etag == h.etag
            })
        })
        .map(|(p, _)| p.clone())
        .collect();
    for p in lost {
        revoke(
            cx,
            &p,
            "its ownership record was overwritten by another replica",
        )
        .await;
    }
    let plan = balance::plan(
        &cx.partition_ids,
        &records,
        &cx.owner_id,
        crate::flush::now_ms(),
        cx.expiry.as_millis() as i64,
        random() as usize,
    );
    for renewal in &plan.renew {
        match cx.store.claim(renewal, &cx.owner_id).await {
            Ok(Some(etag)) => {
                let adopted = {
                    let mut held = lock(&cx.shared.held);
                    match held.get_mut(&renewal.partition) {
                        Some(h) => {
                            h.etag = etag.clone();
                            false
                        }
                        None => true,
                    }
                };
                if adopted {
                    // Ours by name from an earlier run with the same owner id.
                    assign(cx, &renewal.partition, etag, generation).await;
                }
            }
            Ok(None) => revoke(cx, &renewal.partition, "another replica claimed it").await,
            Err(e) => {
                tracing::warn!(partition = renewal.partition, error = %e, "could not renew ownership; retrying next round")
            }
        }
    }
    let Some(claim) = plan.claim else {
        return Ok(false);
    };
    if stop.is_cancelled() {
        return Ok(false);
    }
    let was_owned_by = records
        .iter()
        .find(|r| r.partition == claim.partition)
        .and_then(|r| r.owner.clone());
    match cx.store.claim(&claim, &cx.owner_id).await {
        Ok(Some(etag)) => {
            tracing::info!(partition = claim.partition, previous_owner = ?was_owned_by, "partition claimed");
            assign(cx, &claim.partition, etag, generation).await;
            Ok(true)
        }
        Ok(None) => {
            tracing::debug!(
                partition = claim.partition,
                "another replica claimed it first"
            );
            Ok(false)
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn assign(cx: &Arc<Context>, partition_id: &str, etag: String, generation: &mut u64) {
    let Ok(p) = partition_id.parse::<i32>() else {
        return;
    };
    *generation += 1;
    let receiver = cx.stop.child_token();
    let (pause_tx, pause_rx) = watch::channel(false);
    lock(&cx.shared.paused).insert(p, pause_tx);
    lock(&cx.shared.held).insert(
        partition_id.to_string(),
        Held {
            etag,
            receiver: receiver.clone(),
        },
    );
    if cx
        .tx
        .send(Delivery::Assigned(p, *generation))
        .await
        .is_err()
    {
        return;
    }
    tokio::spawn(receive(
        cx.clone(),
        partition_id.to_string(),
        p,
        *generation,
        pause_rx,
        receiver,
    ));
}

async fn revoke(cx: &Arc<Context>, partition_id: &str, why: &str) {
    let Some(held) = lock(&cx.shared.held).remove(partition_id) else {
        return;
    };
    held.receiver.cancel();
    let Ok(p) = partition_id.parse::<i32>() else {
        return;
    };
    lock(&cx.shared.paused).remove(&p);
    tracing::info!(partition = partition_id, why, "partition lost");
    let _ = cx.tx.send(Delivery::Revoked(p)).await;
}

fn sdk_position(start: &Start) -> StartPosition {
    let (location, inclusive) = match start {
        Start::Earliest => (StartLocation::Earliest, false),
        Start::Latest => (StartLocation::Latest, false),
        Start::AfterSequenceNumber(s) => (StartLocation::SequenceNumber(*s), false),
        Start::AfterOffset(o) => (StartLocation::Offset(o.clone()), false),
    };
    StartPosition {
        location,
        inclusive,
    }
}

/// Waits `backoff` (doubling it) unless cancelled; returns false when cancelled.
async fn pause_for(backoff: &mut Duration, cancel: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// Where a newly owned partition starts: after its checkpoint; without one, at the earliest
/// event, or at the latest, which is then written as the checkpoint so a restart before the
/// first file does not skip what arrived meanwhile.
async fn starting_point(cx: &Context, partition_id: &str) -> Result<Start, String> {
    let checkpoint = cx
        .store
        .checkpoint(partition_id)
        .await
        .map_err(|e| e.to_string())?;
    let start = layout::start_position(checkpoint.as_ref(), cx.start);
    if start != Start::Latest {
        return Ok(start);
    }
    let props = cx
        .client
        .get_partition_properties(partition_id)
        .await
        .map_err(|e| format!("cannot read partition {partition_id}'s properties: {e}"))?;
    if props.is_empty {
        return Ok(Start::Earliest);
    }
    let latest = Checkpoint {
        sequence_number: Some(props.last_enqueued_sequence_number),
        offset: Some(props.last_enqueued_offset),
    };
    cx.store
        .set_checkpoint(partition_id, &latest)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Start::AfterSequenceNumber(
        props.last_enqueued_sequence_number,
    ))
}

/// Receives one owned partition until cancelled, reconnecting after errors.
async fn receive(
    cx: Arc<Context>,
    partition_id: String,
    partition: i32,
    generation: u64,
    mut paused: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    let mut backoff = BACKOFF_START;
    let mut start = loop {
        match starting_point(&cx, &partition_id).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(partition, error = %e, "cannot find where to start; retrying");
                if !pause_for(&mut backoff, &cancel).await {
                    return;
                }
            }
        }
    };
    tracing::info!(partition, start = ?start, "receiving");
    loop {
        let options = OpenReceiverOptions {
            start_position: Some(sdk_position(&start)),
            prefetch: Some(cx.prefetch),
            owner_level: Some(0),
            ..Default::default()
        };
        let opened = tokio::select! {
            _ = cancel.cancelled() => return,
            r = cx.client.open_receiver_on_partition(partition_id.clone(), Some(options)) => r,
        };
        let receiver = match opened {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(partition, error = %e, "cannot open the receiver; retrying");
                if !pause_for(&mut backoff, &cancel).await {
                    return;
                }
                continue;
            }
        };
        let mut events = receiver.stream_events();
        loop {
            // Paused (buffer cap): stop taking events; the link's credit stops the rest.
            while *paused.borrow_and_update() {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    changed = paused.changed() => if changed.is_err() { return },
                }
            }
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                n = events.next() => n,
            };
            let event = match next {
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    tracing::warn!(partition, error = %e, "receive failed; reconnecting after the last event received");
                    break;
                }
                None => break,
            };
            let Some(sequence_number) = event.sequence_number() else {
                tracing::warn!(
                    partition,
                    "an event without a sequence number was skipped by the service"
                );
                continue;
            };
            backoff = BACKOFF_START;
            let data = event.event_data();
            let event = Event {
                partition,
                generation,
                sequence_number,
                offset: event.offset().clone(),
                enqueued_ms: event.enqueued_time().and_then(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_millis() as i64)
                }),
                partition_key: event.partition_key().clone(),
                body: data.body().map(<[u8]>::to_vec),
                properties: data
                    .properties()
                    .map(|props| {
                        let mut v: Vec<(String, Vec<u8>)> = props
                            .iter()
                            .map(|(k, v)| (k.clone(), property_text(v).into_bytes()))
                            .collect();
                        v.sort();
                        v
                    })
                    .unwrap_or_default(),
            };
            start = Start::AfterSequenceNumber(sequence_number);
            tokio::select! {
                _ = cancel.cancelled() => return,
                sent = cx.tx.send(Delivery::Event(event)) => if sent.is_err() { return },
            }
        }
        drop(events);
        let _ = receiver.close().await;
        if !pause_for(&mut backoff, &cancel).await {
            return;
        }
    }
}

/// An application property value as text (what lands in the record's headers).
fn property_text(v: &azure_core_amqp::AmqpSimpleValue) -> String {
    use azure_core_amqp::AmqpSimpleValue as V;
    match v {
        V::Null => String::new(),
        V::Boolean(b) => b.to_string(),
        V::UByte(n) => n.to_string(),
        V::Byte(n) => n.to_string(),
        V::Char(c) => c.to_string(),
        V::UShort(n) => n.to_string(),
        V::Short(n) => n.to_string(),
        V::UInt(n) => n.to_string(),
        V::Int(n) => n.to_string(),
        V::ULong(n) => n.to_string(),
        V::Long(n) => n.to_string(),
        V::Float(n) => n.to_string(),
        V::Double(n) => n.to_string(),
        V::String(s) => s.clone(),
        V::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}
