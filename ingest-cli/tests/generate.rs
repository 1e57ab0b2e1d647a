//! The five-minute path, for real: `ingest-cli new-service` into a fresh workspace that uses
//! this `ingest-core` by path, `cargo build` (warm: the current target directory), then the
//! generated binary: no environment gives the one-line configuration error and exit code 2; a
//! valid environment (in-process Kafka broker, local directory) lands every record, commits it,
//! and exits 0 on SIGTERM. The README's transform example is built too, so it stays true.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "smoke.events";
const FILTERED: &str = "smoke.filtered";
const PARTITIONS: i32 = 2;
const PER_PARTITION: usize = 120;
const WAIT: Duration = Duration::from_secs(60);

fn cli(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ingest-cli"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest-cli {args:?}: {err}");
}

/// The target directory this test was built in (`<target>/debug/ingest-cli`).
fn target_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_ingest-cli"));
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// A workspace like a user's: `services/*`, `ingest` pointing at this repository's core.
fn workspace(dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
    let manifest = format!(
        "[workspace]\nresolver = \"2\"\nmembers = [\"services/*\"]\n\n\
         [workspace.package]\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"Apache-2.0\"\n\n\
         [workspace.dependencies]\ningest = {{ package = \"ingest-core\", path = {:?} }}\n\n\
         [workspace.lints.rust]\nunsafe_code = \"forbid\"\n",
        repo.join("ingest-core")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    // Same dependency versions as this workspace: the build reuses the warm target directory.
    std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
}

/// The first ```rust block of a generated README.
fn readme_example(readme: &Path) -> String {
    let text = std::fs::read_to_string(readme).unwrap();
    let start = text.find("```rust\n").expect("a rust example") + "```rust\n".len();
    let len = text[start..].find("```").unwrap();
    text[start..start + len].to_string()
}

fn produce(brokers: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for p in 0..PARTITIONS {
        for n in 0..PER_PARTITION {
            let value = format!(r#"{{"p":{p},"n":{n},"city":"Zürich"}}"#);
            let mut record = BaseRecord::<(), _>::to(TOPIC).partition(p).payload(&value);
            while let Err((_, r)) = producer.send(record) {
                producer.poll(Duration::from_millis(5));
                record = r;
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Lines landed under `<root>/<topic>/`.
fn landed_lines(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.join(TOPIC)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.is_dir() {
                stack.push(path);
            } else {
                let mut text = String::new();
                let raw = std::fs::read(&path).unwrap();
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .read_to_string(&mut text)
                    .unwrap();
                count += text.lines().count();
            }
        }
    }
    count
}

fn committed(brokers: &str, group: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.partition(), o),
            _ => (e.partition(), -1),
        })
        .collect()
}

#[test]
fn a_generated_service_builds_fails_clearly_without_config_and_lands_records() {
    let started = Instant::now();
    let ws = tempfile::tempdir().unwrap();
    workspace(ws.path());
    cli(
        ws.path(),
        &["new-service", TOPIC, "--storage-url", "file:///tmp/x"],
    );
    cli(ws.path(), &["new-service", FILTERED]);
    let filtered = ws.path().join("services").join(FILTERED);
    std::fs::write(
        filtered.join("src/main.rs"),
        readme_example(&filtered.join("README.md")),
    )
    .unwrap();

    // The nested build must not see the variables cargo sets for this test (package names,
    // manifest dir): only the target directory is shared, so the build is warm.
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "-p", "smoke-events", "-p", "smoke-filtered"])
        .current_dir(ws.path());
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" {
            build.env_remove(k);
        }
    }
    let built = build
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "cargo build of the generated services failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    eprintln!("generated and built in {:?}", started.elapsed());
    let binary = target_dir().join("debug/smoke-events");

    // No environment at all: one line naming the first missing variable, exit code 2.
    let out = Command::new(&binary).env_clear().output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("ingest: INGEST_TOPIC is not set"), "{err}");

    // A real broker (in process, over TCP) and a local directory.
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers);
    let landing = tempfile::tempdir().unwrap();
    let group = format!("smoke-{}", std::process::id());
    let mut child = Command::new(&binary)
        .env_clear()
        .envs([
            ("INGEST_TOPIC", TOPIC),
            ("INGEST_KAFKA_BOOTSTRAP_SERVERS", brokers.as_str()),
            ("INGEST_KAFKA_GROUP_ID", group.as_str()),
            ("INGEST_STORAGE_URL", landing.path().to_str().unwrap()),
            ("INGEST_FLUSH_MAX_RECORDS", "50"),
            ("INGEST_FLUSH_MAX_AGE_MS", "300"),
            ("INGEST_LOG_FORMAT", "text"),
            ("RUST_LOG", "warn"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let total = PARTITIONS as usize * PER_PARTITION;
    let deadline = Instant::now() + WAIT;
    while landed_lines(landing.path()) < total {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the service exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "records did not land within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no exit within {WAIT:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean shutdown");
    assert_eq!(landed_lines(landing.path()), total, "exactly once");
    let expected: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, PER_PARTITION as i64)).collect();
    assert_eq!(committed(&brokers, &group), expected, "committed last + 1");
    eprintln!("whole test: {:?}", started.elapsed());
}
