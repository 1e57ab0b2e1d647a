//! The operations endpoint on `INGEST_HTTP_ADDR`: `/healthz`, `/readyz` and `/metrics`
//! (Prometheus text format, rendered by `metrics-exporter-prometheus`; see [`super::metrics`]).
//!
//! Invariant: the endpoint only reads shared state; nothing it does can block the pipeline, and
//! slow or idle clients cannot use up the file descriptors the broker and storage sockets
//! share, nor starve the kubelet's probes: headers must arrive within [`HEADER_READ_TIMEOUT`],
//! a connection lives at most [`CONNECTION_DEADLINE`] (a client that never reads its answer
//! cannot hold it), and past [`MAX_CONNECTIONS`] open connections, or [`MAX_PER_PEER`] from one
//! address, a new one is closed at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::health::{liveness, readiness, Health, Verdict};
use crate::clock::now_ms;

/// How long a client may take to send a request's headers before its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; a probe or a scrape needs one each.
pub const MAX_CONNECTIONS: usize = 32;

/// Connections served at once to one address, so one client cannot take every slot.
pub const MAX_PER_PEER: usize = 8;

/// The longest a connection is served, answers written included: probes and scrapes take
/// milliseconds, and their clients connect again.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// Open connections by client address.
#[derive(Default)]
struct Peers(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One connection's place in [`Peers`], given back when dropped.
struct PeerSlot {
    peers: Arc<Peers>,
    ip: std::net::IpAddr,
}

impl Peers {
    fn take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<PeerSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= MAX_PER_PEER {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Binds `addr` (fails fast with a clear message) and serves until `shutdown`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        format!("INGEST_HTTP_ADDR={addr} cannot be bound ({e}); choose a free port or set INGEST_HTTP_ADDR=off")
    })
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: PrometheusHandle,
    stall: Duration,
    shutdown: CancellationToken,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let peers = Arc::new(Peers::default());
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        // Over a bound: closed at once (dropped), so the descriptor is back at once too.
        let Some(slot) = peers.take(peer.ip()) else {
            continue;
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            continue;
        };
        let (health, metrics) = (Arc::clone(&health), metrics.clone());
        tokio::spawn(async move {
            let _held = (permit, slot);
            let service = hyper::service::service_fn(move |req| {
                let answer = respond(&req, &health, &metrics, stall);
                async move { Ok::<_, Infallible>(answer) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // Past the deadline the connection is dropped, closing it.
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, served).await;
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    health: &Health,
    metrics: &PrometheusHandle,
    stall: Duration,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body + "\n")))
            .expect("static response parts are valid")
    };
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET".into());
    }
    let verdict = |v: Verdict| {
        let status = if v.ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        text(status, v.body)
    };
    match req.uri().path() {
        "/healthz" => verdict(liveness(&health.snapshot(), now_ms(), stall)),
        "/readyz" => verdict(readiness(&health.snapshot())),
        "/metrics" => {
            let facts = health.snapshot();
            let now = now_ms();
            for (p, at) in &facts.last_landed_ms {
                let p = p.to_string();
                metrics::gauge!("ingest_last_landed_timestamp_seconds", "partition" => p.clone())
                    .set(*at as f64 / 1000.0);
                metrics::gauge!("ingest_seconds_since_last_landed", "partition" => p)
                    .set((now - at) as f64 / 1000.0);
            }
            Response::builder()
                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                .body(Full::new(Bytes::from(metrics.render())))
                .expect("static response parts are valid")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz or /metrics".into(),
        ),
    }
}
