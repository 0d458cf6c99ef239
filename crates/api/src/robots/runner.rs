//! The robots task: reads the event bus and ticks on wall time.
//!
//! - A session starting on a robot's charge point: its car is charging.
//! - A session stopping: its energy goes to the car (served, or back to waiting with the rest
//!   owed) and the robot is free.
//! - Every tick (at most 2 s): silent robots go offline and give their car back, impatient
//!   drivers leave, the dispatcher runs, and robot reports not stored yet are stored.
//!
//! Every change happens under the lots' lock, like the API's, so the two never interleave.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use chargeops_core::Event;
use chargeops_dispatch::live::{Change, LiveLot};

use crate::AppState;

use super::{commit, ensure_loaded, flush, now_s, settle};

/// The robots task's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RobotsConfig {
    /// Seconds of platform time after which a robot that has not reported is offline.
    pub timeout_secs: u64,
    /// Wall-clock milliseconds between ticks; capped at 2 s, the dispatcher's promise.
    pub tick_ms: u64,
}

impl Default for RobotsConfig {
    fn default() -> Self {
        RobotsConfig {
            timeout_secs: chargeops_dispatch::live::DEFAULT_TIMEOUT_S as u64,
            tick_ms: 1000,
        }
    }
}

pub(super) fn spawn(state: Arc<AppState>, config: RobotsConfig) -> tokio::task::JoinHandle<()> {
    // Subscribe before returning, so no session after start is missed.
    let events = state.live.subscribe();
    // The bus carries every meter reading of the network: the reader only picks out robot
    // sessions and never waits on the lots, so it keeps up however busy the network is; the
    // worker applies them in order, between ticks.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(read(state.clone(), events, tx));
    tokio::spawn(run(state, config, rx))
}

/// A session event of a robot's charge point.
enum RobotSession {
    Started {
        session_id: i64,
        charger_id: String,
        station_id: String,
        id_tag: Option<String>,
    },
    Stopped {
        session_id: i64,
        charger_id: String,
        station_id: String,
        energy_wh: Option<i64>,
    },
}

async fn read(
    state: Arc<AppState>,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    tx: tokio::sync::mpsc::UnboundedSender<RobotSession>,
) {
    loop {
        let session = match events.recv().await {
            Ok(Event::SessionStarted {
                session_id,
                charger_id,
                station_id,
                id_tag,
                ..
            }) if state.robots.may_be_robot(&charger_id) => RobotSession::Started {
                session_id,
                charger_id,
                station_id,
                id_tag,
            },
            Ok(Event::SessionStopped {
                session_id,
                charger_id,
                station_id,
                energy_wh,
                ..
            }) if state.robots.may_be_robot(&charger_id) => RobotSession::Stopped {
                session_id,
                charger_id,
                station_id,
                energy_wh,
            },
            Ok(_) => continue,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "robots task fell behind the event bus; robot sessions may be missed until robots report"
                );
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        if tx.send(session).is_err() {
            break;
        }
    }
}

async fn run(
    state: Arc<AppState>,
    config: RobotsConfig,
    mut sessions: tokio::sync::mpsc::UnboundedReceiver<RobotSession>,
) {
    {
        let mut lots = state.robots.lots.lock().await;
        if let Err(e) = ensure_loaded(&state, &mut lots).await {
            tracing::warn!(error = %e.message, "robot lots not loaded yet; retrying on the next tick");
        }
    }
    let mut tick = tokio::time::interval(Duration::from_millis(config.tick_ms.clamp(10, 2000)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tracing::info!(timeout_secs = config.timeout_secs, "robots task started");
    loop {
        tokio::select! {
            session = sessions.recv() => match session {
                Some(RobotSession::Started { session_id, charger_id, station_id, id_tag }) => {
                    on_session(&state, &station_id, &charger_id, |l, now| {
                        l.session_started(&charger_id, session_id, id_tag.as_deref(), now)
                    })
                    .await;
                }
                Some(RobotSession::Stopped { session_id, charger_id, station_id, energy_wh }) => {
                    on_session(&state, &station_id, &charger_id, |l, now| {
                        l.session_stopped(&charger_id, session_id, energy_wh, now)
                    })
                    .await;
                }
                None => break,
            },
            _ = tick.tick() => on_tick(&state).await,
        }
    }
}

/// Applies a session event to the lot of the station whose robot `charger` is, if any.
async fn on_session(
    state: &AppState,
    station: &str,
    charger: &str,
    apply: impl FnOnce(&mut LiveLot, f64) -> Option<Change>,
) {
    let mut lots = state.robots.lots.lock().await;
    if let Err(e) = ensure_loaded(state, &mut lots).await {
        tracing::warn!(error = %e.message, "robot lots not loaded; session event not applied");
        return;
    }
    let Some(lot) = lots.by_station.get(station) else {
        return;
    };
    if lot.robot(charger).is_none() {
        return;
    }
    let now = now_s(state);
    let mut next = lot.clone();
    let Some(change) = apply(&mut next, now) else {
        tracing::debug!(
            robot = charger,
            station,
            "robot session for no car of its lot"
        );
        return;
    };
    let change = Change::merge(Some(change), next.dispatch(now));
    if let Err(e) = commit(state, &mut lots, station, next, change).await {
        tracing::error!(robot = charger, station, error = %e.message, "robot session not applied to its lot");
    }
}

async fn on_tick(state: &AppState) {
    let mut lots = state.robots.lots.lock().await;
    if let Err(e) = ensure_loaded(state, &mut lots).await {
        tracing::warn!(error = %e.message, "robot lots not loaded yet");
        return;
    }
    let now = now_s(state);
    let timeout = state.robots.timeout_s();
    let stations: Vec<String> = lots.by_station.keys().cloned().collect();
    for station in stations {
        let Some(lot) = lots.by_station.get(&station) else {
            continue;
        };
        let mut next = lot.clone();
        let change = settle(&mut next, now, timeout);
        if let Err(e) = commit(state, &mut lots, &station, next, change).await {
            tracing::warn!(station = %station, error = %e.message, "robot lot tick not applied");
        }
    }
    flush(state, &mut lots).await;
}
