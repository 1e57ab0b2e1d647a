//! tansu: a Kafka-protocol broker with SQLite storage, in a process of its own (not librdkafka's
//! mock), and topic administration through Kafka's admin API. `bash .ci/install-deps` installs
//! it; a missing one fails the test with how to install it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// A tansu broker process (SQLite storage in a temporary directory), killed when dropped.
pub struct Tansu {
    child: Option<Child>,
    pub brokers: String,
    data: tempfile::TempDir,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tansu binary; a missing one fails the test with how to install it.
fn tansu_binary() -> String {
    let candidate = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
    let found = Command::new(&candidate)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "tansu is required but `{candidate} --version` failed; install it with `cargo install tansu --version 0.6.0 --locked --features dynostore,libsql` (or bash .ci/install-deps)"
    );
    candidate
}

impl Tansu {
    /// Starts tansu on a free port and waits until it answers.
    pub fn start() -> Tansu {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut tansu = Tansu {
            child: None,
            brokers: format!("127.0.0.1:{port}"),
            data: tempfile::tempdir().unwrap(),
        };
        tansu.restart();
        tansu
    }

    /// Kills the broker (its log stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on its port and log, and waits until it answers.
    pub fn restart(&mut self) {
        let url = format!("tcp://{}", self.brokers);
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // tansu reads `sqlite://<name>` as a path relative to its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        // The broker is up when it answers a metadata request.
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while rdkafka::consumer::Consumer::fetch_metadata(&consumer, None, Duration::from_secs(1))
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "tansu did not answer on {}",
                self.brokers
            );
        }
    }

    /// Removes the records at `offsets` of one partition from the broker's log, as log
    /// compaction does: the offsets stay taken, fetches skip them, the high watermark stays.
    /// (Neither broker here compacts or aborts transactions; tansu keeps its log in SQLite, so
    /// the test removes the rows there, with the broker running.)
    pub fn compact(&self, topic: &str, partition: i32, offsets: std::ops::RangeInclusive<i64>) {
        self.sql(
            "delete from record where topition = (select t.id from topition t join topic p \
             on t.topic = p.id where p.name = ?1 and t.partition = ?2) \
             and offset_id between ?3 and ?4",
            &[
                topic,
                &partition.to_string(),
                &offsets.start().to_string(),
                &offsets.end().to_string(),
            ],
        );
    }

    /// Cuts one partition's log back to `next` (records at and after it removed, the high
    /// watermark moved back), as an unclean leader election does: the next records produced
    /// take the removed offsets again.
    pub fn truncate(&self, topic: &str, partition: i32, next: i64) {
        let part = "(select t.id from topition t join topic p on t.topic = p.id \
                    where p.name = ?1 and t.partition = ?2)";
        let args = [topic, &partition.to_string(), &next.to_string()];
        self.sql(
            &format!("delete from record where topition = {part} and offset_id >= ?3"),
            &args,
        );
        self.sql(
            &format!("update watermark set high = ?3 where topition = {part}"),
            &args,
        );
    }

    /// Runs one statement on the broker's SQLite file (through Python's sqlite3, which the
    /// DuckDB readers already need).
    fn sql(&self, statement: &str, args: &[&str]) {
        let script = "import sqlite3, sys\n\
                      c = sqlite3.connect(sys.argv[1], timeout=30)\n\
                      n = c.execute(sys.argv[2], [int(a) if a.lstrip('-').isdigit() else a for a in sys.argv[3:]]).rowcount\n\
                      c.commit()\n\
                      assert n > 0, f'no row changed by {sys.argv[2]}'\n";
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(self.data.path().join("tansu.db"))
            .arg(statement)
            .args(args)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{statement}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// An admin client of `brokers` and a runtime to await its answers on.
fn admin(brokers: &str) -> (AdminClient<DefaultClientContext>, tokio::runtime::Runtime) {
    let admin = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (admin, rt)
}

pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let (admin, rt) = admin(brokers);
    let result = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(result.iter().all(Result::is_ok), "{result:?}");
}

pub fn delete_topic(brokers: &str, topic: &str) {
    let (admin, rt) = admin(brokers);
    let result = rt
        .block_on(admin.delete_topics(&[topic], &AdminOptions::new()))
        .unwrap();
    assert!(result.iter().all(Result::is_ok), "{result:?}");
}
