//! SQLite backend: connection set-up, the group-commit writer thread and the read pool.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{StoreError, migrations};

/// A connection inside the writer's open transaction. Methods are added per table in the
/// sibling modules; only the writer thread ever holds one.
pub struct WriteTx<'c> {
    pub(super) conn: &'c Connection,
}

impl WriteTx<'_> {
    /// Undoes everything the current job has written so far; the job goes on (and may write
    /// again, e.g. the log row of a rejected request).
    pub fn undo_job_writes(&self) -> Result<(), StoreError> {
        self.conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
        Ok(())
    }

    fn savepoint<R, E: From<StoreError>>(
        &self,
        name: &str,
        work: impl FnOnce() -> Result<R, E>,
    ) -> Result<R, E> {
        // Cached statements: these run several times per request on the hot path.
        let run = |sql: &str| -> Result<(), StoreError> {
            self.conn.prepare_cached(sql)?.execute([])?;
            Ok(())
        };
        run(&format!("SAVEPOINT {name}"))?;
        match work() {
            Ok(value) => {
                run(&format!("RELEASE {name}"))?;
                Ok(value)
            }
            Err(e) => {
                run(&format!("ROLLBACK TO {name}"))?;
                run(&format!("RELEASE {name}"))?;
                Err(e)
            }
        }
    }
}

/// A read-only connection from the pool.
pub struct ReadConn {
    pub(super) conn: Connection,
}

trait Job: Send {
    fn run(&mut self, tx: &WriteTx);
    fn finish(self: Box<Self>, committed: Result<(), &StoreError>);
}

struct TypedJob<R, F> {
    /// Inside a savepoint of its own (see [`super::Store::write_single`] for the exception).
    guarded: bool,
    work: Option<F>,
    result: Option<Result<R, StoreError>>,
    reply: Option<oneshot::Sender<Result<R, StoreError>>>,
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send,
    F: FnOnce(&WriteTx) -> Result<R, StoreError> + Send,
{
    fn run(&mut self, tx: &WriteTx) {
        let work = self.work.take().expect("a job runs once");
        // A savepoint per job: a failing job undoes its own writes and nobody else's.
        let result = if self.guarded {
            tx.savepoint("job", || work(tx))
        } else {
            work(tx)
        };
        self.result = Some(result);
    }

    fn finish(mut self: Box<Self>, committed: Result<(), &StoreError>) {
        let outcome = match committed {
            Ok(()) => self.result.take().unwrap_or(Err(StoreError::WriterGone)),
            Err(e) => Err(StoreError::Corrupt(format!("commit failed: {e}"))),
        };
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
        } else if let Err(e) = outcome {
            tracing::error!(error = %e, "detached write failed");
        }
    }
}

pub(super) struct SqliteStore {
    /// Dropping it stops the checkpoint thread.
    _checkpointer: std::sync::mpsc::Sender<()>,
    jobs: mpsc::Sender<Box<dyn Job>>,
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
    batches: std::sync::Arc<AtomicU64>,
    batched_jobs: std::sync::Arc<AtomicU64>,
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )?;
    Ok(conn)
}

impl SqliteStore {
    pub(super) fn open(path: &Path, max_batch: usize) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let mut conn = open_connection(path)?;
        migrations::run(&mut conn)?;
        // Checkpoints copy the WAL back into the database file and fsync it; done by the
        // writer they would stall every request queued behind it, so a thread of its own
        // does them instead.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        let checkpointer = spawn_checkpointer(path)?;
        let (jobs, rx) = mpsc::channel(max_batch * 4);
        let batches = std::sync::Arc::new(AtomicU64::new(0));
        let batched_jobs = std::sync::Arc::new(AtomicU64::new(0));
        let (b, bj) = (batches.clone(), batched_jobs.clone());
        std::thread::Builder::new()
            .name("hookgate-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, b, bj))
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(SqliteStore {
            _checkpointer: checkpointer,
            jobs,
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            batches,
            batched_jobs,
        })
    }

    pub(super) async fn write<R, F>(&self, guarded: bool, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTx) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            guarded,
            work: Some(work),
            result: None,
            reply: Some(reply),
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    pub(super) fn write_detached<F>(&self, work: F)
    where
        F: FnOnce(&WriteTx) -> Result<(), StoreError> + Send + 'static,
    {
        let job: Box<dyn Job> = Box::new(TypedJob {
            guarded: false,
            work: Some(work),
            result: None,
            reply: None,
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                // The writer is saturated: hand the job over from a task instead of dropping it.
                let jobs = self.jobs.clone();
                tokio::spawn(async move {
                    let _ = jobs.send(job).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("writer stopped; a log row was lost")
            }
        }
    }

    pub(super) fn read<R>(
        &self,
        job: impl FnOnce(&ReadConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let pooled = self.readers.lock().expect("reader pool lock").pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = open_connection(&self.path)?;
                c.execute_batch("PRAGMA query_only = ON")?;
                c
            }
        };
        let reader = ReadConn { conn };
        let result = job(&reader);
        let mut pool = self.readers.lock().expect("reader pool lock");
        if pool.len() < 16 {
            pool.push(reader.conn);
        }
        result
    }

    pub(super) fn batch_stats(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.batched_jobs.load(Ordering::Relaxed),
        )
    }
}

/// Short enough that the WAL stays small (its pages stay in the OS cache, commits overwrite
/// rather than extend it); on this machine 50-500 ms measured alike, 2 s a worse p99.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Checkpoints the WAL from its own connection every [`CHECKPOINT_EVERY`] (PASSIVE: never
/// blocks the writer or readers) until the returned sender is dropped.
fn spawn_checkpointer(path: &Path) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let conn = open_connection(path)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("hookgate-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })
        .map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(stop)
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    batches: std::sync::Arc<AtomicU64>,
    batched_jobs: std::sync::Arc<AtomicU64>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let tx = WriteTx { conn: &conn };
        let committed = conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(StoreError::from)
            .and_then(|()| {
                for job in batch.iter_mut() {
                    job.run(&tx);
                }
                conn.execute_batch("COMMIT").map_err(StoreError::from)
            });
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = batch.len(), "group commit failed");
            let _ = conn.execute_batch("ROLLBACK");
        }
        batches.fetch_add(1, Ordering::Relaxed);
        batched_jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for job in batch.drain(..) {
            job.finish(committed.as_ref().map(|_| ()));
        }
    }
}
