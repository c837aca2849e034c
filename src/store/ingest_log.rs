//! The ingest log: one row per inbound request, accepted or not.
//!
//! Every filter walks an index from a cursor (see the indexes in `migrations.rs`), so a page
//! costs the same at a thousand rows as at millions.

use serde::Serialize;

use super::sql::{Conn, Dialect, Param, Row, sql_params};
use super::{ReadConn, StoreError, WriteTx};

#[derive(Debug, Clone, Serialize, Default)]
pub struct IngestEntry {
    pub id: i64,
    pub received_at: i64,
    pub request_id: String,
    pub company_id: Option<String>,
    pub key_id: Option<String>,
    pub client_addr: Option<String>,
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub status: u16,
    pub error_code: Option<String>,
    pub latency_us: i64,
    pub event_id: Option<String>,
    pub record_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct IngestFilter {
    pub after_id: i64,
    pub key_id: Option<String>,
    pub company_id: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<u16>,
    pub limit: usize,
}

pub(super) const COLUMNS: &str =
    "id, received_at, request_id, company_id, key_id, client_addr, source,
    event_type, status, error_code, latency_us, event_id, record_id";

pub(super) fn entry_from_row(mut r: Row) -> Result<IngestEntry, StoreError> {
    Ok(IngestEntry {
        id: r.i64(0)?,
        received_at: r.i64(1)?,
        request_id: r.text(2)?,
        company_id: r.opt_text(3)?,
        key_id: r.opt_text(4)?,
        client_addr: r.opt_text(5)?,
        source: r.opt_text(6)?,
        event_type: r.opt_text(7)?,
        status: r.u16(8)?,
        error_code: r.opt_text(9)?,
        latency_us: r.i64(10)?,
        event_id: r.opt_text(11)?,
        record_id: r.opt_text(12)?,
    })
}

impl WriteTx<'_> {
    pub fn insert_ingest_entry(&self, e: &IngestEntry) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO ingest_log (received_at, request_id, company_id, key_id, client_addr,
                source, event_type, status, error_code, latency_us, event_id, record_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            sql_params![
                e.received_at,
                &e.request_id,
                &e.company_id,
                &e.key_id,
                &e.client_addr,
                &e.source,
                &e.event_type,
                e.status,
                &e.error_code,
                e.latency_us,
                &e.event_id,
                &e.record_id
            ],
        )?;
        Ok(())
    }

    /// Drops up to `limit` entries received before `before_ms`; returns how many.
    pub(crate) fn prune_ingest_log(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.conn.execute(
            "DELETE FROM ingest_log WHERE id IN (
                SELECT id FROM ingest_log WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)",
            sql_params![before_ms, limit],
        )
    }
}

/// The filter's conditions, with only the fields that are set, so that the database can walk
/// the index that starts with them (a `?n IS NULL OR column = ?n` condition would defeat it).
fn conditions<'f>(f: &'f IngestFilter, params: &mut Vec<Param<'f>>) -> String {
    let mut sql = String::new();
    let mut add = |column: &str, value: Param<'f>| {
        params.push(value);
        sql.push_str(&format!(" AND {column} = ?{}", params.len()));
    };
    if let Some(company) = &f.company_id {
        add("company_id", Param::Text(company));
    }
    if let Some(key) = &f.key_id {
        add("key_id", Param::Text(key));
    }
    if let Some(status) = f.status {
        add("status", Param::from(status));
    }
    if let Some(event_type) = &f.event_type {
        add("event_type", Param::Text(event_type));
    }
    sql
}

/// On PostgreSQL, several transactions insert at once and ids become visible out of order: an
/// entry with a lower id may still commit after a higher one was read. A follower must not
/// move its cursor past such a hole, so it reads only up to the first hole in the ids after its
/// cursor, unless the hole is older than this (its transaction was rolled back).
const HOLE_TIMEOUT_MS: i64 = 10_000;
/// How far past the cursor the hole search looks.
const HOLE_SCAN: i64 = 10_000;

/// The highest id a follower at `after_id` may read without passing a transaction that is
/// still in progress (SQLite commits one transaction at a time: no limit).
fn stable_horizon(conn: &dyn Conn, after_id: i64, now_ms: i64) -> Result<i64, StoreError> {
    if conn.dialect() == Dialect::Sqlite {
        return Ok(i64::MAX);
    }
    let rows = conn.query(
        "SELECT id, received_at FROM ingest_log WHERE id > ?1 ORDER BY id LIMIT ?2",
        sql_params![after_id, HOLE_SCAN],
    )?;
    let mut expected = after_id + 1;
    for row in &rows {
        let id = row.i64(0)?;
        if id != expected && now_ms - row.i64(1)? < HOLE_TIMEOUT_MS {
            return Ok(expected - 1);
        }
        expected = id + 1;
    }
    Ok(expected - 1)
}

impl ReadConn<'_> {
    /// Entries with id > `after_id` matching the filter, oldest first.
    pub fn ingest_entries(&self, f: &IngestFilter) -> Result<Vec<IngestEntry>, StoreError> {
        let horizon = stable_horizon(self.conn, f.after_id, crate::clock::now_ms())?;
        let mut params = vec![Param::Int(f.after_id), Param::Int(horizon)];
        let filter = conditions(f, &mut params);
        params.push(Param::from(f.limit.max(1)));
        let sql = format!(
            "SELECT {COLUMNS} FROM ingest_log WHERE id > ?1 AND id <= ?2{filter}
             ORDER BY id LIMIT ?{}",
            params.len()
        );
        self.conn
            .query(&sql, &params)?
            .into_iter()
            .map(entry_from_row)
            .collect()
    }

    /// The newest `n` entries matching the filter (ignoring `after_id`), oldest first: one
    /// descending walk of an index, however far back the matches are.
    pub fn recent_ingest_entries(
        &self,
        f: &IngestFilter,
        n: usize,
    ) -> Result<Vec<IngestEntry>, StoreError> {
        let mut params = Vec::new();
        let filter = conditions(f, &mut params);
        params.push(Param::from(n.max(1)));
        let sql = format!(
            "SELECT {COLUMNS} FROM ingest_log WHERE 1 = 1{filter} ORDER BY id DESC LIMIT ?{}",
            params.len()
        );
        let mut entries = self
            .conn
            .query(&sql, &params)?
            .into_iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        entries.reverse();
        Ok(entries)
    }

    /// The id a follower that wants no history starts after.
    pub(crate) fn last_ingest_id(&self) -> Result<i64, StoreError> {
        let last = self
            .conn
            .query_one("SELECT COALESCE(MAX(id), 0) FROM ingest_log", &[])?
            .i64(0)?;
        // Entries still committing below the newest one must not be skipped.
        stable_horizon(self.conn, (last - 1_000).max(0), crate::clock::now_ms())
            .map(|horizon| horizon.min(last))
    }
}
