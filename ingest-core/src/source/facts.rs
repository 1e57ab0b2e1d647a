//! What a source says of a partition when it is assigned, for deciding where it starts
//! ([`crate::land::start`]): its first and next offsets, the cluster, and the committed
//! position when this service wrote it. Plain data.

/// What the source says of a partition when it is assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionFacts {
    /// The first offset the log still holds (retention moves it up).
    pub low: i64,
    /// The offset the next record will get (the high watermark).
    pub high: i64,
    /// The broker's cluster id, when it gives one.
    pub cluster: Option<String>,
    /// The group's committed position when this service committed it.
    pub hint: Option<Hint>,
}

/// A committed position this service wrote: the offset after a landed claim, and that claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// The next offset to read (`last + 1` of the claim it names).
    pub next: i64,
    /// The first offset of the claim that ends at `next - 1` (absent in earlier releases' marks
    /// and in checkpoints other tools wrote).
    pub claim: Option<i64>,
}
