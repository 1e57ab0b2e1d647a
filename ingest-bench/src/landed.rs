//! Reading what the sink landed: listing data files, their compressed sizes, and their NDJSON
//! (Parquet files: their row counts).

use std::io::Read;
use std::path::{Path, PathBuf};

/// Data files under `<root>/<topic>/` (recursively, not a Delta table's `_delta_log/`), sorted
/// by path.
pub fn data_files(root: &Path, topic: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(topic)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name() != "_delta_log" {
                    stack.push(path);
                }
            } else if path
                .extension()
                .is_some_and(|x| x == "gz" || x == "ndjson" || x == "parquet")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Total size of the data files on disk.
pub fn landed_bytes(root: &Path, topic: &str) -> u64 {
    data_files(root, topic)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// A file's NDJSON (gunzipped when it ends in `.gz`).
pub fn ndjson(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    if path.extension().is_some_and(|x| x == "gz") {
        let mut out = Vec::with_capacity(raw.len() * 5);
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// A Parquet file's row count, from its footer.
fn parquet_rows(path: &Path) -> std::io::Result<u64> {
    use parquet::file::reader::FileReader as _;
    let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path)?)
        .map_err(std::io::Error::other)?;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}

/// Everything landed: (records, compressed bytes, the NDJSON of every file concatenated; none
/// for Parquet files).
pub fn read_all(root: &Path, topic: &str) -> std::io::Result<(u64, u64, Vec<u8>)> {
    let (mut records, mut compressed, mut all) = (0, 0, Vec::new());
    for path in data_files(root, topic) {
        compressed += std::fs::metadata(&path)?.len();
        if path.extension().is_some_and(|x| x == "parquet") {
            records += parquet_rows(&path)?;
            continue;
        }
        let text = ndjson(&path)?;
        records += memchr_count(&text);
        all.extend_from_slice(&text);
    }
    Ok((records, compressed, all))
}

/// A Delta table's commits (`_delta_log/<version>.json`) and the add actions they hold, if
/// `<root>/<topic>/` is a table.
pub fn table_commits(root: &Path, topic: &str) -> std::io::Result<Option<(u64, u64)>> {
    let log = root.join(topic).join("_delta_log");
    if !log.is_dir() {
        return Ok(None);
    }
    let (mut commits, mut adds) = (0, 0);
    for e in std::fs::read_dir(&log)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "json") {
            commits += 1;
            let text = std::fs::read_to_string(&path)?;
            adds += text.lines().filter(|l| l.starts_with(r#"{"add""#)).count() as u64;
        }
    }
    Ok(Some((commits, adds)))
}

fn memchr_count(text: &[u8]) -> u64 {
    text.iter().filter(|&&b| b == b'\n').count() as u64
}
