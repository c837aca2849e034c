//! The group-commit writer, the same for every backend. Jobs queue on a channel; a writer thread
//! takes as many as are waiting (up to `max_batch`), runs them in one transaction, each inside
//! its own savepoint so that a failing job undoes only itself, and answers every job only after
//! the COMMIT returned.
//!
//! **Invariant:** no job is answered with success unless its writes are in a committed
//! transaction. A database may roll a whole transaction back on its own (SQLite on a full disk
//! or an I/O error, PostgreSQL on a deadlock), after which later statements would silently run
//! in autocommit mode. So after any failure the writer checks that the transaction is still
//! open; if it is not, or the COMMIT fails, the batch is discarded and every job of it is run
//! again alone, in a transaction of its own, and answered with that run's outcome.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::oneshot;

use super::sql::{Conn, Dialect};
use super::{StoreError, WriteTx};

/// A connection that can run write transactions.
pub(super) trait TxConn: Conn + Send {
    /// Starts a write transaction.
    fn begin(&self) -> Result<(), StoreError>;
    fn commit(&self) -> Result<(), StoreError>;
    /// Rolls back whatever is open; errors are ignored (there may be nothing open).
    fn rollback(&self);
    /// Whether the transaction opened by `begin` is still open.
    fn in_transaction(&self) -> bool;
    /// Called after every batch, outside any transaction (SQLite bounds its WAL here).
    fn after_batch(&mut self) {}
    /// Re-establishes a lost connection; called after a batch failed as unavailable.
    fn reconnect(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A queued unit of work for the writer.
pub(super) trait Job: Send {
    /// Whether the job may write more than once and so needs a savepoint of its own when it
    /// shares a transaction (one statement is atomic by itself).
    fn guarded(&self) -> bool;
    /// Runs the work; on a storage error, the result is that error and a copy is returned.
    fn run(&mut self, tx: &WriteTx) -> Result<(), StoreError>;
    /// Replaces the result with `error` (its transaction did not commit).
    fn fail(&mut self, error: StoreError);
    /// Sends the result to whoever waits.
    fn finish(self: Box<Self>);
}

pub(super) struct TypedJob<R, F> {
    pub(super) guarded: bool,
    pub(super) work: F,
    pub(super) result: Option<Result<R, StoreError>>,
    pub(super) reply: Option<oneshot::Sender<Result<R, StoreError>>>,
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send,
    F: FnMut(&WriteTx) -> Result<R, StoreError> + Send,
{
    fn guarded(&self) -> bool {
        self.guarded
    }

    fn run(&mut self, tx: &WriteTx) -> Result<(), StoreError> {
        // A job that panics fails alone (its writes are undone like any failed job's); the
        // writer, and every other job, go on.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.work)(tx)))
            .unwrap_or_else(|_| Err(StoreError::Query("a write job panicked".into())));
        let error = result.as_ref().err().cloned();
        self.result = Some(result);
        error.map_or(Ok(()), Err)
    }

    fn fail(&mut self, error: StoreError) {
        self.result = Some(Err(error));
    }

    fn finish(mut self: Box<Self>) {
        let outcome = self.result.take().unwrap_or(Err(StoreError::WriterGone));
        match self.reply.take() {
            Some(reply) => {
                let _ = reply.send(outcome);
            }
            None => {
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, "a queued write was not stored");
                }
            }
        }
    }
}

/// What the writers report: batch sizes for metrics, and whether the database takes writes.
#[derive(Default)]
pub(crate) struct WriterHealth {
    pub(crate) batches: AtomicU64,
    pub(crate) batched_jobs: AtomicU64,
    /// Jobs submitted and not yet answered.
    pub(crate) unfinished: AtomicU64,
    unwritable: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl WriterHealth {
    /// `None` when the last write succeeded; else why the database cannot take writes.
    pub(crate) fn unwritable_reason(&self) -> Option<String> {
        if self.unwritable.load(Ordering::Relaxed) {
            Some(
                self.last_error
                    .lock()
                    .expect("health lock")
                    .clone()
                    .unwrap_or_else(|| "the database cannot take writes".into()),
            )
        } else {
            None
        }
    }

    fn record(&self, unavailable: Option<&StoreError>, committed: bool) {
        match unavailable {
            Some(e) => {
                if !self.unwritable.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, "the database cannot take writes; answering 503 until it can");
                }
                *self.last_error.lock().expect("health lock") = Some(e.to_string());
            }
            None if committed && self.unwritable.swap(false, Ordering::Relaxed) => {
                tracing::info!("the database takes writes again");
            }
            None => {}
        }
    }
}

/// Runs batches from `jobs` on `conn` until every sender is gone.
pub(super) fn run(
    mut conn: Box<dyn TxConn>,
    jobs: flume::Receiver<Box<dyn Job>>,
    max_batch: usize,
    health: Arc<WriterHealth>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let outcome = run_batch(conn.as_ref(), &mut batch);
        health.batches.fetch_add(1, Ordering::Relaxed);
        health
            .batched_jobs
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        health.record(outcome.unavailable.as_ref(), outcome.committed);
        if outcome.unavailable.is_some()
            && let Err(e) = conn.reconnect()
        {
            tracing::warn!(error = %e, "reconnecting to the database failed");
        }
        tracing::trace!(
            jobs = batch.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "batch"
        );
        for job in batch.drain(..) {
            job.finish();
            health.unfinished.fetch_sub(1, Ordering::SeqCst);
        }
        conn.after_batch();
    }
}

#[derive(Default)]
struct BatchOutcome {
    /// Whether at least one transaction committed.
    committed: bool,
    /// The first failure meaning "the database cannot take writes now".
    unavailable: Option<StoreError>,
}

impl BatchOutcome {
    fn saw(&mut self, error: &StoreError) {
        if error.is_unavailable() && self.unavailable.is_none() {
            self.unavailable = Some(error.clone());
        }
    }
}

fn run_batch(conn: &dyn TxConn, batch: &mut [Box<dyn Job>]) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    if batch.len() > 1 {
        match run_together(conn, batch, &mut outcome) {
            Ok(retry_alone) => {
                outcome.committed = true;
                for index in retry_alone {
                    run_alone(conn, batch[index].as_mut(), &mut outcome);
                }
                return outcome;
            }
            Err(e) => {
                conn.rollback();
                outcome.saw(&e);
                tracing::warn!(error = %e, jobs = batch.len(), "group transaction lost; running its jobs one by one");
            }
        }
    }
    for job in batch.iter_mut() {
        run_alone(conn, job.as_mut(), &mut outcome);
    }
    outcome
}

pub(super) fn transaction_lost() -> StoreError {
    StoreError::Unavailable("the database rolled the transaction back".into())
}

/// Runs every job in one transaction and commits it. `Ok` holds the jobs that were aborted by
/// a conflict with another transaction, to be run again alone. `Err` means the transaction is
/// gone (nothing of it committed) and every job's result must be discarded.
fn run_together(
    conn: &dyn TxConn,
    batch: &mut [Box<dyn Job>],
    outcome: &mut BatchOutcome,
) -> Result<Vec<usize>, StoreError> {
    conn.begin()?;
    let tx = WriteTx { conn };
    // PostgreSQL aborts the whole transaction on any failed statement unless it is inside a
    // savepoint; SQLite undoes just the statement.
    let always_guard = conn.dialect() == Dialect::Postgres;
    let mut retry_alone = Vec::new();
    for (index, job) in batch.iter_mut().enumerate() {
        let guarded = always_guard || job.guarded();
        if guarded {
            conn.batch("SAVEPOINT job")?;
        }
        if let Err(e) = job.run(&tx) {
            outcome.saw(&e);
            if guarded {
                conn.batch("ROLLBACK TO job")?;
            }
            if !conn.in_transaction() {
                return Err(transaction_lost());
            }
            if matches!(e, StoreError::Aborted(_)) {
                retry_alone.push(index);
            }
        }
        if guarded {
            conn.batch("RELEASE job")?;
        }
    }
    if !conn.in_transaction() {
        return Err(transaction_lost());
    }
    conn.commit()?;
    Ok(retry_alone)
}

/// How often a job is tried alone when its transaction is aborted by a conflict with another
/// transaction (a deadlock or a serialization failure), which trying again resolves.
const SOLO_ATTEMPTS: usize = 3;

fn run_alone(conn: &dyn TxConn, job: &mut dyn Job, outcome: &mut BatchOutcome) {
    for attempt in 1..=SOLO_ATTEMPTS {
        let error = match solo_transaction(conn, job) {
            Ok(()) => {
                outcome.committed = true;
                return;
            }
            Err(e) => e,
        };
        conn.rollback();
        outcome.saw(&error);
        if !(matches!(error, StoreError::Aborted(_)) && attempt < SOLO_ATTEMPTS) {
            job.fail(error);
            return;
        }
    }
}

/// One job in its own transaction; `Err` when nothing of it committed.
fn solo_transaction(conn: &dyn TxConn, job: &mut dyn Job) -> Result<(), StoreError> {
    conn.begin()?;
    job.run(&WriteTx { conn })?;
    if !conn.in_transaction() {
        return Err(transaction_lost());
    }
    conn.commit()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::store::sql::{Param, Row, sql_params};
    use crate::store::sqlite::SqliteConn;

    /// A SQLite connection on which a statement mentioning `poison` fails the way a full disk
    /// does: SQLite rolls the whole transaction back and reports an error.
    struct FaultyConn {
        conn: SqliteConn,
        failures_left: AtomicUsize,
    }

    impl Conn for FaultyConn {
        fn dialect(&self) -> Dialect {
            Dialect::Sqlite
        }

        fn execute(&self, sql: &str, params: &[Param]) -> Result<usize, StoreError> {
            if !self.in_transaction() {
                return Err(transaction_lost());
            }
            let poisoned = params
                .iter()
                .any(|p| matches!(p, Param::Text(t) if t.contains("poison")));
            if poisoned && self.failures_left.load(Ordering::SeqCst) > 0 {
                self.failures_left.fetch_sub(1, Ordering::SeqCst);
                self.conn.batch("ROLLBACK")?;
                return Err(StoreError::Unavailable("database or disk is full".into()));
            }
            self.conn.execute(sql, params)
        }

        fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError> {
            self.conn.query(sql, params)
        }

        fn batch(&self, sql: &str) -> Result<(), StoreError> {
            if !self.in_transaction() {
                return Err(transaction_lost());
            }
            self.conn.batch(sql)
        }
    }

    impl TxConn for FaultyConn {
        fn begin(&self) -> Result<(), StoreError> {
            self.conn.batch("BEGIN IMMEDIATE")
        }
        fn commit(&self) -> Result<(), StoreError> {
            self.conn.batch("COMMIT")
        }
        fn rollback(&self) {
            let _ = self.conn.batch("ROLLBACK");
        }
        fn in_transaction(&self) -> bool {
            !self.conn.is_autocommit()
        }
    }

    /// Runs `names` as one batch of insert jobs (two inserts each, so each job has a savepoint
    /// of its own) and returns each job's answer and the names stored.
    fn run_batch_with(
        names: &[&str],
        failures: usize,
    ) -> (Vec<Result<(), StoreError>>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let conn = SqliteConn::open(&path).unwrap();
        conn.batch("CREATE TABLE t (name TEXT NOT NULL)").unwrap();
        let faulty = FaultyConn {
            conn,
            failures_left: AtomicUsize::new(failures),
        };
        let (jobs, queue) = flume::unbounded::<Box<dyn Job>>();
        let mut answers = Vec::new();
        for name in names {
            let (reply, answer) = oneshot::channel();
            let name = name.to_string();
            jobs.send(Box::new(TypedJob {
                guarded: true,
                work: move |tx: &WriteTx| {
                    tx.conn
                        .execute("INSERT INTO t (name) VALUES (?1)", sql_params![&name])?;
                    tx.conn.execute(
                        "INSERT INTO t (name) VALUES (?1)",
                        sql_params![&format!("{name}-2")],
                    )?;
                    Ok(())
                },
                result: None,
                reply: Some(reply),
            }))
            .unwrap();
            answers.push(answer);
        }
        drop(jobs);
        // Every job is queued before the writer starts, so they share one batch.
        run(
            Box::new(faulty),
            queue,
            64,
            Arc::new(WriterHealth::default()),
        );
        let results = answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap())
            .collect();
        let check = SqliteConn::open(&path).unwrap();
        let stored = check
            .query("SELECT name FROM t ORDER BY rowid", &[])
            .unwrap()
            .into_iter()
            .map(|mut r| r.text(0).unwrap())
            .collect();
        (results, stored)
    }

    #[test]
    fn a_transaction_rolled_back_mid_batch_is_run_again_job_by_job() {
        let (results, stored) = run_batch_with(&["a", "poison", "c"], 1);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let mut stored = stored;
        stored.sort();
        assert_eq!(stored, ["a", "a-2", "c", "c-2", "poison", "poison-2"]);
    }

    #[test]
    fn a_job_that_panics_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let conn = SqliteConn::open(&dir.path().join("writer.db")).unwrap();
        conn.batch("CREATE TABLE t (name TEXT NOT NULL)").unwrap();
        let faulty = FaultyConn {
            conn,
            failures_left: AtomicUsize::new(0),
        };
        let (jobs, queue) = flume::unbounded::<Box<dyn Job>>();
        let mut answers = Vec::new();
        for name in ["a", "panic", "c"] {
            let (reply, answer) = oneshot::channel();
            jobs.send(Box::new(TypedJob {
                guarded: true,
                work: move |tx: &WriteTx| {
                    tx.conn
                        .execute("INSERT INTO t (name) VALUES (?1)", sql_params![name])?;
                    assert_ne!(name, "panic", "a bug in a job");
                    Ok(())
                },
                result: None,
                reply: Some(reply),
            }))
            .unwrap();
            answers.push(answer);
        }
        drop(jobs);
        run(
            Box::new(faulty),
            queue,
            64,
            Arc::new(WriterHealth::default()),
        );
        let results: Vec<_> = answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap().is_ok())
            .collect();
        assert_eq!(results, [true, false, true]);
    }

    #[test]
    fn a_job_that_keeps_failing_is_refused_and_the_others_are_stored() {
        let (results, stored) = run_batch_with(&["a", "poison", "c"], usize::MAX);
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(
            matches!(results[1], Err(StoreError::Unavailable(_))),
            "{results:?}"
        );
        let mut stored = stored;
        stored.sort();
        assert_eq!(
            stored,
            ["a", "a-2", "c", "c-2"],
            "nothing of the refused job"
        );
    }
}
