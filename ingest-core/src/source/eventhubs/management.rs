//! The hub's management requests (its partition list, a partition's properties), one at a time,
//! each run to its answer in a task of its own.
//!
//! Invariant: a request is never abandoned between its send and its answer on a link still in
//! use. The SDK's management link hands a caller the next answer it reads, not the one
//! correlated with its request, so a caller that stopped waiting mid-request (a round's timeout)
//! would leave its answer to the next caller: another partition's properties, or the partition
//! list read as properties. A caller here that stops waiting leaves its request running and its
//! answer is dropped; a partition's answer is also checked to name the partition asked for. A
//! request unanswered for [`STUCK_AFTER`] means the link stopped answering (the SDK sets no
//! deadline of its own): the next request goes over a new connection and the old one is closed
//! with the requests still waiting on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_messaging_eventhubs::models::{EventHubPartitionProperties, EventHubProperties};
use azure_messaging_eventhubs::ConsumerClient;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::storage::one_line;

/// At most this many requests wait their turn; past it a request fails at once (a namespace that
/// stopped answering must not collect a task per round and partition).
const QUEUED_MAX: usize = 16;

/// A request in flight this long without an answer will never have one.
pub(super) const STUCK_AFTER: Duration = Duration::from_secs(20);

/// The longest a start waits for its answer: a partition's (then it retries) and the service's,
/// for the partition list (then it fails).
pub(super) const START_WAIT: Duration = Duration::from_secs(30);

/// Opens a new client for management requests.
pub(super) type Connector = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<ConsumerClient, String>> + Send>> + Send + Sync,
>;

/// Management requests of one client, in turn.
pub(super) struct Management {
    connect: Connector,
    link: std::sync::Mutex<Arc<Link>>,
}

/// One client's management link and the requests on it.
struct Link {
    client: Arc<ConsumerClient>,
    /// Held by the request in flight.
    turn: Mutex<()>,
    /// One permit per request started and not yet answered.
    queued: Arc<Semaphore>,
    /// When the request in flight was sent.
    sent: std::sync::Mutex<Option<Instant>>,
    /// Ends every request on the link once it is replaced.
    closed: CancellationToken,
}

impl Link {
    fn new(client: Arc<ConsumerClient>) -> Arc<Link> {
        Arc::new(Link {
            client,
            turn: Mutex::new(()),
            queued: Arc::new(Semaphore::new(QUEUED_MAX)),
            sent: std::sync::Mutex::new(None),
            closed: CancellationToken::new(),
        })
    }

    fn stuck(&self, now: Instant) -> bool {
        let sent = *self.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.is_some_and(|at| now.duration_since(at) >= STUCK_AFTER)
    }
}

/// Whether a request waits for the ones before it or is skipped when another is under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Urgency {
    /// Waits its turn (where a partition starts).
    Wait,
    /// Skipped when another request is under way (the lag, the partition list: read next round).
    IfIdle,
}

impl Management {
    /// Requests over `client` first, over a client from `connect` once it stops answering.
    pub(super) fn new(client: Arc<ConsumerClient>, connect: Connector) -> Management {
        Management {
            connect,
            link: std::sync::Mutex::new(Link::new(client)),
        }
    }

    /// The properties of partition `id`, waiting at most `wait` for them.
    pub(super) async fn partition(
        &self,
        id: &str,
        urgency: Urgency,
        wait: Duration,
    ) -> Result<EventHubPartitionProperties, String> {
        let asked = id.to_string();
        let props = self
            .call(urgency, wait, move |client| async move {
                client.get_partition_properties(&asked).await
            })
            .await?;
        if props.id != id {
            return Err(format!(
                "the answer for partition {id}'s properties named partition {}",
                props.id
            ));
        }
        Ok(props)
    }

    /// The hub's properties (its partition list), waiting at most `wait` for them.
    pub(super) async fn hub(
        &self,
        urgency: Urgency,
        wait: Duration,
    ) -> Result<EventHubProperties, String> {
        self.call(urgency, wait, |client| async move {
            client.get_eventhub_properties().await
        })
        .await
    }

    /// The link to send on: a new one when the current one has a request unanswered for
    /// [`STUCK_AFTER`].
    async fn link(&self) -> Result<Arc<Link>, String> {
        let current = self.link.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !current.stuck(Instant::now()) {
            return Ok(current);
        }
        tracing::warn!(
            "an Event Hubs management request has had no answer for {STUCK_AFTER:?}; opening a new connection for them"
        );
        let fresh = Link::new(Arc::new((self.connect)().await?));
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&link, &current) {
            // Another caller replaced it meanwhile: use theirs, ours is dropped unused.
            return Ok(link.clone());
        }
        std::mem::replace(&mut *link, fresh.clone()).closed.cancel();
        Ok(fresh)
    }

    async fn call<T, F, Fut>(
        &self,
        urgency: Urgency,
        wait: Duration,
        request: F,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(Arc<ConsumerClient>) -> Fut + Send + 'static,
        Fut: Future<Output = azure_messaging_eventhubs::Result<T>> + Send + 'static,
    {
        let link = self.link().await?;
        if urgency == Urgency::IfIdle && link.queued.available_permits() < QUEUED_MAX {
            return Err("another management request is under way".into());
        }
        let permit =
            link.queued.clone().try_acquire_owned().map_err(|_| {
                format!("{QUEUED_MAX} management requests are waiting for an answer")
            })?;
        let task = tokio::spawn(async move {
            let on = link.clone();
            let answer = async move {
                let _turn = on.turn.lock().await;
                *on.sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                let answer = request(on.client.clone()).await;
                *on.sent.lock().unwrap_or_else(|e| e.into_inner()) = None;
                answer
            };
            let answer = tokio::select! {
                answer = answer => Some(answer),
                _ = link.closed.cancelled() => None,
            };
            drop(permit);
            answer
        });
        match tokio::time::timeout(wait, task).await {
            Err(_) => Err(format!("no answer in {wait:?}")),
            Ok(Err(e)) => Err(format!("the request failed: {e}")),
            Ok(Ok(None)) => Err("its connection was replaced before an answer came".into()),
            Ok(Ok(Some(answer))) => answer.map_err(|e| one_line(&e)),
        }
    }
}
