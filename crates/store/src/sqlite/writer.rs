//! The one writer thread and its group commit.
//!
//! Every write is a job: a closure over the open transaction plus the channel its answer goes
//! back on. The writer thread takes every job queued at that moment (up to `MAX_BATCH`), runs
//! them in one transaction, each inside its own SAVEPOINT so one job's error rolls back only that
//! job, commits once, and only then answers. One fsync is thus shared by every write that arrived
//! while the previous one was on its way to disk, without any timer adding latency.
//!
//! A job whose caller went away (its future dropped) still runs and commits: the caller never saw
//! an answer, so a retry meets the idempotent paths of the store, not a lost write.

use std::panic::{self, AssertUnwindSafe};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// Most jobs in one transaction; bounds the time a batch holds the write lock and its memory.
const MAX_BATCH: usize = 512;
/// Jobs that may wait for the writer; past this, callers wait to enqueue (backpressure).
const QUEUE: usize = 8192;
/// A batch slower than this is logged: the disk or the checkpointer is falling behind.
const SLOW_BATCH: Duration = Duration::from_millis(200);

/// A write waiting for, or running inside, a batch.
trait Job: Send {
    /// Runs the work inside the batch transaction and keeps its outcome; true when it succeeded.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Answers the caller. `batch_error` is set when the batch as a whole did not commit; a job
    /// that failed on its own keeps its own, more precise, error.
    fn finish(self: Box<Self>, batch_error: Option<&str>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>) -> Result<T> + Send,
{
    fn run(&mut self, tx: &Transaction<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A panicking job must not take the writer, and with it every later write, down.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(tx)))
            .unwrap_or_else(|_| Err(StoreError::Backend("store write panicked".into())));
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, batch_error: Option<&str>) {
        let outcome = match (self.outcome, batch_error) {
            (Some(Err(own)), _) => Err(own),
            (_, Some(e)) => Err(StoreError::Backend(format!("failed to commit: {e}"))),
            (Some(ok), None) => ok,
            (None, None) => Err(StoreError::Backend("store write did not run".into())),
        };
        // The caller may have stopped waiting; the write stands either way.
        let _ = self.reply.send(outcome);
    }
}

/// Handle to the writer thread. Dropping it closes the queue; the thread finishes what is queued,
/// closes the connection and is joined.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn spawn(conn: Connection) -> Result<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("chargeops-store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Backend(format!("failed to start store writer: {e}")))?;
        Ok(Writer {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `work` in the next batch and returns its outcome once the batch has committed.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let answer = self.enqueue(work).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Queues `work`; the receiver answers once its batch has committed.
    async fn enqueue<T, F>(&self, work: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work: Some(work),
            outcome: None,
            reply,
        });
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).await.map_err(|_| stopped())?;
        Ok(answer)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            // Waits for at most the batch in flight: the queue is closed, so it drains and ends.
            if thread.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("store writer stopped".into())
}

fn writer_loop(mut conn: Connection, mut jobs: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        run_batch(&mut conn, &mut batch);
    }
    // Closing the last connection checkpoints the WAL into the main file.
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "failed to close store write connection");
    }
}

fn run_batch(conn: &mut Connection, batch: &mut Vec<Box<dyn Job>>) {
    let started = Instant::now();
    let jobs = batch.len();
    let mut failed = 0usize;
    let batch_error = match execute(conn, batch, &mut failed) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, jobs, "store batch failed to commit");
            Some(e.to_string())
        }
    };
    let elapsed = started.elapsed();
    for job in batch.drain(..) {
        job.finish(batch_error.as_deref());
    }
    if elapsed > SLOW_BATCH {
        tracing::warn!(
            jobs,
            failed,
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "slow store batch commit"
        );
    }
}

fn execute(
    conn: &mut Connection,
    batch: &mut [Box<dyn Job>],
    failed: &mut usize,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        tx.prepare_cached("SAVEPOINT job")?.execute([])?;
        if !job.run(&tx) {
            *failed += 1;
            // If the job's error already ended the whole transaction (SQLite does so on some
            // I/O and memory errors) this fails, and so does the batch, as it must.
            tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
        }
        tx.prepare_cached("RELEASE job")?.execute([])?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    //! Group-commit behaviour that needs the queue itself: which jobs share a batch is decided
    //! here by holding the writer busy while the others are queued.

    use std::sync::mpsc as std_mpsc;

    use rusqlite::Connection;

    use super::super::error::sql;

    use super::*;

    fn writer() -> (Writer, std::path::PathBuf) {
        // Under the directory the integration tests sweep of stale leftovers.
        let dir = std::env::temp_dir()
            .join("chargeops-store-tests")
            .join(format!("writer-{}-{}", std::process::id(), unique_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("w.sqlite3");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE t (k TEXT PRIMARY KEY, p INTEGER REFERENCES parent (id));",
        )
        .expect("schema");
        (Writer::spawn(conn).expect("spawn"), path)
    }

    fn unique_suffix() -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{n}-{nanos}")
    }

    fn insert(k: &'static str) -> impl FnOnce(&Transaction<'_>) -> Result<()> + Send + 'static {
        move |tx| {
            tx.execute("INSERT INTO t (k) VALUES (?1)", [k])
                .map(drop)
                .map_err(sql)
        }
    }

    type BoxedWork<T> = Box<dyn FnOnce(&Transaction<'_>) -> Result<T> + Send>;

    /// Queues `jobs` behind a job that holds the writer, so they all land in one batch.
    async fn one_batch<T: Send + 'static>(w: &Writer, jobs: Vec<BoxedWork<T>>) -> Vec<Result<T>> {
        let (running, is_running) = std_mpsc::channel::<()>();
        let (release, hold) = std_mpsc::channel::<()>();
        let blocker = w
            .enqueue(move |_| {
                let _ = running.send(());
                let _ = hold.recv();
                Ok(())
            })
            .await
            .expect("enqueue blocker");
        tokio::task::spawn_blocking(move || is_running.recv())
            .await
            .expect("join")
            .expect("blocker runs");
        let mut answers = Vec::new();
        for job in jobs {
            answers.push(w.enqueue(job).await.expect("enqueue"));
        }
        release.send(()).expect("release");
        blocker.await.expect("answer").expect("blocker");
        let mut out = Vec::new();
        for answer in answers {
            out.push(answer.await.expect("answer"));
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_job_rolls_back_only_itself() {
        let (w, _path) = writer();
        w.write(insert("taken")).await.expect("seed");
        let jobs: Vec<BoxedWork<()>> = vec![
            Box::new(insert("a")),
            Box::new(insert("taken")),
            Box::new(|tx: &Transaction<'_>| {
                tx.execute("INSERT INTO t (k) VALUES ('half')", [])
                    .map_err(sql)?;
                Err(StoreError::Invalid("second thoughts".into()))
            }),
            Box::new(|_: &Transaction<'_>| panic!("job panics")),
            Box::new(insert("b")),
        ];
        let out = one_batch(&w, jobs).await;
        assert!(out[0].is_ok());
        assert_eq!(
            out[1].as_ref().map_err(StoreError::kind),
            Err(crate::ErrorKind::Conflict)
        );
        assert_eq!(
            out[2].as_ref().map_err(StoreError::kind),
            Err(crate::ErrorKind::Invalid)
        );
        assert_eq!(
            out[3].as_ref().map_err(StoreError::kind),
            Err(crate::ErrorKind::Backend)
        );
        assert!(out[4].is_ok());
        let keys = w
            .write(|tx| {
                let mut st = tx.prepare("SELECT k FROM t ORDER BY k").map_err(sql)?;
                let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await
            .expect("read back");
        assert_eq!(keys, ["a", "b", "taken"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_commit_fails_every_job_and_keeps_nothing() {
        let (w, _path) = writer();
        let jobs: Vec<BoxedWork<()>> = vec![
            Box::new(insert("x")),
            // A deferred foreign key is only checked at COMMIT, so this job succeeds and the
            // commit of its whole batch fails.
            Box::new(|tx: &Transaction<'_>| {
                tx.execute_batch(
                    "PRAGMA defer_foreign_keys = ON; INSERT INTO t (k, p) VALUES ('orphan', 42);",
                )
                .map_err(sql)
            }),
            Box::new(insert("y")),
        ];
        let out = one_batch(&w, jobs).await;
        for (i, r) in out.iter().enumerate() {
            assert_eq!(
                r.as_ref().map_err(StoreError::kind),
                Err(crate::ErrorKind::Backend),
                "job {i}"
            );
        }
        let count = w
            .write(|tx| {
                tx.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .map_err(sql)
            })
            .await
            .expect("count");
        assert_eq!(count, 0);
    }

    #[tokio::test]
    async fn drop_drains_the_queue_and_joins() {
        let (w, path) = writer();
        let pending = w.write(insert("last"));
        let answer = tokio::time::timeout(Duration::from_secs(5), pending).await;
        assert!(matches!(answer, Ok(Ok(()))));
        drop(w);
        let conn = Connection::open(&path).expect("reopen");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 1);
    }
}
