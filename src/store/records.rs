//! A company's records (work orders, projects, employees, ...) as JSON documents found by
//! kind and natural key; skills, work types and counters; and the event log that doubles as
//! the transactional outbox.

use serde_json::Value;

use super::sql::{Conn, Dialect, Row, sql_params};
use super::{ReadConn, StoreError, WriteTx};

#[derive(Debug, Clone)]
pub struct Record {
    pub record_id: String,
    pub natural_key: String,
    pub data: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkType {
    pub code: String,
    pub name: String,
    pub billable: bool,
    pub requires_work_order: bool,
    pub multiplier: f64,
    pub is_default: bool,
    pub active: bool,
}

/// One row of the event log / outbox.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub company_id: &'a str,
    pub origin_key_id: Option<&'a str>,
    pub inbound_event_id: Option<&'a str>,
    /// For an operational event about a subscription: that subscription (never told).
    pub about_subscription_id: Option<&'a str>,
    pub event_type: &'a str,
    pub entity: &'a str,
    pub record_id: &'a str,
    pub project_code: Option<&'a str>,
    pub payload: &'a Value,
    pub created_at: i64,
}

const RECORD_COLUMNS: &str = "record_id, natural_key, data, created_at, updated_at";

fn record_from_row(mut r: Row) -> Result<Record, StoreError> {
    let data = r.text(2)?;
    Ok(Record {
        record_id: r.text(0)?,
        natural_key: r.text(1)?,
        data: serde_json::from_str(&data)
            .map_err(|e| StoreError::Corrupt(format!("record data: {e}")))?,
        created_at: r.i64(3)?,
        updated_at: r.i64(4)?,
    })
}

fn get(
    conn: &dyn Conn,
    company: &str,
    kind: &str,
    natural_key: &str,
    lock: &str,
) -> Result<Option<Record>, StoreError> {
    conn.query_opt(
        &format!(
            "SELECT {RECORD_COLUMNS} FROM records
             WHERE company_id = ?1 AND kind = ?2 AND natural_key = ?3{lock}"
        ),
        sql_params![company, kind, natural_key],
    )?
    .map(record_from_row)
    .transpose()
}

/// Records of `kind`, optionally only those whose JSON `field` equals `value` (ignoring case).
fn list(
    conn: &dyn Conn,
    company: &str,
    kind: &str,
    field_eq: Option<(&str, &str)>,
) -> Result<Vec<Record>, StoreError> {
    let rows = match field_eq {
        None => conn.query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE company_id = ?1 AND kind = ?2
                 ORDER BY created_at, record_id"
            ),
            sql_params![company, kind],
        )?,
        Some((field, value)) => conn.query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM records
                 WHERE company_id = ?1 AND kind = ?2 AND lower({}) = lower(?3)
                 ORDER BY created_at, record_id",
                conn.dialect().json_text("data", field)
            ),
            sql_params![company, kind, value],
        )?,
    };
    rows.into_iter().map(record_from_row).collect()
}

const WORK_TYPE_COLUMNS: &str =
    "code, name, billable, requires_work_order, multiplier, is_default, active";

fn work_type_from_row(mut r: Row) -> Result<WorkType, StoreError> {
    Ok(WorkType {
        code: r.text(0)?,
        name: r.text(1)?,
        billable: r.bool(2)?,
        requires_work_order: r.bool(3)?,
        multiplier: r.f64(4)?,
        is_default: r.bool(5)?,
        active: r.bool(6)?,
    })
}

/// The columns `insert_event` writes, in its parameters' order.
macro_rules! event_columns {
    () => {
        "event_id, company_id, origin_key_id, inbound_event_id, event_type, entity, record_id,
        project_code, payload, created_at, about_subscription_id"
    };
}

impl WriteTx<'_> {
    /// The record, locked against concurrent changes until the transaction ends.
    pub(crate) fn get_record(
        &self,
        company: &str,
        kind: &str,
        natural_key: &str,
    ) -> Result<Option<Record>, StoreError> {
        get(
            self.conn,
            company,
            kind,
            natural_key,
            self.dialect().for_update(),
        )
    }

    pub(crate) fn list_records(
        &self,
        company: &str,
        kind: &str,
        field_eq: Option<(&str, &str)>,
    ) -> Result<Vec<Record>, StoreError> {
        list(self.conn, company, kind, field_eq)
    }

    /// Inserts `record` (its `created_at` is used for both timestamps); [`StoreError::Conflict`]
    /// when the natural key is taken (also by a transaction that committed meanwhile).
    pub fn insert_record(
        &self,
        company: &str,
        kind: &str,
        record: &Record,
        key_id: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO records (company_id, kind, natural_key, record_id, data, created_at,
                updated_at, created_by, updated_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?7)",
            sql_params![
                company,
                kind,
                &record.natural_key,
                &record.record_id,
                &record.data.to_string(),
                record.created_at,
                key_id
            ],
        )?;
        self.index_record(company, kind, &record.record_id, &record.data)
    }

    /// Replaces the data, natural key and `updated_at` of an existing record with `record`'s.
    pub(crate) fn update_record(
        &self,
        company: &str,
        kind: &str,
        record: &Record,
        key_id: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE records SET natural_key = ?2, data = ?3, updated_at = ?4, updated_by = ?5
             WHERE record_id = ?1",
            sql_params![
                &record.record_id,
                &record.natural_key,
                &record.data.to_string(),
                record.updated_at,
                key_id
            ],
        )?;
        self.index_record(company, kind, &record.record_id, &record.data)
    }

    pub(crate) fn delete_record(&self, record_id: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM records WHERE record_id = ?1",
            sql_params![record_id],
        )?;
        self.unindex_record(record_id)
    }

    /// Increments and returns the company's counter `name` (starting at 1). The row stays
    /// locked until the transaction ends, so numbers are unique across nodes too.
    pub fn next_counter(&self, company: &str, name: &str) -> Result<i64, StoreError> {
        self.conn
            .query_one(
                "INSERT INTO counters (company_id, name, value) VALUES (?1, ?2, 1)
                 ON CONFLICT (company_id, name) DO UPDATE SET value = counters.value + 1
                 RETURNING value",
                sql_params![company, name],
            )?
            .i64(0)
    }

    /// Appends an event to the log; returns its sequence number.
    pub fn insert_event(&self, e: &NewEvent) -> Result<i64, StoreError> {
        // SQLite has one writer, which commits events in the order of their `seq`: an event
        // is published as it is written, at the position of its `seq` (the next that
        // AUTOINCREMENT would give: `sqlite_sequence` holds the largest ever given), with none
        // of `publish_events`'s second write of each row and its indexes. PostgreSQL's writers
        // commit side by side, so positions are given after the commits (`publish_events`).
        let sql = match self.dialect() {
            Dialect::Sqlite => concat!(
                "WITH next(seq) AS (SELECT COALESCE(
                     (SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) + 1)
                 INSERT INTO events (seq, position, ",
                event_columns!(),
                ") SELECT next.seq, next.seq, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 FROM next
                 RETURNING seq"
            ),
            Dialect::Postgres => concat!(
                "INSERT INTO events (",
                event_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING seq"
            ),
        };
        self.conn
            .query_one(
                sql,
                sql_params![
                    e.event_id,
                    e.company_id,
                    e.origin_key_id,
                    e.inbound_event_id,
                    e.event_type,
                    e.entity,
                    e.record_id,
                    e.project_code,
                    &e.payload.to_string(),
                    e.created_at,
                    e.about_subscription_id
                ],
            )?
            .i64(0)
    }

    /// Names among `names` that are not in the company's skill library, in the given order.
    pub(crate) fn missing_skills(
        &self,
        company: &str,
        names: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut missing = Vec::new();
        for name in names {
            let found = self.conn.query_opt(
                "SELECT 1 FROM skills WHERE company_id = ?1 AND name_key = lower(?2)",
                sql_params![company, name.trim()],
            )?;
            if found.is_none() {
                missing.push(name.clone());
            }
        }
        Ok(missing)
    }

    /// Adds skills; returns how many were new.
    pub fn add_skills(
        &self,
        company: &str,
        names: &[String],
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut added = 0;
        for name in names {
            let name = name.trim();
            added += self.conn.execute(
                "INSERT INTO skills (company_id, name_key, name, created_at)
                 VALUES (?1, lower(?2), ?2, ?3)
                 ON CONFLICT DO NOTHING",
                sql_params![company, name, now],
            )?;
        }
        Ok(added)
    }

    /// Gives a company `defaults` as its work types if it has none.
    pub(crate) fn ensure_work_types(
        &self,
        company: &str,
        defaults: &[WorkType],
    ) -> Result<(), StoreError> {
        let has = self
            .conn
            .query_opt(
                "SELECT 1 FROM work_types WHERE company_id = ?1 LIMIT 1",
                sql_params![company],
            )?
            .is_some();
        if !has {
            for work_type in defaults {
                self.upsert_work_type(company, work_type)?;
            }
        }
        Ok(())
    }

    /// Inserts or replaces a work type; a new default replaces the previous one.
    pub(crate) fn upsert_work_type(&self, company: &str, w: &WorkType) -> Result<(), StoreError> {
        if w.is_default {
            self.conn.execute(
                "UPDATE work_types SET is_default = FALSE WHERE company_id = ?1",
                sql_params![company],
            )?;
        }
        self.conn.execute(
            &format!(
                "INSERT INTO work_types (company_id, {WORK_TYPE_COLUMNS})
                 VALUES (?1, upper(?2), ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (company_id, code) DO UPDATE SET name = excluded.name,
                    billable = excluded.billable, requires_work_order = excluded.requires_work_order,
                    multiplier = excluded.multiplier, is_default = excluded.is_default,
                    active = excluded.active"
            ),
            sql_params![
                company,
                &w.code,
                &w.name,
                w.billable,
                w.requires_work_order,
                w.multiplier,
                w.is_default,
                w.active
            ],
        )?;
        Ok(())
    }

    /// The active work type with this code (any case).
    pub(crate) fn work_type_by_code(
        &self,
        company: &str,
        code: &str,
    ) -> Result<Option<WorkType>, StoreError> {
        self.active_work_type(company, "code = upper(?2)", Some(code))
    }

    /// The active work type with this name (any case).
    pub(crate) fn work_type_by_name(
        &self,
        company: &str,
        name: &str,
    ) -> Result<Option<WorkType>, StoreError> {
        self.active_work_type(company, "lower(name) = lower(?2)", Some(name))
    }

    /// The company's active default work type.
    pub(crate) fn default_work_type(&self, company: &str) -> Result<Option<WorkType>, StoreError> {
        self.active_work_type(company, "is_default", None)
    }

    /// The first active work type meeting `condition`, which may use `value` as `?2`.
    fn active_work_type(
        &self,
        company: &str,
        condition: &str,
        value: Option<&str>,
    ) -> Result<Option<WorkType>, StoreError> {
        let sql = format!(
            "SELECT {WORK_TYPE_COLUMNS} FROM work_types
             WHERE company_id = ?1 AND active AND {condition} LIMIT 1"
        );
        let row = match value {
            Some(value) => self.conn.query_opt(&sql, sql_params![company, value])?,
            None => self.conn.query_opt(&sql, sql_params![company])?,
        };
        row.map(work_type_from_row).transpose()
    }
}

impl ReadConn<'_> {
    pub fn get_record(
        &self,
        company: &str,
        kind: &str,
        natural_key: &str,
    ) -> Result<Option<Record>, StoreError> {
        get(self.conn, company, kind, natural_key, "")
    }

    pub fn list_records(
        &self,
        company: &str,
        kind: &str,
        field_eq: Option<(&str, &str)>,
    ) -> Result<Vec<Record>, StoreError> {
        list(self.conn, company, kind, field_eq)
    }

    pub(crate) fn list_skills(&self, company: &str) -> Result<Vec<String>, StoreError> {
        self.conn
            .query(
                "SELECT name FROM skills WHERE company_id = ?1 ORDER BY name_key",
                sql_params![company],
            )?
            .into_iter()
            .map(|mut r| r.text(0))
            .collect()
    }

    pub(crate) fn list_work_types(&self, company: &str) -> Result<Vec<WorkType>, StoreError> {
        self.conn
            .query(
                &format!(
                    "SELECT {WORK_TYPE_COLUMNS} FROM work_types WHERE company_id = ?1 ORDER BY code"
                ),
                sql_params![company],
            )?
            .into_iter()
            .map(work_type_from_row)
            .collect()
    }
}
