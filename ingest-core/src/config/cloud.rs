//! Cloud credentials and endpoints: the standard `AWS_*` / `AZURE_*` variables (object_store's
//! own names) and Azure's `AZURE_STORAGE_CONNECTION_STRING`, collected in one place.
//!
//! Pure: parsing only, no clients. Invariant: no value read here ever appears in `Debug` output
//! or an error message (keys and connection strings carry secrets).

use std::fmt;

/// Variables handed to the storage client, in the order found.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CloudEnv {
    vars: Vec<(String, String)>,
}

impl CloudEnv {
    /// Whether a variable belongs to the cloud credential chain.
    pub fn wants(name: &str) -> bool {
        name.starts_with("AWS_") || name.starts_with("AZURE_") || name == "IDENTITY_ENDPOINT"
    }

    pub fn push(&mut self, name: String, value: String) {
        self.vars.push((name, value));
    }

    /// Variables whose name starts with `prefix`, e.g. `AWS_`.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.vars
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for CloudEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.vars.iter().map(|(k, _)| format!("{k}=***")).collect();
        f.debug_list().entries(names).finish()
    }
}

/// What an Azure Storage connection string says, as object_store settings.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AzureConnection {
    /// `UseDevelopmentStorage=true`: Azurite on its default address.
    pub use_emulator: bool,
    pub account: Option<String>,
    pub access_key: Option<String>,
    pub sas_token: Option<String>,
    /// The blob service URL: `BlobEndpoint`, or built from protocol, account and suffix.
    pub blob_endpoint: Option<String>,
}

impl fmt::Debug for AzureConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConnection")
            .field("use_emulator", &self.use_emulator)
            .field("account", &self.account)
            .field("access_key", &self.access_key.as_ref().map(|_| "***"))
            .field("sas_token", &self.sas_token.as_ref().map(|_| "***"))
            .field("blob_endpoint", &self.blob_endpoint)
            .finish()
    }
}

/// The keys of an Azure Storage connection string.
const AZURE_KEYS: [&str; 11] = [
    "AccountName",
    "AccountKey",
    "SharedAccessSignature",
    "BlobEndpoint",
    "DefaultEndpointsProtocol",
    "EndpointSuffix",
    "UseDevelopmentStorage",
    "QueueEndpoint",
    "TableEndpoint",
    "FileEndpoint",
    "DevelopmentStorageProxyUri",
];

/// What is wrong with a connection string's key that is none of `known`, without printing it
/// unless it is one of them spelled in another case: text before an `=` may be a pasted
/// secret (a bare account key or SAS token ends in `=`).
pub(crate) fn unknown_key(key: &str, known: &[&str]) -> String {
    match known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        Some(k) => format!("unknown key {key:?} (keys are case-sensitive: {k})"),
        None => format!(
            "an unknown key (not printed: it may be part of a secret); the keys are {}",
            known.join(", ")
        ),
    }
}

/// Parses `AZURE_STORAGE_CONNECTION_STRING` (`Key=Value;Key=Value`). The error names the
/// problem but never echoes a value.
pub fn parse_azure_connection_string(s: &str) -> Result<AzureConnection, String> {
    let mut conn = AzureConnection::default();
    let (mut protocol, mut suffix) = ("https".to_string(), "core.windows.net".to_string());
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err("a part is not Key=Value".into());
        };
        let value = value.trim().to_string();
        match key.trim() {
            "UseDevelopmentStorage" => conn.use_emulator = value.eq_ignore_ascii_case("true"),
            "AccountName" => conn.account = Some(value),
            "AccountKey" => conn.access_key = Some(value),
            "SharedAccessSignature" => conn.sas_token = Some(value),
            "BlobEndpoint" => conn.blob_endpoint = Some(value.trim_end_matches('/').to_string()),
            "DefaultEndpointsProtocol" => protocol = value,
            "EndpointSuffix" => suffix = value,
            // Other services' endpoints and the emulator proxy do not concern blob writes.
            "QueueEndpoint" | "TableEndpoint" | "FileEndpoint" | "DevelopmentStorageProxyUri" => {}
            other => return Err(unknown_key(other, &AZURE_KEYS)),
        }
    }
    if conn.use_emulator {
        return Ok(conn);
    }
    if conn.access_key.is_none() && conn.sas_token.is_none() {
        return Err("it has neither AccountKey nor SharedAccessSignature".into());
    }
    if conn.access_key.is_some() && conn.account.is_none() {
        return Err("AccountKey needs AccountName".into());
    }
    if conn.blob_endpoint.is_none() {
        let Some(account) = &conn.account else {
            return Err("it has neither AccountName nor BlobEndpoint".into());
        };
        conn.blob_endpoint = Some(format!("{protocol}://{account}.blob.{suffix}"));
    }
    if conn.account.is_none() {
        // SAS-only strings name the account in the endpoint host.
        conn.account = conn
            .blob_endpoint
            .as_deref()
            .and_then(|e| e.split("://").nth(1))
            .and_then(|host| host.split('.').next())
            .map(str::to_string);
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn account_key_string_builds_the_public_endpoint() {
        let c = parse_azure_connection_string(&format!(
            "DefaultEndpointsProtocol=https;AccountName=lake;AccountKey={KEY};EndpointSuffix=core.windows.net"
        ))
        .unwrap();
        assert_eq!(c.account.as_deref(), Some("lake"));
        assert_eq!(c.access_key.as_deref(), Some(KEY));
        assert_eq!(
            c.blob_endpoint.as_deref(),
            Some("https://lake.blob.core.windows.net")
        );
        assert!(!c.use_emulator);
    }

    #[test]
    fn azurite_string_keeps_its_path_style_endpoint() {
        let c = parse_azure_connection_string(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;"
        ))
        .unwrap();
        assert_eq!(
            c.blob_endpoint.as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
    }

    #[test]
    fn sas_string_takes_the_account_from_the_endpoint() {
        let c = parse_azure_connection_string(
            "BlobEndpoint=https://lake.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=abc",
        )
        .unwrap();
        assert_eq!(c.account.as_deref(), Some("lake"));
        assert_eq!(c.sas_token.as_deref(), Some("sv=2022&sig=abc"));
        assert!(c.access_key.is_none());
    }

    #[test]
    fn development_storage_means_the_emulator() {
        let c = parse_azure_connection_string("UseDevelopmentStorage=true").unwrap();
        assert!(c.use_emulator);
    }

    #[test]
    fn bad_strings_are_named_without_their_values() {
        for (s, why) in [
            (
                "AccountName=lake",
                "neither AccountKey nor SharedAccessSignature",
            ),
            ("AccountKey=c2VjcmV0", "AccountKey needs AccountName"),
            (
                "AccountName=lake;Accountkey=c2VjcmV0",
                "case-sensitive: AccountKey",
            ),
            ("c2VjcmV0c2VjcmV0=", "an unknown key (not printed"),
            (
                "AccountName=lake;sv=2024&sig=c2VjcmV0=",
                "an unknown key (not printed",
            ),
            ("garbage", "not Key=Value"),
        ] {
            let e = parse_azure_connection_string(s).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
            assert!(!e.contains("c2VjcmV0"), "{e} leaks the key");
        }
    }

    #[test]
    fn debug_output_hides_values() {
        let mut env = CloudEnv::default();
        env.push("AWS_SECRET_ACCESS_KEY".into(), "hunter2".into());
        let c = parse_azure_connection_string(&format!("AccountName=a;AccountKey={KEY}")).unwrap();
        let shown = format!("{env:?} {c:?}");
        assert!(shown.contains("AWS_SECRET_ACCESS_KEY"));
        assert!(
            !shown.contains("hunter2") && !shown.contains(KEY),
            "{shown}"
        );
    }
}
