//! Reads for the operator console's charts: recent ingest outcomes and delivery lags. Both walk
//! their table backwards from the newest row and stop once rows are older than the window, so
//! their cost follows the traffic of the window, not the size of the table.

use super::{ReadConn, StoreError};

/// Rows are committed in id order but stamped when their request began, so a row may be a
/// little older than one committed before it; the walk goes this far past the window's start.
const CLOCK_SLACK_MS: i64 = 10_000;

impl ReadConn {
    /// `(received_at ms, status)` of the ingest-log rows received since `since_ms` (of one
    /// company, or all), newest first, at most `cap`.
    pub fn ingest_outcomes_since(
        &self,
        company: Option<&str>,
        since_ms: i64,
        cap: usize,
    ) -> Result<Vec<(i64, u16)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT received_at, status, company_id FROM ingest_log ORDER BY id DESC",
        )?;
        let mut rows = stmt.query([])?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let at: i64 = row.get(0)?;
            if at < since_ms - CLOCK_SLACK_MS || found.len() >= cap {
                break;
            }
            let owner: Option<String> = row.get(2)?;
            if at >= since_ms && company.is_none_or(|c| owner.as_deref() == Some(c)) {
                found.push((at, row.get(1)?));
            }
        }
        Ok(found)
    }

    /// `(attempt time ms, lag ms)` of the successful delivery attempts since `since_ms`, where
    /// the lag runs from the event's creation to the receiver's 2xx; newest first, at most `cap`.
    pub fn delivery_lags_since(
        &self,
        company: Option<&str>,
        since_ms: i64,
        cap: usize,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.at, a.outcome, d.company_id, e.created_at
             FROM delivery_attempts a
             JOIN deliveries d ON d.id = a.delivery_id
             JOIN events e ON e.seq = d.event_seq
             ORDER BY a.id DESC",
        )?;
        let mut rows = stmt.query([])?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let at: i64 = row.get(0)?;
            if at < since_ms - CLOCK_SLACK_MS || found.len() >= cap {
                break;
            }
            let outcome: String = row.get(1)?;
            let owner: String = row.get(2)?;
            if at >= since_ms && outcome == "succeeded" && company.is_none_or(|c| owner == c) {
                let created: i64 = row.get(3)?;
                found.push((at, (at - created).max(0)));
            }
        }
        Ok(found)
    }
}
