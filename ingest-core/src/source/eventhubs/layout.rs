//! Where checkpoint and ownership blobs live and what their metadata says, in the Azure SDKs'
//! blob checkpoint store layout. Pure: names and strings only, no I/O.
//!
//! Invariant: names are `{namespace}/{event hub}/{consumer group}/{checkpoint|ownership}/{id}`,
//! lowercased (the layout of the other Azure SDKs' checkpoint stores), with metadata
//! `sequencenumber` and `offset` (checkpoints) and `ownerid` (ownership). The Rust SDK's store
//! (azure_messaging_eventhubs_checkpointstore_blob 0.9) does not lowercase; its names (with the
//! namespace host as configured, lowercase) are a fallback for reading
//! ([`Address::as_given_checkpoint_blob`]).

use crate::config::eventhubs::StartAt;

/// Metadata key for the sequence number of the last event processed.
pub const SEQUENCE_NUMBER: &str = "sequencenumber";
/// Metadata key for the offset of the last event processed.
pub const OFFSET: &str = "offset";
/// This service's own key: the claim a checkpoint's event landed under (SDKs ignore it).
pub const CLAIM: &str = "ingestclaim";
/// Metadata key for the replica owning a partition (empty: released).
pub const OWNER_ID: &str = "ownerid";

/// One event hub read by one consumer group: the scope of checkpoints and ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub fully_qualified_namespace: String,
    pub event_hub: String,
    pub consumer_group: String,
}

impl Address {
    fn prefix(&self, kind: &str) -> String {
        format!(
            "{}/{}/{}/{kind}/",
            self.fully_qualified_namespace, self.event_hub, self.consumer_group
        )
        .to_lowercase()
    }

    /// `{ns}/{hub}/{group}/checkpoint/` (lowercased).
    pub fn checkpoint_prefix(&self) -> String {
        self.prefix("checkpoint")
    }

    /// `{ns}/{hub}/{group}/ownership/` (lowercased).
    pub fn ownership_prefix(&self) -> String {
        self.prefix("ownership")
    }

    /// The checkpoint blob of `partition` (lowercased).
    pub fn checkpoint_blob(&self, partition: &str) -> String {
        format!("{}{}", self.checkpoint_prefix(), partition.to_lowercase())
    }

    /// The ownership blob of `partition` (lowercased).
    pub fn ownership_blob(&self, partition: &str) -> String {
        format!("{}{}", self.ownership_prefix(), partition.to_lowercase())
    }

    /// The checkpoint blob as the Rust SDK's store names it (case kept); `None` when that is
    /// the lowercased name anyway.
    pub fn as_given_checkpoint_blob(&self, partition: &str) -> Option<String> {
        let name = format!(
            "{}/{}/{}/checkpoint/{partition}",
            self.fully_qualified_namespace, self.event_hub, self.consumer_group
        );
        (name != self.checkpoint_blob(partition)).then_some(name)
    }
}

/// The partition id a checkpoint or ownership blob is for (its last path segment).
pub fn partition_of(blob: &str) -> Option<&str> {
    blob.rsplit('/').next().filter(|p| !p.is_empty())
}

/// A checkpoint: the last event processed (landed, for this service) in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub sequence_number: Option<i64>,
    /// Event Hubs offsets are opaque strings (numeric on most namespaces).
    pub offset: Option<String>,
    /// The first offset of the claim whose file holds the event (this service's checkpoints
    /// only): where a restart finds the end of the partition's claim chain without listing.
    pub claim: Option<i64>,
}

/// A metadata value that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata {key}={value:?} is invalid: expected {expected}")]
pub struct BadMetadata {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

fn lookup<'a>(metadata: &'a [(String, String)], key: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

impl Checkpoint {
    /// The metadata the SDKs write: `sequencenumber` and `offset` (decimal strings).
    pub fn to_metadata(&self) -> Vec<(&'static str, String)> {
        let mut m = Vec::new();
        if let Some(s) = self.sequence_number {
            m.push((SEQUENCE_NUMBER, s.to_string()));
        }
        if let Some(o) = &self.offset {
            m.push((OFFSET, o.clone()));
        }
        if let Some(c) = self.claim {
            m.push((CLAIM, c.to_string()));
        }
        m
    }

    /// Reads a checkpoint blob's metadata (keys case-insensitive). `Ok(None)` when it carries
    /// neither key (an empty or foreign blob): no position to resume from.
    pub fn from_metadata(metadata: &[(String, String)]) -> Result<Option<Checkpoint>, BadMetadata> {
        let sequence_number = match lookup(metadata, SEQUENCE_NUMBER) {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| BadMetadata {
                        key: SEQUENCE_NUMBER,
                        value: v.to_string(),
                        expected: "a non-negative whole number",
                    })?,
            ),
        };
        let offset = lookup(metadata, OFFSET)
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_string);
        Ok(
            (sequence_number.is_some() || offset.is_some()).then_some(Checkpoint {
                sequence_number,
                offset,
                // Not ours, or unreadable: no hint, the chain's end is found by listing.
                claim: lookup(metadata, CLAIM).and_then(|c| c.trim().parse().ok()),
            }),
        )
    }
}

/// The `ownerid` of an ownership blob; `None` when absent or empty (released).
pub fn owner_from_metadata(metadata: &[(String, String)]) -> Option<String> {
    lookup(metadata, OWNER_ID)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
}

/// Where a receiver starts reading a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    /// After this sequence number (exclusive), the usual case after a checkpoint.
    AfterSequenceNumber(i64),
    /// After this offset (exclusive): a checkpoint that only carries an offset.
    AfterOffset(String),
    /// At this sequence number (inclusive): where the claim chain in storage says.
    AtSequenceNumber(i64),
}

/// The start position: just after the checkpoint when there is one (the sequence number
/// preferred: it is what files are named by), else the configured earliest/latest.
pub fn start_position(checkpoint: Option<&Checkpoint>, default: StartAt) -> Start {
    match checkpoint {
        Some(Checkpoint {
            sequence_number: Some(s),
            ..
        }) => Start::AfterSequenceNumber(*s),
        Some(Checkpoint {
            offset: Some(o), ..
        }) => Start::AfterOffset(o.clone()),
        _ => match default {
            StartAt::Earliest => Start::Earliest,
            StartAt::Latest => Start::Latest,
        },
    }
}

/// Events enqueued in a partition and not yet landed: `ingest_consumer_lag`, as for Kafka.
/// `landed` is the checkpoint's sequence number (`None`: nothing landed yet, so everything
/// from the partition's beginning is behind).
pub fn lag(is_empty: bool, beginning: i64, last_enqueued: i64, landed: Option<i64>) -> i64 {
    if is_empty {
        return 0;
    }
    let landed = landed.unwrap_or(beginning - 1).max(beginning - 1);
    (last_enqueued - landed).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> Address {
        Address {
            fully_qualified_namespace: "MyNS.servicebus.windows.net".into(),
            event_hub: "Orders".into(),
            consumer_group: "$Default".into(),
        }
    }

    fn meta(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_follow_the_sdk_layout_lowercased() {
        let a = address();
        assert_eq!(
            a.checkpoint_blob("3"),
            "myns.servicebus.windows.net/orders/$default/checkpoint/3"
        );
        assert_eq!(
            a.ownership_blob("3"),
            "myns.servicebus.windows.net/orders/$default/ownership/3"
        );
        assert_eq!(
            a.ownership_prefix(),
            "myns.servicebus.windows.net/orders/$default/ownership/"
        );
        assert_eq!(partition_of(&a.ownership_blob("12")), Some("12"));
        assert_eq!(partition_of("x/"), None);
    }

    #[test]
    fn the_rust_sdks_case_kept_name_is_a_fallback_only_when_different() {
        let a = address();
        assert_eq!(
            a.as_given_checkpoint_blob("0").as_deref(),
            Some("MyNS.servicebus.windows.net/Orders/$Default/checkpoint/0")
        );
        let lower = Address {
            fully_qualified_namespace: "ns.servicebus.windows.net".into(),
            event_hub: "orders".into(),
            consumer_group: "group".into(),
        };
        assert_eq!(lower.as_given_checkpoint_blob("0"), None);
    }

    #[test]
    fn checkpoint_metadata_round_trips_with_sdk_keys() {
        let c = Checkpoint {
            sequence_number: Some(41),
            offset: Some("8589934592".into()),
            claim: None,
        };
        let m = c.to_metadata();
        assert_eq!(
            m,
            vec![
                ("sequencenumber", "41".to_string()),
                ("offset", "8589934592".to_string())
            ]
        );
        let back: Vec<(String, String)> = m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(Checkpoint::from_metadata(&back), Ok(Some(c)));
    }

    #[test]
    fn checkpoint_metadata_is_read_leniently_but_never_guessed() {
        // Keys as an older SDK may have cased them; an offset-only checkpoint.
        assert_eq!(
            Checkpoint::from_metadata(&meta(&[("SequenceNumber", "7"), ("Offset", "100")])),
            Ok(Some(Checkpoint {
                sequence_number: Some(7),
                offset: Some("100".into()),
                claim: None,
            }))
        );
        assert_eq!(
            Checkpoint::from_metadata(&meta(&[("offset", "100")])),
            Ok(Some(Checkpoint {
                sequence_number: None,
                offset: Some("100".into()),
                claim: None,
            }))
        );
        assert_eq!(
            Checkpoint::from_metadata(&meta(&[("other", "x")])),
            Ok(None)
        );
        for bad in ["-1", "seven", ""] {
            let e = Checkpoint::from_metadata(&meta(&[("sequencenumber", bad)])).unwrap_err();
            assert_eq!(e.key, "sequencenumber");
        }
    }

    #[test]
    fn an_empty_owner_means_released() {
        assert_eq!(
            owner_from_metadata(&meta(&[("ownerid", "pod-a")])).as_deref(),
            Some("pod-a")
        );
        assert_eq!(owner_from_metadata(&meta(&[("ownerid", "")])), None);
        assert_eq!(owner_from_metadata(&meta(&[])), None);
    }

    #[test]
    fn lag_counts_what_is_enqueued_after_the_last_landed_event() {
        assert_eq!(lag(false, 0, 99, Some(89)), 10);
        assert_eq!(lag(false, 0, 99, Some(99)), 0, "caught up");
        assert_eq!(lag(false, 0, 99, None), 100, "nothing landed yet");
        // Retention removed events 0..50 past a checkpoint at 9: only what still exists counts.
        assert_eq!(lag(false, 50, 99, Some(9)), 50);
        assert_eq!(lag(true, 100, 99, Some(99)), 0, "empty");
        assert_eq!(lag(false, 0, 5, Some(9)), 0, "never negative");
    }

    #[test]
    fn start_is_after_the_checkpoint_or_the_configured_default() {
        let both = Checkpoint {
            sequence_number: Some(9),
            offset: Some("900".into()),
            claim: None,
        };
        assert_eq!(
            start_position(Some(&both), StartAt::Latest),
            Start::AfterSequenceNumber(9)
        );
        let offset_only = Checkpoint {
            sequence_number: None,
            offset: Some("900".into()),
            claim: None,
        };
        assert_eq!(
            start_position(Some(&offset_only), StartAt::Earliest),
            Start::AfterOffset("900".into())
        );
        assert_eq!(start_position(None, StartAt::Earliest), Start::Earliest);
        assert_eq!(start_position(None, StartAt::Latest), Start::Latest);
    }
}
