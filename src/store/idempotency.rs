//! Stored responses keyed by (API key, Idempotency-Key), kept for the configured window.
//!
//! A request claims its key first, by inserting the row (the insert of a concurrent copy, in
//! this process or on another node, waits for the first one's transaction and then conflicts);
//! the answer is written into the claimed row in the same transaction.

use super::sql::{Conn, sql_params};
use super::{ReadConn, StoreError, WriteTx};

#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// SHA-256 (hex) of the request body this answered.
    pub request_hash: String,
}

/// The outcome of [`WriteTx::claim_idempotency_key`].
#[derive(Debug, Clone)]
pub enum Claim {
    /// The key is ours: apply the request, then [`WriteTx::store_response`].
    Claimed,
    /// Another request answered under this key within the window.
    Answered(StoredResponse),
}

impl WriteTx<'_> {
    /// Claims (key, idempotency key) for this request: takes a free or expired key, or returns
    /// the answer stored under it since `not_before`.
    pub fn claim_idempotency_key(
        &self,
        key_id: &str,
        idem_key: &str,
        request_hash: &str,
        now: i64,
        not_before: i64,
    ) -> Result<Claim, StoreError> {
        // An expired row is taken over; a live one makes the statement change nothing.
        let claimed = self.conn.execute(
            "INSERT INTO idempotency (key_id, idem_key, created_at, status, body, request_hash)
             VALUES (?1, ?2, ?3, 0, ?4, ?5)
             ON CONFLICT (key_id, idem_key) DO UPDATE SET
                created_at = excluded.created_at, status = 0, body = excluded.body,
                request_hash = excluded.request_hash
             WHERE idempotency.created_at < ?6",
            sql_params![key_id, idem_key, now, &b""[..], request_hash, not_before],
        )?;
        if claimed == 1 {
            return Ok(Claim::Claimed);
        }
        match select(self.conn, key_id, idem_key, not_before)? {
            Some(stored) => Ok(Claim::Answered(stored)),
            // Expired between the two statements: a later request may claim it.
            None => Err(StoreError::Aborted(
                "idempotency key changed hands while being claimed".into(),
            )),
        }
    }

    /// Stores the answer under a key this transaction claimed.
    pub fn store_response(
        &self,
        key_id: &str,
        idem_key: &str,
        response: &StoredResponse,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO idempotency (key_id, idem_key, created_at, status, body, request_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (key_id, idem_key) DO UPDATE SET
                created_at = excluded.created_at, status = excluded.status, body = excluded.body,
                request_hash = excluded.request_hash",
            sql_params![
                key_id,
                idem_key,
                now,
                response.status,
                &response.body,
                &response.request_hash
            ],
        )?;
        Ok(())
    }

    /// Drops up to `limit` entries older than `not_before`; returns how many.
    pub(crate) fn expire_idempotency(
        &self,
        not_before: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.conn.execute(
            "DELETE FROM idempotency WHERE (key_id, idem_key) IN (
                SELECT key_id, idem_key FROM idempotency WHERE created_at < ?1 LIMIT ?2)",
            sql_params![not_before, limit],
        )
    }
}

impl ReadConn<'_> {
    pub(crate) fn stored_response(
        &self,
        key_id: &str,
        idem_key: &str,
        not_before: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        select(self.conn, key_id, idem_key, not_before)
    }
}

fn select(
    conn: &dyn Conn,
    key_id: &str,
    idem_key: &str,
    not_before: i64,
) -> Result<Option<StoredResponse>, StoreError> {
    conn.query_opt(
        "SELECT status, body, request_hash FROM idempotency
         WHERE key_id = ?1 AND idem_key = ?2 AND created_at >= ?3 AND status > 0",
        sql_params![key_id, idem_key, not_before],
    )?
    .map(|mut r| {
        Ok(StoredResponse {
            status: r.u16(0)?,
            body: r.blob(1)?,
            request_hash: r.text(2)?,
        })
    })
    .transpose()
}
