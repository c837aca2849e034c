//! Storage: the only module that knows SQL. Knows nothing of HTTP.
//!
//! Writes go through one writer thread with group commit ([`Store::write`]): many requests
//! share one transaction, and each caller is answered only after that transaction is durable
//! (WAL, `synchronous=FULL`). Reads ([`Store::read`]) use their own connections so they never
//! queue behind the writer. Callers see typed methods on [`WriteTx`] and [`ReadConn`], never
//! raw connections, so a Postgres backend can slot in behind the same interface.

mod idempotency;
mod ingest_log;
mod keys;
mod migrations;
mod outbound;
mod records;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use idempotency::StoredResponse;
pub use ingest_log::{IngestEntry, IngestFilter};
pub use keys::{ApiKeyRecord, KeySummary, NewKey};
pub use migrations::latest_version;
pub use outbound::{Attempt, DeliveryFilter, DeliveryRow, DueDelivery, EventRow, SubscriptionRow};
pub use records::{NewEvent, Record, WorkType};
pub use sqlite::{ReadConn, WriteTx};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open database {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the writer has stopped")]
    WriterGone,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<sqlite::SqliteStore>,
}

impl Store {
    /// Opens (creating if needed) the database, runs migrations and starts the writer.
    pub fn open(path: &Path, max_batch: usize) -> Result<Store, StoreError> {
        Ok(Store {
            inner: Arc::new(sqlite::SqliteStore::open(path, max_batch)?),
        })
    }

    /// Runs `job` inside the writer's current group transaction, then waits until that
    /// transaction is committed and durable. An `Err` from `job` undoes only `job`'s own writes.
    pub async fn write<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTx) -> Result<R, StoreError> + Send + 'static,
    {
        self.inner.write(true, job).await
    }

    /// [`Store::write`] for a job that makes at most one write, which needs no savepoint of
    /// its own (a single statement is atomic). Saves two statements on the hottest path.
    pub async fn write_single<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTx) -> Result<R, StoreError> + Send + 'static,
    {
        self.inner.write(false, job).await
    }

    /// Queues `job` without waiting for its commit (used for log rows of rejected requests).
    /// Like [`Store::write_single`], it must make at most one write.
    pub fn write_detached<F>(&self, job: F)
    where
        F: FnOnce(&WriteTx) -> Result<(), StoreError> + Send + 'static,
    {
        self.inner.write_detached(job)
    }

    /// Runs `job` on a read connection on the blocking pool.
    pub async fn read<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&ReadConn) -> Result<R, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.read(job))
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `job` on a read connection on the current thread (for the CLI).
    pub fn read_blocking<R>(
        &self,
        job: impl FnOnce(&ReadConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.inner.read(job)
    }

    /// Sizes of the group-commit batches so far (for metrics).
    pub fn batch_stats(&self) -> (u64, u64) {
        self.inner.batch_stats()
    }
}
