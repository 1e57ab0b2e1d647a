//! Delta Lake tables (issue 37, part 1): a topic's landed Parquet files added to a Delta table
//! at `<root>/<topic>/` by commits to its `_delta_log/`, through the Delta project's own kernel
//! (`delta_kernel`, on the arrow and object_store versions the rest of the service uses).
//!
//! Exactly once through the log: every commit carries, for each Kafka partition whose files it
//! adds, a transaction identifier (`ingest:<topic>:<group>:<partition>`; version: the last offset
//! of the last file added). A partition's files are added in the order of its claim chain, so
//! that version says which of them the table holds ([`Table::landed_through`]): a commit drops
//! the files the table already holds, so a file is added once however often a commit is
//! retried, raced by another replica (commits are create-only files: the loser reads the log
//! again and commits what is left) or repeated after a crash. Columns the files have and the
//! table lacks are added in the commit that adds the first file with them (nullable, at any
//! depth); types never change.
//!
//! The service follows each partition's claim chain into the table ([`crate::land::table`]).

pub mod cleanup;
mod log;
pub mod schema;
mod sorted;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Int64Array, StructArray};
use arrow_schema::{DataType as ArrowType, Field, Schema as ArrowSchema};
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::expressions::Scalar;
use delta_kernel::schema::{DataType, StructType};
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel::{FileMeta, Snapshot, SnapshotRef};
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use delta_kernel_default_engine::parquet::DataFileMetadata;
use delta_kernel_default_engine::{build_add_file_metadata, DefaultEngine, DefaultEngineBuilder};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions};
use url::Url;

/// Commits tried before giving up on one batch of files (each conflict means another replica
/// committed meanwhile, which the next try reads).
const MAX_ATTEMPTS: usize = 20;

/// One landed file to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    /// Relative to the table's root (`dt=2026-12-07/hour=05/orders+3+...parquet`).
    pub path: String,
    pub partition: i32,
    /// The last offset the file holds (its claim's end).
    pub last_offset: i64,
    pub size: u64,
    pub modified_ms: i64,
    /// Its records, when known (the table's statistics then say so).
    pub records: Option<u64>,
    /// The Hive partition columns' values, by column (`None`: null).
    pub partition_values: BTreeMap<String, Option<String>>,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The table's version after it (the commit's, or the one that already held every file).
    pub version: u64,
    pub added: usize,
    /// Files the table already held (an earlier commit's, this replica's or another's).
    pub held: usize,
    /// Partitions whose files were left out because the table holds less of them than the
    /// caller assumed (the files between are not added), with what it holds: their chains are
    /// to be read again from there.
    pub behind: Held,
}

/// Per partition, the last offset whose file a table holds (`None`: none of its files).
pub type Held = HashMap<i32, Option<i64>>;

pub use log::behind;

/// A topic's Delta table.
pub struct Table {
    engine: DefaultEngine<TokioMultiThreadExecutor>,
    store: Arc<dyn ObjectStore>,
    /// The table's root as the kernel addresses it: `ingest:///<topic>/` whatever the store,
    /// the path below it being the key in the store (which is rooted at the storage URL).
    url: Url,
    topic: String,
    group: String,
}

impl Table {
    /// The table of `topic` in `store` (rooted at the storage URL), for consumer `group`. Kernel
    /// calls block: call them off the async threads, inside the runtime `handle` runs.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        topic: &str,
        group: &str,
        handle: tokio::runtime::Handle,
    ) -> Result<Table, String> {
        let url = Url::parse(&format!("ingest:///{topic}/")).map_err(|e| e.to_string())?;
        let executor = Arc::new(TokioMultiThreadExecutor::new(handle));
        let sorted: Arc<dyn ObjectStore> = Arc::new(sorted::Sorted(Arc::clone(&store)));
        let engine = DefaultEngineBuilder::new(sorted)
            .with_task_executor(executor)
            .build();
        Ok(Table {
            engine,
            store,
            url,
            topic: topic.to_string(),
            group: group.to_string(),
        })
    }

    /// The transaction identifier of `partition`'s commits.
    pub fn app_id(&self, partition: i32) -> String {
        format!("ingest:{}:{}:{partition}", self.topic, self.group)
    }

    /// The table as of now; `None` when it has no log yet.
    fn snapshot(&self) -> Result<Option<SnapshotRef>, String> {
        let build = || Snapshot::builder_for(self.url.as_str()).build(&self.engine);
        match build() {
            Ok(s) => Ok(Some(s)),
            Err(e) if !self.has_log()? => {
                tracing::debug!(error = %e, "no Delta log yet");
                Ok(None)
            }
            // The first commit may have appeared since (another replica's): read again.
            Err(_) => build()
                .map(Some)
                .map_err(|e| format!("the Delta table's log does not read: {e}")),
        }
    }

    /// Whether `_delta_log/` holds a commit or a checkpoint (a table whose first commits log
    /// retention removed still has later ones and its checkpoints; a file being written by
    /// another replica's first commit, under a temporary name, is neither).
    fn has_log(&self) -> Result<bool, String> {
        let prefix = Path::from(format!("{}/_delta_log", self.topic));
        let store = Arc::clone(&self.store);
        let versioned = |meta: &object_store::ObjectMeta| {
            let name = meta.location.filename().unwrap_or_default().as_bytes();
            name.len() > 21 && name[..20].iter().all(u8::is_ascii_digit) && name[20] == b'.'
        };
        let found = block(async move {
            use futures::TryStreamExt as _;
            let mut listed = store.list(Some(&prefix));
            while let Some(meta) = listed.try_next().await? {
                if versioned(&meta) {
                    return Ok(true);
                }
            }
            Ok::<_, object_store::Error>(false)
        });
        found.map_err(|e| e.to_string())
    }

    /// The table's latest version and what it holds of each of `partitions` (as
    /// [`Table::landed_through`]), from one snapshot (`None`: no table yet).
    pub fn version_and_held(&self, partitions: &[i32]) -> Result<Option<(u64, Held)>, String> {
        let Some(snapshot) = self.snapshot()? else {
            return Ok(None);
        };
        Ok(Some((
            snapshot.version(),
            self.held(&snapshot, partitions)?,
        )))
    }

    /// For each of `partitions`, the last offset whose file the table holds (`None`: none of
    /// its files), read from one snapshot of the table.
    pub fn landed_through(&self, partitions: &[i32]) -> Result<HashMap<i32, Option<i64>>, String> {
        match self.snapshot()? {
            Some(snapshot) => self.held(&snapshot, partitions),
            None => Ok(partitions.iter().map(|p| (*p, None)).collect()),
        }
    }

    /// What `snapshot` holds of each of `partitions` (its transaction identifiers' versions).
    fn held(
        &self,
        snapshot: &SnapshotRef,
        partitions: &[i32],
    ) -> Result<HashMap<i32, Option<i64>>, String> {
        let mut held = HashMap::new();
        for p in partitions {
            if let std::collections::hash_map::Entry::Vacant(e) = held.entry(*p) {
                let v = snapshot
                    .get_app_id_version(&self.app_id(*p), &self.engine)
                    .map_err(|e| e.to_string())?;
                e.insert(v);
            }
        }
        Ok(held)
    }

    /// Creates the table (its first commit, create-only: another replica's first commit
    /// stands instead) with the `wanted` schema and `partition_columns`.
    fn create(&self, wanted: &StructType, partition_columns: &[String]) -> Result<(), String> {
        let now = crate::clock::now_ms();
        let id = schema::table_id(&format!("{}/{}/{now}", self.topic, self.group));
        let text = schema::first_commit(wanted, partition_columns, &id, now, ENGINE)?;
        let path = Path::from(format!("{}/_delta_log/{:020}.json", self.topic, 0));
        let store = Arc::clone(&self.store);
        let put = block(async move {
            let opts = PutOptions::from(PutMode::Create);
            store.put_opts(&path, text.into(), opts).await
        });
        match put {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(format!("the Delta table cannot be created: {e}")),
        }
    }

    /// Adds `files` (of one or more partitions, each partition's in chain order) to the table,
    /// with the columns of `file_schema` it lacks, in one commit; creates the table first if it
    /// has no log. Files the table already held are left out, and so are those of a partition
    /// the table holds less of than `assumed` says (the caller read its chain from there: the
    /// files between would never be added; see [`Committed::behind`]).
    pub fn commit(
        &self,
        files: &[Landed],
        file_schema: &ArrowSchema,
        partition_columns: &[String],
        assumed: &Held,
    ) -> Result<Committed, String> {
        let wanted = schema::wanted(file_schema, partition_columns)?;
        // A write of ours that failed as far as we were told: the store may have taken it all
        // the same (a PUT retried after a timeout or a 503 meets its own first attempt).
        let mut tried: Option<log::Tried> = None;
        for _ in 0..MAX_ATTEMPTS {
            let Some(snapshot) = self.snapshot()? else {
                self.create(&wanted, partition_columns)?;
                continue;
            };
            if let Some(t) = tried.take() {
                if snapshot.version() >= t.version && self.identifiers_at(t.version)? == t.ids {
                    return Ok(Committed {
                        version: t.version,
                        added: t.added,
                        held: t.held,
                        behind: t.behind,
                    });
                }
            }
            let partitions: Vec<i32> = files.iter().map(|f| f.partition).collect();
            let through = self.held(&snapshot, &partitions)?;
            let behind: Held = through
                .iter()
                .filter(|(p, t)| log::behind(**t, assumed.get(p).copied().flatten()))
                .map(|(p, t)| (*p, *t))
                .collect();
            let (new, held) = log::split(files, &through, &behind);
            if new.is_empty() {
                return Ok(Committed {
                    version: snapshot.version(),
                    added: 0,
                    held,
                    behind,
                });
            }
            let mut builder = Arc::clone(&snapshot).update_table(
                UpdateTableOperation::StreamingUpdate,
                ENGINE,
                true,
            );
            for a in schema::additions(&snapshot.schema(), &wanted) {
                builder = match a.parent {
                    None => builder.add_column(a.field),
                    Some(parent) => builder.add_column_at(parent, a.field),
                };
            }
            let mut last: BTreeMap<i32, i64> = BTreeMap::new();
            for f in &new {
                let v = last.entry(f.partition).or_insert(f.last_offset);
                *v = (*v).max(f.last_offset);
            }
            for (p, v) in &last {
                builder = builder.with_transaction_id(self.app_id(*p), *v);
            }
            let last_ids: BTreeMap<String, i64> =
                last.iter().map(|(p, v)| (self.app_id(*p), *v)).collect();
            let mut txn = builder
                .build(&self.engine, Box::new(FileSystemCommitter::new()))
                .map_err(|e| format!("a Delta commit cannot be prepared: {e}"))?;
            let state = txn.write_state().map_err(|e| e.to_string())?;
            for f in &new {
                let values: HashMap<String, Scalar> = f
                    .partition_values
                    .iter()
                    .map(|(k, v)| {
                        let value = match v {
                            Some(v) => Scalar::String(v.clone()),
                            None => Scalar::Null(DataType::STRING),
                        };
                        (k.clone(), value)
                    })
                    .collect();
                let context = state
                    .write_context_builder()
                    .with_partition_values(values)
                    .build()
                    .map_err(|e| e.to_string())?;
                // A key's `%` (escaped template values) is itself escaped in the URL, which the
                // kernel decodes back to the key, and the log keeps as the reader decodes it.
                let location = self
                    .url
                    .join(&f.path.replace('%', "%25"))
                    .map_err(|e| e.to_string())?;
                let meta = FileMeta {
                    location,
                    last_modified: f.modified_ms,
                    size: f.size,
                };
                let stats = statistics(f.records)?;
                let add = build_add_file_metadata(DataFileMetadata::new(meta, stats), &context)
                    .map_err(|e| e.to_string())?;
                txn.add_files(add);
            }
            match txn.commit(&self.engine).map_err(|e| e.to_string())? {
                CommitResult::Committed(c) => {
                    return Ok(Committed {
                        version: c.commit_version(),
                        added: new.len(),
                        held,
                        behind,
                    })
                }
                // Another commit took the version (or a retried write of ours did): read the
                // log again and commit what is left.
                CommitResult::Conflicted(c) => {
                    tracing::debug!(
                        version = c.conflict_version(),
                        "Delta commit conflicted; reading the log again"
                    );
                    tried = Some(log::Tried {
                        version: c.conflict_version(),
                        ids: last_ids,
                        added: new.len(),
                        held,
                        behind,
                    });
                }
                CommitResult::Retryable(_) => {
                    tracing::debug!("Delta commit failed to write; trying again");
                    tried = Some(log::Tried {
                        version: snapshot.version() + 1,
                        ids: last_ids,
                        added: new.len(),
                        held,
                        behind,
                    });
                }
            }
        }
        Err(format!(
            "{MAX_ATTEMPTS} Delta commits in a row met another commit of the same version"
        ))
    }
}

/// What the service says it is in the log's commit information.
const ENGINE: &str = concat!("ingest/", env!("CARGO_PKG_VERSION"));

/// A file's statistics: its record count, when known.
fn statistics(records: Option<u64>) -> Result<StructArray, String> {
    let n = records
        .map(i64::try_from)
        .transpose()
        .map_err(|e| e.to_string())?;
    let fields = vec![Field::new("numRecords", ArrowType::Int64, true)];
    StructArray::try_new(
        fields.into(),
        vec![Arc::new(Int64Array::from(vec![n]))],
        None,
    )
    .map_err(|e| e.to_string())
}

/// Runs `f` to completion from a blocking thread inside the runtime.
fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Handle::current().block_on(f)
}
