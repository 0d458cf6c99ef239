//! Background duties: the one way a service's long-running task is started and stopped.
//!
//! A duty is given as a factory of its future, not the future itself, so that whatever runs it
//! can start it again (after a stop, or when a cluster lease moves to this node) without the
//! service knowing. Every duty ends when [`Duties::stop`] is called; a duty that ends on its own
//! is logged.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A duty's handle on the stop signal, for duties that want to finish their current step.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is asked for.
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// The running background duties of one process.
pub struct Duties {
    stop: watch::Sender<bool>,
    running: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl Default for Duties {
    fn default() -> Self {
        Duties {
            stop: watch::channel(false).0,
            running: Mutex::new(Vec::new()),
        }
    }
}

impl Duties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the duty `name` from its factory. It runs until it ends or [`Duties::stop`].
    pub fn start<F, Fut>(&self, name: &'static str, duty: F)
    where
        F: Fn(Stop) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut stop = Stop(self.stop.subscribe());
        let run = duty(stop.clone());
        let handle = tokio::spawn(async move {
            tracing::debug!(duty = name, "duty started");
            tokio::select! {
                () = run => tracing::warn!(duty = name, "duty ended by itself"),
                () = stop.stopped() => tracing::debug!(duty = name, "duty stopped"),
            }
        });
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|(_, h)| !h.is_finished());
        running.push((name, handle));
    }

    /// The names of the duties running now, in start order.
    pub fn running(&self) -> Vec<&'static str> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .filter(|(_, h)| !h.is_finished())
            .map(|(n, _)| *n)
            .collect()
    }

    /// Stops every duty and waits for them (each at most `grace`; one that does not end by
    /// then is aborted).
    pub async fn stop(&self, grace: Duration) {
        let _ = self.stop.send(true);
        let running = std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner()));
        for (name, mut handle) in running {
            if tokio::time::timeout(grace, &mut handle).await.is_err() {
                tracing::warn!(duty = name, "duty did not stop in time: aborted");
                handle.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn duties_run_until_stopped() {
        let duties = Duties::new();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        duties.start("ticker", move |_stop| {
            let t = t.clone();
            async move {
                loop {
                    t.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        duties.start("once", |_stop| async {});
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(
            duties.running(),
            vec!["ticker"],
            "the finished duty is gone"
        );
        duties.stop(Duration::from_secs(1)).await;
        let after = ticks.load(Ordering::SeqCst);
        assert!(after > 0, "the ticker ran");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            after,
            "no tick after the stop"
        );
        assert!(duties.running().is_empty());
    }

    #[tokio::test]
    async fn a_duty_sees_the_stop() {
        let duties = Duties::new();
        let seen: Arc<Mutex<Option<Stop>>> = Arc::default();
        let keep = seen.clone();
        duties.start("careful", move |stop| {
            *keep.lock().expect("lock") = Some(stop);
            std::future::pending::<()>()
        });
        let stop = seen.lock().expect("lock").clone().expect("the factory ran");
        assert!(!stop.is_stopped());
        duties.stop(Duration::from_millis(200)).await;
        assert!(stop.is_stopped());
    }
}
