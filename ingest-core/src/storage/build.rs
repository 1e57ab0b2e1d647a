//! Builds the object_store client for a storage URL from the configuration's cloud variables.
//!
//! Invariant: every cloud store is built with create-only support switched on (S3 conditional
//! put and copy-if-not-exists) and one retry policy (object_store's own, with backoff and
//! jitter); nothing else in `ingest` retries individual requests.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use url::Url;

use crate::config::{cloud::CloudEnv, is_azure, Config};

/// Which kind of store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local,
    S3,
    Azure,
}

/// Per-request retries: transient errors (5xx, throttling, connection resets) are retried with
/// exponential backoff and jitter for up to 30 s. A longer outage surfaces to the flush, which
/// waits with the partition paused and tries the whole flush again (claims make that safe).
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 6,
        retry_timeout: Duration::from_secs(30),
    }
}

/// What a store holds, which bounds its requests differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// Data files (`INGEST_STORAGE_URL`): on Azure one Put Blob each, so a request may be a
    /// whole file's upload.
    Data,
    /// Event Hubs checkpoints and ownership (`INGEST_EVENTHUBS_CHECKPOINT_URL`, which is the
    /// storage URL unless set): tiny blobs, whose hung request must be noticed well within an
    /// ownership expiry.
    Checkpoints,
}

pub fn store(config: &Config) -> Result<(Arc<dyn ObjectStore>, Kind), String> {
    store_at(config, &config.storage_url, Holds::Data)
}

/// The store for `url` (the storage URL, or the Event Hubs checkpoint URL), holding `holds`,
/// with the configuration's credentials.
pub fn store_at(
    config: &Config,
    url: &Url,
    holds: Holds,
) -> Result<(Arc<dyn ObjectStore>, Kind), String> {
    let label = crate::config::redact_url(url);
    let var = if *url == config.storage_url {
        "INGEST_STORAGE_URL"
    } else {
        "INGEST_EVENTHUBS_CHECKPOINT_URL"
    };
    if url.scheme() == "file" {
        let dir = url
            .to_file_path()
            .map_err(|_| format!("{var}={label} is not a local path"))?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "cannot create {}: {e}; check {var} and permissions",
                dir.display()
            )
        })?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| format!("cannot open {}: {e}", dir.display()))?
            .with_fsync(true);
        return Ok((Arc::new(fs), Kind::Local));
    }
    if is_azure(url) {
        let az = azure(config, holds)
            .with_url(url.as_str())
            .build()
            .map_err(|e| format!("{var}={label}: {}", one_line(&e)))?;
        return Ok((with_prefix(az, url), Kind::Azure));
    }
    let s3 = s3(&config.cloud_env)
        .with_url(url.as_str())
        .build()
        .map_err(|e| format!("{var}={label}: {}", one_line(&e)))?;
    Ok((with_prefix(s3, url), Kind::S3))
}

fn s3(env: &CloudEnv) -> AmazonS3Builder {
    // Create-only on S3: `If-None-Match: *` on puts, and copy-if-not-exists by a one-part
    // multipart copy completed with `If-None-Match: *` (how large files are published).
    let mut b = AmazonS3Builder::new()
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
        .with_retry(retry());
    for (key, value) in env.with_prefix("AWS_") {
        if let Ok(k) = key.to_ascii_lowercase().parse() {
            b = b.with_config(k, value);
        }
    }
    b
}

/// How long one Azure request may take. Every file is one Put Blob (see `Storage::probe`), so
/// this bounds a whole upload: 64 MiB (the default batch, uncompressed) needs 0.6 MB/s.
const AZURE_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

fn azure(config: &Config, holds: Holds) -> MicrosoftAzureBuilder {
    let mut b = MicrosoftAzureBuilder::new().with_retry(retry());
    if holds == Holds::Data {
        // A config key, not with_client_options: that would replace the client options the
        // AZURE_* variables set (allow_http for Azurite, say). Checkpoints keep the default.
        b = b.with_config(
            AzureConfigKey::Client(object_store::ClientConfigKey::Timeout),
            format!("{}s", AZURE_REQUEST_TIMEOUT.as_secs()),
        );
    }
    for (key, value) in config.cloud_env.with_prefix("AZURE_") {
        if let Ok(k) = key.to_ascii_lowercase().parse() {
            b = b.with_config(k, value);
        }
    }
    if let Some(endpoint) = config.cloud_env.get("IDENTITY_ENDPOINT") {
        b = b.with_msi_endpoint(endpoint);
    }
    if let Some(c) = &config.azure_connection {
        if c.use_emulator {
            b = b.with_use_emulator(true);
        }
        if let Some(account) = &c.account {
            b = b.with_account(account);
        }
        if let Some(key) = &c.access_key {
            b = b.with_access_key(key);
        }
        if let Some(sas) = &c.sas_token {
            b = b.with_config(AzureConfigKey::SasKey, sas);
        }
        if let Some(endpoint) = &c.blob_endpoint {
            b = b
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"));
        }
    }
    b
}

/// The Azure store for `url` itself (not behind a prefix), with the checkpoint store's
/// settings: what signs the requests object_store does not make (a listing with metadata).
pub fn azure_store(
    config: &Config,
    url: &Url,
) -> Result<object_store::azure::MicrosoftAzure, String> {
    azure(config, Holds::Checkpoints)
        .with_url(url.as_str())
        .build()
        .map_err(|e| one_line(&e))
}

fn with_prefix(store: impl ObjectStore, url: &Url) -> Arc<dyn ObjectStore> {
    // For az://container/prefix, abfss://container@account.dfs.../prefix and
    // s3://bucket/prefix, the URL path is the prefix inside the container or bucket.
    let prefix = url.path().trim_matches('/');
    if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

/// An error and its causes on one line (object_store messages can span several).
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let m = s.to_string();
        if !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        source = s.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_data_store_waits_long_for_an_azure_request() {
        // The checkpoint URL is the storage URL unless set: the purpose decides, not the URL.
        let config = Config::from_pairs([
            ("INGEST_SOURCE", "eventhubs"),
            ("INGEST_EVENTHUBS_NAMESPACE", "ns"),
            ("INGEST_EVENTHUBS_EVENT_HUB", "orders"),
            ("INGEST_STORAGE_URL", "az://lake"),
        ])
        .unwrap();
        assert_eq!(
            config.eventhubs.as_ref().unwrap().checkpoint_url,
            config.storage_url
        );
        let timeout = AzureConfigKey::Client(object_store::ClientConfigKey::Timeout);
        let data = azure(&config, Holds::Data).get_config_value(&timeout);
        assert_eq!(data.as_deref(), Some("120s"));
        let checkpoints = azure(&config, Holds::Checkpoints).get_config_value(&timeout);
        assert_eq!(checkpoints.as_deref(), Some("30s"), "the client's default");
    }
}
