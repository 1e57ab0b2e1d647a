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
    /// reached the partition's end): a claim is completed with what is left.
    pub end_of_log: bool,
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
    Ok(if batch.last >= through || batch.end_of_log {
        Recovery::Complete { through }
    } else {
        Recovery::NeedMore { through }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A claim of partition 2 of topic `t` over `first..=last`, as the land tests use.
    pub(crate) fn claim(first: i64, last: i64) -> Claim {
        Claim {
            version: 1,
            topic: "t".into(),
            partition: 2,
            first_offset: first,
            last_offset: last,
            data: "t/dt=1970-01-01/hour=00/t+2+00000000000000000010.ndjson.gz".into(),
            dead_letters: "_dead_letters/t/x".into(),
            claimed_at_ms: 0,
            first_record: None,
            first_record_offset: None,
            last_record: None,
            cluster: None,
            encoding: None,
            files: Vec::new(),
            placed_by: None,
        }
    }

    fn meet(first: i64, last: i64) -> Meeting<'static> {
        Meeting {
            first,
            last,
            first_record: "",
            end_of_log: false,
        }
    }

    #[test]
    fn a_claim_whose_records_the_log_lost_is_gone_or_completed_with_what_is_left() {
        // Chain position 10, claim 10..=20; retention left our batch starting at 25.
        assert_eq!(
            decide("t", 2, 10, meet(25, 40), &claim(10, 20), false),
            Ok(Recovery::Gone { through: 20 })
        );
        // Its last records were compacted away and the consumer reached the log's end.
        let at_end = Meeting {
            end_of_log: true,
            ..meet(12, 15)
        };
        assert_eq!(
            decide("t", 2, 10, at_end, &claim(10, 20), false),
            Ok(Recovery::Complete { through: 20 })
        );
    }

    #[test]
    fn the_first_record_is_compared_only_at_its_claimed_offset() {
        let mut c = claim(10, 20);
        c.first_record = Some("00000000000000aa".into());
        c.first_record_offset = Some(12);
        let with = |first, digest| Meeting {
            first_record: digest,
            ..meet(first, 30)
        };
        let d = |m| decide("t", 2, 10, m, &c, false);
        assert_eq!(
            d(with(12, "00000000000000aa")),
            Ok(Recovery::Complete { through: 20 })
        );
        assert!(matches!(
            d(with(12, "00000000000000bb")),
            Err(ClaimMismatch::OtherRecords { .. })
        ));
        assert_eq!(
            d(with(14, "00000000000000bb")),
            Ok(Recovery::Complete { through: 20 }),
            "the claimed record was compacted away"
        );
        assert!(
            matches!(
                d(with(11, "00000000000000bb")),
                Err(ClaimMismatch::OtherRecords { .. })
            ),
            "a record the claimant never saw"
        );
    }

    #[test]
    fn an_existing_file_means_skip_past_its_last_offset_whatever_our_batch_covers() {
        // Our batch may be shorter, equal or longer than the landed file; only the claim counts.
        for our_last in [12, 20, 35] {
            assert_eq!(
                decide("t", 2, 10, meet(10, our_last), &claim(10, 20), true),
                Ok(Recovery::AlreadyLanded { through: 20 })
            );
        }
    }

    #[test]
    fn a_claim_without_its_file_is_completed_at_the_claimed_end() {
        assert_eq!(
            decide("t", 2, 10, meet(10, 20), &claim(10, 20), false),
            Ok(Recovery::Complete { through: 20 })
        );
        assert_eq!(
            decide("t", 2, 10, meet(10, 99), &claim(10, 20), false),
            Ok(Recovery::Complete { through: 20 })
        );
        assert_eq!(
            decide("t", 2, 10, meet(10, 15), &claim(10, 20), false),
            Ok(Recovery::NeedMore { through: 20 })
        );
    }

    #[test]
    fn gaps_in_offsets_do_not_matter_because_nothing_is_counted() {
        // A claim over 10..=1000 may hold three records (compaction); the decision is the same.
        assert_eq!(
            decide("t", 2, 10, meet(10, 10), &claim(10, 1000), true),
            Ok(Recovery::AlreadyLanded { through: 1000 })
        );
    }

    #[test]
    fn claims_for_another_batch_or_from_the_future_are_refused() {
        assert!(matches!(
            decide("t", 3, 10, meet(10, 20), &claim(10, 20), true),
            Err(ClaimMismatch::WrongBatch { .. })
        ));
        assert!(matches!(
            decide("t", 2, 10, meet(10, 20), &claim(10, 5), true),
            Err(ClaimMismatch::Inverted { .. })
        ));
        let mut newer = claim(10, 20);
        newer.version = 3;
        assert_eq!(
            decide("t", 2, 10, meet(10, 20), &newer, true),
            Err(ClaimMismatch::Version(3))
        );
    }

    #[test]
    fn claims_round_trip_through_json() {
        let c = claim(10, 20);
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(serde_json::from_slice::<Claim>(&json).unwrap(), c);
        let full = Claim {
            first_record: Some("00112233445566ff".into()),
            encoding: Some(ClaimedEncoding::new(&super::super::claimed::Encoding {
                envelope: crate::config::Envelope::Metadata,
                compression: crate::config::Compression::Gzip { level: 3 },
                format: crate::config::Format::Ndjson,
            })),
            ..claim(10, 20)
        };
        let json = serde_json::to_vec(&full).unwrap();
        assert_eq!(serde_json::from_slice::<Claim>(&json).unwrap(), full);
    }

    fn record(key: &[u8], value: &[u8], ts: i64) -> crate::batch::Batch {
        let mut b = crate::batch::Batch::new(std::time::Instant::now(), 0);
        b.push(&crate::batch::RecordRef {
            offset: 10,
            timestamp_ms: Some(ts),
            key: Some(key),
            value: Some(value),
            headers: &[],
            flaw: None,
            cursor: None,
        });
        b
    }

    #[test]
    fn a_claim_for_other_records_at_the_same_offset_is_told_apart() {
        let digest = |b: &crate::batch::Batch| record_digest(&b.records().next().unwrap());
        let ours = digest(&record(b"k", b"{\"a\":1}", 1_000));
        assert_eq!(ours, digest(&record(b"k", b"{\"a\":1}", 1_000)), "stable");
        assert_eq!(ours.len(), 16);
        for other in [
            record(b"k", b"{\"a\":2}", 1_000),
            record(b"j", b"{\"a\":1}", 1_000),
            record(b"k", b"{\"a\":1}", 1_001),
            record(b"", b"k{\"a\":1}", 1_000),
        ] {
            assert_ne!(digest(&other), ours);
        }
        let mut c = claim(10, 20);
        assert_eq!(
            same_records(&c, 10, &ours),
            Ok(()),
            "an earlier release's claim has no digest"
        );
        c.first_record = Some(ours.clone());
        assert_eq!(same_records(&c, 10, &ours), Ok(()));
        assert!(matches!(
            same_records(&c, 10, "0000000000000000"),
            Err(ClaimMismatch::OtherRecords { .. })
        ));
    }
}
