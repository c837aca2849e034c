//! Deliveries (one row per event and subscription that was sent, skipped as an echo, or is
//! waiting for a retry) and every attempt made, with what was sent and answered.
//!
//! Rows that are still to be sent (`pending`, `in_flight`, `paused`) form the retry queue:
//! workers on any node claim due ones with a lease, skipping rows another node holds.

use super::events::{EVENT_COLUMNS, EventRow, event_from_row_at};
use super::sql::{Param, Row, sql_params};
use super::subscriptions::{SUB_COLUMNS, SubscriptionRow, sub_from_row_at};
use super::{ReadConn, StoreError, WriteTx};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or behind an earlier delivery of the same record).
    Pending,
    /// Claimed by a worker until its lease runs out.
    InFlight,
    /// Waiting, but its subscription is disabled.
    Paused,
    Succeeded,
    /// Given up: a permanent failure, or every retry failed.
    Failed,
    /// Not sent: the event was caused by the subscription owner's own key (echo prevention).
    SkippedEcho,
}

impl DeliveryStatus {
    pub(crate) const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Pending,
        DeliveryStatus::InFlight,
        DeliveryStatus::Paused,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
        DeliveryStatus::SkippedEcho,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::InFlight => "in_flight",
            DeliveryStatus::Paused => "paused",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::SkippedEcho => "skipped_echo",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether it may still be sent (a later change of the same record waits for it).
    pub fn is_unfinished(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Pending | DeliveryStatus::InFlight | DeliveryStatus::Paused
        )
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRow {
    pub id: String,
    pub subscription_id: String,
    pub event_seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub record_id: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<i64>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub last_response_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One attempt, as recorded: what was sent and what came back.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AttemptRecord {
    pub delivery_id: String,
    /// 0 for the first attempt.
    pub attempt: u32,
    /// When it was made (unix ms).
    pub at: i64,
    pub duration_ms: i64,
    /// `succeeded` or `failed`.
    pub outcome: String,
    pub status_code: Option<u16>,
    /// Why it failed: `http_status`, `timeout`, `connection_refused`, `dns`, `tls`,
    /// `ssrf_refused`, `invalid_url`, `connection`, `secret`.
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// The request's headers as a JSON object, secrets removed.
    pub request_headers: String,
    /// The response's headers as a JSON object.
    pub response_headers: Option<String>,
    /// The first bytes of the response body (at most 4 KiB).
    pub response_body: Option<String>,
}

/// A delivery claimed for sending, with what is needed to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: DeliveryRow,
    pub subscription: SubscriptionRow,
    pub event: EventRow,
}

/// Which deliveries a list or a bulk retry is about. Unset fields match everything.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub company_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<String>,
    /// Created at or after (unix ms).
    pub since_ms: Option<i64>,
    pub limit: usize,
}

/// Whether the delivery is unfinished, given its status column (`"status"`, `"d.status"`),
/// written exactly as the partial index `deliveries_unfinished` is: a query must name its
/// predicate the same way for the planner to use it (migration 6 says why it is not an IN
/// list). A literal, so that queries stay `concat!`ed constants.
macro_rules! unfinished {
    ($status:literal) => {
        concat!(
            "(",
            $status,
            " = 'pending' OR ",
            $status,
            " = 'in_flight' OR ",
            $status,
            " = 'paused')"
        )
    };
}
pub(super) use unfinished;

/// The columns of a [`DeliveryRow`], in its order; a macro so that statements written for
/// every delivery can be `concat!`ed constants.
macro_rules! delivery_columns {
    () => {
        "id, subscription_id, event_seq, event_id, event_type, record_id, status, attempts,
        next_attempt_at, last_status_code, last_error, last_response_ms, created_at, updated_at"
    };
}
const DELIVERY_COLUMNS: &str = delivery_columns!();

fn delivery_from_row_at(r: &mut Row, o: usize) -> Result<DeliveryRow, StoreError> {
    let status = r.text(o + 6)?;
    Ok(DeliveryRow {
        id: r.text(o)?,
        subscription_id: r.text(o + 1)?,
        event_seq: r.i64(o + 2)?,
        event_id: r.text(o + 3)?,
        event_type: r.text(o + 4)?,
        record_id: r.text(o + 5)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery status {status:?}")))?,
        attempts: r.u32(o + 7)?,
        next_attempt_at: r.opt_i64(o + 8)?,
        last_status_code: r.opt_u16(o + 9)?,
        last_error: r.opt_text(o + 10)?,
        last_response_ms: r.opt_i64(o + 11)?,
        created_at: r.i64(o + 12)?,
        updated_at: r.i64(o + 13)?,
    })
}

fn delivery_from_row(mut r: Row) -> Result<DeliveryRow, StoreError> {
    delivery_from_row_at(&mut r, 0)
}

/// The filter's conditions with only the fields that are set (so that an index applies).
fn conditions<'f>(f: &'f DeliveryFilter, params: &mut Vec<Param<'f>>) -> String {
    let mut sql = String::new();
    let mut add = |condition: &str, value: Param<'f>| {
        params.push(value);
        sql.push_str(&format!(" AND {condition} ?{}", params.len()));
    };
    if let Some(company) = &f.company_id {
        add("company_id =", Param::Text(company));
    }
    if let Some(subscription) = &f.subscription_id {
        add("subscription_id =", Param::Text(subscription));
    }
    if let Some(status) = f.status {
        add("status =", Param::Text(status.as_str()));
    }
    if let Some(event_type) = &f.event_type {
        add("event_type =", Param::Text(event_type));
    }
    if let Some(since) = f.since_ms {
        add("created_at >=", Param::Int(since));
    }
    sql
}

impl WriteTx<'_> {
    /// Inserts a delivery as it stands (queued, skipped, or already attempted).
    pub(crate) fn insert_delivery(
        &self,
        d: &DeliveryRow,
        company_id: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            concat!(
                "INSERT INTO deliveries (",
                delivery_columns!(),
                ", company_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ),
            sql_params![
                &d.id,
                &d.subscription_id,
                d.event_seq,
                &d.event_id,
                &d.event_type,
                &d.record_id,
                d.status.as_str(),
                d.attempts,
                d.next_attempt_at,
                d.last_status_code,
                &d.last_error,
                d.last_response_ms,
                d.created_at,
                d.updated_at,
                company_id
            ],
        )?;
        Ok(())
    }

    /// Records where a claimed delivery stands after an attempt.
    pub(crate) fn update_delivery(&self, d: &DeliveryRow) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE deliveries SET status = ?2, attempts = ?3, next_attempt_at = ?4,
                lease_until = NULL, last_status_code = ?5, last_error = ?6,
                last_response_ms = ?7, updated_at = ?8
             WHERE id = ?1",
            sql_params![
                &d.id,
                d.status.as_str(),
                d.attempts,
                d.next_attempt_at,
                d.last_status_code,
                &d.last_error,
                d.last_response_ms,
                d.updated_at
            ],
        )?;
        Ok(())
    }

    pub(crate) fn insert_attempt(&self, a: &AttemptRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, response_ms, outcome,
                status_code, error_kind, error, request_headers, response_headers, response_body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            sql_params![
                &a.delivery_id,
                a.attempt,
                a.at,
                a.duration_ms,
                &a.outcome,
                a.status_code,
                &a.error_kind,
                &a.error,
                &a.request_headers,
                &a.response_headers,
                &a.response_body
            ],
        )?;
        Ok(())
    }

    /// The latest delivery of the event (`seq`) to the subscription, if any.
    pub(crate) fn delivery_for_event(
        &self,
        subscription_id: &str,
        event_seq: i64,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        self.conn
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE subscription_id = ?1 AND event_seq = ?2
                     ORDER BY created_at DESC LIMIT 1"
                ),
                sql_params![subscription_id, event_seq],
            )?
            .map(delivery_from_row)
            .transpose()
    }

    /// Claims up to `limit` due deliveries with a lease until `now + lease_ms`: pending ones
    /// whose time has come, and in-flight ones whose lease ran out (their sender died). A
    /// delivery waits while an earlier one of the same record to the same subscription is
    /// unfinished, so each subscriber sees a record's changes in order. Rows another node is
    /// claiming at the same moment are skipped, not waited for.
    ///
    /// `due_by` is the retry schedule's clock (tests move it forward); leases are judged by the
    /// wall clock `now`, so that moving the schedule never expires a lease of a send still in
    /// flight.
    pub(crate) fn claim_due(
        &self,
        due_by: i64,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.conn.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?1, lease_until = NULL
             WHERE status = 'in_flight' AND lease_until < ?2",
            sql_params![due_by, now],
        )?;
        let rows = self.conn.query(
            &format!(
                "SELECT {}, {}, {}
                 FROM deliveries d
                 JOIN subscriptions s ON s.id = d.subscription_id
                 JOIN events e ON e.seq = d.event_seq
                 WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
                   AND NOT EXISTS (
                        SELECT 1 FROM deliveries p
                        WHERE p.subscription_id = d.subscription_id AND p.record_id = d.record_id
                          AND p.event_seq < d.event_seq
                          AND {})
                 ORDER BY d.next_attempt_at, d.event_seq
                 LIMIT ?2{}",
                prefixed("d", DELIVERY_COLUMNS),
                prefixed("s", SUB_COLUMNS),
                prefixed("e", EVENT_COLUMNS),
                unfinished!("p.status"),
                self.dialect().skip_locked_of("d"),
            ),
            sql_params![due_by, limit],
        )?;
        let n_delivery = DELIVERY_COLUMNS.split(',').count();
        let n_sub = SUB_COLUMNS.split(',').count();
        let mut claimed = Vec::with_capacity(rows.len());
        for mut row in rows {
            let mut due = DueDelivery {
                delivery: delivery_from_row_at(&mut row, 0)?,
                subscription: sub_from_row_at(&mut row, n_delivery)?,
                event: event_from_row_at(&mut row, n_delivery + n_sub)?,
            };
            self.conn.execute(
                "UPDATE deliveries SET status = 'in_flight', lease_until = ?2, updated_at = ?3
                 WHERE id = ?1",
                sql_params![&due.delivery.id, now + lease_ms, due_by],
            )?;
            due.delivery.status = DeliveryStatus::InFlight;
            claimed.push(due);
        }
        Ok(claimed)
    }

    /// Gives a claimed delivery back, due again at `at` (it was throttled, not attempted).
    pub(crate) fn release_delivery(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, lease_until = NULL
             WHERE id = ?1 AND status = 'in_flight'",
            sql_params![id, at],
        )?;
        Ok(())
    }

    /// Whether the subscription still has an unfinished delivery of the record.
    pub(crate) fn record_has_unfinished(
        &self,
        subscription_id: &str,
        record_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt(
                concat!(
                    "SELECT 1 FROM deliveries WHERE subscription_id = ?1 AND record_id = ?2 AND ",
                    unfinished!("status"),
                    " LIMIT 1"
                ),
                sql_params![subscription_id, record_id],
            )?
            .is_some())
    }

    /// The records of which the subscription has unfinished deliveries.
    pub(crate) fn records_with_unfinished(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.conn
            .query(
                concat!(
                    "SELECT DISTINCT record_id FROM deliveries WHERE subscription_id = ?1 AND ",
                    unfinished!("status")
                ),
                sql_params![subscription_id],
            )?
            .into_iter()
            .map(|mut r| r.text(0))
            .collect()
    }

    /// Puts a finished delivery back in the queue (manual retry or recover); returns it as it
    /// was left, `None` when there is no such finished delivery.
    pub(crate) fn requeue_delivery(
        &self,
        company: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        self.conn
            .query_opt(
                &format!(
                    "UPDATE deliveries SET next_attempt_at = ?3, lease_until = NULL, updated_at = ?3,
                        status = CASE WHEN (SELECT status FROM subscriptions s WHERE s.id = subscription_id) = 'disabled'
                                      THEN 'paused' ELSE 'pending' END
                     WHERE id = ?1 AND company_id = ?2
                       AND status IN ('failed', 'succeeded', 'pending', 'paused')
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                sql_params![delivery_id, company, now],
            )?
            .map(delivery_from_row)
            .transpose()
    }

    /// Puts every finished delivery matching the filter back in the queue (bulk retry; at
    /// most `filter.limit`); returns how many.
    pub(crate) fn requeue_deliveries(
        &self,
        f: &DeliveryFilter,
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut params = vec![Param::Int(now)];
        let filter = conditions(f, &mut params);
        params.push(Param::from(f.limit.max(1)));
        let limit = params.len();
        self.conn.execute(
            &format!(
                "UPDATE deliveries SET next_attempt_at = ?1, lease_until = NULL, updated_at = ?1,
                    status = CASE WHEN (SELECT status FROM subscriptions s WHERE s.id = subscription_id) = 'disabled'
                                  THEN 'paused' ELSE 'pending' END
                 WHERE id IN (SELECT id FROM deliveries
                              WHERE status IN ('failed', 'succeeded', 'pending', 'paused'){filter}
                              ORDER BY created_at LIMIT ?{limit})"
            ),
            &params,
        )
    }

    /// Drops up to `limit` finished deliveries (and their attempts) created before
    /// `before_ms`; returns how many deliveries.
    pub(crate) fn prune_deliveries(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let old = "SELECT id FROM deliveries WHERE created_at < ?1
                   AND status IN ('succeeded', 'failed', 'skipped_echo')
                   ORDER BY created_at LIMIT ?2";
        self.conn.execute(
            &format!("DELETE FROM delivery_attempts WHERE delivery_id IN ({old})"),
            sql_params![before_ms, limit],
        )?;
        self.conn.execute(
            &format!("DELETE FROM deliveries WHERE id IN ({old})"),
            sql_params![before_ms, limit],
        )
    }
}

impl ReadConn<'_> {
    /// Deliveries matching the filter, newest first.
    pub(crate) fn list_deliveries(
        &self,
        f: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut params = Vec::new();
        let filter = conditions(f, &mut params);
        params.push(Param::from(f.limit.max(1)));
        self.conn
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE 1 = 1{filter}
                     ORDER BY event_seq DESC, created_at DESC LIMIT ?{}",
                    params.len()
                ),
                &params,
            )?
            .into_iter()
            .map(delivery_from_row)
            .collect()
    }

    /// The delivery and its company.
    pub(crate) fn delivery(&self, id: &str) -> Result<Option<(DeliveryRow, String)>, StoreError> {
        self.conn
            .query_opt(
                &format!("SELECT {DELIVERY_COLUMNS}, company_id FROM deliveries WHERE id = ?1"),
                sql_params![id],
            )?
            .map(|mut r| {
                let company = r.text(14)?;
                Ok((delivery_from_row(r)?, company))
            })
            .transpose()
    }

    /// Every attempt of a delivery, oldest first.
    pub(crate) fn delivery_attempts(
        &self,
        delivery_id: &str,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.conn
            .query(
                "SELECT delivery_id, attempt, at, response_ms, outcome, status_code, error_kind,
                    error, request_headers, response_headers, response_body
                 FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY attempt, id",
                sql_params![delivery_id],
            )?
            .into_iter()
            .map(|mut r| {
                Ok(AttemptRecord {
                    delivery_id: r.text(0)?,
                    attempt: r.u32(1)?,
                    at: r.i64(2)?,
                    duration_ms: r.i64(3)?,
                    outcome: r.text(4)?,
                    status_code: r.opt_u16(5)?,
                    error_kind: r.opt_text(6)?,
                    error: r.opt_text(7)?,
                    request_headers: r.opt_text(8)?.unwrap_or_else(|| "{}".into()),
                    response_headers: r.opt_text(9)?,
                    response_body: r.opt_text(10)?,
                })
            })
            .collect()
    }

    /// When the retry queue next has something to do: the earliest pending attempt or lease
    /// expiry (unix ms), or `None` when it is empty.
    pub(crate) fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        let pending = self
            .conn
            .query_one(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'",
                &[],
            )?
            .opt_i64(0)?;
        let leased = self
            .conn
            .query_one(
                "SELECT MIN(lease_until) FROM deliveries WHERE status = 'in_flight'",
                &[],
            )?
            .opt_i64(0)?;
        Ok(match (pending, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Deliveries still to be sent (for metrics).
    pub fn pending_deliveries(&self) -> Result<i64, StoreError> {
        self.conn
            .query_one(
                "SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'in_flight')",
                &[],
            )?
            .i64(0)
    }
}

fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
