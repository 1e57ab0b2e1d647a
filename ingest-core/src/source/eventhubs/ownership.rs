//! Load balancing: each round reads the ownership records, renews what this replica holds,
//! revokes what another replica took, and claims at most one more partition toward a fair
//! share ([`super::balance::plan`] decides, this module does the I/O).
//!
//! Invariant: a partition is assigned to the loop only after this replica's conditional claim
//! won, and revoked (its receiver cancelled) as soon as the claim is found lost.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::balance;
use super::context::{random, Context};
use super::partition::receive;
use super::receiver::{lock, Delivery, Held};

/// Load balancing: a round every interval, and at once after a round that claimed a partition
/// (so a replica reaches its share quickly). Errors are logged; the next round retries.
pub(super) async fn balance_loop(cx: Arc<Context>, stop: CancellationToken) {
    let mut generation = 0u64;
    loop {
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
        }
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
    let plan = balance::plan(
        &cx.partition_ids,
        &records,
        &cx.owner_id,
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

async fn assign(cx: &Arc<Context>, partition_id: &str, etag: String, generation: &mut u64) {
    let Ok(p) = partition_id.parse::<i32>() else {
        return;
    };
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
    tracing::info!(partition = partition_id, why, "partition lost");
    let _ = cx.tx.send(Delivery::Revoked(p)).await;
}
