//! Load balancing: each round reads the ownership records, renews what this replica holds,
//! revokes what another replica took, and claims at most one more partition toward a fair
//! share ([`super::balance::plan`] decides, this module does the I/O).
//!
//! Invariant: a partition is assigned to the loop only after this replica's conditional claim
//! won, and revoked (its receiver cancelled) as soon as the claim is found lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::balance;
use super::context::{random, Context};
use super::management::Urgency;
use super::partition::receive;
use super::receiver::{lock, Delivery, Held};

/// Load balancing: a round every interval, and at once after a round that claimed a partition
/// (so a replica reaches its share quickly). Errors are logged; the next round retries.
pub(super) async fn balance_loop(cx: Arc<Context>, stop: CancellationToken) {
    let mut generation = 0u64;
    loop {
        restart_receivers(&cx, &mut generation).await;
        let claimed = match round(&cx, &mut generation, &stop).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "load balancing round failed; retrying next round");
                false
            }
        };
        if claimed {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(cx.interval) => {}
            _ = cx.shared.restart_wanted.notified() => {}
        }
    }
}

/// Replaces the receivers the pipeline asked to start over ([`super::Control::restart`]): the
/// ownership stays (same ETag), the receiver is new, with a new generation.
async fn restart_receivers(cx: &Arc<Context>, generation: &mut u64) {
    let wanted = std::mem::take(&mut *lock(&cx.shared.restarts));
    for p in wanted {
        let id = p.to_string();
        let Some(held) = lock(&cx.shared.held).remove(&id) else {
            continue; // no longer owned: nothing to restart
        };
        held.receiver.cancel();
        lock(&cx.shared.paused).remove(&p);
        tracing::info!(
            partition = p,
            "receiver started over, as the pipeline asked"
        );
        assign(cx, &id, held.etag, generation).await;
    }
}

/// One round; returns whether a partition was claimed.
async fn round(
    cx: &Arc<Context>,
    generation: &mut u64,
    stop: &CancellationToken,
) -> Result<bool, String> {
    if stop.is_cancelled() {
        return Ok(false);
    }
    // The list read last (at open or after the previous round's renewals): the management
    // requests come after this round's renewals, so they can never delay them.
    let partition_ids = lock(&cx.partition_ids).clone();
    let records = cx.store.ownerships().await.map_err(|e| e.to_string())?;
    // Partitions whose record changed under us were taken by another replica.
    let lost: Vec<String> = lock(&cx.shared.held)
        .iter()
        .filter(|(p, h)| {
            !records.iter().any(|r| {
                &r.partition == *p && r.owner.as_deref() == Some(&cx.owner_id) && r.etag == h.etag
            })
        })
        .map(|(p, _)| p.clone())
        .collect();
    for p in lost {
        revoke(
            cx,
            &p,
            "its ownership record was overwritten by another replica",
        )
        .await;
    }
    let held: Vec<String> = lock(&cx.shared.held).keys().cloned().collect();
    let plan = balance::plan(
        &partition_ids,
        &records,
        &cx.owner_id,
        &held,
        crate::clock::now_ms(),
        cx.expiry.as_millis() as i64,
        random() as usize,
    );
    for renewal in &plan.renew {
        match cx.store.claim(renewal, &cx.owner_id).await {
            Ok(Some(etag)) => {
                let adopted = {
                    let mut held = lock(&cx.shared.held);
                    match held.get_mut(&renewal.partition) {
                        Some(h) => {
                            h.etag = etag.clone();
                            false
                        }
                        None => true,
                    }
                };
                if adopted {
                    // Ours by name from an earlier run with the same owner id.
                    assign(cx, &renewal.partition, etag, generation).await;
                }
            }
            Ok(None) => revoke(cx, &renewal.partition, "another replica claimed it").await,
            Err(e) => {
                tracing::warn!(partition = renewal.partition, error = %e, "could not renew ownership; retrying next round")
            }
        }
    }
    refresh_partitions(cx).await;
    report_lag(cx).await;
    let Some(claim) = plan.claim else {
        return Ok(false);
    };
    if stop.is_cancelled() {
        return Ok(false);
    }
    let was_owned_by = records
        .iter()
        .find(|r| r.partition == claim.partition)
        .and_then(|r| r.owner.clone());
    match cx.store.claim(&claim, &cx.owner_id).await {
        Ok(Some(etag)) => {
            tracing::info!(partition = claim.partition, previous_owner = ?was_owned_by, "partition claimed");
            assign(cx, &claim.partition, etag, generation).await;
            Ok(true)
        }
        Ok(None) => {
            tracing::debug!(
                partition = claim.partition,
                "another replica claimed it first"
            );
            Ok(false)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The longest a balancing round waits for one management request (partition list, partition
/// properties), at most one interval: a round stuck there would delay the next renewals.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(10);

fn management_timeout(cx: &Context) -> Duration {
    cx.interval.min(MANAGEMENT_TIMEOUT)
}

/// `ingest_consumer_lag` of each partition received, from its last enqueued sequence number
/// (one management request per partition per round; the same gauge Kafka's statistics set).
async fn report_lag(cx: &Context) {
    let held: Vec<String> = lock(&cx.shared.held).keys().cloned().collect();
    for id in held {
        let Ok(p) = id.parse::<i32>() else { continue };
        let read = cx
            .management
            .partition(&id, Urgency::IfIdle, management_timeout(cx))
            .await;
        match read {
            Err(e) => {
                tracing::debug!(partition = p, error = %e, "cannot read the partition's properties for its lag; read next round")
            }
            Ok(props) => {
                let landed = lock(&cx.shared.landed).get(&p).copied();
                let lag = super::layout::lag(
                    props.is_empty,
                    props.beginning_sequence_number,
                    props.last_enqueued_sequence_number,
                    landed,
                );
                // Revoked meanwhile: its new owner reports it.
                if lock(&cx.shared.held).contains_key(&id) {
                    metrics::gauge!("ingest_consumer_lag", "partition" => id).set(lag as f64);
                }
            }
        }
    }
}

/// Reads the hub's partitions again for the next round (partitions added to the hub are then
/// balanced and received); the last list read stays when the read fails.
async fn refresh_partitions(cx: &Context) {
    let read = cx
        .management
        .hub(Urgency::IfIdle, management_timeout(cx))
        .await
        .and_then(|p| super::connect::numbered(&cx.event_hub, p.partition_ids));
    let mut known = lock(&cx.partition_ids);
    match read {
        Ok(ids) if ids != *known => {
            tracing::info!(
                before = known.len(),
                now = ids.len(),
                "the event hub's partitions changed"
            );
            *known = ids;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the event hub's partitions; balancing the ones read last")
        }
    }
}

/// Starts receiving a partition just claimed. One already received keeps its receiver and only
/// takes the new ETag: a second receiver would leak, and two at owner level 0 in one process
/// keep detaching each other.
async fn assign(cx: &Arc<Context>, partition_id: &str, etag: String, generation: &mut u64) {
    let Ok(p) = partition_id.parse::<i32>() else {
        return;
    };
    if let Some(held) = lock(&cx.shared.held).get_mut(partition_id) {
        held.etag = etag;
        return;
    }
    *generation += 1;
    let receiver = cx.stop.child_token();
    let (pause_tx, pause_rx) = watch::channel(false);
    lock(&cx.shared.paused).insert(p, pause_tx);
    lock(&cx.shared.held).insert(
        partition_id.to_string(),
        Held {
            etag,
            receiver: receiver.clone(),
        },
    );
    if cx
        .tx
        .send(Delivery::Assigned(p, *generation))
        .await
        .is_err()
    {
        return;
    }
    tokio::spawn(receive(
        cx.clone(),
        partition_id.to_string(),
        p,
        *generation,
        pause_rx,
        receiver,
    ));
}

async fn revoke(cx: &Arc<Context>, partition_id: &str, why: &str) {
    let Some(held) = lock(&cx.shared.held).remove(partition_id) else {
        return;
    };
    held.receiver.cancel();
    let Ok(p) = partition_id.parse::<i32>() else {
        return;
    };
    lock(&cx.shared.paused).remove(&p);
    lock(&cx.shared.landed).remove(&p);
    // Its new owner reports its lag; a last value left here could win a `max by (partition)`.
    metrics::gauge!("ingest_consumer_lag", "partition" => partition_id.to_string()).set(0.0);
    tracing::info!(partition = partition_id, why, "partition lost");
    let _ = cx.tx.send(Delivery::Revoked(p)).await;
}
