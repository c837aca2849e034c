//! Retention: history older than its configured period (ingest log, kept requests, events,
//! deliveries with their attempts, idempotency keys) is deleted in small batches, each its own short write, so
//! that intake queued behind the writer never waits long.

use std::time::Duration;

use crate::clock;
use crate::config::Config;
use crate::store::{Store, StoreError, WriteTx};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// A pause between two batches, so that a large backlog of old rows is pruned gradually.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// Deletes everything past its retention period; returns how many rows went.
pub async fn prune(store: &Store, config: &Config) -> Result<usize, StoreError> {
    let now_ms = clock::now_ms();
    let retention = &config.retention;
    let batch = retention.prune_batch;
    let cutoff = |days: u32| now_ms - i64::from(days) * DAY_MS;
    let (log_before, deliveries_before, events_before) = (
        cutoff(retention.ingest_log_days),
        cutoff(retention.deliveries_days),
        cutoff(retention.events_days),
    );
    let idempotency_before = clock::now_secs() - config.idempotency_ttl_secs;
    let mut total = 0;
    total += drain(store, batch, move |tx| {
        tx.prune_ingest_log(log_before, batch)
    })
    .await?;
    total += drain(store, batch, move |tx| {
        tx.expire_idempotency(idempotency_before, batch)
    })
    .await?;
    let requests_before = cutoff(retention.requests_days);
    total += drain(store, batch, move |tx| {
        tx.prune_kept_requests(requests_before, batch)
    })
    .await?;
    total += drain(store, batch, move |tx| {
        tx.prune_deliveries(deliveries_before, batch)
    })
    .await?;
    total += drain(store, batch, move |tx| {
        tx.prune_events(events_before, batch)
    })
    .await?;
    if total > 0 {
        tracing::info!(rows = total, "pruned history past its retention period");
    }
    Ok(total)
}

/// Runs `step` until it deletes fewer than a full batch.
async fn drain(
    store: &Store,
    batch: usize,
    step: impl Fn(&WriteTx) -> Result<usize, StoreError> + Clone + Send + 'static,
) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let step = step.clone();
        let deleted = store.write(move |tx| step(tx)).await?;
        total += deleted;
        if deleted < batch {
            return Ok(total);
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
}
