//! The Event Hubs test server (`eventhubs_server`) driven by Microsoft's client
//! (`azure_messaging_eventhubs`) over a socket: the properties it reads, the events it receives
//! with their sequence numbers and offsets, where a receiver starts, that a caught-up receiver
//! gets new events, and that the service's refusals (wrong key, unknown partition, a higher
//! owner level) reach it as errors.

#[path = "eventhubs_amqp/client.rs"]
mod client;
mod eventhubs_server;

use std::collections::HashMap;
use std::sync::Arc;

use azure_messaging_eventhubs::error::ErrorKind;
use azure_messaging_eventhubs::{
    ConsumerClient, EventReceiver, OpenReceiverOptions, StartLocation,
};
use futures::StreamExt;

use client::*;
use eventhubs_server::{Event, EventHubServer};

#[tokio::test]
async fn hub_and_partition_properties_are_what_the_server_holds() {
    let server = EventHubServer::start(NAMESPACE, HUB, 3);
    server.publish("1", b"first", &[]);
    let (last_sequence, last_offset) = server.publish("1", b"second", &[]);
    let consumer = consumer(&server).await;

    let hub = consumer.get_eventhub_properties().await.expect("hub");
    assert_eq!(hub.name, HUB);
    assert_eq!(hub.partition_ids, ["0", "1", "2"]);
    assert!(hub.created_on.is_some());

    let one = consumer.get_partition_properties("1").await.expect("1");
    assert_eq!((one.id.as_str(), one.eventhub.as_str()), ("1", HUB));
    assert_eq!(one.beginning_sequence_number, 0);
    assert_eq!(one.last_enqueued_sequence_number, last_sequence);
    assert_eq!(one.last_enqueued_offset, last_offset);
    assert_ne!(one.last_enqueued_offset, last_sequence.to_string());
    assert_eq!(
        one.last_enqueued_time_utc,
        Some(server.events("1")[1].enqueued_time)
    );
    assert!(!one.is_empty);

    let empty = consumer.get_partition_properties("0").await.expect("0");
    assert!(empty.is_empty);
    assert_eq!(empty.last_enqueued_sequence_number, -1);
    assert_eq!(empty.last_enqueued_time_utc, None);

    let missing = consumer.get_partition_properties("3").await;
    assert!(missing.is_err(), "partition 3 does not exist: {missing:?}");
    consumer.close().await.expect("close");

    let tokens = server.tokens();
    assert!(!tokens.is_empty());
    assert!(
        tokens.iter().all(|t| t.accepted
            && t.token_type == "servicebus.windows.net:sastoken"
            && t.audience.ends_with("/$management")),
        "{tokens:?}"
    );
}

#[tokio::test]
async fn receivers_from_the_earliest_get_every_event_as_published() {
    let server = EventHubServer::start(NAMESPACE, HUB, 2);
    for partition in ["0", "1"] {
        for n in 0..5 {
            let body = format!(r#"{{"partition":{partition},"n":{n}}}"#);
            let n = n.to_string();
            let key = (n == "3").then_some("customer-7");
            server.publish_with_key(
                partition,
                key,
                body.as_bytes(),
                &[("n", &n), ("by", "test")],
            );
        }
    }
    let consumer = consumer(&server).await;
    for partition in ["0", "1"] {
        let receiver = receiver(&consumer, partition, StartLocation::Earliest, false, None).await;
        let received: Vec<Event> = take(&receiver, 5).await.iter().map(as_stored).collect();
        let published = sorted(server.events(partition));
        assert_eq!(received, published, "partition {partition}");
        assert_eq!(
            received
                .iter()
                .map(|e| e.sequence_number)
                .collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(received
            .iter()
            .all(|e| e.offset != e.sequence_number as u64));
        assert_eq!(received[3].partition_key.as_deref(), Some("customer-7"));
        receiver.close().await.expect("close receiver");
    }
    consumer.close().await.expect("close");

    let attaches = server.attaches();
    assert_eq!(
        attaches
            .iter()
            .map(|a| (
                a.partition.as_str(),
                a.consumer_group.as_str(),
                a.filter.as_str()
            ))
            .collect::<Vec<_>>(),
        [
            ("0", "$Default", "amqp.annotation.x-opt-offset > '-1'"),
            ("1", "$Default", "amqp.annotation.x-opt-offset > '-1'"),
        ]
    );
    assert!(attaches.iter().all(|a| a.refused.is_none()));
}

#[tokio::test]
async fn a_receiver_after_sequence_number_n_starts_at_n_plus_one() {
    let server = EventHubServer::start(NAMESPACE, HUB, 1);
    let offsets: Vec<String> = (0..10)
        .map(|n| server.publish("0", format!("event {n}").as_bytes(), &[]).1)
        .collect();
    let consumer = consumer(&server).await;

    let after_four = receiver(
        &consumer,
        "0",
        StartLocation::SequenceNumber(4),
        false,
        None,
    )
    .await;
    let sequence_numbers: Vec<i64> = take(&after_four, 5)
        .await
        .iter()
        .map(|e| e.sequence_number().unwrap())
        .collect();
    assert_eq!(sequence_numbers, [5, 6, 7, 8, 9]);
    after_four.close().await.expect("close receiver");

    // By offset, inclusive: the offset of event 6 is not 6, so a mix-up would show.
    let from_offset = StartLocation::Offset(offsets[6].clone());
    let from_six = receiver(&consumer, "0", from_offset, true, None).await;
    let first = &take(&from_six, 1).await[0];
    assert_eq!(first.sequence_number(), Some(6));
    assert_eq!(first.offset().as_deref(), Some(offsets[6].as_str()));
    from_six.close().await.expect("close receiver");
    consumer.close().await.expect("close");

    let filters: Vec<String> = server.attaches().into_iter().map(|a| a.filter).collect();
    assert_eq!(
        filters,
        [
            "amqp.annotation.x-opt-sequence-number >'4'".to_string(),
            format!("amqp.annotation.x-opt-offset >='{}'", offsets[6]),
        ]
    );
}

#[tokio::test]
async fn a_caught_up_receiver_gets_events_published_later() {
    let server = EventHubServer::start(NAMESPACE, HUB, 1);
    server.publish("0", b"before", &[]);
    let consumer = consumer(&server).await;
    let receiver = receiver(&consumer, "0", StartLocation::Earliest, false, None).await;
    let mut stream = receiver.stream_events();
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("in time");
    assert_eq!(first.unwrap().unwrap().sequence_number(), Some(0));

    let (sequence, offset) = server.publish("0", b"after", &[("late", "yes")]);
    let next = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("the new event arrives in time")
        .expect("the stream goes on")
        .expect("an event");
    let next = as_stored(&next);
    assert_eq!(
        (next.sequence_number, next.offset.to_string()),
        (sequence, offset)
    );
    assert_eq!(next.body, b"after");
    assert_eq!(next.properties, [("late".to_string(), "yes".to_string())]);
    drop(stream);
    receiver.close().await.expect("close receiver");
    consumer.close().await.expect("close");
}

#[tokio::test]
async fn a_receiver_at_the_latest_gets_only_events_published_after_it_attached() {
    let server = EventHubServer::start(NAMESPACE, HUB, 1);
    server.publish("0", b"before", &[]);
    let consumer = consumer(&server).await;
    let receiver = receiver(&consumer, "0", StartLocation::Latest, false, None).await;
    let mut stream = receiver.stream_events();
    // The link attaches when the stream is first polled; publish once the server fixed its start.
    let publish_after_attach = async {
        server.until_attached(1).await;
        server.publish("0", b"after", &[])
    };
    let (next, (sequence, _)) = tokio::join!(
        tokio::time::timeout(WAIT, stream.next()),
        publish_after_attach
    );
    let next = next.expect("in time").expect("an event").expect("an event");
    assert_eq!((next.sequence_number(), sequence), (Some(1), 1));
    assert_eq!(next.event_data().body(), Some(&b"after"[..]));
    drop(stream);
    receiver.close().await.expect("close receiver");
    consumer.close().await.expect("close");
    assert_eq!(
        server.attaches()[0].filter,
        "amqp.annotation.x-opt-offset > '@latest'"
    );
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_an_authorization_error() {
    let server = EventHubServer::start(NAMESPACE, HUB, 1);
    server.publish("0", b"secret", &[]);
    let consumer = ConsumerClient::builder()
        .with_custom_endpoint(server.endpoint())
        .open_with_connection_string(&server.connection_string_with_key("d3Jvbmc="), Some(HUB))
        .await
        .expect("the connection opens: tokens are checked per entity");

    let error = tokio::time::timeout(WAIT, consumer.get_eventhub_properties())
        .await
        .expect("refused in time")
        .expect_err("a wrong key reads nothing");
    assert!(is_unauthorized(&error), "{error:?}");

    let receiver = receiver(&consumer, "0", StartLocation::Earliest, false, None).await;
    let error = first_error(&receiver).await;
    assert!(is_unauthorized(&error), "{error:?}");

    let tokens = server.tokens();
    assert!(
        tokens.len() >= 2 && tokens.iter().all(|t| !t.accepted),
        "{tokens:?}"
    );
    assert!(
        server.attaches().is_empty(),
        "no link attaches without a token"
    );
}

/// A 401 from `$cbs` for the wrong signature, however deep the client wraps it.
fn is_unauthorized(error: &azure_messaging_eventhubs::EventHubsError) -> bool {
    let mut text = String::new();
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = cause {
        text += &format!("{e:?}\n");
        cause = e.source();
    }
    text.contains("status code: 401") && text.contains("signature does not match the key")
}

#[tokio::test]
async fn an_unknown_partition_or_hub_is_not_found() {
    let server = EventHubServer::start(NAMESPACE, HUB, 2);
    let consumer = consumer(&server).await;
    let missing = receiver(&consumer, "2", StartLocation::Earliest, false, None).await;
    let error = first_error(&missing).await;
    assert!(format!("{error:?}").contains("NotFound"), "{error:?}");
    consumer.close().await.expect("close");

    // A client of another hub in the namespace: its tokens are valid, the hub is not there.
    let namespace_wide = server
        .connection_string()
        .replace(&format!(";EntityPath={HUB}"), "");
    let other = ConsumerClient::builder()
        .with_custom_endpoint(server.endpoint())
        .open_with_connection_string(&namespace_wide, Some("returns"))
        .await
        .expect("the client connects");
    let properties = other.get_eventhub_properties().await;
    let error = properties.expect_err("no hub returns");
    assert!(format!("{error:?}").contains("404"), "{error:?}");
    let elsewhere = receiver(&other, "0", StartLocation::Earliest, false, None).await;
    let error = first_error(&elsewhere).await;
    assert!(format!("{error:?}").contains("NotFound"), "{error:?}");
    other.close().await.expect("close");

    let refused: Vec<_> = server
        .attaches()
        .into_iter()
        .map(|a| (a.partition, a.refused))
        .collect();
    let not_found = Some("amqp:not-found".to_string());
    assert_eq!(
        refused,
        [("2".into(), not_found.clone()), ("0".into(), not_found)]
    );
}

/// The error the first poll of `receiver`'s stream reports.
async fn first_error(receiver: &EventReceiver) -> azure_messaging_eventhubs::EventHubsError {
    let first = tokio::time::timeout(WAIT, receiver.stream_events().next())
        .await
        .expect("refused in time")
        .expect("the stream reports the refusal");
    first.expect_err("a refused link receives nothing")
}

#[tokio::test]
async fn a_higher_owner_level_takes_the_partition() {
    let server = EventHubServer::start(NAMESPACE, HUB, 1);
    server.publish("0", b"one", &[]);
    let consumer = consumer(&server).await;
    let low = receiver(&consumer, "0", StartLocation::Earliest, false, Some(1)).await;
    let mut low_events = low.stream_events();
    let first = tokio::time::timeout(WAIT, low_events.next())
        .await
        .expect("in time");
    assert_eq!(first.unwrap().unwrap().sequence_number(), Some(0));

    let other = self::consumer(&server).await;
    let high = receiver(&other, "0", StartLocation::Earliest, false, Some(2)).await;
    assert_eq!(take(&high, 1).await[0].sequence_number(), Some(0));

    let displaced = tokio::time::timeout(WAIT, low_events.next())
        .await
        .expect("displaced in time")
        .expect("the stream reports it");
    let error = displaced.expect_err("the lower owner level is detached");
    assert!(
        matches!(error.kind, ErrorKind::ConsumerDisconnected(_)),
        "{error:?}"
    );
    let levels: HashMap<_, _> = server
        .attaches()
        .into_iter()
        .map(|a| (a.owner_level, a.refused))
        .collect();
    assert_eq!(levels, HashMap::from([(Some(1), None), (Some(2), None)]));
}

#[tokio::test]
async fn a_small_prefetch_gets_every_event_as_credit_is_renewed() {
    let server = EventHubServer::start(NAMESPACE, HUB, 1);
    for n in 0..25 {
        server.publish("0", format!("event {n}").as_bytes(), &[]);
    }
    let consumer = consumer(&server).await;
    let options = OpenReceiverOptions {
        prefetch: Some(4),
        ..from(StartLocation::Earliest, false)
    };
    let receiver = open(&consumer, "0", options).await;
    let received: Vec<Event> = take(&receiver, 25).await.iter().map(as_stored).collect();
    assert_eq!(received, server.events("0"));
    receiver.close().await.expect("close receiver");
    consumer.close().await.expect("close");
}

#[tokio::test]
async fn a_token_credential_is_authorized_with_a_jwt() {
    let server = EventHubServer::start(NAMESPACE, HUB, 1);
    server.publish("0", b"for a bearer", &[]);
    let consumer = ConsumerClient::builder()
        .with_custom_endpoint(server.endpoint())
        .open(NAMESPACE, HUB.to_string(), Arc::new(Bearer))
        .await
        .expect("the client connects");
    let receiver = receiver(&consumer, "0", StartLocation::Earliest, false, None).await;
    assert_eq!(
        take(&receiver, 1).await[0].event_data().body(),
        Some(&b"for a bearer"[..])
    );
    receiver.close().await.expect("close receiver");
    consumer.close().await.expect("close");
    let tokens = server.tokens();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|t| t.accepted && t.token_type == "jwt"),
        "{tokens:?}"
    );
}
