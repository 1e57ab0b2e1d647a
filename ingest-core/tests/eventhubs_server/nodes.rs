//! The `$cbs` and `$management` nodes. A request arrives on the client's sender link to the node;
//! its response goes to the client's receiver link (in the same session) whose target is the
//! request's `reply-to`, correlated by the request's message id, with `status-code` and
//! `status-description` application properties and an AMQP value body, as fe2o3's management and
//! CBS clients read them. Every put-token is recorded; an accepted one authorizes its audience on
//! this connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fe2o3_amqp::link::{LinkStateError, RecvError};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Array, SimpleValue, Timestamp, Value};
use fe2o3_amqp::{Delivery, Receiver, Sendable, Sender};
use tokio::sync::{mpsc, watch};

use super::amqp::Client;
use super::partition_link::answer_detach;
use super::{millis, Hub, PutToken};

const EVENTHUB_TYPE: &str = "com.microsoft:eventhub";
const PARTITION_TYPE: &str = "com.microsoft:partition";
/// How long a response waits for its reply link to be registered.
const REPLY_LINK_WAIT: Duration = Duration::from_secs(10);
/// The AMQP timestamp brokers send for "never" (year 1); the client reads it as `None`.
const NEVER_MILLIS: i64 = -62_135_596_800_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Node {
    Cbs,
    Management,
}

impl Node {
    pub(super) fn at(address: &str) -> Option<Node> {
        match address {
            "$cbs" => Some(Node::Cbs),
            "$management" => Some(Node::Management),
            _ => None,
        }
    }
}

type Response = Message<AmqpValue<Value>>;
type Routes = HashMap<String, mpsc::UnboundedSender<Response>>;

/// A session's reply links by target address. The client sends its first request once both
/// links are attached, which can be before the session task registered the reply link, so a
/// response waits for its route.
#[derive(Clone)]
pub(super) struct Replies(Arc<watch::Sender<Routes>>);

impl Default for Replies {
    fn default() -> Self {
        Replies(Arc::new(watch::Sender::new(Routes::new())))
    }
}

impl Replies {
    /// Registers the reply link for `address`; returns the queue its task sends from.
    pub(super) fn route(&self, address: &str) -> mpsc::UnboundedReceiver<Response> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.0.send_modify(|routes| {
            routes.insert(address.to_string(), tx);
        });
        rx
    }

    async fn send(&self, address: &str, response: Response) {
        let mut routes = self.0.subscribe();
        let route = tokio::time::timeout(
            REPLY_LINK_WAIT,
            routes.wait_for(|routes| routes.contains_key(address)),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|routes| routes.get(address).cloned());
        if let Some(route) = route {
            let _ = route.send(response);
        }
    }
}

/// Sends the responses routed to one reply link until the client detaches it.
pub(super) async fn reply_link(
    mut sender: Sender,
    mut responses: mpsc::UnboundedReceiver<Response>,
) {
    loop {
        tokio::select! {
            response = responses.recv() => {
                let Some(response) = response else { break };
                let sendable = Sendable::builder().message(response).settled(true).build();
                if sender.send(sendable).await.is_err() {
                    return;
                }
            }
            detached = sender.on_detach() => return answer_detach(sender, detached).await,
        }
    }
    let _ = sender.close().await;
}

/// Answers the requests of one link to `node` until the client detaches it.
pub(super) async fn request_link(
    node: Node,
    mut receiver: Receiver,
    client: Arc<Client>,
    replies: Replies,
) {
    loop {
        let delivery: Delivery<Body<Value>> = match receiver.recv().await {
            Ok(delivery) => delivery,
            Err(RecvError::LinkStateError(LinkStateError::RemoteDetached)) => {
                let _ = receiver.detach().await;
                return;
            }
            Err(_) => break,
        };
        if receiver.accept(&delivery).await.is_err() {
            break;
        }
        let request = delivery.into_message();
        let (status, description, body) = match node {
            Node::Cbs => put_token(&client, &request),
            Node::Management => read(&client.hub, &request),
        };
        if node == Node::Management {
            let delay = *client.hub.management_delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let number = 1 + client
                .hub
                .management_requests
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if client.hub.lost_answers.lock().unwrap().contains(&number) {
                continue;
            }
        }
        let properties = request.properties.as_ref();
        let reply_to = properties.and_then(|p| p.reply_to.clone());
        let correlation_id = properties.and_then(|p| p.message_id.clone());
        if let Some(reply_to) = reply_to {
            replies
                .send(
                    &reply_to,
                    response(correlation_id, status, description, body),
                )
                .await;
        }
    }
    let _ = receiver.close().await;
}

fn response(
    correlation_id: Option<MessageId>,
    status: i32,
    description: String,
    body: Value,
) -> Response {
    let properties = Properties {
        correlation_id,
        ..Properties::default()
    };
    Message::builder()
        .properties(properties)
        .application_properties(
            ApplicationProperties::builder()
                .insert("status-code", SimpleValue::Int(status))
                .insert("status-description", SimpleValue::String(description))
                .build(),
        )
        .value(body)
        .build()
}

type Outcome = (i32, String, Value);

fn text<'a>(request: &'a Message<Body<Value>>, key: &str) -> &'a str {
    match request
        .application_properties
        .as_ref()
        .and_then(|p| p.0.get(key))
    {
        Some(SimpleValue::String(s)) => s,
        _ => "",
    }
}

/// CBS `put-token`: the token is the body, its type and audience application properties.
fn put_token(client: &Client, request: &Message<Body<Value>>) -> Outcome {
    if text(request, "operation") != "put-token" {
        return (400, "the $cbs node only does put-token".into(), Value::Null);
    }
    let (token_type, audience) = (text(request, "type"), text(request, "name"));
    let token = match &request.body {
        Body::Value(AmqpValue(Value::String(token))) => token.as_str(),
        _ => "",
    };
    let verdict = client
        .hub
        .keys
        .check(token_type, token, audience, SystemTime::now());
    client.hub.records().tokens.push(PutToken {
        token_type: token_type.to_string(),
        audience: audience.to_string(),
        accepted: verdict.is_ok(),
    });
    match verdict {
        Ok(()) => {
            client.authorize(audience);
            (202, "Accepted".into(), Value::Null)
        }
        Err(reason) => (401, format!("Unauthorized: {reason}"), Value::Null),
    }
}

/// `$management` READ of the hub or of one partition; the request's `security_token` must cover
/// the entity it names.
fn read(hub: &Hub, request: &Message<Body<Value>>) -> Outcome {
    if text(request, "operation") != "READ" {
        return (501, "only READ is implemented".into(), Value::Null);
    }
    let name = text(request, "name");
    let resource = format!("amqps://{}/{name}", hub.namespace);
    if let Err(reason) = hub
        .keys
        .check_any(text(request, "security_token"), &resource)
    {
        return (401, format!("Unauthorized: {reason}"), Value::Null);
    }
    if !name.eq_ignore_ascii_case(&hub.name) {
        return (404, format!("no event hub {name:?}"), Value::Null);
    }
    match text(request, "type") {
        EVENTHUB_TYPE => (200, "OK".into(), hub_properties(hub)),
        PARTITION_TYPE => {
            let id = text(request, "partition");
            match hub.partition(id) {
                Some(partition) => {
                    let log = partition.log();
                    let last = log.events.last();
                    let map = entries([
                        ("name", Value::String(hub.name.clone())),
                        ("type", Value::String(PARTITION_TYPE.into())),
                        ("partition", Value::String(id.into())),
                        ("begin_sequence_number", Value::Long(0)),
                        (
                            "last_enqueued_sequence_number",
                            Value::Long(last.map_or(-1, |e| e.sequence_number)),
                        ),
                        (
                            "last_enqueued_offset",
                            Value::String(last.map_or("-1".into(), |e| e.offset.to_string())),
                        ),
                        (
                            "last_enqueued_time_utc",
                            Value::Timestamp(Timestamp::from(
                                last.map_or(NEVER_MILLIS, |e| millis(e.enqueued_time)),
                            )),
                        ),
                        ("last_enqueued_sequence_number_epoch", Value::Long(0)),
                        ("is_partition_empty", Value::Bool(last.is_none())),
                    ]);
                    (200, "OK".into(), map)
                }
                None => (404, format!("no partition {id:?}"), Value::Null),
            }
        }
        other => (400, format!("unknown entity type {other:?}"), Value::Null),
    }
}

fn hub_properties(hub: &Hub) -> Value {
    let ids = hub.partition_ids();
    entries([
        ("name", Value::String(hub.name.clone())),
        ("type", Value::String(EVENTHUB_TYPE.into())),
        (
            "created_at",
            Value::Timestamp(Timestamp::from(millis(hub.created_at))),
        ),
        ("partition_count", Value::Int(ids.len() as i32)),
        (
            "partition_ids",
            Value::Array(Array(ids.into_iter().map(Value::String).collect())),
        ),
    ])
}

fn entries<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(key, value)| (Value::String(key.into()), value))
            .collect(),
    )
}
