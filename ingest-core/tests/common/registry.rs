//! A schema registry for tests: the part of Confluent's REST API that serializers and `ingest`
//! use (register a schema under a subject, read one by id or by subject and version), over a
//! real socket, with switches for what production registries do on a bad day (answer 503,
//! refuse credentials). No registry server can be installed on these machines; Confluent's own
//! Python serializers register their schemas here and write the payloads the tests produce.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What every request is answered with, whatever it asks.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Serve,
    /// Every request answered with this status (503: an outage).
    Fail(u16),
    /// Requests without this `Authorization` header value answered 401.
    RequireAuth(String),
}

#[derive(Default)]
struct State {
    /// By id (from 1): schema text, type, references.
    schemas: Vec<(String, String, Value)>,
    /// Subject to its versions' ids.
    subjects: BTreeMap<String, Vec<usize>>,
    /// Azure Schema Registry's schemas, by their ids.
    azure: BTreeMap<String, String>,
    mode: Option<Mode>,
    /// The managed-identity endpoint's secret header value and the token it issues
    /// ([`Registry::issue_tokens`]); the resources tokens were asked for.
    identity: Option<(String, String)>,
    token_resources: Vec<String>,
    /// Requests answered per path, and those refused or failed.
    served: BTreeMap<String, usize>,
    failed: usize,
}

#[derive(Clone)]
pub struct Registry {
    pub url: String,
    state: Arc<Mutex<State>>,
    /// Requests failed or refused so far, for tests to await.
    failures: tokio::sync::watch::Receiver<usize>,
}

impl Registry {
    pub async fn start() -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (failed, failures) = tokio::sync::watch::channel(0);
        let failed = Arc::new(failed);
        let registry = Registry {
            url,
            state: Arc::default(),
            failures,
        };
        let state = Arc::clone(&registry.state);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (state, failed) = (Arc::clone(&state), Arc::clone(&failed));
                tokio::spawn(async move {
                    let _ = serve(client, &state).await;
                    failed.send_replace(state.lock().unwrap().failed);
                });
            }
        });
        registry
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    /// Requests answered with a schema (by id or by subject and version).
    pub fn reads(&self) -> usize {
        let s = self.state.lock().unwrap();
        s.served
            .iter()
            .filter(|(p, _)| p.starts_with("GET "))
            .map(|(_, n)| n)
            .sum()
    }

    /// Serves App Service's managed-identity protocol at `<url>/msi/token` (what azure_identity's
    /// `ManagedIdentityCredential` asks when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set):
    /// a request whose `x-identity-header` is `secret` gets `token`, valid for an hour.
    pub fn issue_tokens(&self, secret: &str, token: &str) {
        self.state.lock().unwrap().identity = Some((secret.to_string(), token.to_string()));
    }

    /// The resources tokens were issued for, in order.
    pub fn token_resources(&self) -> Vec<String> {
        self.state.lock().unwrap().token_resources.clone()
    }

    /// How many versions `subject` has.
    pub fn versions(&self, subject: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.subjects.get(subject).map_or(0, Vec::len)
    }

    /// Waits until `n` requests were failed or refused by the mode.
    pub async fn until_failed(&self, n: usize) {
        let mut failures = self.failures.clone();
        failures
            .wait_for(|f| *f >= n)
            .await
            .expect("registry running");
    }

    /// Stores an Avro schema under Azure Schema Registry's `id` (served at
    /// `GET /$schemaGroups/$schemas/<id>`).
    pub fn register_azure(&self, id: &str, schema: &str) {
        let mut s = self.state.lock().unwrap();
        s.azure.insert(id.to_string(), schema.to_string());
    }

    /// Registers `schema` (of `kind`: AVRO, JSON, PROTOBUF) under `subject`; its id.
    pub fn register(&self, subject: &str, kind: &str, schema: &str, references: Value) -> usize {
        let mut s = self.state.lock().unwrap();
        register(&mut s, subject, kind, schema, references)
    }
}

/// Bytes from the hex the serializer scripts print.
pub fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn register(s: &mut State, subject: &str, kind: &str, schema: &str, references: Value) -> usize {
    let found = s
        .schemas
        .iter()
        .position(|(t, k, r)| t == schema && k == kind && *r == references);
    let id = match found {
        Some(i) => i + 1,
        None => {
            s.schemas
                .push((schema.to_string(), kind.to_string(), references));
            s.schemas.len()
        }
    };
    let versions = s.subjects.entry(subject.to_string()).or_default();
    if !versions.contains(&id) {
        versions.push(id);
    }
    id
}

fn schema_body(s: &State, id: usize, extra: Value) -> Value {
    let (text, kind, references) = &s.schemas[id - 1];
    let mut body = json!({"schema": text, "id": id});
    // Confluent leaves the type out for Avro; readers must take that as AVRO.
    if kind != "AVRO" {
        body["schemaType"] = json!(kind);
    }
    if references.as_array().is_some_and(|r| !r.is_empty()) {
        body["references"] = references.clone();
    }
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// Answers one request, then closes the connection.
async fn serve(mut client: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_end, content_length) = loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while raw.len() < head_end + content_length {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let body = &raw[head_end..];
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("").to_string();
    let auth = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_string())
    });
    let (status, answer) = match path.as_str() {
        "/msi/token" => token(state, &head, target),
        _ => answer(state, method, &path, auth.as_deref(), body),
    };
    // Azure answers with the schema itself, its format in the content type.
    let (content_type, text) = match answer {
        Value::String(schema) => ("application/json;serialization=Avro", schema),
        json => ("application/vnd.schemaregistry.v1+json", json.to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

/// A managed-identity token request (App Service's protocol): the secret header checked, the
/// resource noted.
fn token(state: &Mutex<State>, head: &str, target: &str) -> (u16, Value) {
    let mut s = state.lock().unwrap();
    let header = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-identity-header")
            .then(|| v.trim().to_string())
    });
    let Some((secret, token)) = s.identity.clone() else {
        return (404, json!({"error": "no identity endpoint here"}));
    };
    if header.as_deref() != Some(secret.as_str()) {
        return (401, json!({"error": "the identity header is wrong"}));
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let resource = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("resource="))
        .map(|r| r.replace("%3A", ":").replace("%2F", "/"))
        .unwrap_or_default();
    s.token_resources.push(resource.clone());
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    (
        200,
        json!({"access_token": token, "expires_on": expires.to_string(), "token_type": "Bearer", "resource": resource}),
    )
}

fn answer(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let mut s = state.lock().unwrap();
    match s.mode.clone() {
        Some(Mode::Fail(status)) => {
            s.failed += 1;
            return (
                status,
                json!({"error_code": status, "message": "unavailable"}),
            );
        }
        Some(Mode::RequireAuth(expected)) if auth != Some(expected.as_str()) => {
            s.failed += 1;
            return (401, json!({"error_code": 401, "message": "Unauthorized"}));
        }
        _ => {}
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_found = (
        404,
        json!({"error_code": 40403, "message": "Schema not found"}),
    );
    let result = match (method, parts.as_slice()) {
        ("POST", ["subjects", subject, "versions"]) => {
            let Ok(req) = serde_json::from_slice::<Value>(body) else {
                return (422, json!({"message": "not JSON"}));
            };
            let kind = req["schemaType"].as_str().unwrap_or("AVRO");
            let references = req.get("references").cloned().unwrap_or(json!([]));
            let text = req["schema"].as_str().unwrap_or("");
            let id = register(&mut s, subject, kind, text, references);
            (200, json!({"id": id}))
        }
        ("GET", ["$schemaGroups", "$schemas", id]) => match s.azure.get(*id) {
            Some(schema) => (200, Value::String(schema.clone())),
            None => not_found,
        },
        ("GET", ["schemas", "ids", id]) => match id.parse::<usize>() {
            Ok(id) if id >= 1 && id <= s.schemas.len() => (200, schema_body(&s, id, json!({}))),
            _ => not_found,
        },
        ("GET", ["subjects", subject, "versions", version]) => {
            let versions = s.subjects.get(*subject).cloned().unwrap_or_default();
            let at = match *version {
                "latest" => versions.len().checked_sub(1),
                v => v.parse::<usize>().ok().and_then(|v| v.checked_sub(1)),
            };
            match at.and_then(|i| versions.get(i).map(|id| (i, *id))) {
                Some((i, id)) => (
                    200,
                    schema_body(&s, id, json!({"subject": subject, "version": i + 1})),
                ),
                None => not_found,
            }
        }
        _ => not_found,
    };
    *s.served
        .entry(format!("{method} {}", parts.first().unwrap_or(&"")))
        .or_default() += 1;
    result
}

/// A timestamp in milliseconds (`...:56.789Z`) as the same instant in microseconds, as a
/// Parquet timestamp column holds it; other values as they are.
pub fn micros(v: &Value) -> Value {
    match v {
        Value::String(s) if s.len() == 24 && &s[10..11] == "T" && s.ends_with('Z') => {
            Value::String(format!("{}000Z", &s[..23]))
        }
        Value::String(s) if s.len() == 20 && &s[10..11] == "T" && s.ends_with('Z') => {
            Value::String(format!("{}.000000Z", &s[..19]))
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), micros(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(micros).collect()),
        other => other.clone(),
    }
}
