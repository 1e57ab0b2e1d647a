//! The Event Hubs source end to end: the service (in process, or as the `ingest-sink` binary)
//! reads from the AMQP test server (`eventhubs_server`, driven by Microsoft's client over a
//! socket) and lands files, checkpoints and ownership in Azurite.

mod common;
mod eventhubs_server;

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::process::*;
use common::servers::*;
use common::{
    assert_exactly_once, break_storage, config, landed_files, landed_offsets, restore_storage,
    start, unique, until_committed, Running, WAIT,
};
use eventhubs_server::EventHubServer;
use ingest::source::eventhubs::store::CheckpointStore;

/// A pipeline on `s` starting at the latest event where nothing is checkpointed.
fn start_at_latest(s: &Setup) -> Running {
    start(config(
        &s.vars,
        &[("INGEST_EVENTHUBS_START_POSITION", "latest")],
    ))
}

const NAMESPACE: &str = "ingest-test.servicebus.windows.net";
const HUB: &str = "orders";

struct Setup {
    azurite: Azurite,
    server: EventHubServer,
    container: String,
    vars: Vec<(String, String)>,
}

/// Azurite with a fresh container (files under `raw/`, checkpoints at its root, where the
/// SDKs keep them) and a hub of `partitions` partitions. `None` when Azurite is not installed
/// (and the run does not require servers).
fn setup(partitions: usize) -> Setup {
    let azurite = Azurite::start();
    let server = EventHubServer::start(NAMESPACE, HUB, partitions);
    let container = unique("eh").to_ascii_lowercase().replace('_', "-");
    azurite.create_container(&container);
    let mut vars = azurite.env(&container, "raw");
    vars.extend(
        [
            ("INGEST_SOURCE", "eventhubs".to_string()),
            (
                "INGEST_EVENTHUBS_CONNECTION_STRING",
                server.connection_string(),
            ),
            ("INGEST_EVENTHUBS_ENDPOINT", server.endpoint()),
            (
                "INGEST_EVENTHUBS_CHECKPOINT_URL",
                format!("az://{container}"),
            ),
            ("INGEST_EVENTHUBS_LOAD_BALANCING_INTERVAL_MS", "300".into()),
            ("INGEST_EVENTHUBS_OWNERSHIP_EXPIRY_MS", "3000".into()),
            ("INGEST_ENVELOPE", "metadata".into()),
            ("INGEST_FLUSH_MAX_RECORDS", "25".into()),
            ("INGEST_FLUSH_MAX_AGE_MS", "300".into()),
            ("INGEST_LOG_FORMAT", "text".into()),
            ("INGEST_HTTP_ADDR", "127.0.0.1:0".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    Setup {
        azurite,
        server,
        container,
        vars,
    }
}

impl Setup {
    /// Publishes `n` JSON orders to each of `partitions`; returns the offsets by partition
    /// and sequence number.
    fn publish(&self, partitions: &[&str], n: usize) -> BTreeMap<(String, i64), String> {
        let mut offsets = BTreeMap::new();
        for p in partitions {
            for i in 0..n {
                let body = format!(r#"{{"order":{i},"partition":"{p}","note":"naïve café"}}"#);
                let (seq, offset) = self.server.publish_with_key(
                    p,
                    Some(&format!("customer-{}", i % 7)),
                    body.as_bytes(),
                    &[("source", "test")],
                );
                offsets.insert((p.to_string(), seq), offset);
            }
        }
        offsets
    }

    fn store(&self) -> CheckpointStore {
        CheckpointStore::from_config(&config(&self.vars, &[]))
            .expect("store builds")
            .expect("an Event Hubs source")
    }

    /// Downloads the landed files into a local directory.
    async fn landed(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        mirror(&reader(&self.vars), HUB, dir.path()).await;
        dir
    }

    /// A checkpoint blob's metadata as the Azure SDK for Python reads it.
    fn sdk_checkpoint(&self, partition: &str) -> String {
        self.azurite.python(&format!(
            "b = BlobServiceClient.from_connection_string(cs).get_blob_client('{}', '{NAMESPACE}/{HUB}/$default/checkpoint/{partition}')\n\
             print(sorted(b.get_blob_properties().metadata.items()))",
            self.container
        ))
    }

    fn service(&self, extra: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
        let mut child = service(&self.vars, extra)
            .spawn()
            .expect("ingest-sink starts");
        let rx = lines(child.stderr.take().unwrap());
        (child, rx)
    }
}

/// Reads `state` until `done` holds (polling: the service may run in another process, and the
/// store has nothing to await); panics with the last state at the deadline.
async fn eventually<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    mut state: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = state().await;
        if done(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every partition's checkpoint names `last`.
async fn until_checkpointed(store: &CheckpointStore, last: &BTreeMap<&str, i64>) {
    let checkpoints = || async {
        let mut at = BTreeMap::new();
        for p in last.keys() {
            let c = store.checkpoint(p).await.unwrap();
            at.insert(*p, c.and_then(|c| c.sequence_number));
        }
        at
    };
    let what = format!("checkpoints did not reach {last:?}");
    eventually(&what, checkpoints, |at| {
        last.iter().all(|(p, l)| at[p] == Some(*l))
    })
    .await;
}

/// Waits until the ownership records (owner → partitions held) satisfy `owners`.
async fn until_owned(store: &CheckpointStore, owners: impl Fn(&BTreeMap<String, usize>) -> bool) {
    let by_owner = || async {
        let mut by_owner: BTreeMap<String, usize> = BTreeMap::new();
        for o in store
            .ownerships()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| r.owner)
        {
            *by_owner.entry(o).or_default() += 1;
        }
        by_owner
    };
    eventually("ownership never settled", by_owner, owners).await;
}

fn counts(partitions: &[&str], n: i64) -> BTreeMap<i32, i64> {
    partitions.iter().map(|p| (p.parse().unwrap(), n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_partitions_land_exactly_once_with_sdk_checkpoints() {
    let s = setup(3);
    let parts = ["0", "1", "2"];
    let offsets = s.publish(&parts, 60);

    let (token, mut progress, handle) = start(config(&s.vars, &[]));
    let wait = progress.wait_for(|p| {
        parts
            .iter()
            .all(|q| p.committed.get(&q.parse().unwrap()) == Some(&59))
    });
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("every partition checkpointed in time")
        .expect("pipeline running");
    // Events published while the service runs arrive on the open links.
    let later = s.publish(&["1"], 5);
    let wait = progress.wait_for(|p| p.committed.get(&1) == Some(&64));
    tokio::time::timeout(WAIT, wait).await.unwrap().unwrap();
    token.cancel();
    let landed = handle.await.unwrap().expect("clean shutdown");
    assert_eq!(landed.records, 185);

    let dir = s.landed().await;
    let mut expected = counts(&parts, 60);
    expected.insert(1, 65);
    assert_exactly_once(dir.path(), HUB, &expected);
    // What an event becomes: sequence number as offset, partition key as key, enqueued time as
    // timestamp, application properties as headers, the body as the value.
    let (_, lines) = &landed_files(dir.path(), HUB)[0];
    let line = &lines[0];
    assert_eq!(line["topic"], HUB);
    assert!(
        line["key"].as_str().unwrap().starts_with("customer-"),
        "{line}"
    );
    assert!(
        line["timestamp"].as_i64().unwrap() > 1_700_000_000_000,
        "{line}"
    );
    assert_eq!(
        line["headers"],
        serde_json::json!([{"key": "source", "value": "test"}]),
        "{line}"
    );
    assert_eq!(line["value"]["note"], "naïve café", "{line}");

    // Checkpoints as the Azure SDKs read them: the last landed event's sequence number and
    // offset (the server's offsets differ from sequence numbers, so a mix-up shows), and the
    // claim that event landed under, for this service's next start (SDKs ignore the key).
    for p in parts {
        let last = if p == "1" { 64 } else { 59 };
        let offset = offsets
            .get(&(p.to_string(), last))
            .or(later.get(&(p.to_string(), last)))
            .unwrap();
        let checkpoint = s.sdk_checkpoint(p);
        let (claim, sdk) = checkpoint
            .strip_prefix("[('ingestclaim', '")
            .and_then(|rest| rest.split_once("'), "))
            .unwrap_or_else(|| panic!("partition {p}: {checkpoint}"));
        assert_eq!(
            sdk,
            format!("('offset', '{offset}'), ('sequencenumber', '{last}')]"),
            "partition {p}"
        );
        assert!(
            claim.parse::<i64>().is_ok_and(|c| c <= last),
            "partition {p}: {checkpoint}"
        );
    }
    // Shutdown released ownership (empty ownerid, as the SDKs do), so a successor starts at once.
    let records = s.store().ownerships().await.unwrap();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.owner.is_none()), "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_as_parquet_too() {
    let s = setup(2);
    let parts = ["0", "1"];
    s.publish(&parts, 30);
    let (token, _progress, handle) = start(config(&s.vars, &[("INGEST_FORMAT", "parquet")]));
    until_checkpointed(&s.store(), &[("0", 29), ("1", 29)].into()).await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().records, 60);
    let dir = s.landed().await;
    assert_exactly_once(dir.path(), HUB, &counts(&parts, 30));
    let (path, rows) = &landed_files(dir.path(), HUB)[0];
    assert!(
        path.to_string_lossy().ends_with(".parquet"),
        "{}",
        path.display()
    );
    assert_eq!(rows[0]["_topic"], HUB);
    assert_eq!(
        rows[0]["note"], "naïve café",
        "the body's fields are columns: {}",
        rows[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_skips_what_was_there_and_lands_what_comes_after() {
    let s = setup(2);
    let parts = ["0", "1"];
    s.publish(&parts, 10);
    let (token, mut progress, handle) = start_at_latest(&s);
    // Starting at the latest event is written down as a checkpoint at once, so a restart
    // before anything arrives does not go back to the earliest.
    until_checkpointed(&s.store(), &[("0", 9), ("1", 9)].into()).await;
    s.publish(&parts, 5);
    until_committed(&mut progress, &[(0, 14), (1, 14)].into()).await;
    token.cancel();
    assert_eq!(
        handle.await.unwrap().unwrap().records,
        10,
        "only the later events"
    );
    let dir = s.landed().await;
    let landed = landed_offsets(dir.path(), HUB);
    for p in [0, 1] {
        assert_eq!(landed[&p], (10..15).collect::<Vec<i64>>(), "partition {p}");
    }
}

/// The SDK's management link pairs an answer with the next request that reads one, so a request
/// given up between its send and its answer (a round's timeout) would hand its answer to the next
/// caller: another partition's last sequence number, written as this one's `latest` checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_answers_slower_than_a_round_each_reach_their_own_request() {
    let s = setup(2);
    s.publish(&["0"], 10);
    s.publish(&["1"], 3);
    // Slower than the round's 300 ms wait for the partition list and the lag reads.
    s.server.delay_management(Duration::from_millis(700));
    let (token, mut progress, handle) = start_at_latest(&s);
    until_checkpointed(&s.store(), &[("0", 9), ("1", 2)].into()).await;
    s.publish(&["0", "1"], 5);
    until_committed(&mut progress, &[(0, 14), (1, 7)].into()).await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().records, 10);
    let landed = landed_offsets(s.landed().await.path(), HUB);
    assert_eq!(landed[&0], (10..15).collect::<Vec<i64>>());
    assert_eq!(landed[&1], (3..8).collect::<Vec<i64>>());
}

/// The SDK sets no deadline on a management request: one whose answer never comes would hold
/// every later one (a partition's start among them) on that connection for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_management_answer_that_never_comes_holds_nothing_up_for_good() {
    let s = setup(2);
    s.publish(&["0", "1"], 4);
    // The first after the start-up's partition list.
    s.server.lose_management_answers(&[2]);
    let (token, mut progress, handle) = start_at_latest(&s);
    until_checkpointed(&s.store(), &[("0", 3), ("1", 3)].into()).await;
    s.publish(&["0", "1"], 2);
    until_committed(&mut progress, &[(0, 5), (1, 5)].into()).await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().records, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_up_whose_partition_list_never_comes_fails_in_one_line_instead_of_hanging() {
    let s = setup(1);
    // The start-up's own request for the hub's partitions.
    s.server.lose_management_answers(&[1]);
    let config = config(&s.vars, &[]);
    let err = tokio::time::timeout(WAIT, ingest::Pipeline::new(config).run(Default::default()))
        .await
        .expect("fails in time, not hangs")
        .expect_err("cannot start without the partition list");
    let msg = err.to_string();
    assert!(
        msg.contains("no answer")
            && msg.contains("INGEST_EVENTHUBS_EVENT_HUB")
            && !msg.contains('\n'),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_upload_and_checkpoint_lands_each_event_once() {
    let s = setup(2);
    let parts = ["0", "1"];
    s.publish(&parts, 40);

    // The first upload lands, then the service hangs before its checkpoint and is killed.
    let (mut child, rx) = s.service(&[("INGEST_FAULT_HANG_AFTER_UPLOADS", "1")]);
    let fault = wait_line(&rx, "the fault", |l| {
        l.contains("FAULT: hanging before commit")
    });
    signal(&child, "-KILL");
    wait_exit(&mut child);
    let hung_file = fault
        .split('(')
        .nth(1)
        .and_then(|r| r.strip_suffix(')'))
        .expect("the hung file's path")
        .to_string();
    let store = reader(&s.vars);
    let before = listing(&store).await;
    assert!(
        before.contains_key(&hung_file),
        "{hung_file} landed before the crash"
    );

    let (mut child, rx) = s.service(&[]);
    until_checkpointed(&s.store(), &[("0", 39), ("1", 39)].into()).await;
    // The partition whose file landed starts after it (its chain, found by listing: no
    // checkpoint names it yet).
    wait_line(&rx, "the start after the landed file", |l| {
        l.contains("starts where its claim chain ends") && l.contains("chain_next=")
    });
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);

    let after = listing(&store).await;
    for (path, meta) in &before {
        assert_eq!(after.get(path), Some(meta), "{path} was rewritten");
    }
    let dir = s.landed().await;
    assert_exactly_once(dir.path(), HUB, &counts(&parts, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_split_the_partitions_and_a_survivor_takes_over() {
    let s = setup(4);
    let parts = ["0", "1", "2", "3"];
    s.publish(&parts, 20);
    let store = s.store();

    let (mut a, _a_log) = s.service(&[("INGEST_EVENTHUBS_OWNER_ID", "replica-a")]);
    let (mut b, b_log) = s.service(&[("INGEST_EVENTHUBS_OWNER_ID", "replica-b")]);
    until_owned(&store, |o| {
        o.get("replica-a") == Some(&2) && o.get("replica-b") == Some(&2)
    })
    .await;
    until_checkpointed(&store, &parts.iter().map(|p| (*p, 19)).collect()).await;

    // Replica a dies without releasing anything; its records expire and b takes them over.
    signal(&a, "-KILL");
    wait_exit(&mut a);
    s.publish(&parts, 20);
    until_owned(&store, |o| o.get("replica-b") == Some(&4) && o.len() == 1).await;
    until_checkpointed(&store, &parts.iter().map(|p| (*p, 39)).collect()).await;
    wait_line(&b_log, "a takeover", |l| {
        l.contains("partition claimed") && l.contains("replica-a")
    });
    signal(&b, "-TERM");
    assert_eq!(wait_exit(&mut b), 0);

    let dir = s.landed().await;
    assert_exactly_once(dir.path(), HUB, &counts(&parts, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_from_a_checkpoint_an_azure_sdk_wrote() {
    let s = setup(2);
    let offsets = s.publish(&["0", "1"], 20);
    // An Azure SDK processor checkpointed partition 0 at sequence number 9 (an empty blob with
    // metadata, at the lowercased name); partition 1 has no checkpoint.
    let offset9 = &offsets[&("0".to_string(), 9)];
    s.azurite.python(&format!(
        "BlobServiceClient.from_connection_string(cs).get_blob_client('{}', '{NAMESPACE}/{HUB}/$default/checkpoint/0')\
         .upload_blob(b'', overwrite=True, metadata={{'sequencenumber': '9', 'offset': '{offset9}'}})",
        s.container
    ));

    let (token, mut progress, handle) = start(config(&s.vars, &[]));
    until_committed(&mut progress, &[(0, 19), (1, 19)].into()).await;
    token.cancel();
    handle.await.unwrap().expect("clean shutdown");

    let dir = s.landed().await;
    let landed = landed_offsets(dir.path(), HUB);
    assert_eq!(
        landed[&0],
        (10..20).collect::<Vec<_>>(),
        "partition 0 resumed after 9"
    );
    assert_eq!(
        landed[&1],
        (0..20).collect::<Vec<_>>(),
        "partition 1 from the earliest"
    );
    let attach = s
        .server
        .attaches()
        .into_iter()
        .find(|a| a.partition == "0")
        .expect("a receiver on partition 0");
    assert!(
        attach.filter.contains("x-opt-sequence-number") && attach.filter.contains("'9'"),
        "{attach:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_one_line_naming_the_connection_string() {
    let s = setup(1);
    let bad = s.server.connection_string_with_key("d3Jvbmcta2V5");
    let config = config(&s.vars, &[("INGEST_EVENTHUBS_CONNECTION_STRING", &bad)]);
    let err = tokio::time::timeout(WAIT, ingest::Pipeline::new(config).run(Default::default()))
        .await
        .expect("fails in time")
        .expect_err("a wrong key cannot start");
    let msg = err.to_string();
    assert!(
        msg.contains("INGEST_EVENTHUBS_CONNECTION_STRING") && !msg.contains('\n'),
        "{msg}"
    );
    assert!(
        !msg.contains("d3Jvbmcta2V5"),
        "the key is not echoed: {msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_stall_at_the_cap_pauses_the_receivers_and_loses_nothing() {
    let s = setup(2);
    let parts = ["0", "1"];
    s.publish(&parts, 50);
    // Files on local disk (so storage can be broken); checkpoints stay in Azurite.
    let files = tempfile::tempdir().unwrap();
    let (mut child, rx) = s.service(&[
        ("INGEST_STORAGE_URL", files.path().to_str().unwrap()),
        ("INGEST_MAX_BUFFER_BYTES", "16384"),
        ("INGEST_FLUSH_MAX_BYTES", "16384"),
    ]);
    let addr = endpoint_addr(&rx);
    let store = s.store();
    until_checkpointed(&store, &[("0", 49), ("1", 49)].into()).await;

    // Uploads fail: the buffers reach the cap, the loop stops taking events, and after 2 s
    // both partitions' receivers are paused.
    break_storage(files.path());
    s.publish(&parts, 300);
    let paused = |n: f64| {
        move |_: u16, body: &str| parse_metrics(body).get("ingest_paused_partitions") == Some(&n)
    };
    poll_http(&addr, "/metrics", "both receivers paused", paused(2.0));

    // Storage returns: the receivers carry on where they stopped.
    restore_storage(files.path());
    until_checkpointed(&store, &[("0", 349), ("1", 349)].into()).await;
    poll_http(&addr, "/metrics", "receivers resumed", paused(0.0));
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
    assert_exactly_once(files.path(), HUB, &counts(&parts, 350));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_longer_than_the_ownership_expiry_keeps_one_receiver_per_partition() {
    let mut s = setup(2);
    let parts = ["0", "1"];
    s.publish(&parts, 20);
    let (token, mut progress, handle) = start(config(&s.vars, &[]));
    let through = |n: i64| {
        move |p: &ingest::Progress| {
            p.committed.get(&0) == Some(&n) && p.committed.get(&1) == Some(&n)
        }
    };
    tokio::time::timeout(WAIT, progress.wait_for(through(19)))
        .await
        .unwrap()
        .unwrap();

    // Storage (files, checkpoints and ownership) is down for longer than the ownership expiry
    // (3 s here): no renewal reaches it, so the replica's own records expire meanwhile. The
    // outage's length is the scenario, so it is waited out.
    s.azurite.stop();
    s.publish(&parts, 20);
    tokio::time::sleep(Duration::from_secs(5)).await;
    s.azurite.restart();
    tokio::time::timeout(WAIT, progress.wait_for(through(39)))
        .await
        .expect("the outage's events landed")
        .unwrap();
    // More rounds after the recovery, with events arriving: a second receiver on a partition
    // would keep detaching the first (same owner level) and show as attaches.
    s.publish(&parts, 20);
    tokio::time::timeout(WAIT, progress.wait_for(through(59)))
        .await
        .unwrap()
        .unwrap();
    token.cancel();
    assert_eq!(handle.await.unwrap().expect("clean shutdown").records, 120);

    for p in parts {
        let attaches: Vec<_> = s
            .server
            .attaches()
            .into_iter()
            .filter(|a| a.partition == p)
            .collect();
        assert_eq!(
            attaches.len(),
            1,
            "partition {p}: one receiver for the whole run: {attaches:#?}"
        );
    }
    let dir = s.landed().await;
    assert_exactly_once(dir.path(), HUB, &counts(&parts, 60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_added_to_the_hub_while_running_lands_its_events() {
    let s = setup(2);
    s.publish(&["0", "1"], 10);
    let (token, mut progress, handle) = start(config(&s.vars, &[]));
    until_committed(&mut progress, &[(0, 9), (1, 9)].into()).await;

    // The hub is scaled out to three partitions; the new one is read without a restart.
    assert_eq!(s.server.add_partitions(1), 3);
    s.publish(&["2"], 15);
    let wait = progress.wait_for(|p| p.committed.get(&2) == Some(&14));
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("the added partition's events landed")
        .unwrap();
    token.cancel();
    assert_eq!(handle.await.unwrap().expect("clean shutdown").records, 35);
    let dir = s.landed().await;
    let mut expected = counts(&["0", "1"], 10);
    expected.insert(2, 15);
    assert_exactly_once(dir.path(), HUB, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_other_producers_send_land_as_json_or_as_dead_letters_with_their_bytes() {
    use eventhubs_server::Body;
    use fe2o3_amqp::types::primitives::{Dec128, OrderedMap, Value};
    let s = setup(1);
    s.server
        .publish("0", br#"{"kind":"data"}"#, &[("source", "sdk")]);
    s.server.publish_body(
        "0",
        Body::Sections(vec![br#"{"kind":"#.to_vec(), br#""sections"}"#.to_vec()]),
    );
    // A JMS text message: the text is the document.
    s.server
        .publish_body("0", Body::Value(Value::String(r#"{"kind":"text"}"#.into())));
    let mut map = OrderedMap::new();
    map.insert(Value::String("kind".into()), Value::String("map".into()));
    map.insert(Value::Symbol("n".into()), Value::Long(3));
    s.server.publish_body("0", Body::Value(Value::Map(map)));
    s.server.publish_body(
        "0",
        Body::Sequence(vec![
            vec![Value::Int(1), Value::String("two".into())],
            vec![Value::Bool(true)],
        ]),
    );
    let decimal = Value::Decimal128(Dec128::from([7; 16]));
    s.server.publish_body("0", Body::Value(decimal.clone()));

    let (token, mut progress, handle) = start(config(
        &s.vars,
        &[("INGEST_INVALID_RECORD_POLICY", "dead-letter")],
    ));
    let wait = progress.wait_for(|p| p.committed.get(&0) == Some(&5));
    tokio::time::timeout(WAIT, wait).await.unwrap().unwrap();
    token.cancel();
    let run = handle.await.unwrap().expect("clean shutdown");
    assert_eq!((run.records, run.dead_letters), (5, 1));

    let dir = s.landed().await;
    mirror(&reader(&s.vars), "_dead_letters", dir.path()).await;
    let values: Vec<String> = landed_files(dir.path(), HUB)
        .iter()
        .flat_map(|(_, lines)| lines)
        .map(|l| l["value"].to_string())
        .collect();
    assert_eq!(
        values,
        [
            r#"{"kind":"data"}"#,
            r#"{"kind":"sections"}"#,
            r#"{"kind":"text"}"#,
            r#"{"kind":"map","n":3}"#,
            r#"[1,"two",true]"#,
        ]
    );
    let dead = landed_files(&dir.path().join("_dead_letters"), HUB);
    let line = &dead[0].1[0];
    assert_eq!(line["offset"], 5, "{line}");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("AMQP value with no JSON form"),
        "{line}"
    );
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line["value_base64"].as_str().expect("the bytes, base64"))
        .unwrap();
    let kept: Value = serde_amqp::from_slice(&bytes).expect("the AMQP encoding");
    assert_eq!(kept, decimal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_counts_events_enqueued_and_not_landed() {
    let s = setup(2);
    s.publish(&["0", "1"], 30);
    let files = tempfile::tempdir().unwrap();
    let (mut child, rx) = s.service(&[("INGEST_STORAGE_URL", files.path().to_str().unwrap())]);
    let addr = endpoint_addr(&rx);
    let lag_is = |want: [f64; 2]| {
        move |_: u16, body: &str| {
            let m = parse_metrics(body);
            (0..2).all(|p| {
                m.get(&format!("ingest_consumer_lag{{partition=\"{p}\"}}")) == Some(&want[p])
            })
        }
    };
    until_checkpointed(&s.store(), &[("0", 29), ("1", 29)].into()).await;
    poll_http(&addr, "/metrics", "caught up", lag_is([0.0, 0.0]));

    // Uploads fail: what arrives is received but not landed, so it is lag.
    break_storage(files.path());
    s.publish(&["0"], 50);
    s.publish(&["1"], 7);
    poll_http(
        &addr,
        "/metrics",
        "lag while storage is down",
        lag_is([50.0, 7.0]),
    );
    restore_storage(files.path());
    until_checkpointed(&s.store(), &[("0", 79), ("1", 36)].into()).await;
    poll_http(&addr, "/metrics", "caught up again", lag_is([0.0, 0.0]));
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
    let mut expected = counts(&["0"], 80);
    expected.insert(1, 37);
    assert_exactly_once(files.path(), HUB, &expected);
}

/// The peak resident memory of a running process (`VmHWM`), in bytes.
fn peak_rss(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024
}

/// The resident memory of the service before it takes anything: this (debug) binary's image and
/// its runtime, alive and waiting for a broker that refuses connections.
fn idle_rss() -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap();
    let vars = [
        ("INGEST_TOPIC", "idle"),
        ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1"),
        ("INGEST_STORAGE_URL", storage),
        ("INGEST_HTTP_ADDR", "127.0.0.1:0"),
        ("INGEST_LOG_FORMAT", "text"),
    ];
    let mut child = common::process::service(&[], &vars).spawn().unwrap();
    let rx = common::process::lines(child.stderr.take().unwrap());
    let addr = common::process::endpoint_addr(&rx);
    poll_http(&addr, "/healthz", "the idle service alive", |status, _| {
        status == 200
    });
    let rss = peak_rss(&child);
    let _ = child.kill();
    let _ = child.wait();
    rss
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_ten_times_the_cap_over_eight_partitions_stays_within_the_cap_plus_50_mb() {
    const CAP: u64 = 16 << 20;
    const EVENT: usize = 256 << 10;
    let s = setup(8);
    let parts = ["0", "1", "2", "3", "4", "5", "6", "7"];
    // 640 events of 256 KiB: 160 MiB waiting, ten times the cap. Link credit and the channel
    // to the loop hold whole events, so with credit sized for small events they alone would
    // hold several times the cap.
    let pad = "x".repeat(EVENT - 40);
    let per_partition = (10 * CAP as usize / EVENT) / parts.len();
    for p in parts {
        for i in 0..per_partition {
            s.server
                .publish(p, format!(r#"{{"i":{i},"pad":"{pad}"}}"#).as_bytes(), &[]);
        }
    }
    let files = tempfile::tempdir().unwrap();
    let (mut child, _rx) = s.service(&[
        ("INGEST_STORAGE_URL", files.path().to_str().unwrap()),
        ("INGEST_MAX_BUFFER_BYTES", &CAP.to_string()),
        ("INGEST_FLUSH_MAX_BYTES", &(4u64 << 20).to_string()),
        ("INGEST_FLUSH_MAX_RECORDS", "1000"),
    ]);
    let last = per_partition as i64 - 1;
    let store = s.store();
    until_checkpointed(&store, &parts.iter().map(|p| (*p, last)).collect()).await;
    let peak = peak_rss(&child);
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
    assert_exactly_once(files.path(), HUB, &counts(&parts, per_partition as i64));
    // What the backlog cost, over the same binary idle (a debug build's image and runtime:
    // its image alone grew from 16 to 21 MiB when the Delta kernel was linked in, which put
    // the whole peak at the bound; a release build's is smaller, and `make bench` measures
    // the whole peak of release builds).
    let idle = idle_rss();
    eprintln!("PEAK {} MiB, idle {} MiB", peak >> 20, idle >> 20);
    assert!(
        peak.saturating_sub(idle) <= CAP + (50 << 20),
        "peak RSS {} MiB, {} MiB over the idle service's, past the cap ({} MiB) + 50 MiB",
        peak >> 20,
        peak.saturating_sub(idle) >> 20,
        CAP >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_another_processor_wrote_inside_a_landed_claim_is_a_hint_not_a_boundary() {
    let s = setup(1);
    let offsets = s.publish(&["0"], 40);
    let flush = [("INGEST_FLUSH_MAX_RECORDS", "20")];
    let (token, mut progress, handle) = start(config(&s.vars, &flush));
    until_committed(&mut progress, &[(0, 39)].into()).await;
    token.cancel();
    handle.await.unwrap().expect("clean shutdown");
    let store = reader(&s.vars);
    let before = listing(&store).await;

    // An Azure SDK processor (a blue/green move, the layout is shared on purpose) checkpointed
    // at 29, inside the landed claim 20..=39 (on the release before the chain, the service
    // resumed at 30 as if it were a claim boundary and landed 30..=39 again).
    let offset29 = &offsets[&("0".to_string(), 29)];
    s.azurite.python(&format!(
        "BlobServiceClient.from_connection_string(cs).get_blob_client('{}', '{NAMESPACE}/{HUB}/$default/checkpoint/0')\
         .upload_blob(b'', overwrite=True, metadata={{'sequencenumber': '29', 'offset': '{offset29}'}})",
        s.container
    ));
    s.publish(&["0"], 10);
    let (token, mut progress, handle) = start(config(&s.vars, &flush));
    until_committed(&mut progress, &[(0, 49)].into()).await;
    token.cancel();
    let run = handle.await.unwrap().expect("clean shutdown");
    assert_eq!(run.records, 10, "only the new events: {run:?}");
    let after = listing(&store).await;
    for (path, meta) in &before {
        if path.starts_with(&format!("{HUB}/")) {
            assert_eq!(after.get(path), Some(meta), "{path} was rewritten");
        }
    }
    let dir = s.landed().await;
    assert_exactly_once(dir.path(), HUB, &counts(&["0"], 50));
}

/// Two events whose `amqp-value` bodies nest deep, between two ordinary events, to the service
/// as its own process: a list nested 3,000 deep and a value described 100,000 times over
/// (three bytes a level: 300 KB). Each is a dead letter with its bytes, and its neighbours
/// land. (Before, decoding the list overflowed a tokio worker's 2 MiB stack, and the described
/// value the 256 MiB one that replaced it: the service aborted at each restart on the same
/// event.)
#[test]
fn bodies_nested_thousands_deep_are_dead_letters_and_their_neighbours_land() {
    // This test's own server encodes the body by recursion: its threads get room for that.
    let big = 1 << 30;
    let test = move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_stack_size(big)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(deep_body_lands_as_a_dead_letter());
    };
    std::thread::Builder::new()
        .stack_size(big)
        .spawn(test)
        .unwrap()
        .join()
        .unwrap();
}

async fn deep_body_lands_as_a_dead_letter() {
    use eventhubs_server::Body;
    use fe2o3_amqp::types::primitives::Value;
    use serde_amqp::{described::Described, descriptor::Descriptor};
    let s = setup(1);
    let mut deep = Value::Int(1);
    // Deeper than a thread of the default 2 MiB stack decodes (a debug build takes 7 to 11 KB a
    // level), well past the 128 levels JSON readers take. No deeper: this test server's encoder
    // (fe2o3's) takes time in the square of the depth, 20 s at 10,000 levels in a debug build.
    for _ in 0..3_000 {
        deep = Value::List(vec![deep]);
    }
    // Described values have no size to compute: this server encodes them in linear time.
    let mut described = Value::Int(2);
    for _ in 0..100_000 {
        let value = std::mem::replace(&mut described, Value::Null);
        described = Value::Described(Box::new(Described {
            descriptor: Descriptor::Code(1),
            value,
        }));
    }
    s.server.publish("0", br#"{"kind":"before"}"#, &[]);
    s.server.publish_body("0", Body::Value(deep));
    s.server.publish_body("0", Body::Value(described));
    s.server.publish("0", br#"{"kind":"after"}"#, &[]);

    let (mut child, _rx) = s.service(&[("INGEST_INVALID_RECORD_POLICY", "dead-letter")]);
    until_checkpointed(&s.store(), &[("0", 3)].into()).await;
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);

    let dir = s.landed().await;
    let values: Vec<String> = landed_files(dir.path(), HUB)
        .iter()
        .flat_map(|(_, lines)| lines)
        .map(|l| l["value"].to_string())
        .collect();
    assert_eq!(values, [r#"{"kind":"before"}"#, r#"{"kind":"after"}"#]);
    mirror(&reader(&s.vars), "_dead_letters", dir.path()).await;
    let dead: Vec<_> = landed_files(&dir.path().join("_dead_letters"), HUB)
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    // Nine bytes a level for the list (its 32-bit form), three for the described value.
    for (line, offset, bytes) in [(&dead[0], 1, 9 * 3_000), (&dead[1], 2, 3 * 100_000)] {
        assert_eq!(line["offset"], offset, "{line}");
        assert!(
            line["error"]
                .as_str()
                .unwrap()
                .contains("nested deeper than 128 levels"),
            "{line}"
        );
        let kept = line["value_base64"].as_str().unwrap().len();
        assert!(kept > bytes * 4 / 3, "its bytes are kept: {kept}");
    }
}

/// The namespace cannot be reached when the service starts (nothing listens where it dials):
/// it waits, not ready, then lands everything once a path to the server opens. (Before, it
/// exited 1 at start.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_unreachable_at_start_is_waited_for() {
    let s = setup(1);
    s.publish(&["0"], 10);
    let port = common::servers::free_port();
    let (mut child, rx) = s.service(&[(
        "INGEST_EVENTHUBS_ENDPOINT",
        &format!("amqp://127.0.0.1:{port}"),
    )]);
    let addr = endpoint_addr(&rx);
    for _ in 0..2 {
        wait_line(&rx, "a start-up retry", |l| {
            l.contains("start-up waits for the source")
                && l.contains("cannot connect to Event Hubs")
        });
    }
    let (status, body) = http_get(&addr, "/readyz");
    assert!(
        status == 503 && body.contains("starting: waiting"),
        "{status} {body}"
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");

    // A path to the server opens where the service dials.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let upstream = s.server.port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    until_checkpointed(&s.store(), &[("0", 9)].into()).await;
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
    let dir = s.landed().await;
    assert_exactly_once(dir.path(), HUB, &counts(&["0"], 10));
}

/// The seed's case: events written by Azure's own Avro encoder for Schema Registry (the datum
/// as the body, `avro/binary+<id>` as the content type), a field added mid-stream, landed as
/// Parquet through Azure Schema Registry's REST API; every event once with every field, and
/// Spark reads them all (the new column null before it came), its stream each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_schema_registry_avro_lands_as_parquet_with_a_field_added_and_spark_reads_it() {
    use common::registry::{Mode, Registry};
    python_module(
        "azure.schemaregistry.encoder.avroencoder",
        "pip install azure-schemaregistry-avroencoder",
    );
    python_module("pyspark", "pip install 'pyspark==3.5.*'");
    let s = setup(2);
    let registry = Registry::start().await;
    registry.set_mode(Mode::RequireAuth("Bearer entra-token".into()));
    let mut expected = BTreeMap::new();
    let mut last = BTreeMap::new();
    let made = python_script("azure_avro.py", &["40"]);
    for (i, line) in made.iter().enumerate() {
        if let Some(id) = line["schema_id"].as_str() {
            registry.register_azure(id, line["schema"].as_str().unwrap());
            continue;
        }
        let body = common::registry::unhex(line["hex"].as_str().unwrap());
        let p = if i % 2 == 0 { "0" } else { "1" };
        let seq = s
            .server
            .publish_typed(p, &body, line["content_type"].as_str().unwrap());
        expected.insert((p.parse::<i64>().unwrap(), seq), line["expected"].clone());
        last.insert(p, seq);
    }
    let settings = [
        ("INGEST_FORMAT", "parquet"),
        ("INGEST_VALUE_FORMAT", "avro"),
        ("INGEST_SCHEMA_REGISTRY_URL", registry.url.as_str()),
        ("INGEST_SCHEMA_REGISTRY_BEARER_TOKEN", "entra-token"),
    ];
    let (token, _progress, handle) = start(config(&s.vars, &settings));
    until_checkpointed(&s.store(), &last).await;
    token.cancel();
    assert_eq!(handle.await.unwrap().unwrap().records, 80);
    let dir = s.landed().await;
    // Read by DuckDB: `at` in a UTC timestamp column, the same instant to the microsecond.
    let rows = duckdb_script(
        "read_typed_parquet.py",
        &[dir.path().to_str().unwrap(), HUB],
    );
    let mut seen = 0;
    for row in rows {
        let key = (
            row["partition"].as_i64().unwrap(),
            row["offset"].as_i64().unwrap(),
        );
        let want = expected.remove(&key).expect("each event once");
        assert_eq!(row["record"], common::registry::micros(&want), "{key:?}");
        assert_eq!(row["types"]["at"], "TIMESTAMP WITH TIME ZONE");
        seen += 1;
    }
    assert_eq!((seen, expected.len()), (80, 0));
    let work = tempfile::tempdir().unwrap();
    let spark = python_script(
        "spark_read.py",
        &[
            dir.path().as_os_str(),
            HUB.as_ref(),
            work.path().as_os_str(),
        ],
    );
    let got = spark.last().expect("Spark's line");
    assert_eq!(
        (&got["rows"], &got["distinct"], &got["added_nulls"]),
        (&80.into(), &80.into(), &40.into()),
        "{got}"
    );
    // Rows in the stream's output after each run over one checkpoint: the second adds none.
    assert_eq!(
        (&got["stream_first"], &got["stream_second"]),
        (&80.into(), &80.into()),
        "{got}"
    );
}

/// With no bearer token set, Azure Schema Registry is read with the Event Hubs source's own
/// Entra credential: here the managed identity of an App Service-style host
/// (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, served by the test registry), through
/// azure_identity's own token request, in a service process. The registry takes only the token
/// the identity endpoint issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_schema_registry_is_read_with_the_entra_token_of_the_sources_managed_identity() {
    use common::registry::{Mode, Registry};
    python_module(
        "azure.schemaregistry.encoder.avroencoder",
        "pip install azure-schemaregistry-avroencoder",
    );
    let s = setup(1);
    let registry = Registry::start().await;
    registry.issue_tokens("msi-secret", "token-from-the-identity");
    registry.set_mode(Mode::RequireAuth("Bearer token-from-the-identity".into()));
    let mut expected = Vec::new();
    let mut last = 0;
    for line in python_script("azure_avro.py", &["6"]) {
        if let Some(id) = line["schema_id"].as_str() {
            registry.register_azure(id, line["schema"].as_str().unwrap());
            continue;
        }
        let body = common::registry::unhex(line["hex"].as_str().unwrap());
        last = s
            .server
            .publish_typed("0", &body, line["content_type"].as_str().unwrap());
        expected.push(line["expected"].clone());
    }
    let endpoint = format!("{}/msi/token", registry.url);
    let (mut child, _rx) = s.service(&[
        ("INGEST_VALUE_FORMAT", "avro"),
        ("INGEST_SCHEMA_REGISTRY_URL", registry.url.as_str()),
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", "msi-secret"),
    ]);
    until_checkpointed(&s.store(), &[("0", last)].into()).await;
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
    assert_eq!(
        registry.token_resources().first().map(String::as_str),
        Some("https://eventhubs.azure.net"),
        "a token for Event Hubs' resource, from the identity endpoint"
    );
    let dir = s.landed().await;
    let landed: Vec<serde_json::Value> = landed_files(dir.path(), HUB)
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .map(|l| l["value"].clone())
        .collect();
    assert_eq!(landed, expected);
}
