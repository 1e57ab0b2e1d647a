//! The log's files read and tidied directly, beside the kernel: the transaction identifiers of
//! one commit (to know a commit of ours whose write was reported failed, [`Table::commit`]), and
//! the expired entries deleted after a checkpoint ([`cleanup`] decides which).

use std::collections::BTreeMap;
use std::sync::Arc;

use delta_kernel::SnapshotRef;
use object_store::path::Path;

use super::{block, cleanup, Table};

impl Table {
    /// The transaction identifiers the commit file of `version` sets (empty if it is gone).
    pub(super) fn identifiers_at(&self, version: u64) -> Result<BTreeMap<String, i64>, String> {
        let path = Path::from(format!("{}/_delta_log/{version:020}.json", self.topic));
        let store = Arc::clone(&self.store);
        let got = block(async move {
            use object_store::ObjectStoreExt as _;
            match store.get(&path).await {
                Ok(got) => got.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        let text = got.map_err(|e| format!("reading the Delta log's version {version}: {e}"))?;
        Ok(text.map(|t| identifiers(&t)).unwrap_or_default())
    }

    /// Writes a checkpoint of the table's latest version (readers then start there, not from
    /// the first commit), unless it has one, then deletes the log's entries expired at `now_ms`
    /// as the table's settings say ([`cleanup`]); how many went.
    pub fn checkpoint(&self, now_ms: i64) -> Result<usize, String> {
        let Some(snapshot) = self.snapshot()? else {
            return Ok(0);
        };
        let (_, snapshot) = snapshot
            .checkpoint(&self.engine, None)
            .map_err(|e| format!("the Delta checkpoint was not written: {e}"))?;
        self.clean_log(&snapshot, now_ms)
    }

    /// Deletes the log's entries expired at `now_ms` as `snapshot`'s table properties say.
    fn clean_log(&self, snapshot: &SnapshotRef, now_ms: i64) -> Result<usize, String> {
        let properties = snapshot.table_properties();
        if properties.enable_expired_log_cleanup == Some(false) {
            return Ok(0);
        }
        let retention = properties
            .log_retention_duration
            .unwrap_or(cleanup::DEFAULT_RETENTION);
        let cutoff_ms = now_ms.saturating_sub(retention.as_millis() as i64);
        let dir = Path::from(format!("{}/_delta_log", self.topic));
        let store = Arc::clone(&self.store);
        block(async move {
            use object_store::ObjectStoreExt as _;
            let listed = store
                .list_with_delimiter(Some(&dir))
                .await
                .map_err(|e| format!("listing the Delta log: {e}"))?;
            let files: Vec<(String, i64)> = listed
                .objects
                .iter()
                .filter_map(|m| {
                    let name = m.location.filename()?.to_string();
                    Some((name, m.last_modified.timestamp_millis()))
                })
                .collect();
            let expired = cleanup::expired(&files, cutoff_ms);
            for name in &expired {
                match store.delete(&dir.clone().join(name.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(format!("deleting the expired log entry {name}: {e}")),
                }
            }
            Ok(expired.len())
        })
    }
}

/// A commit this replica tried whose write it was told failed.
pub(super) struct Tried {
    /// The version it was written as.
    pub(super) version: u64,
    /// The transaction identifiers it set: a commit at `version` with exactly these is it (or
    /// one adding exactly the same files, which is the same).
    pub(super) ids: BTreeMap<String, i64>,
    /// The files it added, those the table held, the partitions it left out.
    pub(super) added: usize,
    pub(super) held: usize,
    pub(super) behind: super::Held,
}

/// Whether a table holding `table` of a partition (its identifier's version) holds less than
/// `assumed`: the files after `table` and up to `assumed` were never read for this commit.
pub fn behind(table: Option<i64>, assumed: Option<i64>) -> bool {
    match (table, assumed) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(t), Some(a)) => t < a,
    }
}

/// `files` split into those to add (past what the table holds, `through`, and not of a
/// partition `behind`) and how many the table holds already.
pub(super) fn split<'a>(
    files: &'a [super::Landed],
    through: &super::Held,
    behind: &super::Held,
) -> (Vec<&'a super::Landed>, usize) {
    let mut held = 0;
    let new = files
        .iter()
        .filter(|f| !behind.contains_key(&f.partition))
        .filter(|f| {
            let past = through[&f.partition].is_none_or(|v| f.last_offset > v);
            held += usize::from(!past);
            past
        })
        .collect();
    (new, held)
}

/// The transaction identifiers (`txn` actions: app id, version) of a commit file's text.
fn identifiers(commit: &[u8]) -> BTreeMap<String, i64> {
    #[derive(serde::Deserialize)]
    struct Line {
        txn: Option<Txn>,
    }
    #[derive(serde::Deserialize)]
    struct Txn {
        #[serde(rename = "appId")]
        app_id: String,
        version: i64,
    }
    commit
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Line>(line).ok()?.txn)
        .map(|t| (t.app_id, t.version))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commits_identifiers_are_read_from_its_txn_actions_alone() {
        let commit = br#"{"commitInfo":{"timestamp":1,"txnId":"x"}}
{"txn":{"appId":"ingest:t:g:0","version":41,"lastUpdated":1}}
{"add":{"path":"a.parquet","size":1}}
{"txn":{"appId":"ingest:t:g:3","version":7}}
"#;
        let ids = identifiers(commit);
        assert_eq!(
            ids,
            BTreeMap::from([
                ("ingest:t:g:0".to_string(), 41),
                ("ingest:t:g:3".to_string(), 7)
            ])
        );
        assert!(identifiers(b"{\"add\":{}}\n").is_empty());
        assert!(identifiers(b"not json\n").is_empty());
    }

    #[test]
    fn a_table_is_behind_only_when_it_holds_less_than_assumed() {
        assert!(
            !behind(None, None),
            "nothing assumed: the chain is read from its start"
        );
        assert!(!behind(Some(5), None));
        assert!(behind(None, Some(5)), "the table begun again");
        assert!(behind(Some(4), Some(5)), "a commit the store lost");
        assert!(!behind(Some(5), Some(5)));
        assert!(
            !behind(Some(9), Some(5)),
            "another replica added more meanwhile"
        );
    }

    fn file(partition: i32, last_offset: i64) -> super::super::Landed {
        super::super::Landed {
            path: format!("f{partition}-{last_offset}"),
            partition,
            last_offset,
            size: 1,
            modified_ms: 0,
            records: None,
            partition_values: Default::default(),
        }
    }

    #[test]
    fn files_are_split_into_new_and_held_and_a_partition_behind_adds_none() {
        let files = [file(0, 9), file(0, 19), file(1, 9), file(2, 9), file(2, 19)];
        let through = super::super::Held::from([(0, Some(9)), (1, Some(9)), (2, None)]);
        let (new, held) = split(&files, &through, &Default::default());
        let added: Vec<&str> = new.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(added, ["f0-19", "f2-9", "f2-19"]);
        assert_eq!(held, 2);
        let behind = super::super::Held::from([(2, None)]);
        let (new, held) = split(&files, &through, &behind);
        let added: Vec<&str> = new.iter().map(|f| f.path.as_str()).collect();
        assert_eq!((added, held), (vec!["f0-19"], 2));
    }
}
