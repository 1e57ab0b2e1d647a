//! Liveness and readiness: facts the pipeline reports, and the verdicts `/healthz` and
//! `/readyz` give from them.
//!
//! The verdicts are pure functions of a [`Facts`] snapshot and the time, so each is unit-tested.
//! Invariant: liveness only fails when the loop itself stopped turning (restarting helps);
//! everything outside the process (storage, Kafka assignment) only affects readiness.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// What the pipeline last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Start-up finished: storage probed, topic found, subscribed.
    pub started: bool,
    /// Graceful shutdown in progress.
    pub draining: bool,
    /// When the loop last turned (ms since the epoch).
    pub heartbeat_ms: i64,
    /// The last storage failure, while storage is failing.
    pub storage_error: Option<String>,
    /// The last schema registry failure, while partitions wait for a schema it cannot serve.
    pub registry_error: Option<String>,
    /// What start-up waits for (a store or broker it cannot reach yet), while it waits.
    pub start_error: Option<String>,
    /// Partitions this replica owns.
    pub assigned: usize,
    /// When each owned partition last landed a file (ms since the epoch).
    pub last_landed_ms: BTreeMap<i32, i64>,
}

/// An HTTP status and a one-line body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub body: String,
}

impl Verdict {
    fn ok(body: impl Into<String>) -> Verdict {
        Verdict {
            ok: true,
            body: body.into(),
        }
    }
    fn fail(body: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            body: body.into(),
        }
    }
}

/// `/healthz`: the loop turned within `stall`.
pub fn liveness(f: &Facts, now_ms: i64, stall: Duration) -> Verdict {
    if !f.started {
        // Start-up steps have their own timeouts, and wait for a store or broker they cannot
        // reach yet: restarting would only start over.
        return Verdict::ok("alive: starting");
    }
    let quiet_ms = now_ms.saturating_sub(f.heartbeat_ms);
    if quiet_ms > stall.as_millis() as i64 {
        Verdict::fail(format!(
            "stuck: the pipeline loop has not turned for {} s (INGEST_HEALTH_STALL_MS={})",
            quiet_ms / 1000,
            stall.as_millis()
        ))
    } else {
        Verdict::ok("alive")
    }
}

/// `/readyz`: started, not draining, and storage reachable. Owning no partition is a legitimate
/// wait (more replicas than partitions, or a rebalance in progress), so it is still ready.
pub fn readiness(f: &Facts) -> Verdict {
    if !f.started {
        return Verdict::fail(match &f.start_error {
            Some(e) => format!("starting: waiting, retrying with backoff: {e}"),
            None => "starting: checking storage and the topic".into(),
        });
    }
    if f.draining {
        return Verdict::fail("stopping: flushing buffers before exit");
    }
    if let Some(e) = &f.storage_error {
        return Verdict::fail(format!("storage unreachable: {e}"));
    }
    if let Some(e) = &f.registry_error {
        return Verdict::fail(format!(
            "schema registry unreachable (partitions needing a schema not read yet wait): {e}"
        ));
    }
    match f.assigned {
        0 => Verdict::ok(
            "ready: no partitions assigned (more replicas than partitions, or a rebalance)",
        ),
        n => Verdict::ok(format!("ready: {n} partitions assigned")),
    }
}

/// The shared, lock-protected facts. Updates are rare (per flush, per second), never per record.
#[derive(Debug, Default)]
pub struct Health {
    facts: Mutex<Facts>,
}

impl Health {
    pub fn new(now_ms: i64) -> Health {
        Health {
            facts: Mutex::new(Facts {
                heartbeat_ms: now_ms,
                ..Facts::default()
            }),
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut Facts)) {
        // A poisoned lock means a panic elsewhere; the facts are plain values, still usable.
        let mut guard = self.facts.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    pub fn snapshot(&self) -> Facts {
        self.facts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Facts {
        Facts {
            started: true,
            heartbeat_ms: 10_000,
            assigned: 3,
            ..Facts::default()
        }
    }

    #[test]
    fn liveness_fails_only_when_the_loop_stalls() {
        let stall = Duration::from_secs(60);
        assert!(liveness(&started(), 69_999, stall).ok);
        let v = liveness(&started(), 71_000, stall);
        assert!(!v.ok && v.body.contains("61 s"), "{v:?}");
        let outage = Facts {
            storage_error: Some("connection refused".into()),
            ..started()
        };
        assert!(
            liveness(&outage, 11_000, stall).ok,
            "an outage is not a reason to restart"
        );
        let waiting = Facts {
            start_error: Some("storage: connection refused".into()),
            ..Facts::default()
        };
        assert!(
            liveness(&waiting, 10_000_000, stall).ok,
            "waiting at start for a store is not a stuck loop"
        );
    }

    #[test]
    fn readiness_follows_start_up_storage_and_shutdown() {
        assert!(!readiness(&Facts::default()).ok);
        let waiting = readiness(&Facts {
            start_error: Some("storage: connection refused".into()),
            ..Facts::default()
        });
        assert_eq!(
            waiting,
            Verdict::fail("starting: waiting, retrying with backoff: storage: connection refused")
        );
        assert_eq!(
            readiness(&started()),
            Verdict::ok("ready: 3 partitions assigned")
        );
        let idle = Facts {
            assigned: 0,
            ..started()
        };
        assert!(readiness(&idle).ok, "waiting for partitions is legitimate");
        let outage = Facts {
            storage_error: Some("cannot write to s3://lake: refused".into()),
            ..started()
        };
        let v = readiness(&outage);
        assert!(
            !v.ok && v.body.starts_with("storage unreachable: cannot write"),
            "{v:?}"
        );
        let stopping = Facts {
            draining: true,
            ..started()
        };
        assert!(!readiness(&stopping).ok);
    }
}
