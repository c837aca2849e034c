//! Storage: the only module that knows SQL. Knows nothing of HTTP or of the pipeline's types.
//!
//! Two backends sit behind one interface: SQLite (the embedded default, a file) and PostgreSQL
//! (chosen by a `postgres://` database URL, for several nodes on one database). Writes go
//! through group-commit writers ([`Store::write`], see `writer.rs`): many requests share one
//! transaction, and each caller is answered only after that transaction committed durably.
//! Reads ([`Store::read`]) use pooled connections of their own and never queue behind writes.
//!
//! Callers see typed methods on [`WriteTx`] and [`ReadConn`] (one file per group of tables),
//! written once in backend-neutral SQL against the [`sql::Conn`] trait; each backend only
//! supplies connections, transactions and its dialect's few differences.

mod console;
mod deliveries;
mod events;
mod idempotency;
mod ingest_log;
mod intake;
mod keys;
mod meta;
mod migrations;
mod postgres;
mod records;
mod search;
pub(crate) mod sql;
mod sqlite;
mod subscriptions;
mod writer;

use std::sync::Arc;

use tokio::sync::oneshot;

pub use console::DeliveryOutcome;
pub use deliveries::{AttemptRecord, DeliveryFilter, DeliveryRow, DeliveryStatus, DueDelivery};
pub use events::EventRow;
pub use idempotency::{Claim, StoredResponse};
pub use ingest_log::{IngestEntry, IngestFilter};
pub use intake::{KeptFilter, KeptRequest, KeyIntake, MappingRow};
pub use keys::SecretChange;
pub use keys::{ApiKeyRecord, KeySummary, NewKey};
pub use meta::SealedValue;
pub use migrations::latest_version;
pub use records::{NewEvent, Record, WorkType};
pub use search::SearchQuery;
pub use sql::{Dialect, Row};
pub use subscriptions::{SubscriptionRow, SubscriptionStatus};

use sql::Conn;
use writer::{Job, TypedJob, WriterHealth};

/// Why a storage operation failed. No variant names a driver: each backend maps its own errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot take the operation now (disk full, I/O error, locked too long,
    /// connection lost); trying again later may work. Clients get 503 `storage_unavailable`.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A unique key (natural key, name, idempotency key) is already taken.
    #[error("unique key already taken: {0}")]
    Conflict(String),
    /// The transaction was aborted by a conflict with another one (deadlock, serialization
    /// failure); running it again resolves it.
    #[error("transaction aborted by a concurrent one: {0}")]
    Aborted(String),
    /// A statement failed for another reason (a bug, or a schema that does not match).
    #[error("database error: {0}")]
    Query(String),
    #[error("cannot open database {target}: {reason}")]
    Open { target: String, reason: String },
    #[error("the writer has stopped")]
    WriterGone,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the failure means "the database cannot take writes now" rather than a bug.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::WriterGone)
    }
}

/// Where the database is and how the writers run, from the configuration.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A file path (SQLite) or a `postgres://` URL.
    pub database: String,
    /// Most jobs committed in one transaction.
    pub max_batch: usize,
    /// Writer connections (SQLite always uses one).
    pub writers: usize,
    /// SQLite: the WAL size past which the writer restarts the log between batches.
    pub wal_restart_bytes: u64,
    /// SQLite: the largest the database file may grow (0: no limit).
    pub max_database_bytes: u64,
}

impl StoreOptions {
    pub(crate) fn is_postgres(&self) -> bool {
        is_postgres_url(&self.database)
    }
}

/// Whether `database` names a PostgreSQL server rather than a SQLite file.
pub(crate) fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// A source of read connections.
trait ReadPool: Send + Sync {
    fn with_conn(&self, job: &mut dyn FnMut(&dyn Conn)) -> Result<(), StoreError>;
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: flume::Sender<Box<dyn Job>>,
    readers: Arc<dyn ReadPool>,
    health: Arc<WriterHealth>,
    dialect: Dialect,
    /// Backend state that must live as long as any handle (threads, maintenance).
    _backend: Arc<dyn Send + Sync>,
}

impl Store {
    /// Opens (creating if needed) the database, runs migrations and starts the writers.
    pub fn open(options: &StoreOptions) -> Result<Store, StoreError> {
        if options.is_postgres() {
            postgres::open(options)
        } else {
            sqlite::open(options)
        }
    }

    fn assemble(
        jobs: flume::Sender<Box<dyn Job>>,
        readers: Arc<dyn ReadPool>,
        health: Arc<WriterHealth>,
        dialect: Dialect,
        backend: Arc<dyn Send + Sync>,
    ) -> Store {
        Store {
            jobs,
            readers,
            health,
            dialect,
            _backend: backend,
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether every event gets its published position as it is written (SQLite's single
    /// writer, `insert_event`), so that `publish_events` never has anything to do.
    pub(crate) fn publishes_events_as_written(&self) -> bool {
        self.dialect == Dialect::Sqlite
    }

    /// Runs `job` inside a writer's group transaction, then waits until that transaction is
    /// committed and durable. An `Err` from `job` undoes only `job`'s own writes. The job may
    /// run more than once (when its first transaction was lost), so it must not consume what
    /// it captured.
    pub async fn write<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&WriteTx) -> Result<R, StoreError> + Send + 'static,
    {
        self.submit(true, job).await
    }

    /// [`Store::write`] for a job that makes at most one write, which needs no savepoint of
    /// its own (a single statement is atomic). Saves two statements on the hottest path.
    pub(crate) async fn write_single<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&WriteTx) -> Result<R, StoreError> + Send + 'static,
    {
        self.submit(false, job).await
    }

    async fn submit<R, F>(&self, guarded: bool, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&WriteTx) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            guarded,
            work,
            result: None,
            reply: Some(reply),
        });
        self.count_submitted();
        if self.jobs.send_async(job).await.is_err() {
            self.count_lost();
            return Err(StoreError::WriterGone);
        }
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Queues `job` without waiting for its commit (log rows of rejected requests). Like
    /// [`Store::write_single`], it must make at most one write.
    pub(crate) fn write_detached<F>(&self, work: F)
    where
        F: FnMut(&WriteTx) -> Result<(), StoreError> + Send + 'static,
    {
        let job: Box<dyn Job> = Box::new(TypedJob {
            guarded: false,
            work,
            result: None,
            reply: None,
        });
        self.count_submitted();
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(job)) => {
                // The writer is saturated: hand the job over from a task instead of dropping it.
                let store = self.clone();
                tokio::spawn(async move {
                    if store.jobs.send_async(job).await.is_err() {
                        store.count_lost();
                    }
                });
            }
            Err(flume::TrySendError::Disconnected(_)) => {
                self.count_lost();
                tracing::error!("writer stopped; a log row was lost")
            }
        }
    }

    fn count_submitted(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.health.unfinished.fetch_add(1, SeqCst);
    }

    /// A submitted job that never reached a writer.
    fn count_lost(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.health.unfinished.fetch_sub(1, SeqCst);
    }

    /// Waits until every write queued before this call is committed (or failed), including
    /// detached ones; with several writers, an empty job of one's own would not do.
    pub async fn flush(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        // Jobs are counted when submitted and uncounted once answered: when none is left,
        // every job submitted before this call is done.
        while self.health.unfinished.load(SeqCst) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Runs `job` on a read connection on the blocking pool.
    pub async fn read<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&ReadConn) -> Result<R, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || read_with(readers.as_ref(), job))
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Sizes of the group-commit batches so far (for metrics).
    pub fn batch_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.health.batches.load(Relaxed),
            self.health.batched_jobs.load(Relaxed),
        )
    }

    /// Changes the most the SQLite database may grow to (0: no limit) while running, as
    /// `writer.max_database_bytes` does at start. Not available on PostgreSQL, whose disk
    /// space the server manages.
    pub async fn set_max_database_bytes(&self, bytes: u64) -> Result<(), StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Err(StoreError::Query(
                "a database size limit is a SQLite setting".into(),
            ));
        }
        self.write_single(move |tx| sqlite::set_max_database_bytes(tx.conn, bytes))
            .await
    }

    /// `Ok` when the database answers reads and takes writes; else why not. While writes were
    /// failing, a small probe write decides, so that readiness comes back by itself when the
    /// database has room again.
    pub(crate) async fn check_ready(&self) -> Result<(), String> {
        self.read(|r| r.ping()).await.map_err(|e| e.to_string())?;
        if self.health.unwritable_reason().is_some() {
            self.write(|tx| tx.probe_write())
                .await
                .map_err(|e| e.to_string())?;
        }
        match self.health.unwritable_reason() {
            None => Ok(()),
            Some(reason) => Err(reason),
        }
    }
}

fn read_with<R>(
    readers: &dyn ReadPool,
    job: impl FnOnce(&ReadConn) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let mut job = Some(job);
    let mut result = None;
    readers.with_conn(&mut |conn| {
        if let Some(job) = job.take() {
            result = Some(job(&ReadConn { conn }));
        }
    })?;
    result.unwrap_or(Err(StoreError::WriterGone))
}

/// A connection inside a writer's open transaction. Methods are added per table in the
/// sibling modules; only writer threads ever hold one.
pub struct WriteTx<'c> {
    pub(super) conn: &'c dyn Conn,
}

impl WriteTx<'_> {
    pub(crate) fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Runs `work` so that all of its writes or none of them stay: on `Err` they are undone
    /// and the transaction goes on (the caller may still write, e.g. the log row of a request
    /// whose change was rejected).
    pub fn atomically<R, E: From<StoreError>>(
        &self,
        work: impl FnOnce() -> Result<R, E>,
    ) -> Result<R, E> {
        self.conn.batch("SAVEPOINT atomically")?;
        match work() {
            Ok(value) => {
                self.conn.batch("RELEASE atomically")?;
                Ok(value)
            }
            Err(e) => {
                self.conn.batch("ROLLBACK TO atomically")?;
                self.conn.batch("RELEASE atomically")?;
                Err(e)
            }
        }
    }

    /// A write that needs room in the database, undone at once (readiness probe).
    fn probe_write(&self) -> Result<(), StoreError> {
        self.atomically(|| {
            let filler = vec![0u8; 8192];
            self.conn.execute(
                "INSERT INTO write_probe (id, filler) VALUES (1, ?1)",
                sql::sql_params![&filler],
            )?;
            Err::<(), StoreError>(StoreError::Aborted("probe undone".into()))
        })
        .or_else(|e| match e {
            StoreError::Aborted(_) => Ok(()),
            other => Err(other),
        })
    }
}

/// A read connection from the pool.
pub struct ReadConn<'c> {
    pub(super) conn: &'c dyn Conn,
}

impl ReadConn<'_> {
    pub(crate) fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Confirms the database answers (readiness probe).
    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        self.conn.query_one("SELECT 1", &[])?;
        Ok(())
    }

    /// Rows of any read-only query, for diagnostics and tests that assert on stored state
    /// through the store (on either backend) rather than by opening its files.
    pub fn query_rows(&self, sql: &str) -> Result<Vec<Row>, StoreError> {
        self.conn.query(sql, &[])
    }
}
