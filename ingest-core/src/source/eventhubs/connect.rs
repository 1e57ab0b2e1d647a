//! Opening the source: the client (connection string or Microsoft Entra identity), the hub's
//! partitions, and the balancer that claims them.
//!
//! Invariant: errors are one line naming the setting to check.

use std::collections::HashMap;
use std::sync::Arc;

use azure_messaging_eventhubs::ConsumerClient;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::context::{random, Context};
use super::credit::Ahead;
use super::management::{Urgency, START_WAIT};
use super::ownership::balance_loop;
use super::receiver::{Control, Receiver, Shared};
use super::store::CheckpointStore;
use crate::config::cloud::CloudEnv;
use crate::config::eventhubs::{Credential, EventHubsConfig, SharedAccessKey};
use crate::storage::one_line;

/// Connects, reads the hub's partitions and starts load balancing. Returns the number of
/// partitions. Errors are one line naming the setting to check.
pub async fn open(
    config: &EventHubsConfig,
    cloud: &CloudEnv,
    store: CheckpointStore,
    ahead: Ahead,
    stop: CancellationToken,
) -> Result<(Receiver, Control, usize), String> {
    let client = Arc::new(connect(config, cloud).await?);
    let management = super::management::Management::new(client.clone(), reconnect(config, cloud));
    // Through `management`, so an answer that never comes ends the start-up with this error
    // instead of hanging it.
    let properties = management
        .hub(Urgency::Wait, START_WAIT)
        .await
        .map_err(|e| {
            format!(
                "cannot read event hub {} on {} ({}); check INGEST_EVENTHUBS_EVENT_HUB and INGEST_EVENTHUBS_CONNECTION_STRING (its policy needs Listen)",
                config.event_hub,
                config.fully_qualified_namespace,
                e
            )
        })?;
    let partition_ids = numbered(&config.event_hub, properties.partition_ids)?;
    let count = partition_ids.len();
    let owner_id = config.owner_id.clone().unwrap_or_else(unique_owner_id);
    tracing::info!(
        owner_id,
        partitions = count,
        "event hub reachable; balancing partitions"
    );
    if let Some(warning) = ahead.too_small(count) {
        tracing::warn!("{warning}");
    }
    let batch_budget = ahead.batch_budget(count);
    let prefetch = ahead.prefetch(count);
    tracing::info!(
        prefetch,
        channel = ahead.channel(),
        batch_budget,
        "link credit sized for events up to {} bytes{}",
        ahead.event_bytes(),
        if prefetch < super::credit::PREFETCH_MAX {
            " (set INGEST_MAX_RECORD_BYTES to the largest event for more credit)"
        } else {
            ""
        }
    );
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::channel(ahead.channel());
    let context = Arc::new(Context {
        stop: stop.clone(),
        client: client.clone(),
        management,
        store: store.clone(),
        shared: shared.clone(),
        tx,
        owner_id,
        event_hub: config.event_hub.clone(),
        partition_ids: std::sync::Mutex::new(partition_ids),
        start: config.start_position,
        expiry: config.ownership_expiry,
        interval: config.load_balancing_interval,
        ahead,
    });
    let balancer = tokio::spawn(balance_loop(context, stop.clone()));
    Ok((
        Receiver {
            rx,
            generations: HashMap::new(),
        },
        Control {
            shared,
            store,
            stop,
            batch_budget,
            balancer: Arc::new(tokio::sync::Mutex::new(Some(balancer))),
        },
        count,
    ))
}

/// Opens another client like the first (for management requests, once the first client's
/// management link stopped answering).
fn reconnect(config: &EventHubsConfig, cloud: &CloudEnv) -> super::management::Connector {
    let (config, cloud) = (Arc::new(config.clone()), Arc::new(cloud.clone()));
    Arc::new(move || {
        let (config, cloud) = (config.clone(), cloud.clone());
        Box::pin(async move { connect(&config, &cloud).await })
    })
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

/// Whether an error opening the source says the namespace could not be reached (refused,
/// reset, timed out, not resolved): an outage to wait for at start, unlike refused credentials
/// or an unknown hub, which need a change.
pub fn unreachable(message: &str) -> bool {
    let text = message.to_ascii_lowercase();
    [
        "connection refused",
        "connection reset",
        "timed out",
        "timeout",
        "broken pipe",
        "unreachable",
        "failed to lookup address",
        "dns error",
        "no route to host",
    ]
    .iter()
    .any(|marker| text.contains(marker))
        && !["unauthorized", "not found", "not-found", "forbidden"]
            .iter()
            .any(|marker| text.contains(marker))
}

/// The hub's partition ids in numeric order; an error when one is not a number (files are
/// named by partition number).
pub(super) fn numbered(event_hub: &str, mut ids: Vec<String>) -> Result<Vec<String>, String> {
    if let Some(bad) = ids.iter().find(|p| p.parse::<i32>().is_err()) {
        return Err(format!(
            "event hub {event_hub} has a partition id {bad:?} that is not a number; files are named by partition number"
        ));
    }
    ids.sort_by_key(|p| p.parse::<i32>().unwrap_or_default());
    Ok(ids)
}

fn unique_owner_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ingest".into());
    format!("{host}-{:016x}", random())
}

#[cfg(test)]
mod tests {
    use super::unreachable;

    #[test]
    fn only_a_namespace_that_cannot_be_reached_is_waited_for() {
        assert!(unreachable(
            "cannot connect to Event Hubs namespace ns.servicebus.windows.net (AMQP Error: AMQP Error: Azure Core Error: Connection refused (os error 111)); check INGEST_EVENTHUBS_CONNECTION_STRING"
        ));
        assert!(unreachable(
            "cannot connect to Event Hubs namespace ns (operation timed out)"
        ));
        assert!(!unreachable(
            "cannot connect to Event Hubs namespace ns (amqp:unauthorized-access: Unauthorized)"
        ));
        assert!(!unreachable(
            "cannot read event hub orders on ns (amqp:not-found: The messaging entity could not be found); check INGEST_EVENTHUBS_EVENT_HUB"
        ));
        assert!(!unreachable(
            "event hub orders has a partition id \"a\" that is not a number"
        ));
    }
}
