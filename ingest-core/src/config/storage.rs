//! Storage settings: `INGEST_STORAGE_URL` (local disk, S3, Azure Blob), multipart uploads, and
//! the Azure connection string when the store is Azure.
//!
//! Pure. Invariant: a URL is shown only redacted (no credentials, no SAS query string).

use url::Url;

use super::cloud::{parse_azure_connection_string, AzureConnection, CloudEnv};
use super::defaults;
use super::layout::MAX_STORAGE_PREFIX_BYTES;
use super::parse::{positive, ConfigError};

/// Prefix (relative to the storage root) of everything the service keeps for itself:
/// claims, staging files and probes. Spark and Auto Loader skip `_`-prefixed paths. No topic
/// and no dead-letter prefix may take it.
pub const STATE_PREFIX: &str = "_ingest";

pub(super) fn parse_storage_url(value: Option<String>) -> Result<Url, ConfigError> {
    const EXPECTED: &str = "file:///absolute/path, s3://bucket/prefix or az://container/prefix";
    let v = value.ok_or_else(|| ConfigError::missing("STORAGE_URL", EXPECTED))?;
    let url = if v.starts_with('/') {
        Url::from_directory_path(&v)
            .map_err(|_| ConfigError::invalid("STORAGE_URL", &v, EXPECTED))?
    } else {
        Url::parse(&v).map_err(|_| ConfigError::invalid("STORAGE_URL", &v, EXPECTED))?
    };
    match url.scheme() {
        "file" if url.host_str().is_none_or(str::is_empty) => Ok(url),
        "s3" | "s3a" | "az" | "azure" | "abfs" | "abfss"
            if url.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            // Every key starts with the prefix: keys are bounded with room for this much.
            let prefix = url.path().trim_matches('/');
            if prefix.len() > MAX_STORAGE_PREFIX_BYTES {
                return Err(ConfigError::invalid(
                    "STORAGE_URL",
                    &redact_url(&url),
                    format!("a prefix of at most {MAX_STORAGE_PREFIX_BYTES} bytes after the bucket or container (object keys are at most 1,024 bytes in all, and the rest is the files')"),
                ));
            }
            Ok(url)
        }
        _ => Err(ConfigError::invalid(
            "STORAGE_URL",
            &redact_url(&url),
            EXPECTED,
        )),
    }
}

/// Whether the storage URL is an Azure Blob URL.
pub fn is_azure(url: &Url) -> bool {
    matches!(url.scheme(), "az" | "azure" | "abfs" | "abfss")
}

/// A URL without credentials or query string (SAS tokens live there).
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.set_query(None);
    shown.to_string()
}

/// `AZURE_STORAGE_CONNECTION_STRING`, parsed, when some store is Azure (`any_azure`).
pub(super) fn azure_connection(
    cloud: &CloudEnv,
    any_azure: bool,
) -> Result<Option<AzureConnection>, ConfigError> {
    let connection = match cloud.get("AZURE_STORAGE_CONNECTION_STRING") {
        Some(s) if any_azure => {
            Some(parse_azure_connection_string(s).map_err(|why| ConfigError {
                variable: "AZURE_STORAGE_CONNECTION_STRING".into(),
                shown: "=***".into(),
                problem: "is invalid",
                expected: format!("an Azure Storage connection string ({why}); copy it from the portal's Access keys page"),
            })?)
        }
        _ => None,
    };
    Ok(connection)
}

/// `INGEST_MULTIPART_PART_BYTES` and `INGEST_MULTIPART_THRESHOLD_BYTES`.
pub(super) fn multipart(
    part_bytes: Option<String>,
    threshold_bytes: Option<String>,
) -> Result<MultipartPolicy, ConfigError> {
    let multipart = MultipartPolicy {
        part_bytes: positive(
            "MULTIPART_PART_BYTES",
            part_bytes,
            defaults::MULTIPART_PART_BYTES,
        )?,
        threshold_bytes: positive(
            "MULTIPART_THRESHOLD_BYTES",
            threshold_bytes,
            defaults::MULTIPART_THRESHOLD_BYTES,
        )?,
    };
    if multipart.part_bytes < defaults::MIN_PART_BYTES {
        return Err(ConfigError::invalid(
            "MULTIPART_PART_BYTES",
            &multipart.part_bytes.to_string(),
            format!(
                "at least {} (5 MiB, S3's smallest part)",
                defaults::MIN_PART_BYTES
            ),
        ));
    }
    if multipart.threshold_bytes < multipart.part_bytes {
        return Err(ConfigError::invalid(
            "MULTIPART_THRESHOLD_BYTES",
            &multipart.threshold_bytes.to_string(),
            format!(
                "at least INGEST_MULTIPART_PART_BYTES ({})",
                multipart.part_bytes
            ),
        ));
    }
    Ok(multipart)
}

/// Files above `threshold_bytes` are uploaded in parts of `part_bytes` (S3 multipart, Azure
/// blocks) to a staging name, then published create-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartPolicy {
    pub threshold_bytes: usize,
    pub part_bytes: usize,
}

#[cfg(test)]
mod tests;
