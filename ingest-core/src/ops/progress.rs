//! What a running pipeline has landed so far, observable while it runs (tests, the demo, and
//! the summary logged at exit). Counts only files this process wrote.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Data files written.
    pub files: u64,
    /// Records (lines) in those files.
    pub records: u64,
    /// Bytes of those files as stored (compressed when gzip is on).
    pub bytes: u64,
    /// NDJSON bytes before compression.
    pub uncompressed_bytes: u64,
    /// Records written to the dead-letter path.
    pub dead_letters: u64,
    /// Records dropped under `INGEST_INVALID_RECORD_POLICY=skip`.
    pub skipped: u64,
    /// Files whose name the store refused, kept at their refuge ([`crate::land::refuge`]).
    pub refused_names: u64,
    /// Flush attempts that failed on storage and will be retried (an outage in progress shows
    /// as this growing while nothing lands).
    pub storage_errors: u64,
    /// Commits that failed after their file landed (the file stays claimed, so a re-read skips
    /// it): a rebalance or a broker problem at that moment.
    pub commit_failures: u64,
    /// Claim listings made to find where partitions start (none when the group's committed
    /// offset names the chain's last claim: a normal restart).
    pub chain_listings: u64,
    /// Claim reads and existence checks made to find where partitions start.
    pub chain_reads: u64,
    /// `INGEST_FORMAT=delta`: rounds of the table's commits done (whether or not they added
    /// anything), and files added.
    pub table_rounds: u64,
    pub table_files: u64,
    /// Offsets that left the log before they landed (retention), counted when a partition
    /// starts ([`crate::land::start`]).
    pub offsets_gone: u64,
    /// Where `/healthz`, `/readyz` and `/metrics` listen (the bound port when 0 was asked).
    pub http_addr: Option<std::net::SocketAddr>,
    /// Last committed next-offset per partition.
    pub committed: BTreeMap<i32, i64>,
}
