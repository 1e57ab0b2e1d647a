//! Names derived from a topic: the service directory, the Rust crate and the Helm release.
//!
//! Pure. Invariant: every derived name is valid where it is used (a Cargo package name that
//! is not a keyword or reserved name; a release that is a DNS-1035 label of at most 53
//! characters, as Helm and Kubernetes Services require) and different topics that would fold
//! to the same truncated release name get different hash suffixes.

use anyhow::{bail, Result};

/// Helm's limit on release names (Kubernetes labels allow 63; Helm keeps 10 for suffixes).
pub const RELEASE_MAX: usize = 53;

/// The names of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The Kafka topic, verbatim. Also the directory under `services/`.
    pub topic: String,
    /// Cargo package (and binary) name.
    pub crate_name: String,
    /// Helm release, consumer group and Kubernetes object name.
    pub release: String,
}

impl Names {
    /// Validates `topic` with Kafka's rules and derives the other names.
    pub fn for_topic(topic: &str) -> Result<Names> {
        if let Err(why) = ingest::config::validate_topic(topic) {
            bail!("topic {topic:?} is invalid: expected {why}");
        }
        Ok(Names {
            topic: topic.to_string(),
            crate_name: crate_name(topic),
            release: release_name(topic),
        })
    }
}

/// Names Cargo refuses for packages or binaries, plus the workspace's own crates.
const RESERVED: &[&str] = &[
    "alloc",
    "build",
    "core",
    "deps",
    "examples",
    "incremental",
    "proc-macro",
    "proc_macro",
    "std",
    "test",
    "ingest",
    "ingest-core",
    "ingest-cli",
    "ingest-sink",
];
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Lowercase, `.` becomes `-`; prefixed with `ingest-` when it would start with something other
/// than a letter or clash with a keyword or reserved name.
pub fn crate_name(topic: &str) -> String {
    let name: String = topic
        .chars()
        .map(|c| match c {
            '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let clash = RESERVED.contains(&name.as_str()) || KEYWORDS.contains(&name.as_str());
    if clash || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        format!("ingest-{name}")
    } else {
        name
    }
}

/// A DNS-1035 label (lowercase letters, digits, `-`; starts with a letter, ends with a letter
/// or digit) of at most [`RELEASE_MAX`] characters. Long names are cut and get a hash suffix of
/// the full topic so they stay distinct.
pub fn release_name(topic: &str) -> String {
    let mut name = String::with_capacity(topic.len());
    for c in topic.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    let mut name = name.trim_end_matches('-').to_string();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("ingest-{name}").trim_end_matches('-').to_string();
    }
    if name.len() > RELEASE_MAX {
        let suffix = format!("-{:08x}", fnv1a(topic.as_bytes()) as u32);
        name.truncate(RELEASE_MAX - suffix.len());
        name = format!("{}{suffix}", name.trim_end_matches('-'));
    }
    name
}

/// FNV-1a: a stable hash (unlike `DefaultHasher`, which may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_1035(s: &str) -> bool {
        s.len() <= RELEASE_MAX
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.contains("--")
    }

    #[test]
    fn simple_topics_keep_their_name() {
        let n = Names::for_topic("orders").unwrap();
        assert_eq!(
            (n.crate_name.as_str(), n.release.as_str()),
            ("orders", "orders")
        );
    }

    #[test]
    fn dots_underscores_and_case_are_folded() {
        let n = Names::for_topic("Payments.EU_v2").unwrap();
        assert_eq!(n.crate_name, "payments-eu_v2");
        assert_eq!(n.release, "payments-eu-v2");
        assert_eq!(release_name("a..b__c"), "a-b-c");
    }

    #[test]
    fn leading_digits_keywords_and_reserved_names_get_a_prefix() {
        assert_eq!(crate_name("2024-events"), "ingest-2024-events");
        assert_eq!(release_name("2024-events"), "ingest-2024-events");
        assert_eq!(crate_name("test"), "ingest-test");
        assert_eq!(crate_name("type"), "ingest-type");
        assert_eq!(crate_name("_private"), "ingest-_private");
        assert_eq!(release_name("_private"), "private");
        assert_eq!(release_name("___"), "ingest");
    }

    #[test]
    fn long_topics_are_cut_with_a_distinguishing_hash() {
        let a = format!("{}.a", "x".repeat(240));
        let b = format!("{}.b", "x".repeat(240));
        let (ra, rb) = (release_name(&a), release_name(&b));
        assert!(is_dns_1035(&ra) && is_dns_1035(&rb), "{ra} {rb}");
        assert_eq!(ra.len(), RELEASE_MAX);
        assert_ne!(ra, rb);
        assert_eq!(ra, release_name(&a), "stable");
    }

    #[test]
    fn every_valid_topic_gives_a_valid_release() {
        for topic in ["a", "A", "-", "9", "a-", "x.y_z", "...", "-_-_-", "Z9", "é"] {
            if ingest::config::validate_topic(topic).is_ok() {
                let r = release_name(topic);
                assert!(is_dns_1035(&r), "{topic:?} -> {r:?}");
            }
        }
    }

    #[test]
    fn kafka_rules_reject_bad_topics_in_one_line() {
        for bad in ["", ".", "..", "a b", "a/b", "tópico", &"x".repeat(250)] {
            let err = Names::for_topic(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("topic ") && err.contains("expected"),
                "{err}"
            );
            assert!(!err.contains('\n'));
        }
        assert!(Names::for_topic(&"x".repeat(213)).is_ok());
        assert!(Names::for_topic(&"x".repeat(214)).is_err());
    }
}
