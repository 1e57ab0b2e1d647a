//! Where a partition starts: after the end of its claim chain in storage, verified against the
//! partition, whatever the consumer group's offset or checkpoint says.
//!
//! Pure: the decision over what [`super::chain`] read from the store and the source. A
//! partition's claims form a chain: each new claim starts at the offset after the previous one's
//! last (`chain_next`), so the chain has one end and a batch never starts inside a landed range.
//! The group's committed offset is a hint for finding the end cheaply (its metadata names the
//! chain's last claim) and what lag tools read; it never decides where consumption starts.
//!
//! Invariants: consumption starts after the chain's end, or at the start of the chain's last
//! claim when its file is missing (it is completed first); a chain that ends at or past the
//! partition's high watermark, or was written on another cluster, is refused (a recreated topic
//! or another cluster would otherwise have its records skipped); offsets between the chain's end
//! and the partition's first offset are counted as gone, never waited for.

use super::recovery::{check_claim, Claim};
pub use crate::source::{Hint, PartitionFacts as Partition};

/// The chain's last claim as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Last {
    pub path: String,
    pub claim: Claim,
    /// Every data file it names is in storage.
    pub files_present: bool,
}

/// What [`super::chain`] found in the store for a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The chain's last claim (`None`: the partition has no claim in this store).
    pub last: Option<Last>,
    /// The greatest claim named at or past the partition's high watermark, if the search met
    /// one, and its last offset.
    pub beyond_high: Option<(String, i64)>,
}

/// Where a partition starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// No claim in storage: start where the consumer group would (its committed offset, or
    /// `auto.offset.reset`); the first batch begins the chain at its first record.
    New,
    /// Consume from `seek`; offsets before `chain_next` are landed, and the next claim starts
    /// at `chain_next`.
    After {
        seek: i64,
        chain_next: i64,
        /// Offsets from `chain_next` to `seek` that the log no longer holds (never landed).
        gone: i64,
        /// A record to check before trusting the chain: at `offset`, with this digest.
        verify: Option<Verify>,
        /// What to commit once the start is trusted, when the group's offset is not already
        /// there (a new group, a reset, a crash before the last commit): the chain's last
        /// claim (its first offset) and its last offset, so lag tools read the truth and the
        /// next restart needs no listing.
        commit: Option<(i64, i64)>,
    },
    /// The chain's last claim has no file: consume from `seek` and complete it first.
    Complete {
        seek: i64,
        path: String,
        claim: Box<Claim>,
        /// Offsets of the claim before `seek` that the log no longer holds.
        gone: i64,
    },
}

impl Start {
    /// The position the next claim of the partition starts at, when the chain has one.
    pub fn chain_next(&self) -> Option<i64> {
        match self {
            Start::New => None,
            Start::After { chain_next, .. } => Some(*chain_next),
            Start::Complete { claim, .. } => Some(claim.first_offset),
        }
    }
}

/// A record the chain's last claim names, to compare with the record at that offset now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    pub offset: i64,
    pub digest: String,
    /// The claim that names it.
    pub path: String,
}

/// Why a partition cannot start on the chain found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the claim chain in storage ends at offset {last} (claim {path}), but the partition's next offset is {high}")]
    BeyondHigh { path: String, last: i64, high: i64 },
    #[error(
        "claim {path} was written on Kafka cluster {claimed}, and this broker is cluster {found}"
    )]
    OtherCluster {
        path: String,
        claimed: String,
        found: String,
    },
    #[error("the group's committed offset {next} says claim {path} landed, but this store has no claim of the partition")]
    NoChain { next: i64, path: String },
    #[error("claim {path} is not this partition's ({reason})")]
    Unusable { path: String, reason: String },
}

/// Decides where `partition` of `topic` starts from what the source says and what the store
/// holds. `claim_path` names a claim by its first offset (for errors).
pub fn decide_start(
    topic: &str,
    partition: i32,
    source: &Partition,
    found: &Found,
    claim_path: impl Fn(i64) -> String,
) -> Result<Start, Refused> {
    if let Some((path, last)) = &found.beyond_high {
        return Err(Refused::BeyondHigh {
            path: path.clone(),
            last: *last,
            high: source.high,
        });
    }
    let Some(last) = &found.last else {
        return match source.hint.and_then(|h| h.claim.map(|c| (h.next, c))) {
            Some((next, claim)) => Err(Refused::NoChain {
                next,
                path: claim_path(claim),
            }),
            None => Ok(Start::New),
        };
    };
    let claim = &last.claim;
    check_claim(claim, topic, partition, claim.first_offset, |_| true).map_err(|e| {
        Refused::Unusable {
            path: last.path.clone(),
            reason: e.to_string(),
        }
    })?;
    if claim.last_offset >= source.high {
        return Err(Refused::BeyondHigh {
            path: last.path.clone(),
            last: claim.last_offset,
            high: source.high,
        });
    }
    if let (Some(claimed), Some(found)) = (&claim.cluster, &source.cluster) {
        if claimed != found {
            return Err(Refused::OtherCluster {
                path: last.path.clone(),
                claimed: claimed.clone(),
                found: found.clone(),
            });
        }
    }
    let committed_past = source.hint.is_some_and(|h| h.next > claim.last_offset);
    let chain_next = claim.last_offset + 1;
    // A claim whose file is gone but whose end was committed landed once (a lifecycle rule
    // deleted it): history, never written again. One whose records are all gone cannot be.
    if last.files_present || committed_past || source.low > claim.last_offset {
        let seek = chain_next.max(source.low);
        // The chain's last record, while the log still has it, tells a recreated topic (or a
        // reset cluster) from ours: read from it, compare, and drop it.
        let verify = claim
            .last_record
            .clone()
            .filter(|_| claim.last_offset >= source.low)
            .map(|digest| Verify {
                offset: claim.last_offset,
                digest,
                path: last.path.clone(),
            });
        let hinted = source.hint
            == Some(Hint {
                next: chain_next,
                claim: Some(claim.first_offset),
            });
        return Ok(Start::After {
            seek: if verify.is_some() {
                claim.last_offset
            } else {
                seek
            },
            chain_next,
            gone: seek - chain_next,
            verify,
            commit: (!hinted).then_some((claim.first_offset, claim.last_offset)),
        });
    }
    let seek = claim.first_offset.max(source.low);
    Ok(Start::Complete {
        seek,
        path: last.path.clone(),
        claim: Box::new(claim.clone()),
        gone: seek - claim.first_offset,
    })
}

#[cfg(test)]
#[path = "start/tests.rs"]
mod tests;
