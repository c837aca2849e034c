//! Writes what the delivery worker did, in batches and without making any send wait: delivery
//! rows, attempts, subscriptions' new states and cursors, operational events. Items are written
//! in the order they were submitted (a failed batch is tried again before anything after it),
//! so a cursor never reaches the store before the rows of the events it passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Outbound;
use super::health::Health;
use crate::store::{AttemptRecord, DeliveryRow, DeliveryStatus, NewEvent, StoreError, WriteTx};

/// Most items written in one transaction.
const BATCH: usize = 2_000;
/// How long a failed batch waits before it is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// Something to write.
#[derive(Debug, Clone)]
pub(super) enum Item {
    /// A new delivery row (sent once, queued, or skipped as an echo), with its attempt.
    NewDelivery {
        delivery: DeliveryRow,
        company_id: String,
        attempt: Option<AttemptRecord>,
    },
    /// A claimed delivery after another attempt.
    Attempted {
        delivery: DeliveryRow,
        attempt: AttemptRecord,
    },
    /// A claimed delivery given back without an attempt (throttled), due again at `at`.
    Released { delivery_id: String, at: i64 },
    /// A subscription's health changed.
    Health {
        subscription_id: String,
        health: Health,
    },
    /// Every event of the subscription up to `position` is handled.
    Cursor {
        subscription_id: String,
        position: i64,
    },
    /// An operational event (`webhook.disabled`, `delivery.exhausted`) for the company's other
    /// subscribers.
    Event(OwnedEvent),
    /// Asks whether the subscription still has unfinished deliveries of the record; answered
    /// after the batch holding this item committed.
    CheckRecord {
        subscription_id: String,
        record_id: String,
    },
}

/// An event to append, owning its fields.
#[derive(Debug, Clone)]
pub(super) struct OwnedEvent {
    pub event_id: String,
    pub company_id: String,
    pub about_subscription_id: String,
    pub event_type: &'static str,
    pub entity: &'static str,
    pub record_id: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

/// The answer to a [`Item::CheckRecord`]: the record has no unfinished deliveries left, as of
/// every item up to `ticket` (the check's own).
#[derive(Debug)]
pub(super) struct RecordClear {
    pub subscription_id: String,
    pub record_id: String,
    pub ticket: u64,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(super) struct Recorder {
    items: mpsc::UnboundedSender<(u64, Item)>,
    submitted: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl Recorder {
    /// Starts the writing task; record checks are answered on `clears`.
    pub(super) fn spawn(
        out: Arc<Outbound>,
        clears: mpsc::UnboundedSender<RecordClear>,
    ) -> Recorder {
        let (items, queue) = mpsc::unbounded_channel();
        let written = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_loop(out, queue, clears, written.clone()));
        Recorder {
            items,
            submitted: Arc::new(AtomicU64::new(0)),
            written,
        }
    }

    /// Queues `item`; returns its ticket (items are written in ticket order).
    pub(super) fn submit(&self, item: Item) -> u64 {
        let ticket = self.submitted.fetch_add(1, Ordering::SeqCst) + 1;
        if self.items.send((ticket, item)).is_err() {
            tracing::error!("the delivery recorder stopped; an item was not written");
        }
        ticket
    }

    /// Whether the item with this ticket is written.
    pub(super) fn is_written(&self, ticket: u64) -> bool {
        self.written.load(Ordering::SeqCst) >= ticket
    }

    /// Items submitted and not yet written (the worker slows down when this grows).
    pub(super) fn backlog(&self) -> u64 {
        self.submitted
            .load(Ordering::SeqCst)
            .saturating_sub(self.written.load(Ordering::SeqCst))
    }

    /// Waits until everything submitted so far is written (shutdown, tests).
    pub(super) async fn flush(&self) {
        let target = self.submitted.load(Ordering::SeqCst);
        while self.written.load(Ordering::SeqCst) < target && !self.items.is_closed() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

async fn write_loop(
    out: Arc<Outbound>,
    mut queue: mpsc::UnboundedReceiver<(u64, Item)>,
    clears: mpsc::UnboundedSender<RecordClear>,
    written: Arc<AtomicU64>,
) {
    let mut batch: Vec<(u64, Item)> = Vec::new();
    loop {
        if batch.is_empty() {
            match queue.recv().await {
                Some(item) => batch.push(item),
                None => return,
            }
        }
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let items = Arc::new(std::mem::take(&mut batch));
        let job_items = items.clone();
        let node = out.node_id.clone();
        match out
            .store
            .write(move |tx| write_batch(tx, &job_items, &node))
            .await
        {
            Ok(cleared) => {
                let last = items.last().map_or(0, |(ticket, _)| *ticket);
                written.store(last, Ordering::SeqCst);
                if items.iter().any(|(_, item)| item.queues_a_delivery()) {
                    // The worker looks at the retry queue again now that the rows are there.
                    out.wake.notify_one();
                }
                for clear in cleared {
                    let _ = clears.send(clear);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, items = items.len(), "recording deliveries failed; trying again");
                batch = Arc::try_unwrap(items).unwrap_or_else(|shared| (*shared).clone());
                tokio::time::sleep(RETRY_AFTER_FAILURE).await;
            }
        }
    }
}

/// Writes every item in order; returns the records found clear.
fn write_batch(
    tx: &WriteTx,
    items: &[(u64, Item)],
    node: &str,
) -> Result<Vec<RecordClear>, StoreError> {
    let mut cursors: Vec<(&str, i64)> = Vec::new();
    let mut cleared = Vec::new();
    for (ticket, item) in items {
        match item {
            Item::NewDelivery {
                delivery,
                company_id,
                attempt,
            } => {
                tx.insert_delivery(delivery, company_id)?;
                if let Some(attempt) = attempt {
                    tx.insert_attempt(attempt)?;
                }
            }
            Item::Attempted { delivery, attempt } => {
                tx.update_delivery(delivery)?;
                tx.insert_attempt(attempt)?;
            }
            Item::Released { delivery_id, at } => tx.release_delivery(delivery_id, *at)?,
            Item::Health {
                subscription_id,
                health,
            } => tx.set_subscription_state(
                subscription_id,
                health.status,
                health.consecutive_failures,
                health.disabled_reason.as_deref(),
                crate::clock::now_ms(),
            )?,
            Item::Cursor {
                subscription_id,
                position,
            } => match cursors.iter_mut().find(|(id, _)| id == subscription_id) {
                Some(entry) => entry.1 = entry.1.max(*position),
                None => cursors.push((subscription_id, *position)),
            },
            Item::Event(e) => {
                tx.insert_event(&NewEvent {
                    event_id: &e.event_id,
                    company_id: &e.company_id,
                    origin_key_id: None,
                    inbound_event_id: None,
                    about_subscription_id: Some(&e.about_subscription_id),
                    event_type: e.event_type,
                    entity: e.entity,
                    record_id: &e.record_id,
                    project_code: None,
                    payload: &e.payload,
                    created_at: e.created_at,
                })?;
            }
            Item::CheckRecord {
                subscription_id,
                record_id,
            } => {
                // Clear as of this item: rows submitted after it are not counted.
                if !tx.record_has_unfinished(subscription_id, record_id)? {
                    cleared.push(RecordClear {
                        subscription_id: subscription_id.clone(),
                        record_id: record_id.clone(),
                        ticket: *ticket,
                    });
                }
            }
        }
    }
    // After the rows: a cursor passes only events whose rows are written.
    for (subscription_id, position) in cursors {
        tx.advance_cursor(subscription_id, node, position)?;
    }
    Ok(cleared)
}

impl Item {
    /// Whether writing it leaves a delivery waiting in the retry queue.
    fn queues_a_delivery(&self) -> bool {
        match self {
            Item::NewDelivery { delivery, .. } | Item::Attempted { delivery, .. } => {
                delivery.status == DeliveryStatus::Pending
            }
            Item::Released { .. } => true,
            _ => false,
        }
    }
}
