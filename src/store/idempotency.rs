//! Stored responses keyed by (API key, Idempotency-Key), kept for the configured window.

use rusqlite::{OptionalExtension, params};

use super::{ReadConn, StoreError, WriteTx};

#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// SHA-256 (hex) of the request body this answered.
    pub request_hash: String,
}

impl WriteTx<'_> {
    /// The response stored for (key, idempotency key) since `not_before`, if any.
    pub fn claimed_response(
        &self,
        key_id: &str,
        idem_key: &str,
        not_before: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        select(self.conn, key_id, idem_key, not_before)
    }

    /// Stores the response for (key, idempotency key), replacing an expired one.
    pub fn store_response(
        &self,
        key_id: &str,
        idem_key: &str,
        response: &StoredResponse,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO idempotency (key_id, idem_key, created_at, status, body, request_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(key_id, idem_key) DO UPDATE SET
                    created_at = excluded.created_at, status = excluded.status, body = excluded.body,
                    request_hash = excluded.request_hash",
            )?
            .execute(params![key_id, idem_key, now, response.status, response.body, response.request_hash])?;
        Ok(())
    }

    /// Drops entries older than `not_before`.
    pub fn expire_idempotency(&self, not_before: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM idempotency WHERE created_at < ?1",
            [not_before],
        )?)
    }
}

impl ReadConn {
    pub fn stored_response(
        &self,
        key_id: &str,
        idem_key: &str,
        not_before: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        select(&self.conn, key_id, idem_key, not_before)
    }
}

fn select(
    conn: &rusqlite::Connection,
    key_id: &str,
    idem_key: &str,
    not_before: i64,
) -> Result<Option<StoredResponse>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT status, body, request_hash FROM idempotency
             WHERE key_id = ?1 AND idem_key = ?2 AND created_at >= ?3",
        )?
        .query_row(params![key_id, idem_key, not_before], |r| {
            Ok(StoredResponse {
                status: r.get(0)?,
                body: r.get(1)?,
                request_hash: r.get(2)?,
            })
        })
        .optional()?)
}
