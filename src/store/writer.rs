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
//!
//! **Durability:** a backend whose COMMIT returns before the transaction is on disk (SQLite's
//! writer commits with `synchronous = NORMAL`) hands the writer a [`Syncer`]. Committed batches
//! then go to a sync thread that makes everything committed so far durable with one sync, and
//! only then answers their jobs, in commit order, while the writer already runs the next batch.
//! One sync covers every batch that committed while the previous one ran, so the disk's sync
//! latency is paid once per wave of batches instead of once per batch.
//!
//! A failed sync answers every job it covered as unavailable (whether those writes survive is
//! unknown). A failed fsync (SQLite) also halts the writer until the process restarts, as
//! PostgreSQL does: the kernel may have dropped the pages it could not write, and a later sync
//! that succeeds says nothing about them, so nothing written after them could be acknowledged
//! truthfully. A failed flush of a database server (PostgreSQL's writers commit asynchronously
//! and one synchronous commit flushes for all of them) fails only the jobs it covered: the
//! server's recovery keeps its log whole.

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

/// Makes every transaction committed so far durable.
pub(super) trait Syncer: Send {
    fn sync(&mut self) -> Result<(), StoreError>;
    /// Whether a failed sync leaves the log untrustworthy until restart (a failed fsync may
    /// have dropped pages), rather than only failing the jobs it covered (a lost connection to
    /// a database server, whose own recovery keeps its log whole).
    fn failure_halts(&self) -> bool {
        true
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
    /// Set once a sync failed; every later write is refused.
    halted: std::sync::OnceLock<StoreError>,
}

impl WriterHealth {
    /// `None` when the last write succeeded; else why the database cannot take writes.
    pub(crate) fn unwritable_reason(&self) -> Option<String> {
        if let Some(halted) = self.halted.get() {
            return Some(halted.to_string());
        }
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

/// Runs batches from `jobs` on `conn` until every sender is gone. `syncer` makes commits
/// durable for a backend whose COMMIT returns before they are; `None` when a returned COMMIT
/// already is.
pub(super) fn run(
    mut conn: Box<dyn TxConn>,
    syncer: Option<Box<dyn Syncer>>,
    jobs: flume::Receiver<Box<dyn Job>>,
    max_batch: usize,
    health: Arc<WriterHealth>,
) {
    let answers = Answers::new(syncer, health.clone());
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Some(halted) = health.halted.get() {
            for job in &mut batch {
                job.fail(halted.clone());
            }
            answers.answer(
                std::mem::replace(&mut batch, Vec::with_capacity(max_batch)),
                false,
            );
            continue;
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
        answers.answer(
            std::mem::replace(&mut batch, Vec::with_capacity(max_batch)),
            outcome.committed,
        );
        conn.after_batch();
    }
}

/// Answers the jobs of finished batches: at once, or after a sync made their commits durable.
struct Answers {
    health: Arc<WriterHealth>,
    /// To the sync thread, when commits need a sync to be durable.
    after_sync: Option<flume::Sender<FinishedBatch>>,
}

struct FinishedBatch {
    jobs: Vec<Box<dyn Job>>,
    /// Whether any of its transactions committed (else there is nothing to sync).
    committed: bool,
}

/// Finished batches waiting for their sync. Bounded, so that a stalled disk stops the writer
/// instead of queueing answers without limit.
const BATCHES_AWAITING_SYNC: usize = 64;

impl Answers {
    fn new(syncer: Option<Box<dyn Syncer>>, health: Arc<WriterHealth>) -> Answers {
        let after_sync = syncer.map(|mut syncer| {
            let (batches, waiting) = flume::bounded(BATCHES_AWAITING_SYNC);
            let health = health.clone();
            std::thread::Builder::new()
                .name("hookgate-sync".into())
                .spawn(move || {
                    while let Ok(first) = waiting.recv() {
                        let mut finished = vec![first];
                        finished.extend(waiting.try_iter());
                        sync_then_answer(syncer.as_mut(), finished, &health);
                    }
                })
                // Only a process out of resources fails to start a thread; with no sync, no
                // commit could ever be answered as durable.
                .expect("starting the database sync thread");
            batches
        });
        Answers { health, after_sync }
    }

    fn answer(&self, jobs: Vec<Box<dyn Job>>, committed: bool) {
        let Some(batches) = &self.after_sync else {
            return finish_all(jobs, &self.health);
        };
        if let Err(flume::SendError(batch)) = batches.send(FinishedBatch { jobs, committed }) {
            // The sync thread is gone (a panic): nothing can be made durable any more.
            tracing::error!("the database sync thread is gone; refusing writes");
            let mut jobs = batch.jobs;
            for job in &mut jobs {
                job.fail(StoreError::WriterGone);
            }
            finish_all(jobs, &self.health);
        }
    }
}

fn finish_all(jobs: Vec<Box<dyn Job>>, health: &WriterHealth) {
    for job in jobs {
        job.finish();
        health.unfinished.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Syncs once if any of `finished` committed, then answers their jobs in commit order. Once a
/// sync failed, nothing is synced or acknowledged again (batches the writer committed before it
/// saw the halt included).
fn sync_then_answer(
    syncer: &mut dyn Syncer,
    mut finished: Vec<FinishedBatch>,
    health: &WriterHealth,
) {
    let mut refusal = health.halted.get().cloned();
    if refusal.is_none()
        && finished.iter().any(|b| b.committed)
        && let Err(e) = syncer.sync()
    {
        refusal = Some(if syncer.failure_halts() {
            let error = StoreError::Unavailable(format!(
                "syncing the database log failed ({e}); writes are refused until hookgate restarts"
            ));
            tracing::error!(error = %error, "the database log could not be made durable");
            health.halted.get_or_init(|| error).clone()
        } else {
            let error = StoreError::Unavailable(format!(
                "the database did not confirm that these writes are durable ({e})"
            ));
            health.record(Some(&error), false);
            error
        });
    }
    if let Some(error) = refusal {
        for job in finished.iter_mut().flat_map(|b| b.jobs.iter_mut()) {
            job.fail(error.clone());
        }
    }
    for batch in finished {
        finish_all(batch.jobs, health);
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

    impl FaultyConn {
        fn new(conn: SqliteConn, failures: usize) -> FaultyConn {
            FaultyConn {
                conn,
                failures_left: AtomicUsize::new(failures),
            }
        }
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
        let faulty = FaultyConn::new(conn, failures);
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
            None,
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
        let faulty = FaultyConn::new(conn, 0);
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
            None,
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

    /// A job that inserts `name`, with the receiver of its answer.
    fn insert_job(name: &str) -> (Box<dyn Job>, oneshot::Receiver<Result<(), StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let name = name.to_string();
        let job = Box::new(TypedJob {
            guarded: false,
            work: move |tx: &WriteTx| {
                tx.conn
                    .execute("INSERT INTO t (name) VALUES (?1)", sql_params![&name])?;
                Ok(())
            },
            result: None,
            reply: Some(reply),
        });
        (job, answer)
    }

    /// A syncer that waits for a go-ahead per sync and then answers as told.
    struct GatedSyncer {
        gate: std::sync::mpsc::Receiver<Result<(), StoreError>>,
        syncs: Arc<AtomicUsize>,
        halts: bool,
    }

    impl Syncer for GatedSyncer {
        fn sync(&mut self) -> Result<(), StoreError> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            self.gate.recv().unwrap_or(Ok(()))
        }

        fn failure_halts(&self) -> bool {
            self.halts
        }
    }

    struct SyncedWriter {
        jobs: flume::Sender<Box<dyn Job>>,
        gate: std::sync::mpsc::Sender<Result<(), StoreError>>,
        syncs: Arc<AtomicUsize>,
        check: SqliteConn,
        _dir: tempfile::TempDir,
    }

    impl SyncedWriter {
        fn start() -> SyncedWriter {
            SyncedWriter::start_with(true)
        }

        /// `halts`: whether a failed sync halts writes (an fsync) or fails only what it
        /// covered (a database server's flush).
        fn start_with(halts: bool) -> SyncedWriter {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("writer.db");
            let conn = SqliteConn::open(&path).unwrap();
            conn.batch("CREATE TABLE t (name TEXT NOT NULL)").unwrap();
            let (gate, gated) = std::sync::mpsc::channel();
            let syncs = Arc::new(AtomicUsize::new(0));
            let faulty = FaultyConn::new(conn, 0);
            let syncer = GatedSyncer {
                gate: gated,
                syncs: syncs.clone(),
                halts,
            };
            let (jobs, queue) = flume::unbounded::<Box<dyn Job>>();
            std::thread::spawn(move || {
                run(
                    Box::new(faulty),
                    Some(Box::new(syncer)),
                    queue,
                    64,
                    Arc::new(WriterHealth::default()),
                )
            });
            SyncedWriter {
                jobs,
                gate,
                syncs,
                check: SqliteConn::open(&path).unwrap(),
                _dir: dir,
            }
        }

        fn submit(&self, name: &str) -> oneshot::Receiver<Result<(), StoreError>> {
            let (job, answer) = insert_job(name);
            self.jobs.send(job).unwrap();
            answer
        }

        fn stored(&self) -> Vec<String> {
            self.check
                .query("SELECT name FROM t ORDER BY rowid", &[])
                .unwrap()
                .into_iter()
                .map(|mut r| r.text(0).unwrap())
                .collect()
        }

        /// Writes "a", fails the sync that covers it with `why`, and returns its answer.
        fn first_write_with_failed_sync(&self, why: &str) -> Result<(), StoreError> {
            let first = self.submit("a");
            self.wait_for_syncs(1);
            self.gate
                .send(Err(StoreError::Unavailable(why.into())))
                .unwrap();
            first.blocking_recv().unwrap()
        }

        /// Waits until the writer has asked for a sync `count` times in all.
        fn wait_for_syncs(&self, count: usize) {
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            while self.syncs.load(Ordering::SeqCst) < count {
                assert!(Instant::now() < deadline, "the writer never synced");
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }

    #[test]
    fn committed_writes_are_answered_only_after_a_sync() {
        let writer = SyncedWriter::start();
        let mut answer = writer.submit("a");
        writer.wait_for_syncs(1);
        assert_eq!(writer.stored(), ["a"], "committed before the sync");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            matches!(answer.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
            "answered before its commit was synced"
        );
        writer.gate.send(Ok(())).unwrap();
        assert!(answer.blocking_recv().unwrap().is_ok());
    }

    #[test]
    fn a_failed_sync_refuses_what_it_covered_and_every_later_write() {
        let writer = SyncedWriter::start();
        let refused = writer.first_write_with_failed_sync("EIO");
        assert!(
            matches!(&refused, Err(StoreError::Unavailable(why)) if why.contains("EIO")),
            "{refused:?}"
        );
        let later = writer.submit("b").blocking_recv().unwrap();
        assert!(
            matches!(later, Err(StoreError::Unavailable(_))),
            "{later:?}"
        );
        assert_eq!(
            writer.stored(),
            ["a"],
            "nothing written after the failed sync"
        );
        assert_eq!(
            writer.syncs.load(Ordering::SeqCst),
            1,
            "no sync after the halt"
        );
    }

    #[test]
    fn a_failed_server_flush_refuses_only_what_it_covered() {
        let writer = SyncedWriter::start_with(false);
        let refused = writer.first_write_with_failed_sync("connection lost");
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
        let later = writer.submit("b");
        writer.wait_for_syncs(2);
        writer.gate.send(Ok(())).unwrap();
        assert!(later.blocking_recv().unwrap().is_ok(), "writes go on");
        assert_eq!(writer.stored(), ["a", "b"]);
    }
}
