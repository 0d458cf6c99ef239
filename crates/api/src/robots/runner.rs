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
    tokio::spawn(run(state, config, events))
}

async fn run(
    state: Arc<AppState>,
    config: RobotsConfig,
    mut events: tokio::sync::broadcast::Receiver<Event>,
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
            event = events.recv() => match event {
                Ok(Event::SessionStarted { session_id, charger_id, station_id, id_tag, .. }) => {
                    on_session(&state, &station_id, &charger_id, |l, now| {
                        l.session_started(&charger_id, session_id, id_tag.as_deref(), now)
                    })
                    .await;
                }
                Ok(Event::SessionStopped { session_id, charger_id, station_id, energy_wh, .. }) => {
                    on_session(&state, &station_id, &charger_id, |l, now| {
                        l.session_stopped(&charger_id, session_id, energy_wh, now)
                    })
                    .await;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "robots task fell behind the event bus; robot sessions may be missed until robots report");
                }
                Err(RecvError::Closed) => break,
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
