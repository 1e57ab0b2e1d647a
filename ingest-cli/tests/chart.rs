//! The Helm chart without Helm: every committed service's values (over the chart's defaults,
//! as Helm merges them) pass `values.schema.json`, bad values are rejected, and every
//! `.Values.*` the templates use has a default; `helm lint` and `helm template` run too (a
//! missing `helm` fails with how to install it).

use std::path::{Path, PathBuf};
use std::process::Command;

use ingest_cli::values::{parse_yaml, schema_errors, with_defaults, CHART_VALUES};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    root().join("helm/ingest-sink")
}

fn committed_services() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("services"))
        .unwrap()
        .map(|e| e.unwrap().path().join("values.yaml"))
        .filter(|p| p.exists())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "services/orders/values.yaml is committed");
    out
}

fn minimal() -> Value {
    json!({
        "image": {"repository": "ingest/x"},
        "topic": "x",
        "env": {"INGEST_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "INGEST_STORAGE_URL": "s3://b/p"}
    })
}

#[test]
fn every_committed_service_passes_the_schema() {
    for path in committed_services() {
        let values = parse_yaml(&std::fs::read_to_string(&path).unwrap(), "values").unwrap();
        let errors = schema_errors(&with_defaults(&values));
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn the_defaults_are_valid_except_for_what_each_service_must_supply() {
    assert!(schema_errors(&with_defaults(&minimal())).is_empty());
    let mut parquet = minimal();
    let settings = json!({"env": {"INGEST_FORMAT": "parquet", "INGEST_PARQUET_COMPRESSION": "snappy",
        "INGEST_PARQUET_COMPRESSION_LEVEL": "3", "INGEST_PARQUET_ROW_GROUP_BYTES": "1048576"}});
    ingest_cli::values::merge(&mut parquet, &settings);
    let errors = schema_errors(&with_defaults(&parquet));
    assert!(errors.is_empty(), "{errors:#?}");
    let alone = parse_yaml(CHART_VALUES, "defaults").unwrap();
    let errors = schema_errors(&alone);
    let mut paths: Vec<&str> = errors
        .iter()
        .map(|e| e.split(':').next().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["/", "/", "/image/repository", "/topic"],
        "{errors:#?}"
    );
    for line in [
        "/: INGEST_KAFKA_BOOTSTRAP_SERVERS is not set: add it under env (or secretEnv), or set INGEST_SOURCE to \"eventhubs\" for the native Event Hubs source",
        "/: INGEST_STORAGE_URL is not set: add it under env (or secretEnv)",
    ] {
        assert!(errors.iter().any(|e| e == line), "{errors:#?}");
    }
}

#[test]
fn bad_values_are_rejected() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"replicas": 0}), "/replicas"),
        (json!({"replicas": "2"}), "/replicas"),
        (
            json!({"topic": null}),
            "/topic: \"\" is not a Kafka topic name",
        ),
        (json!({"topic": "a/b"}), "/topic"),
        (json!({"topic": ".."}), "/topic"),
        (
            json!({"env": {"INGEST_KAFKA_SASL_PASSWORD": "x"}}),
            "looks like a secret",
        ),
        (
            json!({"env": {"AZURE_STORAGE_ACCOUNT_KEY": "x"}}),
            "looks like a secret",
        ),
        (
            json!({"env": {"INGEST_TOPIC": "other"}}),
            "set by the chart",
        ),
        (
            json!({"env": {"INGEST_FLUSH_MAX_RECORDS": 5000000}}),
            "quote it",
        ),
        (
            json!({"env": {"INGEST_STORAGE_URL": "az://c/p?sv=1&sig=abc"}}),
            "SAS token",
        ),
        (
            json!({"env": {"INGEST_STORAGE_URL": "s3://key:secret@b/p"}}),
            "credentials",
        ),
        (json!({"env": {"lower_case": "x"}}), "/env"),
        (
            json!({"env": {"INGEST_FORMAT": "avro"}}),
            "/env/INGEST_FORMAT",
        ),
        (
            json!({"env": {"INGEST_PARQUET_COMPRESSION": "lz4"}}),
            "/env/INGEST_PARQUET_COMPRESSION",
        ),
        (
            json!({"env": {"INGEST_PARQUET_ROW_GROUP_BYTES": "0"}}),
            "/env/INGEST_PARQUET_ROW_GROUP_BYTES",
        ),
        (
            json!({"env": {"INGEST_KAFKA_BOOTSTRAP_SERVERS": null}}),
            "/",
        ),
        (
            json!({"secretEnv": {"P": {"secretName": "s"}}}),
            "/secretEnv/P",
        ),
        (
            json!({"secretEnv": {"P": {"secretName": "s", "key": "k", "value": "x"}}}),
            "/secretEnv/P",
        ),
        (
            json!({"shutdownTimeoutSeconds": 0}),
            "/shutdownTimeoutSeconds",
        ),
        (json!({"http": {"port": 70000}}), "/http/port"),
        (
            json!({"serviceMonitor": {"enabled": "yes"}}),
            "/serviceMonitor/enabled",
        ),
        (json!({"replica": 2}), "'replica' was unexpected"),
        (
            json!({"autoscaling": {"keda": {"enabled": true}, "hpa": {"enabled": true}, "partitions": 3}}),
            "autoscaling.keda and autoscaling.hpa are both enabled",
        ),
        (
            json!({"autoscaling": {"keda": {"enabled": true}}}),
            "set autoscaling.partitions to the topic's partition count",
        ),
        (
            json!({"autoscaling": {"hpa": {"enabled": true}, "maxReplicaCount": 0}}),
            "set autoscaling.partitions",
        ),
        (
            json!({"autoscaling": {"lagThreshold": 0}}),
            "/autoscaling/lagThreshold",
        ),
        (
            json!({"autoscaling": {"keda": {"enable": true}}}),
            "/autoscaling/keda",
        ),
        (
            json!({"autoscaling": {"minReplicaCount": -1}}),
            "/autoscaling/minReplicaCount",
        ),
        (json!({"image": {"repository": ""}}), "/image/repository"),
        (
            json!({"serviceAccount": {"annotation": {}}}),
            "'annotation' was unexpected",
        ),
        (
            json!({"serviceAccount": {"automountToken": "no"}}),
            "/serviceAccount/automountToken",
        ),
        (
            json!({"serviceAccount": {"name": "Orders_SA"}}),
            "/serviceAccount/name",
        ),
        (
            json!({"networkPolicy": {"metricsFrom": [{}]}}),
            "/networkPolicy/metricsFrom/0",
        ),
        (
            json!({"networkPolicy": {"metricsFrom": [{"podSelector": {}, "ports": []}]}}),
            "'ports' was unexpected",
        ),
    ];
    for (patch, expect) in cases {
        let mut values = minimal();
        ingest_cli::values::merge(&mut values, &patch);
        let errors = schema_errors(&with_defaults(&values));
        assert!(
            errors.iter().any(|e| e.contains(expect)),
            "{patch} should be rejected with {expect:?}, got {errors:#?}"
        );
        assert!(errors.iter().all(|e| !e.contains('\n')), "one line each");
    }
}

/// `.Values.a.b` paths in a template (also `$.Values`).
fn values_refs(template: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for (i, _) in template.match_indices(".Values.") {
        let rest = &template[i + ".Values.".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        refs.push(rest[..end].trim_end_matches('.').to_string());
    }
    refs
}

#[test]
fn every_value_the_templates_use_has_a_default() {
    let defaults = parse_yaml(CHART_VALUES, "defaults").unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(chart().join("templates")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for r in values_refs(&text) {
            let found = r.split('.').try_fold(&defaults, |v, k| v.get(k));
            assert!(
                found.is_some(),
                "{}: .Values.{r} has no default in values.yaml",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "found the references ({checked})");
    assert_eq!(
        values_refs("{{ .Values.a.b }} {{ $.Values.c }}."),
        ["a.b", "c"]
    );
}

#[test]
fn chart_metadata_and_templates_are_in_place() {
    let meta = parse_yaml(
        &std::fs::read_to_string(chart().join("Chart.yaml")).unwrap(),
        "Chart.yaml",
    )
    .unwrap();
    assert_eq!(
        (meta["apiVersion"].as_str(), meta["name"].as_str()),
        (Some("v2"), Some("ingest-sink"))
    );
    let deployment = std::fs::read_to_string(chart().join("templates/deployment.yaml")).unwrap();
    for needle in [
        "path: /healthz",
        "path: /readyz",
        "INGEST_HTTP_ADDR",
        "INGEST_KAFKA_GROUP_ID",
        "terminationGracePeriodSeconds: {{ add .Values.shutdownTimeoutSeconds 15 }}",
        "INGEST_SHUTDOWN_TIMEOUT_MS",
        "secretKeyRef",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "drop: [\"ALL\"]",
    ] {
        assert!(
            deployment.contains(needle),
            "deployment.yaml lacks {needle}"
        );
    }
    for t in [
        "service.yaml",
        "pdb.yaml",
        "servicemonitor.yaml",
        "_helpers.tpl",
    ] {
        assert!(chart().join("templates").join(t).is_file(), "{t}");
    }
    let monitor = std::fs::read_to_string(chart().join("templates/servicemonitor.yaml")).unwrap();
    assert!(
        monitor.starts_with("{{- if .Values.serviceMonitor.enabled }}")
            && monitor.contains("path: /metrics")
    );
}

#[test]
fn helm_lint_and_template_pass_for_every_committed_service() {
    require_helm();
    let chart = chart();
    for values in committed_services() {
        for sub in [&["lint", "--strict"][..], &["template", "test-release"][..]] {
            let out = Command::new("helm")
                .args(sub)
                .arg(&chart)
                .arg("-f")
                .arg(&values)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "helm {sub:?} -f {}: {}",
                values.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "replicas: 0\n").unwrap();
    let out = Command::new("helm")
        .args(["template", "x"])
        .arg(&chart)
        .arg("-f")
        .arg(committed_services()[0].clone())
        .arg("-f")
        .arg(bad.path())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "helm rejects replicas: 0 through the schema"
    );
}

/// `helm template` of the committed orders service with `extra` values on top; the rendered
/// manifests, or Helm's error.
fn render(extra: &str) -> Result<String, String> {
    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(values.path(), extra).unwrap();
    let out = Command::new("helm")
        .args(["template", "orders"])
        .arg(chart())
        .arg("-f")
        .arg(root().join("services/orders/values.yaml"))
        .arg("-f")
        .arg(values.path())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The rendered document of `kind`, if there is one.
fn manifest<'a>(rendered: &'a str, kind: &str) -> Option<&'a str> {
    rendered
        .split("\n---")
        .find(|doc| doc.contains(&format!("\nkind: {kind}\n")))
}

#[test]
fn helm_renders_the_autoscaler_chosen_and_leaves_it_the_replica_count() {
    require_helm();
    let plain = render("replicas: 2\n").unwrap();
    assert!(
        manifest(&plain, "ScaledObject").is_none()
            && manifest(&plain, "HorizontalPodAutoscaler").is_none()
    );
    assert!(manifest(&plain, "Deployment")
        .unwrap()
        .contains("\n  replicas: 2\n"));

    let keda =
        render("autoscaling:\n  keda: {enabled: true}\n  partitions: 12\n  lagThreshold: 5000\n")
            .unwrap();
    let scaled = manifest(&keda, "ScaledObject").expect("a ScaledObject");
    for needle in [
        "apiVersion: keda.sh/v1alpha1",
        "scaleTargetRef:\n    name: orders\n",
        "maxReplicaCount: 12\n",
        "minReplicaCount: 1\n",
        "cooldownPeriod: 300\n",
        "- type: kafka",
        "bootstrapServers: \"kafka:9092\"",
        "consumerGroup: \"orders\"",
        "topic: \"orders\"",
        "lagThreshold: \"5000\"",
        "offsetResetPolicy: earliest",
    ] {
        assert!(
            scaled.contains(needle),
            "ScaledObject lacks {needle:?}:\n{scaled}"
        );
    }
    let deployment = manifest(&keda, "Deployment").unwrap();
    assert!(
        !deployment.contains("replicas:"),
        "KEDA owns the replica count:\n{deployment}"
    );

    let eventhubs = render(
        "env:\n  INGEST_SOURCE: eventhubs\n  INGEST_EVENTHUBS_NAMESPACE: ns.servicebus.windows.net\n  \
         INGEST_EVENTHUBS_EVENT_HUB: orders\n  INGEST_EVENTHUBS_CHECKPOINT_URL: az://checkpoints\n\
         autoscaling:\n  keda: {enabled: true, authenticationRef: orders-keda}\n  maxReplicaCount: 4\n",
    )
    .unwrap();
    let scaled = manifest(&eventhubs, "ScaledObject").unwrap();
    for needle in [
        "- type: azure-eventhub",
        "checkpointStrategy: blobMetadata",
        "blobContainer: \"checkpoints\"",
        "eventHubNameFromEnv: INGEST_EVENTHUBS_EVENT_HUB",
        "consumerGroup: \"$Default\"",
        "maxReplicaCount: 4\n",
        "authenticationRef:\n        name: orders-keda",
    ] {
        assert!(
            scaled.contains(needle),
            "ScaledObject lacks {needle:?}:\n{scaled}"
        );
    }
    assert!(
        !scaled.contains("connectionFromEnv"),
        "the TriggerAuthentication has the credentials"
    );
    let prefixed = render(
        "env:\n  INGEST_SOURCE: eventhubs\n  INGEST_EVENTHUBS_CHECKPOINT_URL: az://checkpoints/orders\n\
         autoscaling:\n  keda: {enabled: true}\n  partitions: 4\n",
    )
    .unwrap_err();
    assert!(prefixed.contains("without a prefix"), "{prefixed}");

    let hpa =
        render("autoscaling:\n  hpa: {enabled: true}\n  partitions: 6\n  minReplicaCount: 0\n")
            .unwrap();
    let autoscaler = manifest(&hpa, "HorizontalPodAutoscaler").expect("an HPA");
    for needle in [
        "minReplicas: 1\n",
        "maxReplicas: 6\n",
        "name: ingest_consumer_lag",
        "averageValue: \"10000\"",
    ] {
        assert!(
            autoscaler.contains(needle),
            "HPA lacks {needle:?}:\n{autoscaler}"
        );
    }
    assert!(!manifest(&hpa, "Deployment").unwrap().contains("replicas:"));
    let too_many =
        render("autoscaling:\n  hpa: {enabled: true}\n  partitions: 3\n  minReplicaCount: 5\n")
            .unwrap_err();
    assert!(
        too_many.contains("autoscaling.minReplicaCount (5) is above the most replicas (3)"),
        "{too_many}"
    );
    let both =
        render("autoscaling:\n  hpa: {enabled: true}\n  keda: {enabled: true}\n  partitions: 3\n")
            .unwrap_err();
    assert!(
        both.contains("autoscaling"),
        "the schema rejects both: {both}"
    );
}

#[test]
fn static_membership_names_each_member_after_its_pod_and_is_off_by_default() {
    require_helm();
    let plain = render("").unwrap();
    assert!(
        !manifest(&plain, "Deployment")
            .unwrap()
            .contains("INGEST_KAFKA_GROUP_INSTANCE_ID"),
        "off by default: a static member holds its partitions after a rollout"
    );
    let on = render("staticMembership: true\n").unwrap();
    let deployment = manifest(&on, "Deployment").unwrap();
    assert!(
        deployment.contains(
            "- name: INGEST_KAFKA_GROUP_INSTANCE_ID\n              valueFrom:\n                fieldRef:\n                  fieldPath: metadata.name"
        ),
        "{deployment}"
    );
    assert!(
        render("staticMembership: \"yes\"\n").is_err(),
        "the schema wants a boolean"
    );
}

#[test]
fn the_service_account_carries_the_identity_annotations_and_the_pod_names_it() {
    require_helm();
    let irsa = "arn:aws:iam::123456789012:role/orders-sink";
    let client_id = "00000000-0000-0000-0000-000000000001";
    let rendered = render(&format!(
        "serviceAccount:\n  annotations:\n    eks.amazonaws.com/role-arn: {irsa}\n    \
         azure.workload.identity/client-id: {client_id:?}\n\
         podLabels:\n  azure.workload.identity/use: \"true\"\n"
    ))
    .unwrap();
    let account = manifest(&rendered, "ServiceAccount").expect("a ServiceAccount by default");
    for needle in [
        "\nmetadata:\n  name: orders\n".to_string(),
        format!("\n    eks.amazonaws.com/role-arn: {irsa}\n"),
        format!("\n    azure.workload.identity/client-id: {client_id}\n"),
        "\nautomountServiceAccountToken: false".to_string(),
    ] {
        assert!(
            account.contains(&needle),
            "ServiceAccount lacks {needle:?}:\n{account}"
        );
    }
    let deployment = manifest(&rendered, "Deployment").unwrap();
    for needle in [
        "\n      serviceAccountName: orders\n",
        "\n      automountServiceAccountToken: false\n",
        "\n        azure.workload.identity/use: \"true\"\n",
    ] {
        assert!(
            deployment.contains(needle),
            "Deployment lacks {needle:?}:\n{deployment}"
        );
    }
    let plain = render("").unwrap();
    assert!(
        !manifest(&plain, "ServiceAccount")
            .unwrap()
            .contains("annotations:"),
        "no annotations unless asked"
    );

    let mounted = render("serviceAccount: {automountToken: true}\n").unwrap();
    assert!(manifest(&mounted, "Deployment")
        .unwrap()
        .contains("\n      automountServiceAccountToken: true\n"));
    assert!(manifest(&mounted, "ServiceAccount")
        .unwrap()
        .contains("\nautomountServiceAccountToken: true"));
}

#[test]
fn an_existing_service_account_is_named_and_none_is_created() {
    require_helm();
    let named = render("serviceAccount: {create: false, name: orders-identity}\n").unwrap();
    assert!(
        manifest(&named, "ServiceAccount").is_none(),
        "create: false renders no ServiceAccount:\n{named}"
    );
    assert!(manifest(&named, "Deployment")
        .unwrap()
        .contains("\n      serviceAccountName: orders-identity\n"));

    let unnamed = render("serviceAccount: {create: false}\n").unwrap();
    assert!(manifest(&unnamed, "ServiceAccount").is_none());
    assert!(
        manifest(&unnamed, "Deployment")
            .unwrap()
            .contains("\n      serviceAccountName: default\n"),
        "no name: the namespace's default account"
    );

    let renamed = render("serviceAccount: {name: sink-identity}\n").unwrap();
    assert!(manifest(&renamed, "ServiceAccount")
        .unwrap()
        .contains("\n  name: sink-identity\n"));
    assert!(manifest(&renamed, "Deployment")
        .unwrap()
        .contains("\n      serviceAccountName: sink-identity\n"));
}

#[test]
fn the_network_policy_is_off_by_default_and_admits_only_the_metrics_port_from_the_peers() {
    require_helm();
    assert!(manifest(&render("").unwrap(), "NetworkPolicy").is_none());

    let rendered = render(
        "http: {port: 9100}\n\
         networkPolicy:\n  enabled: true\n  metricsFrom:\n    \
         - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n      \
         podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}\n    \
         - ipBlock: {cidr: 10.0.0.0/8}\n",
    )
    .unwrap();
    let policy = manifest(&rendered, "NetworkPolicy").expect("a NetworkPolicy when enabled");
    let spec = policy.split_once("\nspec:\n").unwrap().1;
    assert_eq!(
        spec.trim_end(),
        "  podSelector:
    matchLabels:
      app.kubernetes.io/name: ingest-sink
      app.kubernetes.io/instance: orders
  policyTypes:
    - Ingress
  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: monitoring
          podSelector:
            matchLabels:
              app.kubernetes.io/name: prometheus
        - ipBlock:
            cidr: 10.0.0.0/8
      ports:
        - port: 9100
          protocol: TCP",
        "one rule: the metrics port from the peers; egress left open"
    );
    assert!(
        manifest(&rendered, "Deployment")
            .unwrap()
            .contains("containerPort: 9100\n"),
        "the port the policy opens is the container's"
    );

    let closed = render("networkPolicy: {enabled: true}\n").unwrap();
    let policy = manifest(&closed, "NetworkPolicy").unwrap();
    assert!(
        policy.trim_end().ends_with("\n  ingress: []") && !policy.contains("- from:"),
        "no peers: no rule (a rule without `from` would admit everyone):\n{policy}"
    );
}

#[test]
fn secret_names_under_env_are_refused_by_helm_and_the_schema() {
    require_helm();
    for name in [
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_MASTER_KEY",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_TOKEN",
        "AZURE_STORAGE_ENCRYPTION_KEY",
        "AZURE_CLIENT_SECRET",
        "AZURE_STORAGE_CLIENT_SECRET",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SSE_CUSTOMER_KEY_BASE64",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "INGEST_EVENTHUBS_CONNECTION_STRING",
        "INGEST_KAFKA_SASL_PASSWORD",
        "INGEST_KAFKA_SSL_KEY_PASSWORD",
        "INGEST_KAFKA_SSL_KEY_PEM",
        "INGEST_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET",
        "INGEST_KAFKA_SSL_KEY",
    ] {
        let err = render(&format!("env:\n  {name}: \"x\"\n")).unwrap_err();
        assert!(
            err.contains(&format!(
                "- env: Property name of \"{name}\" does not match\n"
            )),
            "helm refuses {name} under env: {err}"
        );
        let mut values = minimal();
        ingest_cli::values::merge(&mut values, &json!({"env": {name: "x"}}));
        let errors = schema_errors(&with_defaults(&values));
        let line = format!(
            "/env: {name} looks like a secret or is set by the chart: \
             reference secrets under secretEnv;"
        );
        assert!(
            errors.len() == 1 && errors[0].starts_with(&line) && !errors[0].contains('\n'),
            "{name}: one line saying to use secretEnv, got {errors:#?}"
        );
    }
    // File paths (the key itself comes from a mounted Secret) and key ids are plain settings.
    for plain in [
        "INGEST_KAFKA_SSL_KEY_LOCATION",
        "INGEST_KAFKA_SSL_KEYSTORE_LOCATION",
        "INGEST_KAFKA_SASL_KERBEROS_KEYTAB",
        "AWS_SSE_KMS_KEY_ID",
    ] {
        let rendered = render(&format!("env:\n  {plain}: \"x\"\n"))
            .unwrap_or_else(|e| panic!("{plain} is not a secret: {e}"));
        assert!(manifest(&rendered, "Deployment")
            .unwrap()
            .contains(&format!("- name: {plain}\n")));
        let mut values = minimal();
        ingest_cli::values::merge(&mut values, &json!({"env": {plain: "x"}}));
        let errors = schema_errors(&with_defaults(&values));
        assert!(errors.is_empty(), "{plain}: {errors:#?}");
    }
}

/// Fails the test, with how to install it, when `helm` is not on PATH: a test never passes by
/// skipping.
fn require_helm() {
    assert!(
        Command::new("helm").arg("version").output().is_ok(),
        "helm is not on PATH: install it with `bash .ci/install-deps`"
    );
}

#[test]
fn every_alert_links_its_runbook_section() {
    require_helm();
    let rendered = render(
        "prometheusRule:\n  enabled: true\n  runbookBaseUrl: https://example.org/ingest/docs/runbook.md\n",
    )
    .unwrap();
    let rule = manifest(&rendered, "PrometheusRule").expect("a PrometheusRule");
    let rule: Value = serde_norway::from_str(rule).unwrap();
    let alerts = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let runbook = std::fs::read_to_string(root().join("docs/src/runbook.md")).unwrap();
    let sections: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    assert!(alerts.len() >= 6);
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        let url = alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            url,
            format!(
                "https://example.org/ingest/docs/runbook.md#{}",
                name.to_lowercase()
            ),
            "{name}"
        );
        assert!(
            sections.contains(&name.to_lowercase()),
            "docs/src/runbook.md has no section for {name}"
        );
    }
}
