//! What the balancer and every partition task share: the client, the store, the channel to the
//! loop, this replica's owner id and the balancing settings.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_messaging_eventhubs::ConsumerClient;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::receiver::{Delivery, Shared};
use super::store::CheckpointStore;
use crate::config::eventhubs::StartAt;

/// Everything a partition task and the balancer need.
pub(super) struct Context {
    /// Cancelled when the pipeline ends: stops the balancer and every receiver.
    pub(super) stop: CancellationToken,
    pub(super) client: Arc<ConsumerClient>,
    /// The client's management requests, in turn (never abandoned mid-request).
    pub(super) management: super::management::Management,
    pub(super) store: CheckpointStore,
    pub(super) shared: Arc<Shared>,
    pub(super) tx: mpsc::Sender<Delivery>,
    pub(super) owner_id: String,
    pub(super) event_hub: String,
    /// The hub's partitions as last read (re-read every balancing round: a hub's partition
    /// count can grow while the service runs).
    pub(super) partition_ids: Mutex<Vec<String>>,
    pub(super) start: StartAt,
    pub(super) expiry: Duration,
    pub(super) interval: Duration,
    /// Sizes each receiver's link credit.
    pub(super) ahead: super::credit::Ahead,
}

/// First wait after a failed receive or start-up step; doubles up to [`BACKOFF_MAX`].
pub(super) const BACKOFF_START: Duration = Duration::from_millis(500);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A fresh random number (the std hasher's per-process random keys over the clock): owner ids
/// and the balancer's tie-break.
pub(super) fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::clock::now_ms() as u64);
    h.finish()
}
