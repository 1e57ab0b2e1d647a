//! Partition load balancing between replicas through ownership records, decided purely: given
//! the records, the clock and the expiry, which partitions to renew and which one to claim next.
//!
//! Invariants: a record counts only while it names an owner and was modified less than the
//! expiry ago (a dead replica's partitions become free after it), except that a partition this
//! replica still receives stays its own however old the record (the ETag, not the clock, decides:
//! after renewals failed for longer than the expiry it is renewed with the ETag last seen, as the
//! Azure SDKs' processors do, never claimed a second time); each replica aims for its
//! balanced share (`partitions / owners`, one more for `partitions % owners` of them), claims at
//! most one partition per round (free ones first, then from an owner above its share), and every
//! claim carries the ETag it saw, so two replicas racing for one partition cannot both win.

use std::collections::BTreeMap;

/// An ownership record as listed from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub partition: String,
    /// `ownerid`; `None` when empty (released).
    pub owner: Option<String>,
    /// When the record was last written (the store's clock), in Unix milliseconds.
    pub last_modified_ms: i64,
    pub etag: String,
}

/// A conditional write of this replica's ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub partition: String,
    /// The ETag the write must match; `None`: create-only (no record yet).
    pub etag: Option<String>,
}

/// What one load-balancing round does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Partitions this replica holds: rewrite each (same ETag) so it does not expire.
    pub renew: Vec<Claim>,
    /// One more partition to take, if below the balanced share.
    pub claim: Option<Claim>,
}

/// Decides one round for replica `me`, which receives the partitions `held`. `pick` chooses
/// among equally good candidates (pass a random number: replicas starting together then rarely
/// race for the same partition).
pub fn plan(
    partitions: &[String],
    records: &[Ownership],
    me: &str,
    held: &[String],
    now_ms: i64,
    expiry_ms: i64,
    pick: usize,
) -> Plan {
    let by_partition: BTreeMap<&str, &Ownership> = records
        .iter()
        .filter(|r| partitions.contains(&r.partition))
        .map(|r| (r.partition.as_str(), r))
        .collect();
    let active = |r: &Ownership| match r.owner.as_deref() {
        None => false,
        Some(owner) if owner == me && held.contains(&r.partition) => true,
        Some(_) => now_ms - r.last_modified_ms < expiry_ms,
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    counts.insert(me, 0);
    for r in by_partition.values().filter(|r| active(r)) {
        *counts
            .entry(r.owner.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    let renew: Vec<Claim> = by_partition
        .values()
        .filter(|r| active(r))
        .filter(|r| r.owner.as_deref() == Some(me))
        .map(|r| Claim {
            partition: r.partition.clone(),
            etag: Some(r.etag.clone()),
        })
        .collect();
    if partitions.is_empty() {
        return Plan::default();
    }
    let owners = counts.len();
    let (min, extra) = (partitions.len() / owners, partitions.len() % owners);
    let max = min + usize::from(extra > 0);
    let mine = counts[me];
    let at_max = counts.values().filter(|c| extra > 0 && **c >= max).count();
    let wants_more = mine < min || (mine == min && extra > 0 && at_max < extra);
    if !wants_more {
        return Plan { renew, claim: None };
    }
    let free: Vec<Claim> = partitions
        .iter()
        .filter(|p| by_partition.get(p.as_str()).is_none_or(|r| !active(r)))
        .map(|p| Claim {
            partition: p.clone(),
            etag: by_partition.get(p.as_str()).map(|r| r.etag.clone()),
        })
        .collect();
    let claim = if !free.is_empty() {
        Some(free[pick % free.len()].clone())
    } else {
        // Nothing free: take from an owner above the share; below the minimum, also from one
        // at the maximum (it then still holds its fair share).
        let owner_count = |r: &Ownership| counts[r.owner.as_deref().unwrap_or_default()];
        let mut victims: Vec<&&Ownership> = by_partition
            .values()
            .filter(|r| active(r))
            .filter(|r| owner_count(r) > max)
            .collect();
        if victims.is_empty() && mine < min {
            victims = by_partition
                .values()
                .filter(|r| active(r))
                .filter(|r| r.owner.as_deref() != Some(me) && owner_count(r) == max)
                .collect();
        }
        (!victims.is_empty()).then(|| {
            let r = victims[pick % victims.len()];
            Claim {
                partition: r.partition.clone(),
                etag: Some(r.etag.clone()),
            }
        })
    };
    Plan { renew, claim }
}

#[cfg(test)]
mod tests;
