//! The container files, checked structurally (no Docker daemon here): the Dockerfile builds
//! the service named by `--build-arg SERVICE` from files that exist and runs it as non-root; the
//! compose file parses, its services depend on services it defines, and the sink's environment
//! passes the service's own configuration rules.

use std::path::{Path, PathBuf};

use ingest_cli::{services, values::parse_yaml};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn dockerfile_builds_the_chosen_service_in_stages_and_runs_as_non_root() {
    let text = read("Dockerfile");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(lines.contains(&"ARG SERVICE"), "the build argument");
    assert!(text.contains(r#"cargo build --release --locked -p "${SERVICE}""#));
    for line in &lines {
        if let Some(args) = line.strip_prefix("COPY ") {
            if args.starts_with("--from=") {
                continue;
            }
            let parts: Vec<&str> = args.split_whitespace().collect();
            for src in &parts[..parts.len() - 1] {
                assert!(
                    root().join(src).exists(),
                    "COPY source {src} does not exist"
                );
            }
        }
    }
    let runtime = text.rsplit("FROM ").next().unwrap();
    let user = runtime
        .lines()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    assert!(!["root", "0", "0:0"].contains(&user), "non-root: {user}");
    assert!(runtime.contains("ENTRYPOINT"));
    let ignore = read(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "the build context skips target/"
    );
}

#[test]
fn compose_stack_parses_and_its_sink_is_configured_validly() {
    let compose = parse_yaml(&read("docker-compose.yml"), "docker-compose.yml").unwrap();
    let svcs = compose["services"].as_object().expect("services");
    for needed in ["kafka", "minio", "azurite", "orders"] {
        assert!(svcs.contains_key(needed), "compose lacks {needed}");
    }
    for (name, svc) in svcs {
        assert!(
            svc["image"].is_string() || svc["build"].is_object(),
            "{name}: image or build"
        );
        if let Some(deps) = svc["depends_on"].as_object() {
            for dep in deps.keys() {
                assert!(svcs.contains_key(dep), "{name} depends on unknown {dep}");
            }
        }
    }
    let kafka = &svcs["kafka"]["environment"];
    assert_eq!(
        kafka["KAFKA_PROCESS_ROLES"], "broker,controller",
        "KRaft mode"
    );

    let sink = &svcs["orders"];
    let crate_name = sink["build"]["args"]["SERVICE"].as_str().unwrap();
    let known = services::list(&root().join("services")).unwrap();
    assert!(
        known.iter().any(|s| s.crate_name == crate_name),
        "{crate_name} is a service"
    );
    let env: Vec<(String, String)> = sink["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect();
    let config = ingest::Config::from_pairs(env).expect("the sink's compose environment is valid");
    assert!(
        config.unknown_variables.is_empty(),
        "{:?}",
        config.unknown_variables
    );
    let Value::String(bootstrap) = &sink["environment"]["INGEST_KAFKA_BOOTSTRAP_SERVERS"] else {
        panic!("bootstrap servers")
    };
    let internal = kafka["KAFKA_ADVERTISED_LISTENERS"].as_str().unwrap();
    assert!(
        internal.contains(bootstrap.as_str()),
        "{bootstrap} is advertised by kafka"
    );
}
