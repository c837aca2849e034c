//! A company's records (work orders, projects, employees, ...) as JSON documents found by
//! kind and natural key; skills, work types and counters; and the event log that doubles as
//! the transactional outbox.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

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
    pub event_type: &'a str,
    pub entity: &'a str,
    pub record_id: &'a str,
    pub project_code: Option<&'a str>,
    pub payload: &'a Value,
    pub created_at: i64,
}

/// The work types every company starts with: (code, name, billable, requires work order,
/// multiplier, default).
const DEFAULT_WORK_TYPES: &[(&str, &str, bool, bool, f64, bool)] = &[
    ("REG", "Regular Time", true, true, 1.0, true),
    ("OT", "Overtime", true, true, 1.5, false),
    ("VAC", "Vacation", false, false, 1.0, false),
    ("SICK", "Sick Leave", false, false, 1.0, false),
    ("HOL", "Holiday", false, false, 1.0, false),
];

fn parse_data(text: String) -> Result<Value, StoreError> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("record data: {e}")))
}

fn record_from_row(r: &rusqlite::Row) -> rusqlite::Result<(String, String, String, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn to_record(
    (record_id, natural_key, data, created_at, updated_at): (String, String, String, i64, i64),
) -> Result<Record, StoreError> {
    Ok(Record {
        record_id,
        natural_key,
        data: parse_data(data)?,
        created_at,
        updated_at,
    })
}

fn get(
    conn: &rusqlite::Connection,
    company: &str,
    kind: &str,
    natural_key: &str,
) -> Result<Option<Record>, StoreError> {
    conn.prepare_cached(
        "SELECT record_id, natural_key, data, created_at, updated_at FROM records
         WHERE company_id = ?1 AND kind = ?2 AND natural_key = ?3",
    )?
    .query_row(params![company, kind, natural_key], record_from_row)
    .optional()?
    .map(to_record)
    .transpose()
}

/// Records of `kind`, optionally only those whose JSON `field` equals `value`.
fn list(
    conn: &rusqlite::Connection,
    company: &str,
    kind: &str,
    field_eq: Option<(&str, &str)>,
) -> Result<Vec<Record>, StoreError> {
    let (field, value) = match field_eq {
        Some((f, v)) => (Some(format!("$.{f}")), Some(v)),
        None => (None, None),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT record_id, natural_key, data, created_at, updated_at FROM records
         WHERE company_id = ?1 AND kind = ?2
           AND (?3 IS NULL OR lower(json_extract(data, ?3)) = lower(?4))
         ORDER BY created_at, record_id",
    )?;
    let rows = stmt.query_map(params![company, kind, field, value], record_from_row)?;
    rows.map(|r| to_record(r?)).collect()
}

impl WriteTx<'_> {
    pub fn get_record(
        &self,
        company: &str,
        kind: &str,
        natural_key: &str,
    ) -> Result<Option<Record>, StoreError> {
        get(self.conn, company, kind, natural_key)
    }

    pub fn list_records(
        &self,
        company: &str,
        kind: &str,
        field_eq: Option<(&str, &str)>,
    ) -> Result<Vec<Record>, StoreError> {
        list(self.conn, company, kind, field_eq)
    }

    /// Inserts `record` (its `created_at` is used for both timestamps).
    pub fn insert_record(
        &self,
        company: &str,
        kind: &str,
        record: &Record,
        key_id: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO records (company_id, kind, natural_key, record_id, data, created_at,
                    updated_at, created_by, updated_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?7)",
            )?
            .execute(params![
                company,
                kind,
                record.natural_key,
                record.record_id,
                record.data.to_string(),
                record.created_at,
                key_id
            ])?;
        Ok(())
    }

    /// Replaces the data (and possibly the natural key) of an existing record.
    pub fn update_record(
        &self,
        record_id: &str,
        natural_key: &str,
        data: &Value,
        key_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE records SET natural_key = ?2, data = ?3, updated_at = ?4, updated_by = ?5
                 WHERE record_id = ?1",
            )?
            .execute(params![
                record_id,
                natural_key,
                data.to_string(),
                now,
                key_id
            ])?;
        Ok(())
    }

    pub fn delete_record(&self, record_id: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM records WHERE record_id = ?1")?
            .execute([record_id])?;
        Ok(())
    }

    /// Increments and returns the company's counter `name` (starting at 1).
    pub fn next_counter(&self, company: &str, name: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO counters (company_id, name, value) VALUES (?1, ?2, 1)
                 ON CONFLICT(company_id, name) DO UPDATE SET value = value + 1
                 RETURNING value",
            )?
            .query_row(params![company, name], |r| r.get(0))?)
    }

    pub fn insert_event(&self, e: &NewEvent) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO events (event_id, company_id, origin_key_id, inbound_event_id,
                    event_type, entity, record_id, project_code, payload, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                e.event_id,
                e.company_id,
                e.origin_key_id,
                e.inbound_event_id,
                e.event_type,
                e.entity,
                e.record_id,
                e.project_code,
                e.payload.to_string(),
                e.created_at
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Names among `names` that are not in the company's skill library, in the given order.
    pub fn missing_skills(
        &self,
        company: &str,
        names: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM skills WHERE company_id = ?1 AND name = ?2")?;
        let mut missing = Vec::new();
        for name in names {
            if !stmt.exists(params![company, name])? {
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
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO skills (company_id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )?;
        let mut added = 0;
        for name in names {
            added += stmt.execute(params![company, name.trim(), now])?;
        }
        Ok(added)
    }

    /// Gives a company the default work types if it has none.
    pub fn ensure_work_types(&self, company: &str) -> Result<(), StoreError> {
        let has: bool = self
            .conn
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM work_types WHERE company_id = ?1)")?
            .query_row([company], |r| r.get(0))?;
        if !has {
            for (code, name, billable, requires, multiplier, default) in DEFAULT_WORK_TYPES {
                self.upsert_work_type(
                    company,
                    &WorkType {
                        code: code.to_string(),
                        name: name.to_string(),
                        billable: *billable,
                        requires_work_order: *requires,
                        multiplier: *multiplier,
                        is_default: *default,
                        active: true,
                    },
                )?;
            }
        }
        Ok(())
    }

    pub fn upsert_work_type(&self, company: &str, w: &WorkType) -> Result<(), StoreError> {
        if w.is_default {
            self.conn.execute(
                "UPDATE work_types SET is_default = 0 WHERE company_id = ?1",
                [company],
            )?;
        }
        self.conn
            .prepare_cached(
                "INSERT INTO work_types (company_id, code, name, billable, requires_work_order,
                    multiplier, is_default, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(company_id, code) DO UPDATE SET name = excluded.name,
                    billable = excluded.billable, requires_work_order = excluded.requires_work_order,
                    multiplier = excluded.multiplier, is_default = excluded.is_default,
                    active = excluded.active",
            )?
            .execute(params![company, w.code, w.name, w.billable, w.requires_work_order, w.multiplier, w.is_default, w.active])?;
        Ok(())
    }

    /// The active work type with this code, else with this name, else the company default.
    pub fn find_work_type(
        &self,
        company: &str,
        code: Option<&str>,
        name: Option<&str>,
    ) -> Result<Option<WorkType>, StoreError> {
        let sql = match (code, name) {
            (Some(_), _) => "code = ?2",
            (None, Some(_)) => "lower(name) = lower(?2)",
            (None, None) => "is_default = 1 AND ?2 IS NULL",
        };
        let key = code.or(name);
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT code, name, billable, requires_work_order, multiplier, is_default, active
                 FROM work_types WHERE company_id = ?1 AND active = 1 AND {sql}"
            ))?
            .query_row(params![company, key], work_type_from_row)
            .optional()?)
    }
}

fn work_type_from_row(r: &rusqlite::Row) -> rusqlite::Result<WorkType> {
    Ok(WorkType {
        code: r.get(0)?,
        name: r.get(1)?,
        billable: r.get(2)?,
        requires_work_order: r.get(3)?,
        multiplier: r.get(4)?,
        is_default: r.get(5)?,
        active: r.get(6)?,
    })
}

impl ReadConn {
    pub fn get_record(
        &self,
        company: &str,
        kind: &str,
        natural_key: &str,
    ) -> Result<Option<Record>, StoreError> {
        get(&self.conn, company, kind, natural_key)
    }

    pub fn list_records(
        &self,
        company: &str,
        kind: &str,
        field_eq: Option<(&str, &str)>,
    ) -> Result<Vec<Record>, StoreError> {
        list(&self.conn, company, kind, field_eq)
    }

    pub fn list_skills(&self, company: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM skills WHERE company_id = ?1 ORDER BY name")?;
        let rows = stmt.query_map([company], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn list_work_types(&self, company: &str) -> Result<Vec<WorkType>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT code, name, billable, requires_work_order, multiplier, is_default, active
             FROM work_types WHERE company_id = ?1 ORDER BY code",
        )?;
        let rows = stmt.query_map([company], work_type_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
