//! The seam between the pipeline loop and where records come from: a Kafka consumer group or
//! Azure Event Hubs. The loop polls a [`Receiver`]; flushes commit and the loop pauses through
//! a [`Control`].
//!
//! Invariants: an assignment reaches the loop before any record of it; `commit(p, last)` means
//! "everything through `last` has landed" (Kafka commits `last + 1`, Event Hubs checkpoints
//! `last`); nothing else moves a committed position.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Error;
use crate::eventhubs;
use crate::kafka::{self, KafkaConsumer};

/// Partition assignment changes, in the order the source saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// The receiving half, owned by the loop.
pub enum Receiver {
    Kafka {
        consumer: Arc<KafkaConsumer>,
        rebalances: mpsc::UnboundedReceiver<RebalanceEvent>,
    },
    EventHubs(eventhubs::source::Receiver),
}

/// What the loop handles next.
pub enum Next<'a> {
    Rebalance(RebalanceEvent),
    /// A Kafka message (or error). `rebalanced_first` were signalled while it was fetched and
    /// apply before it.
    Kafka {
        message: KafkaResult<BorrowedMessage<'a>>,
        rebalanced_first: Vec<RebalanceEvent>,
    },
    Event(eventhubs::source::Event),
    /// The source stopped delivering (Event Hubs shut down).
    Closed,
}

impl Receiver {
    /// Waits for the next rebalance, message or event. Cancel-safe.
    pub async fn next(&mut self) -> Next<'_> {
        match self {
            Receiver::Kafka {
                consumer,
                rebalances,
            } => {
                tokio::select! {
                    biased;
                    Some(event) = rebalances.recv() => Next::Rebalance(event),
                    message = consumer.recv() => {
                        // Rebalance callbacks run inside recv(): they apply before the message.
                        let mut rebalanced_first = Vec::new();
                        while let Ok(event) = rebalances.try_recv() {
                            rebalanced_first.push(event);
                        }
                        Next::Kafka { message, rebalanced_first }
                    }
                }
            }
            Receiver::EventHubs(r) => match r.next().await {
                Some(eventhubs::source::Next::Rebalance(e)) => Next::Rebalance(e),
                Some(eventhubs::source::Next::Event(e)) => Next::Event(e),
                None => Next::Closed,
            },
        }
    }
}

/// Commits, pauses and closes; cheap to clone, shared with the flush tasks.
#[derive(Clone)]
pub enum Control {
    Kafka {
        consumer: Arc<KafkaConsumer>,
        topic: Arc<str>,
    },
    EventHubs(eventhubs::source::Control),
}

impl Control {
    /// Records that everything in `partition` through `last` has landed.
    pub async fn commit(&self, partition: i32, last: i64) -> Result<(), String> {
        match self {
            Control::Kafka { consumer, topic } => {
                let (consumer, topic) = (consumer.clone(), topic.clone());
                tokio::task::spawn_blocking(move || {
                    kafka::commit(&consumer, &topic, partition, last + 1)
                })
                .await
                .map_err(|e| format!("commit task failed: {e}"))?
                .map_err(|e| e.to_string())
            }
            Control::EventHubs(c) => c.commit(partition, last).await,
        }
    }

    /// The committed position a gauge shows: Kafka's next offset, Event Hubs' last sequence
    /// number checkpointed.
    pub fn committed_position(&self, last: i64) -> i64 {
        match self {
            Control::Kafka { .. } => last + 1,
            Control::EventHubs(_) => last,
        }
    }

    pub fn set_paused(&self, partitions: &[i32], paused: bool) {
        if partitions.is_empty() {
            return;
        }
        match self {
            Control::Kafka { consumer, topic } => {
                kafka::set_paused(consumer, topic, partitions, paused)
            }
            Control::EventHubs(c) => c.set_paused(partitions, paused),
        }
    }

    /// Leaves the group / releases ownership. After the final commits.
    pub async fn close(&self) {
        match self {
            Control::Kafka { consumer, .. } => consumer.unsubscribe(),
            Control::EventHubs(c) => c.close().await,
        }
    }
}

/// A connected source.
pub struct Opened {
    pub receiver: Receiver,
    pub control: Control,
    pub partitions: usize,
    /// For the start-up log: the consumer group or owner.
    pub label: String,
}

/// Connects the configured source and checks that what it reads exists.
/// Background work (Event Hubs balancing and receivers) stops when `stop` is cancelled.
pub async fn open(config: &Config, stop: CancellationToken) -> Result<Opened, Error> {
    if let Some(eh) = &config.eventhubs {
        let store = eventhubs::store::CheckpointStore::from_config(config)
            .map_err(Error::Storage)?
            .ok_or_else(|| Error::Internal("Event Hubs source without settings".into()))?;
        let prefetch = eventhubs_prefetch(config.max_buffer_bytes, config.max_record_bytes);
        let (receiver, control, partitions) =
            eventhubs::source::open(eh, &config.cloud_env, store, prefetch, stop)
                .await
                .map_err(Error::EventHubs)?;
        return Ok(Opened {
            receiver: Receiver::EventHubs(receiver),
            control: Control::EventHubs(control),
            partitions,
            label: format!("{}/{}", eh.event_hub, eh.consumer_group),
        });
    }
    let (consumer, rebalances) = kafka::subscribe(config).map_err(Error::Kafka)?;
    let check = {
        let (c, cfg) = (consumer.clone(), config.clone());
        tokio::task::spawn_blocking(move || kafka::check_topic(&c, &cfg, Duration::from_secs(15)))
    };
    let partitions = check
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(Error::Kafka)?;
    Ok(Opened {
        receiver: Receiver::Kafka {
            consumer: consumer.clone(),
            rebalances,
        },
        control: Control::Kafka {
            consumer,
            topic: config.topic.as_str().into(),
        },
        partitions,
        label: config.kafka.group_id.clone(),
    })
}

/// Link credit per Event Hubs partition: events the client may hold ahead of the loop. A
/// sixteenth of the buffer cap in records of the largest size, between 32 and 300 (the SDK's
/// default).
pub fn eventhubs_prefetch(max_buffer_bytes: usize, max_record_bytes: usize) -> u32 {
    (max_buffer_bytes / 16 / max_record_bytes.max(1)).clamp(32, 300) as u32
}

#[cfg(test)]
mod tests {
    use super::eventhubs_prefetch;

    #[test]
    fn prefetch_follows_the_cap_within_bounds() {
        assert_eq!(eventhubs_prefetch(256 << 20, 1 << 20), 32, "large records");
        assert_eq!(eventhubs_prefetch(256 << 20, 100_000), 167);
        assert_eq!(
            eventhubs_prefetch(256 << 20, 1_000),
            300,
            "at most the SDK default"
        );
    }
}
