//! Companies and API keys. Secrets arrive here already sealed; this module never sees them
//! in the clear.

use rusqlite::{OptionalExtension, Row, params};

use super::{ReadConn, StoreError, WriteTx};

/// One row of `api_keys` with its company's name; secret columns are sealed blobs.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: String,
    pub company_id: String,
    pub company_name: String,
    pub name: String,
    pub secret_enc: Vec<u8>,
    pub previous_secret_enc: Option<Vec<u8>>,
    pub previous_expires_at: Option<i64>,
    pub square_key_enc: Option<Vec<u8>>,
    pub quickbooks_token_enc: Option<Vec<u8>>,
    pub dynamics_key_enc: Option<Vec<u8>>,
    pub body_only_signing: bool,
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub struct NewKey {
    pub id: String,
    pub company_id: String,
    pub name: String,
    pub secret_enc: Vec<u8>,
    pub square_key_enc: Option<Vec<u8>>,
    pub quickbooks_token_enc: Option<Vec<u8>>,
    pub dynamics_key_enc: Option<Vec<u8>>,
    pub body_only_signing: bool,
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub api_token_hash: Option<String>,
    pub created_at: i64,
}

/// What `keys list` shows: no secret material.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeySummary {
    pub key_id: String,
    pub company: String,
    pub company_id: String,
    pub name: String,
    pub created_at: i64,
    pub revoked: bool,
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub rotation_overlap_until: Option<i64>,
}

const KEY_COLUMNS: &str = "k.id, k.company_id, c.name, k.name, k.secret_enc, k.previous_secret_enc,
    k.previous_expires_at, k.square_key_enc, k.quickbooks_token_enc, k.dynamics_key_enc,
    k.body_only_signing, k.per_minute, k.per_hour, k.created_at, k.revoked_at";

fn key_from_row(r: &Row) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        company_id: r.get(1)?,
        company_name: r.get(2)?,
        name: r.get(3)?,
        secret_enc: r.get(4)?,
        previous_secret_enc: r.get(5)?,
        previous_expires_at: r.get(6)?,
        square_key_enc: r.get(7)?,
        quickbooks_token_enc: r.get(8)?,
        dynamics_key_enc: r.get(9)?,
        body_only_signing: r.get(10)?,
        per_minute: r.get(11)?,
        per_hour: r.get(12)?,
        created_at: r.get(13)?,
        revoked_at: r.get(14)?,
    })
}

impl WriteTx<'_> {
    /// Returns the id of the company called `name`, creating it if needed.
    pub fn ensure_company(&self, name: &str, new_id: &str, now: i64) -> Result<String, StoreError> {
        self.conn.execute(
            "INSERT INTO companies (id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO NOTHING",
            params![new_id, name, now],
        )?;
        Ok(self
            .conn
            .query_row("SELECT id FROM companies WHERE name = ?1", [name], |r| {
                r.get(0)
            })?)
    }

    pub fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO api_keys (id, company_id, name, secret_enc, square_key_enc,
                quickbooks_token_enc, dynamics_key_enc, body_only_signing, per_minute, per_hour,
                api_token_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                key.id,
                key.company_id,
                key.name,
                key.secret_enc,
                key.square_key_enc,
                key.quickbooks_token_enc,
                key.dynamics_key_enc,
                key.body_only_signing,
                key.per_minute,
                key.per_hour,
                key.api_token_hash,
                key.created_at
            ],
        )?;
        Ok(())
    }

    /// Marks the key revoked; false when there is no such active key.
    pub fn revoke_key(&self, key_id: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![key_id, now],
        )? == 1)
    }

    /// Makes `new_secret_enc` current and keeps the current one verifying until `overlap_until`.
    pub fn rotate_key(
        &self,
        key_id: &str,
        new_secret_enc: &[u8],
        overlap_until: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE api_keys SET previous_secret_enc = secret_enc, previous_expires_at = ?3,
                secret_enc = ?2
             WHERE id = ?1 AND revoked_at IS NULL",
            params![key_id, new_secret_enc, overlap_until],
        )? == 1)
    }

    pub fn set_api_token_hash(&self, key_id: &str, hash: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE api_keys SET api_token_hash = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![key_id, hash],
        )? == 1)
    }
}

impl ReadConn {
    pub fn key_by_id(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k JOIN companies c ON c.id = k.company_id
             WHERE k.id = ?1"
        );
        Ok(self
            .conn
            .query_row(&sql, [key_id], key_from_row)
            .optional()?)
    }

    pub fn key_by_token_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k JOIN companies c ON c.id = k.company_id
             WHERE k.api_token_hash = ?1"
        );
        Ok(self.conn.query_row(&sql, [hash], key_from_row).optional()?)
    }

    pub fn list_keys(&self, company: Option<&str>) -> Result<Vec<KeySummary>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT k.id, c.name, c.id, k.name, k.created_at, k.revoked_at, k.per_minute,
                    k.per_hour, k.previous_expires_at
             FROM api_keys k JOIN companies c ON c.id = k.company_id
             WHERE ?1 IS NULL OR c.name = ?1
             ORDER BY c.name, k.created_at",
        )?;
        let rows = stmt.query_map([company], |r| {
            Ok(KeySummary {
                key_id: r.get(0)?,
                company: r.get(1)?,
                company_id: r.get(2)?,
                name: r.get(3)?,
                created_at: r.get(4)?,
                revoked: r.get::<_, Option<i64>>(5)?.is_some(),
                per_minute: r.get(6)?,
                per_hour: r.get(7)?,
                rotation_overlap_until: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn company_id_by_name(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT id FROM companies WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn count_keys(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0))?)
    }

    /// Confirms the database answers (readiness probe).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.conn.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}
