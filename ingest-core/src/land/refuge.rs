//! A file whose name the store refuses. A data file's (and its dead letters') directories are
//! made from records (a time field, the path template's `{record.<field>}`); the names are
//! bounded and escaped for the strictest store ([`crate::config::layout`]), yet a store may still
//! refuse one (an S3-compatible store with rules of its own, a file system with a shorter name
//! limit). Retrying cannot help, and waiting would stall the partition for good. So the file's
//! bytes go, whole and create-only, to its refuge: a name made only of the topic, the partition
//! and the first offset, under the dead-letter prefix, next to a note of the name refused and the
//! store's answer. The claim still names the refused file; anyone who completes it meets the
//! same refusal and the same refuge, so the records land once.
//!
//! Invariant: a refuge is consulted only when the file is not at its own name.

use bytes::Bytes;

use super::flush::Flusher;
use crate::storage::{Created, StorageError};

/// Where the file at `path` goes if the store refuses its name: `<dead letters>/<topic>/
/// _refused/<data|dead_letters>/<file name>`. The file name (`<topic>+<partition>+<offset>.<ext>`)
/// holds nothing from a record, and is unique in the topic for each kind.
pub fn refuge(dead_letter_prefix: &str, topic: &str, path: &str) -> String {
    let kind = match path.starts_with(&format!("{dead_letter_prefix}/")) {
        true => "dead_letters",
        false => "data",
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    format!("{dead_letter_prefix}/{topic}/_refused/{kind}/{name}")
}

impl Flusher {
    fn refuge(&self, path: &str) -> String {
        refuge(&self.namer.dead_letter_prefix, &self.namer.topic, path)
    }

    /// Creates `path` (a data or dead-letter file), or its refuge when the store refuses the
    /// name: the outcome, and where the bytes are.
    pub(super) async fn create_named(
        &self,
        path: &str,
        bytes: Bytes,
    ) -> Result<(Created, String), StorageError> {
        let refused = match self.storage.create(path, bytes.clone()).await {
            Ok(created) => return Ok((created, path.to_string())),
            Err(e) if e.is_name_refused() => e,
            Err(e) => return Err(e),
        };
        let at = self.refuge(path);
        let answer = crate::storage::one_line(&refused);
        tracing::warn!(path, refuge = %at, error = %answer,
            "the store refuses this file's name, made from its records' fields: the file is kept whole at its refuge under the dead-letter prefix; its partition goes on");
        metrics::counter!("ingest_refused_names_total").increment(1);
        self.progress.send_modify(|p| p.refused_names += 1);
        // The note first: a crash between the two leaves a note the completion finds there.
        let note = serde_json::json!({"name": path, "error": answer});
        let note = Bytes::from(serde_json::to_vec(&note).expect("a note serialises"));
        self.storage
            .create(&format!("{at}.refused.json"), note)
            .await?;
        let created = self.storage.create(&at, bytes).await?;
        Ok((created, at))
    }

    /// Whether the file at `path` landed: at its name, or (not there, or its name refused) at
    /// its refuge.
    pub(super) async fn landed_named(&self, path: &str) -> Result<bool, StorageError> {
        match self.storage.exists(path).await {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(e) if e.is_name_refused() => {}
            Err(e) => return Err(e),
        }
        self.storage.exists(&self.refuge(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refuge_keeps_only_the_topic_partition_and_offset_and_sorts_data_from_dead_letters() {
        let data = "orders/region=%2F%2F%2F/dt=2026-12-07/orders+3+00000000000000000042.ndjson.gz";
        let dead = "_dead_letters/orders/region=%2F%2F%2F/dt=2026-12-07/orders+3+00000000000000000042.ndjson.gz";
        assert_eq!(
            refuge("_dead_letters", "orders", data),
            "_dead_letters/orders/_refused/data/orders+3+00000000000000000042.ndjson.gz"
        );
        assert_eq!(
            refuge("_dead_letters", "orders", dead),
            "_dead_letters/orders/_refused/dead_letters/orders+3+00000000000000000042.ndjson.gz"
        );
    }
}
