//! Mobile charging units across the province over HTTP: the units (charging vehicles and
//! containers) with their reported positions, the relocation plan the operations centre follows
//! (which unit goes where, when it must leave, the cars it is expected to serve), and the task
//! that re-plans it. The planner itself is `chargeops_dispatch::province` (pure); this module
//! turns the platform's forecasts and live network into its input, and its plan into times,
//! station names and routes.
//!
//! Who may do what:
//! - `admin` and `operator` add units; `admin` removes them.
//! - `admin`, `operator` and `dispatcher` report a unit's position and status and ask for a
//!   re-plan.
//! - A unit's own tracker reports with HTTP Basic credentials of its own (the unit id and the
//!   `tracker_password` staff gave it, stored as a salted digest) on
//!   `POST /mobile-units/{id}/track`, outside the bearer-token layer: it may move its unit and
//!   nothing else, and cannot declare a breakdown (staff do).
//! - Every token reads the units and the plan.
//!
//! Demand, per station and hour: the shortfall is the fitted forecast of arrivals (P50, sessions
//! starting in the hour, from `crate::forecast`) minus what the station serves itself: its
//! connectors in service now (every connector the platform knows, or one per charger when it
//! knows none, minus the faulted and unavailable ones; an offline charger is counted as serving,
//! since a lost connection seldom stops a charger) times the sessions a connector serves in an
//! hour (one over the station's mean session length from the same fit, 0.25 to 6). Connectors
//! rather than chargers because a multi-gun charger serves as many cars at once as it has guns
//! in use, and the fit's session length is per connector. Cars seen waiting now
//! (`PUT /stations/{id}/waiting`, or the demo's traffic) are the queue at the start. A unit
//! serves `cars_per_hour` (given, or one 30 kWh car per gun at 80% of the gun's power plus six
//! minutes to plug in and out).
//!
//! Where units start: at their station; a driving unit first arrives where it is driving (it
//! does not turn round mid-route); a unit standing off every station (a depot, a lay-by, where
//! it was repaired) starts from a site of its own at its position. Roads: along the highway
//! through the stations between, by the network file's kilometre posts, when both ends are on
//! the same highway; else straight, 1.3 times the great-circle distance.
//!
//! When it re-plans: at start once there are units; when a unit is added or removed; when a unit
//! reports `broken` (it is left out and its stays go to the others) or `ready` again after being
//! broken; when the forecasts are refitted (the forecast cache refits at every new platform hour
//! and after a few minutes) and the shortfall of some station-hour moved by more than half a car
//! an hour; when the live capacity of a short station changes that much; on request; and at
//! least every platform hour. Automatic re-plans (all but unit changes and requests) wait twice
//! as long as the last plan took, so that planning a large network on a busy machine takes at
//! most a third of a core. Every plan is published as `Event::UnitsPlanned`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use chargeops_core::secret::{hash_secret, verify_secret};
use chargeops_core::{Event, Role, Station};
use chargeops_dispatch::province::{
    self, Place, Plan, Site, Travel, Unit, UnitStatus as PlannerStatus,
};
use chargeops_forecast::SiteForecast;
use chargeops_gateway::basic_password_of;

use crate::error::{ApiResult, basic_unauthorized, body, query};
use crate::{ApiError, AppState, Caller};
use chargeops_services::forecasts::forecasts_of;
use chargeops_services::forecasts::hour_of;

/// Store document kind of a unit; the document id is the unit id.
pub const DOC_KIND: &str = "mobile_unit";
/// Units drive at this speed on the highway, km/h (the planner's too).
pub const SPEED_KMH: f64 = 70.0;
/// Hours planned ahead unless a re-plan request says otherwise.
pub const DEFAULT_HOURS: usize = 24;
/// The longest plan: the planner's work grows with the cube of the horizon, and forecasts
/// beyond two days are the analog-day estimate alone.
pub const MAX_HOURS: usize = 48;
/// Mainland China with Hainan: positions outside are a unit's GPS gone wrong.
const LAT_RANGE: std::ops::RangeInclusive<f64> = 18.0..=54.0;
const LON_RANGE: std::ops::RangeInclusive<f64> = 73.0..=135.5;
/// A unit this close to a station is at it.
const AT_STATION_KM: f64 = 2.0;
/// A change of a station-hour's shortfall (cars/h) that is worth a new plan; smaller changes
/// are forecast noise and would only churn the plan the crews follow.
const MATERIAL_CARS_PER_H: f64 = 0.5;
/// Roles that move units and ask for plans.
const FIELD: &[Role] = &[Role::Admin, Role::Operator, Role::Dispatcher];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A charging vehicle: drives itself, a few guns from its battery.
    Vehicle,
    /// A charging container: trucked to a site and connected there.
    Container,
}

impl UnitKind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "vehicle" => Some(UnitKind::Vehicle),
            "container" => Some(UnitKind::Container),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// At a station (or depot), not serving.
    Ready,
    /// On the road to `station_id`.
    Driving,
    /// Charging cars at `station_id`.
    Serving,
    /// Out of service: left out of every plan until it reports `ready` again.
    Broken,
}

impl UnitStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ready" => Some(UnitStatus::Ready),
            "driving" => Some(UnitStatus::Driving),
            "serving" => Some(UnitStatus::Serving),
            "broken" => Some(UnitStatus::Broken),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Ready => "ready",
            UnitStatus::Driving => "driving",
            UnitStatus::Serving => "serving",
            UnitStatus::Broken => "broken",
        }
    }
}

/// A mobile unit as stored (document kind [`DOC_KIND`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MobileUnit {
    pub id: String,
    pub name: String,
    pub kind: UnitKind,
    pub guns: u32,
    pub gun_kw: f64,
    pub cars_per_hour: f64,
    pub lat: f64,
    pub lon: f64,
    pub status: UnitStatus,
    /// Where it is (ready, serving, broken; none when off every station) or where it is driving.
    pub station_id: Option<String>,
    /// The station it left, while driving: its route is the road from there.
    #[serde(default)]
    pub left_from: Option<String>,
    pub reported_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Salted digest of the tracker's password (`core::secret::hash_secret`); no tracker
    /// credentials when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker_secret: Option<String>,
}

/// Cars a unit serves an hour when not told: one 30 kWh car per gun at 80% of the gun's power,
/// plus six minutes to plug in and out.
pub fn default_cars_per_hour(guns: u32, gun_kw: f64) -> f64 {
    f64::from(guns) / (0.1 + 30.0 / (0.8 * gun_kw))
}

// ---------------------------------------------------------------------------------------------
// State.

#[derive(Default)]
struct Book {
    loaded: bool,
    units: BTreeMap<String, MobileUnit>,
}

/// Why a re-plan was asked for; several before the task runs make one plan.
#[derive(Debug, Clone)]
struct Trigger {
    reason: &'static str,
    detail: String,
}

/// Reason codes, most telling first: a plan made for several reasons is named after the first.
const REASONS: &[&str] = &[
    "unit_report",
    "unit_removed",
    "unit_added",
    "request",
    "forecast",
    "capacity",
    "hourly",
    "start",
];

/// What the current plan was made from, to tell whether new forecasts change it.
struct Basis {
    origin: DateTime<Utc>,
    horizon: usize,
    /// Wall time the plan took, and when it was made: automatic re-plans wait for twice that
    /// after it, so the planner uses at most a third of a core however busy the network is.
    took: std::time::Duration,
    made: std::time::Instant,
    planned_at: DateTime<Utc>,
    fits: HashMap<String, Arc<SiteForecast>>,
    shortfall: HashMap<String, Vec<f64>>,
}

/// The units' shared state inside [`AppState`].
pub struct UnitsState {
    /// Serialises every change of units between the API, the task and the demo's mover.
    book: tokio::sync::Mutex<Book>,
    plan: RwLock<Option<Arc<PlanView>>>,
    /// Held while planning: one plan at a time.
    planning: tokio::sync::Mutex<Option<Basis>>,
    version: AtomicU64,
    hours: AtomicUsize,
    pending: Mutex<Vec<Trigger>>,
    wake: tokio::sync::Notify,
}

impl Default for UnitsState {
    fn default() -> Self {
        UnitsState {
            book: tokio::sync::Mutex::new(Book::default()),
            plan: RwLock::new(None),
            planning: tokio::sync::Mutex::new(None),
            version: AtomicU64::new(0),
            hours: AtomicUsize::new(DEFAULT_HOURS),
            pending: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        }
    }
}

impl UnitsState {
    /// The current plan, if one was made.
    pub fn plan(&self) -> Option<Arc<PlanView>> {
        self.plan.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks the task for a new plan.
    fn trigger(&self, reason: &'static str, detail: String) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Trigger { reason, detail });
        self.wake.notify_one();
    }

    fn take_triggers(&self) -> Vec<Trigger> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

async fn ensure_loaded(state: &AppState, book: &mut Book) -> ApiResult<()> {
    if book.loaded {
        return Ok(());
    }
    for (id, text) in state.store.list_documents(DOC_KIND).await? {
        match serde_json::from_str::<MobileUnit>(&text) {
            Ok(u) => {
                book.units.insert(u.id.clone(), u);
            }
            // A document this version cannot read is left alone, not dropped.
            Err(e) => tracing::error!(unit_id = %id, error = %e, "unreadable mobile unit skipped"),
        }
    }
    book.loaded = true;
    Ok(())
}

async fn save(state: &AppState, unit: &MobileUnit) -> ApiResult<()> {
    let text =
        serde_json::to_string(unit).map_err(|_| ApiError::internal("failed to encode a unit"))?;
    state.store.put_document(DOC_KIND, &unit.id, &text).await?;
    Ok(())
}

/// Every unit, in id order.
pub async fn units(state: &AppState) -> ApiResult<Vec<MobileUnit>> {
    let mut book = state.units.book.lock().await;
    ensure_loaded(state, &mut book).await?;
    Ok(book.units.values().cloned().collect())
}

// ---------------------------------------------------------------------------------------------
// Positions and stations.

fn check_position(lat: f64, lon: f64) -> ApiResult<()> {
    if !(lat.is_finite() && lon.is_finite()) {
        return Err(ApiError::bad_request("lat and lon must be numbers"));
    }
    if !(LAT_RANGE.contains(&lat) && LON_RANGE.contains(&lon)) {
        return Err(ApiError::bad_request(format!(
            "position {lat}, {lon} is outside China (lat {}..{}, lon {}..{})",
            LAT_RANGE.start(),
            LAT_RANGE.end(),
            LON_RANGE.start(),
            LON_RANGE.end()
        )));
    }
    Ok(())
}

fn position_of(s: &Station) -> Option<(f64, f64)> {
    match (s.lat, s.lon) {
        (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => Some((lat, lon)),
        _ => None,
    }
}

/// Stations with a position (the only ones a unit can drive to), in store order.
async fn placed_stations(state: &AppState) -> ApiResult<Vec<Station>> {
    Ok(state
        .store
        .list_stations()
        .await?
        .into_iter()
        .filter(|s| position_of(s).is_some())
        .collect())
}

fn nearest(stations: &[Station], at: (f64, f64)) -> Option<(&Station, f64)> {
    stations
        .iter()
        .filter_map(|s| position_of(s).map(|p| (s, province::great_circle_km(p, at))))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// A station's place for distances and routes: its own position, and the kilometre post from
/// the network file when the file has this station on the same highway.
fn place_of(state: &AppState, s: &Station) -> Place {
    let (lat, lon) = position_of(s).unwrap_or_default();
    let km = state
        .services
        .forecasts
        .network
        .station(&s.id)
        .filter(|spec| spec.highway.is_some() && spec.highway == s.highway)
        .and_then(|spec| spec.km);
    Place {
        lat,
        lon,
        highway: s.highway.clone(),
        direction: s.direction.clone(),
        km,
    }
}

// ---------------------------------------------------------------------------------------------
// Plan views.

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StayView {
    pub station_id: String,
    pub name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub expected_cars: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoveView {
    /// The station it leaves; none when it starts from where the unit is now, off a station.
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub to: String,
    pub to_name: String,
    pub depart_at: DateTime<Utc>,
    pub arrive_at: DateTime<Utc>,
    pub km: f64,
    /// The drive the unit is on now (it starts at the unit's position).
    pub in_progress: bool,
    /// `[lat, lon]` points, along the highway where both ends are on the same one.
    pub route: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitPlanView {
    pub unit: String,
    pub name: String,
    pub kind: UnitKind,
    pub cars_per_hour: f64,
    pub position: Position,
    pub status: UnitStatus,
    pub station_id: Option<String>,
    pub stays: Vec<StayView>,
    pub moves: Vec<MoveView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShortStation {
    pub station_id: String,
    pub name: String,
    pub position: Position,
    /// Largest forecast shortfall over the horizon, cars/h.
    pub peak_shortfall: f64,
    /// Queue car-hours with no unit, and with the plan.
    pub no_units_car_h: f64,
    pub plan_car_h: f64,
}

/// A relocation plan as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanView {
    /// Counts plans since the platform started.
    pub version: u64,
    pub planned_at: DateTime<Utc>,
    /// `start`, `forecast`, `capacity`, `hourly`, `unit_report`, `unit_added`, `unit_removed`
    /// or `request` (as in the `units_planned` event).
    pub reason: String,
    /// The same in a sentence: which unit, which forecasts.
    pub reason_detail: String,
    pub horizon_h: usize,
    /// Start of the first planned hour (the platform hour the forecasts start at).
    pub start: DateTime<Utc>,
    pub speed_kmh: f64,
    pub units: Vec<UnitPlanView>,
    /// Queue car-hours over the horizon with the plan, with the static placement (units spread
    /// in proportion to peak shortfall and left there), and with no units at all.
    pub unmet_car_h: f64,
    pub static_car_h: f64,
    pub no_units_car_h: f64,
    /// The reference with every unit moved instantly, each hour, to where it cuts the queue
    /// most (greedy): what no plan with real driving can beat by much.
    pub instant_car_h: f64,
    pub relocation_km: f64,
    pub served_cars: f64,
    /// Stations short at some hour of the horizon.
    pub sites_short: usize,
    /// The stations with the most queue without units, worst first (at most 20).
    pub short_stations: Vec<ShortStation>,
    /// Platform time of this answer, and platform seconds per wall second (1, or the demo's
    /// speed): what a page needs to tell which moves are past without the server's clock.
    pub now: DateTime<Utc>,
    pub clock_speed: f64,
}

impl PlanView {
    /// The plan as seen for the first `hours` hours only (stays and moves that start within;
    /// the totals stay those of the whole plan).
    fn clipped(&self, hours: usize) -> PlanView {
        if hours >= self.horizon_h {
            return self.clone();
        }
        let end = self.start + Duration::hours(hours as i64);
        let mut v = self.clone();
        v.horizon_h = hours;
        for u in &mut v.units {
            u.stays.retain(|s| s.from < end);
            for s in &mut u.stays {
                s.to = s.to.min(end);
            }
            u.moves.retain(|m| m.depart_at < end);
        }
        v
    }
}

fn r1(v: f64) -> f64 {
    // Plus zero: no "-0.0" in the answers.
    (v * 10.0).round() / 10.0 + 0.0
}

fn r5(v: f64) -> f64 {
    (v * 1e5).round() / 1e5
}

// ---------------------------------------------------------------------------------------------
// Planning.

/// The platform's view of every placed station for one plan.
struct Inputs {
    now: DateTime<Utc>,
    origin: DateTime<Utc>,
    horizon: usize,
    stations: Vec<Station>,
    places: Vec<Place>,
    sites: Vec<Site>,
    fits: HashMap<String, Arc<SiteForecast>>,
}

/// Connectors in service: the ones known, or one per charger when none is known yet, less the
/// faulted and unavailable (see the module doc).
fn in_service(state: &AppState, id: &str) -> f64 {
    let counts = state.live.station_counts(id).unwrap_or_default();
    let known = counts.total().max(state.live.station_chargers(id));
    known.saturating_sub(counts.faulted + counts.unavailable) as f64
}

async fn inputs(state: &AppState, horizon: usize) -> ApiResult<Inputs> {
    let now = state.live.now();
    let origin = hour_of(now);
    let stations = placed_stations(state).await?;
    let fcs = forecasts_of(
        &state.services.platform,
        &state.services.forecasts,
        now,
        &stations,
        horizon,
    )
    .await?;
    let mut sites = Vec::with_capacity(stations.len());
    let mut fits = HashMap::with_capacity(stations.len());
    for (s, f) in stations.iter().zip(fcs) {
        let per_connector =
            if f.fit.mean_service_hours.is_finite() && f.fit.mean_service_hours > 0.0 {
                (1.0 / f.fit.mean_service_hours).clamp(0.25, 6.0)
            } else {
                1.0
            };
        let own = in_service(state, &s.id) * per_connector;
        let shortfall = (0..horizon)
            .map(|h| f.hours.get(h).map_or(0.0, |x| x.arrivals.p50.max(0.0)) - own)
            .collect();
        sites.push(Site {
            id: s.id.clone(),
            shortfall,
            queue: state.live.station_waiting(&s.id) as f64,
        });
        fits.insert(s.id.clone(), f);
    }
    let places = stations.iter().map(|s| place_of(state, s)).collect();
    Ok(Inputs {
        now,
        origin,
        horizon,
        stations,
        places,
        sites,
        fits,
    })
}

/// The drive a unit is on when the plan is made: where to, what is left of the route, and
/// how far.
struct Drive {
    from: Option<usize>,
    to: usize,
    km: f64,
    route: Vec<(f64, f64)>,
}

/// Where a unit starts the plan from.
enum Start {
    /// At a station (or broken anywhere: it goes nowhere).
    At(usize),
    /// On the road: it first arrives where it is driving.
    Driving(Drive),
    /// Standing off every station (a depot, a lay-by, where it was repaired): the plan starts
    /// it from a site of its own at its position, so it can go anywhere from there.
    Off((f64, f64)),
}

/// The road from a point off the stations to `places[to]`: along the highway when the nearest
/// station is on the same highway as `to` (what is left of that station's route from where
/// the point is), else straight; and its length in road km.
fn road_from(places: &[Place], at: (f64, f64), to: usize) -> (f64, Vec<(f64, f64)>) {
    let target = &places[to];
    let straight = || {
        (
            province::great_circle_km(at, (target.lat, target.lon)) * 1.3,
            vec![at, (target.lat, target.lon)],
        )
    };
    let Some(near) = places
        .iter()
        .enumerate()
        .map(|(i, p)| (i, province::great_circle_km((p.lat, p.lon), at)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
    else {
        return straight();
    };
    let p = &places[near];
    let same_road = near != to
        && p.km.is_some()
        && target.km.is_some()
        && p.highway.is_some()
        && p.highway == target.highway;
    if !same_road {
        return straight();
    }
    let full = province::route(places, near, to);
    let rest = province::rest_of_route(&full, at);
    let full_km = province::polyline_km(&full);
    let km = if full_km > 0.0 {
        province::place_km(p, target) * province::polyline_km(&rest) / full_km
    } else {
        province::polyline_km(&rest)
    };
    (km, rest)
}

/// Where a unit starts the plan from.
fn start_of(
    u: &MobileUnit,
    inp: &Inputs,
    index: &HashMap<&str, usize>,
    target: Option<&str>,
) -> Option<Start> {
    let at = (u.lat, u.lon);
    let idx = |id: Option<&str>| id.and_then(|id| index.get(id).copied());
    let nearest_site = || {
        inp.places
            .iter()
            .enumerate()
            .map(|(i, p)| (i, province::great_circle_km((p.lat, p.lon), at)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    if u.status == UnitStatus::Broken {
        let site = idx(u.station_id.as_deref()).or_else(|| nearest_site().map(|x| x.0))?;
        return Some(Start::At(site));
    }
    if u.status == UnitStatus::Driving {
        let to = idx(u.station_id.as_deref())
            .or_else(|| idx(target))
            .or_else(|| nearest_site().map(|x| x.0))?;
        let drive = match idx(u.left_from.as_deref()) {
            Some(from) if from != to => {
                let full = province::route(&inp.places, from, to);
                let rest = province::rest_of_route(&full, at);
                let (full_km, rest_km) =
                    (province::polyline_km(&full), province::polyline_km(&rest));
                let road = province::place_km(&inp.places[from], &inp.places[to]);
                let km = if full_km > 0.0 {
                    road * (rest_km / full_km).min(1.0)
                } else {
                    rest_km
                };
                Drive {
                    from: Some(from),
                    to,
                    km,
                    route: rest,
                }
            }
            _ => {
                let (km, route) = road_from(&inp.places, at, to);
                Drive {
                    from: None,
                    to,
                    km,
                    route,
                }
            }
        };
        return Some(Start::Driving(drive));
    }
    // Ready or serving: at its station when within reach of it, else off the stations.
    let site = match idx(u.station_id.as_deref()) {
        Some(i) => Some(i),
        None => nearest_site().map(|x| x.0),
    }?;
    let p = &inp.places[site];
    if province::great_circle_km(at, (p.lat, p.lon)) <= AT_STATION_KM {
        Some(Start::At(site))
    } else {
        Some(Start::Off(at))
    }
}

fn points(route: &[(f64, f64)]) -> Vec<[f64; 2]> {
    route.iter().map(|&(lat, lon)| [r5(lat), r5(lon)]).collect()
}

/// What the planner is given: the stations and, after them, one site for each unit standing
/// off the stations.
struct Problem {
    units: Vec<Unit>,
    sites: Vec<Site>,
    travel: Travel,
    /// Position of each site past the stations.
    off: Vec<(f64, f64)>,
    drives: Vec<Option<Drive>>,
}

impl Problem {
    fn build(inp: &Inputs, starts: Vec<(&MobileUnit, Start)>) -> Problem {
        let n = inp.places.len();
        let frac_h = (inp.now - inp.origin).num_seconds() as f64 / 3600.0;
        let mut sites = inp.sites.clone();
        let mut off = Vec::new();
        let mut units = Vec::with_capacity(starts.len());
        let mut drives = Vec::with_capacity(starts.len());
        for (u, start) in starts {
            let (site, available_h, drive) = match start {
                Start::At(site) => (site, 0.0, None),
                Start::Driving(d) => (d.to, frac_h + d.km / SPEED_KMH, Some(d)),
                Start::Off(at) => {
                    off.push(at);
                    sites.push(Site {
                        id: format!("@{}", u.id),
                        shortfall: vec![0.0; inp.horizon],
                        queue: 0.0,
                    });
                    (n + off.len() - 1, 0.0, None)
                }
            };
            units.push(Unit {
                id: u.id.clone(),
                cars_per_hour: u.cars_per_hour,
                site,
                available_h,
                status: if u.status == UnitStatus::Broken {
                    PlannerStatus::Broken
                } else {
                    PlannerStatus::Ready
                },
            });
            // A broken unit drives nowhere.
            drives.push(drive.filter(|_| u.status != UnitStatus::Broken));
        }
        let total = n + off.len();
        let km = (0..total)
            .map(|a| {
                (0..total)
                    .map(|b| match (a < n, b < n) {
                        _ if a == b => 0.0,
                        (true, true) => province::place_km(&inp.places[a], &inp.places[b]),
                        (false, true) => road_from(&inp.places, off[a - n], b).0,
                        (true, false) => road_from(&inp.places, off[b - n], a).0,
                        (false, false) => province::great_circle_km(off[a - n], off[b - n]) * 1.3,
                    })
                    .collect()
            })
            .collect();
        Problem {
            units,
            sites,
            travel: Travel {
                km,
                speed_kmh: SPEED_KMH,
            },
            off,
            drives,
        }
    }

    /// The route of a planned move between two sites.
    fn route(&self, inp: &Inputs, from: usize, to: usize) -> Vec<(f64, f64)> {
        let n = inp.places.len();
        match (from < n, to < n) {
            (true, true) => province::route(&inp.places, from, to),
            (false, true) => road_from(&inp.places, self.off[from - n], to).1,
            (true, false) => {
                let mut r = road_from(&inp.places, self.off[to - n], from).1;
                r.reverse();
                r
            }
            (false, false) => vec![self.off[from - n], self.off[to - n]],
        }
    }
}

/// The plan as times, names and routes.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument a different part"
)]
fn view(
    inp: &Inputs,
    units: &[MobileUnit],
    problem: &Problem,
    plan: &Plan,
    (static_car_h, instant_car_h): (f64, f64),
    version: u64,
    reason: &str,
    detail: String,
) -> PlanView {
    let n = inp.places.len();
    let hour = |h: f64| inp.origin + Duration::milliseconds((h * 3_600_000.0) as i64);
    let name = |i: usize| inp.stations[i].name.clone();
    let mut out = Vec::with_capacity(units.len());
    for ((u, up), drive) in units.iter().zip(&plan.units).zip(&problem.drives) {
        let mut moves = Vec::new();
        if let Some(d) = drive {
            moves.push(MoveView {
                from: d.from.map(|i| inp.stations[i].id.clone()),
                from_name: d.from.map(name),
                to: inp.stations[d.to].id.clone(),
                to_name: name(d.to),
                depart_at: inp.now,
                arrive_at: inp.now + Duration::seconds((d.km / SPEED_KMH * 3600.0) as i64),
                km: r1(d.km),
                in_progress: true,
                route: points(&d.route),
            });
        }
        // Moves to a site off the stations (back to where a unit stood) are not planned: such a
        // site is never short. Stays there serve nobody and are not shown.
        for m in up.moves.iter().filter(|m| m.to < n) {
            let depart = hour(m.depart_h as f64).max(inp.now);
            moves.push(MoveView {
                from: (m.from < n).then(|| inp.stations[m.from].id.clone()),
                from_name: (m.from < n).then(|| name(m.from)),
                to: inp.stations[m.to].id.clone(),
                to_name: name(m.to),
                depart_at: depart,
                arrive_at: depart + Duration::seconds((m.km / SPEED_KMH * 3600.0) as i64),
                km: r1(m.km),
                in_progress: false,
                route: points(&problem.route(inp, m.from, m.to)),
            });
        }
        let stays = up
            .stays
            .iter()
            .filter(|s| s.site < n)
            .map(|s| StayView {
                station_id: inp.stations[s.site].id.clone(),
                name: name(s.site),
                from: hour(s.from_h as f64).max(inp.now),
                to: hour(s.to_h as f64),
                expected_cars: r1(s.expected_cars),
            })
            .filter(|s| s.to > s.from)
            .collect();
        out.push(UnitPlanView {
            unit: u.id.clone(),
            name: u.name.clone(),
            kind: u.kind,
            cars_per_hour: u.cars_per_hour,
            position: Position {
                lat: u.lat,
                lon: u.lon,
            },
            status: u.status,
            station_id: u.station_id.clone(),
            stays,
            moves,
        });
    }
    let with_plan = province::site_queues(&problem.units, &problem.sites, plan, inp.horizon);
    let empty = Plan {
        units: Vec::new(),
        unmet_car_h: 0.0,
        no_units_car_h: 0.0,
        relocation_km: 0.0,
        served_cars: 0.0,
    };
    let without = province::site_queues(&[], &inp.sites, &empty, inp.horizon);
    let mut short: Vec<ShortStation> = inp
        .sites
        .iter()
        .enumerate()
        .filter(|(i, _)| without[*i] > 0.0)
        .map(|(i, s)| ShortStation {
            station_id: s.id.clone(),
            name: name(i),
            position: Position {
                lat: inp.places[i].lat,
                lon: inp.places[i].lon,
            },
            peak_shortfall: r1(s.shortfall.iter().fold(0.0, |a: f64, &b| a.max(b))),
            no_units_car_h: r1(without[i]),
            plan_car_h: r1(with_plan[i]),
        })
        .collect();
    short.sort_by(|a, b| {
        b.no_units_car_h
            .total_cmp(&a.no_units_car_h)
            .then(a.station_id.cmp(&b.station_id))
    });
    short.truncate(20);
    let sites_short = inp
        .sites
        .iter()
        .filter(|s| s.queue > 0.0 || s.shortfall.iter().any(|&v| v > 0.0))
        .count();
    let in_progress_km: f64 = problem.drives.iter().flatten().map(|d| d.km).sum();
    PlanView {
        version,
        planned_at: inp.now,
        reason: reason.to_owned(),
        reason_detail: detail,
        horizon_h: inp.horizon,
        start: inp.origin,
        speed_kmh: SPEED_KMH,
        units: out,
        unmet_car_h: r1(plan.unmet_car_h),
        static_car_h: r1(static_car_h),
        no_units_car_h: r1(plan.no_units_car_h),
        instant_car_h: r1(instant_car_h),
        relocation_km: r1(plan.relocation_km + in_progress_km),
        served_cars: r1(plan.served_cars),
        sites_short,
        short_stations: short,
        now: inp.now,
        clock_speed: 1.0,
    }
}

/// The destination of a unit's drive in the current plan, for a driving unit that did not say
/// where it is going.
fn planned_target(plan: Option<&PlanView>, unit: &str, now: DateTime<Utc>) -> Option<String> {
    plan?
        .units
        .iter()
        .find(|u| u.unit == unit)?
        .moves
        .iter()
        .find(|m| m.arrive_at > now)
        .map(|m| m.to.clone())
}

/// Makes a plan from `inp` for the units as they are now, publishes it and remembers what it
/// was made from. The caller holds the planning lock (`basis`).
async fn make_plan(
    state: &AppState,
    basis: &mut Option<Basis>,
    inp: Inputs,
    triggers: &[Trigger],
) -> ApiResult<Arc<PlanView>> {
    let units = units(state).await?;
    let previous = state.units.plan();
    let index: HashMap<&str, usize> = inp
        .stations
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut kept = Vec::new();
    let mut starts = Vec::new();
    for u in &units {
        let target = planned_target(previous.as_deref(), &u.id, inp.now);
        match start_of(u, &inp, &index, target.as_deref()) {
            Some(s) => {
                kept.push(u.clone());
                starts.push(s);
            }
            None => tracing::warn!(unit_id = %u.id, "no station to plan this unit from"),
        }
    }
    let reason = REASONS
        .iter()
        .find(|r| triggers.iter().any(|t| t.reason == **r))
        .copied()
        .unwrap_or("start");
    let detail = triggers
        .iter()
        .map(|t| t.detail.as_str())
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let problem = Problem::build(&inp, kept.iter().zip(starts).collect());
    let horizon = inp.horizon;
    let t0 = std::time::Instant::now();
    let (plan, fixed, instant, problem) = tokio::task::spawn_blocking(move || {
        let plan =
            province::plan_relocation(&problem.units, &problem.sites, &problem.travel, horizon);
        let fixed =
            province::static_placement(&problem.units, &problem.sites, &problem.travel, horizon);
        let instant = province::instant_reference(&problem.units, &problem.sites, horizon);
        (plan, fixed, instant, problem)
    })
    .await
    .map_err(|_| ApiError::internal("planning failed"))?;
    let plan = plan.map_err(|e| {
        tracing::error!(error = %e, "relocation planning refused its input");
        ApiError::internal("planning failed")
    })?;
    let static_car_h = fixed.map_or(f64::NAN, |f| f.unmet_car_h);
    let version = state.units.version.fetch_add(1, Ordering::SeqCst) + 1;
    let v = Arc::new(view(
        &inp,
        &kept,
        &problem,
        &plan,
        (static_car_h, instant),
        version,
        reason,
        detail,
    ));
    tracing::info!(
        version,
        reason,
        units = kept.len(),
        stations = inp.stations.len(),
        unmet_car_h = v.unmet_car_h,
        static_car_h = v.static_car_h,
        elapsed_ms = t0.elapsed().as_millis() as u64,
        "mobile units planned"
    );
    *state.units.plan.write().unwrap_or_else(|e| e.into_inner()) = Some(v.clone());
    *basis = Some(Basis {
        origin: inp.origin,
        horizon: inp.horizon,
        took: t0.elapsed(),
        made: std::time::Instant::now(),
        planned_at: inp.now,
        shortfall: inp
            .sites
            .iter()
            .map(|s| (s.id.clone(), s.shortfall.clone()))
            .collect(),
        fits: inp.fits,
    });
    state.live.publish(Event::UnitsPlanned {
        version,
        reason: reason.to_owned(),
        at: inp.now,
    });
    Ok(v)
}

/// Re-plans now for `triggers` (the API's `POST /plan`, and the task for units added, removed,
/// broken).
async fn replan(state: &AppState, triggers: &[Trigger]) -> ApiResult<Arc<PlanView>> {
    let mut basis = state.units.planning.lock().await;
    let hours = state.units.hours.load(Ordering::Relaxed);
    let inp = inputs(state, hours).await?;
    make_plan(state, &mut basis, inp, triggers).await
}

/// Why new inputs call for a new plan, if they do: the hour moved on, the forecasts were
/// refitted and moved a station-hour's shortfall materially, or live capacity did.
fn worth_replanning(basis: &Basis, inp: &Inputs) -> Option<Trigger> {
    let shift = (inp.origin - basis.origin).num_hours();
    let mut worst: Option<(f64, &str, usize)> = None;
    for s in &inp.sites {
        let old = basis.shortfall.get(&s.id);
        for (h, &new) in s.shortfall.iter().enumerate() {
            let was = old.and_then(|o| {
                usize::try_from(h as i64 + shift)
                    .ok()
                    .and_then(|i| o.get(i).copied())
            });
            let Some(was) = was else {
                // An hour (or a station) the last plan did not cover.
                if new > MATERIAL_CARS_PER_H && worst.is_none() {
                    worst = Some((new, &s.id, h));
                }
                continue;
            };
            let d = (new.max(0.0) - was.max(0.0)).abs();
            if d > MATERIAL_CARS_PER_H && worst.is_none_or(|w| d > w.0) {
                worst = Some((d, &s.id, h));
            }
        }
    }
    let refitted = inp
        .fits
        .iter()
        .any(|(id, f)| basis.fits.get(id).is_none_or(|old| !Arc::ptr_eq(old, f)));
    if let Some((d, id, h)) = worst {
        let at = inp.origin + Duration::hours(h as i64);
        let what = format!(
            "the shortfall at {id} at {} moved by {d:.1} cars/h",
            at.format("%Y-%m-%d %H:00Z")
        );
        return Some(if refitted {
            Trigger {
                reason: "forecast",
                detail: format!("forecasts refitted: {what}"),
            }
        } else {
            Trigger {
                reason: "capacity",
                detail: format!("live capacity changed: {what}"),
            }
        });
    }
    if shift > 0 || inp.now - basis.planned_at >= Duration::hours(1) {
        return Some(Trigger {
            reason: "hourly",
            detail: "a new hour".to_owned(),
        });
    }
    None
}

/// One turn of the task: triggered re-plans first; otherwise, while there are units, a look at
/// the forecasts.
async fn step(state: &AppState) -> ApiResult<()> {
    let triggers = state.units.take_triggers();
    let any_units = !units(state).await?.is_empty();
    if !triggers.is_empty() {
        replan(state, &triggers).await?;
        return Ok(());
    }
    // With no units there is nothing to plan, and no reason to fit every station's forecast.
    if !any_units {
        return Ok(());
    }
    let mut basis = state.units.planning.lock().await;
    if basis
        .as_ref()
        .is_some_and(|b| b.made.elapsed() < b.took * 2)
    {
        return Ok(());
    }
    let hours = state.units.hours.load(Ordering::Relaxed);
    let inp = inputs(state, hours).await?;
    let trigger = match basis.as_ref() {
        None => Some(Trigger {
            reason: "start",
            detail: "first plan since the platform started".to_owned(),
        }),
        Some(b)
            if inp.horizon != b.horizon
                || b.shortfall.len() != inp.sites.len()
                || inp.sites.iter().any(|s| !b.shortfall.contains_key(&s.id)) =>
        {
            Some(Trigger {
                reason: "forecast",
                detail: "the stations or the horizon changed".to_owned(),
            })
        }
        Some(b) => worth_replanning(b, &inp),
    };
    if let Some(t) = trigger {
        make_plan(state, &mut basis, inp, &[t]).await?;
    }
    Ok(())
}

/// Starts the task that keeps the plan current (see the module doc for when it re-plans).
pub fn start(state: &Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            // Two platform minutes between looks: every second or two in a fast demo, at most
            // ten seconds on the wall clock (a look at cached forecasts is cheap).
            let tick = state
                .live
                .clock()
                .real_duration(Duration::minutes(2))
                .clamp(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(10),
                );
            if let Err(e) = step(&state).await {
                tracing::warn!(error = %e.message, "mobile units: planning failed; retrying");
            }
            tokio::select! {
                _ = state.units.wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Reports.

/// A unit's report: where it is and what it does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub lat: f64,
    pub lon: f64,
    pub status: String,
    /// Where it is (ready, serving, broken) or where it is driving. When left out: the station
    /// within 2 km, or for a driving unit the destination of its planned move.
    pub station_id: Option<String>,
}

/// Applies a report. `telemetry` is the unit's own tracker (the demo's simulated units): it
/// never reports a breakdown and is ignored while the unit is broken, so that staff reporting
/// a breakdown always win. Returns the unit as it is now.
pub async fn report(
    state: &AppState,
    id: &str,
    r: &Report,
    telemetry: bool,
) -> ApiResult<MobileUnit> {
    let status = UnitStatus::parse(&r.status).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status must be ready, driving, serving or broken, got {:?}",
            r.status
        ))
    })?;
    check_position(r.lat, r.lon)?;
    let stations = placed_stations(state).await?;
    if let Some(sid) = &r.station_id
        && !stations.iter().any(|s| &s.id == sid)
    {
        return Err(match state.store.get_station(sid).await? {
            Some(_) => ApiError::bad_request(format!(
                "station {sid} has no position, so no unit can be there"
            )),
            None => ApiError::not_found(format!("station {sid} not found")),
        });
    }
    let now = state.live.now();
    let plan = state.units.plan();
    let mut book = state.units.book.lock().await;
    ensure_loaded(state, &mut book).await?;
    let Some(old) = book.units.get(id).cloned() else {
        return Err(ApiError::not_found(format!("mobile unit {id} not found")));
    };
    if old.status == UnitStatus::Broken {
        if telemetry {
            return Ok(old);
        }
        if !matches!(status, UnitStatus::Broken | UnitStatus::Ready) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "unit_broken",
                format!(
                    "mobile unit {id} is broken: report ready once it is repaired, or broken to move it"
                ),
            ));
        }
    }
    if telemetry && status == UnitStatus::Broken {
        return Err(ApiError::bad_request(
            "a tracker does not report breakdowns",
        ));
    }
    let at_station = || {
        nearest(&stations, (r.lat, r.lon))
            .filter(|(_, km)| *km <= AT_STATION_KM)
            .map(|(s, _)| s.id.clone())
    };
    let mut u = old.clone();
    u.lat = r.lat;
    u.lon = r.lon;
    u.status = status;
    u.reported_at = now;
    match status {
        UnitStatus::Driving => {
            u.station_id = r
                .station_id
                .clone()
                .or_else(|| planned_target(plan.as_deref(), id, now))
                .or(if old.status == UnitStatus::Driving {
                    old.station_id.clone()
                } else {
                    None
                });
            u.left_from = if old.status == UnitStatus::Driving {
                old.left_from.clone()
            } else {
                old.station_id
                    .clone()
                    .filter(|s| Some(s) != u.station_id.as_ref())
            };
        }
        _ => {
            u.station_id = r.station_id.clone().or_else(at_station);
            u.left_from = None;
        }
    }
    save(state, &u).await?;
    book.units.insert(u.id.clone(), u.clone());
    drop(book);
    state.live.publish(Event::UnitMoved {
        unit_id: u.id.clone(),
        lat: u.lat,
        lon: u.lon,
        status: status.as_str().to_owned(),
        station_id: u.station_id.clone(),
        at: now,
    });
    if status == UnitStatus::Broken && old.status != UnitStatus::Broken {
        let where_ = if old.status == UnitStatus::Driving {
            let to = old.station_id.as_deref().unwrap_or("its destination");
            let left = old
                .station_id
                .as_ref()
                .and_then(|sid| stations.iter().find(|s| &s.id == sid))
                .and_then(position_of)
                .map(|p| province::great_circle_km(p, (r.lat, r.lon)));
            match left {
                Some(km) => format!("mid-route to {to}, {km:.0} km from it"),
                None => format!("mid-route to {to}"),
            }
        } else {
            format!(
                "at {}",
                u.station_id.as_deref().unwrap_or("a place off the network")
            )
        };
        tracing::warn!(unit_id = %id, %where_, "mobile unit broken");
        state.units.trigger(
            "unit_report",
            format!("{id} reported broken {where_}: left out of the plan, its stays go to the other units"),
        );
    } else if old.status == UnitStatus::Broken && status == UnitStatus::Ready {
        state
            .units
            .trigger("unit_report", format!("{id} repaired: back in the plan"));
    }
    Ok(u)
}

// ---------------------------------------------------------------------------------------------
// HTTP.

#[derive(Debug, Clone, Serialize)]
pub(crate) struct NextMove {
    to: String,
    to_name: String,
    depart_at: DateTime<Utc>,
    arrive_at: DateTime<Utc>,
    km: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct UnitView {
    id: String,
    name: String,
    kind: UnitKind,
    guns: u32,
    gun_kw: f64,
    cars_per_hour: f64,
    position: Position,
    status: UnitStatus,
    station_id: Option<String>,
    station_name: Option<String>,
    reported_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    /// The unit's next drive in the current plan (or the one it is on).
    next_move: Option<NextMove>,
}

fn unit_view(
    u: MobileUnit,
    names: &HashMap<String, String>,
    plan: Option<&PlanView>,
    now: DateTime<Utc>,
) -> UnitView {
    let next_move = plan
        .and_then(|p| p.units.iter().find(|x| x.unit == u.id))
        .filter(|_| u.status != UnitStatus::Broken)
        .and_then(|x| x.moves.iter().find(|m| m.arrive_at > now))
        .map(|m| NextMove {
            to: m.to.clone(),
            to_name: m.to_name.clone(),
            depart_at: m.depart_at,
            arrive_at: m.arrive_at,
            km: m.km,
        });
    UnitView {
        station_name: u.station_id.as_ref().and_then(|s| names.get(s).cloned()),
        position: Position {
            lat: u.lat,
            lon: u.lon,
        },
        id: u.id,
        name: u.name,
        kind: u.kind,
        guns: u.guns,
        gun_kw: u.gun_kw,
        cars_per_hour: u.cars_per_hour,
        status: u.status,
        station_id: u.station_id,
        reported_at: u.reported_at,
        created_at: u.created_at,
        next_move,
    }
}

async fn station_names(state: &AppState) -> ApiResult<HashMap<String, String>> {
    Ok(state
        .store
        .list_stations()
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect())
}

/// `GET /api/v1/mobile-units`
pub(crate) async fn list_units(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<UnitView>>> {
    let all = units(&state).await?;
    let names = station_names(&state).await?;
    let plan = state.units.plan();
    let now = state.live.now();
    Ok(Json(
        all.into_iter()
            .map(|u| unit_view(u, &names, plan.as_deref(), now))
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUnit {
    id: String,
    name: Option<String>,
    kind: String,
    guns: i64,
    gun_kw: f64,
    cars_per_hour: Option<f64>,
    station_id: String,
    /// Credentials for the unit's own tracker (`POST /mobile-units/{id}/track`).
    tracker_password: Option<String>,
}

/// A tracker password as given by staff: 12 to 128 printable characters.
fn tracker_secret(password: &str) -> ApiResult<String> {
    let n = password.chars().count();
    if !(12..=128).contains(&n) || password.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "tracker_password must be 12 to 128 characters without control characters, got {n}"
        )));
    }
    Ok(hash_secret(password))
}

fn valid_id(id: &str) -> bool {
    (1..=48).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// `POST /api/v1/mobile-units`
pub(crate) async fn create_unit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<UnitView>)> {
    caller.require_write()?;
    let new: NewUnit = body(&bytes)?;
    if !valid_id(&new.id) || new.id == "plan" {
        return Err(ApiError::bad_request(
            "unit id must be 1-48 characters of letters, digits, '-', '_', '.', ':' (and not \"plan\")",
        ));
    }
    let name = new.name.unwrap_or_else(|| new.id.clone());
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 characters"));
    }
    let kind = UnitKind::parse(&new.kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "kind must be vehicle or container, got {:?}",
            new.kind
        ))
    })?;
    if !(1..=16).contains(&new.guns) {
        return Err(ApiError::bad_request(format!(
            "guns must be 1 to 16, got {}",
            new.guns
        )));
    }
    if !(new.gun_kw.is_finite() && (3.0..=600.0).contains(&new.gun_kw)) {
        return Err(ApiError::bad_request(format!(
            "gun_kw must be 3 to 600, got {}",
            new.gun_kw
        )));
    }
    let guns = new.guns as u32;
    let tracker_secret = new
        .tracker_password
        .as_deref()
        .map(tracker_secret)
        .transpose()?;
    let cars_per_hour = match new.cars_per_hour {
        Some(c) if !(c.is_finite() && c > 0.0 && c <= 50.0) => {
            return Err(ApiError::bad_request(format!(
                "cars_per_hour must be above 0 and at most 50, got {c}"
            )));
        }
        Some(c) => c,
        None => (default_cars_per_hour(guns, new.gun_kw) * 100.0).round() / 100.0,
    };
    let station = state
        .store
        .get_station(&new.station_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("station {} not found", new.station_id)))?;
    let Some((lat, lon)) = position_of(&station) else {
        return Err(ApiError::bad_request(format!(
            "station {} has no position, so no unit can be there",
            station.id
        )));
    };
    let now = state.live.now();
    let unit = MobileUnit {
        id: new.id,
        name,
        kind,
        guns,
        gun_kw: new.gun_kw,
        cars_per_hour,
        lat,
        lon,
        status: UnitStatus::Ready,
        station_id: Some(station.id.clone()),
        left_from: None,
        reported_at: now,
        created_at: now,
        tracker_secret,
    };
    {
        let mut book = state.units.book.lock().await;
        ensure_loaded(&state, &mut book).await?;
        if book.units.contains_key(&unit.id) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("mobile unit {} exists", unit.id),
            ));
        }
        save(&state, &unit).await?;
        book.units.insert(unit.id.clone(), unit.clone());
    }
    tracing::info!(unit_id = %unit.id, station_id = %station.id, by = %caller.name, "mobile unit added");
    state
        .units
        .trigger("unit_added", format!("{} added at {}", unit.id, station.id));
    let names = HashMap::from([(station.id, station.name)]);
    Ok((
        StatusCode::CREATED,
        Json(unit_view(unit, &names, None, now)),
    ))
}

/// `POST /api/v1/mobile-units/{id}/report`
pub(crate) async fn report_unit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<UnitView>> {
    caller.require_role(FIELD)?;
    let r: Report = body(&bytes)?;
    let u = report(&state, &id, &r, false).await?;
    let names = station_names(&state).await?;
    let plan = state.units.plan();
    Ok(Json(unit_view(
        u,
        &names,
        plan.as_deref(),
        state.live.now(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackerBody {
    password: String,
}

/// `PUT /api/v1/mobile-units/{id}/tracker`: gives the unit's tracker a new password (the old
/// one stops working at once).
pub(crate) async fn set_tracker(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    let b: TrackerBody = body(&bytes)?;
    let secret = tracker_secret(&b.password)?;
    let mut book = state.units.book.lock().await;
    ensure_loaded(&state, &mut book).await?;
    let Some(mut u) = book.units.get(&id).cloned() else {
        return Err(ApiError::not_found(format!("mobile unit {id} not found")));
    };
    u.tracker_secret = Some(secret);
    save(&state, &u).await?;
    book.units.insert(id.clone(), u);
    tracing::info!(unit_id = %id, by = %caller.name, "mobile unit tracker password set");
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the request carries the unit tracker's own Basic credentials.
async fn tracker_ok(state: &AppState, id: &str, headers: &HeaderMap) -> ApiResult<bool> {
    let Some(password) = basic_password_of(headers, id) else {
        return Ok(false);
    };
    let mut book = state.units.book.lock().await;
    ensure_loaded(state, &mut book).await?;
    Ok(book
        .units
        .get(id)
        .and_then(|u| u.tracker_secret.as_deref())
        .is_some_and(|stored| verify_secret(&password, stored)))
}

/// `POST /api/v1/mobile-units/{id}/track`: the unit's own tracker reports, with HTTP Basic
/// (unit id, tracker password). The answer is the unit as the plan sees it, its next move
/// included.
pub(crate) async fn track_unit(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    if !valid_id(&id) || !tracker_ok(&state, &id, &headers).await? {
        tracing::warn!(unit_id = %id.chars().take(48).collect::<String>(), "unit tracker report refused: wrong or missing credentials");
        return Ok(basic_unauthorized(
            "missing or wrong tracker credentials: HTTP Basic with the unit id and its tracker password",
        ));
    }
    let r: Report = body(&bytes)?;
    let u = report(&state, &id, &r, true).await?;
    let names = station_names(&state).await?;
    let plan = state.units.plan();
    Ok(Json(unit_view(u, &names, plan.as_deref(), state.live.now())).into_response())
}

/// `DELETE /api/v1/mobile-units/{id}`
pub(crate) async fn delete_unit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_role(&[Role::Admin])?;
    {
        let mut book = state.units.book.lock().await;
        ensure_loaded(&state, &mut book).await?;
        if !book.units.contains_key(&id) {
            return Err(ApiError::not_found(format!("mobile unit {id} not found")));
        }
        state.store.delete_document(DOC_KIND, &id).await?;
        book.units.remove(&id);
    }
    tracing::info!(unit_id = %id, by = %caller.name, "mobile unit removed");
    state.units.trigger("unit_removed", format!("{id} removed"));
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct PlanQuery {
    hours: Option<usize>,
}

fn check_hours(h: usize) -> ApiResult<usize> {
    if (1..=MAX_HOURS).contains(&h) {
        Ok(h)
    } else {
        Err(ApiError::bad_request(format!(
            "hours must be 1 to {MAX_HOURS}, got {h}"
        )))
    }
}

/// `GET /api/v1/mobile-units/plan?hours=24`: the current plan, its first `hours` hours. The
/// first call after a start plans at once when there are units.
pub(crate) async fn get_plan(
    State(state): State<Arc<AppState>>,
    q: Result<Query<PlanQuery>, QueryRejection>,
) -> ApiResult<Json<PlanView>> {
    let q = query(q)?;
    let hours = check_hours(q.hours.unwrap_or(DEFAULT_HOURS))?;
    let plan = match state.units.plan() {
        Some(p) => p,
        None if units(&state).await?.is_empty() => {
            // Nothing to plan: an empty plan, without fitting every station's forecast.
            let now = state.live.now();
            return Ok(Json(PlanView {
                version: state.units.version.load(Ordering::SeqCst),
                planned_at: now,
                reason: "start".to_owned(),
                reason_detail: "no mobile units".to_owned(),
                horizon_h: hours,
                start: hour_of(now),
                speed_kmh: SPEED_KMH,
                units: Vec::new(),
                unmet_car_h: 0.0,
                static_car_h: 0.0,
                no_units_car_h: 0.0,
                instant_car_h: 0.0,
                relocation_km: 0.0,
                served_cars: 0.0,
                sites_short: 0,
                short_stations: Vec::new(),
                now,
                clock_speed: state.live.clock().speed(),
            }));
        }
        None => {
            replan(
                &state,
                &[Trigger {
                    reason: "start",
                    detail: "first plan since the platform started".to_owned(),
                }],
            )
            .await?
        }
    };
    let mut answer = plan.clipped(hours);
    answer.now = state.live.now();
    answer.clock_speed = state.live.clock().speed();
    Ok(Json(answer))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlanRequest {
    hours: Option<usize>,
}

/// `POST /api/v1/mobile-units/plan` (`{"hours": N}` optional, and kept for later plans):
/// re-plans now and answers the new plan.
pub(crate) async fn post_plan(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<Json<PlanView>> {
    caller.require_role(FIELD)?;
    let req: PlanRequest = body(&bytes)?;
    if let Some(h) = req.hours {
        state.units.hours.store(check_hours(h)?, Ordering::Relaxed);
    }
    let plan = replan(
        &state,
        &[Trigger {
            reason: "request",
            detail: format!("asked for by {}", caller.name),
        }],
    )
    .await?;
    let mut answer = plan.as_ref().clone();
    answer.now = state.live.now();
    answer.clock_speed = state.live.clock().speed();
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_capacity_grows_with_guns_and_power() {
        let slow = default_cars_per_hour(2, 60.0);
        let fast = default_cars_per_hour(2, 120.0);
        assert!(slow > 2.5 && slow < 3.0, "{slow}");
        assert!(fast > slow && fast < 2.0 * slow);
        assert!((default_cars_per_hour(4, 60.0) - 2.0 * slow).abs() < 1e-9);
    }

    #[test]
    fn statuses_and_positions_are_checked() {
        assert_eq!(UnitStatus::parse("broken"), Some(UnitStatus::Broken));
        assert_eq!(UnitStatus::parse("exploded"), None);
        assert!(check_position(28.2, 112.9).is_ok());
        assert!(check_position(f64::NAN, 112.9).is_err());
        assert!(
            check_position(51.5, -0.1).is_err(),
            "London is not in China"
        );
        assert!(check_position(0.0, 0.0).is_err());
        assert!(valid_id("vehicle-01") && !valid_id("") && !valid_id("a b"));
    }

    fn basis(shortfall: Vec<f64>) -> Basis {
        let origin = DateTime::from_timestamp(1_800_000_000 / 3600 * 3600, 0).expect("t");
        Basis {
            origin,
            horizon: shortfall.len(),
            took: std::time::Duration::ZERO,
            made: std::time::Instant::now(),
            planned_at: origin,
            fits: HashMap::new(),
            shortfall: HashMap::from([("a".to_owned(), shortfall)]),
        }
    }

    fn inputs_with(b: &Basis, shift_h: i64, shortfall: Vec<f64>) -> Inputs {
        let origin = b.origin + Duration::hours(shift_h);
        Inputs {
            now: origin + Duration::minutes(5),
            origin,
            horizon: shortfall.len(),
            stations: Vec::new(),
            places: Vec::new(),
            sites: vec![Site {
                id: "a".into(),
                shortfall,
                queue: 0.0,
            }],
            fits: HashMap::new(),
        }
    }

    #[test]
    fn small_changes_and_spare_capacity_do_not_churn_the_plan() {
        let b = basis(vec![-3.0, 1.0, 2.0, -1.0]);
        // Within half a car an hour, and changes while there is spare capacity: no new plan.
        assert!(worth_replanning(&b, &inputs_with(&b, 0, vec![-1.0, 1.3, 2.2, -4.0])).is_none());
        // A short hour got shorter by more than that.
        let t = worth_replanning(&b, &inputs_with(&b, 0, vec![-3.0, 1.0, 3.0, -1.0]))
            .expect("a re-plan");
        assert_eq!(
            t.reason, "capacity",
            "no fit changed: the live capacity did"
        );
        assert!(t.detail.contains("at a at"), "{}", t.detail);
        // An hour later the same forecast, shifted: only the hourly re-plan.
        let t =
            worth_replanning(&b, &inputs_with(&b, 1, vec![1.0, 2.0, -1.0, -2.0])).expect("hourly");
        assert_eq!(t.reason, "hourly");
        // A new last hour that is short counts as a change.
        let t =
            worth_replanning(&b, &inputs_with(&b, 1, vec![1.0, 2.0, -1.0, 4.0])).expect("new hour");
        assert_eq!(t.reason, "capacity");
    }
}
