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
    /// Records that everything in `partition` through `last` has landed, the last of it under
    /// the claim starting at `claim`; `cursor` is that record's
    /// [`crate::batch::RecordRef::cursor`] when known (Event Hubs' offset).
    pub async fn commit(
        &self,
        partition: i32,
        (claim, last): (i64, i64),
        cursor: Option<&str>,
    ) -> Result<(), String> {
        match self {
            Control::Kafka { consumer, topic } => {
                let (consumer, topic) = (consumer.clone(), topic.clone());
                tokio::task::spawn_blocking(move || {
                    kafka::commit(&consumer, &topic, partition, (claim, last + 1))
                })
                .await
                .map_err(|e| format!("commit task failed: {e}"))?
                .map_err(|e| e.to_string())
            }
            Control::EventHubs(c) => c.commit(partition, (claim, last), cursor).await,
        }
    }

    /// The last landed offset the group's committed position (Kafka) or checkpoint (Event Hubs)
    /// names for each of `partitions` that has one.
    pub async fn committed_through(
        &self,
        partitions: &[i32],
    ) -> Result<std::collections::BTreeMap<i32, i64>, String> {
        let mut found = std::collections::BTreeMap::new();
        match self {
            Control::Kafka { consumer, topic } => {
                let (consumer, topic, wanted) =
                    (consumer.clone(), topic.clone(), partitions.to_vec());
                let got = tokio::task::spawn_blocking(move || {
                    use rdkafka::consumer::Consumer as _;
                    let mut tpl = rdkafka::TopicPartitionList::new();
                    for p in &wanted {
                        tpl.add_partition(&topic, *p);
                    }
                    consumer.committed_offsets(tpl, Duration::from_secs(10))
                })
                .await
                .map_err(|e| format!("reading committed offsets failed: {e}"))?
                .map_err(|e| e.to_string())?;
                for e in got.elements() {
                    if let rdkafka::Offset::Offset(next) = e.offset() {
                        found.insert(e.partition(), next - 1);
                    }
                }
            }
            Control::EventHubs(c) => return c.checkpointed(partitions).await,
        }
        Ok(found)
    }

    /// What the source says of `partition` for deciding where it starts ([`crate::land::start`]):
    /// its offsets, the cluster, the committed position when this service committed it. An
    /// assigned partition fetches nothing until [`Control::start_at`]: Kafka's is paused in the
    /// rebalance callback, an Event Hubs receiver waits before opening its link.
    pub async fn partition_facts(
        &self,
        partition: i32,
        cluster: Option<String>,
    ) -> Result<super::PartitionFacts, String> {
        match self {
            Control::Kafka { consumer, topic } => {
                let (consumer, topic) = (consumer.clone(), topic.clone());
                let facts = tokio::task::spawn_blocking(move || {
                    kafka::partition_facts(&consumer, &topic, partition, Duration::from_secs(10))
                })
                .await
                .map_err(|e| format!("reading the partition's offsets failed: {e}"))??;
                Ok(super::PartitionFacts { cluster, ..facts })
            }
            Control::EventHubs(c) => c.partition_facts(partition, Duration::from_secs(30)).await,
        }
    }

    /// Starts fetching a partition that waited for its start, at `offset` (`None`: where the
    /// consumer group would, its committed offset or `auto.offset.reset`). `paused`: the loop
    /// paused it meanwhile (memory, shutdown): it is sought there and stays paused.
    pub fn start_at(&self, partition: i32, offset: Option<i64>, paused: bool) {
        match (self, offset) {
            (Control::Kafka { consumer, topic }, Some(offset)) => {
                kafka::start_at(consumer, topic, partition, offset, !paused)
            }
            (Control::Kafka { consumer, topic }, None) if !paused => {
                kafka::resume(consumer, topic, &[(partition, None)])
            }
            (Control::Kafka { .. }, None) => {}
            (Control::EventHubs(c), first) => {
                c.set_paused(&[partition], paused);
                c.start_at(partition, first);
            }
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

    /// Whether the source starts a partition over itself ([`Control::restart`]): Event Hubs
    /// replaces its receiver, which delivers `Assigned` again; a Kafka partition is sought.
    pub fn restart(&self, partition: i32) -> bool {
        match self {
            Control::Kafka { .. } => false,
            Control::EventHubs(c) => {
                c.restart(partition);
                true
            }
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
    /// The Kafka cluster id, when the broker gives one (written into claims).
    pub cluster: Option<String>,
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
                .map_err(|e| match eventhubs::unreachable(&e) {
                    true => Error::Unavailable(e),
                    false => Error::EventHubs(e),
                })?;
        return Ok(Opened {
            source: Source::EventHubs(receiver),
            control: Control::EventHubs(control),
            partitions,
            label: format!("{}/{}", eh.event_hub, eh.consumer_group),
            cluster: None,
        });
    }
    let (consumer, rebalances) = kafka::subscribe(config)?;
    let check = {
        let (c, cfg) = (consumer.clone(), config.clone());
        tokio::task::spawn_blocking(move || kafka::check_topic(&c, &cfg, Duration::from_secs(15)))
    };
    let (partitions, cluster) = check.await.map_err(|e| Error::Internal(e.to_string()))??;
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
        cluster,
    })
}
