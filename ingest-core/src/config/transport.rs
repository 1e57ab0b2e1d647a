//! Which connections would carry records and credentials unencrypted: a broker reached over
//! `PLAINTEXT` or `SASL_PLAINTEXT`, a storage endpoint over plain `http`, an Event Hubs endpoint
//! over plain `amqp`; and which settings turn certificate checks off. The service warns once at
//! start for each (plain connections only when they leave this machine: loopback is left alone,
//! local brokers, Azurite).
//!
//! Pure: reads the validated configuration only.

use url::Url;

use super::Config;

/// One line per connection that is not encrypted and not on loopback.
pub fn plaintext_warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.eventhubs.is_none() {
        let protocol = config
            .kafka
            .properties
            .iter()
            .rev()
            .find(|p| p.name == "security.protocol")
            .map_or("plaintext", |p| p.value.as_str());
        let servers = &config.kafka.bootstrap_servers;
        let remote = servers.split(',').any(|s| !is_loopback(host_of(s.trim())));
        if remote
            && matches!(
                protocol.to_ascii_lowercase().as_str(),
                "plaintext" | "sasl_plaintext"
            )
        {
            warnings.push(format!(
                "Kafka traffic to {servers} is not encrypted (security.protocol={protocol}); set INGEST_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"
            ));
        }
    }
    // Every cloud variable holding a URL (endpoints, metadata and identity hosts, authority
    // hosts): whatever reaches a service over plain http.
    let mut endpoints: Vec<&str> = ["AWS_", "AZURE_", "IDENTITY_ENDPOINT"]
        .iter()
        .flat_map(|prefix| config.cloud_env.with_prefix(prefix))
        .map(|(_, v)| v.trim())
        .filter(|v| v.to_ascii_lowercase().starts_with("http://"))
        .collect();
    endpoints.dedup();
    if let Some(endpoint) = config
        .azure_connection
        .as_ref()
        .and_then(|c| c.blob_endpoint.as_deref())
    {
        endpoints.push(endpoint);
    }
    for endpoint in endpoints {
        let Ok(url) = Url::parse(endpoint) else {
            continue;
        };
        if url.scheme() == "http" && !is_loopback(url.host_str().unwrap_or_default()) {
            warnings.push(format!(
                "endpoint {} is plain http: files and credentials cross the network unencrypted; use https",
                super::redact_url(&url)
            ));
        }
    }
    if let Some(url) = config.eventhubs.as_ref().and_then(|e| e.endpoint.as_ref()) {
        if url.scheme() == "amqp" && !is_loopback(url.host_str().unwrap_or_default()) {
            warnings.push(format!(
                "Event Hubs endpoint {} is plain amqp: events and credentials cross the network unencrypted; use amqps",
                super::redact_url(url)
            ));
        }
    }
    warnings.extend(unchecked_certificates(config));
    warnings
}

/// One line per setting that turns a certificate check off: the connection is encrypted, but
/// to whoever answers.
fn unchecked_certificates(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    for var in [
        "AWS_ALLOW_INVALID_CERTIFICATES",
        "AZURE_ALLOW_INVALID_CERTIFICATES",
    ] {
        let on = config.cloud_env.get(var).is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on"
            )
        });
        if on {
            warnings.push(format!(
                "{var} turns the storage endpoint's certificate check off: anyone on the path can read and write what lands; unset it in production"
            ));
        }
    }
    let property = |name: &str| {
        config
            .kafka
            .properties
            .iter()
            .rev()
            .find(|p| p.name == name)
            .map(|p| p.value.trim().to_ascii_lowercase())
    };
    if config.eventhubs.is_none() {
        if property("enable.ssl.certificate.verification").is_some_and(|v| v == "false") {
            warnings.push("INGEST_KAFKA_ENABLE_SSL_CERTIFICATE_VERIFICATION=false turns the brokers' certificate check off: anyone on the path can read the records; unset it in production".into());
        }
        if property("ssl.endpoint.identification.algorithm").is_some_and(|v| v == "none") {
            warnings.push("INGEST_KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM=none accepts a broker certificate for any host name; use https (the default) in production".into());
        }
    }
    warnings
}

/// The host of `host:port`, `[v6]:port` or a bare host.
fn host_of(server: &str) -> &str {
    if let Some(rest) = server.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => server,
    }
}

/// This machine, or its link-local metadata and identity services (169.254.169.254 answers
/// plain http by design).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
            std::net::IpAddr::V6(v6) => v6.is_loopback(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::with;

    #[test]
    fn remote_plaintext_brokers_and_http_storage_are_warned_about_loopback_is_not() {
        assert!(
            plaintext_warnings(&with(&[]).unwrap()).is_empty(),
            "localhost"
        );
        let remote = with(&[(
            "INGEST_KAFKA_BOOTSTRAP_SERVERS",
            "127.0.0.1:9092,kafka-1.prod:9092",
        )])
        .unwrap();
        let w = plaintext_warnings(&remote);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("security.protocol=plaintext") && w[0].contains("SASL_SSL"),
            "{w:?}"
        );
        let sasl = with(&[
            ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "kafka-1.prod:9092"),
            ("INGEST_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ])
        .unwrap();
        assert_eq!(plaintext_warnings(&sasl).len(), 1);
        let tls = with(&[
            ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "kafka-1.prod:9093"),
            ("INGEST_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ])
        .unwrap();
        assert!(plaintext_warnings(&tls).is_empty());

        let s3 = with(&[
            ("INGEST_STORAGE_URL", "s3://lake/raw"),
            ("AWS_ENDPOINT", "http://minio.internal:9000"),
        ])
        .unwrap();
        let w = plaintext_warnings(&s3);
        assert!(
            w.len() == 1 && w[0].contains("minio.internal") && w[0].contains("https"),
            "{w:?}"
        );
        let local = with(&[
            ("INGEST_STORAGE_URL", "s3://lake/raw"),
            ("AWS_ENDPOINT", "http://127.0.0.1:9000"),
        ])
        .unwrap();
        assert!(plaintext_warnings(&local).is_empty());
        let metadata = with(&[
            ("INGEST_STORAGE_URL", "s3://lake/raw"),
            ("AWS_METADATA_ENDPOINT", "http://metadata.internal"),
            ("AZURE_AUTHORITY_HOST", "http://login.internal"),
        ])
        .unwrap();
        let imds = with(&[
            ("INGEST_STORAGE_URL", "s3://lake/raw"),
            ("AWS_METADATA_ENDPOINT", "http://169.254.169.254"),
        ])
        .unwrap();
        assert!(
            plaintext_warnings(&imds).is_empty(),
            "link-local metadata is this machine's"
        );
        let w = plaintext_warnings(&metadata);
        assert!(
            w.len() == 2 && w[0].contains("metadata.internal") && w[1].contains("login.internal"),
            "every http URL among the cloud settings: {w:?}"
        );
        let azure = with(&[
            ("INGEST_STORAGE_URL", "az://raw/events"),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=c2VjcmV0;BlobEndpoint=http://blobs.example:10000/acct;",
            ),
        ])
        .unwrap();
        let w = plaintext_warnings(&azure);
        assert!(
            w.len() == 1 && w[0].contains("blobs.example") && !w[0].contains("c2VjcmV0"),
            "{w:?}"
        );
        assert_eq!(host_of("[::1]:9092"), "::1");
        assert!(is_loopback(host_of("[::1]:9092")));
    }

    #[test]
    fn settings_that_turn_certificate_checks_off_are_warned_about_even_on_loopback() {
        let off = with(&[
            ("INGEST_STORAGE_URL", "s3://lake/raw"),
            ("AWS_ALLOW_INVALID_CERTIFICATES", "true"),
            ("INGEST_KAFKA_ENABLE_SSL_CERTIFICATE_VERIFICATION", "false"),
            ("INGEST_KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "none"),
        ])
        .unwrap();
        let w = plaintext_warnings(&off);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("AWS_ALLOW_INVALID_CERTIFICATES"), "{w:?}");
        assert!(w[1].contains("CERTIFICATE_VERIFICATION=false"), "{w:?}");
        assert!(w[2].contains("IDENTIFICATION_ALGORITHM=none"), "{w:?}");
        let checked = with(&[
            ("INGEST_STORAGE_URL", "s3://lake/raw"),
            ("AWS_ALLOW_INVALID_CERTIFICATES", "false"),
            (
                "INGEST_KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM",
                "https",
            ),
        ])
        .unwrap();
        assert!(plaintext_warnings(&checked).is_empty());
    }
}
