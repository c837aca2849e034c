//! The SQLite backend: connections and their settings, the writer thread, the read pool, WAL
//! checkpoints and the bound on the WAL's size.
//!
//! SQLite serializes every write transaction of a database file (also across processes), so one
//! writer thread with group commit is all the write concurrency there is; reads run beside it
//! on WAL snapshots.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};

use super::sql::{Cell, Conn, Dialect, Param, Row};
use super::writer::{self, Syncer, TxConn, WriterHealth};
use super::{ReadPool, Store, StoreError, StoreOptions, WriteTx, migrations};

/// How long a statement waits for a lock another connection holds (the CLI, a checkpoint).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the writer waits for readers when it restarts the WAL; it tries again after the
/// next batch rather than stall intake.
const RESTART_BUSY_TIMEOUT: Duration = Duration::from_millis(50);
/// Page cache of the writer's connection, and of each read connection (KiB).
const WRITER_CACHE_KIB: u64 = 64 * 1024;
const READER_CACHE_KIB: u64 = 8 * 1024;
/// Events published at a time by the start's catch-up (see `open`).
const PUBLISH_AT_START: usize = 10_000;
/// Checkpoints copy the WAL back into the database file; short enough that the part left for
/// the writer's restart is small.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

pub(super) fn open(options: &StoreOptions) -> Result<Store, StoreError> {
    let path = PathBuf::from(&options.database);
    let open_error = |reason: String| StoreError::Open {
        target: path.display().to_string(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
    }
    let conn = SqliteConn::open(&path)?;
    migrations::run(&conn)?;
    // Events are published as they are written (`insert_event`); any that an earlier version
    // left unpublished get their positions first, so that none comes after a newer one.
    let catch_up = WriteTx { conn: &conn };
    while catch_up.publish_events(PUBLISH_AT_START)? == PUBLISH_AT_START {}
    // Checkpoints are done by a thread of its own (below), so the fsync of the database file
    // never stalls the requests queued behind the writer.
    conn.batch("PRAGMA wal_autocheckpoint = 0")?;
    conn.batch(&format!(
        "PRAGMA journal_size_limit = {}",
        options.wal_restart_bytes
    ))?;
    set_max_database_bytes(&conn, options.max_database_bytes)?;
    // SQLite's default page cache is 2 MiB; past that, every insert into a large index reads
    // its pages back from the OS, and intake slows as the store grows.
    conn.batch(&format!("PRAGMA cache_size = -{}", WRITER_CACHE_KIB))?;
    // The writer's COMMIT only appends to the WAL; the sync thread makes it durable (one
    // fdatasync for every batch committed meanwhile) before any job of it is answered.
    conn.batch("PRAGMA synchronous = NORMAL")?;
    let wal_path = wal_path(&path);
    let syncer: Box<dyn Syncer> = Box::new(WalSyncer::new(&wal_path));
    let writer = WriterConn {
        conn,
        wal_path,
        wal_restart_bytes: options.wal_restart_bytes,
    };
    let checkpointer = spawn_checkpointer(&path)?;
    let (jobs, queue) = flume::bounded(options.max_batch * 4);
    let health = Arc::new(WriterHealth::default());
    let writer_health = health.clone();
    let max_batch = options.max_batch;
    std::thread::Builder::new()
        .name("hookgate-writer".into())
        .spawn(move || {
            writer::run(
                Box::new(writer),
                Some(syncer),
                queue,
                max_batch,
                writer_health,
            )
        })
        .map_err(|e| open_error(e.to_string()))?;
    let readers = Arc::new(Readers {
        path,
        idle: Mutex::new(Vec::new()),
    });
    Ok(Store::assemble(
        jobs,
        readers,
        health,
        Dialect::Sqlite,
        Arc::new(checkpointer),
    ))
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// One SQLite connection.
pub(super) struct SqliteConn {
    conn: Connection,
}

impl SqliteConn {
    pub(super) fn open(path: &Path) -> Result<SqliteConn, StoreError> {
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            target: path.display().to_string(),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_error)?;
        let conn = SqliteConn { conn };
        conn.batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;",
        )?;
        Ok(conn)
    }
}

impl SqliteConn {
    /// Whether no transaction is open.
    pub(super) fn is_autocommit(&self) -> bool {
        self.conn.is_autocommit()
    }
}

/// Limits how large the database may grow (0: SQLite's own ceiling). The setting belongs to the
/// connection, so it is made on the writer's.
pub(super) fn set_max_database_bytes(conn: &dyn Conn, bytes: u64) -> Result<(), StoreError> {
    let page_size = conn.query_one("PRAGMA page_size", &[])?.i64(0)?.max(512) as u64;
    let pages = if bytes == 0 {
        4_294_967_294
    } else {
        (bytes / page_size).max(1)
    };
    conn.query_opt(&format!("PRAGMA max_page_count = {pages}"), &[])?;
    Ok(())
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Int(v) => ValueRef::Integer(v),
            Param::Real(v) => ValueRef::Real(v),
            Param::Bool(v) => ValueRef::Integer(i64::from(v)),
            Param::Text(v) => ValueRef::Text(v.as_bytes()),
            Param::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(v) => Cell::Int(v),
        ValueRef::Real(v) => Cell::Real(v),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
    }
}

/// Maps SQLite's errors onto what callers can act on.
fn map_error(e: rusqlite::Error) -> StoreError {
    let text = e.to_string();
    match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::ReadOnly
            | ErrorCode::FileLockingProtocolFailed => StoreError::Unavailable(text),
            ErrorCode::ConstraintViolation
                if matches!(
                    failure.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict(text)
            }
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt(text),
            _ => StoreError::Query(text),
        },
        _ => StoreError::Query(text),
    }
}

impl Conn for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Param]) -> Result<usize, StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(params.iter())))
            .map_err(map_error)
    }

    fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_error)?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(map_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(map_error)? {
            let mut cells = Vec::with_capacity(columns);
            for index in 0..columns {
                cells.push(cell(row.get_ref(index).map_err(map_error)?));
            }
            out.push(Row(cells));
        }
        Ok(out)
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        const CONTROL: [&str; 5] = ["BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"];
        if CONTROL.iter().any(|c| sql.starts_with(c)) {
            // Transaction control and savepoints run on every request: cache them.
            return self
                .conn
                .prepare_cached(sql)
                .and_then(|mut stmt| stmt.execute([]))
                .map(|_| ())
                .map_err(map_error);
        }
        self.conn.execute_batch(sql).map_err(map_error)
    }
}

/// The writer's connection, which also keeps the WAL bounded.
struct WriterConn {
    conn: SqliteConn,
    wal_path: PathBuf,
    wal_restart_bytes: u64,
}

impl WriterConn {
    /// After SQLite rolled a transaction back by itself (a full disk, an I/O error), a later
    /// statement would run, and commit, on its own: jobs' statements are refused instead.
    fn in_open_transaction(&self) -> Result<&SqliteConn, StoreError> {
        if self.conn.is_autocommit() {
            return Err(writer::transaction_lost());
        }
        Ok(&self.conn)
    }
}

impl Conn for WriterConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Param]) -> Result<usize, StoreError> {
        self.in_open_transaction()?.execute(sql, params)
    }

    fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError> {
        self.in_open_transaction()?.query(sql, params)
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.in_open_transaction()?.batch(sql)
    }
}

impl TxConn for WriterConn {
    fn begin(&self) -> Result<(), StoreError> {
        self.conn.batch("BEGIN IMMEDIATE")
    }

    fn commit(&self) -> Result<(), StoreError> {
        self.conn.batch("COMMIT")
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.conn.execute_batch("ROLLBACK");
        }
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// While commits keep coming, the checkpointer never reaches the end of the WAL, and the
    /// log is only restarted from its beginning when a checkpoint has copied all of it. Past
    /// `wal_restart_bytes`, the writer completes the checkpoint itself between two batches
    /// (most frames are already copied, so this is short) and the next batch starts the log
    /// afresh; `journal_size_limit` then truncates the file.
    fn after_batch(&mut self) {
        let size = std::fs::metadata(&self.wal_path)
            .map(|m| m.len())
            .unwrap_or(0);
        if size <= self.wal_restart_bytes {
            return;
        }
        let conn = &self.conn.conn;
        let _ = conn.busy_timeout(RESTART_BUSY_TIMEOUT);
        match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0)) {
            Ok(0) => tracing::debug!(wal_bytes = size, "restarted the WAL"),
            Ok(_) => tracing::debug!(wal_bytes = size, "WAL restart postponed: readers busy"),
            Err(e) => tracing::warn!(error = %e, "WAL restart failed"),
        }
        let _ = conn.busy_timeout(BUSY_TIMEOUT);
    }
}

/// Makes the writer's commits durable: with `synchronous = NORMAL` a COMMIT has appended its
/// frames to the WAL, and an fdatasync of that file puts them on disk. A checkpoint syncs the
/// WAL before it copies frames into the database, so frames a restarted WAL overwrote are
/// already durable in the database file.
struct WalSyncer {
    wal_path: PathBuf,
    /// The open WAL and its inode: SQLite deletes the file when the last connection closes (the
    /// CLI's, say) and creates a new one on the next write, so the file is reopened when the
    /// path names another inode.
    wal: Option<(std::fs::File, u64)>,
}

impl WalSyncer {
    fn new(wal_path: &Path) -> WalSyncer {
        WalSyncer {
            wal_path: wal_path.to_path_buf(),
            wal: None,
        }
    }

    fn open_current(&mut self) -> std::io::Result<&std::fs::File> {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(&self.wal_path)?.ino();
        if self.wal.as_ref().is_none_or(|(_, open)| *open != inode) {
            let file = std::fs::File::open(&self.wal_path)?;
            let inode = file.metadata()?.ino();
            // A new WAL's directory entry must be durable too, or a crash could lose the file.
            if let Some(dir) = self.wal_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            self.wal = Some((file, inode));
        }
        Ok(&self.wal.as_ref().expect("opened above").0)
    }
}

impl Syncer for WalSyncer {
    fn sync(&mut self) -> Result<(), StoreError> {
        let synced = self.open_current().and_then(|wal| wal.sync_data());
        synced.map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.wal_path.display())))
    }
}

/// Read-only connections, opened on demand and kept for reuse.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<SqliteConn>>,
}

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 16;

impl ReadPool for Readers {
    fn with_conn(&self, job: &mut dyn FnMut(&dyn Conn)) -> Result<(), StoreError> {
        let pooled = self.idle.lock().expect("reader pool lock").pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = SqliteConn::open(&self.path)?;
                c.batch(&format!(
                    "PRAGMA query_only = ON; PRAGMA cache_size = -{READER_CACHE_KIB};"
                ))?;
                c
            }
        };
        job(&conn);
        let mut idle = self.idle.lock().expect("reader pool lock");
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        Ok(())
    }
}

/// Stops the checkpoint thread when dropped (with the last store handle).
struct Checkpointer {
    _stop: Mutex<std::sync::mpsc::Sender<()>>,
}

/// Checkpoints the WAL from its own connection (PASSIVE: never blocks the writer or readers)
/// until the store is dropped.
fn spawn_checkpointer(path: &Path) -> Result<Checkpointer, StoreError> {
    let conn = SqliteConn::open(path)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("hookgate-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.query_opt("PRAGMA wal_checkpoint(PASSIVE)", &[]) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
            let _ = conn.query_opt("PRAGMA wal_checkpoint(TRUNCATE)", &[]);
        })
        .map_err(|e| StoreError::Open {
            target: path.display().to_string(),
            reason: e.to_string(),
        })?;
    Ok(Checkpointer {
        _stop: Mutex::new(stop),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The opcodes SQLite compiles `sql` into.
    fn opcodes(conn: &SqliteConn, sql: &str) -> Vec<String> {
        let mut statement = conn.conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        statement
            .query_map([], |row| row.get::<_, String>(1))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn plan(conn: &SqliteConn, sql: &str) -> String {
        let mut statement = conn
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        statement
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn every_query_of_events_is_found_by_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = SqliteConn::open(&dir.path().join("plan.db")).unwrap();
        migrations::run(&conn).unwrap();
        // Migration 7 dropped the indexes no query used; the ones kept must still serve every
        // read of the log (windows, `recover`, publishing, retention).
        for (sql, index) in [
            (
                "SELECT seq FROM events WHERE company_id = 'co' AND position > 5 ORDER BY position LIMIT 10",
                "events_company_position",
            ),
            (
                "SELECT seq FROM events WHERE company_id = 'co' AND created_at >= 1
                 AND position IS NOT NULL ORDER BY position",
                "events_company_position",
            ),
            // Unpublished events sit together in either index, in `seq` order.
            (
                "SELECT seq FROM events WHERE position IS NULL ORDER BY seq LIMIT 10",
                "events_",
            ),
            (
                "SELECT COALESCE(MAX(position), 0) FROM events WHERE company_id = 'co'",
                "events_company_position",
            ),
            (
                "SELECT seq FROM events WHERE created_at < 5 AND position IS NOT NULL
                 ORDER BY created_at LIMIT 10",
                "events_created",
            ),
        ] {
            let plan = plan(&conn, sql);
            assert!(plan.contains(&format!("INDEX {index}")), "{sql}: {plan}");
        }
        let indexes = conn
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
            .unwrap()
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>();
        assert!(
            !indexes
                .iter()
                .any(|i| i == "events_company" || i == "events_record"),
            "{indexes:?}"
        );
    }

    #[test]
    fn events_are_published_as_they_are_written_and_older_unpublished_ones_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("publish.db");
        let conn = SqliteConn::open(&path).unwrap();
        migrations::run(&conn).unwrap();
        // As an earlier version left it: an event without a position, after a published one.
        conn.batch(
            "INSERT INTO events (seq, position, event_id, company_id, event_type, entity,
                 record_id, payload, created_at)
             VALUES (1, 1, 'evt_a', 'co', 'customer.created', 'customer', 'r1', '{}', 1),
                    (2, NULL, 'evt_b', 'co', 'customer.updated', 'customer', 'r1', '{}', 2)",
        )
        .unwrap();
        // The one removed by retention still counts: AUTOINCREMENT never gives its seq again.
        conn.batch(
            "INSERT INTO events (seq, position, event_id, company_id, event_type, entity,
                 record_id, payload, created_at)
             VALUES (9, 9, 'evt_gone', 'co', 'customer.updated', 'customer', 'r1', '{}', 3);
             DELETE FROM events WHERE seq = 9;",
        )
        .unwrap();
        drop(conn);
        let options = StoreOptions {
            database: path.display().to_string(),
            max_batch: 64,
            writers: 1,
            wal_restart_bytes: 64 << 20,
            max_database_bytes: 0,
        };
        let store = Store::open(&options).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let payload = serde_json::json!({});
        let seq = runtime
            .block_on(store.write(move |tx| {
                tx.insert_event(&super::super::NewEvent {
                    event_id: "evt_c",
                    company_id: "co",
                    origin_key_id: None,
                    inbound_event_id: None,
                    about_subscription_id: None,
                    event_type: "customer.updated",
                    entity: "customer",
                    record_id: "r1",
                    project_code: None,
                    payload: &payload,
                    created_at: 4,
                })
            }))
            .unwrap();
        assert_eq!(seq, 10, "after every seq ever given");
        let conn = SqliteConn::open(&path).unwrap();
        let positions: Vec<(String, i64)> = conn
            .conn
            .prepare("SELECT event_id, position FROM events ORDER BY position")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            positions,
            [
                ("evt_a".into(), 1),
                ("evt_b".into(), 2),
                ("evt_c".into(), 10)
            ],
            "the unpublished one was published at start, before the new one"
        );
    }

    #[test]
    fn writing_a_delivery_builds_no_temporary_table_and_unfinished_ones_are_found_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = SqliteConn::open(&dir.path().join("plan.db")).unwrap();
        migrations::run(&conn).unwrap();
        // Every delivery row written checks the partial indexes' predicates; an IN list of
        // three there is a temporary table built for each row.
        for sql in [
            "INSERT INTO deliveries (id, subscription_id, company_id, event_seq, event_id,
                event_type, record_id, status, created_at, updated_at)
             VALUES ('dlv_1', 'sub_1', 'co', 1, 'evt_1', 'customer.created', 'r1', 'succeeded', 1, 1)",
            "UPDATE deliveries SET status = 'failed' WHERE id = 'dlv_1'",
        ] {
            let ops = opcodes(&conn, sql);
            assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{sql}: {ops:?}");
        }
        let unfinished = super::super::deliveries::unfinished!("status");
        for sql in [
            format!(
                "SELECT 1 FROM deliveries WHERE subscription_id = 's' AND record_id = 'r' AND {unfinished}"
            ),
            format!(
                "SELECT DISTINCT record_id FROM deliveries WHERE subscription_id = 's' AND {unfinished}"
            ),
        ] {
            let plan = plan(&conn, &sql);
            assert!(
                plan.contains("USING INDEX deliveries_unfinished"),
                "{sql}: {plan}"
            );
        }
    }
}
