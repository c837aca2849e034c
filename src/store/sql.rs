//! Backend-neutral SQL plumbing: the values bound to statements ([`Param`]) and read from rows
//! ([`Row`]), the connection trait each backend implements ([`Conn`]), and the few fragments
//! where SQLite and PostgreSQL spell things differently ([`Dialect`]).
//!
//! The table modules (`records.rs`, `keys.rs`, ...) are written once against these types, with
//! `?1`-style placeholders; a backend translates them to its own form.

use super::StoreError;

/// A value bound to a statement parameter. Borrowed, so binding never copies text or bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Param::Int(i64::from(v))
    }
}

impl From<u16> for Param<'_> {
    fn from(v: u16) -> Self {
        Param::Int(i64::from(v))
    }
}

impl From<usize> for Param<'_> {
    fn from(v: usize) -> Self {
        Param::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Param<'_> {
    fn from(v: f64) -> Self {
        Param::Real(v)
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Blob(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Blob(v)
    }
}

/// `None` binds NULL.
macro_rules! optional_params {
    ($($t:ty),*) => {$(
        impl<'a> From<Option<$t>> for Param<'a> {
            fn from(v: Option<$t>) -> Self {
                v.map_or(Param::Null, Into::into)
            }
        }
    )*};
}
optional_params!(
    i64,
    u32,
    u16,
    usize,
    f64,
    bool,
    &'a str,
    &'a String,
    &'a [u8],
    &'a Vec<u8>
);

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_ref().into()
    }
}

impl<'a> From<&'a Option<Vec<u8>>> for Param<'a> {
    fn from(v: &'a Option<Vec<u8>>) -> Self {
        v.as_ref().into()
    }
}

/// `sql_params![a, b, c]`: a slice of [`Param`]s from anything that converts into one.
macro_rules! sql_params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::sql::Param::from($value)),*][..]
    };
}
pub(crate) use sql_params;

/// A value read from a result column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// One result row. Accessors take the column index and fail with [`StoreError::Corrupt`]
/// when the stored value does not have the expected type.
#[derive(Debug, Clone, Default)]
pub struct Row(pub(super) Vec<Cell>);

fn wrong_type(index: usize, expected: &str, found: &Cell) -> StoreError {
    StoreError::Corrupt(format!(
        "column {index}: expected {expected}, found {found:?}"
    ))
}

/// Moves a cell's value out, leaving `Null` behind.
fn take(cell: &mut Cell) -> Cell {
    std::mem::replace(cell, Cell::Null)
}

impl Row {
    fn cell(&self, index: usize) -> &Cell {
        self.0.get(index).unwrap_or(&Cell::Null)
    }

    pub fn opt_i64(&self, index: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(index) {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            other => Err(wrong_type(index, "an integer", other)),
        }
    }

    pub fn i64(&self, index: usize) -> Result<i64, StoreError> {
        self.opt_i64(index)?
            .ok_or_else(|| wrong_type(index, "an integer", &Cell::Null))
    }

    pub(crate) fn opt_u32(&self, index: usize) -> Result<Option<u32>, StoreError> {
        self.opt_i64(index)?
            .map(|v| u32::try_from(v).map_err(|_| wrong_type(index, "a u32", &Cell::Int(v))))
            .transpose()
    }

    pub(crate) fn u32(&self, index: usize) -> Result<u32, StoreError> {
        let v = self.i64(index)?;
        u32::try_from(v).map_err(|_| wrong_type(index, "a u32", &Cell::Int(v)))
    }

    pub(crate) fn opt_u16(&self, index: usize) -> Result<Option<u16>, StoreError> {
        self.opt_i64(index)?
            .map(|v| u16::try_from(v).map_err(|_| wrong_type(index, "a u16", &Cell::Int(v))))
            .transpose()
    }

    pub fn u16(&self, index: usize) -> Result<u16, StoreError> {
        self.opt_u16(index)?
            .ok_or_else(|| wrong_type(index, "a u16", &Cell::Null))
    }

    pub fn bool(&self, index: usize) -> Result<bool, StoreError> {
        Ok(self.i64(index)? != 0)
    }

    pub(crate) fn opt_f64(&self, index: usize) -> Result<Option<f64>, StoreError> {
        match self.cell(index) {
            Cell::Null => Ok(None),
            Cell::Real(v) => Ok(Some(*v)),
            Cell::Int(v) => Ok(Some(*v as f64)),
            other => Err(wrong_type(index, "a number", other)),
        }
    }

    pub(crate) fn f64(&self, index: usize) -> Result<f64, StoreError> {
        self.opt_f64(index)?
            .ok_or_else(|| wrong_type(index, "a number", &Cell::Null))
    }

    /// Moves the text out of the row (each column is read once).
    pub fn opt_text(&mut self, index: usize) -> Result<Option<String>, StoreError> {
        match self.0.get_mut(index).map(take) {
            None | Some(Cell::Null) => Ok(None),
            Some(Cell::Text(s)) => Ok(Some(s)),
            Some(Cell::Blob(b)) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("column {index}: invalid UTF-8"))),
            Some(other) => Err(wrong_type(index, "text", &other)),
        }
    }

    pub fn text(&mut self, index: usize) -> Result<String, StoreError> {
        self.opt_text(index)?
            .ok_or_else(|| wrong_type(index, "text", &Cell::Null))
    }

    pub fn opt_blob(&mut self, index: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.0.get_mut(index).map(take) {
            None | Some(Cell::Null) => Ok(None),
            Some(Cell::Blob(b)) => Ok(Some(b)),
            Some(Cell::Text(s)) => Ok(Some(s.into_bytes())),
            Some(other) => Err(wrong_type(index, "bytes", &other)),
        }
    }

    pub fn blob(&mut self, index: usize) -> Result<Vec<u8>, StoreError> {
        self.opt_blob(index)?
            .ok_or_else(|| wrong_type(index, "bytes", &Cell::Null))
    }
}

/// The SQL dialect of a backend, for the few places where SQLite and PostgreSQL differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Appended to a `SELECT` in a write transaction that reads a row it may then change, so
    /// that two concurrent transactions cannot both read the old value (PostgreSQL; SQLite
    /// transactions are serialized anyway).
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// Like [`Dialect::for_update`], but rows another transaction holds are skipped (work
    /// queues claimed by several nodes).
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// [`Dialect::skip_locked`] for the rows of one table (`alias`) of a join.
    pub(crate) fn skip_locked_of(self, alias: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!(" FOR UPDATE OF {alias} SKIP LOCKED"),
        }
    }

    /// The text of JSON field `field` of a JSON document column `column`.
    pub(crate) fn json_text(self, column: &str, field: &str) -> String {
        debug_assert!(field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        match self {
            Dialect::Sqlite => format!("json_extract({column}, '$.{field}')"),
            Dialect::Postgres => format!("({column} ->> '{field}')"),
        }
    }
}

/// A connection as the table modules see it: statements with `?N` placeholders.
pub(crate) trait Conn {
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns how many rows it changed.
    fn execute(&self, sql: &str, params: &[Param]) -> Result<usize, StoreError>;

    /// Runs a query and returns every row.
    fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError>;

    /// Runs statements without parameters or results (DDL, transaction control).
    fn batch(&self, sql: &str) -> Result<(), StoreError>;

    /// The first row, if any.
    fn query_opt(&self, sql: &str, params: &[Param]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Exactly one row.
    fn query_one(&self, sql: &str, params: &[Param]) -> Result<Row, StoreError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Query(format!("no row returned by: {sql}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_convert_and_report_wrong_types() {
        let mut row = Row(vec![
            Cell::Int(7),
            Cell::Text("a".into()),
            Cell::Null,
            Cell::Real(1.5),
        ]);
        assert_eq!(row.i64(0).unwrap(), 7);
        assert!(row.bool(0).unwrap());
        assert_eq!(row.text(1).unwrap(), "a");
        assert_eq!(row.opt_text(2).unwrap(), None);
        assert_eq!(row.f64(3).unwrap(), 1.5);
        assert!(matches!(row.i64(3), Err(StoreError::Corrupt(_))));
        assert!(row.i64(2).is_err());
    }

    #[test]
    fn params_convert_from_options_and_references() {
        let name = String::from("x");
        let none: Option<&str> = None;
        let p = sql_params![1i64, &name, none, Some(2u32), true];
        assert!(matches!(p[1], Param::Text("x")));
        assert!(matches!(p[2], Param::Null));
        assert!(matches!(p[3], Param::Int(2)));
        assert!(matches!(p[4], Param::Bool(true)));
    }
}
