//! Companies and API keys. Secrets arrive here already sealed; this module never sees them
//! in the clear.

use super::sql::{Row, sql_params};
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

#[derive(Clone)]
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

fn key_from_row(mut r: Row) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: r.text(0)?,
        company_id: r.text(1)?,
        company_name: r.text(2)?,
        name: r.text(3)?,
        secret_enc: r.blob(4)?,
        previous_secret_enc: r.opt_blob(5)?,
        previous_expires_at: r.opt_i64(6)?,
        square_key_enc: r.opt_blob(7)?,
        quickbooks_token_enc: r.opt_blob(8)?,
        dynamics_key_enc: r.opt_blob(9)?,
        body_only_signing: r.bool(10)?,
        per_minute: r.opt_u32(11)?,
        per_hour: r.opt_u32(12)?,
        created_at: r.i64(13)?,
        revoked_at: r.opt_i64(14)?,
    })
}

/// A change to one sealed secret of a key.
#[derive(Debug, Clone)]
pub enum SecretChange {
    Keep,
    Set(Vec<u8>),
    Remove,
}

impl WriteTx<'_> {
    /// Returns the id of the company called `name`, creating it if needed.
    pub fn ensure_company(&self, name: &str, new_id: &str, now: i64) -> Result<String, StoreError> {
        self.conn.execute(
            "INSERT INTO companies (id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
            sql_params![new_id, name, now],
        )?;
        self.conn
            .query_one(
                "SELECT id FROM companies WHERE name = ?1",
                sql_params![name],
            )?
            .text(0)
    }

    pub fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO api_keys (id, company_id, name, secret_enc, square_key_enc,
                quickbooks_token_enc, dynamics_key_enc, body_only_signing, per_minute, per_hour,
                api_token_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            sql_params![
                &key.id,
                &key.company_id,
                &key.name,
                &key.secret_enc,
                &key.square_key_enc,
                &key.quickbooks_token_enc,
                &key.dynamics_key_enc,
                key.body_only_signing,
                key.per_minute,
                key.per_hour,
                &key.api_token_hash,
                key.created_at
            ],
        )?;
        Ok(())
    }

    /// Marks the key revoked; false when there is no such active key.
    pub(crate) fn revoke_key(&self, key_id: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            sql_params![key_id, now],
        )? == 1)
    }

    /// Makes `new_secret_enc` current and keeps the current one verifying until `overlap_until`.
    pub(crate) fn rotate_key(
        &self,
        key_id: &str,
        new_secret_enc: &[u8],
        overlap_until: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE api_keys SET previous_secret_enc = secret_enc, previous_expires_at = ?3,
                secret_enc = ?2
             WHERE id = ?1 AND revoked_at IS NULL",
            sql_params![key_id, new_secret_enc, overlap_until],
        )? == 1)
    }

    pub(crate) fn set_api_token_hash(&self, key_id: &str, hash: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE api_keys SET api_token_hash = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            sql_params![key_id, hash],
        )? == 1)
    }

    /// Sets or removes a key's sealed provider secrets (Square signature key, QuickBooks
    /// verifier token, Dynamics 365 key). False if there is no such active key.
    pub(crate) fn set_provider_secrets(
        &self,
        key_id: &str,
        square: &SecretChange,
        quickbooks: &SecretChange,
        dynamics: &SecretChange,
    ) -> Result<bool, StoreError> {
        let active = self
            .conn
            .query_opt(
                "SELECT 1 FROM api_keys WHERE id = ?1 AND revoked_at IS NULL",
                sql_params![key_id],
            )?
            .is_some();
        if !active {
            return Ok(false);
        }
        for (column, change) in [
            ("square_key_enc", square),
            ("quickbooks_token_enc", quickbooks),
            ("dynamics_key_enc", dynamics),
        ] {
            let value = match change {
                SecretChange::Keep => continue,
                SecretChange::Set(sealed) => Some(sealed),
                SecretChange::Remove => None,
            };
            self.conn.execute(
                &format!("UPDATE api_keys SET {column} = ?2 WHERE id = ?1"),
                sql_params![key_id, value],
            )?;
        }
        Ok(true)
    }
}

fn one_key(r: &ReadConn, condition: &str, value: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
    r.conn
        .query_opt(
            &format!(
                "SELECT {KEY_COLUMNS} FROM api_keys k JOIN companies c ON c.id = k.company_id
                 WHERE {condition}"
            ),
            sql_params![value],
        )?
        .map(key_from_row)
        .transpose()
}

impl ReadConn<'_> {
    pub(crate) fn key_by_id(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        one_key(self, "k.id = ?1", key_id)
    }

    pub(crate) fn key_by_token_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        one_key(self, "k.api_token_hash = ?1", hash)
    }

    pub(crate) fn list_keys(&self, company: Option<&str>) -> Result<Vec<KeySummary>, StoreError> {
        self.conn
            .query(
                "SELECT k.id, c.name, c.id, k.name, k.created_at, k.revoked_at, k.per_minute,
                        k.per_hour, k.previous_expires_at
                 FROM api_keys k JOIN companies c ON c.id = k.company_id
                 WHERE CAST(?1 AS TEXT) IS NULL OR c.name = ?1
                 ORDER BY c.name, k.created_at",
                sql_params![company],
            )?
            .into_iter()
            .map(|mut r| {
                Ok(KeySummary {
                    key_id: r.text(0)?,
                    company: r.text(1)?,
                    company_id: r.text(2)?,
                    name: r.text(3)?,
                    created_at: r.i64(4)?,
                    revoked: r.opt_i64(5)?.is_some(),
                    per_minute: r.opt_u32(6)?,
                    per_hour: r.opt_u32(7)?,
                    rotation_overlap_until: r.opt_i64(8)?,
                })
            })
            .collect()
    }

    pub(crate) fn company_id_by_name(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_opt(
                "SELECT id FROM companies WHERE name = ?1",
                sql_params![name],
            )?
            .map(|mut r| r.text(0))
            .transpose()
    }

    pub(crate) fn count_keys(&self) -> Result<i64, StoreError> {
        self.conn
            .query_one("SELECT COUNT(*) FROM api_keys", &[])?
            .i64(0)
    }
}
