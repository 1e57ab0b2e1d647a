//! `INGEST_FORMAT=delta`: the loop's part in the Delta table ([`crate::land::table`]): every
//! commit interval, off the loop, the files each started partition landed are added to the table;
//! once more after the drain, so a stopped service leaves its table holding what it landed. That
//! last commit ends with the shutdown timeout: files it did not add are added by the next start,
//! as after a SIGKILL, so a store that stopped answering cannot hold the service past its
//! deadline (and Kubernetes' SIGKILL).

use std::sync::Arc;
use std::time::Instant;

use super::{Loop, Starting};
use crate::config::Config;
use crate::error::Error;
use crate::land::flush::Flusher;
use crate::land::table::Delta;
use crate::table::Table;

/// The table, and the round running or last run.
pub(super) struct Tabling {
    delta: Arc<Delta>,
    at: Option<Instant>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The topic's table when `INGEST_FORMAT=delta`, in the store `flusher` lands into.
pub(super) fn tabling(config: &Config, flusher: &Flusher) -> Result<Option<Tabling>, Error> {
    let Some(settings) = config.delta else {
        return Ok(None);
    };
    let group = match &config.eventhubs {
        Some(eh) => eh.consumer_group.clone(),
        None => config.kafka.group_id.clone(),
    };
    let store = flusher.storage.object_store();
    let table = Table::new(
        store,
        &config.topic,
        &group,
        tokio::runtime::Handle::current(),
    )
    .map_err(Error::Internal)?;
    Ok(Some(Tabling {
        delta: Arc::new(Delta::new(table, settings, &config.layout)),
        at: None,
        task: None,
    }))
}

impl Loop {
    /// Each started partition and the last offset its chain landed.
    fn landed(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter(|(_, o)| matches!(o.starting, Starting::Started))
            .filter_map(|(p, o)| Some((*p, o.chain_next? - 1)))
            .collect()
    }

    /// Every commit interval, off the loop: a round of the table's commits (one at a time).
    pub(super) fn commit_table(&mut self, now: Instant) {
        let landed = self.landed();
        let Some(t) = self.tabling.as_mut() else {
            return;
        };
        let interval = t.delta.settings.commit_interval;
        if t.task.as_ref().is_some_and(|k| !k.is_finished())
            || t.at.is_some_and(|at| now < at + interval)
        {
            return;
        }
        t.at = Some(now);
        let (flusher, delta) = (Arc::clone(&self.flusher), Arc::clone(&t.delta));
        t.task = Some(tokio::spawn(async move {
            if let Err(e) = flusher.commit_table(&delta, landed).await {
                metrics::counter!("ingest_delta_commit_errors_total").increment(1);
                tracing::warn!(error = %e, "the Delta table's commit failed; its files are added at the next one");
            }
        }));
    }

    /// After the drain, until `deadline`: the round running finishes, and one more adds what
    /// landed since.
    pub(super) async fn last_table_commit(&mut self, deadline: tokio::time::Instant) {
        let landed = self.landed();
        let Some(t) = self.tabling.as_mut() else {
            return;
        };
        let (flusher, delta) = (&self.flusher, &t.delta);
        let running = t.task.take();
        let last = async move {
            if let Some(task) = running {
                let _ = task.await;
            }
            flusher.commit_table(delta, landed).await
        };
        let failed = match tokio::time::timeout_at(deadline, last).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => format!(
                "not done within the shutdown timeout ({:?}, INGEST_SHUTDOWN_TIMEOUT_MS)",
                self.config.shutdown_timeout
            ),
        };
        metrics::counter!("ingest_delta_commit_errors_total").increment(1);
        tracing::warn!(error = %failed, "the Delta table's last commit failed; the next start adds its files");
    }
}
