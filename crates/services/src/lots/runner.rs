//! The lots duty: reads the event bus and ticks on wall time.
//!
//! - A session starting on a robot's charge point: its car is charging.
//! - A session stopping: its energy goes to the car (served, or back to waiting with the rest
//!   owed) and the robot is free.
//! - Every tick (at most 2 s): silent robots go offline and give their car back, impatient
//!   drivers leave, the dispatcher runs, and robot reports not stored yet are stored.
//!
//! Every change happens under the book's lock, like the callers', so the two never interleave.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use chargeops_core::Event;
use chargeops_dispatch::live::{CarState, Change, LiveLot, Reported, Task};
use chargeops_store::SessionFilter;

use super::{Lots, LotsConfig, settle};

/// The duty's future; subscribed to the event bus before it returns, so no session after the
/// start is missed.
pub(super) fn run(lots: Arc<Lots>, config: LotsConfig) -> impl Future<Output = ()> + Send {
    let events = lots.platform.events();
    // The bus carries every meter reading of the network: the reader only picks out robot
    // sessions and never waits on the book, so it keeps up however busy the network is; the
    // worker applies them in order, between ticks.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    async move {
        tokio::join!(read(&lots, events, tx), work(&lots, &config, rx));
    }
}

/// Ticks between checks of the lots against the stored sessions.
const RECONCILE_EVERY: u64 = 5;

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
    lots: &Lots,
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
            }) if lots.may_be_robot(&charger_id) => RobotSession::Started {
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
            }) if lots.may_be_robot(&charger_id) => RobotSession::Stopped {
                session_id,
                charger_id,
                station_id,
                energy_wh,
            },
            Ok(_) => continue,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "robot lots duty fell behind the event bus; robot sessions may be missed until robots report"
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

async fn work(
    lots: &Lots,
    config: &LotsConfig,
    mut sessions: tokio::sync::mpsc::UnboundedReceiver<RobotSession>,
) {
    {
        let mut book = lots.book.lock().await;
        if let Err(e) = lots.ensure_loaded(&mut book).await {
            tracing::warn!(error = %e.message, "robot lots not loaded yet; retrying on the next tick");
        }
    }
    let mut tick = tokio::time::interval(Duration::from_millis(config.tick_ms.clamp(10, 2000)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tracing::info!(
        timeout_secs = config.timeout_secs,
        "robot lots duty started"
    );
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            session = sessions.recv() => match session {
                Some(RobotSession::Started { session_id, charger_id, station_id, id_tag }) => {
                    on_session(lots, &station_id, &charger_id, |l, now| {
                        l.session_started(&charger_id, session_id, id_tag.as_deref(), now)
                    })
                    .await;
                }
                Some(RobotSession::Stopped { session_id, charger_id, station_id, energy_wh }) => {
                    on_session(lots, &station_id, &charger_id, |l, now| {
                        l.session_stopped(&charger_id, session_id, energy_wh, now)
                    })
                    .await;
                }
                None => break,
            },
            _ = tick.tick() => {
                on_tick(lots).await;
                ticks += 1;
                if ticks % RECONCILE_EVERY == 0 {
                    reconcile(lots).await;
                }
            }
        }
    }
}

/// Applies a session event to the lot of the station whose robot `charger` is, if any.
async fn on_session(
    lots: &Lots,
    station: &str,
    charger: &str,
    apply: impl FnOnce(&mut LiveLot, f64) -> Option<Change>,
) {
    let mut book = lots.book.lock().await;
    if let Err(e) = lots.ensure_loaded(&mut book).await {
        tracing::warn!(error = %e.message, "robot lots not loaded; session event not applied");
        return;
    }
    let Some(lot) = book.by_station.get(station) else {
        return;
    };
    if lot.robot(charger).is_none() {
        return;
    }
    let now = lots.now_s();
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
    if let Err(e) = lots.commit(&mut book, station, next, change).await {
        tracing::error!(robot = charger, station, error = %e.message, "robot session not applied to its lot");
    }
}

async fn on_tick(lots: &Lots) {
    let mut book = lots.book.lock().await;
    if let Err(e) = lots.ensure_loaded(&mut book).await {
        tracing::warn!(error = %e.message, "robot lots not loaded yet");
        return;
    }
    let now = lots.now_s();
    let timeout = lots.timeout_s();
    let stations: Vec<String> = book.by_station.keys().cloned().collect();
    for station in stations {
        let Some(lot) = book.by_station.get(&station) else {
            continue;
        };
        let mut next = lot.clone();
        let change = settle(&mut next, now, timeout);
        if let Err(e) = lots.commit(&mut book, &station, next, change).await {
            tracing::warn!(station = %station, error = %e.message, "robot lot tick not applied");
        }
    }
    lots.flush(&mut book).await;
}

/// What the event bus may have lost, read back from the stored sessions: a car the lot thinks
/// is charging from a robot that says it is not, or a robot standing at its car and saying it
/// is idle. The sessions are the record (a charger's transaction is stored before it is
/// acknowledged), so the lot catches up with them instead of waiting for ever.
async fn reconcile(lots: &Lots) {
    // Candidates under the lock; the store is read without it.
    let candidates: Vec<(String, String, Option<i64>, f64)> = {
        let book = lots.book.lock().await;
        let mut out = Vec::new();
        for (station, l) in &book.by_station {
            for r in &l.robots {
                let Task::Car { car } = &r.task else { continue };
                let Some(c) = l.car(car) else { continue };
                let at_car = l.lot.bay(c.bay).is_some_and(|b| b.dist(r.pos) < 5.0);
                match c.state {
                    CarState::Charging if r.reported != Reported::Charging => {
                        out.push((station.clone(), r.id.clone(), c.session_id, c.arrival_s));
                    }
                    CarState::Assigned if r.reported == Reported::Idle && at_car => {
                        out.push((station.clone(), r.id.clone(), None, c.arrival_s));
                    }
                    _ => {}
                }
            }
        }
        out
    };
    for (station, robot, session_id, since_s) in candidates {
        let session = match session_id {
            Some(id) => lots.platform.store.get_session(id).await,
            None => {
                let since = chrono::DateTime::from_timestamp_micros((since_s * 1e6) as i64);
                lots.platform
                    .store
                    .list_sessions(&SessionFilter {
                        charger_id: Some(robot.clone()),
                        since,
                        limit: Some(1),
                        ..SessionFilter::default()
                    })
                    .await
                    .map(|mut v| v.pop())
            }
        };
        let session = match session {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(robot = %robot, error = %e, "robot sessions not read back");
                continue;
            }
        };
        if session_id.is_none() {
            let tag = session.id_tag.clone();
            on_session(lots, &station, &robot, |l, now| {
                l.session_started(&robot, session.id, tag.as_deref(), now)
            })
            .await;
        }
        if session.stopped_at.is_some() {
            tracing::info!(robot = %robot, station = %station, session_id = session.id, "robot session read back from the store");
            on_session(lots, &station, &robot, |l, now| {
                l.session_stopped(&robot, session.id, session.energy_wh, now)
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chargeops_core::{Live, Registration};
    use chargeops_dispatch::live::{LiveLot, NewCar, Report, Reported};
    use chargeops_dispatch::{Fleet, Lot};
    use chargeops_gateway::{Gateway, GatewayConfig};
    use chargeops_store::suite::{charger, start16, station, stop};
    use chargeops_store::{SqliteStore, Store};

    use super::reconcile;
    use crate::Platform;
    use crate::lots::Lots;

    /// A lot whose robot charged its car while the event bus lost both session events: the
    /// stored session brings the lot up to date.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_the_bus_lost_are_read_back_from_the_store() {
        let dir = std::env::temp_dir().join(format!(
            "chargeops-reconcile-{}",
            chargeops_core::secret::random_hex(6)
        ));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&dir).expect("store"));
        store.upsert_station(&station("S1")).await.expect("station");
        let mut robot = charger("R1", "S1");
        robot.registration = Registration::Accepted;
        store.insert_charger(&robot).await.expect("charger");
        let live = Arc::new(Live::new());
        let gateway = Gateway::new(store.clone(), live.clone(), GatewayConfig::default());
        let lots = Lots::new(Platform::new(store.clone(), live, gateway));

        let now = lots.now_s();
        let lot = Lot::service_area(10);
        let dock = lot.dock;
        let bay = lot.bays[3];
        let mut l = LiveLot::new(lot, Fleet::default(), &["R1".to_owned()]).expect("lot");
        let report = |x: f64, y: f64, state: Reported| Report {
            x,
            y,
            battery_kwh: 150.0,
            state,
            car: None,
        };
        l.apply_report("R1", &report(dock.x, dock.y, Reported::Docked), now)
            .expect("report");
        l.add_car(
            NewCar {
                id: "c0ffee".to_owned(),
                bay: 3,
                energy_kwh: 20.0,
                max_power_kw: 120.0,
                plate: None,
                patience_s: None,
            },
            now,
        )
        .expect("car");
        l.dispatch(now);
        assert_eq!(
            l.car("c0ffee").map(|c| c.robot.as_deref()),
            Some(Some("R1"))
        );
        // At the car it says it is idle: it has charged and unplugged, unheard.
        l.apply_report("R1", &report(bay.x, bay.y, Reported::Idle), now + 1.0)
            .expect("report");
        {
            let mut book = lots.book.lock().await;
            book.loaded = true;
            book.by_station.insert("S1".to_owned(), l);
        }
        let mut start = start16("R1", 1, 0, 1_000);
        start.started_at = lots.platform.now();
        start.id_tag = Some("c0ffee".to_owned());
        let started = store.start_session(&start).await.expect("start");
        let mut end = stop(0, Some(21_000));
        end.stopped_at = lots.platform.now();
        store
            .stop_session(started.session.id, &end)
            .await
            .expect("stop");

        reconcile(&lots).await;
        let book = lots.book.lock().await;
        let car = book.by_station["S1"].car("c0ffee").expect("car kept");
        assert_eq!(
            car.state,
            chargeops_dispatch::live::CarState::Served,
            "{car:?}"
        );
        drop(book);
        let _ = std::fs::remove_dir_all(dir);
    }
}
