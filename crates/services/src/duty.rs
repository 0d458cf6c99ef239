//! Background duties: the one way a service's long-running task is started and stopped.
//!
//! A duty is given as a factory of its future, not the future itself, so that whatever runs it
//! can start it again: after a pause, or when the cluster's duties lease moves to this node.
//! [`Duties::pause`] stops every duty and keeps their factories; [`Duties::resume`] starts them
//! all again; [`Duties::stop`] ends them for good. A duty that ends on its own is logged.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
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

type Factory = Arc<dyn Fn(Stop) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Run {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

struct Entry {
    name: &'static str,
    factory: Factory,
    run: Option<Run>,
}

impl Entry {
    fn is_running(&self) -> bool {
        self.run.as_ref().is_some_and(|r| !r.handle.is_finished())
    }

    fn spawn(&mut self) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut stop = Stop(stop_rx);
        let run = (self.factory)(stop.clone());
        let name = self.name;
        let handle = tokio::spawn(async move {
            tracing::debug!(duty = name, "duty started");
            tokio::select! {
                () = run => tracing::warn!(duty = name, "duty ended by itself"),
                () = stop.stopped() => tracing::debug!(duty = name, "duty stopped"),
            }
        });
        self.run = Some(Run {
            stop: stop_tx,
            handle,
        });
    }
}

struct State {
    /// Whether duties run now (false while paused, and after the stop).
    active: bool,
    stopped: bool,
    entries: Vec<Entry>,
}

/// The background duties of one process.
pub struct Duties {
    state: Mutex<State>,
}

impl Default for Duties {
    fn default() -> Self {
        Duties {
            state: Mutex::new(State {
                active: true,
                stopped: false,
                entries: Vec::new(),
            }),
        }
    }
}

impl Duties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Duties that wait for [`Duties::resume`] before they run (a cluster node before it
    /// holds the duties lease).
    pub fn paused() -> Self {
        let duties = Self::default();
        duties.set_paused();
        duties
    }

    /// Makes the duties wait for [`Duties::resume`]; for duties not started yet (a running one
    /// is stopped with [`Duties::pause`]).
    pub fn set_paused(&self) {
        self.lock().active = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the duty `name` from its factory, and starts it unless the duties are paused. A
    /// duty of the same name is replaced by it once that one has ended.
    pub fn start<F, Fut>(&self, name: &'static str, duty: F)
    where
        F: Fn(Stop) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let factory: Factory = Arc::new(move |stop| Box::pin(duty(stop)));
        let mut state = self.lock();
        if state.stopped {
            return;
        }
        let active = state.active;
        state.entries.retain(|e| e.name != name || e.is_running());
        let mut entry = Entry {
            name,
            factory,
            run: None,
        };
        if active {
            entry.spawn();
        }
        state.entries.push(entry);
    }

    /// The names of the duties running now, in start order.
    pub fn running(&self) -> Vec<&'static str> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.is_running())
            .map(|e| e.name)
            .collect()
    }

    /// Whether duties run now (not paused, not stopped).
    pub fn is_active(&self) -> bool {
        self.lock().active
    }

    /// Starts every duty that is not running, from its factory.
    pub fn resume(&self) {
        let mut state = self.lock();
        if state.stopped {
            return;
        }
        state.active = true;
        for entry in &mut state.entries {
            if !entry.is_running() {
                entry.spawn();
            }
        }
    }

    /// Stops every running duty and waits for them (each at most `grace`; one that does not
    /// end by then is aborted). Their factories stay for [`Duties::resume`].
    pub async fn pause(&self, grace: Duration) {
        let runs: Vec<(&'static str, Run)> = {
            let mut state = self.lock();
            state.active = false;
            state
                .entries
                .iter_mut()
                .filter_map(|e| e.run.take().map(|r| (e.name, r)))
                .collect()
        };
        for (_, run) in &runs {
            let _ = run.stop.send(true);
        }
        for (name, mut run) in runs {
            if tokio::time::timeout(grace, &mut run.handle).await.is_err() {
                tracing::warn!(duty = name, "duty did not stop in time: aborted");
                run.handle.abort();
            }
        }
    }

    /// Stops every duty for good and waits for them, as [`Duties::pause`].
    pub async fn stop(&self, grace: Duration) {
        self.lock().stopped = true;
        self.pause(grace).await;
    }

    /// Runs the duties while `held` is true, pausing them when it turns false: the cluster's
    /// duties lease. `before` is awaited before each resume and after each pause (the services
    /// drop the books they read, so the next holder's state is the store's).
    pub fn follow<F, Fut>(self: &Arc<Self>, mut held: watch::Receiver<bool>, before: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let duties = self.clone();
        tokio::spawn(async move {
            let mut running = false;
            loop {
                let now = *held.borrow_and_update();
                if now != running {
                    if now {
                        before().await;
                        duties.resume();
                        tracing::info!(duties = ?duties.running(), "this node runs the platform's duties");
                    } else {
                        duties.pause(Duration::from_secs(5)).await;
                        before().await;
                        tracing::info!("this node's duties are paused (another node runs them)");
                    }
                    running = now;
                }
                if held.changed().await.is_err() || duties.lock().stopped {
                    return;
                }
            }
        });
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

    #[tokio::test]
    async fn paused_duties_resume_from_their_factories() {
        let duties = Arc::new(Duties::paused());
        let starts = Arc::new(AtomicUsize::new(0));
        let s = starts.clone();
        duties.start("counter", move |_stop| {
            s.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>()
        });
        assert!(duties.running().is_empty(), "paused: registered, not run");
        assert_eq!(starts.load(Ordering::SeqCst), 0);
        let (held, rx) = watch::channel(false);
        let reloads = Arc::new(AtomicUsize::new(0));
        let r = reloads.clone();
        duties.follow(rx, move || {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        });
        held.send_replace(true);
        for _ in 0..100 {
            if !duties.running().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(duties.running(), vec!["counter"]);
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert_eq!(
            reloads.load(Ordering::SeqCst),
            1,
            "books dropped before the resume"
        );
        held.send_replace(false);
        for _ in 0..100 {
            if duties.running().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(duties.running().is_empty(), "lease lost: paused");
        held.send_replace(true);
        for _ in 0..100 {
            if !duties.running().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "started again from its factory"
        );
        duties.stop(Duration::from_millis(100)).await;
        duties.resume();
        assert!(duties.running().is_empty(), "nothing runs after the stop");
    }
}
