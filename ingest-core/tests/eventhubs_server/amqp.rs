//! The AMQP plumbing: accepts connections (SASL ANONYMOUS, no TLS), their sessions and their
//! links, and routes each link by address: the `$cbs` and `$management` nodes (`nodes`) or a
//! partition (`partition_link`). Every connection, session and link runs in its own task, so a
//! link waiting for credit or events holds up nothing else.

use std::sync::{Arc, Mutex};

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor,
};
use fe2o3_amqp::types::definitions::{self, ErrorCondition, Role};
use fe2o3_amqp::types::messaging::{Source, Target};
use fe2o3_amqp::types::performatives::Attach;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{auth, nodes, partition_link, Hub};

/// Accepts connections until `shutdown`.
pub(super) async fn serve(
    listener: std::net::TcpListener,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) {
    let listener = TcpListener::from_std(listener).expect("the listener joins the runtime");
    let acceptor = Arc::new(
        ConnectionAcceptor::builder()
            .container_id("ingest-test-eventhubs")
            .sasl_acceptor(SaslAnonymousMechanism::new())
            .build(),
    );
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    // Small frames both ways: no Nagle delay.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(acceptor.clone(), stream, hub.clone()));
                }
            }
        }
    }
}

/// One client connection: the audiences its accepted put-tokens authorized.
pub(super) struct Client {
    pub hub: Arc<Hub>,
    authorized: Mutex<Vec<String>>,
}

impl Client {
    pub(super) fn authorize(&self, audience: &str) {
        self.authorized
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(audience.to_string());
    }

    /// Whether an accepted put-token covers `address`.
    pub(super) fn is_authorized(&self, address: &str) -> bool {
        self.authorized
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|audience| auth::covers(audience, address))
    }
}

async fn connection(
    acceptor: Arc<ConnectionAcceptor<(), SaslAnonymousMechanism>>,
    stream: TcpStream,
    hub: Arc<Hub>,
) {
    let Ok(mut connection) = acceptor.accept(stream).await else {
        return;
    };
    let client = Arc::new(Client {
        hub,
        authorized: Mutex::default(),
    });
    let sessions = SessionAcceptor::new();
    while let Some(incoming) = connection.next_incoming_session().await {
        match sessions
            .accept_incoming_session(incoming, &mut connection)
            .await
        {
            Ok(session) => {
                tokio::spawn(links(session, client.clone()));
            }
            Err(_) => break,
        }
    }
    let _ = connection.close().await;
}

/// fe2o3's default link acceptor (no dynamic nodes).
type Links = LinkAcceptor<fn(Source) -> Option<Source>, fn(Target) -> Option<Target>>;

/// Accepts the links of one session and starts a task for each.
async fn links(mut session: ListenerSessionHandle, client: Arc<Client>) {
    let acceptor = LinkAcceptor::new();
    let replies = nodes::Replies::default();
    while let Some(attach) = session.next_incoming_attach().await {
        let source = attach
            .source
            .as_ref()
            .and_then(|s| s.address.clone())
            .unwrap_or_default();
        let target = attach
            .target
            .as_ref()
            .and_then(|t| Target::try_from((**t).clone()).ok()?.address)
            .unwrap_or_default();
        match attach.role {
            // The client receives: we send responses or events.
            Role::Receiver => match nodes::Node::at(&source) {
                Some(_) => {
                    if let Ok(LinkEndpoint::Sender(sender)) =
                        acceptor.accept_incoming_attach(attach, &mut session).await
                    {
                        tokio::spawn(nodes::reply_link(sender, replies.route(&target)));
                    }
                }
                None => match partition_link::admit(&client, &attach, &source) {
                    Ok(admitted) => {
                        if let Ok(LinkEndpoint::Sender(sender)) =
                            acceptor.accept_incoming_attach(attach, &mut session).await
                        {
                            tokio::spawn(admitted.deliver(sender));
                        }
                    }
                    Err(error) => refuse(&acceptor, attach, &mut session, error).await,
                },
            },
            // The client sends: requests to a node; publishing is not supported.
            Role::Sender => match nodes::Node::at(&target) {
                Some(node) => {
                    if let Ok(LinkEndpoint::Receiver(receiver)) =
                        acceptor.accept_incoming_attach(attach, &mut session).await
                    {
                        let link =
                            nodes::request_link(node, receiver, client.clone(), replies.clone());
                        tokio::spawn(link);
                    }
                }
                None => {
                    let error = definitions::Error::new(
                        definitions::AmqpError::NotImplemented,
                        format!("this test server does not accept events (sender to {target:?})"),
                        None,
                    );
                    refuse(&acceptor, attach, &mut session, error).await;
                }
            },
        }
    }
}

/// Refuses a link: an attach (for a client receiver without a source, as the spec says for a
/// terminus that does not exist), then a closing detach carrying the error, which the client
/// reports as the reason its attach failed.
async fn refuse(
    acceptor: &Links,
    mut attach: Attach,
    session: &mut ListenerSessionHandle,
    error: definitions::Error,
) {
    if attach.role == Role::Receiver {
        attach.source = None;
    }
    match acceptor.accept_incoming_attach(attach, session).await {
        Ok(LinkEndpoint::Sender(sender)) => {
            tokio::spawn(sender.close_with_error(error));
        }
        Ok(LinkEndpoint::Receiver(receiver)) => {
            tokio::spawn(receiver.close_with_error(error));
        }
        Err(_) => {}
    }
}

/// The condition's wire name, e.g. `amqp:not-found`.
pub(super) fn condition_name(condition: &ErrorCondition) -> String {
    use fe2o3_amqp::types::primitives::Symbol;
    match condition {
        ErrorCondition::AmqpError(e) => Symbol::from(e).0,
        ErrorCondition::LinkError(e) => Symbol::from(e).0,
        other => format!("{other:?}"),
    }
}
