//! An Azure Event Hubs server for integration tests: speaks AMQP 1.0 as the service does to
//! Microsoft's client (`azure_messaging_eventhubs`), so tests drive the official client over a
//! socket. It owns one hub of `partitions` partitions whose events the test publishes in process;
//! sequence numbers start at 0 per partition and offsets are byte positions, never equal to the
//! sequence number, so mixing the two up shows. It runs on its own thread and runtime (any test
//! flavour, even one that blocks) and stops when dropped.
//!
//! What the client gets: SASL ANONYMOUS without TLS; `$cbs` put-token, accepting only SAS tokens
//! signed with this server's key (or the test bearer as a `jwt`); `$management` READ of the hub
//! and partition properties; receiver links on `{hub}/ConsumerGroups/{group}/Partitions/{id}`
//! that honour the start-position filter, link credit and owner level (epoch).
//!
//! Compiled only into the tests that use it (`mod eventhubs_server;`), not into every test
//! binary through `common`.
#![allow(dead_code)]

mod amqp;
mod auth;
mod filter;
mod nodes;
mod partition_link;

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The shared access policy the server's connection strings name.
pub const KEY_NAME: &str = "RootManageSharedAccessKey";
/// The policy's key (used as raw bytes for HMAC-SHA256, as the service does).
pub const KEY: &str = "aW5nZXN0LXRlc3QtZXZlbnRodWJzLWtleS0wMDAwMDA=";
/// A bearer token the server accepts as a `jwt` put-token (for credential-based clients).
pub const BEARER_TOKEN: &str = "ingest-test-bearer-token";

/// Each event takes this many bytes of the partition's log besides its body, so offsets grow
/// faster than sequence numbers.
const EVENT_OVERHEAD_BYTES: u64 = 64;
/// Where the first event of a partition starts.
const FIRST_OFFSET: u64 = 4096;

/// An event as the server stores and delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub sequence_number: i64,
    /// Byte position in the partition's log (delivered as a string, as the service does).
    pub offset: u64,
    /// Milliseconds precision, as AMQP timestamps carry it.
    pub enqueued_time: SystemTime,
    pub partition_key: Option<String>,
    pub body: Vec<u8>,
    pub properties: Vec<(String, String)>,
    /// The body as sent when it is not one data section holding `body` (then empty).
    pub sent_as: Option<Body>,
    /// The message's content type (Azure Schema Registry's serializers: `avro/binary+<id>`).
    pub content_type: Option<String>,
}

/// A body as AMQP 1.0 producers other than the SDKs send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Several data sections (one message split in parts).
    Sections(Vec<Vec<u8>>),
    /// One `amqp-value` section.
    Value(fe2o3_amqp::types::primitives::Value),
    /// `amqp-sequence` sections, each a list.
    Sequence(Vec<Vec<fe2o3_amqp::types::primitives::Value>>),
}

/// A receiver link the client attached, or tried to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverAttach {
    /// The source address as sent, e.g. `amqps://ns/hub/ConsumerGroups/$Default/Partitions/0`.
    pub address: String,
    /// Empty when the address did not parse.
    pub consumer_group: String,
    pub partition: String,
    /// The selector filter's expression, e.g. `amqp.annotation.x-opt-sequence-number >'4'`.
    pub filter: String,
    /// `com.microsoft:epoch`, the owner level.
    pub owner_level: Option<i64>,
    /// The AMQP error condition the server refused the link with, if it did.
    pub refused: Option<String>,
}

/// A CBS put-token request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutToken {
    pub token_type: String,
    /// The entity the token was put for (the put-token `name`).
    pub audience: String,
    pub accepted: bool,
}

/// A running server; dropping it stops it.
pub struct EventHubServer {
    hub: Arc<Hub>,
    port: u16,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl EventHubServer {
    /// Starts a server for hub `hub` of namespace `namespace_host` (e.g.
    /// `test.servicebus.windows.net`, only a name: the client dials `endpoint()`), with
    /// partitions `"0"` to `partitions - 1`, on a free port of 127.0.0.1.
    pub fn start(namespace_host: &str, hub: &str, partitions: usize) -> EventHubServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("bound address").port();
        let hub = Arc::new(Hub::new(namespace_host, hub, partitions));
        let shutdown = CancellationToken::new();
        let thread = std::thread::Builder::new()
            .name(format!("eventhubs-server-{port}"))
            // Room to encode bodies nested thousands deep (the encoder recurses), as tests of
            // hostile bodies publish; only touched pages are memory.
            .stack_size(1 << 30)
            .spawn({
                let (hub, shutdown) = (hub.clone(), shutdown.clone());
                move || {
                    // One thread: frames of one connection are answered in the order they
                    // arrive (a session ended before another gets its End first), as the
                    // service does; the client closes the connection without waiting for the
                    // End of a session it dropped, and an End after its Close is an error to it.
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("the server's runtime starts");
                    runtime.block_on(amqp::serve(listener, hub, shutdown));
                    // Ends every connection, session and link task.
                    runtime.shutdown_timeout(Duration::from_secs(5));
                }
            })
            .expect("the server's thread starts");
        EventHubServer {
            hub,
            port,
            shutdown,
            thread: Some(thread),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address to dial: `amqp://127.0.0.1:PORT` (the client's custom endpoint).
    pub fn endpoint(&self) -> String {
        format!("amqp://127.0.0.1:{}", self.port)
    }

    /// A connection string with the server's key and `EntityPath` set to the hub.
    pub fn connection_string(&self) -> String {
        self.connection_string_with_key(KEY)
    }

    /// The same connection string signed with `key` (a wrong key gets the client a 401).
    pub fn connection_string_with_key(&self, key: &str) -> String {
        format!(
            "Endpoint=sb://{}/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={key};EntityPath={}",
            self.hub.namespace, self.hub.name
        )
    }

    /// Appends an event to `partition`; returns its sequence number and offset.
    pub fn publish(
        &self,
        partition: &str,
        body: &[u8],
        properties: &[(&str, &str)],
    ) -> (i64, String) {
        self.publish_with_key(partition, None, body, properties)
    }

    /// [`Self::publish`] with a partition key (delivered as `x-opt-partition-key`).
    pub fn publish_with_key(
        &self,
        partition: &str,
        partition_key: Option<&str>,
        body: &[u8],
        properties: &[(&str, &str)],
    ) -> (i64, String) {
        let partition = self
            .hub
            .partition(partition)
            .unwrap_or_else(|| panic!("no partition {partition:?}"));
        let event = partition.append(partition_key, body, properties, None, None);
        (event.sequence_number, event.offset.to_string())
    }

    /// Appends an event with a content type (what Azure's schema-registry serializers set);
    /// returns its sequence number.
    pub fn publish_typed(&self, partition: &str, body: &[u8], content_type: &str) -> i64 {
        let partition = self
            .hub
            .partition(partition)
            .unwrap_or_else(|| panic!("no partition {partition:?}"));
        partition
            .append(None, body, &[], None, Some(content_type))
            .sequence_number
    }

    /// Appends an event whose body is sent as `body`; returns its sequence number.
    pub fn publish_body(&self, partition: &str, body: Body) -> i64 {
        let partition = self
            .hub
            .partition(partition)
            .unwrap_or_else(|| panic!("no partition {partition:?}"));
        partition
            .append(None, &[], &[], Some(body), None)
            .sequence_number
    }

    /// Adds `n` partitions after the last (the service lets a hub's partition count grow, never
    /// shrink); returns the new count.
    pub fn add_partitions(&self, n: usize) -> usize {
        let mut partitions = self.hub.all_partitions();
        partitions.extend((0..n).map(|_| Arc::new(Partition::new())));
        partitions.len()
    }

    /// Holds back every later `$management` answer by `delay`, in order (requests on one link
    /// are answered one after another, as the service does).
    pub fn delay_management(&self, delay: Duration) {
        *self.hub.management_delay.lock().unwrap() = delay;
    }

    /// Never answers the `$management` requests numbered `numbers` (from 1, over every
    /// connection), as a namespace that lost them: their clients wait on.
    pub fn lose_management_answers(&self, numbers: &[usize]) {
        self.hub.lost_answers.lock().unwrap().extend(numbers);
    }

    /// Every event of `partition`, in order.
    pub fn events(&self, partition: &str) -> Vec<Event> {
        let partition = self.hub.partition(partition).expect("known partition");
        let events = partition.log().events.clone();
        events
    }

    /// Every receiver attach so far, in order.
    pub fn attaches(&self) -> Vec<ReceiverAttach> {
        self.hub.records().attaches.clone()
    }

    /// Waits until `count` receiver attaches were decided (admitted with their start position
    /// fixed, or refused): what a test awaits before publishing events for an `@latest` receiver.
    pub async fn until_attached(&self, count: usize) {
        let mut attached = self.hub.attached.subscribe();
        attached
            .wait_for(|n| *n >= count)
            .await
            .expect("the server is running");
    }

    /// Every put-token request so far, in order.
    pub fn tokens(&self) -> Vec<PutToken> {
        self.hub.records().tokens.clone()
    }
}

impl Drop for EventHubServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What every connection shares: the hub's partitions, its keys and what tests read back.
struct Hub {
    namespace: String,
    name: String,
    created_at: SystemTime,
    keys: auth::Keys,
    /// Grows when a test adds partitions (as scaling out a hub's partition count does).
    partitions: Mutex<Vec<Arc<Partition>>>,
    records: Mutex<Records>,
    /// The number of receiver attaches recorded.
    attached: watch::Sender<usize>,
    owners: partition_link::Owners,
    /// How long each `$management` answer is held back (a slow or loaded namespace).
    management_delay: Mutex<Duration>,
    /// `$management` requests answered so far, and the numbers (from 1) of those never answered.
    management_requests: std::sync::atomic::AtomicUsize,
    lost_answers: Mutex<Vec<usize>>,
}

#[derive(Default)]
struct Records {
    attaches: Vec<ReceiverAttach>,
    tokens: Vec<PutToken>,
}

impl Hub {
    fn new(namespace: &str, name: &str, partitions: usize) -> Hub {
        Hub {
            namespace: namespace.to_string(),
            name: name.to_string(),
            created_at: to_millis(SystemTime::now()),
            keys: auth::Keys {
                key_name: KEY_NAME.to_string(),
                key: KEY.to_string(),
                bearer: BEARER_TOKEN.to_string(),
            },
            partitions: Mutex::new(
                (0..partitions)
                    .map(|_| Arc::new(Partition::new()))
                    .collect(),
            ),
            records: Mutex::default(),
            attached: watch::Sender::new(0),
            owners: partition_link::Owners::default(),
            management_delay: Mutex::new(Duration::ZERO),
            management_requests: Default::default(),
            lost_answers: Mutex::default(),
        }
    }

    /// The partition with id `id` (`"0"`, `"1"`, ...; no leading zeros).
    fn partition(&self, id: &str) -> Option<Arc<Partition>> {
        let index: usize = id.parse().ok()?;
        (index.to_string() == id)
            .then(|| self.partition_at(index))
            .flatten()
    }

    fn partition_at(&self, index: usize) -> Option<Arc<Partition>> {
        self.all_partitions().get(index).cloned()
    }

    fn all_partitions(&self) -> MutexGuard<'_, Vec<Arc<Partition>>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn partition_ids(&self) -> Vec<String> {
        (0..self.all_partitions().len())
            .map(|i| i.to_string())
            .collect()
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record_attach(&self, attach: ReceiverAttach) {
        let mut records = self.records();
        records.attaches.push(attach);
        self.attached.send_replace(records.attaches.len());
    }
}

/// One partition's log, and a signal that wakes receivers waiting for new events.
struct Partition {
    log: Mutex<Log>,
    /// The number of events, sent after every append.
    appended: watch::Sender<usize>,
}

struct Log {
    events: Vec<Event>,
    next_offset: u64,
}

impl Partition {
    fn new() -> Partition {
        Partition {
            log: Mutex::new(Log {
                events: Vec::new(),
                next_offset: FIRST_OFFSET,
            }),
            appended: watch::Sender::new(0),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(
        &self,
        partition_key: Option<&str>,
        body: &[u8],
        properties: &[(&str, &str)],
        sent_as: Option<Body>,
        content_type: Option<&str>,
    ) -> Event {
        let mut log = self.log();
        let event = Event {
            sequence_number: log.events.len() as i64,
            offset: log.next_offset,
            enqueued_time: to_millis(SystemTime::now()),
            partition_key: partition_key.map(str::to_string),
            body: body.to_vec(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            sent_as,
            content_type: content_type.map(str::to_string),
        };
        log.next_offset += body.len() as u64 + EVENT_OVERHEAD_BYTES;
        log.events.push(event.clone());
        let count = log.events.len();
        drop(log);
        self.appended.send_replace(count);
        event
    }

    /// The events from index `from` on (cloned, so no lock is held while sending them).
    fn events_from(&self, from: usize) -> Vec<Event> {
        self.log().events.get(from..).unwrap_or_default().to_vec()
    }
}

/// `time` truncated to whole milliseconds.
fn to_millis(time: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis(time) as u64)
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}
