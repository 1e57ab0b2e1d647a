//! Claims and the recovery decision: what to do when a batch's claim already exists.
//!
//! Pure. A claim is a small create-only object written before a batch's data file, at a name
//! that depends only on topic, partition and first offset. It records where that file ends and
//! where it lives. Invariant: once a claim for offset F exists, offsets F..=claim.last_offset
//! belong to the file the claim names and to no other file, whoever wrote the claim and
//! whatever batch boundaries a later consumer would have chosen.

use serde::{Deserialize, Serialize};

pub use super::claimed::{ClaimedEncoding, ClaimedPlacement};
use crate::batch::StoredRecord;

/// Contents of `_ingest/claims/<topic>/<partition>/<first offset>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub version: u32,
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    /// The last offset the data file holds (inclusive). Never derived by counting.
    pub last_offset: i64,
    /// Data file path relative to the storage root.
    pub data: String,
    /// Dead-letter file path relative to the storage root (written only when needed).
    pub dead_letters: String,
    /// When the claim was made, ms since the epoch (for humans and lifecycle rules).
    pub claimed_at_ms: i64,
    /// [`record_digest`] of the batch's first record: tells these records from a recreated
    /// topic's, or another cluster's, at the same offset. Absent in claims of earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_record: Option<String>,
    /// The offset of that first record: `first_offset` is where the claim starts in the chain
    /// (the offset after the previous claim), and the first record may come later (offsets
    /// removed by compaction, transaction markers). Absent: `first_offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_record_offset: Option<i64>,
    /// [`record_digest`] of the record at `last_offset`: checked when a partition starts after
    /// the chain's end ([`super::start`]). Absent in claims of earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_record: Option<String>,
    /// The Kafka cluster id the records were read from, when the broker gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// How the data file is encoded, so completing the claim writes what its name says whatever
    /// the settings are now. Absent in claims of earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<ClaimedEncoding>,
    /// The batch's data files when it lands as several (by field time, one per directory), in
    /// order of their first offsets; `data` is the first. Empty: one file, `data`, holds every
    /// record of the claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ClaimedFile>,
    /// How records were placed in `files`, so completing the claim places them the same way
    /// whatever the settings are now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_by: Option<ClaimedPlacement>,
}

/// One data file of a claim that lands as several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedFile {
    /// Path relative to the storage root.
    pub data: String,
    /// Its first record's offset.
    pub first_offset: i64,
    /// How many of the claim's records it holds (dead letters and skips included).
    pub records: usize,
}

impl Claim {
    /// The newest claim format this service understands. Version 2 lists several files
    /// (`files`); a claim of one file is still written as version 1 ([`Claim::ONE_FILE`]), so
    /// earlier releases read those, and refuse (rather than complete wrongly) the others.
    pub const VERSION: u32 = 2;
    pub const ONE_FILE: u32 = 1;

    /// Every data file the claim names.
    pub fn data_files(&self) -> Vec<&str> {
        if self.files.is_empty() {
            vec![self.data.as_str()]
        } else {
            self.files.iter().map(|f| f.data.as_str()).collect()
        }
    }
}

/// Checks that the records buffered now, placed as the claim says, make the files it lists
/// (`planned`: each file's first offset, in order). Record counts are not compared: compaction
/// may have removed records since, which changes no file's name.
pub fn same_files(claim: &Claim, planned: &[i64]) -> Result<(), ClaimMismatch> {
    let claimed: Vec<i64> = claim.files.iter().map(|f| f.first_offset).collect();
    if claimed != planned {
        return Err(ClaimMismatch::OtherFiles {
            claimed: claimed.len(),
            planned: planned.len(),
        });
    }
    Ok(())
}

/// A digest of a record's timestamp, key and value (64-bit FNV-1a, as 16 hex digits): stable
/// across releases and machines, so a claim's first record can be checked against the record
/// at its offset now.
pub fn record_digest(record: &StoredRecord<'_>) -> String {
    digest_of(record.timestamp_ms(), record.key(), record.value())
}

/// [`record_digest`] of a record given by its parts, as a source delivers it.
pub fn digest_of(timestamp_ms: Option<i64>, key: Option<&[u8]>, value: Option<&[u8]>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(&timestamp_ms.unwrap_or(i64::MIN).to_le_bytes());
    for part in [key, value] {
        match part {
            Some(b) => {
                feed(&(b.len() as u64).to_le_bytes());
                feed(b);
            }
            None => feed(&u64::MAX.to_le_bytes()),
        }
    }
    format!("{hash:016x}")
}

/// Checks that `claim` covers the records buffered now, whose first record is at offset
/// `first` with digest `first_record`: at the claim's first record's offset, the digests must
/// match; a first record after it means the claimed one is gone (compaction, retention), and
/// nothing is left to compare; one before it was not among the claimed records at all.
pub fn same_records(claim: &Claim, first: i64, first_record: &str) -> Result<(), ClaimMismatch> {
    let claimed_at = claim.first_record_offset.unwrap_or(claim.first_offset);
    match &claim.first_record {
        Some(claimed) if first == claimed_at && claimed != first_record => {
            Err(ClaimMismatch::OtherRecords {
                claimed: claimed.clone(),
                found: first_record.into(),
            })
        }
        Some(claimed) if first < claimed_at => Err(ClaimMismatch::OtherRecords {
            claimed: format!("{claimed} at offset {claimed_at}"),
            found: format!("a record at offset {first} before it"),
        }),
        _ => Ok(()),
    }
}

/// What to do with a batch starting at a claimed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The claimed file is in storage: its records are landed. Drop buffered records up to and
    /// including `through`, commit `through + 1`.
    AlreadyLanded { through: i64 },
    /// The claim exists but its file does not (the claimant died, or is still uploading): write
    /// the buffered records up to `through` at the claimed names, create-only, then commit.
    Complete { through: i64 },
    /// As `Complete`, but the buffer does not reach `through` yet: keep consuming until it does.
    NeedMore { through: i64 },
    /// The claim's file is not in storage and the log holds none of its records any more
    /// (retention): they cannot land. Drop buffered records up to `through`, counted as gone.
    Gone { through: i64 },
}

/// The batch a flush holds when it meets an existing claim at its chain position.
#[derive(Debug, Clone, Copy)]
pub struct Meeting<'a> {
    /// Its first and last record's offsets.
    pub first: i64,
    pub last: i64,
    /// [`record_digest`] of its first record.
    pub first_record: &'a str,
    /// The log holds nothing more up to the claim's end than what the batch has (the consumer
    /// reached the partition's end, or read a record past the claim's end): a claim is
    /// completed with what is left.
    pub range_closed: bool,
}

/// Why an existing claim cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimMismatch {
    #[error("claim is for {found_topic}/{found_partition}@{found_first}, expected {topic}/{partition}@{first}")]
    WrongBatch {
        topic: String,
        partition: i32,
        first: i64,
        found_topic: String,
        found_partition: i32,
        found_first: i64,
    },
    #[error("claim ends at {last} before it starts at {first}")]
    Inverted { first: i64, last: i64 },
    #[error("claim version {0} is newer than this service understands (version {v})", v = Claim::VERSION)]
    Version(u32),
    /// The claim was written for other records at the same offset: a recreated topic, or
    /// another cluster landing into the same root.
    #[error("its first record has digest {claimed}, the record at that offset now {found}")]
    OtherRecords { claimed: String, found: String },
    /// A claim of several files whose records, placed as it says, make other files.
    #[error("it lists {claimed} files, but its records placed as it says make {planned} others; the records at its offsets changed, or the claim was edited")]
    OtherFiles { claimed: usize, planned: usize },
}

/// What every use of an existing claim requires: a version this service understands, this
/// topic and partition, a first offset `starts` accepts (`expected` names it in the error), and
/// an end not before its start.
pub fn check_claim(
    claim: &Claim,
    topic: &str,
    partition: i32,
    expected: i64,
    starts: impl Fn(i64) -> bool,
) -> Result<(), ClaimMismatch> {
    if claim.version > Claim::VERSION {
        return Err(ClaimMismatch::Version(claim.version));
    }
    if claim.topic != topic || claim.partition != partition || !starts(claim.first_offset) {
        return Err(ClaimMismatch::WrongBatch {
            topic: topic.into(),
            partition,
            first: expected,
            found_topic: claim.topic.clone(),
            found_partition: claim.partition,
            found_first: claim.first_offset,
        });
    }
    if claim.last_offset < claim.first_offset {
        return Err(ClaimMismatch::Inverted {
            first: claim.first_offset,
            last: claim.last_offset,
        });
    }
    Ok(())
}

/// Decides how to continue with `batch` of `topic`/`partition` whose claim, at chain position
/// `at`, already exists. `data_exists` tells whether the claimed data files are in storage.
pub fn decide(
    topic: &str,
    partition: i32,
    at: i64,
    batch: Meeting<'_>,
    claim: &Claim,
    data_exists: bool,
) -> Result<Recovery, ClaimMismatch> {
    check_claim(claim, topic, partition, at, |found| found == at)?;
    let through = claim.last_offset;
    if batch.first <= through {
        same_records(claim, batch.first, batch.first_record)?;
    }
    if data_exists {
        return Ok(Recovery::AlreadyLanded { through });
    }
    if batch.first > through {
        return Ok(Recovery::Gone { through });
    }
    Ok(if batch.last >= through || batch.range_closed {
        Recovery::Complete { through }
    } else {
        Recovery::NeedMore { through }
    })
}

#[cfg(test)]
pub(crate) mod tests;
