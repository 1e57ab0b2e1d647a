//! Receiving one owned partition: where it starts (after its checkpoint), the receiver link,
//! reconnecting after errors, pausing at the buffer cap, and each event made owned for the loop.
//!
//! Invariant: after a broken link the receiver resumes after the last event it handed over, so
//! nothing is skipped or handed twice within one ownership.

use std::sync::Arc;
use std::time::Duration;

use azure_messaging_eventhubs::models::EventHubPartitionProperties;
use azure_messaging_eventhubs::{OpenReceiverOptions, StartLocation, StartPosition};
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::context::{Context, BACKOFF_MAX, BACKOFF_START};
use super::layout::{self, Checkpoint, Start};
use super::management::{Urgency, START_WAIT};
use super::receiver::{lock, Delivery, Event, StartSlot};

fn sdk_position(start: &Start) -> StartPosition {
    let (location, inclusive) = match start {
        Start::Earliest => (StartLocation::Earliest, false),
        Start::Latest => (StartLocation::Latest, false),
        Start::AfterSequenceNumber(s) => (StartLocation::SequenceNumber(*s), false),
        Start::AfterOffset(o) => (StartLocation::Offset(o.clone()), false),
        Start::AtSequenceNumber(s) => (StartLocation::SequenceNumber(*s), true),
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

/// Where a newly owned partition starts: the pipeline decides from the partition's claim chain
/// in storage ([`crate::land::start`]) over what this reads of the partition and its
/// checkpoint (a hint); without a chain, [`starting_point`].
async fn decided_start(
    cx: &Context,
    partition_id: &str,
    partition: i32,
    generation: u64,
    cancel: &CancellationToken,
) -> Result<Option<Start>, String> {
    let props = cx
        .management
        .partition(partition_id, Urgency::Wait, START_WAIT)
        .await
        .map_err(|e| format!("cannot read partition {partition_id}'s properties: {e}"))?;
    let checkpoint = cx
        .store
        .checkpoint(partition_id)
        .await
        .map_err(|e| e.to_string())?;
    let low = props.beginning_sequence_number;
    let high = if props.is_empty {
        low.max(props.last_enqueued_sequence_number + 1)
    } else {
        props.last_enqueued_sequence_number + 1
    };
    if let Some(landed) = checkpoint.as_ref().and_then(|c| c.sequence_number) {
        note_landed(cx, partition_id, landed);
    }
    let hint = checkpoint
        .as_ref()
        .and_then(|c| c.sequence_number.map(|s| (s, c.claim)))
        .map(|(s, claim)| crate::source::Hint { next: s + 1, claim });
    let (reply, decided) = tokio::sync::oneshot::channel();
    lock(&cx.shared.starts).insert(
        partition,
        StartSlot {
            generation,
            facts: crate::source::PartitionFacts {
                low,
                high,
                cluster: None,
                hint,
            },
            reply: Some(reply),
        },
    );
    cx.shared.start_posted.notify_waiters();
    let decided = tokio::select! {
        _ = cancel.cancelled() => None,
        d = decided => d.ok(),
    };
    {
        let mut slots = lock(&cx.shared.starts);
        if slots
            .get(&partition)
            .is_some_and(|s| s.generation == generation)
        {
            slots.remove(&partition);
        }
    }
    let Some(first) = decided else {
        return Ok(None); // the ownership ended meanwhile
    };
    match first {
        Some(first) => Ok(Some(Start::AtSequenceNumber(first))),
        None => starting_point(cx, partition_id, checkpoint.as_ref(), &props)
            .await
            .map(Some),
    }
}

/// Where a newly owned partition without a claim chain starts: after its checkpoint; without
/// one, at the earliest event, or at the latest, which is then written as the checkpoint so a
/// restart before the first file does not skip what arrived meanwhile.
/// `checkpoint` and `props` are what [`decided_start`] read.
async fn starting_point(
    cx: &Context,
    partition_id: &str,
    checkpoint: Option<&Checkpoint>,
    props: &EventHubPartitionProperties,
) -> Result<Start, String> {
    let start = layout::start_position(checkpoint, cx.start);
    if start != Start::Latest {
        return Ok(start);
    }
    if props.is_empty {
        return Ok(Start::Earliest);
    }
    let latest = Checkpoint {
        sequence_number: Some(props.last_enqueued_sequence_number),
        offset: Some(props.last_enqueued_offset.clone()),
        claim: None,
    };
    cx.store
        .set_checkpoint(partition_id, &latest)
        .await
        .map_err(|e| e.to_string())?;
    note_landed(cx, partition_id, props.last_enqueued_sequence_number);
    Ok(Start::AfterSequenceNumber(
        props.last_enqueued_sequence_number,
    ))
}

/// Records where the partition's checkpoint is, for its lag.
fn note_landed(cx: &Context, partition_id: &str, sequence_number: i64) {
    if let Ok(p) = partition_id.parse::<i32>() {
        super::receiver::lock(&cx.shared.landed).insert(p, sequence_number);
    }
}

/// Receives one owned partition until cancelled, reconnecting after errors.
pub(super) async fn receive(
    cx: Arc<Context>,
    partition_id: String,
    partition: i32,
    generation: u64,
    mut paused: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    // One receiver of a partition at a time: a new one waits until the one before it closed
    // its link (see the close below).
    let link = super::receiver::lock(&cx.shared.links)
        .entry(partition)
        .or_default()
        .clone();
    let _link = tokio::select! {
        held = link.lock_owned() => held,
        _ = cancel.cancelled() => return,
    };
    let mut backoff = BACKOFF_START;
    let mut start = loop {
        match decided_start(&cx, &partition_id, partition, generation, &cancel).await {
            Ok(Some(s)) => break s,
            Ok(None) => return,
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
        // Credit for the hub's partitions now (its count may have grown since the start).
        let partitions = super::receiver::lock(&cx.partition_ids).len();
        let options = OpenReceiverOptions {
            start_position: Some(sdk_position(&start)),
            prefetch: Some(cx.ahead.prefetch(partitions)),
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
        // Whether the ownership ended (else: reconnect after an error).
        let ended = 'link: loop {
            // Paused (buffer cap): stop taking events; the link's credit stops the rest.
            while *paused.borrow_and_update() {
                tokio::select! {
                    _ = cancel.cancelled() => break 'link true,
                    changed = paused.changed() => if changed.is_err() { break 'link true },
                }
            }
            let next = tokio::select! {
                _ = cancel.cancelled() => break 'link true,
                n = events.next() => n,
            };
            let event = match next {
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    tracing::warn!(partition, error = %e, "receive failed; reconnecting after the last event received");
                    break 'link false;
                }
                None => break 'link false,
            };
            let Some(sequence_number) = event.sequence_number() else {
                tracing::warn!(
                    partition,
                    "an event without a sequence number was skipped by the service"
                );
                continue;
            };
            backoff = BACKOFF_START;
            // From the message itself: `event_data()` would copy the body and properties first.
            let message = event.raw_amqp_message();
            let (body, flaw) = super::body::value_of(&message.body);
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
                body,
                flaw,
                properties: message
                    .application_properties
                    .as_ref()
                    .map(|props| {
                        let mut v: Vec<(String, Vec<u8>)> = props
                            .0
                            .iter()
                            .map(|(k, v)| (k.clone(), property_text(v).into_bytes()))
                            .collect();
                        v.sort();
                        v
                    })
                    .unwrap_or_default(),
                content_type: message
                    .properties
                    .as_ref()
                    .and_then(|p| p.content_type.as_ref())
                    .map(|t| t.0.clone()),
            };
            start = Start::AfterSequenceNumber(sequence_number);
            tokio::select! {
                _ = cancel.cancelled() => break 'link true,
                sent = cx.tx.send(Delivery::Event(event)) => if sent.is_err() { break 'link true },
            }
        };
        drop(events);
        // Closed, not dropped: the connection keeps a receiver link per partition, and a
        // receiver opened later for the partition (this replica owning it again, or starting
        // it over) would otherwise be handed this link, at this link's position.
        let _ = receiver.close().await;
        if ended || !pause_for(&mut backoff, &cancel).await {
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
