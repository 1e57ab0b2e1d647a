//! Event Hubs source settings: the `INGEST_EVENTHUBS_*` variables, validated purely into an
//! [`EventHubsConfig`] (used when `INGEST_SOURCE=eventhubs`).
//!
//! Pure: parsing only, no clients, no I/O. Invariant: the connection string and its key never
//! appear in `Debug` output or an error message; every problem is one line naming the variable.

use std::fmt;
use std::time::Duration;

use url::Url;

use super::{is_azure, ConfigError};

/// Defaults, documented in docs/src/configuration.md next to each variable.
pub mod defaults {
    /// The consumer group every Event Hub has.
    pub const CONSUMER_GROUP: &str = "$Default";
    /// How long an ownership record stays valid without renewal (the Azure SDKs use 30 s to
    /// 2 min; a dead replica's partitions are taken over after this).
    pub const OWNERSHIP_EXPIRY_MS: u64 = 60_000;
    /// How often ownership is renewed and rebalanced (at most half the expiry).
    pub const LOAD_BALANCING_INTERVAL_MS: u64 = 10_000;
    /// The public cloud's namespace suffix, appended to a bare namespace name.
    pub const NAMESPACE_SUFFIX: &str = "servicebus.windows.net";
}

/// Settings after `INGEST_EVENTHUBS_`, as found (names upper case, without the prefix).
pub(super) const NAMES: &[&str] = &[
    "NAMESPACE",
    "EVENT_HUB",
    "CONSUMER_GROUP",
    "CONNECTION_STRING",
    "START_POSITION",
    "OWNERSHIP_EXPIRY_MS",
    "LOAD_BALANCING_INTERVAL_MS",
    "CHECKPOINT_URL",
    "OWNER_ID",
    "ENDPOINT",
];

/// `INGEST_EVENTHUBS_*` variables as strings (name without the prefix, value).
#[derive(Default, Clone)]
pub struct RawEventHubs {
    vars: Vec<(String, String)>,
}

impl RawEventHubs {
    /// Keeps `INGEST_EVENTHUBS_<name>` if `name` is a setting; returns `false` otherwise.
    pub(super) fn accept(&mut self, name: &str, value: String) -> bool {
        let known = NAMES.contains(&name);
        if known {
            self.vars.push((name.to_string(), value));
        }
        known
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Validates into an [`EventHubsConfig`]. Pure. `storage_url` is the default checkpoint URL.
    pub fn validate(&self, storage_url: &Url) -> Result<EventHubsConfig, ConfigError> {
        let connection = match self.get("CONNECTION_STRING") {
            None => None,
            Some(s) => Some(parse_connection_string(s).map_err(|why| ConfigError {
                variable: "INGEST_EVENTHUBS_CONNECTION_STRING".into(),
                shown: "=***".into(),
                problem: "is invalid",
                expected: format!(
                    "an Event Hubs connection string ({why}); copy it from the portal's Shared access policies page"
                ),
            })?),
        };
        let fully_qualified_namespace = match (self.get("NAMESPACE"), &connection) {
            (Some(ns), _) => fully_qualified(ns).ok_or_else(|| {
                ConfigError::invalid(
                    "EVENTHUBS_NAMESPACE",
                    ns,
                    "a namespace name (mynamespace) or host (mynamespace.servicebus.windows.net)",
                )
            })?,
            (None, Some(c)) => c.namespace.clone(),
            (None, None) => {
                return Err(ConfigError::missing(
                    "EVENTHUBS_NAMESPACE",
                    "the Event Hubs namespace (mynamespace or mynamespace.servicebus.windows.net), or INGEST_EVENTHUBS_CONNECTION_STRING",
                ))
            }
        };
        let event_hub = match (
            self.get("EVENT_HUB"),
            connection.as_ref().and_then(|c| c.entity_path.clone()),
        ) {
            (Some(h), Some(path)) if !h.eq_ignore_ascii_case(&path) => {
                return Err(ConfigError::invalid(
                    "EVENTHUBS_EVENT_HUB",
                    h,
                    format!("the event hub the connection string is scoped to ({path}), or unset"),
                ))
            }
            (Some(h), _) => h.to_string(),
            (None, Some(path)) => path,
            (None, None) => return Err(ConfigError::missing(
                "EVENTHUBS_EVENT_HUB",
                "the event hub to land, e.g. orders (or an EntityPath in the connection string)",
            )),
        };
        validate_entity(&event_hub)
            .map_err(|why| ConfigError::invalid("EVENTHUBS_EVENT_HUB", &event_hub, why))?;
        let consumer_group = self
            .get("CONSUMER_GROUP")
            .unwrap_or(defaults::CONSUMER_GROUP)
            .to_string();
        if consumer_group != defaults::CONSUMER_GROUP {
            validate_entity(&consumer_group).map_err(|why| {
                ConfigError::invalid("EVENTHUBS_CONSUMER_GROUP", &consumer_group, why)
            })?;
        }
        let start_position = match self.get("START_POSITION").map(str::trim) {
            None => StartAt::Earliest,
            Some(v) if v.eq_ignore_ascii_case("earliest") => StartAt::Earliest,
            Some(v) if v.eq_ignore_ascii_case("latest") => StartAt::Latest,
            Some(v) => {
                return Err(ConfigError::invalid(
                    "EVENTHUBS_START_POSITION",
                    v,
                    "one of earliest, latest (used only for partitions without a checkpoint)",
                ))
            }
        };
        let ownership_expiry = millis(
            "EVENTHUBS_OWNERSHIP_EXPIRY_MS",
            self.get("OWNERSHIP_EXPIRY_MS"),
            defaults::OWNERSHIP_EXPIRY_MS,
        )?;
        let load_balancing_interval = millis(
            "EVENTHUBS_LOAD_BALANCING_INTERVAL_MS",
            self.get("LOAD_BALANCING_INTERVAL_MS"),
            defaults::LOAD_BALANCING_INTERVAL_MS,
        )?;
        if load_balancing_interval * 2 > ownership_expiry {
            return Err(ConfigError::invalid(
                "EVENTHUBS_LOAD_BALANCING_INTERVAL_MS",
                &load_balancing_interval.as_millis().to_string(),
                format!(
                    "at most half of INGEST_EVENTHUBS_OWNERSHIP_EXPIRY_MS ({}), so ownership is renewed before it expires",
                    ownership_expiry.as_millis()
                ),
            ));
        }
        let checkpoint_url = match self.get("CHECKPOINT_URL") {
            None => storage_url.clone(),
            Some(v) => Url::parse(v).map_err(|_| {
                ConfigError::invalid("EVENTHUBS_CHECKPOINT_URL", v, CHECKPOINT_URL_EXPECTED)
            })?,
        };
        if !is_azure(&checkpoint_url) || checkpoint_url.host_str().is_none_or(str::is_empty) {
            let var = if self.get("CHECKPOINT_URL").is_some() {
                "EVENTHUBS_CHECKPOINT_URL"
            } else {
                "STORAGE_URL"
            };
            return Err(ConfigError::invalid(
                var,
                &super::redact_url(&checkpoint_url),
                format!("{CHECKPOINT_URL_EXPECTED}; set INGEST_EVENTHUBS_CHECKPOINT_URL when files land elsewhere"),
            ));
        }
        let owner_id = match self.get("OWNER_ID").map(str::trim) {
            Some("") => {
                return Err(ConfigError::invalid(
                    "EVENTHUBS_OWNER_ID",
                    "",
                    "a non-empty identifier, or unset (a unique id is made at start)",
                ))
            }
            other => other.map(str::to_string),
        };
        let endpoint = match self.get("ENDPOINT") {
            None => None,
            Some(v) => Some(Url::parse(v).ok().filter(|u| matches!(u.scheme(), "amqp" | "amqps")).ok_or_else(|| {
                ConfigError::invalid(
                    "EVENTHUBS_ENDPOINT",
                    v,
                    "an amqp:// or amqps:// URL (a custom endpoint such as a test server), or unset",
                )
            })?),
        };
        Ok(EventHubsConfig {
            fully_qualified_namespace,
            event_hub,
            consumer_group,
            credential: match connection {
                Some(c) => Credential::SharedAccessKey(c.key),
                None => Credential::Identity,
            },
            start_position,
            ownership_expiry,
            load_balancing_interval,
            checkpoint_url,
            owner_id,
            endpoint,
        })
    }
}

const CHECKPOINT_URL_EXPECTED: &str = "an Azure Blob URL (az://container[/prefix] or abfss://container@account.dfs.core.windows.net[/prefix]): checkpoints are blob metadata in the Azure SDKs' layout";

fn millis(var: &str, value: Option<&str>, default: u64) -> Result<Duration, ConfigError> {
    super::parse::positive(var, value.map(str::to_string), default).map(Duration::from_millis)
}

/// `mynamespace` → `mynamespace.servicebus.windows.net`; a host is kept (lowercased).
fn fully_qualified(ns: &str) -> Option<String> {
    let ns = ns.trim().trim_start_matches("sb://").trim_end_matches('/');
    let ok = !ns.is_empty()
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !ns.starts_with(['.', '-'])
        && !ns.ends_with(['.', '-']);
    ok.then(|| {
        let ns = ns.to_ascii_lowercase();
        if ns.contains('.') {
            ns
        } else {
            format!("{ns}.{}", defaults::NAMESPACE_SUFFIX)
        }
    })
}

/// Event hub and consumer group names: letters, digits, `.`, `_`, `-`, 1 to 256 characters.
fn validate_entity(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 256 {
        Err("a name of 1 to 256 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        Err("a name made of ASCII letters, digits, '.', '_' and '-'")
    } else {
        Ok(())
    }
}

/// Which partitions to read from where no checkpoint exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest event the hub still retains (nothing already in the hub is skipped).
    Earliest,
    /// Only events enqueued after the partition was first claimed.
    Latest,
}

/// How the service authenticates to Event Hubs.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `INGEST_EVENTHUBS_CONNECTION_STRING`: a shared access policy's name and key, or a
    /// ready-made shared access signature.
    SharedAccessKey(SharedAccessKey),
    /// No connection string: Microsoft Entra ID through the standard `AZURE_*` variables
    /// (workload identity, managed identity, service principal).
    Identity,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::SharedAccessKey(k) => write!(f, "SharedAccessKey({k:?})"),
            Credential::Identity => write!(f, "Identity"),
        }
    }
}

/// What a connection string carries for authentication. The key is never shown.
#[derive(Clone, PartialEq, Eq)]
pub enum SharedAccessKey {
    Key { name: String, key: String },
    Signature(String),
}

impl fmt::Debug for SharedAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedAccessKey::Key { name, .. } => write!(f, "{{ name: {name:?}, key: *** }}"),
            SharedAccessKey::Signature(_) => write!(f, "{{ signature: *** }}"),
        }
    }
}

/// The validated Event Hubs settings.
#[derive(Clone, Debug)]
pub struct EventHubsConfig {
    /// `INGEST_EVENTHUBS_NAMESPACE` (required unless the connection string names it): the
    /// namespace host, e.g. `mynamespace.servicebus.windows.net`, lowercased.
    pub fully_qualified_namespace: String,
    /// `INGEST_EVENTHUBS_EVENT_HUB` (required unless the connection string has `EntityPath`).
    pub event_hub: String,
    /// `INGEST_EVENTHUBS_CONSUMER_GROUP` (default `$Default`); replicas of one service share it.
    pub consumer_group: String,
    /// `INGEST_EVENTHUBS_CONNECTION_STRING` (secret), or Azure identity when unset.
    pub credential: Credential,
    /// `INGEST_EVENTHUBS_START_POSITION` (default `earliest`): where partitions without a
    /// checkpoint start.
    pub start_position: StartAt,
    /// `INGEST_EVENTHUBS_OWNERSHIP_EXPIRY_MS` (default 60000).
    pub ownership_expiry: Duration,
    /// `INGEST_EVENTHUBS_LOAD_BALANCING_INTERVAL_MS` (default 10000, at most half the expiry).
    pub load_balancing_interval: Duration,
    /// `INGEST_EVENTHUBS_CHECKPOINT_URL` (default `INGEST_STORAGE_URL`): the Azure Blob
    /// container (and prefix) holding checkpoint and ownership blobs. The Azure SDKs put them
    /// at the container root: point this at `az://<container>` to share them.
    pub checkpoint_url: Url,
    /// `INGEST_EVENTHUBS_OWNER_ID` (default: made unique at start): this replica's `ownerid`.
    pub owner_id: Option<String>,
    /// `INGEST_EVENTHUBS_ENDPOINT` (default unset): a custom AMQP endpoint, e.g. a test server.
    pub endpoint: Option<Url>,
}

/// What an Event Hubs connection string says.
#[derive(Clone, PartialEq, Eq)]
struct Connection {
    namespace: String,
    entity_path: Option<String>,
    key: SharedAccessKey,
}

/// Parses `Endpoint=sb://<ns>/;SharedAccessKeyName=..;SharedAccessKey=..[;EntityPath=..]` (or
/// `SharedAccessSignature=..`). The error names the problem but never echoes a value.
fn parse_connection_string(s: &str) -> Result<Connection, String> {
    let (mut endpoint, mut entity_path, mut name, mut key, mut sas) =
        (None, None, None, None, None);
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err("a part is not Key=Value".into());
        };
        let v = v.trim().to_string();
        match k.trim() {
            "Endpoint" => endpoint = Some(v),
            "EntityPath" => entity_path = Some(v).filter(|v| !v.is_empty()),
            "SharedAccessKeyName" => name = Some(v),
            "SharedAccessKey" => key = Some(v),
            "SharedAccessSignature" => sas = Some(v),
            "UseDevelopmentEmulator" => {}
            other => {
                return Err(super::cloud::unknown_key(
                    other,
                    &[
                        "Endpoint",
                        "EntityPath",
                        "SharedAccessKeyName",
                        "SharedAccessKey",
                        "SharedAccessSignature",
                        "UseDevelopmentEmulator",
                    ],
                ))
            }
        }
    }
    let endpoint = endpoint.ok_or("it has no Endpoint")?;
    let namespace = endpoint
        .strip_prefix("sb://")
        .and_then(|rest| fully_qualified(rest.split('/').next().unwrap_or_default()))
        .ok_or("its Endpoint is not sb://<namespace host>/")?;
    let key = match (name, key, sas) {
        (_, _, Some(sig)) => SharedAccessKey::Signature(sig),
        (Some(name), Some(key), None) => SharedAccessKey::Key { name, key },
        (None, Some(_), None) => return Err("SharedAccessKey needs SharedAccessKeyName".into()),
        _ => return Err("it has neither SharedAccessKey nor SharedAccessSignature".into()),
    };
    Ok(Connection {
        namespace,
        entity_path,
        key,
    })
}

#[cfg(test)]
mod tests;
