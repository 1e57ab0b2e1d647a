//! The service as a process (`ingest-sink`, the same `main` every generated service has):
//! SIGKILL between upload and commit, SIGTERM with buffered data, a second signal, and the
//! one-line errors of bad configuration.

mod common;

use std::process::Command;
use std::sync::mpsc;

use common::process::*;
use common::*;

/// Waits until the service logged reaching the end of every partition at its high watermark:
/// everything produced is then buffered or landed.
fn wait_caught_up(rx: &mpsc::Receiver<String>, high: &std::collections::BTreeMap<i32, i64>) {
    let mut pending: Vec<String> = high
        .iter()
        .map(|(p, hw)| format!("partition={p} next_offset={hw}"))
        .collect();
    while !pending.is_empty() {
        let line = wait_line(rx, "caught-up lines", |l| l.contains("caught up"));
        pending.retain(|p| !line.contains(p.as_str()));
    }
}

#[test]
fn sigkill_between_upload_and_commit_then_restart_lands_every_offset_once_without_rewrites() {
    crash_between_upload_and_commit(&[]);
}

#[test]
fn sigkill_between_upload_and_commit_lands_every_offset_once_as_parquet_too() {
    crash_between_upload_and_commit(&[("INGEST_FORMAT", "parquet")]);
}

fn crash_between_upload_and_commit(settings: &[(&str, &str)]) {
    let Fixture {
        topic,
        group,
        broker,
        dir,
        mut vars,
    } = Fixture::new("crash", 3);
    vars.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    produce_json(&broker.brokers, &topic, 3, 500, 0);
    let high = high_watermarks(&broker.brokers, &topic, 3);

    // First incarnation: hangs after its 4th upload, before that file's commit.
    let mut first = service(&vars, &[("INGEST_FAULT_HANG_AFTER_UPLOADS", "4")])
        .spawn()
        .unwrap();
    let rx = lines(first.stderr.take().unwrap());
    let fault = wait_line(&rx, "the fault", |l| {
        l.starts_with("FAULT: hanging before commit")
    });
    let hung_file = fault
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    signal(&first, "-KILL");
    assert_eq!(first.wait().unwrap().code(), None, "killed by a signal");
    assert!(
        dir.path().join(&hung_file).exists(),
        "the uploaded file is there: {hung_file}"
    );
    let before = snapshot(dir.path());
    let committed_at_crash = committed(&broker.brokers, &group, &topic, 3);
    assert!(
        committed_at_crash
            .values()
            .zip(high.values())
            .any(|(c, h)| c < h),
        "the crash left work to do"
    );

    // Second incarnation: no fault. It must skip the landed-but-uncommitted file.
    let mut second = service(&vars, &[]).spawn().unwrap();
    let rx = lines(second.stderr.take().unwrap());
    // The hung file's claim is past the committed offset: the start walks the chain through it
    // (and completes any claim without its file); when it was its partition's first file there
    // is no commit to start from, and the chain's end is found by listing.
    let name = hung_file.rsplit('/').next().unwrap();
    let hung_partition: i32 = name.split('+').nth(1).unwrap().parse().unwrap();
    let first_file = name
        .split('+')
        .nth(2)
        .unwrap()
        .starts_with("00000000000000000000.");
    wait_line(&rx, "the hung file's claim in the chain", |l| {
        l.contains("a claim past the group's committed offset")
            || (first_file
                && l.contains("partition starts where its claim chain ends")
                && l.contains(&format!("partition={hung_partition} "))
                && l.contains("chain_next="))
    });
    wait_committed(&broker.brokers, &group, &topic, 3, WAIT);
    signal(&second, "-TERM");
    assert_eq!(wait_exit(&mut second), 0);
    drop(rx);

    assert_exactly_once(dir.path(), &topic, &high);
    assert_nothing_rewritten(&before, dir.path());
}

#[test]
fn sigterm_with_buffered_data_lands_and_commits_everything_then_exits_zero() {
    let Fixture {
        topic,
        group,
        broker,
        dir,
        vars,
    } = Fixture::new("term", 3);
    produce_json(&broker.brokers, &topic, 3, 250, 0);
    let high = high_watermarks(&broker.brokers, &topic, 3);

    // No trigger can fire: everything sits in buffers until SIGTERM.
    let mut child = service(
        &vars,
        &[
            ("INGEST_FLUSH_MAX_RECORDS", "1000000"),
            ("INGEST_FLUSH_MAX_AGE_MS", "3600000"),
        ],
    )
    .spawn()
    .unwrap();
    let rx = lines(child.stderr.take().unwrap());
    wait_caught_up(&rx, &high);
    assert!(
        landed_files(dir.path(), &topic).is_empty(),
        "nothing landed before SIGTERM"
    );
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 0);
    assert_exactly_once(dir.path(), &topic, &high);
    assert_eq!(committed(&broker.brokers, &group, &topic, 3), high);
    assert_eq!(
        landed_files(dir.path(), &topic).len(),
        3,
        "one file per partition"
    );
}

#[test]
fn a_second_signal_exits_at_once_without_committing_unlanded_records() {
    let Fixture {
        topic,
        group,
        broker,
        dir: _dir,
        vars,
    } = Fixture::new("twice", 1);
    produce_json(&broker.brokers, &topic, 1, 100, 0);

    let mut child = service(
        &vars,
        &[
            ("INGEST_FAULT_HANG_AFTER_UPLOADS", "1"),
            ("INGEST_FLUSH_MAX_RECORDS", "40"),
        ],
    )
    .spawn()
    .unwrap();
    let rx = lines(child.stderr.take().unwrap());
    wait_line(&rx, "the fault", |l| l.starts_with("FAULT"));
    signal(&child, "-TERM");
    wait_line(&rx, "the drain", |l| l.contains("shutdown requested"));
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), 130);
    assert_eq!(
        committed(&broker.brokers, &group, &topic, 1)[&0],
        -1,
        "the hung file was never committed"
    );
}

#[test]
fn bad_configuration_stops_with_one_line_naming_the_variable() {
    let broker = Broker::with_topic("present", 1);
    let dir = tempfile::tempdir().unwrap();
    let good = env(&broker.brokers, "present", "g", dir.path());
    // (extra variables, text the one error line must contain, exit code)
    type Case = (Vec<(&'static str, &'static str)>, &'static str, i32);
    let cases: Vec<Case> = vec![
        (vec![("INGEST_TOPIC", "")], "INGEST_TOPIC", 2),
        (
            vec![("INGEST_FLUSH_MAX_AGE_MS", "soon")],
            "INGEST_FLUSH_MAX_AGE_MS=\"soon\" is invalid",
            2,
        ),
        (
            vec![("INGEST_COMPRESSION", "lz4")],
            "INGEST_COMPRESSION=\"lz4\"",
            2,
        ),
        (
            vec![("INGEST_STORAGE_URL", "ftp://x/y")],
            "INGEST_STORAGE_URL",
            2,
        ),
        (
            vec![("INGEST_KAFKA_ENABLE_AUTO_COMMIT", "true")],
            "INGEST_KAFKA_ENABLE_AUTO_COMMIT",
            2,
        ),
        (
            vec![("INGEST_TIME_SOURCE", "field")],
            "INGEST_TIME_FIELD is not set",
            2,
        ),
        (
            vec![
                ("INGEST_TIME_SOURCE", "field"),
                ("INGEST_TIME_FIELD", "placed_at"),
                ("INGEST_TIME_FORMAT", "%H:%M"),
            ],
            "INGEST_TIME_FORMAT=\"%H:%M\" is invalid",
            2,
        ),
        (
            vec![("INGEST_TIME_FIELD", "placed_at")],
            "unless INGEST_TIME_SOURCE=field",
            2,
        ),
        (
            vec![("INGEST_PATH_TEMPLATE", "{topic}/{date}")],
            "INGEST_PATH_TEMPLATE=\"{topic}/{date}\" is invalid: expected directories of the form name=value",
            2,
        ),
        (
            vec![("INGEST_PATH_TEMPLATE", "{topic}/r={record.region}/x={bogus}")],
            "not {bogus}",
            2,
        ),
        (
            vec![("INGEST_PARTITION_BY", "minute")],
            "INGEST_PARTITION_BY=\"minute\" is invalid",
            2,
        ),
        (
            vec![("INGEST_TOPIC", "absent")],
            "topic absent does not exist",
            1,
        ),
        (
            vec![("INGEST_STORAGE_URL", "/proc/ingest-cannot-write-here")],
            "cannot create /proc/ingest-cannot-write-here",
            1,
        ),
        (
            vec![
                ("INGEST_KAFKA_SASL_MECHANISM", "NOPE"),
                ("INGEST_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ],
            "invalid Kafka configuration",
            2,
        ),
        (
            vec![(
                "INGEST_KAFKA_SASL_JAAS_CONFIG",
                "org.apache.kafka.common.security.plain.PlainLoginModule required password=\"SharedAccessKey=s3cr3t\";",
            )],
            "INGEST_KAFKA_SASL_JAAS_CONFIG is not a valid Kafka setting",
            2,
        ),
    ];
    for (extra, expected, code) in cases {
        let out = service(&good, &extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("ERROR") || l.starts_with("ingest: "))
            .collect();
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {stderr}");
        assert_eq!(
            errors.len(),
            1,
            "{extra:?}: exactly one error line expected: {stderr}"
        );
        assert!(
            errors[0].contains(expected),
            "{extra:?}: {:?} lacks {expected:?}",
            errors[0]
        );
        // librdkafka properties are named without their values (they are often secrets).
        for (name, value) in &extra {
            if name.starts_with("INGEST_KAFKA_") && value.len() >= 4 {
                assert!(
                    !stderr.contains(value),
                    "{extra:?}: a value is shown: {stderr}"
                );
            }
        }
    }
    // Without any environment at all: the first missing variable.
    let out = Command::new(env!("CARGO_BIN_EXE_ingest-sink"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "ingest: INGEST_TOPIC is not set: expected the Kafka topic to land, e.g. orders"
    );
}

/// Secrets pasted where they do not belong never reach the output: the service's whole stderr
/// and stdout are searched for them.
#[test]
fn pasted_secrets_are_never_printed() {
    let key = "c2VjcmV0LWtleS1wYXN0ZWQtYnktbWlzdGFrZQ";
    let cases: [Vec<(&str, String)>; 3] = [
        // A bare account key (it ends in '=') as the connection string.
        vec![
            ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9".into()),
            ("INGEST_STORAGE_URL", "az://raw/events".into()),
            ("AZURE_STORAGE_CONNECTION_STRING", format!("{key}==")),
        ],
        // A SAS token pasted after a valid part.
        vec![
            ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9".into()),
            ("INGEST_STORAGE_URL", "az://raw/events".into()),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                format!("AccountName=lake;sv=2024-01-01&sig={key}="),
            ),
        ],
        // The Event Hubs connection string with a pasted key.
        vec![
            ("INGEST_SOURCE", "eventhubs".into()),
            (
                "INGEST_STORAGE_URL",
                "file:///tmp/ingest-never-written".into(),
            ),
            (
                "INGEST_EVENTHUBS_CONNECTION_STRING",
                format!("Endpoint=sb://ns.servicebus.windows.net/;{key}="),
            ),
            ("INGEST_EVENTHUBS_EVENT_HUB", "orders".into()),
        ],
    ];
    for case in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingest-sink"))
            .env_clear()
            .env("INGEST_TOPIC", "orders")
            .envs(case.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(all.contains("an unknown key (not printed"), "{all}");
        assert!(!all.contains(&key[..12]), "a secret is printed: {all}");
    }
}
