//! Large files: sent in parts (S3 multipart, Azure blocks) with at most two parts in flight.
//!
//! Invariant: an upload that fails is aborted, so no parts are left behind on S3 (Azure drops
//! uncommitted blocks by itself after a week). The caller uploads to a staging name and
//! publishes with a create-only copy, because multipart completion cannot be made create-only
//! through object_store.

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use object_store::{MultipartUpload, PutPayload};

/// Parts in flight per upload: enough to keep the link busy, little extra memory (the parts
/// are slices of the encoded file, which is already in memory).
const IN_FLIGHT: usize = 2;

/// The byte ranges of the parts: all `part_bytes` long except the last.
pub fn part_ranges(len: usize, part_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let part = part_bytes.max(1);
    (0..len.div_ceil(part))
        .map(|i| i * part..((i + 1) * part).min(len))
        .collect()
}

/// Sends `data` in parts and completes the upload; on any failure aborts it and returns the
/// first error. `fail_after_parts` is the test fault `INGEST_FAULT_FAIL_MULTIPART_AFTER_PARTS`.
pub async fn send(
    upload: &mut dyn MultipartUpload,
    data: Bytes,
    part_bytes: usize,
    fail_after_parts: Option<usize>,
) -> Result<usize, object_store::Error> {
    let result = send_parts(upload, &data, part_bytes, fail_after_parts).await;
    match result {
        Ok(parts) => match upload.complete().await {
            Ok(_) => Ok(parts),
            Err(e) => Err(abort(upload, e).await),
        },
        Err(e) => Err(abort(upload, e).await),
    }
}

async fn send_parts(
    upload: &mut dyn MultipartUpload,
    data: &Bytes,
    part_bytes: usize,
    fail_after_parts: Option<usize>,
) -> Result<usize, object_store::Error> {
    let mut pending = FuturesUnordered::new();
    let ranges = part_ranges(data.len(), part_bytes);
    for (i, range) in ranges.iter().enumerate() {
        if fail_after_parts == Some(i) {
            // Let the parts already sent finish, so the abort has something to remove.
            while let Some(r) = pending.next().await {
                r?;
            }
            eprintln!("FAULT: failing a multipart upload after {i} parts");
            return Err(object_store::Error::Generic {
                store: "ingest",
                source: format!("fault injected after {i} parts").into(),
            });
        }
        pending.push(upload.put_part(PutPayload::from_bytes(data.slice(range.clone()))));
        while pending.len() >= IN_FLIGHT {
            if let Some(r) = pending.next().await {
                r?;
            }
        }
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    Ok(ranges.len())
}

async fn abort(
    upload: &mut dyn MultipartUpload,
    cause: object_store::Error,
) -> object_store::Error {
    match upload.abort().await {
        Ok(()) => {
            tracing::warn!(error = %cause, "multipart upload failed; aborted it, no parts left behind")
        }
        Err(e) => tracing::warn!(error = %cause, abort_error = %e,
            "multipart upload failed and could not be aborted; a lifecycle rule that aborts incomplete uploads removes its parts"),
    }
    cause
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_file_exactly_once() {
        assert_eq!(part_ranges(10, 4), vec![0..4, 4..8, 8..10]);
        assert_eq!(part_ranges(8, 4), vec![0..4, 4..8]);
        assert_eq!(part_ranges(3, 4), vec![0..3]);
        assert!(part_ranges(0, 4).is_empty());
        let ranges = part_ranges(20_000_001, 5 * 1024 * 1024);
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges.last().unwrap().end, 20_000_001);
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
    }
}
