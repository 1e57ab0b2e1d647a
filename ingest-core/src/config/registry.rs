//! What a record's value (and key) is: plain JSON (a key: bytes as they came), or a schema
//! registry's wire format (Confluent's: a zero byte, a 4-byte schema id, then the payload), with
//! the registry to read schemas from.
//!
//! Pure. Invariant: a registry format without a registry URL, a URL without a registry format,
//! or half a pair of credentials is refused at start; credentials never print.

use std::fmt;

use url::Url;

use super::parse::ConfigError;

/// `INGEST_VALUE_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// The value is one JSON document (the default).
    Json,
    /// Avro written by Confluent's serializer (or any writer of its wire format).
    Avro,
    /// JSON written by Confluent's JSON Schema serializer: the wire format's header, then JSON.
    JsonSchema,
    /// Protobuf written by Confluent's serializer: the header, message indexes, the message.
    Protobuf,
}

/// How the service authenticates to the registry.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::None => write!(f, "None"),
            RegistryAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            RegistryAuth::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

/// The registry values (and keys) are decoded through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `INGEST_VALUE_FORMAT` (`Json`: values are not decoded).
    pub format: ValueFormat,
    /// `INGEST_KEY_FORMAT`: `None` (`bytes`, the default) lands keys as they came.
    pub key_format: Option<ValueFormat>,
    /// `INGEST_SCHEMA_REGISTRY_URL`, e.g. `https://psrc-123.westeurope.azure.confluent.cloud`.
    pub url: Url,
    pub auth: RegistryAuth,
}

/// The settings read here, as strings.
pub(super) struct RawRegistry {
    pub format: Option<String>,
    pub key_format: Option<String>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub bearer_token: Option<String>,
}

const FORMATS: &str = "one of json, avro, protobuf, json-schema";
const KEY_FORMATS: &str = "one of bytes, avro, protobuf, json-schema";

/// `None` for plain JSON values and keys as they came.
pub(super) fn registry(raw: RawRegistry) -> Result<Option<RegistryConfig>, ConfigError> {
    let format = match raw.format.as_deref().unwrap_or("json") {
        "json" => ValueFormat::Json,
        "avro" => ValueFormat::Avro,
        "json-schema" => ValueFormat::JsonSchema,
        "protobuf" => ValueFormat::Protobuf,
        other => return Err(ConfigError::invalid("VALUE_FORMAT", other, FORMATS)),
    };
    let key_format = match raw.key_format.as_deref().unwrap_or("bytes") {
        "bytes" => None,
        "avro" => Some(ValueFormat::Avro),
        "json-schema" => Some(ValueFormat::JsonSchema),
        "protobuf" => Some(ValueFormat::Protobuf),
        other => return Err(ConfigError::invalid("KEY_FORMAT", other, KEY_FORMATS)),
    };
    let decodes = format != ValueFormat::Json || key_format.is_some();
    let Some(url) = raw.url else {
        if !decodes {
            return Ok(None);
        }
        return Err(ConfigError::missing(
            "SCHEMA_REGISTRY_URL",
            "the schema registry's URL (INGEST_VALUE_FORMAT or INGEST_KEY_FORMAT names a registry format), e.g. https://registry.example.com:8081",
        ));
    };
    if !decodes {
        return Err(ConfigError::invalid(
            "SCHEMA_REGISTRY_URL",
            &url,
            "unset while INGEST_VALUE_FORMAT is json and INGEST_KEY_FORMAT is bytes (set INGEST_VALUE_FORMAT or INGEST_KEY_FORMAT to avro, protobuf or json-schema to decode through it)",
        ));
    }
    let parsed = Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            ConfigError::invalid("SCHEMA_REGISTRY_URL", &url, "an http:// or https:// URL")
        })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::invalid(
            "SCHEMA_REGISTRY_URL",
            parsed.host_str().unwrap_or(""),
            "a URL without credentials (set INGEST_SCHEMA_REGISTRY_USERNAME and INGEST_SCHEMA_REGISTRY_PASSWORD)",
        ));
    }
    let auth = match (raw.username, raw.password, raw.bearer_token) {
        (None, None, None) => RegistryAuth::None,
        (Some(username), Some(password), None) => RegistryAuth::Basic { username, password },
        (None, None, Some(token)) => RegistryAuth::Bearer(token),
        (Some(_), None, None) => {
            return Err(ConfigError::missing(
                "SCHEMA_REGISTRY_PASSWORD",
                "the password (or API secret) for INGEST_SCHEMA_REGISTRY_USERNAME",
            ))
        }
        (None, Some(_), None) => {
            return Err(ConfigError::missing(
                "SCHEMA_REGISTRY_USERNAME",
                "the user name (or API key) for INGEST_SCHEMA_REGISTRY_PASSWORD",
            ))
        }
        (_, _, Some(_)) => {
            return Err(ConfigError::invalid(
                "SCHEMA_REGISTRY_BEARER_TOKEN",
                "",
                "either a bearer token or a user name and password, not both",
            ))
        }
    };
    Ok(Some(RegistryConfig {
        format,
        key_format,
        url: parsed,
        auth,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(format: Option<&str>, url: Option<&str>) -> RawRegistry {
        RawRegistry {
            format: format.map(Into::into),
            key_format: None,
            url: url.map(Into::into),
            username: None,
            password: None,
            bearer_token: None,
        }
    }

    #[test]
    fn formats_and_urls_go_together() {
        assert_eq!(registry(raw(None, None)), Ok(None));
        let e = registry(raw(Some("avro"), None)).unwrap_err().to_string();
        assert!(
            e.starts_with("INGEST_SCHEMA_REGISTRY_URL is not set"),
            "{e}"
        );
        let e = registry(raw(None, Some("http://r:8081")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("INGEST_VALUE_FORMAT is json"), "{e}");
        let e = registry(raw(Some("thrift"), Some("http://r")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("one of json, avro, protobuf, json-schema"),
            "{e}"
        );
        let e = registry(raw(Some("avro"), Some("ftp://r")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http:// or https://"), "{e}");
        let ok = registry(raw(Some("json-schema"), Some("https://r:8081/")))
            .unwrap()
            .unwrap();
        assert_eq!(
            (ok.format, ok.key_format, ok.auth),
            (ValueFormat::JsonSchema, None, RegistryAuth::None)
        );
    }

    #[test]
    fn keys_decode_through_the_registry_on_their_own_or_with_values() {
        let mut r = raw(None, Some("http://r:8081"));
        r.key_format = Some("avro".into());
        let ok = registry(r).unwrap().unwrap();
        assert_eq!(
            (ok.format, ok.key_format),
            (ValueFormat::Json, Some(ValueFormat::Avro))
        );
        let mut r = raw(Some("protobuf"), Some("http://r:8081"));
        r.key_format = Some("bytes".into());
        assert_eq!(registry(r).unwrap().unwrap().key_format, None);
        let mut r = raw(None, None);
        r.key_format = Some("avro".into());
        let e = registry(r).unwrap_err().to_string();
        assert!(
            e.contains("INGEST_KEY_FORMAT names a registry format"),
            "{e}"
        );
        let mut r = raw(None, Some("http://r"));
        r.key_format = Some("string".into());
        let e = registry(r).unwrap_err().to_string();
        assert!(
            e.contains("one of bytes, avro, protobuf, json-schema"),
            "{e}"
        );
    }

    #[test]
    fn credentials_come_whole_and_never_print() {
        let mut r = raw(Some("avro"), Some("https://r"));
        r.username = Some("key".into());
        let e = registry(r).unwrap_err().to_string();
        assert!(
            e.starts_with("INGEST_SCHEMA_REGISTRY_PASSWORD is not set"),
            "{e}"
        );
        let mut r = raw(Some("avro"), Some("https://r"));
        (r.username, r.password) = (Some("key".into()), Some("s3cret".into()));
        let c = registry(r).unwrap().unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = registry(raw(Some("avro"), Some("https://u:s3cret@r")))
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("s3cret") && e.contains("without credentials"),
            "{e}"
        );
    }
}
