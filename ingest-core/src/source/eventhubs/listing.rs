//! Ownership blobs listed with their metadata in one request: Azure's List Blobs with
//! `include=metadata`, which object_store's listing leaves out. One request per ownership
//! round instead of a listing plus a read of every blob another replica renewed.
//!
//! The answer's parse (`parse`) and where the container is (`Target::of`) are pure; `Lister`
//! signs the request with object_store's own Azure credentials and sends it with its HTTP
//! client. Invariant: a listing that cannot be made this way (a storage URL form or credential
//! this does not know, a request the service refuses) is never guessed around: the store falls
//! back to a plain listing and reads of the changed blobs, which is always right.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use object_store::azure::{AzureAuthorizer, AzureCredentialProvider};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::ClientOptions;
use quick_xml::events::Event;
use url::Url;

use crate::config::Config;

/// One blob of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its name within the container.
    pub name: String,
    pub etag: String,
    pub last_modified_ms: i64,
    pub metadata: Vec<(String, String)>,
}

/// The blobs of one List Blobs answer and the marker of the next page (`None`: the last).
pub fn parse(xml: &[u8]) -> Result<(Vec<Listed>, Option<String>), String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut path: Vec<String> = Vec::new();
    let mut blobs = Vec::new();
    let mut blob: Option<Listed> = None;
    let mut next = None;
    let mut text = String::new();
    let mut buf = Vec::new();
    let name_of = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("the listing is not XML: {e}"))?;
        match event {
            Event::Start(e) => {
                let name = name_of(e.local_name().as_ref());
                if name == "Blob" && path.last().is_some_and(|p| p == "Blobs") {
                    blob = Some(Listed {
                        name: String::new(),
                        etag: String::new(),
                        last_modified_ms: 0,
                        metadata: Vec::new(),
                    });
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(e) => {
                // `<ownerid/>`: metadata with an empty value (a released partition).
                let name = name_of(e.local_name().as_ref());
                path.push(name);
                text.clear();
                take(&path, &text, &mut blob, &mut next)?;
                path.pop();
            }
            Event::Text(t) => text.push_str(
                &t.decode()
                    .map_err(|e| format!("the listing has text that is not UTF-8: {e}"))?,
            ),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match r.decode().map_err(|e| e.to_string())?.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => {
                            return Err(format!("the listing has an unknown entity &{other};"))
                        }
                    },
                };
                text.push(c);
            }
            Event::End(_) => {
                take(&path, &text, &mut blob, &mut next)?;
                text.clear();
                if path.pop().as_deref() == Some("Blob") {
                    if let Some(b) = blob.take() {
                        blobs.push(b);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok((blobs, next))
}

/// What the element ending at `path` with `text` says, into the blob being read (or the
/// next page's marker).
fn take(
    path: &[String],
    text: &str,
    blob: &mut Option<Listed>,
    next: &mut Option<String>,
) -> Result<(), String> {
    let at: Vec<&str> = path.iter().map(String::as_str).collect();
    match (blob.as_mut(), at.as_slice()) {
        (Some(b), [.., "Blob", "Name"]) => b.name = text.to_string(),
        (Some(b), [.., "Properties", "Etag"]) => b.etag = text.to_string(),
        (Some(b), [.., "Properties", "Last-Modified"]) => {
            b.last_modified_ms = chrono::DateTime::parse_from_rfc2822(text)
                .map_err(|e| format!("Last-Modified {text:?}: {e}"))?
                .timestamp_millis();
        }
        (Some(b), [.., "Metadata", key]) => b.metadata.push((key.to_string(), text.to_string())),
        (None, ["EnumerationResults", "NextMarker"]) if !text.is_empty() => {
            *next = Some(text.to_string())
        }
        _ => {}
    }
    Ok(())
}

/// Where a container's blobs are listed, and the account that signs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://<account>.blob.core.windows.net/<container>` (or the emulator's, or the
    /// connection string's endpoint with the container).
    pub container_url: Url,
    pub account: String,
    /// The URL's path inside the container, with a trailing `/` (empty at the root).
    pub prefix: String,
}

impl Target {
    /// The target of the Azure storage URL `url` with `config`'s connection settings; `None`
    /// for a URL form or setting this does not know (the caller then lists without metadata).
    pub fn of(config: &Config, url: &Url) -> Option<Target> {
        let host = url.host_str()?;
        let mut path = url.path().trim_matches('/').to_string();
        let (container, url_account) = match url.scheme() {
            "az" | "azure" => (host.to_string(), None),
            "abfs" | "abfss" => (
                url.username().to_string(),
                host.split('.').next().map(str::to_string),
            ),
            _ => return None,
        };
        if container.is_empty() {
            return None;
        }
        let env = &config.cloud_env;
        let connection = config.azure_connection.as_ref();
        let emulator = connection.is_some_and(|c| c.use_emulator)
            || env
                .get("AZURE_STORAGE_USE_EMULATOR")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let account = connection
            .and_then(|c| c.account.clone())
            .or_else(|| env.get("AZURE_STORAGE_ACCOUNT_NAME").map(str::to_string))
            .or(url_account)
            .or_else(|| emulator.then(|| "devstoreaccount1".to_string()))?;
        let endpoint = match connection.and_then(|c| c.blob_endpoint.clone()) {
            Some(e) => e,
            None if emulator => format!(
                "{}/{account}",
                env.get("AZURITE_BLOB_STORAGE_URL")
                    .unwrap_or("http://127.0.0.1:10000")
                    .trim_end_matches('/')
            ),
            None if env.get("AZURE_STORAGE_ENDPOINT").is_some()
                || env.get("AZURE_ENDPOINT").is_some()
                || env.get("AZURE_USE_FABRIC_ENDPOINT").is_some() =>
            {
                return None
            }
            None => format!("https://{account}.blob.core.windows.net"),
        };
        let container_url =
            Url::parse(&format!("{}/{container}", endpoint.trim_end_matches('/'))).ok()?;
        if !path.is_empty() {
            path.push('/');
        }
        Some(Target {
            container_url,
            account,
            prefix: path,
        })
    }
}

/// Sends List Blobs with metadata for one store.
#[derive(Debug)]
pub struct Lister {
    target: Target,
    client: HttpClient,
    credentials: AzureCredentialProvider,
    /// Requests sent (each page is one).
    pub requests: AtomicU64,
}

/// Why a listing with metadata failed: `Refused` means this way of listing does not work here
/// (fall back for good); `Failed` is storage being unavailable (the round fails, as any).
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

impl Lister {
    /// A lister for the checkpoint URL `url`, or `None` when it is not an Azure URL this knows.
    pub fn new(config: &Config, url: &Url) -> Option<Arc<Lister>> {
        let target = Target::of(config, url)?;
        let azure = crate::storage::azure_store(config, url).ok()?;
        let options = ClientOptions::new()
            .with_allow_http(target.container_url.scheme() == "http")
            .with_timeout(std::time::Duration::from_secs(30));
        let client = ReqwestConnector::default().connect(&options).ok()?;
        Some(Arc::new(Lister {
            target,
            client,
            credentials: Arc::clone(azure.credentials()),
            requests: AtomicU64::new(0),
        }))
    }

    /// Every blob whose name (under the URL's path) starts with `prefix`, with its metadata;
    /// names come back relative to the URL's path, as the store names them.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, ListError> {
        let full = format!("{}{prefix}", self.target.prefix);
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = self.target.container_url.clone();
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("restype", "container")
                    .append_pair("comp", "list")
                    .append_pair("prefix", &full)
                    .append_pair("include", "metadata");
                if let Some(m) = &marker {
                    q.append_pair("marker", m);
                }
            }
            let (blobs, next) = self.page(url).await?;
            for mut b in blobs {
                if let Some(rel) = b.name.strip_prefix(&self.target.prefix) {
                    b.name = rel.to_string();
                    out.push(b);
                }
            }
            match next {
                Some(n) => marker = Some(n),
                None => return Ok(out),
            }
        }
    }

    async fn page(&self, url: Url) -> Result<(Vec<Listed>, Option<String>), ListError> {
        let credential = self.credentials.get_credential().await.map_err(|e| {
            ListError::Failed(format!("getting the storage credential failed: {e}"))
        })?;
        let mut request = http::Request::builder()
            .method(http::Method::GET)
            .uri(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(|e| ListError::Refused(format!("the listing request cannot be built: {e}")))?;
        AzureAuthorizer::new(&credential, &self.target.account)
            .try_authorize(&mut request)
            .map_err(|e| {
                ListError::Refused(format!("the listing request cannot be signed: {e}"))
            })?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| ListError::Failed(format!("listing with metadata failed: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| ListError::Failed(format!("reading the listing failed: {e}")))?;
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(ListError::Failed(format!(
                "listing with metadata: HTTP {status}"
            )));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(ListError::Refused(format!(
                "listing with metadata: HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        parse(&body).map_err(ListError::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_gives_names_etags_times_and_metadata_and_the_next_marker() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c">
  <Prefix>ns/hub/$default/ownership/</Prefix>
  <Blobs>
    <Blob><Name>ns/hub/$default/ownership/0</Name>
      <Properties><Last-Modified>Wed, 02 Dec 2026 19:00:01 GMT</Last-Modified><Etag>0x8DE1</Etag></Properties>
      <Metadata><ownerid>me &amp; you</ownerid></Metadata></Blob>
    <Blob><Name>ns/hub/$default/ownership/1</Name>
      <Properties><Last-Modified>Wed, 02 Dec 2026 19:00:02 GMT</Last-Modified><Etag>"0x8DE2"</Etag></Properties>
      <Metadata><ownerid/></Metadata></Blob>
  </Blobs>
  <NextMarker>page2</NextMarker>
</EnumerationResults>"#;
        let (blobs, next) = parse(xml).unwrap();
        assert_eq!(next.as_deref(), Some("page2"));
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[0].name, "ns/hub/$default/ownership/0");
        assert_eq!(blobs[0].etag, "0x8DE1");
        assert_eq!(blobs[0].last_modified_ms, 1_796_238_001_000);
        assert_eq!(
            blobs[0].metadata,
            [("ownerid".to_string(), "me & you".to_string())]
        );
        assert_eq!(blobs[1].metadata, [("ownerid".to_string(), String::new())]);
        let (_, last) =
            parse(b"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>").unwrap();
        assert_eq!(last, None);
        assert!(parse(b"<EnumerationResults><Blobs><Blob><Properties><Last-Modified>soon</Last-Modified></Properties></Blob></Blobs></EnumerationResults>").is_err());
    }
}
