//! The operations endpoint on `INGEST_HTTP_ADDR`: `/healthz`, `/readyz` and `/metrics`
//! (Prometheus text format, rendered by `metrics-exporter-prometheus`).
//!
//! Invariant: the endpoint only reads shared state; nothing it does can block the pipeline.
//! Metric names and units are declared once, in [`describe`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::flush::now_ms;
use crate::health::{liveness, readiness, Health};

/// Installs the process-wide Prometheus recorder once; later pipelines in the same process
/// (tests, embedders) share it.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("ingest_upload_duration_seconds".into()),
                    &[
                        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .expect("bucket list is not empty");
            let handle = match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (an embedder's): render ours without installing.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
            handle
        })
        .clone()
}

/// Every metric the service exports, with its unit and meaning. Counters (and each flush
/// reason) start at zero so `rate()` and alerts work before the first event.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    const COUNTERS: &[(&str, Option<Unit>, &str)] = &[
        (
            "ingest_records_consumed_total",
            None,
            "Records received from Kafka.",
        ),
        (
            "ingest_bytes_consumed_total",
            Some(Unit::Bytes),
            "Record bytes (key, value, and headers with the metadata envelope) received from Kafka.",
        ),
        (
            "ingest_encoded_ahead_bytes_total",
            Some(Unit::Bytes),
            "Record bytes encoded and compressed while their batch was still filling.",
        ),
        (
            "ingest_records_landed_total",
            None,
            "Records written to data files.",
        ),
        (
            "ingest_bytes_landed_total",
            Some(Unit::Bytes),
            "Bytes of data files as stored (compressed).",
        ),
        ("ingest_files_landed_total", None, "Data files written."),
        (
            "ingest_dead_letters_total",
            None,
            "Invalid records written to the dead-letter path.",
        ),
        (
            "ingest_records_skipped_total",
            None,
            "Invalid records dropped under INGEST_INVALID_RECORD_POLICY=skip.",
        ),
        (
            "ingest_records_filtered_total",
            None,
            "Records dropped by the service's transform.",
        ),
        (
            "ingest_storage_errors_total",
            None,
            "Flush attempts that failed on storage and were retried.",
        ),
        (
            "ingest_commit_failures_total",
            None,
            "Offset commits that failed after a file landed.",
        ),
        (
            "ingest_recoveries_total",
            None,
            "Batches that started at an existing claim (restart, rebalance, retry).",
        ),
        (
            "ingest_multipart_uploads_total",
            None,
            "Files uploaded in parts.",
        ),
    ];
    for (name, unit, help) in COUNTERS {
        match unit {
            Some(u) => describe_counter!(*name, *u, *help),
            None => describe_counter!(*name, *help),
        }
        metrics::counter!(*name).increment(0);
    }
    describe_counter!(
        "ingest_flushes_total",
        "Batches sealed for upload, by reason."
    );
    for reason in crate::batch::FlushReason::ALL {
        metrics::counter!("ingest_flushes_total", "reason" => reason.as_str()).increment(0);
    }
    describe_histogram!(
        "ingest_upload_duration_seconds",
        Unit::Seconds,
        "Time to upload one data file."
    );
    describe_gauge!(
        "ingest_buffered_bytes",
        Unit::Bytes,
        "Memory batches and their compressed output hold across partitions."
    );
    describe_gauge!(
        "ingest_buffer_cap_bytes",
        Unit::Bytes,
        "INGEST_MAX_BUFFER_BYTES less librdkafka's reserve: what ingest_buffered_bytes is held under."
    );
    describe_gauge!(
        "ingest_paused_partitions",
        "Partitions whose fetching is paused by the buffer cap."
    );
    describe_gauge!(
        "ingest_assigned_partitions",
        "Partitions this replica owns."
    );
    describe_gauge!(
        "ingest_committed_offset",
        "Next offset committed, per partition."
    );
    describe_gauge!(
        "ingest_consumer_lag",
        "High watermark minus committed offset, per partition (librdkafka statistics)."
    );
    describe_gauge!(
        "ingest_last_landed_timestamp_seconds",
        Unit::Seconds,
        "When the partition last landed a file (Unix time)."
    );
    describe_gauge!(
        "ingest_seconds_since_last_landed",
        Unit::Seconds,
        "Freshness: seconds since the partition last landed a file."
    );
    for gauge in [
        "ingest_buffered_bytes",
        "ingest_paused_partitions",
        "ingest_assigned_partitions",
    ] {
        metrics::gauge!(gauge).set(0.0);
    }
}

/// Binds `addr` (fails fast with a clear message) and serves until `shutdown`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        format!("INGEST_HTTP_ADDR={addr} cannot be bound ({e}); choose a free port or set INGEST_HTTP_ADDR=off")
    })
}

pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: PrometheusHandle,
    stall: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (health, metrics) = (Arc::clone(&health), metrics.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = respond(&req, &health, &metrics, stall);
                async move { Ok::<_, Infallible>(answer) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
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
    let verdict = |v: crate::health::Verdict| {
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
