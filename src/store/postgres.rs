//! The PostgreSQL backend, chosen by a `postgres://` database URL: several gateway nodes share
//! one database. tokio-postgres connections from a deadpool pool; `writer.connections` writer
//! threads each keep one connection and commit their own batches, reads take one from the pool.
//!
//! The driver is async while the table modules are synchronous (they run inside a writer's
//! transaction); the backend therefore owns a small runtime of its own, on which every
//! statement runs, and waits for it from the writer threads and the blocking read pool. Its
//! own runtime also keeps the store independent of how the caller's runtime is built.

use std::cell::Cell as Flag;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BufMut;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{NoTls, Statement};

use super::sql::{Cell, Conn, Dialect, Param, Row};
use super::writer::{self, Syncer, TxConn, WriterHealth};
use super::{ReadPool, Store, StoreError, StoreOptions, migrations};

/// Connections kept for reads beside the writers'.
const READ_CONNECTIONS: usize = 16;

pub(super) fn open(options: &StoreOptions) -> Result<Store, StoreError> {
    let open_error = |reason: String| StoreError::Open {
        target: redact(&options.database),
        reason,
    };
    let pg_config: tokio_postgres::Config = options
        .database
        .parse()
        .map_err(|e: tokio_postgres::Error| open_error(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hookgate-postgres")
        .enable_all()
        .build()
        .map_err(|e| open_error(e.to_string()))?;
    let manager = Manager::from_config(
        pg_config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let writers = options.writers.max(1);
    let pool = Pool::builder(manager)
        // One more for the WAL flusher.
        .max_size(writers + 1 + READ_CONNECTIONS)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| open_error(e.to_string()))?;
    let backend = Arc::new(Backend {
        runtime: Some(runtime),
        pool,
    });

    // Statements wait on the backend's runtime, which the caller's may not do: the
    // migrations run on a thread of their own.
    let migrated = std::thread::scope(|scope| {
        scope
            .spawn(|| migrations::run(&backend.connect()?))
            .join()
            .expect("migrations do not panic")
    });
    migrated?;

    let (jobs, queue) = flume::bounded(options.max_batch * 4);
    let health = Arc::new(WriterHealth::default());
    let flusher = Arc::new(WalFlusher {
        backend: backend.clone(),
        state: Mutex::new(FlusherState::default()),
    });
    for n in 0..writers {
        let conn = backend.connect()?;
        let (queue, health, flusher) = (queue.clone(), health.clone(), flusher.clone());
        let max_batch = options.max_batch;
        std::thread::Builder::new()
            .name(format!("hookgate-writer-{n}"))
            .spawn(move || {
                // On the writer's thread: statements wait on the backend's runtime, which the
                // caller's may not do.
                let syncer: Option<Box<dyn Syncer>> =
                    match conn.batch("SET synchronous_commit = off") {
                        Ok(()) => Some(Box::new(PgSyncer(flusher))),
                        Err(e) => {
                            tracing::warn!(error = %e, "this writer commits synchronously");
                            None
                        }
                    };
                writer::run(Box::new(conn), syncer, queue, max_batch, health)
            })
            .map_err(|e| open_error(e.to_string()))?;
    }
    Ok(Store::assemble(
        jobs,
        Arc::new(Readers {
            backend: backend.clone(),
        }),
        health,
        Dialect::Postgres,
        backend,
    ))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

struct Backend {
    /// `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
}

impl Drop for Backend {
    fn drop(&mut self) {
        // The last store handle may be dropped inside an async context, where a runtime may
        // not be dropped the blocking way.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Backend {
    fn block_on<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the backend")
            .block_on(work)
    }

    fn connect(self: &Arc<Self>) -> Result<PgConn, StoreError> {
        let backend = self.clone();
        // On a thread of its own: the caller may be a thread of another runtime.
        let client = std::thread::scope(|scope| {
            scope
                .spawn(|| backend.block_on(backend.pool.get()))
                .join()
                .expect("connecting does not panic")
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        Ok(PgConn {
            backend: self.clone(),
            client,
            in_transaction: Flag::new(false),
        })
    }
}

/// Makes the writers' commits durable for all of them at once. Writers commit with
/// `synchronous_commit = off`, so COMMIT returns before its WAL is flushed; a transaction that
/// commits synchronously waits for the WAL up to its own commit record, which comes after
/// every commit that returned before it began. One such flush covers every writer's batches
/// committed meanwhile, and the writers go on with their next batches while it runs.
struct WalFlusher {
    backend: Arc<Backend>,
    state: Mutex<FlusherState>,
}

#[derive(Default)]
struct FlusherState {
    conn: Option<PgConn>,
    /// When the last flush that succeeded began: it covered every commit returned before.
    last_started: Option<Instant>,
}

impl WalFlusher {
    /// Flushes the WAL past every commit that returned before `asked`.
    fn flush(&self, asked: Instant) -> Result<(), StoreError> {
        let mut state = self.state.lock().expect("flusher lock");
        if state.last_started.is_some_and(|started| started >= asked) {
            return Ok(()); // another writer's flush, begun after ours was asked for
        }
        let started = Instant::now();
        if state.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            let conn = self.backend.connect()?;
            conn.batch("SET synchronous_commit = on")?;
            state.conn = Some(conn);
        }
        let conn = state.conn.as_ref().expect("connected above");
        // `txid_current()` gives the transaction an id, so its commit writes a record and
        // waits for the flush.
        match conn.batch("SELECT txid_current()") {
            Ok(()) => {
                state.last_started = Some(started);
                Ok(())
            }
            Err(e) => {
                state.conn = None;
                Err(e)
            }
        }
    }
}

struct PgSyncer(Arc<WalFlusher>);

impl Syncer for PgSyncer {
    fn sync(&mut self) -> Result<(), StoreError> {
        self.0.flush(Instant::now())
    }

    /// The server's crash recovery keeps its log whole: a failed flush fails only the jobs it
    /// covered.
    fn failure_halts(&self) -> bool {
        false
    }
}

/// One pooled connection.
pub(super) struct PgConn {
    backend: Arc<Backend>,
    client: Object,
    /// Whether `begin` opened a transaction that has not ended. (PostgreSQL never ends one by
    /// itself after an error; it refuses statements until the savepoint is rolled back.)
    in_transaction: Flag<bool>,
}

impl PgConn {
    fn run<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.backend.block_on(work)
    }

    fn statement(&self, sql: &str) -> Result<Statement, StoreError> {
        let sql = to_dollar_placeholders(sql);
        self.run(self.client.prepare_cached(&sql))
            .map_err(map_error)
    }
}

/// Translates `?N` placeholders into PostgreSQL's `$N`, leaving string literals alone.
fn to_dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut in_literal = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_literal = !in_literal;
                out.push(c);
            }
            '?' if !in_literal && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

fn params<'p>(params: &'p [Param<'p>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Conn for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, values: &[Param]) -> Result<usize, StoreError> {
        let statement = self.statement(sql)?;
        self.run(self.client.execute(&statement, &params(values)))
            .map(|n| n as usize)
            .map_err(map_error)
    }

    fn query(&self, sql: &str, values: &[Param]) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        let rows = self
            .run(self.client.query(&statement, &params(values)))
            .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.try_get::<_, Cell>(i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.run(self.client.batch_execute(sql)).map_err(map_error)
    }
}

impl TxConn for PgConn {
    fn begin(&self) -> Result<(), StoreError> {
        self.batch("BEGIN")?;
        self.in_transaction.set(true);
        Ok(())
    }

    fn commit(&self) -> Result<(), StoreError> {
        self.in_transaction.set(false);
        self.batch("COMMIT")
    }

    fn rollback(&self) {
        self.in_transaction.set(false);
        let _ = self.batch("ROLLBACK");
    }

    fn in_transaction(&self) -> bool {
        self.in_transaction.get() && !self.client.is_closed()
    }

    /// A new connection commits synchronously (the default): correct without the flusher.
    fn reconnect(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            *self = self.backend.connect()?;
        }
        Ok(())
    }
}

struct Readers {
    backend: Arc<Backend>,
}

impl ReadPool for Readers {
    fn with_conn(&self, job: &mut dyn FnMut(&dyn Conn)) -> Result<(), StoreError> {
        let client = self
            .backend
            .block_on(self.backend.pool.get())
            .map_err(|e| StoreError::Unavailable(format!("no PostgreSQL connection: {e}")))?;
        let conn = PgConn {
            backend: self.backend.clone(),
            client,
            in_transaction: Flag::new(false),
        };
        job(&conn);
        Ok(())
    }
}

/// Maps PostgreSQL's errors onto what callers can act on.
fn map_error(e: tokio_postgres::Error) -> StoreError {
    let text = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    if e.is_closed() {
        return StoreError::Unavailable(text);
    }
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection or the protocol failed.
        return StoreError::Unavailable(text);
    };
    match code {
        c if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(text),
        c if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            StoreError::Aborted(text)
        }
        c if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
            StoreError::Corrupt(text)
        }
        c if c.code().starts_with("08") // connection exception
            || c.code().starts_with("53") // insufficient resources (disk full, ...)
            || c.code().starts_with("57") // operator intervention (shutdown, ...)
            || c.code().starts_with("58") =>
        // system error (I/O)
        {
            StoreError::Unavailable(text)
        }
        _ => StoreError::Query(text),
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(v) => match *ty {
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::FLOAT8 => (v as f64).to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Param::Real(v) => match *ty {
                Type::FLOAT4 => (v as f32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Param::Bool(v) => match *ty {
                Type::INT2 | Type::INT4 | Type::INT8 => Param::Int(i64::from(v)).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Param::Text(v) => match *ty {
                Type::JSON => {
                    out.put_slice(v.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSONB => {
                    out.put_u8(1);
                    out.put_slice(v.as_bytes());
                    Ok(IsNull::No)
                }
                Type::BYTEA => v.as_bytes().to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Param::Blob(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        Ok(match *ty {
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => Cell::Real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Cell::Real(f64::from_sql(ty, raw)?),
            Type::BOOL => Cell::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::BYTEA => Cell::Blob(raw.to_vec()),
            Type::JSON => Cell::Text(std::str::from_utf8(raw)?.to_string()),
            Type::JSONB => {
                Cell::Text(std::str::from_utf8(raw.get(1..).unwrap_or(&[]))?.to_string())
            }
            Type::VOID => Cell::Null,
            _ => Cell::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_translate_outside_literals_only() {
        assert_eq!(
            to_dollar_placeholders("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/hooks"),
            "postgres://app:***@db:5432/hooks"
        );
    }
}
