//! Subscriptions, deliveries and their attempts, and the fan-out cursor over the event log.
//! Secrets arrive sealed.

use super::sql::{Conn, Row, sql_params};
use super::{ReadConn, StoreError, WriteTx};

#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub id: String,
    pub company_id: String,
    pub owner_key_id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret_enc: Vec<u8>,
    pub payload: String,
    pub projects: Option<Vec<String>>,
    pub basic_auth_enc: Option<Vec<u8>>,
    pub rate_limit: Option<f64>,
    pub verify_url: bool,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An event from the log, as the fan-out and the deliveries need it.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub event_id: String,
    pub company_id: String,
    pub origin_key_id: Option<String>,
    pub event_type: String,
    pub entity: String,
    pub record_id: String,
    pub project_code: Option<String>,
    pub payload: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRow {
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub record_id: String,
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: Option<i64>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub last_response_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub delivery_id: &'a str,
    /// 0 for the first attempt.
    pub attempt: u32,
    pub status_code: Option<u16>,
    pub response_ms: i64,
    /// `succeeded` or `failed`.
    pub outcome: &'a str,
    pub error: Option<&'a str>,
    /// When to try again (unix ms), if at all.
    pub next: Option<i64>,
    pub now: i64,
}

/// A delivery claimed for sending, with what is needed to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: DeliveryRow,
    pub subscription: SubscriptionRow,
    pub event: EventRow,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub company_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub limit: usize,
}

pub(super) const SUB_COLUMNS: &str =
    "id, company_id, owner_key_id, name, url, events, secret_enc, payload,
    projects, basic_auth_enc, rate_limit, verify_url, status, disabled_reason,
    consecutive_failures, created_at, updated_at";

fn json_list(text: Option<String>) -> Option<Vec<String>> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn sub_from_row_at(r: &mut Row, o: usize) -> Result<SubscriptionRow, StoreError> {
    Ok(SubscriptionRow {
        id: r.text(o)?,
        company_id: r.text(o + 1)?,
        owner_key_id: r.text(o + 2)?,
        name: r.text(o + 3)?,
        url: r.text(o + 4)?,
        events: json_list(r.opt_text(o + 5)?).unwrap_or_default(),
        secret_enc: r.blob(o + 6)?,
        payload: r.text(o + 7)?,
        projects: json_list(r.opt_text(o + 8)?),
        basic_auth_enc: r.opt_blob(o + 9)?,
        rate_limit: r.opt_f64(o + 10)?,
        verify_url: r.bool(o + 11)?,
        status: r.text(o + 12)?,
        disabled_reason: r.opt_text(o + 13)?,
        consecutive_failures: r.u32(o + 14)?,
        created_at: r.i64(o + 15)?,
        updated_at: r.i64(o + 16)?,
    })
}

pub(super) fn sub_from_row(mut r: Row) -> Result<SubscriptionRow, StoreError> {
    sub_from_row_at(&mut r, 0)
}

const EVENT_COLUMNS: &str =
    "seq, event_id, company_id, origin_key_id, event_type, entity, record_id,
    project_code, payload, created_at";

fn event_from_row_at(r: &mut Row, o: usize) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        seq: r.i64(o)?,
        event_id: r.text(o + 1)?,
        company_id: r.text(o + 2)?,
        origin_key_id: r.opt_text(o + 3)?,
        event_type: r.text(o + 4)?,
        entity: r.text(o + 5)?,
        record_id: r.text(o + 6)?,
        project_code: r.opt_text(o + 7)?,
        payload: r.text(o + 8)?,
        created_at: r.i64(o + 9)?,
    })
}

fn event_from_row(mut r: Row) -> Result<EventRow, StoreError> {
    event_from_row_at(&mut r, 0)
}

pub(super) const DELIVERY_COLUMNS: &str =
    "id, subscription_id, event_id, event_type, record_id, status, attempts,
    next_attempt_at, last_status_code, last_error, last_response_ms, created_at, updated_at";

fn delivery_from_row_at(r: &mut Row, o: usize) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        id: r.text(o)?,
        subscription_id: r.text(o + 1)?,
        event_id: r.text(o + 2)?,
        event_type: r.text(o + 3)?,
        record_id: r.text(o + 4)?,
        status: r.text(o + 5)?,
        attempts: r.u32(o + 6)?,
        next_attempt_at: r.opt_i64(o + 7)?,
        last_status_code: r.opt_u16(o + 8)?,
        last_error: r.opt_text(o + 9)?,
        last_response_ms: r.opt_i64(o + 10)?,
        created_at: r.i64(o + 11)?,
        updated_at: r.i64(o + 12)?,
    })
}

pub(super) fn delivery_from_row(mut r: Row) -> Result<DeliveryRow, StoreError> {
    delivery_from_row_at(&mut r, 0)
}

fn get_subscription(
    conn: &dyn Conn,
    company: &str,
    id: &str,
) -> Result<Option<SubscriptionRow>, StoreError> {
    conn.query_opt(
        &format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ?1 AND company_id = ?2"),
        sql_params![id, company],
    )?
    .map(sub_from_row)
    .transpose()
}

fn list_subscriptions(
    conn: &dyn Conn,
    company: Option<&str>,
) -> Result<Vec<SubscriptionRow>, StoreError> {
    conn.query(
        &format!(
            "SELECT {SUB_COLUMNS} FROM subscriptions WHERE CAST(?1 AS TEXT) IS NULL OR company_id = ?1
             ORDER BY created_at, id"
        ),
        sql_params![company],
    )?
    .into_iter()
    .map(sub_from_row)
    .collect()
}

impl WriteTx<'_> {
    /// Inserts or replaces a subscription.
    pub fn save_subscription(&self, s: &SubscriptionRow) -> Result<(), StoreError> {
        let events = serde_json::to_string(&s.events).expect("strings serialize");
        let projects = s
            .projects
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("strings serialize"));
        self.conn.execute(
            &format!(
                "INSERT INTO subscriptions ({SUB_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
                 ON CONFLICT (id) DO UPDATE SET company_id = excluded.company_id,
                    owner_key_id = excluded.owner_key_id, name = excluded.name, url = excluded.url,
                    events = excluded.events, secret_enc = excluded.secret_enc,
                    payload = excluded.payload, projects = excluded.projects,
                    basic_auth_enc = excluded.basic_auth_enc, rate_limit = excluded.rate_limit,
                    verify_url = excluded.verify_url, status = excluded.status,
                    disabled_reason = excluded.disabled_reason,
                    consecutive_failures = excluded.consecutive_failures,
                    created_at = excluded.created_at, updated_at = excluded.updated_at"
            ),
            sql_params![
                &s.id,
                &s.company_id,
                &s.owner_key_id,
                &s.name,
                &s.url,
                &events,
                &s.secret_enc,
                &s.payload,
                &projects,
                &s.basic_auth_enc,
                s.rate_limit,
                s.verify_url,
                &s.status,
                &s.disabled_reason,
                s.consecutive_failures,
                s.created_at,
                s.updated_at
            ],
        )?;
        self.set_deliveries_paused(&s.id, s.status == "disabled")?;
        Ok(())
    }

    /// A disabled subscription's waiting deliveries are `paused` (so the due index never walks
    /// over them), and `pending` again once it is enabled.
    fn set_deliveries_paused(&self, subscription_id: &str, paused: bool) -> Result<(), StoreError> {
        let (from, to) = if paused {
            ("pending", "paused")
        } else {
            ("paused", "pending")
        };
        self.conn.execute(
            "UPDATE deliveries SET status = ?3 WHERE subscription_id = ?1 AND status = ?2",
            sql_params![subscription_id, from, to],
        )?;
        Ok(())
    }

    pub fn subscription(
        &self,
        company: &str,
        id: &str,
    ) -> Result<Option<SubscriptionRow>, StoreError> {
        get_subscription(self.conn, company, id)
    }

    pub fn subscription_name_taken(
        &self,
        company: &str,
        name: &str,
        except_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 FROM subscriptions WHERE company_id = ?1 AND name = ?2 AND id != ?3",
                sql_params![company, name, except_id],
            )?
            .is_some())
    }

    /// Deletes the subscription and the deliveries not yet made to it.
    pub fn delete_subscription(&self, company: &str, id: &str) -> Result<bool, StoreError> {
        let deleted = self.conn.execute(
            "DELETE FROM subscriptions WHERE id = ?1 AND company_id = ?2",
            sql_params![id, company],
        )?;
        if deleted == 1 {
            self.conn.execute(
                "DELETE FROM deliveries WHERE subscription_id = ?1 AND status IN ('pending', 'in_flight')",
                sql_params![id],
            )?;
        }
        Ok(deleted == 1)
    }

    /// Subscriptions of a company that receive new events (not disabled).
    pub fn fanout_subscriptions(&self, company: &str) -> Result<Vec<SubscriptionRow>, StoreError> {
        self.conn
            .query(
                &format!(
                    "SELECT {SUB_COLUMNS} FROM subscriptions WHERE company_id = ?1 AND status != 'disabled'"
                ),
                sql_params![company],
            )?
            .into_iter()
            .map(sub_from_row)
            .collect()
    }

    pub fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT value FROM cursors WHERE name = ?1",
                sql_params![name],
            )?
            .map(|r| r.i64(0))
            .transpose()?
            .unwrap_or(0))
    }

    pub fn set_cursor(&self, name: &str, value: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO cursors (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            sql_params![name, value],
        )?;
        Ok(())
    }

    pub fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        self.conn
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                sql_params![seq, limit],
            )?
            .into_iter()
            .map(event_from_row)
            .collect()
    }

    /// Events of a company since `since_ms`, oldest first (for `recover`).
    pub fn company_events_since(
        &self,
        company: &str,
        since_ms: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.conn
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE company_id = ?1 AND created_at >= ?2 ORDER BY seq"
                ),
                sql_params![company, since_ms],
            )?
            .into_iter()
            .map(event_from_row)
            .collect()
    }

    pub fn insert_delivery(
        &self,
        id: &str,
        subscription: &SubscriptionRow,
        event: &EventRow,
        status: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO deliveries (id, subscription_id, company_id, event_seq, event_id, event_type,
                record_id, status, attempts, next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?9, ?9)",
            sql_params![
                id,
                &subscription.id,
                &subscription.company_id,
                event.seq,
                &event.event_id,
                &event.event_type,
                &event.record_id,
                status,
                now
            ],
        )?;
        Ok(())
    }

    /// The latest delivery of `event_seq` to the subscription, if any.
    pub fn delivery_for_event(
        &self,
        subscription_id: &str,
        event_seq: i64,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        self.conn
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE subscription_id = ?1 AND event_seq = ?2
                     ORDER BY created_at DESC LIMIT 1"
                ),
                sql_params![subscription_id, event_seq],
            )?
            .map(delivery_from_row)
            .transpose()
    }

    /// Claims up to `limit` due deliveries: pending ones whose time has come, and in-flight
    /// ones whose lease ran out (their sender died). A delivery waits while an earlier one for
    /// the same record and subscription is unfinished, so each subscriber sees a record's
    /// changes in order. `accept` decides per candidate (rate limits, per-subscription caps).
    pub fn claim_due(
        &self,
        now: i64,
        lease_ms: i64,
        limit: usize,
        mut accept: impl FnMut(&SubscriptionRow) -> bool,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // A lease that ran out means its sender died: the delivery is due again.
        self.conn.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?1, lease_until = NULL
             WHERE status = 'in_flight' AND lease_until < ?1",
            sql_params![now],
        )?;
        let rows = self.conn.query(
            &format!(
                "SELECT {} , {}, {}
                 FROM deliveries d
                 JOIN subscriptions s ON s.id = d.subscription_id
                 JOIN events e ON e.seq = d.event_seq
                 WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
                   AND s.status != 'disabled'
                   AND NOT EXISTS (
                        SELECT 1 FROM deliveries p
                        WHERE p.subscription_id = d.subscription_id AND p.record_id = d.record_id
                          AND p.event_seq < d.event_seq AND p.status IN ('pending', 'in_flight'))
                 ORDER BY d.status, d.next_attempt_at, d.event_seq
                 LIMIT ?2",
                prefixed("d", DELIVERY_COLUMNS),
                prefixed("s", SUB_COLUMNS),
                prefixed("e", EVENT_COLUMNS)
            ),
            sql_params![now, limit * 4],
        )?;
        let n_delivery = DELIVERY_COLUMNS.split(',').count();
        let n_sub = SUB_COLUMNS.split(',').count();
        let mut claimed = Vec::new();
        for mut row in rows {
            if claimed.len() >= limit {
                break;
            }
            let due = DueDelivery {
                delivery: delivery_from_row_at(&mut row, 0)?,
                subscription: sub_from_row_at(&mut row, n_delivery)?,
                event: event_from_row_at(&mut row, n_delivery + n_sub)?,
            };
            if accept(&due.subscription) {
                self.conn.execute(
                    "UPDATE deliveries SET status = 'in_flight', lease_until = ?2, updated_at = ?3 WHERE id = ?1",
                    sql_params![&due.delivery.id, now + lease_ms, now],
                )?;
                claimed.push(due);
            }
        }
        Ok(claimed)
    }

    /// Records one attempt and the delivery's new state: `succeeded`, `pending` again when
    /// there is a next attempt, else `failed`.
    pub fn record_attempt(&self, a: &Attempt) -> Result<(), StoreError> {
        let Attempt {
            delivery_id,
            attempt,
            status_code,
            response_ms,
            outcome,
            error,
            next,
            now,
        } = *a;
        self.conn.execute(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, response_ms, outcome, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            sql_params![delivery_id, attempt, now, status_code, response_ms, outcome, error],
        )?;
        let status = match (outcome, next) {
            ("succeeded", _) => "succeeded",
            (_, Some(_)) => "pending",
            _ => "failed",
        };
        self.conn.execute(
            "UPDATE deliveries SET status = ?2, attempts = ?3, next_attempt_at = ?4, lease_until = NULL,
                last_status_code = ?5, last_error = ?6, last_response_ms = ?7, updated_at = ?8
             WHERE id = ?1",
            sql_params![delivery_id, status, attempt + 1, next, status_code, error, response_ms, now],
        )?;
        Ok(())
    }

    /// Counts a failed attempt against the subscription; disables it at `threshold`.
    /// Returns whether this call disabled it.
    pub fn subscription_failed(
        &self,
        id: &str,
        threshold: u32,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let count = self
            .conn
            .query_opt(
                "UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1,
                    status = CASE WHEN status = 'disabled' THEN status ELSE 'failing' END, updated_at = ?2
                 WHERE id = ?1 RETURNING consecutive_failures",
                sql_params![id, now],
            )?
            .map(|r| r.u32(0))
            .transpose()?
            .unwrap_or(0);
        if count >= threshold {
            return self.disable_subscription(
                id,
                &format!("{count} consecutive failed deliveries; last: {reason}"),
                now,
            );
        }
        Ok(false)
    }

    pub fn subscription_succeeded(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE subscriptions SET consecutive_failures = 0,
                status = CASE WHEN status = 'failing' THEN 'active' ELSE status END, updated_at = ?2
             WHERE id = ?1",
            sql_params![id, now],
        )?;
        Ok(())
    }

    /// Returns whether it was enabled before.
    pub fn disable_subscription(
        &self,
        id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let disabled = self.conn.execute(
            "UPDATE subscriptions SET status = 'disabled', disabled_reason = ?2, updated_at = ?3
             WHERE id = ?1 AND status != 'disabled'",
            sql_params![id, reason, now],
        )? == 1;
        self.set_deliveries_paused(id, true)?;
        Ok(disabled)
    }

    /// Drops up to `limit` finished deliveries (and their attempts) created before
    /// `before_ms`; returns how many deliveries.
    pub fn prune_deliveries(&self, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        let finished = "status IN ('succeeded', 'failed', 'skipped_echo')";
        self.conn.execute(
            &format!(
                "DELETE FROM delivery_attempts WHERE delivery_id IN (
                    SELECT id FROM deliveries WHERE created_at < ?1 AND {finished}
                    ORDER BY created_at LIMIT ?2)"
            ),
            sql_params![before_ms, limit],
        )?;
        self.conn.execute(
            &format!(
                "DELETE FROM deliveries WHERE id IN (
                    SELECT id FROM deliveries WHERE created_at < ?1 AND {finished}
                    ORDER BY created_at LIMIT ?2)"
            ),
            sql_params![before_ms, limit],
        )
    }

    /// Drops up to `limit` events created before `before_ms` that no delivery waits for;
    /// returns how many.
    pub fn prune_events(&self, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        self.conn.execute(
            "DELETE FROM events WHERE seq IN (
                SELECT e.seq FROM events e WHERE e.created_at < ?1
                  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq
                                  AND d.status IN ('pending', 'in_flight', 'paused'))
                ORDER BY e.created_at LIMIT ?2)",
            sql_params![before_ms, limit],
        )
    }

    /// Puts a finished delivery back in the queue (manual retry or recover).
    pub fn requeue_delivery(
        &self,
        company: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE deliveries SET next_attempt_at = ?3, lease_until = NULL, updated_at = ?3,
                status = CASE WHEN (SELECT status FROM subscriptions s WHERE s.id = subscription_id) = 'disabled'
                              THEN 'paused' ELSE 'pending' END
             WHERE id = ?1 AND company_id = ?2 AND status IN ('failed', 'succeeded', 'pending', 'paused')",
            sql_params![delivery_id, company, now],
        )? == 1)
    }
}

impl ReadConn<'_> {
    pub fn subscription(
        &self,
        company: &str,
        id: &str,
    ) -> Result<Option<SubscriptionRow>, StoreError> {
        get_subscription(self.conn, company, id)
    }

    pub fn list_subscriptions(
        &self,
        company: Option<&str>,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        list_subscriptions(self.conn, company)
    }

    pub fn list_deliveries(&self, f: &DeliveryFilter) -> Result<Vec<DeliveryRow>, StoreError> {
        self.conn
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE (CAST(?1 AS TEXT) IS NULL OR company_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR subscription_id = ?2)
                       AND (CAST(?3 AS TEXT) IS NULL OR status = ?3)
                     ORDER BY event_seq DESC, created_at DESC LIMIT ?4"
                ),
                sql_params![&f.company_id, &f.subscription_id, &f.status, f.limit.max(1)],
            )?
            .into_iter()
            .map(delivery_from_row)
            .collect()
    }

    pub fn delivery(&self, id: &str) -> Result<Option<(DeliveryRow, String)>, StoreError> {
        self.conn
            .query_opt(
                &format!("SELECT {DELIVERY_COLUMNS}, company_id FROM deliveries WHERE id = ?1"),
                sql_params![id],
            )?
            .map(|mut r| {
                let company = r.text(13)?;
                Ok((delivery_from_row(r)?, company))
            })
            .transpose()
    }

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
