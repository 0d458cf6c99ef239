//! Live robot lots over HTTP: the staff API (layout, view, override, release), the public car
//! routes (a driver takes a place in a bay, like taking a queue number) and the robot interface
//! (a robot reports where it is and hears its task). The state machine lives in
//! `chargeops_dispatch::live`; this module checks who may do what, stores lots, tells the event
//! bus, and runs the task that feeds the lots the robots' charging sessions and the clock.
//!
//! Who may call what:
//! - Any token reads a lot; `admin` and `operator` set it up, `admin` removes it; `admin`,
//!   `operator` and `dispatcher` override and release.
//! - Anyone adds a car (the answer's id is unguessable: knowing it is the capability to follow
//!   and cancel that car).
//! - A robot reports with HTTP Basic and its charger's OCPP credentials, checked by the gateway's
//!   own check.
//!
//! Storage: one document a lot (kind `lot`, id the station), the whole [`LiveLot`]. A change to
//! a car is stored before the answer leaves, so a crash loses no car a driver was told about; a
//! report that only moves a robot is stored with the next tick (robots report again anyway).
//! Every change is tried on a copy and swapped in only once stored: a refused request or a
//! storage failure changes nothing.

mod runner;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use chargeops_core::secret::random_hex;
use chargeops_core::{Event, Role};
use chargeops_dispatch::live::{
    self, Change, LiveCar, LiveError, LiveLot, NewCar, Report, Reported, Robot, Task,
};
use chargeops_dispatch::{Fleet, Lot, Point};
use chargeops_gateway::{charger_credentials_ok, valid_charger_id};

use crate::error::{ApiResult, basic_unauthorized, body};
use crate::{ApiError, AppState, Caller};

pub use runner::RobotsConfig;

/// Store document kind of a lot.
const KIND: &str = "lot";
/// Roles that run a lot's robots by hand.
const STAFF: &[Role] = &[Role::Admin, Role::Operator, Role::Dispatcher];

/// The lots' shared state inside [`AppState`].
pub struct RobotsState {
    /// Serialises every change of every lot, between the API and the robots task.
    lots: tokio::sync::Mutex<Lots>,
    /// Seconds of platform time after which a silent robot is offline (f64 bits).
    timeout_s: AtomicU64,
    /// The charger ids of every lot's robots, once the lots are loaded: lets the robots task
    /// pass over the sessions of the network's other chargers without taking the lock.
    robot_ids: std::sync::RwLock<Option<HashSet<String>>>,
    /// Each robot's car, for the gateway to accept the car's id tag at that robot only.
    tasks: Arc<RobotCars>,
}

/// Robot charger id to the car it is sent to.
#[derive(Default)]
pub(crate) struct RobotCars(std::sync::RwLock<HashMap<String, String>>);

impl chargeops_gateway::TagAuthority for RobotCars {
    /// A robot starts its transaction with the first [`live::ID_TAG_CHARS`] characters of its
    /// car's id (the id itself is the driver's unguessable capability): accepted at that robot
    /// while it is sent to that car, nowhere else.
    fn accepts(&self, charger_id: &str, id_tag: &str) -> bool {
        let cars = self.0.read().unwrap_or_else(|e| e.into_inner());
        cars.get(charger_id).is_some_and(|car| {
            !id_tag.is_empty()
                && car.starts_with(id_tag)
                && id_tag.len() >= car.len().min(live::ID_TAG_CHARS)
        })
    }
}

impl Default for RobotsState {
    fn default() -> Self {
        RobotsState {
            lots: tokio::sync::Mutex::new(Lots::default()),
            timeout_s: AtomicU64::new(live::DEFAULT_TIMEOUT_S.to_bits()),
            robot_ids: std::sync::RwLock::new(None),
            tasks: Arc::default(),
        }
    }
}

impl RobotsState {
    pub fn timeout_s(&self) -> f64 {
        f64::from_bits(self.timeout_s.load(Ordering::Relaxed))
    }

    fn set_timeout_s(&self, secs: f64) {
        self.timeout_s.store(secs.to_bits(), Ordering::Relaxed);
    }

    /// Whether `charger` may be a robot: `true` while the lots are not loaded yet.
    fn may_be_robot(&self, charger: &str) -> bool {
        self.robot_ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|ids| ids.contains(charger))
    }

    /// Re-reads the robot ids after the lots changed.
    fn index(&self, lots: &Lots) {
        let ids = lots
            .by_station
            .values()
            .flat_map(|l| l.robots.iter().map(|r| r.id.clone()))
            .collect();
        *self.robot_ids.write().unwrap_or_else(|e| e.into_inner()) = Some(ids);
        let cars = lots
            .by_station
            .values()
            .flat_map(|l| &l.robots)
            .filter_map(|r| match &r.task {
                Task::Car { car } => Some((r.id.clone(), car.clone())),
                _ => None,
            })
            .collect();
        *self.tasks.0.write().unwrap_or_else(|e| e.into_inner()) = cars;
    }
}

#[derive(Default)]
pub(crate) struct Lots {
    loaded: bool,
    by_station: HashMap<String, LiveLot>,
    /// Lots with robot reports not stored yet.
    dirty: HashSet<String>,
}

impl Lots {
    fn lot(&self, station: &str) -> ApiResult<&LiveLot> {
        self.by_station
            .get(station)
            .ok_or_else(|| ApiError::not_found(format!("station {station} has no robot lot")))
    }

    /// The lot holding car `id`; not found for an id that was never handed out.
    fn station_of_car(&self, id: &str) -> ApiResult<String> {
        valid_car_id(id)
            .then(|| {
                self.by_station
                    .iter()
                    .find(|(_, l)| l.car(id).is_some())
                    .map(|(s, _)| s.clone())
            })
            .flatten()
            .ok_or_else(|| ApiError::not_found("car not found"))
    }

    /// Car `id` of the lot of `station` as its driver sees it.
    fn car_json(&self, station: &str, id: &str, now: f64) -> ApiResult<Json<Value>> {
        let l = self.lot(station)?;
        let c = l
            .car(id)
            .ok_or_else(|| ApiError::not_found("car not found"))?;
        Ok(Json(car_view(station, l, c, now)))
    }
}

// ---------------------------------------------------------------------------------------------
// Time, loading, storing.

/// The platform clock in seconds, the unit of the lot state machine.
fn now_s(state: &AppState) -> f64 {
    state.live.now().timestamp_micros() as f64 / 1e6
}

fn rfc3339(secs: f64) -> Value {
    DateTime::<Utc>::from_timestamp_micros((secs * 1e6).round() as i64).map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(SecondsFormat::Millis, true))
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

async fn ensure_loaded(state: &AppState, lots: &mut Lots) -> ApiResult<()> {
    if lots.loaded {
        return Ok(());
    }
    for (station, text) in state.store.list_documents(KIND).await? {
        match serde_json::from_str::<LiveLot>(&text) {
            Ok(l) => {
                lots.by_station.insert(station, l);
            }
            // A lot that cannot be read is left in the store for an operator to look at; the
            // rest of the platform runs.
            Err(e) => {
                tracing::error!(station = %station, error = %e, "stored robot lot is unreadable; skipped")
            }
        }
    }
    lots.loaded = true;
    state.robots.index(lots);
    Ok(())
}

/// The lots, locked and read from the store the first time.
async fn loaded_lots(state: &AppState) -> ApiResult<tokio::sync::MutexGuard<'_, Lots>> {
    let mut lots = state.robots.lots.lock().await;
    ensure_loaded(state, &mut lots).await?;
    Ok(lots)
}

async fn store_lot(state: &AppState, station: &str, lot: &LiveLot) -> ApiResult<()> {
    let text = serde_json::to_string(lot)
        .map_err(|e| ApiError::internal(format!("failed to encode the lot: {e}")))?;
    state.store.put_document(KIND, station, &text).await?;
    Ok(())
}

/// Makes `next` the station's lot after a change: stored first when a car changed (else marked
/// for the next tick), then swapped in, then told to the event bus.
async fn commit(
    state: &AppState,
    lots: &mut Lots,
    station: &str,
    next: LiveLot,
    change: Option<Change>,
) -> ApiResult<()> {
    let Some(change) = change else {
        return Ok(());
    };
    if change.cars {
        store_lot(state, station, &next).await?;
        lots.dirty.remove(station);
    } else {
        lots.dirty.insert(station.to_owned());
    }
    lots.by_station.insert(station.to_owned(), next);
    state.robots.index(lots);
    if change.cars {
        tracing::info!(station, reason = change.reason, "robot lot changed");
    }
    state.live.publish(Event::LotChanged {
        station_id: station.to_owned(),
        reason: change.reason.to_owned(),
        at: state.live.now(),
    });
    Ok(())
}

/// Applies `change` to a copy of the station's lot, lets the dispatcher act on the result and
/// commits both: the lot in memory is replaced only once what must be stored is stored, and a
/// refused change leaves it as it was.
async fn change_lot(
    state: &AppState,
    lots: &mut Lots,
    station: &str,
    now: f64,
    change: impl FnOnce(&mut LiveLot) -> Result<Option<Change>, LiveError>,
) -> ApiResult<()> {
    let mut next = lots.lot(station)?.clone();
    let changed = change(&mut next).map_err(live_error)?;
    let changed = Change::merge(changed, next.dispatch(now));
    commit(state, lots, station, next, changed).await
}

/// Stores the lots whose robot reports are only in memory.
async fn flush(state: &AppState, lots: &mut Lots) {
    let dirty: Vec<String> = lots.dirty.drain().collect();
    for station in dirty {
        let Some(l) = lots.by_station.get(&station) else {
            continue;
        };
        if let Err(e) = store_lot(state, &station, l).await {
            tracing::warn!(station = %station, error = %e.message, "robot lot not stored; retrying on the next tick");
            lots.dirty.insert(station);
        }
    }
}

/// Runs the timeouts and the dispatcher on `lot` at `now`; what changed.
fn settle(lot: &mut LiveLot, now: f64, timeout_s: f64) -> Option<Change> {
    let t = lot.timeouts(now, timeout_s);
    Change::merge(t, lot.dispatch(now))
}

fn live_error(e: LiveError) -> ApiError {
    match e {
        LiveError::Invalid(m) => ApiError::bad_request(m),
        LiveError::NotFound(m) => ApiError::not_found(m),
        LiveError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
    }
}

// ---------------------------------------------------------------------------------------------
// Views.

fn task_view(l: &LiveLot, task: &Task) -> Value {
    match task {
        Task::Stay => json!({ "kind": "stay" }),
        Task::Dock => {
            json!({ "kind": "dock", "x": round3(l.lot.dock.x), "y": round3(l.lot.dock.y) })
        }
        Task::Car { car } => match l.car(car) {
            Some(c) => {
                let p = l.lot.bay(c.bay).unwrap_or(l.lot.dock);
                json!({
                    "kind": "car",
                    "car": c.id,
                    "bay": c.bay,
                    "x": round3(p.x),
                    "y": round3(p.y),
                    "energy_kwh": round3(c.remaining_kwh),
                })
            }
            None => json!({ "kind": "stay" }),
        },
    }
}

fn robot_view(l: &LiveLot, r: &Robot, now: f64) -> Value {
    let battery = l.battery_at(r, now);
    json!({
        "id": r.id,
        "x": round3(r.pos.x),
        "y": round3(r.pos.y),
        "battery_kwh": round3(battery),
        "battery_pct": round3(battery / l.fleet.robot_kwh * 100.0),
        "state": l.robot_state(r).as_str(),
        "reported_state": r.reported.as_str(),
        "last_report_at": r.last_report_s.map_or(Value::Null, rfc3339),
        "task": task_view(l, &r.task),
        "override": r.pinned,
        "online": r.online,
        "fault": r.online && r.reported == Reported::Fault,
    })
}

fn car_view(station: &str, l: &LiveLot, c: &LiveCar, now: f64) -> Value {
    let p = l.lot.bay(c.bay);
    json!({
        "id": c.id,
        "station_id": station,
        "bay": c.bay,
        "x": p.map(|p| round3(p.x)),
        "y": p.map(|p| round3(p.y)),
        "plate": c.plate,
        "energy_kwh": round3(c.energy_kwh),
        "remaining_kwh": round3(c.remaining_kwh),
        "max_power_kw": round3(c.max_power_kw),
        "patience_s": c.patience_s,
        "arrived_at": rfc3339(c.arrival_s),
        "state": c.state.as_str(),
        "robot": c.robot,
        "wait_s": round3(c.wait_s(now)),
        "served_at": c.served_s.map_or(Value::Null, rfc3339),
        "ended_at": c.ended_s.map_or(Value::Null, rfc3339),
    })
}

fn lot_view(station: &str, l: &LiveLot, now: f64, timeout_s: f64) -> Value {
    let mut cars: Vec<&LiveCar> = l.cars.iter().collect();
    // Active cars in arrival order, then the ended ones, newest first.
    cars.sort_by(|a, b| {
        let (aa, ba) = (a.state.is_active(), b.state.is_active());
        ba.cmp(&aa).then_with(|| {
            if aa {
                a.arrival_s.total_cmp(&b.arrival_s)
            } else {
                b.ended_s
                    .unwrap_or(0.0)
                    .total_cmp(&a.ended_s.unwrap_or(0.0))
            }
        })
    });
    let count = |s: live::CarState| l.cars.iter().filter(|c| c.state == s).count();
    let waits: Vec<f64> = l
        .cars
        .iter()
        .filter(|c| c.started_s.is_some())
        .map(|c| c.wait_s(now))
        .collect();
    let mean_wait = if waits.is_empty() {
        0.0
    } else {
        waits.iter().sum::<f64>() / waits.len() as f64
    };
    let point = |p: &Point| json!({ "x": round3(p.x), "y": round3(p.y) });
    json!({
        "station_id": station,
        "now": rfc3339(now),
        "bays": l.lot.bays.iter().map(point).collect::<Vec<_>>(),
        "dock": point(&l.lot.dock),
        "fleet": l.fleet,
        "max_car_kwh": round3(l.max_car_kwh()),
        "robot_timeout_s": timeout_s,
        "robots": l.robots.iter().map(|r| robot_view(l, r, now)).collect::<Vec<_>>(),
        "cars": cars.iter().map(|c| car_view(station, l, c, now)).collect::<Vec<_>>(),
        "stats": {
            "waiting": count(live::CarState::Waiting),
            "assigned": count(live::CarState::Assigned),
            "charging": count(live::CarState::Charging),
            "served": l.served_total,
            "mean_wait_s": round3(mean_wait),
            "robots_online": l.robots.iter().filter(|r| r.online).count(),
        },
    })
}

fn view_of(state: &AppState, station: &str, l: &LiveLot, now: f64) -> Value {
    lot_view(station, l, now, state.robots.timeout_s())
}

// ---------------------------------------------------------------------------------------------
// Routes: staff (nested under `/api/v1`, behind the token and audit layers).

pub(crate) async fn get_lot(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let lots = loaded_lots(&state).await?;
    let l = lots.lot(&id)?;
    Ok(Json(view_of(&state, &id, l, now_s(&state))))
}

/// `bays` is a number (a typical service-area layout of that many bays) or a list of points.
#[derive(Deserialize)]
#[serde(untagged)]
enum Bays {
    Count(usize),
    Points(Vec<Point>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LotBody {
    bays: Bays,
    dock: Option<Point>,
    #[serde(default)]
    fleet: Fleet,
    robots: Vec<String>,
}

pub(crate) async fn put_lot(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require_write()?;
    let b: LotBody = body(&bytes)?;
    let layout = match b.bays {
        Bays::Count(n) if (1..=live::MAX_BAYS).contains(&n) => {
            let mut l = Lot::service_area(n);
            if let Some(d) = b.dock {
                l.dock = d;
            }
            l
        }
        Bays::Count(n) => {
            return Err(ApiError::bad_request(format!(
                "bays must be 1-{} or a list of points, got {n}",
                live::MAX_BAYS
            )));
        }
        Bays::Points(points) => Lot {
            bays: points,
            dock: b
                .dock
                .ok_or_else(|| ApiError::bad_request("dock is required with a list of bays"))?,
        },
    };
    live::check_layout(&layout, &b.fleet, &b.robots).map_err(live_error)?;
    state
        .store
        .get_station(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("station {id} not found")))?;
    for r in &b.robots {
        let charger = if valid_charger_id(r) {
            state.store.get_charger(r).await?
        } else {
            None
        };
        match charger {
            Some(c) if c.station_id == id => {}
            Some(c) => {
                return Err(ApiError::bad_request(format!(
                    "robot {r} is a charger of station {}, not {id}",
                    c.station_id
                )));
            }
            None => {
                return Err(ApiError::bad_request(format!(
                    "robot {} is not a registered charger",
                    r.chars().take(48).collect::<String>()
                )));
            }
        }
    }
    let now = now_s(&state);
    let mut lots = loaded_lots(&state).await?;
    let (mut next, change) = match lots.by_station.get(&id) {
        Some(old) => {
            let mut next = old.clone();
            let change = next
                .relayout(layout, b.fleet, &b.robots, now)
                .map_err(live_error)?;
            (next, change)
        }
        None => {
            let next = LiveLot::new(layout, b.fleet, &b.robots).map_err(live_error)?;
            // A new lot is stored whatever happens next.
            let change = Change {
                reason: "layout",
                cars: true,
            };
            (next, change)
        }
    };
    let change = Change::merge(
        Some(change),
        settle(&mut next, now, state.robots.timeout_s()),
    );
    commit(&state, &mut lots, &id, next, change).await?;
    tracing::info!(station = %id, robots = b.robots.len(), by = %caller.name, "robot lot set up");
    let l = lots.lot(&id)?;
    Ok(Json(view_of(&state, &id, l, now)))
}

pub(crate) async fn delete_lot(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_role(&[Role::Admin])?;
    let mut lots = loaded_lots(&state).await?;
    lots.lot(&id)?;
    state.store.delete_document(KIND, &id).await?;
    lots.by_station.remove(&id);
    state.robots.index(&lots);
    lots.dirty.remove(&id);
    tracing::info!(station = %id, by = %caller.name, "robot lot removed");
    state.live.publish(Event::LotChanged {
        station_id: id,
        reason: "removed".to_owned(),
        at: state.live.now(),
    });
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    robot: String,
    car: String,
}

/// A change staff make to the lot of `station` (see [`change_lot`]), answered with the lot.
async fn staff_change(
    state: &AppState,
    station: &str,
    change: impl FnOnce(&mut LiveLot, f64) -> Result<Option<Change>, LiveError>,
) -> ApiResult<Json<Value>> {
    let now = now_s(state);
    let mut lots = loaded_lots(state).await?;
    change_lot(state, &mut lots, station, now, |l| change(l, now)).await?;
    Ok(Json(view_of(state, station, lots.lot(station)?, now)))
}

pub(crate) async fn assign(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require_role(STAFF)?;
    let b: AssignBody = body(&bytes)?;
    let view = staff_change(&state, &id, |l, now| {
        l.assign(&b.robot, &b.car, now).map(Some)
    })
    .await?;
    tracing::info!(station = %id, robot = %b.robot, car = %b.car, by = %caller.name, "robot sent to a car by hand");
    Ok(view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    robot: String,
}

pub(crate) async fn release(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require_role(STAFF)?;
    let b: ReleaseBody = body(&bytes)?;
    let view = staff_change(&state, &id, |l, _| l.release(&b.robot)).await?;
    tracing::info!(station = %id, robot = %b.robot, by = %caller.name, "robot released from its car");
    Ok(view)
}

// ---------------------------------------------------------------------------------------------
// Routes: public (cars) and robots.

/// Routes outside the bearer-token layer: cars and the robot interface.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/stations/{id}/lot/cars", post(add_car))
        .route("/api/v1/lot-cars/{car}", get(get_car).delete(cancel_car))
        .route("/api/v1/robots/{id}/report", post(report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CarBody {
    bay: usize,
    energy_kwh: f64,
    /// The car's own charging limit; the robots' power when not given.
    max_power_kw: Option<f64>,
    plate: Option<String>,
    patience_s: Option<f64>,
}

async fn add_car(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b: CarBody = body(&bytes)?;
    let now = now_s(&state);
    let mut lots = loaded_lots(&state).await?;
    let car_id = random_hex(12);
    let new = NewCar {
        id: car_id.clone(),
        bay: b.bay,
        energy_kwh: b.energy_kwh,
        max_power_kw: b.max_power_kw.unwrap_or(lots.lot(&id)?.fleet.robot_kw),
        plate: b.plate,
        patience_s: b.patience_s,
    };
    change_lot(&state, &mut lots, &id, now, |l| {
        l.add_car(new, now).map(Some)
    })
    .await?;
    let l = lots.lot(&id)?;
    let c = l
        .car(&car_id)
        .ok_or_else(|| ApiError::internal("the car was not kept"))?;
    tracing::info!(station = %id, car = %car_id, bay = c.bay, energy_kwh = c.energy_kwh, "car took a place in the robot lot");
    Ok((StatusCode::CREATED, Json(car_view(&id, l, c, now))))
}

/// A car id as handed out: hex, so anything else is unknown without a lookup.
fn valid_car_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn get_car(
    State(state): State<Arc<AppState>>,
    Path(car): Path<String>,
) -> ApiResult<Json<Value>> {
    let now = now_s(&state);
    let lots = loaded_lots(&state).await?;
    let station = lots.station_of_car(&car)?;
    lots.car_json(&station, &car, now)
}

async fn cancel_car(
    State(state): State<Arc<AppState>>,
    Path(car): Path<String>,
) -> ApiResult<Json<Value>> {
    let now = now_s(&state);
    let mut lots = loaded_lots(&state).await?;
    let station = lots.station_of_car(&car)?;
    change_lot(&state, &mut lots, &station, now, |l| {
        l.cancel_car(&car, now)
    })
    .await?;
    let view = lots.car_json(&station, &car, now)?;
    tracing::info!(station = %station, car = %car, "car left the robot lot");
    Ok(view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    x: f64,
    y: f64,
    battery_kwh: f64,
    state: String,
    car: Option<String>,
}

/// 401 for a robot.
fn robot_unauthorized() -> Response {
    basic_unauthorized(
        "missing or wrong robot credentials: HTTP Basic with the robot's charger id and OCPP password",
    )
}

async fn report(
    State(state): State<Arc<AppState>>,
    Path(robot): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    if !valid_charger_id(&robot) {
        return Ok(robot_unauthorized());
    }
    let Some(charger) = state.store.get_charger(&robot).await? else {
        return Ok(robot_unauthorized());
    };
    if !charger_credentials_ok(&headers, &charger) {
        tracing::warn!(robot = %robot, "robot report refused: wrong or missing credentials");
        return Ok(robot_unauthorized());
    }
    let b: ReportBody = body(&bytes)?;
    let r = Report {
        x: b.x,
        y: b.y,
        battery_kwh: b.battery_kwh,
        state: Reported::parse(&b.state).map_err(live_error)?,
        car: b.car,
    };
    let now = now_s(&state);
    let station = charger.station_id;
    let mut lots = loaded_lots(&state).await?;
    let mut next = match lots.by_station.get(&station) {
        Some(l) if l.robot(&robot).is_some() => l.clone(),
        _ => {
            return Err(ApiError::not_found(format!(
                "robot {robot} is in no robot lot"
            )));
        }
    };
    let change = next.apply_report(&robot, &r, now).map_err(live_error)?;
    if change.reason == "battery_low" {
        tracing::info!(station = %station, robot = %robot, battery_kwh = r.battery_kwh, "robot's battery no longer covers its car; sent to the dock");
    }
    let change = Change::merge(Some(change), next.dispatch(now));
    commit(&state, &mut lots, &station, next, change).await?;
    let l = lots.lot(&station)?;
    let me = l
        .robot(&robot)
        .ok_or_else(|| ApiError::internal("the robot was not kept"))?;
    Ok(Json(json!({
        "task": task_view(l, &me.task),
        "report_every_s": live::REPORT_EVERY_S.round() as u64,
        "station_id": station,
        "state": l.robot_state(me).as_str(),
        "override": me.pinned,
    }))
    .into_response())
}

/// Starts the robots task with `config`: session events and the clock for every lot. The routes
/// work without it, but robots then never time out and sessions do not reach the lots.
pub fn start(state: &Arc<AppState>, config: RobotsConfig) -> tokio::task::JoinHandle<()> {
    state
        .robots
        .set_timeout_s(config.timeout_secs.max(1) as f64);
    state.gateway.set_tag_authority(state.robots.tasks.clone());
    runner::spawn(state.clone(), config)
}
