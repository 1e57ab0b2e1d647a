//! The seam between the pipeline loop and the sources: the loop polls a [`Receiver`] of the
//! [`Source`]; flushes commit and the loop pauses through a [`Control`]. Each method only
//! dispatches to the source's own module.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use rdkafka::consumer::{Consumer, MessageStream};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{eventhubs, kafka, RebalanceEvent};
use crate::config::Config;
use crate::error::Error;

/// The connected source, owned by the pipeline; the loop reads it through [`Source::receiver`].
pub enum Source {
    Kafka {
        consumer: Arc<kafka::SharedConsumer>,
        rebalances: mpsc::UnboundedReceiver<RebalanceEvent>,
    },
    EventHubs(eventhubs::Receiver),
}

impl Source {
    /// The receiving half for one run of the loop. For Kafka it holds one message stream for
    /// the whole run: `recv()` would register and drop a waker slot per message.
    pub fn receiver(&mut self) -> Receiver<'_> {
        match self {
            Source::Kafka {
                consumer,
                rebalances,
            } => Receiver::Kafka {
                messages: consumer.stream(),
                rebalances,
            },
            Source::EventHubs(r) => Receiver::EventHubs(r),
        }
    }
}

/// What the loop polls. Messages borrow the consumer (`'a`), not the receiver, so the loop can
/// keep taking while it holds one.
pub enum Receiver<'a> {
    Kafka {
        messages: MessageStream<'a, kafka::Context>,
        rebalances: &'a mut mpsc::UnboundedReceiver<RebalanceEvent>,
    },
    EventHubs(&'a mut eventhubs::Receiver),
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
    Event(eventhubs::Event),
    /// The source stopped delivering (Event Hubs shut down).
    Closed,
}

impl<'a> Receiver<'a> {
    /// Waits for the next rebalance, message or event. Cancel-safe.
    pub async fn next(&mut self) -> Next<'a> {
        match self {
            Receiver::Kafka {
                messages,
                rebalances,
            } => {
                tokio::select! {
                    biased;
                    Some(event) = rebalances.recv() => Next::Rebalance(event),
                    message = messages.next() => {
                        kafka_message(message.expect("Kafka streams never end"), rebalances)
                    }
                }
            }
            Receiver::EventHubs(r) => eh_next(r.next().await),
        }
    }

    /// What is already waiting, without yielding: the loop takes a burst of these per turn
    /// (one clock reading, no waker registration per message).
    pub fn next_now(&mut self) -> Option<Next<'a>> {
        match self {
            Receiver::Kafka {
                messages,
                rebalances,
            } => {
                // A rebalance without a message waits for `next` (kafka_message takes the
                // rest): one channel check per message.
                let message = messages.next().now_or_never()??;
                Some(kafka_message(message, rebalances))
            }
            Receiver::EventHubs(r) => r.try_next().map(|n| eh_next(Some(n))),
        }
    }
}

fn kafka_message<'a>(
    message: KafkaResult<BorrowedMessage<'a>>,
    rebalances: &mut mpsc::UnboundedReceiver<RebalanceEvent>,
) -> Next<'a> {
    // Rebalance callbacks run inside the poll: they apply before the message.
    let mut rebalanced_first = Vec::new();
    while let Ok(event) = rebalances.try_recv() {
        rebalanced_first.push(event);
    }
    Next::Kafka {
        message,
        rebalanced_first,
    }
}

fn eh_next(next: Option<eventhubs::Next>) -> Next<'static> {
    match next {
        Some(eventhubs::Next::Rebalance(e)) => Next::Rebalance(e),
        Some(eventhubs::Next::Event(e)) => Next::Event(e),
        None => Next::Closed,
    }
}

/// Commits, pauses and closes; cheap to clone, shared with the flush tasks.
#[derive(Clone)]
pub enum Control {
    Kafka {
        consumer: Arc<kafka::SharedConsumer>,
        topic: Arc<str>,
    },
    EventHubs(eventhubs::Control),
}

impl Control {
    /// Records that everything in `partition` through `last` has landed; `cursor` is that
    /// record's [`crate::batch::RecordRef::cursor`] when known (Event Hubs' offset).
    pub async fn commit(
        &self,
        partition: i32,
        last: i64,
        cursor: Option<&str>,
    ) -> Result<(), String> {
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
            Control::EventHubs(c) => c.commit(partition, last, cursor).await,
        }
    }

    /// Where `partition` resumes if this service recorded it: Kafka's committed offset when we
    /// committed it, the sequence number after Event Hubs' checkpoint. `None` otherwise (none
    /// recorded, set by another tool, or not readable now): the first batch is then checked
    /// against the claims before it.
    pub async fn resumed_at(&self, partition: i32) -> Option<i64> {
        match self {
            Control::Kafka { consumer, topic } => {
                let (consumer, topic) = (consumer.clone(), topic.clone());
                // A metadata string that is not UTF-8 panics in rdkafka: treated as not ours.
                tokio::task::spawn_blocking(move || {
                    kafka::committed_by_us(&consumer, &topic, partition, Duration::from_secs(10))
                })
                .await
                .ok()
                .flatten()
            }
            Control::EventHubs(c) => c.resumed_at(partition).await,
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

    /// Stops fetching for `partitions` (Kafka drops what it had prefetched for them).
    pub fn pause(&self, partitions: &[i32]) {
        match self {
            Control::Kafka { consumer, topic } => kafka::pause(consumer, topic, partitions),
            Control::EventHubs(c) => c.set_paused(partitions, true),
        }
    }

    /// Fetches again for each partition, Kafka from the offset given (the one after the last
    /// record received); Event Hubs receivers carry on from where they stopped.
    pub fn resume(&self, partitions: &[(i32, Option<i64>)]) {
        match self {
            Control::Kafka { consumer, topic } => kafka::resume(consumer, topic, partitions),
            Control::EventHubs(c) => {
                let ids: Vec<i32> = partitions.iter().map(|(p, _)| *p).collect();
                c.set_paused(&ids, false)
            }
        }
    }

    /// What batches and encoded files may hold: `INGEST_MAX_BUFFER_BYTES` less what the source
    /// holds ahead of the loop: librdkafka's prefetch ([`kafka::batch_budget`]), Event Hubs' link
    /// credit and channel ([`eventhubs::credit`]).
    pub fn batch_budget(&self, config: &Config) -> usize {
        match self {
            Control::Kafka { .. } => kafka::batch_budget(config),
            Control::EventHubs(c) => c.batch_budget,
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
    pub source: Source,
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
        let ahead = eventhubs::credit::Ahead::new(config.max_buffer_bytes, config.max_record_bytes);
        let (receiver, control, partitions) =
            eventhubs::open(eh, &config.cloud_env, store, ahead, stop)
                .await
                .map_err(Error::EventHubs)?;
        return Ok(Opened {
            source: Source::EventHubs(receiver),
            control: Control::EventHubs(control),
            partitions,
            label: format!("{}/{}", eh.event_hub, eh.consumer_group),
        });
    }
    let (consumer, rebalances) = kafka::subscribe(config)?;
    let check = {
        let (c, cfg) = (consumer.clone(), config.clone());
        tokio::task::spawn_blocking(move || kafka::check_topic(&c, &cfg, Duration::from_secs(15)))
    };
    let partitions = check
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(Error::Kafka)?;
    Ok(Opened {
        source: Source::Kafka {
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
