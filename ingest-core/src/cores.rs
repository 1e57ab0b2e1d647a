//! The cores this process may use, read once.
//!
//! `std::thread::available_parallelism` reads the affinity mask and the cgroup's CPU quota
//! (several files under `/proc` and `/sys`) on every call: too much for every encoded part.
//! The answer is taken at the first call and kept; a quota changed while the service runs
//! applies at its next start.

use std::sync::OnceLock;

/// Cores available to this process (2 when it cannot be told).
pub fn available() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, usize::from))
}
