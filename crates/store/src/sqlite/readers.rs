//! A few reader threads, each with its own connection. In WAL mode readers see the last committed
//! state and never wait for the writer, nor it for them.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Handle to the reader threads. They share one queue, so a slow query holds up only its own
/// thread. Dropping the handle closes the queue and joins them.
pub(super) struct Readers {
    jobs: Option<mpsc::Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    pub(super) fn spawn(conns: Vec<Connection>) -> Result<Readers> {
        let (tx, rx) = mpsc::channel::<ReadJob>();
        let rx = Arc::new(Mutex::new(rx));
        let mut readers = Readers {
            jobs: Some(tx),
            threads: Vec::with_capacity(conns.len()),
        };
        for (i, conn) in conns.into_iter().enumerate() {
            let rx = rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("chargeops-store-reader-{i}"))
                .spawn(move || reader_loop(conn, &rx))
                .map_err(|e| StoreError::Backend(format!("failed to start store reader: {e}")))?;
            readers.threads.push(thread);
        }
        Ok(readers)
    }

    pub(super) async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(work(conn));
        });
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        // A panicking job drops `reply` unanswered.
        answer
            .await
            .map_err(|_| StoreError::Backend("store read failed".into()))?
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        drop(self.jobs.take());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("store reader thread panicked");
            }
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("store readers stopped".into())
}

fn reader_loop(conn: Connection, jobs: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        // Only the wait for the next job is under the lock, never the query.
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { break };
        if panic::catch_unwind(AssertUnwindSafe(|| job(&conn))).is_err() {
            tracing::error!("store read panicked");
        }
    }
}
