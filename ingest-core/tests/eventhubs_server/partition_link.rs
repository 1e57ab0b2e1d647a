//! Receiver links on `{hub}/ConsumerGroups/{group}/Partitions/{id}`. Admission: the hub and
//! partition exist (else `amqp:not-found`), an accepted put-token covers the address (else
//! `amqp:unauthorized-access`), the selector filter parses (else `amqp:invalid-field`) and the
//! owner level (`com.microsoft:epoch`) is not below an active one (else `amqp:link:stolen`; an
//! attach with an owner level detaches, with that error, the receivers at that level or below
//! and those without one). Delivery: the stored events from the start position, then each new
//! event as it is published, as pre-settled transfers within the credit the client grants.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fe2o3_amqp::link::DetachError;
use fe2o3_amqp::types::definitions::{self, AmqpError, LinkError};
use fe2o3_amqp::types::messaging::{
    AmqpSequence, AmqpValue, ApplicationProperties, Body, Data, Message, MessageAnnotations,
};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{SimpleValue, Timestamp, Value};
use fe2o3_amqp::{Sendable, Sender};
use tokio::sync::Notify;

use super::amqp::{condition_name, Client};
use super::filter::{self, Field, Start};
use super::{millis, Event, Hub, ReceiverAttach};

const OWNER_LEVEL: &str = "com.microsoft:epoch";

/// A receiver link the server agreed to serve.
pub(super) struct Admitted {
    partition: usize,
    /// Index of the first event to deliver.
    next: usize,
    /// Held until delivery ends (or the attach fails), then released.
    owner: Release,
    stolen: Arc<Notify>,
}

/// Decides whether to serve the receiver link `attach` on `address`, and records the attempt.
pub(super) fn admit(
    client: &Client,
    attach: &Attach,
    address: &str,
) -> Result<Admitted, definitions::Error> {
    let hub = &client.hub;
    let parsed = PartitionAddress::parse(address);
    let filter = selector(attach);
    let owner_level = owner_level(attach);
    let admitted = (|| {
        let target = parsed
            .as_ref()
            .filter(|a| a.hub.eq_ignore_ascii_case(&hub.name))
            .ok_or_else(|| error(AmqpError::NotFound, format!("no event hub at {address}")))?;
        let partition = hub.partition(&target.partition).ok_or_else(|| {
            let message = format!("no partition {:?} in {}", target.partition, hub.name);
            error(AmqpError::NotFound, message)
        })?;
        if !client.is_authorized(address) {
            let message = format!("no accepted put-token covers {address}");
            return Err(error(AmqpError::UnauthorizedAccess, message));
        }
        let start = match &filter {
            Some(expression) => filter::parse(expression)
                .map_err(|message| error(AmqpError::InvalidField, message))?,
            // No filter: the start of the stream.
            None => Start::From {
                field: Field::Offset,
                value: -1,
                inclusive: false,
            },
        };
        let next = start.first_index(&partition.log().events);
        let index = target.partition.parse().expect("a known partition id");
        let (owner, stolen) = hub
            .owners
            .claim(&target.consumer_group, index, owner_level)?;
        Ok(Admitted {
            partition: index,
            next,
            owner: Release(hub.clone(), owner),
            stolen,
        })
    })();
    hub.record_attach(ReceiverAttach {
        address: address.to_string(),
        consumer_group: parsed
            .as_ref()
            .map_or(String::new(), |a| a.consumer_group.clone()),
        partition: parsed.map_or(String::new(), |a| a.partition),
        filter: filter.unwrap_or_default(),
        owner_level,
        refused: admitted
            .as_ref()
            .err()
            .map(|e| condition_name(&e.condition)),
    });
    admitted
}

impl Admitted {
    /// Delivers events on `sender` until the client detaches, a higher owner level takes the
    /// partition, or the server stops.
    pub(super) async fn deliver(mut self, mut sender: Sender) {
        let hub = self.owner.0.clone();
        let partition = hub
            .partition_at(self.partition)
            .expect("partitions are never removed");
        let mut appended = partition.appended.subscribe();
        loop {
            for event in partition.events_from(self.next) {
                let transfer = Sendable::builder()
                    .message(message(&event))
                    .settled(true)
                    .build();
                // `send` waits for credit and fails if the client detaches meanwhile.
                tokio::select! {
                    sent = sender.send(transfer) => if sent.is_err() { return },
                    _ = self.stolen.notified() => return stolen(sender).await,
                }
                self.next += 1;
            }
            // Caught up: wait for the next event.
            tokio::select! {
                changed = appended.changed() => if changed.is_err() { return },
                detached = sender.on_detach() => return answer_detach(sender, detached).await,
                _ = self.stolen.notified() => return stolen(sender).await,
            }
        }
    }
}

/// Answers the client's detach in kind: a closing detach with a closing one, a plain detach
/// with a plain one (a closing answer to a plain detach makes the client reattach to close).
pub(super) async fn answer_detach(sender: Sender, detached: DetachError) {
    if matches!(detached, DetachError::ClosedByRemote) {
        let _ = sender.close().await;
    } else {
        let _ = sender.detach().await;
    }
}

async fn stolen(sender: Sender) {
    let message = "a receiver with a higher owner level took the partition".to_string();
    let _ = sender
        .close_with_error(error(LinkError::Stolen, message))
        .await;
}

/// The message the service would deliver for `event`.
fn message(event: &Event) -> Message<Body<Value>> {
    let mut annotations = MessageAnnotations::builder()
        .insert("x-opt-sequence-number", Value::Long(event.sequence_number))
        .insert("x-opt-offset", Value::String(event.offset.to_string()))
        .insert(
            "x-opt-enqueued-time",
            Value::Timestamp(Timestamp::from(millis(event.enqueued_time))),
        );
    if let Some(key) = &event.partition_key {
        annotations = annotations.insert("x-opt-partition-key", Value::String(key.clone()));
    }
    let properties = event
        .properties
        .iter()
        .fold(ApplicationProperties::builder(), |builder, (k, v)| {
            builder.insert(k.clone(), SimpleValue::String(v.clone()))
        })
        .build();
    let body = match &event.sent_as {
        None => Body::Data(std::iter::once(Data::from(event.body.clone())).collect()),
        Some(super::Body::Sections(sections)) => {
            Body::Data(sections.iter().cloned().map(Data::from).collect())
        }
        Some(super::Body::Value(v)) => Body::Value(AmqpValue(v.clone())),
        Some(super::Body::Sequence(sections)) => {
            Body::Sequence(sections.iter().cloned().map(AmqpSequence).collect())
        }
    };
    let mut message = Message::builder()
        .message_annotations(annotations.build())
        .application_properties(properties)
        .body(body)
        .build();
    if let Some(ct) = &event.content_type {
        message.properties = Some(
            fe2o3_amqp::types::messaging::Properties::builder()
                .content_type(fe2o3_amqp::types::primitives::Symbol::from(ct.as_str()))
                .build(),
        );
    }
    message
}

fn error(condition: impl Into<definitions::ErrorCondition>, message: String) -> definitions::Error {
    definitions::Error::new(condition, message, None)
}

/// `{hub}/ConsumerGroups/{group}/Partitions/{id}`, optionally behind `scheme://host/`.
struct PartitionAddress {
    hub: String,
    consumer_group: String,
    partition: String,
}

impl PartitionAddress {
    fn parse(address: &str) -> Option<PartitionAddress> {
        let path = match address.split_once("://") {
            Some((_, rest)) => rest.split_once('/')?.1,
            None => address,
        };
        match path.trim_matches('/').split('/').collect::<Vec<_>>()[..] {
            [hub, groups, group, partitions, id]
                if groups.eq_ignore_ascii_case("ConsumerGroups")
                    && partitions.eq_ignore_ascii_case("Partitions") =>
            {
                Some(PartitionAddress {
                    hub: hub.to_string(),
                    consumer_group: group.to_string(),
                    partition: id.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// The selector filter's expression, from the attach's source.
fn selector(attach: &Attach) -> Option<String> {
    let filters = attach.source.as_ref()?.filter.as_ref()?;
    filters.values().find_map(|value| match value {
        Value::Described(described) => match &described.value {
            Value::String(expression) => Some(expression.clone()),
            _ => None,
        },
        Value::String(expression) => Some(expression.clone()),
        _ => None,
    })
}

fn owner_level(attach: &Attach) -> Option<i64> {
    let properties = attach.properties.as_ref()?;
    properties.iter().find_map(|(key, value)| match value {
        Value::Long(level) if key.0 == OWNER_LEVEL => Some(*level),
        _ => None,
    })
}

/// The receivers being served, by consumer group and partition, with their owner levels.
#[derive(Default)]
pub(super) struct Owners(Mutex<Vec<Owner>>);

struct Owner {
    id: u64,
    consumer_group: String,
    partition: usize,
    level: Option<i64>,
    stolen: Arc<Notify>,
}

impl Owners {
    /// Registers a receiver of `partition` for `group` at owner `level`, detaching the receivers
    /// it outranks; refused when an active receiver outranks it.
    fn claim(
        &self,
        group: &str,
        partition: usize,
        level: Option<i64>,
    ) -> Result<(u64, Arc<Notify>), definitions::Error> {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let mut owners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let rival = |o: &Owner| o.partition == partition && o.consumer_group == group;
        let top = owners
            .iter()
            .filter(|o| rival(o))
            .filter_map(|o| o.level)
            .max();
        if let Some(top) = top {
            if level.is_none_or(|level| level < top) {
                let message = format!("owner level {top} holds partition {partition}");
                return Err(error(LinkError::Stolen, message));
            }
        }
        if let Some(level) = level {
            owners.retain(|o| {
                let outranked = rival(o) && o.level.is_none_or(|l| l <= level);
                if outranked {
                    o.stolen.notify_one();
                }
                !outranked
            });
        }
        let (id, stolen) = (IDS.fetch_add(1, Ordering::Relaxed), Arc::new(Notify::new()));
        owners.push(Owner {
            id,
            consumer_group: group.to_string(),
            partition,
            level,
            stolen: stolen.clone(),
        });
        Ok((id, stolen))
    }

    fn release(&self, id: u64) {
        let mut owners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        owners.retain(|o| o.id != id);
    }
}

/// Releases a receiver's claim when its delivery ends, however it ends.
struct Release(Arc<Hub>, u64);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.owners.release(self.1);
    }
}
