//! The wall clock, read in one place: milliseconds since the Unix epoch.
//!
//! Pure stages never call it; they take the time as an argument, so their rules are tested with
//! any clock. Only the loop, the flush and the sources read it.

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
