//! The operations endpoint of a running service process: `/metrics` agrees with what landed,
//! `/readyz` follows storage while `/healthz` stays up, and the dashboard and alert rules only
//! use metrics the service exports.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::process::*;
use common::servers::{S3Fs, Server};
use common::*;

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("{series} missing from the scrape: {:?}", m.keys()))
}

/// Metric names in a scrape, with histogram suffixes folded into the histogram's name.
fn names(m: &BTreeMap<String, f64>) -> BTreeSet<String> {
    m.keys()
        .map(|s| {
            let name = s.split('{').next().unwrap();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suf| name.strip_suffix(suf))
                .unwrap_or(name)
                .to_string()
        })
        .collect()
}

/// Every `ingest_*` metric name a text mentions.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("ingest_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suf| name.strip_suffix(suf))
            .unwrap_or(&name)
            .to_string();
        out.insert(name);
    }
    out
}

#[test]
fn metrics_equal_what_landed_and_dashboards_use_only_exported_names() {
    let f = Fixture::new("ops", 3);
    produce_json(&f.broker.brokers, &f.topic, 3, 200, 0);
    produce_to(
        &f.broker.brokers,
        &f.topic,
        0,
        &[b"not json".to_vec(), b"{".to_vec()],
    );
    let high = high_watermarks(&f.broker.brokers, &f.topic, 3);
    let mut child = service(&f.vars, &[("INGEST_KAFKA_STATISTICS_INTERVAL_MS", "200")])
        .spawn()
        .unwrap();
    let rx = lines(child.stderr.take().unwrap());
    let addr = endpoint_addr(&rx);
    poll_http(&addr, "/readyz", "readiness", |s, _| s == 200);
    wait_committed(&f.broker.brokers, &f.group, &f.topic, 3, WAIT);

    // Lag comes from librdkafka statistics; wait for a report after the last commit.
    let text = poll_http(
        &addr,
        "/metrics",
        "zero lag on every partition",
        |_, body| {
            let m = parse_metrics(body);
            (0..3)
                .all(|p| m.get(&format!("ingest_consumer_lag{{partition=\"{p}\"}}")) == Some(&0.0))
        },
    );
    let m = parse_metrics(&text);
    let files = landed_files(f.dir.path(), &f.topic);
    let records: usize = files.iter().map(|(_, lines)| lines.len()).sum();
    let bytes: u64 = files
        .iter()
        .map(|(p, _)| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(records, 600);
    assert_eq!(value(&m, "ingest_records_landed_total"), records as f64);
    assert_eq!(value(&m, "ingest_files_landed_total"), files.len() as f64);
    assert_eq!(value(&m, "ingest_bytes_landed_total"), bytes as f64);
    assert_eq!(value(&m, "ingest_dead_letters_total"), 2.0);
    assert_eq!(value(&m, "ingest_records_consumed_total"), 602.0);
    assert_eq!(value(&m, "ingest_storage_errors_total"), 0.0);
    assert_eq!(value(&m, "ingest_assigned_partitions"), 3.0);
    assert_eq!(
        value(&m, "ingest_upload_duration_seconds_count"),
        files.len() as f64
    );
    for (p, hw) in &high {
        let committed = format!("ingest_committed_offset{{partition=\"{p}\"}}");
        assert_eq!(value(&m, &committed), *hw as f64);
        let fresh = value(
            &m,
            &format!("ingest_seconds_since_last_landed{{partition=\"{p}\"}}"),
        );
        assert!((0.0..60.0).contains(&fresh), "freshness {fresh}");
    }
    let (status, body) = http_get(&addr, "/healthz");
    assert_eq!((status, body.trim()), (200, "alive"));
    assert_eq!(http_get(&addr, "/nope").0, 404);

    // The dashboard and the alert rules parse, and use only metrics this scrape exports.
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../helm/ingest-sink/files");
    let dashboard = std::fs::read_to_string(chart.join("ingest-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let alerts = std::fs::read_to_string(chart.join("ingest-alerts.yaml")).unwrap();
    let rules: serde_json::Value = serde_norway::from_str(&alerts).expect("alert rules are YAML");
    let rules = rules["groups"][0]["rules"]
        .as_array()
        .expect("a rule group");
    assert!(rules
        .iter()
        .all(|r| r["alert"].is_string() && r["expr"].is_string()));
    let exported = names(&m);
    for text in [&dashboard, &alerts] {
        let unknown: Vec<_> = referenced(text).difference(&exported).cloned().collect();
        assert!(unknown.is_empty(), "not exported: {unknown:?}");
    }

    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
}

#[test]
fn readiness_follows_storage_while_liveness_stays_up() {
    let mut s3 = S3Fs::start();
    let f = Fixture::new("ready", 1);
    let bucket = unique("ready").to_ascii_lowercase();
    s3.create_container(&bucket);
    let mut vars = f.vars.clone();
    vars.retain(|(k, _)| k != "INGEST_STORAGE_URL");
    vars.extend(s3.env(&bucket, "raw"));
    let mut child = service(&vars, &[("INGEST_STORAGE_CHECK_INTERVAL_MS", "300")])
        .spawn()
        .unwrap();
    let rx = lines(child.stderr.take().unwrap());
    let addr = endpoint_addr(&rx);
    poll_http(&addr, "/readyz", "ready", |s, _| s == 200);

    s3.stop();
    let body = poll_http(&addr, "/readyz", "not ready during the outage", |s, _| {
        s == 503
    });
    assert!(
        body.starts_with("storage unreachable: cannot write to s3://"),
        "{body}"
    );
    assert_eq!(
        http_get(&addr, "/healthz").0,
        200,
        "an outage is no reason to restart"
    );

    s3.restart();
    poll_http(&addr, "/readyz", "ready again", |s, _| s == 200);
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
}

/// Lag of each partition in a scrape that reports one.
fn lags(body: &str) -> BTreeMap<i32, f64> {
    parse_metrics(body)
        .into_iter()
        .filter_map(|(series, v)| {
            let p = series
                .strip_prefix("ingest_consumer_lag{partition=\"")?
                .strip_suffix("\"}")?;
            Some((p.parse().ok()?, v))
        })
        .collect()
}

#[test]
fn a_partition_moved_to_another_replica_stops_showing_its_old_lag_and_staleness() {
    let f = Fixture::new("lagmove", 4);
    // Files of 50 records and no age trigger: the first 50 per partition land and commit, the
    // next 30 stay buffered, so every partition's lag is 30.
    let settings = [
        ("INGEST_KAFKA_STATISTICS_INTERVAL_MS", "200"),
        ("INGEST_FLUSH_MAX_RECORDS", "50"),
        ("INGEST_FLUSH_MAX_AGE_MS", "600000"),
    ];
    produce_json(&f.broker.brokers, &f.topic, 4, 50, 0);
    let mut first = service(&f.vars, &settings).spawn().unwrap();
    let rx = lines(first.stderr.take().unwrap());
    let addr = endpoint_addr(&rx);
    wait_committed(&f.broker.brokers, &f.group, &f.topic, 4, WAIT);
    produce_json(&f.broker.brokers, &f.topic, 4, 30, 50);
    poll_http(&addr, "/metrics", "lag 30 on all four", |_, body| {
        lags(body).values().filter(|l| **l == 30.0).count() == 4
    });

    // A second replica joins: cooperative rebalancing moves two partitions to it.
    let mut second = service(&f.vars, &settings).spawn().unwrap();
    let second_rx = lines(second.stderr.take().unwrap());
    endpoint_addr(&second_rx);
    poll_http(&addr, "/metrics", "two partitions moved away", |_, body| {
        parse_metrics(body).get("ingest_assigned_partitions") == Some(&2.0)
    });
    // The partitions it kept still show their lag and the time since they landed; the ones it
    // gave up show neither, however many statistics reports come after the move.
    poll_http(
        &addr,
        "/metrics",
        "lag and staleness only where owned",
        |_, body| {
            let m = parse_metrics(body);
            let lags = lags(body);
            let since =
                |p: &i32| m[&format!("ingest_seconds_since_last_landed{{partition=\"{p}\"}}")];
            let (kept, moved): (Vec<_>, Vec<_>) = lags.iter().partition(|(_, l)| **l == 30.0);
            kept.len() == 2
                && moved.len() == 2
                && moved.iter().all(|(p, l)| **l == 0.0 && since(p) == 0.0)
                && kept.iter().all(|(p, _)| since(p) > 0.0)
        },
    );
    // SIGTERM may land while the group is still settling: the first replica's commits can
    // then fail (its files stay claimed) and leaving the group can stall; it exits anyway.
    for child in [&mut first, &mut second] {
        signal(child, "-TERM");
        assert_eq!(wait_exit(child), 0);
    }
}

/// Reads until the server closes the connection; what it sent first.
async fn until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .expect("the server closed the connection in time")
        .ok();
    got
}

/// The operations endpoint alone, on a free port: its address, and a guard that stops it.
async fn endpoint() -> (std::net::SocketAddr, tokio_util::sync::DropGuard) {
    use ingest::ops::{health::Health, http};
    let listener = http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = ingest::CancellationToken::new();
    tokio::spawn(http::serve(
        listener,
        std::sync::Arc::new(Health::new(0)),
        ingest::ops::metrics::recorder(),
        Duration::from_secs(60),
        stop.clone(),
    ));
    (addr, stop.drop_guard())
}

/// A connection to `to` from 127.0.0.`host` (any loopback address is this machine's).
async fn connect_from(host: u8, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, host], 0)))
        .unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_starve_the_probes() {
    use ingest::ops::http;
    use tokio::io::AsyncWriteExt;

    let (addr, _stop) = endpoint().await;
    // One address opens every connection it can and asks for /metrics again and again without
    // reading an answer, until its socket buffers are full.
    let mut hogs = Vec::new();
    for _ in 0..http::MAX_CONNECTIONS {
        let mut c = connect_from(2, addr).await;
        let asks = b"GET /metrics HTTP/1.1\r\nHost: ingest\r\n\r\n".repeat(2_000);
        let _ = tokio::time::timeout(Duration::from_millis(200), c.write_all(&asks)).await;
        hogs.push(c);
    }
    // The kubelet's probes, from another address, are answered at once meanwhile.
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let mut probe = connect_from(1, addr).await;
        probe
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: ingest\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut probe, Duration::from_secs(2)).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The hog's connections past its bound were closed at once; the rest by the deadline.
    let mut closed_at_once = 0;
    for c in &mut hogs[http::MAX_PER_PEER..] {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf)).await
        {
            closed_at_once += 1;
        }
    }
    assert_eq!(closed_at_once, http::MAX_CONNECTIONS - http::MAX_PER_PEER);
    for c in &mut hogs[..http::MAX_PER_PEER] {
        until_closed(c, http::CONNECTION_DEADLINE + Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_closed_and_open_connections_are_bounded() {
    use ingest::ops::http;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    let (addr, _stop) = endpoint().await;
    // Every slot taken by clients that never send a request (from four addresses, each up to
    // its own bound): one more is closed at once.
    let mut idle = Vec::new();
    for i in 0..http::MAX_CONNECTIONS {
        let from = 2 + (i / http::MAX_PER_PEER) as u8;
        idle.push(connect_from(from, addr).await);
    }
    let mut extra = connect_from(9, addr).await;
    let sent = until_closed(&mut extra, Duration::from_secs(2)).await;
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    // The idle ones are closed once the header timeout passes, not before.
    let started = std::time::Instant::now();
    for mut c in idle {
        until_closed(&mut c, http::HEADER_READ_TIMEOUT + Duration::from_secs(5)).await;
    }
    assert!(started.elapsed() >= http::HEADER_READ_TIMEOUT - Duration::from_secs(1));
    // Their slots are free again.
    let mut probe = TcpStream::connect(addr).await.unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: ingest\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut probe, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
