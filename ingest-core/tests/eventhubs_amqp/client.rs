//! Microsoft's client pointed at the test server: a consumer, receivers from a start position,
//! the next events, and what was read in the server's terms.

use std::time::Duration;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;
use azure_messaging_eventhubs::models::{AmqpSimpleValue, ReceivedEventData};
use azure_messaging_eventhubs::{
    ConsumerClient, EventReceiver, OpenReceiverOptions, StartLocation, StartPosition,
};
use futures::StreamExt;

use crate::eventhubs_server::{Event, EventHubServer, BEARER_TOKEN};

pub const NAMESPACE: &str = "ingest-test.servicebus.windows.net";
pub const HUB: &str = "orders";
pub const WAIT: Duration = Duration::from_secs(30);

pub async fn consumer(server: &EventHubServer) -> ConsumerClient {
    ConsumerClient::builder()
        .with_custom_endpoint(server.endpoint())
        .open_with_connection_string(&server.connection_string(), Some(HUB))
        .await
        .expect("the client connects")
}

pub async fn receiver(
    consumer: &ConsumerClient,
    partition: &str,
    location: StartLocation,
    inclusive: bool,
    owner_level: Option<i64>,
) -> EventReceiver {
    let options = OpenReceiverOptions {
        owner_level,
        ..from(location, inclusive)
    };
    open(consumer, partition, options).await
}

pub fn from(location: StartLocation, inclusive: bool) -> OpenReceiverOptions {
    OpenReceiverOptions {
        start_position: Some(StartPosition {
            location,
            inclusive,
        }),
        ..Default::default()
    }
}

pub async fn open(
    consumer: &ConsumerClient,
    partition: &str,
    options: OpenReceiverOptions,
) -> EventReceiver {
    consumer
        .open_receiver_on_partition(partition.to_string(), Some(options))
        .await
        .expect("a receiver")
}

/// The next `count` events of `receiver` (the link attaches on the first poll).
pub async fn take(receiver: &EventReceiver, count: usize) -> Vec<ReceivedEventData> {
    let events = receiver.stream_events().take(count).collect::<Vec<_>>();
    let events = tokio::time::timeout(WAIT, events)
        .await
        .expect("events arrive in time");
    events.into_iter().map(|e| e.expect("an event")).collect()
}

/// What the client read, in the server's terms.
pub fn as_stored(received: &ReceivedEventData) -> Event {
    let data = received.event_data();
    let mut properties: Vec<(String, String)> = data
        .properties()
        .map(|p| {
            p.iter()
                .map(|(k, v)| match v {
                    AmqpSimpleValue::String(s) => (k.clone(), s.clone()),
                    other => panic!("property {k} is {other:?}, not a string"),
                })
                .collect()
        })
        .unwrap_or_default();
    properties.sort();
    Event {
        sequence_number: received.sequence_number().expect("a sequence number"),
        offset: received
            .offset()
            .as_ref()
            .expect("an offset")
            .parse()
            .expect("a numeric offset"),
        enqueued_time: received.enqueued_time().expect("an enqueued time"),
        partition_key: received.partition_key().clone(),
        body: data.body().expect("a body").to_vec(),
        properties,
        sent_as: None,
        content_type: None,
    }
}

pub fn sorted(mut events: Vec<Event>) -> Vec<Event> {
    for event in &mut events {
        event.properties.sort();
    }
    events
}

/// Hands out the server's test bearer token, as an Entra ID credential hands out a JWT.
#[derive(Debug)]
pub struct Bearer;

#[async_trait::async_trait]
impl TokenCredential for Bearer {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let expires_on = OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        Ok(AccessToken::new(Secret::new(BEARER_TOKEN), expires_on))
    }
}
