//! The Delta table following each partition's claim chain (`INGEST_FORMAT=delta`): every commit
//! interval, the files of the claims a partition landed past what the table holds are read from
//! its chain (a GET of each new claim, a HEAD of each of its files) and added in one commit of
//! the table ([`crate::table`]), each partition's transaction identifier at its last claim's end.
//!
//! Invariant: a file is added only after it landed, in chain order, once. The table's
//! identifiers say which claims it holds, so a crash between a file's upload and the table's
//! commit leaves the file for the next round (this owner's or the partition's next owner's,
//! which reads the chain from the table's identifier: the chain, not a message, is the work
//! list), and a commit retried, raced by another replica or repeated adds nothing twice. A file
//! a lifecycle rule deleted is not added. What this replica knows the table holds is a cache,
//! checked at every commit against the snapshot it commits on: a partition the table holds less
//! of (its log deleted and begun again, a commit a store lost) adds nothing in that commit and is
//! read again from what the table holds, so an identifier never passes a file the table lacks.
//! Every [`REREAD_EVERY`] rounds the cache is read afresh from the table, so a partition that
//! lands nothing new is refilled too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;

use super::flush::Flusher;
use super::naming::{claim_path, claims_dir, padded_number};
use crate::config::{DeltaSettings, Layout};
use crate::table::{Landed, Table};

/// Partitions whose claim chains a round reads at once.
const WALKS_AT_ONCE: usize = 16;

/// Rounds after which what the table holds of every partition is read from it again, not
/// remembered (every 5 minutes at the default commit interval: one snapshot of the log).
pub const REREAD_EVERY: u64 = 30;

/// A topic's table and what this replica knows of it.
pub struct Delta {
    pub table: Arc<Table>,
    pub settings: DeltaSettings,
    /// The layout's Hive columns (`dt`, `hour`, or a template's).
    pub partition_columns: Vec<String>,
    /// Per partition, the last offset the table holds, as last read or committed here.
    held: Mutex<HashMap<i32, Option<i64>>>,
    /// Rounds begun.
    rounds: std::sync::atomic::AtomicU64,
}

impl Delta {
    pub fn new(table: Table, settings: DeltaSettings, layout: &Layout) -> Delta {
        Delta {
            table: Arc::new(table),
            settings,
            partition_columns: layout.columns(),
            held: Mutex::new(HashMap::new()),
            rounds: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn held(&self, partition: i32) -> Option<Option<i64>> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&partition).copied()
    }

    fn set_held(&self, partition: i32, through: Option<i64>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(partition, through);
    }
}

/// Says that the table holds less of `partition` than this replica `believed`, which reads its
/// chain again from what it `holds`.
fn rewalk(partition: i32, believed: Option<i64>, holds: Option<i64>) {
    tracing::warn!(partition, ?believed, ?holds,
        "the Delta table holds less of this partition than this replica believed (its log begun again, or a commit lost by the store): its claim chain is read again from what the table holds");
    metrics::counter!("ingest_delta_rewalks_total").increment(1);
}

/// The Hive columns' values in a file's path relative to its table (`dt=2026-12-07/hour=05/
/// name.parquet`): each `name=value` directory, the value unescaped as Hive escapes it;
/// `__HIVE_DEFAULT_PARTITION__` is null.
pub fn partition_values(relative: &str) -> BTreeMap<String, Option<String>> {
    let mut dirs: Vec<&str> = relative.split('/').collect();
    dirs.pop();
    dirs.iter()
        .filter_map(|d| d.split_once('='))
        .map(|(name, value)| {
            let value = (value != "__HIVE_DEFAULT_PARTITION__").then(|| unescape(value));
            (name.to_string(), value)
        })
        .collect()
}

/// `%XX` sequences as the bytes they stand for (a value that is not UTF-8 after it is kept).
fn unescape(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map_or_else(|_| value.to_string(), |v| v.into_owned())
}

impl Flusher {
    /// One round: for each of `landed` (partition, last offset its chain landed), the files of
    /// the claims past what the table holds, added in one commit. An error leaves everything
    /// for the next round.
    pub async fn commit_table(&self, delta: &Delta, landed: Vec<(i32, i64)>) -> Result<(), String> {
        // What the table holds of partitions not seen yet, from one snapshot; of every
        // partition, every REREAD_EVERY rounds.
        let round = 1 + delta
            .rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unknown: Vec<i32> = landed
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| round.is_multiple_of(REREAD_EVERY) || delta.held(*p).is_none())
            .collect();
        if !unknown.is_empty() {
            let table = Arc::clone(&delta.table);
            let held = tokio::task::spawn_blocking(move || table.landed_through(&unknown))
                .await
                .map_err(|e| e.to_string())??;
            for (p, h) in held {
                let believed = delta.held(p).flatten();
                if crate::table::behind(h, believed) {
                    rewalk(p, believed, h);
                }
                delta.set_held(p, h);
            }
        }
        // Each partition's chain walked at once with others' (a walk is a GET a claim and a
        // HEAD a file, one after the other), the files kept in partition order.
        let walks: Vec<(i32, Option<i64>, i64)> = landed
            .into_iter()
            .map(|(partition, through)| (partition, delta.held(partition).flatten(), through))
            .filter(|(_, held, through)| held.is_none_or(|h| h < *through))
            .collect();
        // Where each walk starts is checked against the table at the commit: a table holding
        // less (its log deleted and begun again, a commit the store lost) reads the chain again.
        let assumed: crate::table::Held = walks.iter().map(|(p, h, _)| (*p, *h)).collect();
        let walked: Vec<Result<Vec<Landed>, String>> = futures::stream::iter(walks)
            .map(|(partition, held, through)| self.chain_files(partition, held, through))
            .buffered(WALKS_AT_ONCE)
            .collect()
            .await;
        let mut files: Vec<Landed> = Vec::new();
        for walk in walked {
            files.extend(walk?);
        }
        if files.is_empty() {
            self.progress.send_modify(|p| p.table_rounds += 1);
            return Ok(());
        }
        let schema = self.table_schema().await?;
        let (table, columns, batch) = (
            Arc::clone(&delta.table),
            delta.partition_columns.clone(),
            files.clone(),
        );
        let committed =
            tokio::task::spawn_blocking(move || table.commit(&batch, &schema, &columns, &assumed))
                .await
                .map_err(|e| e.to_string())??;
        for (partition, holds) in &committed.behind {
            rewalk(*partition, delta.held(*partition).flatten(), *holds);
            delta.set_held(*partition, *holds);
        }
        for f in files
            .iter()
            .filter(|f| !committed.behind.contains_key(&f.partition))
        {
            if delta
                .held(f.partition)
                .flatten()
                .is_none_or(|h| h < f.last_offset)
            {
                delta.set_held(f.partition, Some(f.last_offset));
            }
        }
        self.progress.send_modify(|p| {
            p.table_rounds += 1;
            p.table_files += committed.added as u64;
        });
        metrics::counter!("ingest_delta_commits_total").increment(1);
        metrics::counter!("ingest_delta_files_added_total").increment(committed.added as u64);
        tracing::info!(
            version = committed.version,
            added = committed.added,
            held = committed.held,
            "Delta table committed"
        );
        let every = delta.settings.checkpoint_interval;
        if committed.added > 0 && every > 0 && committed.version % every == 0 {
            // With a checkpoint written, the log's expired entries can go (30 days by default).
            let table = Arc::clone(&delta.table);
            let now = crate::clock::now_ms();
            let gone = tokio::task::spawn_blocking(move || table.checkpoint(now))
                .await
                .map_err(|e| e.to_string())??;
            tracing::info!(version = committed.version, "Delta checkpoint written");
            if gone > 0 {
                metrics::counter!("ingest_delta_log_files_expired_total").increment(gone as u64);
                tracing::info!(files = gone, "expired Delta log entries deleted");
            }
        }
        Ok(())
    }

    /// The landed files of `partition`'s claims after `held` (from its first claim when the
    /// table holds none) up to `through`, in chain order; a file that is not in the store (a
    /// lifecycle rule deleted it) is left out.
    async fn chain_files(
        &self,
        partition: i32,
        held: Option<i64>,
        through: i64,
    ) -> Result<Vec<Landed>, String> {
        let topic = &self.namer.topic;
        let dir = claims_dir(topic, partition);
        let mut next = match held {
            Some(h) => Some(h + 1),
            None => self.next_claim(&dir, None, through).await?,
        };
        let mut files = Vec::new();
        while let Some(first) = next.filter(|n| *n <= through) {
            let path = claim_path(topic, partition, first);
            let claim = match self.read_claim(&path).await.map_err(|e| e.to_string())? {
                Ok(Some(claim)) => claim,
                // A claim a lifecycle rule deleted (with or after its file): the next one.
                Ok(None) => {
                    next = self.next_claim(&dir, Some(&path), through).await?;
                    continue;
                }
                Err(e) => return Err(crate::storage::one_line(&e)),
            };
            let data: Vec<&str> = match claim.files.is_empty() {
                true => vec![claim.data.as_str()],
                false => claim.files.iter().map(|f| f.data.as_str()).collect(),
            };
            for d in data {
                // Not there (a lifecycle rule), or its name refused by the store (its records
                // are at its refuge under the dead-letter prefix): not the table's.
                let size = match self.storage.size(d).await {
                    Ok(size) => size,
                    Err(e) if e.is_name_refused() => None,
                    Err(e) => return Err(crate::storage::one_line(&e)),
                };
                let Some(size) = size else {
                    continue;
                };
                let relative = d.strip_prefix(&format!("{topic}/")).unwrap_or(d);
                files.push(Landed {
                    path: relative.to_string(),
                    partition,
                    last_offset: claim.last_offset,
                    size,
                    modified_ms: claim.claimed_at_ms,
                    records: None,
                    partition_values: partition_values(relative),
                });
            }
            next = Some(claim.last_offset + 1);
        }
        Ok(files)
    }

    /// The first claim of `dir` after `after` (from the start when `None`) that starts at or
    /// before `through`, by a listing (only where the chain cannot be followed by names).
    async fn next_claim(
        &self,
        dir: &str,
        after: Option<&str>,
        through: i64,
    ) -> Result<Option<i64>, String> {
        let until = format!("{dir}~");
        let names = self
            .storage
            .names_between(dir, after, &until)
            .await
            .map_err(|e| crate::storage::one_line(&e))?;
        Ok(names
            .iter()
            .filter_map(|n| padded_number(n, 20))
            .filter_map(|n| i64::try_from(n).ok())
            .filter(|n| *n <= through)
            .min())
    }

    /// The Arrow schema of the topic's files as its running Parquet schema has them now (every
    /// landed file's columns are among them).
    async fn table_schema(&self) -> Result<arrow_schema::SchemaRef, String> {
        let running = self
            .running_schema(false)
            .await
            .map_err(|e| crate::storage::one_line(&e))?;
        Ok(crate::encode::parquet::file_schema(
            self.encode.envelope,
            &running.columns,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_are_the_hive_directories_unescaped() {
        let v = partition_values("dt=2026-12-07/hour=05/orders+0+00000000000000000000.parquet");
        assert_eq!(
            v,
            BTreeMap::from([
                ("dt".to_string(), Some("2026-12-07".to_string())),
                ("hour".to_string(), Some("05".to_string())),
            ])
        );
        let v =
            partition_values("region=us%2Feast%20%C3%A9/kind=__HIVE_DEFAULT_PARTITION__/f.parquet");
        assert_eq!(v["region"], Some("us/east é".to_string()));
        assert_eq!(v["kind"], None);
        assert!(partition_values("f.parquet").is_empty());
    }
}
