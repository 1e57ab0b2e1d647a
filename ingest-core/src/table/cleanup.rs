//! The log's expired entries, deleted as Delta's settings say: `delta.logRetentionDuration`
//! (30 days unless the table sets it) and `delta.enableExpiredLogCleanup` (on unless set off).
//!
//! Which files go is decided as Delta's own writers decide it: the newest checkpoint written
//! before the cutoff is kept, and every commit, checkpoint and checksum of an earlier version
//! that is itself older than the cutoff goes. Every version a reader can still reach then has a
//! checkpoint at or before it and every commit after that, so the table and its retained history
//! read as before. Deleting is idempotent: a crash or a second replica doing the same leaves the
//! same log. The decision ([`expired`]) is pure.

use std::time::Duration;

/// Delta's default `delta.logRetentionDuration`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The version a log file's name carries, and whether it is a checkpoint: `<20 digits>.json`,
/// `<20 digits>.checkpoint.parquet` (or a multi-part or UUID checkpoint's
/// `<20 digits>.checkpoint.<...>.parquet`), `<20 digits>.crc`. Other names (`_last_checkpoint`,
/// directories) are not the cleanup's.
fn log_file(name: &str) -> Option<(u64, bool)> {
    let (digits, rest) = name.split_at_checked(20)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let version = digits.parse().ok()?;
    match rest {
        ".json" | ".crc" => Some((version, false)),
        r if r.starts_with(".checkpoint.") && r.ends_with(".parquet") => Some((version, true)),
        _ => None,
    }
}

/// The log files (names in `_delta_log/`, with their modification times in ms) to delete at
/// `cutoff_ms`: those of versions before the newest checkpoint written before the cutoff, and
/// written before it themselves.
pub fn expired(files: &[(String, i64)], cutoff_ms: i64) -> Vec<String> {
    let parsed: Vec<(&str, u64, bool, i64)> = files
        .iter()
        .filter_map(|(name, at)| log_file(name).map(|(v, cp)| (name.as_str(), v, cp, *at)))
        .collect();
    let Some(kept) = parsed
        .iter()
        .filter(|(_, _, checkpoint, at)| *checkpoint && *at <= cutoff_ms)
        .map(|(_, v, ..)| *v)
        .max()
    else {
        return Vec::new();
    };
    parsed
        .into_iter()
        .filter(|(_, v, _, at)| *v < kept && *at <= cutoff_ms)
        .map(|(name, ..)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u64, ext: &str, at: i64) -> (String, i64) {
        (format!("{n:020}.{ext}"), at)
    }

    #[test]
    fn everything_before_the_newest_checkpoint_older_than_the_cutoff_goes() {
        let files = vec![
            v(0, "json", 10),
            v(1, "json", 20),
            v(2, "json", 30),
            v(2, "checkpoint.parquet", 31),
            v(3, "json", 40),
            v(3, "crc", 40),
            v(4, "json", 50),
            v(4, "checkpoint.parquet", 51),
            v(5, "json", 60),
            ("_last_checkpoint".to_string(), 51),
        ];
        // The checkpoint of version 4 is after the cutoff: the one of version 2 is kept.
        let mut gone = expired(&files, 45);
        gone.sort();
        assert_eq!(
            gone,
            ["00000000000000000000.json", "00000000000000000001.json"]
        );
        // Both checkpoints before the cutoff: everything before version 4 goes, checkpoint 2 too.
        let mut gone = expired(&files, 55);
        gone.sort();
        assert_eq!(
            gone,
            [
                "00000000000000000000.json",
                "00000000000000000001.json",
                "00000000000000000002.checkpoint.parquet",
                "00000000000000000002.json",
                "00000000000000000003.crc",
                "00000000000000000003.json",
            ]
        );
    }

    #[test]
    fn no_checkpoint_before_the_cutoff_means_nothing_goes() {
        let files = vec![
            v(0, "json", 10),
            v(1, "json", 20),
            v(1, "checkpoint.parquet", 90),
        ];
        assert!(expired(&files, 50).is_empty());
        assert!(expired(&[], 50).is_empty());
    }

    #[test]
    fn only_log_files_are_the_cleanups() {
        assert_eq!(log_file("00000000000000000007.json"), Some((7, false)));
        assert_eq!(
            log_file("00000000000000000007.checkpoint.0000000001.0000000002.parquet"),
            Some((7, true))
        );
        for other in [
            "_last_checkpoint",
            "0000000000000000007.json",
            "00000000000000000007.json.tmp",
            "0000000000000000000x.json",
            "_sidecars",
        ] {
            assert_eq!(log_file(other), None, "{other}");
        }
    }
}
