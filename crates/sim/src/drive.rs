//! What the fleet tells each simulated charger to do, and the counters every charger keeps:
//! shared by the OCPP charge points (`fleet`) and the YKC chargers (`ykc_fleet`), so that
//! neither imports the other.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::traffic::Car;

/// Counters the progress line and tests read while the fleet runs.
#[derive(Debug, Default)]
pub struct FleetStats {
    pub chargers: AtomicU64,
    pub connected: AtomicU64,
    pub sessions_started: AtomicU64,
    pub sessions_completed: AtomicU64,
    pub energy_wh: AtomicU64,
    pub charging: AtomicU64,
    pub waiting: AtomicU64,
    pub faults: AtomicU64,
    pub reconnects: AtomicU64,
    pub errors: AtomicU64,
    /// Cars that took a diversion suggestion and drove on to another station.
    pub diverted: AtomicU64,
    /// Simulated time, milliseconds since the epoch.
    pub sim_time_ms: AtomicU64,
}

impl FleetStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn sim_time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(Self::get(&self.sim_time_ms) as i64).unwrap_or_default()
    }
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn dec(c: &AtomicU64) {
    c.fetch_sub(1, Ordering::Relaxed);
}

/// A traffic decision for one charger.
pub(crate) enum Cmd {
    Plug {
        car: Car,
        duration: Duration,
        energy_wh: i64,
        /// When the traffic plugged the car in: the session's energy runs from here, however
        /// late the charger gets to the command.
        at: DateTime<Utc>,
    },
    Unplug,
    Fault {
        code: &'static str,
    },
    Repair,
    Disconnect {
        until: DateTime<Utc>,
    },
}

/// Runs `connect` under the fleet's limit on simultaneous connects while the fleet's commands
/// keep going to `apply` at their time (a start-up storm can take a while); what the server
/// must hear waits in the charger's backlog. `None` when the fleet stopped meanwhile.
pub(crate) async fn connect_while_applying<T>(
    limit: &tokio::sync::Semaphore,
    rx: &mut mpsc::Receiver<Cmd>,
    connect: impl std::future::Future<Output = T>,
    mut apply: impl FnMut(Cmd),
) -> Option<T> {
    let connect = async {
        let _permit = limit.acquire().await;
        connect.await
    };
    tokio::pin!(connect);
    loop {
        tokio::select! {
            r = &mut connect => return Some(r),
            cmd = rx.recv() => match cmd {
                Some(cmd) => apply(cmd),
                None => return None,
            },
        }
    }
}

/// Feeds the fleet's commands to `apply` until `deadline`, so a charger without a connection
/// still lives through them. False when the fleet stopped meanwhile.
pub(crate) async fn commands_until(
    rx: &mut mpsc::Receiver<Cmd>,
    deadline: Instant,
    mut apply: impl FnMut(Cmd),
) -> bool {
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => apply(cmd),
                None => return false,
            },
            _ = tokio::time::sleep_until(deadline) => return true,
        }
    }
}
