//! The schema registry's REST API, as much as decoding needs: a schema by id
//! (`GET /schemas/ids/<id>`) and the schemas it references (`GET /subjects/<s>/versions/<v>`),
//! with basic or bearer authentication.
//!
//! Invariant: every answer is sorted by what it means for the records waiting on it: the schema;
//! unknown (404: their records are invalid); refused (401, 403, other 4xx: a setting to change,
//! the service stops); unavailable (5xx, 408, 429, no connection, a timeout: waited out).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;

use serde::Deserialize;
use url::Url;

use crate::config::{RegistryAuth, RegistryConfig};

/// A schema as the registry serves it, with the text of every schema it references, in the
/// order they must be read (a reference's own references first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// `AVRO` (when the registry omits it), `JSON` or `PROTOBUF`.
    pub kind: String,
    pub text: String,
    pub references: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The registry has no such schema (or a schema it references).
    Unknown(String),
    /// A setting to change: credentials, permissions, the URL.
    Refused(String),
    /// Worth retrying.
    Unavailable(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: String,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

#[derive(Deserialize, Clone)]
struct Reference {
    subject: String,
    version: i64,
}

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// References nested deeper than this are refused (a cycle, or a registry misbehaving).
const MAX_REFERENCE_DEPTH: usize = 32;

pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: RegistryAuth,
    /// Azure Schema Registry's tokens, when no bearer token is set.
    entra: Option<Arc<dyn TokenCredential>>,
}

/// Azure Schema Registry's API version and the scope of its Entra tokens.
const AZURE_API_VERSION: &str = "2023-07-01";
const AZURE_SCOPE: &str = "https://eventhubs.azure.net/.default";

impl Client {
    pub fn new(
        config: &RegistryConfig,
        entra: Option<Arc<dyn TokenCredential>>,
    ) -> Result<Client, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the schema registry's HTTP client: {e}"))?;
        let mut base = config.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Client {
            http,
            base,
            auth: config.auth.clone(),
            entra,
        })
    }

    /// The Avro schema Azure Schema Registry stores under `id` (`GET
    /// /$schemaGroups/$schemas/<id>`: the schema text itself, its format in the content type),
    /// read with the bearer token set, or else an Entra token of the Event Hubs credential.
    pub async fn azure_schema(&self, id: &str) -> Result<Fetched, FetchError> {
        let token = match (&self.auth, &self.entra) {
            (RegistryAuth::Bearer(t), _) => t.clone(),
            (_, Some(credential)) => credential
                .get_token(&[AZURE_SCOPE], None)
                .await
                .map_err(|e| FetchError::Unavailable(format!("an Entra token for {AZURE_SCOPE}: {e}")))?
                .token
                .secret()
                .to_string(),
            (_, None) => {
                return Err(FetchError::Refused(
                    "Azure Schema Registry needs an Entra token: run with the Event Hubs source's Entra credential (AZURE_* variables) or set INGEST_SCHEMA_REGISTRY_BEARER_TOKEN".into(),
                ))
            }
        };
        let path = format!("$schemaGroups/$schemas/{id}?api-version={AZURE_API_VERSION}");
        let (content_type, body) = self.answer(&path, Some(token)).await?;
        let text = String::from_utf8_lossy(&body).into_owned();
        let kind = content_type
            .split(';')
            .find_map(|p| p.trim().strip_prefix("serialization="))
            .unwrap_or("avro")
            .to_ascii_uppercase();
        Ok(Fetched {
            kind,
            text,
            references: Vec::new(),
        })
    }

    /// The schema with `id`, and what it references; `serialized`: Protobuf file descriptors
    /// (base64) instead of `.proto` text.
    pub async fn schema(&self, id: u32, serialized: bool) -> Result<Fetched, FetchError> {
        let query = if serialized { "?format=serialized" } else { "" };
        let body = self.get(&format!("schemas/ids/{id}{query}")).await?;
        let mut references = Vec::new();
        let mut seen = HashSet::new();
        self.references(&body.references, &mut references, &mut seen, query, 0)
            .await?;
        Ok(Fetched {
            kind: body.schema_type.unwrap_or_else(|| "AVRO".into()),
            text: body.schema,
            references,
        })
    }

    /// Appends the text of `refs` (their own references first) to `out`, once each.
    async fn references(
        &self,
        refs: &[Reference],
        out: &mut Vec<String>,
        seen: &mut HashSet<(String, i64)>,
        query: &str,
        depth: usize,
    ) -> Result<(), FetchError> {
        if depth > MAX_REFERENCE_DEPTH {
            return Err(FetchError::Unknown(format!(
                "schema references nest deeper than {MAX_REFERENCE_DEPTH} levels"
            )));
        }
        for r in refs {
            if !seen.insert((r.subject.clone(), r.version)) {
                continue;
            }
            let subject: String =
                url::form_urlencoded::byte_serialize(r.subject.as_bytes()).collect();
            let version = if r.version < 0 {
                "latest".to_string()
            } else {
                r.version.to_string()
            };
            let body = self
                .get(&format!("subjects/{subject}/versions/{version}{query}"))
                .await?;
            Box::pin(self.references(&body.references, out, seen, query, depth + 1)).await?;
            out.push(body.schema);
        }
        Ok(())
    }

    /// A Confluent API answer: a schema with its type and references.
    async fn get(&self, path: &str) -> Result<SchemaBody, FetchError> {
        let (_, body) = self.answer(path, None).await?;
        serde_json::from_slice(&body).map_err(|e| {
            FetchError::Unavailable(format!("GET {path}: an answer that is not a schema ({e})"))
        })
    }

    /// `GET <base>/<path>` with `bearer` (else the configured credentials): the answer's
    /// content type (lower case) and body, when its status is a success.
    async fn answer(
        &self,
        path: &str,
        bearer: Option<String>,
    ) -> Result<(String, bytes::Bytes), FetchError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| FetchError::Refused(format!("{path}: {e}")))?;
        let shown = format!("GET {}", url.path());
        let request = self.http.get(url).header(
            "Accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        let request = match (bearer.as_ref(), &self.auth) {
            (Some(token), _) | (None, RegistryAuth::Bearer(token)) => request.bearer_auth(token),
            (None, RegistryAuth::Basic { username, password }) => {
                request.basic_auth(username, Some(password))
            }
            (None, RegistryAuth::None) => request,
        };
        let unavailable =
            |e: reqwest::Error| FetchError::Unavailable(format!("{shown}: {}", chain(&e)));
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = response.bytes().await.map_err(unavailable)?;
        let said = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        classify(&shown, status, &said)?;
        Ok((content_type, body))
    }
}

/// What an answer's status means for the records waiting on it (`said`: its body's start).
fn classify(shown: &str, status: reqwest::StatusCode, said: &str) -> Result<(), FetchError> {
    match status.as_u16() {
        200..=299 => Ok(()),
        404 => Err(FetchError::Unknown(format!("{shown}: 404 {said}"))),
        401 | 403 => Err(FetchError::Refused(format!(
            "{shown} was refused ({status}): check INGEST_SCHEMA_REGISTRY_USERNAME/PASSWORD or BEARER_TOKEN (Azure: the identity's Schema Registry Reader role), and that they may read schemas"
        ))),
        408 | 429 | 500..=599 => Err(FetchError::Unavailable(format!("{shown}: {status} {said}"))),
        _ => Err(FetchError::Refused(format!(
            "{shown} answered {status} ({said}): is INGEST_SCHEMA_REGISTRY_URL a schema registry?"
        ))),
    }
}

/// An error with its sources, in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
