//! Reads for the operator console: inbound outcomes per time bucket and the lag of recent
//! successful deliveries (its charts), and a subscription's latest deliveries (its health).
//! Each costs what it returns or what its window holds, not what the tables hold.

use super::sql::{Param, sql_params};
use super::{ReadConn, StoreError};

/// How one delivery stands: what a subscription's health is computed from.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub id: String,
    pub status: String,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// Attempts read per step of the walk back from the newest one.
const ATTEMPT_PAGE: i64 = 2_000;
/// Attempts are stored in commit order but stamped when they were made, so an attempt may be
/// a little older than one stored before it; the walk goes this far past the window's start.
const CLOCK_SLACK_MS: i64 = 60_000;

impl ReadConn<'_> {
    /// How many requests were answered with each status in each bucket of `bucket_ms` from
    /// `start_ms` on (of one company, or all): `(bucket index, status, count)`.
    pub(crate) fn ingest_outcome_counts(
        &self,
        company: Option<&str>,
        start_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, u16, i64)>, StoreError> {
        // The window's first id, from the received_at index. `id + 0`: a bare MIN(id) makes
        // SQLite walk the whole table by rowid instead.
        let first = self
            .conn
            .query_one(
                "SELECT MIN(id + 0) FROM ingest_log WHERE received_at >= ?1",
                sql_params![start_ms],
            )?
            .opt_i64(0)?;
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let mut params = vec![
            Param::Int(start_ms),
            Param::Int(bucket_ms.max(1)),
            Param::Int(first),
        ];
        let mut sql = String::from(
            "SELECT (received_at - ?1) / ?2, status, COUNT(*) FROM ingest_log
             WHERE id >= ?3 AND received_at >= ?1",
        );
        // With a company, its (company_id, id) index walks just the window's rows.
        if let Some(company) = company {
            params.push(Param::Text(company));
            sql.push_str(" AND company_id = ?4");
        }
        sql.push_str(" GROUP BY 1, 2");
        self.conn
            .query(&sql, &params)?
            .into_iter()
            .map(|r| Ok((r.i64(0)?, r.u16(1)?, r.i64(2)?)))
            .collect()
    }

    /// `(attempt time ms, lag ms)` of the successful delivery attempts since `since_ms` (of one
    /// company, or all), the lag running from the event's creation to the receiver's 2xx; at
    /// most `cap`. Walks the attempts back from the newest, a page of ids at a time, and stops
    /// at the first page older than the window.
    pub(crate) fn delivery_lags_since(
        &self,
        company: Option<&str>,
        since_ms: i64,
        cap: usize,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let bounds = self.conn.query_one(
            "SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM delivery_attempts",
            &[],
        )?;
        let (first, mut upper) = (bounds.i64(0)?, bounds.i64(1)?);
        let mut found = Vec::new();
        while upper >= first && upper > 0 && found.len() < cap {
            let lower = upper - ATTEMPT_PAGE;
            let rows = self.conn.query(
                "SELECT a.at, a.outcome, d.company_id, e.created_at
                 FROM delivery_attempts a
                 JOIN deliveries d ON d.id = a.delivery_id
                 JOIN events e ON e.seq = d.event_seq
                 WHERE a.id > ?1 AND a.id <= ?2",
                sql_params![lower, upper],
            )?;
            let mut oldest = i64::MAX;
            for mut row in rows {
                let at = row.i64(0)?;
                oldest = oldest.min(at);
                let succeeded = row.text(1)? == "succeeded";
                let owner = row.text(2)?;
                if at >= since_ms && succeeded && company.is_none_or(|c| c == owner) {
                    found.push((at, (at - row.i64(3)?).max(0)));
                }
            }
            if oldest < since_ms - CLOCK_SLACK_MS {
                break;
            }
            upper = lower;
        }
        found.truncate(cap);
        Ok(found)
    }

    /// The subscription's `n` newest deliveries, newest first (one walk of the
    /// `(subscription_id, event_seq)` index).
    pub(crate) fn latest_delivery_outcomes(
        &self,
        subscription_id: &str,
        n: usize,
    ) -> Result<Vec<DeliveryOutcome>, StoreError> {
        self.conn
            .query(
                "SELECT id, status, last_status_code, last_error, updated_at FROM deliveries
                 WHERE subscription_id = ?1 ORDER BY event_seq DESC LIMIT ?2",
                sql_params![subscription_id, n.max(1)],
            )?
            .into_iter()
            .map(|mut r| {
                Ok(DeliveryOutcome {
                    id: r.text(0)?,
                    status: r.text(1)?,
                    last_status_code: r.opt_u16(2)?,
                    last_error: r.opt_text(3)?,
                    updated_at: r.i64(4)?,
                })
            })
            .collect()
    }
}
