//! Search indexes over records: the searchable fields of projects and work orders are kept in
//! `search_values` beside the records, with a B-tree index for exact matches (any case) and a
//! trigram index for fuzzy candidates (SQLite: an FTS5 table with the trigram tokenizer, kept
//! in step by triggers; PostgreSQL: pg_trgm's GIN index). Ranking and the typo tolerance are
//! the caller's; this module only finds candidates without reading every record.

use serde_json::Value;

use super::sql::{Dialect, Param, Row, sql_params};
use super::{ReadConn, Record, StoreError, WriteTx};

/// The fields searches look in, per kind of record, and the field that scopes a search (a
/// work order search may be limited to one project).
const SEARCHABLE: &[(&str, &[&str], Option<&str>)] = &[
    ("project", &["project_name", "project_code"], None),
    (
        "work_order",
        &["phase_name", "work_order_number"],
        Some("project_code"),
    ),
];

fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// How much of a value is indexed: searches read no further (`apply::search` scores the
/// same window), so an enormous stored name costs no more than a long one.
const INDEXED_CHARS: usize = 512;

/// How a search value is compared: trimmed, lower case, at most [`INDEXED_CHARS`].
pub(super) fn search_key(value: &str) -> String {
    value
        .trim()
        .chars()
        .take(INDEXED_CHARS)
        .collect::<String>()
        .to_lowercase()
}

impl WriteTx<'_> {
    /// Brings the search index of a record up to date with its data.
    pub(super) fn index_record(
        &self,
        company: &str,
        kind: &str,
        record_id: &str,
        data: &Value,
    ) -> Result<(), StoreError> {
        let Some((_, fields, scope_field)) = SEARCHABLE.iter().find(|(k, _, _)| *k == kind) else {
            return Ok(());
        };
        let scope = scope_field.and_then(|f| text_of(data.get(f)));
        for field in *fields {
            match text_of(data.get(*field)) {
                Some(value) => {
                    self.conn.execute(
                        "INSERT INTO search_values (record_id, field, company_id, kind, scope,
                            value, value_lower)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (record_id, field) DO UPDATE SET scope = excluded.scope,
                            value = excluded.value, value_lower = excluded.value_lower",
                        sql_params![
                            record_id,
                            *field,
                            company,
                            kind,
                            &scope,
                            &value,
                            &search_key(&value)
                        ],
                    )?;
                }
                None => {
                    self.conn.execute(
                        "DELETE FROM search_values WHERE record_id = ?1 AND field = ?2",
                        sql_params![record_id, *field],
                    )?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn unindex_record(&self, record_id: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM search_values WHERE record_id = ?1",
            sql_params![record_id],
        )?;
        Ok(())
    }
}

/// What a search asks for.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub company_id: String,
    pub kind: String,
    pub field: String,
    pub term: String,
    /// Only records in this scope (a work order search's project).
    pub scope: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

const RECORD_COLUMNS: &str = "r.record_id, r.natural_key, r.data, r.created_at, r.updated_at";

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

impl ReadConn<'_> {
    /// Records whose field equals the term (ignoring case and surrounding spaces), oldest
    /// first, one page of them.
    pub(crate) fn search_exact(&self, q: &SearchQuery) -> Result<Vec<Record>, StoreError> {
        let key = search_key(&q.term);
        let mut params: Vec<Param> = vec![
            Param::Text(&q.company_id),
            Param::Text(&q.kind),
            Param::Text(&q.field),
            Param::Text(&key),
        ];
        let scope = scope_condition(q, &mut params);
        params.push(Param::from(q.limit));
        params.push(Param::from(q.offset));
        let (limit, offset) = (params.len() - 1, params.len());
        self.conn
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM search_values s
                     JOIN records r ON r.record_id = s.record_id
                     WHERE s.company_id = ?1 AND s.kind = ?2 AND s.field = ?3
                       AND s.value_lower = ?4{scope}
                     ORDER BY r.created_at, r.record_id LIMIT ?{limit} OFFSET ?{offset}"
                ),
                &params,
            )?
            .into_iter()
            .map(record_from_row)
            .collect()
    }

    /// Up to `q.limit` records whose field shares the most letter triples with the term (or,
    /// for terms too short for triples, contains it), best first: the candidates a fuzzy
    /// search ranks.
    pub(crate) fn search_candidates(&self, q: &SearchQuery) -> Result<Vec<Record>, StoreError> {
        let key = search_key(&q.term);
        let grams = fts_query(&key);
        if grams.is_empty() {
            return self.search_containing(q, &key);
        }
        let mut params: Vec<Param> = vec![
            Param::Text(&q.company_id),
            Param::Text(&q.kind),
            Param::Text(&q.field),
        ];
        let scope = scope_condition(q, &mut params);
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                params.push(Param::Text(&grams));
                format!(
                    "SELECT {RECORD_COLUMNS} FROM search_grams g
                     JOIN search_values s ON s.id = g.rowid
                     JOIN records r ON r.record_id = s.record_id
                     WHERE search_grams MATCH ?{} AND s.company_id = ?1 AND s.kind = ?2
                       AND s.field = ?3{scope}
                     ORDER BY g.rank LIMIT ?{}",
                    params.len(),
                    params.len() + 1
                )
            }
            Dialect::Postgres => {
                // `<%` finds candidates above this word similarity (pg_trgm's default, 0.6,
                // misses two typos in two words); the caller's scoring decides.
                self.conn
                    .batch("SET pg_trgm.word_similarity_threshold = 0.3")?;
                params.push(Param::Text(&key));
                format!(
                    "SELECT {RECORD_COLUMNS} FROM search_values s
                     JOIN records r ON r.record_id = s.record_id
                     WHERE s.company_id = ?1 AND s.kind = ?2 AND s.field = ?3{scope}
                       AND (?{n} <% s.value_lower OR s.value_lower LIKE '%' || ?{n} || '%')
                     ORDER BY word_similarity(?{n}, s.value_lower) DESC LIMIT ?{}",
                    params.len() + 1,
                    n = params.len()
                )
            }
        };
        params.push(Param::from(q.limit));
        self.conn
            .query(&sql, &params)?
            .into_iter()
            .map(record_from_row)
            .collect()
    }

    fn search_containing(&self, q: &SearchQuery, key: &str) -> Result<Vec<Record>, StoreError> {
        let pattern = format!("%{}%", key.replace(['%', '_'], ""));
        let mut params: Vec<Param> = vec![
            Param::Text(&q.company_id),
            Param::Text(&q.kind),
            Param::Text(&q.field),
            Param::Text(&pattern),
        ];
        let scope = scope_condition(q, &mut params);
        params.push(Param::from(q.limit));
        self.conn
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM search_values s
                     JOIN records r ON r.record_id = s.record_id
                     WHERE s.company_id = ?1 AND s.kind = ?2 AND s.field = ?3
                       AND s.value_lower LIKE ?4{scope}
                     ORDER BY length(s.value_lower) LIMIT ?{}",
                    params.len()
                ),
                &params,
            )?
            .into_iter()
            .map(record_from_row)
            .collect()
    }
}

fn scope_condition<'q>(q: &'q SearchQuery, params: &mut Vec<Param<'q>>) -> String {
    match &q.scope {
        Some(scope) => {
            params.push(Param::Text(scope));
            format!(" AND lower(s.scope) = lower(?{})", params.len())
        }
        None => String::new(),
    }
}

/// An FTS5 query matching any of the term's letter triples: `"sky" OR "kyl" OR ...`; empty
/// when the term has none (too short).
fn fts_query(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut grams: Vec<String> = chars
        .windows(3)
        .map(|w| w.iter().collect::<String>())
        .filter(|g| !g.contains('"'))
        .collect();
    grams.sort();
    grams.dedup();
    grams
        .iter()
        .map(|g| format!("\"{g}\""))
        .collect::<Vec<_>>()
        .join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_becomes_its_distinct_triples() {
        assert_eq!(fts_query("abab"), r#""aba" OR "bab""#);
        assert_eq!(fts_query("a\"bc"), "", "triples with a quote are left out");
        assert_eq!(fts_query("ab"), "");
    }
}
