//! A service's Helm values: merged over the chart's defaults as Helm does, checked against the
//! chart's `values.schema.json`, and turned into the environment the chart gives the pod.
//!
//! Invariant: `validate` applies the same rules as `helm install` (the chart's own schema,
//! embedded) and as the service at start (`ingest::Config::from_pairs`), so a service that
//! validates here starts unless a Secret or `envFrom` entry is missing at runtime.

use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use serde_json::{Map, Value};

use crate::names::release_name;

pub const CHART_VALUES: &str = include_str!("../../helm/ingest-sink/values.yaml");
pub const CHART_SCHEMA: &str = include_str!("../../helm/ingest-sink/values.schema.json");

/// Placeholder value for a variable that comes from a Secret.
const FROM_SECRET: &str = "from-secret";

/// Parses YAML text into JSON values (what Helm and JSON Schema see).
pub fn parse_yaml(text: &str, origin: &str) -> Result<Value> {
    let v: Value = serde_norway::from_str(text)
        .with_context(|| format!("{origin} is not valid YAML; fix the line named"))?;
    Ok(if v.is_null() {
        Value::Object(Map::new())
    } else {
        v
    })
}

pub fn load(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}; is the service name right?", path.display()))?;
    parse_yaml(&text, &path.display().to_string())
}

/// Helm's merge: maps merge key by key, anything else in `over` replaces, `null` deletes.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The chart's defaults with `values` on top.
pub fn with_defaults(values: &Value) -> Value {
    let mut merged = parse_yaml(CHART_VALUES, "helm/ingest-sink/values.yaml")
        .expect("the chart's values.yaml is valid YAML (a test checks it)");
    merge(&mut merged, values);
    merged
}

/// Schema violations of the merged values, one line each (`/path: problem`).
pub fn schema_errors(merged: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(CHART_SCHEMA).expect("the chart's schema is JSON");
    let validator = jsonschema::draft7::new(&schema).expect("the chart's schema compiles");
    validator
        .iter_errors(merged)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() { "/".into() } else { path };
            let schema_path = e.schema_path().to_string();
            match hint(&schema_path, e.instance(), &e.to_string()) {
                Some(hint) => format!("{path}: {hint}"),
                None => format!("{path}: {e}"),
            }
        })
        .collect()
}

/// Plainer words for the schema rules whose generic message would not say what to do.
fn hint(schema_path: &str, instance: &Value, message: &str) -> Option<String> {
    // propertyNames errors end with `for "NAME"`.
    let name = message
        .rsplit_once(" for ")
        .map_or("", |(_, n)| n.trim_matches('"'));
    if schema_path.ends_with("/env/propertyNames/not") {
        Some(format!(
            "{name} looks like a secret or is set by the chart: reference secrets under \
             secretEnv; INGEST_TOPIC, INGEST_KAFKA_GROUP_ID, INGEST_SHUTDOWN_TIMEOUT_MS and \
             INGEST_HTTP_ADDR come from topic, groupId, shutdownTimeoutSeconds and http.port"
        ))
    } else if schema_path.contains("/env/additionalProperties/type") {
        Some(format!(
            "{instance} is not a string: quote it (Helm would print large numbers as 1e+06)"
        ))
    } else if let Some(rule) = schema_path.strip_prefix("/allOf/") {
        if rule.starts_with("2/") {
            return Some(
                "INGEST_TIME_FIELD is not set: INGEST_TIME_SOURCE=field reads each record's time from it; add it under env (e.g. placed_at)".into(),
            );
        }
        let var = match rule.split('/').next() {
            Some("0") => "INGEST_KAFKA_BOOTSTRAP_SERVERS",
            _ => "INGEST_STORAGE_URL",
        };
        let unless = if var == "INGEST_KAFKA_BOOTSTRAP_SERVERS" {
            ", or set INGEST_SOURCE to \"eventhubs\" for the native Event Hubs source"
        } else {
            ""
        };
        Some(format!(
            "{var} is not set: add it under env (or secretEnv){unless}"
        ))
    } else if schema_path == "/properties/autoscaling/not" {
        Some(
            "autoscaling.keda and autoscaling.hpa are both enabled: enable one (KEDA when it is \
             installed, else the HPA)"
                .to_string(),
        )
    } else if schema_path.starts_with("/properties/autoscaling/then/") {
        Some(
            "autoscaling needs a ceiling: set autoscaling.partitions to the topic's partition \
             count (or autoscaling.maxReplicaCount)"
                .to_string(),
        )
    } else if schema_path.starts_with("/properties/topic/") {
        Some(format!(
            "{instance} is not a Kafka topic name: set topic to 1-213 ASCII letters, digits, \
             '.', '_' or '-'"
        ))
    } else if schema_path.contains("/INGEST_STORAGE_URL/not") {
        Some(
            "INGEST_STORAGE_URL carries credentials or a SAS token: move them to \
              secretEnv (AWS_* / AZURE_* variables)"
                .to_string(),
        )
    } else {
        None
    }
}

/// The environment the chart gives the container (Secret values replaced by a placeholder),
/// without `INGEST_HTTP_ADDR`, which the service's HTTP server reads.
pub fn pod_env(merged: &Value) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let topic = merged["topic"].as_str().unwrap_or_default();
    env.push(("INGEST_TOPIC".to_string(), topic.to_string()));
    let group = match merged["groupId"].as_str() {
        Some(g) if !g.is_empty() => g.to_string(),
        _ => release_name(topic),
    };
    env.push(("INGEST_KAFKA_GROUP_ID".into(), group));
    if let Some(s) = merged["shutdownTimeoutSeconds"].as_u64() {
        env.push(("INGEST_SHUTDOWN_TIMEOUT_MS".into(), (s * 1000).to_string()));
    }
    if let Some(vars) = merged["env"].as_object() {
        for (k, v) in vars {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            env.push((k.clone(), v));
        }
    }
    if let Some(vars) = merged["secretEnv"].as_object() {
        for k in vars.keys() {
            // Values the service parses get a placeholder of the right shape.
            let placeholder = match k.as_str() {
                "INGEST_STORAGE_URL" => "file:///from-secret/",
                "AZURE_STORAGE_CONNECTION_STRING" => {
                    "AccountName=from-secret;AccountKey=from-secret"
                }
                "INGEST_EVENTHUBS_CONNECTION_STRING" => {
                    "Endpoint=sb://from-secret.servicebus.windows.net/;SharedAccessKeyName=from-secret;SharedAccessKey=from-secret"
                }
                _ => FROM_SECRET,
            };
            env.push((k.clone(), placeholder.to_string()));
        }
    }
    env
}

/// Every problem with a service's values, one line each; empty when it is good to install.
pub fn check(values: &Value) -> Vec<String> {
    let merged = with_defaults(values);
    let mut problems = schema_errors(&merged);
    if let Some(vars) = merged["env"].as_object() {
        for (k, v) in vars {
            if v.as_str().is_some_and(|s| s.contains("CHANGE-ME")) {
                problems.push(format!(
                    "/env/{k}: replace the CHANGE-ME placeholder in {v}"
                ));
            }
        }
    }
    if let Err(e) = ingest::Config::from_pairs(pod_env(&merged)) {
        let hint = if merged["envFrom"].as_array().is_some_and(|a| !a.is_empty()) {
            " (variables from envFrom are not visible to this check)"
        } else {
            ""
        };
        problems.push(format!("environment: {e}{hint}"));
    }
    problems
}

/// The validated service configuration, for commands that need its settings.
pub fn config(values: &Value) -> Result<ingest::Config> {
    ingest::Config::from_pairs(pod_env(&with_defaults(values)))
        .map_err(|e| anyhow!("{e}; fix values.yaml (ingest-cli validate shows every problem)"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_follows_helm_maps_merge_scalars_replace_null_deletes() {
        let mut base = json!({"a": {"x": 1, "y": 2}, "b": [1], "c": 3});
        merge(
            &mut base,
            &json!({"a": {"y": 5, "z": 6}, "b": [2], "c": null}),
        );
        assert_eq!(base, json!({"a": {"x": 1, "y": 5, "z": 6}, "b": [2]}));
    }

    #[test]
    fn the_chart_sets_topic_group_and_shutdown_from_values() {
        let merged = with_defaults(&json!({"topic": "Orders.EU", "env": {"A": "1"},
            "secretEnv": {"P": {"secretName": "s", "key": "k"}}}));
        let env = pod_env(&merged);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("INGEST_TOPIC"), Some("Orders.EU"));
        assert_eq!(get("INGEST_KAFKA_GROUP_ID"), Some("orders-eu"));
        assert_eq!(get("INGEST_SHUTDOWN_TIMEOUT_MS"), Some("30000"));
        assert_eq!((get("A"), get("P")), (Some("1"), Some(FROM_SECRET)));
    }
}
