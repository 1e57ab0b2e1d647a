//! A small HTTP/1.1 proxy in front of a storage server, for requests that did their work but
//! whose answer the client never sees as a success: a PUT forwarded and then answered with 503
//! (a proxy's or a load balancer's timeout), or a PUT held back while the test makes something
//! else happen (an owner revoked mid-upload). One request per connection (it asks the server to
//! close after its answer), so every request passes through the rules.
//!
//! [`Front`]: the same proxy with no rule, making a server's create-only writes atomic. s3s-fs
//! 0.14.1 checks `If-None-Match: *` before it writes and renames its file into place after,
//! so two creates of one key at once both succeed and the later one overwrites the earlier.
//! S3 and Azure refuse the second (Azurite does too), and the claim chain and the Delta log rely
//! on that. The front lets one write of a key at a time reach the server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the proxy does to the PUTs whose path contains `needle`.
#[derive(Clone)]
pub enum Rule {
    /// The first such PUT is forwarded, and the client gets 503 instead of the server's answer.
    UnavailableAfterForwarding(String),
    /// Every such PUT waits until [`Proxy::release`], then goes through.
    Hold(String),
    /// Every such PUT goes through until [`Proxy::release`]; after it, each is answered 403
    /// Access Denied without being forwarded (a permission revoked, a SAS expired).
    ForbidAfterRelease(String),
    /// Every request of any method whose path contains the text is answered 400 with S3's
    /// `KeyTooLongError` (a HEAD without a body, as S3 answers it), not forwarded: a store
    /// whose naming rules are stricter than the names ingest makes.
    RefuseName(String),
    /// Every request forwarded as it is.
    Forward,
}

pub struct Proxy {
    pub port: u16,
    fired: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
    release: Arc<Notify>,
    released: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on a free port in front of `127.0.0.1:upstream`.
    pub async fn start(upstream: u16, rule: Rule) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            fired: Arc::default(),
            held: Arc::default(),
            release: Arc::default(),
            released: Arc::default(),
        };
        let shared = (
            Arc::clone(&proxy.fired),
            Arc::clone(&proxy.held),
            Arc::clone(&proxy.release),
            Arc::clone(&proxy.released),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (rule, shared) = (rule.clone(), shared.clone());
                tokio::spawn(async move {
                    let _ = serve(client, upstream, rule, shared, None).await;
                });
            }
        });
        proxy
    }

    /// Whether the rule met its request (a 503 was answered after forwarding).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// How many requests are held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Lets held requests (and later ones) through.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.release.notify_waiters();
    }
}

/// Listens on `port` in front of `127.0.0.1:upstream`, forwarding every request, writes of one
/// object one at a time (see the module's documentation), until dropped (then it stops
/// listening and drops the connections it holds, as a server that stops does).
pub struct Front {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Per object, the lock its writes take.
type Writes = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

impl Front {
    pub fn start(port: u16, upstream: u16) -> Front {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, listening) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.set_reuseaddr(true).unwrap();
                let bound = socket.bind(([127, 0, 0, 1], port).into());
                let listener = match bound.and_then(|()| socket.listen(128)) {
                    Ok(l) => l,
                    Err(e) => return ready.send(Err(e)).unwrap(),
                };
                ready.send(Ok(())).unwrap();
                let writes: Arc<Writes> = Arc::default();
                let shared: Shared = Default::default();
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        let (shared, writes) = (shared.clone(), Arc::clone(&writes));
                        tokio::spawn(async move {
                            let _ =
                                serve(client, upstream, Rule::Forward, shared, Some(writes)).await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
        });
        listening
            .recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("the front of 127.0.0.1:{upstream} listens on {port}: {e}"));
        Front {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The object a request writes when it may create one (a PUT of an object or a copy, or the
/// completion of a multipart upload), as the path without its query; `None` for the rest (reads,
/// a part's upload, listings).
fn written(method: &str, path: &str) -> Option<String> {
    let (object, query) = path.split_once('?').unwrap_or((path, ""));
    let writes = match method {
        "PUT" => !query.contains("partNumber="),
        "POST" => query.contains("uploadId="),
        _ => false,
    };
    writes.then(|| object.to_string())
}

type Shared = (
    Arc<AtomicBool>,
    Arc<AtomicUsize>,
    Arc<Notify>,
    Arc<AtomicBool>,
);

async fn serve(
    mut client: TcpStream,
    upstream: u16,
    rule: Rule,
    (fired, held, release, released): Shared,
    writes: Option<Arc<Writes>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    let mut rewritten = format!("{request_line}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("connection: close\r\n\r\n");
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 65536];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..head_end + length];
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let matches = |needle: &str| method == "PUT" && path.contains(needle);
    let mut answer_unavailable = false;
    match &rule {
        Rule::RefuseName(needle) if path.contains(needle.as_str()) => {
            fired.store(true, Ordering::SeqCst);
            let refused = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>KeyTooLongError</Code><Message>Your key is too long</Message></Error>";
            let body = if method == "HEAD" { "" } else { refused };
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        Rule::ForbidAfterRelease(needle) if matches(needle) && released.load(Ordering::SeqCst) => {
            fired.store(true, Ordering::SeqCst);
            let denied = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
            let answer = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{denied}",
                denied.len()
            );
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        Rule::UnavailableAfterForwarding(needle) if matches(needle) => {
            answer_unavailable = !fired.swap(true, Ordering::SeqCst);
        }
        Rule::Hold(needle) if matches(needle) => {
            held.fetch_add(1, Ordering::SeqCst);
            let notified = release.notified();
            if !released.load(Ordering::SeqCst) {
                notified.await;
            }
            held.fetch_sub(1, Ordering::SeqCst);
        }
        _ => {}
    }
    // A front: the write waits for the one of the same object before it.
    let mut _writing = None;
    if let Some(object) = writes.as_ref().and_then(|_| written(method, path)) {
        let lock = {
            let mut locks = writes.as_ref().unwrap().lock().unwrap();
            Arc::clone(locks.entry(object).or_default())
        };
        _writing = Some(lock.lock_owned().await);
    }
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).await?;
    server.write_all(rewritten.as_bytes()).await?;
    server.write_all(body).await?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await?;
    if answer_unavailable {
        client
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await?;
    } else {
        client.write_all(&response).await?;
    }
    client.shutdown().await
}
