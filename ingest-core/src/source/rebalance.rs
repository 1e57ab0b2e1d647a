//! What every source tells the loop about ownership: partitions assigned and revoked.

/// Partition assignment changes, in the order the source saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}
