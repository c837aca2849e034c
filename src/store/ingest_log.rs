//! The ingest log: one row per inbound request, accepted or not.

use rusqlite::params;
use serde::Serialize;

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

impl WriteTx<'_> {
    pub fn insert_ingest_entry(&self, e: &IngestEntry) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO ingest_log (received_at, request_id, company_id, key_id, client_addr,
                    source, event_type, status, error_code, latency_us, event_id, record_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                e.received_at,
                e.request_id,
                e.company_id,
                e.key_id,
                e.client_addr,
                e.source,
                e.event_type,
                e.status,
                e.error_code,
                e.latency_us,
                e.event_id,
                e.record_id
            ])?;
        Ok(())
    }
}

impl ReadConn {
    /// Entries with id > `after_id` matching the filter, oldest first.
    pub fn ingest_entries(&self, f: &IngestFilter) -> Result<Vec<IngestEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, received_at, request_id, company_id, key_id, client_addr, source,
                    event_type, status, error_code, latency_us, event_id, record_id
             FROM ingest_log
             WHERE id > ?1 AND (?2 IS NULL OR key_id = ?2) AND (?3 IS NULL OR event_type = ?3)
               AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR company_id = ?5)
             ORDER BY id LIMIT ?6",
        )?;
        let rows = stmt.query_map(
            params![
                f.after_id,
                f.key_id,
                f.event_type,
                f.status,
                f.company_id,
                f.limit as i64
            ],
            |r| {
                Ok(IngestEntry {
                    id: r.get(0)?,
                    received_at: r.get(1)?,
                    request_id: r.get(2)?,
                    company_id: r.get(3)?,
                    key_id: r.get(4)?,
                    client_addr: r.get(5)?,
                    source: r.get(6)?,
                    event_type: r.get(7)?,
                    status: r.get(8)?,
                    error_code: r.get(9)?,
                    latency_us: r.get(10)?,
                    event_id: r.get(11)?,
                    record_id: r.get(12)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest `n` entries matching the filter (ignoring `after_id`), oldest first.
    pub fn recent_ingest_entries(
        &self,
        f: &IngestFilter,
        n: usize,
    ) -> Result<Vec<IngestEntry>, StoreError> {
        let last = self.last_ingest_id()?;
        // Walk back in pages until `n` matching entries are found or the log is exhausted.
        let mut found: Vec<IngestEntry> = Vec::new();
        let mut upper = last;
        let page = 5_000;
        while upper > 0 && found.len() < n {
            let lower = (upper - page).max(0);
            let window = IngestFilter {
                after_id: lower,
                limit: page as usize,
                ..f.clone()
            };
            let mut chunk: Vec<IngestEntry> = self
                .ingest_entries(&window)?
                .into_iter()
                .filter(|e| e.id <= upper)
                .collect();
            chunk.append(&mut found);
            found = chunk;
            upper = lower;
        }
        let skip = found.len().saturating_sub(n);
        Ok(found.split_off(skip))
    }

    /// The id of the newest entry, or 0 (where `tail --follow` starts when asked for no history).
    pub fn last_ingest_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM ingest_log", [], |r| {
                r.get(0)
            })?)
    }
}
