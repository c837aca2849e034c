//! The event log, which is also the transactional outbox: applied changes append events in
//! their own transaction; the outbound side reads them in their *published* order.
//!
//! An event's `seq` is assigned when it is inserted, so on PostgreSQL, where several
//! transactions insert at once, a lower `seq` can become visible after a higher one: a reader
//! that moved a cursor past the higher one would never see the lower. So readers do not follow
//! `seq`; they follow `position`, which [`WriteTx::publish_events`] assigns, one pass at a time
//! (serialized by a lock), to events whose transactions have committed. Positions therefore
//! become visible in order. Two changes of one record commit in order (the second waits for the
//! first's row lock) and are published in that order.

use super::sql::{Dialect, Row, sql_params};
use super::{ReadConn, StoreError, WriteTx};

/// An event from the log, as the outbound side needs it.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    /// The published order (0 while unpublished).
    pub position: i64,
    pub event_id: String,
    pub company_id: String,
    pub origin_key_id: Option<String>,
    /// For operational events about a subscription: that subscription, which never receives
    /// them.
    pub about_subscription_id: Option<String>,
    pub event_type: String,
    pub entity: String,
    pub record_id: String,
    pub project_code: Option<String>,
    pub payload: String,
    pub created_at: i64,
}

pub(super) const EVENT_COLUMNS: &str = "seq, position, event_id, company_id,
    origin_key_id, about_subscription_id, event_type, entity, record_id, project_code, payload,
    created_at";

pub(super) fn event_from_row_at(r: &mut Row, o: usize) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        seq: r.i64(o)?,
        position: r.opt_i64(o + 1)?.unwrap_or(0),
        event_id: r.text(o + 2)?,
        company_id: r.text(o + 3)?,
        origin_key_id: r.opt_text(o + 4)?,
        about_subscription_id: r.opt_text(o + 5)?,
        event_type: r.text(o + 6)?,
        entity: r.text(o + 7)?,
        record_id: r.text(o + 8)?,
        project_code: r.opt_text(o + 9)?,
        payload: r.text(o + 10)?,
        created_at: r.i64(o + 11)?,
    })
}

fn event_from_row(mut r: Row) -> Result<EventRow, StoreError> {
    event_from_row_at(&mut r, 0)
}

/// The advisory lock that serializes publishing passes across nodes.
const PUBLISH_LOCK: i64 = 7_201_514_474_591_238;

impl WriteTx<'_> {
    /// Gives the next positions to up to `limit` committed, unpublished events, in the order
    /// they were inserted. Returns how many were published.
    pub fn publish_events(&self, limit: usize) -> Result<usize, StoreError> {
        if self.dialect() == Dialect::Postgres {
            // One pass at a time; a node that finds another one publishing leaves it to it.
            let locked = self
                .conn
                .query_one(
                    "SELECT pg_try_advisory_xact_lock(?1)",
                    sql_params![PUBLISH_LOCK],
                )?
                .bool(0)?;
            if !locked {
                return Ok(0);
            }
        }
        let last = self
            .conn
            .query_one("SELECT COALESCE(MAX(position), 0) FROM events", &[])?
            .i64(0)?;
        self.conn.execute(
            "UPDATE events SET position = ?1 + pending.n
             FROM (SELECT seq, ROW_NUMBER() OVER (ORDER BY seq) AS n
                   FROM events WHERE position IS NULL ORDER BY seq LIMIT ?2) AS pending
             WHERE events.seq = pending.seq",
            sql_params![last, limit],
        )
    }

    /// The newest published position of a company's events (where a new or re-enabled
    /// subscription starts).
    pub(crate) fn latest_position(&self, company: &str) -> Result<i64, StoreError> {
        self.conn
            .query_one(
                "SELECT COALESCE(MAX(position), 0) FROM events WHERE company_id = ?1",
                sql_params![company],
            )?
            .i64(0)
    }

    /// Drops up to `limit` events created before `before_ms` that no delivery waits for;
    /// returns how many.
    pub(crate) fn prune_events(&self, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        self.conn.execute(
            concat!(
                "DELETE FROM events WHERE seq IN (
                    SELECT e.seq FROM events e WHERE e.created_at < ?1 AND e.position IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq AND ",
                super::deliveries::unfinished!("d.status"),
                ")
                    ORDER BY e.created_at LIMIT ?2)"
            ),
            sql_params![before_ms, limit],
        )
    }

    /// Events of a company since `since_ms`, oldest first (for `recover`).
    pub(crate) fn company_events_since(
        &self,
        company: &str,
        since_ms: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.conn
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE company_id = ?1 AND created_at >= ?2 AND position IS NOT NULL
                     ORDER BY position"
                ),
                sql_params![company, since_ms],
            )?
            .into_iter()
            .map(event_from_row)
            .collect()
    }
}

impl ReadConn<'_> {
    /// A company's published events after `position`, in order.
    pub fn events_after(
        &self,
        company: &str,
        position: i64,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.conn
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE company_id = ?1 AND position > ?2 ORDER BY position LIMIT ?3"
                ),
                sql_params![company, position, limit],
            )?
            .into_iter()
            .map(event_from_row)
            .collect()
    }

    /// Whether any committed event waits to be published.
    pub(crate) fn has_unpublished_events(&self) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt("SELECT 1 FROM events WHERE position IS NULL LIMIT 1", &[])?
            .is_some())
    }
}
