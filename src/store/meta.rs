//! Facts about the database itself (table `meta`, e.g. the master key's check value), and
//! every column that holds a sealed secret, listed once, so that a master key can be checked
//! against them and every secret re-sealed under a new key. Values arrive sealed; this module
//! never sees a secret in the clear.

use super::sql::{Conn, sql_params};
use super::{ReadConn, StoreError, WriteTx};

/// Every column sealed with the master key, as `(table, column)`. Each row's `id` is the
/// associated data it was sealed with.
pub(crate) const SEALED_COLUMNS: &[(&str, &str)] = &[
    ("api_keys", "secret_enc"),
    ("api_keys", "previous_secret_enc"),
    ("api_keys", "square_key_enc"),
    ("api_keys", "quickbooks_token_enc"),
    ("api_keys", "dynamics_key_enc"),
    ("subscriptions", "secret_enc"),
    ("subscriptions", "previous_secret_enc"),
    ("subscriptions", "basic_auth_enc"),
    ("key_provider_secrets", "secret_enc"),
];

/// One sealed value and where it lives.
#[derive(Debug, Clone)]
pub struct SealedValue {
    pub table: &'static str,
    pub column: &'static str,
    pub row_id: String,
    pub sealed: Vec<u8>,
}

/// The sealed values of one column, `limit` of them (all when `None`).
fn sealed_in(
    conn: &dyn Conn,
    table: &'static str,
    column: &'static str,
    limit: Option<i64>,
) -> Result<Vec<SealedValue>, StoreError> {
    // Table and column names come from SEALED_COLUMNS, never from input.
    let mut sql = format!("SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL");
    if let Some(limit) = limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    conn.query(&sql, &[])?
        .into_iter()
        .map(|mut row| {
            Ok(SealedValue {
                table,
                column,
                row_id: row.text(0)?,
                sealed: row.blob(1)?,
            })
        })
        .collect()
}

fn meta_value(conn: &dyn Conn, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    conn.query_opt("SELECT value FROM meta WHERE name = ?1", sql_params![name])?
        .map(|mut row| row.blob(0))
        .transpose()
}

impl ReadConn<'_> {
    pub(crate) fn meta_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        meta_value(self.conn, name)
    }

    /// One sealed value of each sealed column that has any (a sample to check a key against).
    pub(crate) fn sealed_samples(&self) -> Result<Vec<SealedValue>, StoreError> {
        let mut samples = Vec::new();
        for (table, column) in SEALED_COLUMNS {
            samples.extend(sealed_in(self.conn, table, column, Some(1))?);
        }
        Ok(samples)
    }
}

impl WriteTx<'_> {
    pub(crate) fn set_meta_value(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            sql_params![name, value],
        )?;
        Ok(())
    }

    /// Stores `value` under `name` unless there is a value already; returns the one stored.
    pub(crate) fn insert_meta_if_absent(
        &self,
        name: &str,
        value: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        self.conn.execute(
            "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            sql_params![name, value],
        )?;
        meta_value(self.conn, name)?
            .ok_or_else(|| StoreError::Corrupt(format!("meta value {name} vanished")))
    }

    /// Every sealed value in the database.
    pub(crate) fn sealed_values(&self) -> Result<Vec<SealedValue>, StoreError> {
        let mut all = Vec::new();
        for (table, column) in SEALED_COLUMNS {
            all.extend(sealed_in(self.conn, table, column, None)?);
        }
        Ok(all)
    }

    /// Stores `value.sealed` where `value` was read from.
    pub(crate) fn replace_sealed_value(&self, value: &SealedValue) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE {} SET {} = ?2 WHERE id = ?1",
            value.table, value.column
        );
        self.conn
            .execute(&sql, sql_params![&value.row_id, &value.sealed])?;
        Ok(())
    }
}
