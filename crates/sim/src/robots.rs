//! Simulated robot lots: charging robots that drive to cars waiting in a service area's car
//! park, and the cars that come to it.
//!
//! Each robot is two things at once, as a real one is: an OCPP 1.6J charge point over a real
//! WebSocket ([`ChargePoint`], connector 1, its own charger id and password), and a vehicle that
//! reports its position, battery and state to the platform's robot interface over HTTP
//! (`POST /api/v1/robots/{id}/report`) and does the task the answer gives: drive to a car,
//! plug in, run an OCPP transaction with meter values until the car has the energy it asked
//! for, or drive to the dock and recharge there. The platform decides; the robot only does.
//!
//! Cars come at a rate (a share of the station's traffic in the demo) with a seeded energy
//! need and power ([`HolidayPeak::draw_car`], as the dispatch benchmark draws them), take a free
//! bay through `POST .../lot/cars`, and a driver whose patience runs out before a robot is sent
//! leaves (`DELETE /api/v1/lot-cars/{id}`).
//!
//! Everything moves on the shared simulated [`Clock`]. [`Robot`] is the vehicle as a pure state
//! machine (position, battery, meter register, what it is doing), `chargeops_dispatch::robot`,
//! so its physics is tested without sockets and the dispatch crate's live replay runs the same;
//! the tasks around it do the IO.

mod http;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use chargeops_core::Clock;
use chargeops_core::network_file::{NetworkSpec, StationKind};
use chargeops_dispatch::trace::HolidayPeak;
use chargeops_dispatch::{Fleet, Lot, Point};

use crate::client::{ChargePoint, ClientError, ConnectOptions, Endpoint};
use crate::drive::inc;
use crate::fleet::Credentials;
use crate::traffic::{Engine, Scenario};

pub use chargeops_dispatch::robot::{Activity, Happening, Job, Robot, Task};
pub use http::{Answer, Http, HttpError};

/// Cars a simulated hour that come to a lot at a given simulated time.
pub type ArrivalRate = Arc<dyn Fn(DateTime<Utc>) -> f64 + Send + Sync>;

/// One robot lot to simulate.
#[derive(Clone)]
pub struct LotSpec {
    pub station_id: String,
    pub lot: Lot,
    /// The robots' hardware; `fleet.robots` is ignored (the count is `robots.len()`).
    pub fleet: Fleet,
    /// The robots' charger ids, registered chargers of the station.
    pub robots: Vec<String>,
    /// Where cars come from; `None`: no simulated cars (the lot's cars come from elsewhere).
    pub arrivals: Option<ArrivalRate>,
}

impl std::fmt::Debug for LotSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LotSpec")
            .field("station_id", &self.station_id)
            .field("bays", &self.lot.bays.len())
            .field("robots", &self.robots)
            .finish_non_exhaustive()
    }
}

/// How the simulated lots reach the platform.
#[derive(Clone)]
pub struct RobotsConfig {
    /// The platform's HTTP address (robot interface, car endpoints, lot API).
    pub http: SocketAddr,
    /// The platform's OCPP endpoint (`ws://host:port/ocpp`).
    pub endpoint: Endpoint,
    /// The simulated clock shared with the platform.
    pub clock: Clock,
    /// Each robot's OCPP password, also its robot-interface password.
    pub credentials: Credentials,
    /// With a token (admin or operator), each lot is created (`PUT .../lot`) before it runs.
    pub admin_token: Option<String>,
    pub seed: u64,
    /// Reports are due every `report_every_s` simulated seconds (the platform's answer says how
    /// many) but no more often than this in real time, so a fast clock does not turn a lot
    /// into a load test.
    pub min_report_interval: StdDuration,
}

/// Counters the demo and the tests read while the lots run.
#[derive(Debug, Default)]
pub struct RobotStats {
    pub robots_connected: AtomicU64,
    pub reports: AtomicU64,
    pub report_errors: AtomicU64,
    pub sessions_started: AtomicU64,
    /// Transactions stopped because the car had all it asked for.
    pub cars_served: AtomicU64,
    /// Transactions stopped early (released, reassigned, battery spent).
    pub sessions_interrupted: AtomicU64,
    pub energy_wh: AtomicU64,
    pub cars_arrived: AtomicU64,
    /// Drivers whose patience ran out before a robot was sent.
    pub cars_left: AtomicU64,
    /// Drivers who found no free bay.
    pub cars_turned_away: AtomicU64,
}

impl RobotStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RobotError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the platform refused the lot of {station}: {message}")]
    Refused { station: String, message: String },
}

/// The charger id of a station's `n`th (0-based) robot.
pub fn robot_id(station_id: &str, n: usize) -> String {
    format!("{station_id}-R{:02}", n + 1)
}

/// The demo's robot lots: the `count` busiest G4 service areas (by their expected arrivals over
/// the day from `start` under `scenario`), each with `bays` bays in the usual layout and
/// `robots` robots of the default fleet, cars arriving at `share` of the station's traffic.
pub fn demo_lots(
    network: &NetworkSpec,
    scenario: Scenario,
    start: DateTime<Utc>,
    count: usize,
    bays: usize,
    robots: usize,
    share: f64,
) -> Vec<LotSpec> {
    let engine = Engine::new(network, scenario, start, 0);
    let mut ranked: Vec<(f64, usize)> = network
        .stations
        .iter()
        .enumerate()
        .filter(|(_, s)| s.highway.as_deref() == Some("G4") && s.kind == StationKind::ServiceArea)
        .filter_map(|(i, _)| {
            let sim = engine.stations().get(i)?;
            let load: f64 = (0..24)
                .map(|h| sim.arrival_rate(start + Duration::hours(h), scenario))
                .sum();
            Some((load, i))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked
        .into_iter()
        .take(count)
        .filter_map(|(_, i)| {
            let spec = network.stations.get(i)?;
            let sim = engine.stations().get(i)?.clone();
            let share = share.max(0.0);
            let rate: ArrivalRate = Arc::new(move |t| share * sim.arrival_rate(t, scenario));
            Some(LotSpec {
                station_id: spec.id.clone(),
                lot: Lot::service_area(bays.max(1)),
                fleet: Fleet {
                    robots,
                    ..Fleet::default()
                },
                robots: (0..robots).map(|n| robot_id(&spec.id, n)).collect(),
                arrivals: Some(rate),
            })
        })
        .collect()
}

/// Runs every lot until `stop` turns true (or its sender is dropped): creates each lot when a
/// token is given, then its robots and its cars.
pub async fn run(
    config: RobotsConfig,
    lots: Vec<LotSpec>,
    stats: Arc<RobotStats>,
    stop: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, spec) in lots.into_iter().enumerate() {
        let config = config.clone();
        let stats = stats.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            if let Some(token) = &config.admin_token {
                let mut stop = stop.clone();
                let created = tokio::select! {
                    r = put_lot(config.http, token, &spec) => r,
                    _ = stopped(&mut stop) => return,
                };
                if let Err(e) = created {
                    tracing::warn!(station_id = %spec.station_id, error = %e, "robot lot not created; its robots stay parked");
                    return;
                }
            }
            run_lot(config, spec, index as u64, stats, stop).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn run_lot(
    config: Arc<RobotsConfig>,
    spec: LotSpec,
    index: u64,
    stats: Arc<RobotStats>,
    stop: watch::Receiver<bool>,
) {
    let spec = Arc::new(spec);
    let mut tasks = tokio::task::JoinSet::new();
    for (n, id) in spec.robots.iter().enumerate() {
        let sim = RobotSim {
            id: id.clone(),
            number: n,
            config: config.clone(),
            spec: spec.clone(),
            stats: stats.clone(),
        };
        tasks.spawn(sim.run(stop.clone()));
    }
    if let Some(rate) = spec.arrivals.clone() {
        let seed =
            config.seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ stable_hash(&spec.station_id);
        let cars = Arrivals {
            config: config.clone(),
            spec: spec.clone(),
            stats: stats.clone(),
            rng: SmallRng::seed_from_u64(seed),
            rate,
        };
        tasks.spawn(cars.run(stop.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

/// Resolves when `stop` turns true or its sender goes away.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

fn is_stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Creates (or replaces the layout of) the lot through the staff API, waiting for the platform
/// to listen first.
pub async fn put_lot(addr: SocketAddr, token: &str, spec: &LotSpec) -> Result<Value, RobotError> {
    let body = json!({
        "bays": spec.lot.bays,
        "dock": spec.lot.dock,
        "fleet": spec.fleet,
        "robots": spec.robots,
    });
    let path = format!("/api/v1/stations/{}/lot", encode(&spec.station_id));
    let auth = format!("Bearer {token}");
    let http = Http::new(addr);
    let mut backoff = StdDuration::from_millis(200);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match http.request("PUT", &path, Some(&auth), Some(&body)).await {
            Ok(a) if a.ok() => return Ok(a.json),
            Ok(a) => {
                return Err(RobotError::Refused {
                    station: spec.station_id.clone(),
                    message: a.message(),
                });
            }
            Err(e) if attempts >= 8 => return Err(e.into()),
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(StdDuration::from_secs(5));
            }
        }
    }
}

/// Percent-encodes one path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// FNV-1a: the same in every build, so a seed gives the same cars and registers everywhere.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn secs(d: Duration) -> f64 {
    d.num_microseconds()
        .map_or(d.num_milliseconds() as f64 / 1e3, |us| us as f64 / 1e6)
}

// ---------------------------------------------------------------------------------------------
// The robot as a charge point and a reporter: IO.

struct RobotSim {
    id: String,
    number: usize,
    config: Arc<RobotsConfig>,
    spec: Arc<LotSpec>,
    stats: Arc<RobotStats>,
}

/// An open transaction on the robot's connector.
#[derive(Debug, Clone)]
struct Tx {
    car: String,
    id: Option<i64>,
    id_tag: String,
}

struct Io {
    http: Http,
    auth: Option<String>,
    tx: Option<Tx>,
    /// The power this robot gives each car it has looked up (the car's own maximum is the
    /// platform's to tell; a real car says it in the plug-in handshake).
    powers: HashMap<String, f64>,
    report_every_s: f64,
    /// The dock as the platform last named it.
    dock: Point,
}

impl RobotSim {
    fn clock(&self) -> Clock {
        self.config.clock
    }

    /// This robot's own slot at the dock: the robots stand in a row through the dock point,
    /// 3 m apart.
    fn dock_slot(&self, dock: Point) -> Point {
        let middle = (self.spec.robots.len() as f64 - 1.0) / 2.0;
        Point::new(dock.x, dock.y + (self.number as f64 - middle) * 3.0)
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let dock = self.spec.lot.dock;
        let start = self.dock_slot(dock);
        let register = 100_000 + (stable_hash(&self.id) % 900_000) as i64;
        let mut robot = Robot::new(start, self.spec.fleet.robot_kwh, register);
        robot.activity = Activity::Docked;
        let password = (self.config.credentials)(&self.id);
        let auth = password.as_ref().map(|p| {
            let raw = format!("{}:{p}", self.id);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        });
        let mut io = Io {
            http: Http::new(self.config.http),
            auth,
            tx: None,
            powers: HashMap::new(),
            report_every_s: 5.0,
            dock,
        };
        let options = ConnectOptions {
            password,
            clock: self.clock(),
            ..ConnectOptions::default()
        };
        let mut backoff = StdDuration::from_millis(500);
        while !is_stopped(&stop) {
            let connected = tokio::select! {
                r = ChargePoint::connect(&self.config.endpoint, &self.id, &options) => r,
                _ = stopped(&mut stop) => return,
            };
            let mut cp = match connected {
                Ok(cp) => cp,
                Err(e) => {
                    tracing::debug!(charger_id = %self.id, error = %e, "robot could not connect; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped(&mut stop) => return,
                    }
                    backoff = (backoff * 2).min(StdDuration::from_secs(30));
                    continue;
                }
            };
            inc(&self.stats.robots_connected);
            let outcome = self.online(&mut cp, &mut robot, &mut io, &mut stop).await;
            self.stats.robots_connected.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(()) => {
                    let _ = cp.close().await;
                    return;
                }
                Err(e) => {
                    tracing::debug!(charger_id = %self.id, error = %e, "robot connection lost; reconnecting");
                    if !e.is_fatal() {
                        let _ = cp.close().await;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped(&mut stop) => return,
                    }
                    backoff = (backoff * 2).min(StdDuration::from_secs(30));
                }
            }
        }
    }

    /// Serves one OCPP connection until the lot stops (`Ok`) or the connection fails.
    async fn online(
        &self,
        cp: &mut ChargePoint,
        robot: &mut Robot,
        io: &mut Io,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), ClientError> {
        let clock = self.clock();
        let fleet = &self.spec.fleet;
        let boot = cp.call(
            "BootNotification",
            &json!({
                "chargePointVendor": "chargeops-sim",
                "chargePointModel": format!("Robot{}", fleet.robot_kw.round() as u32),
                "chargePointSerialNumber": format!("RB{:012}", stable_hash(&self.id) % 1_000_000_000_000),
                "firmwareVersion": env!("CARGO_PKG_VERSION"),
            }),
        )
        .await?;
        // Heartbeats at the interval the platform asks for, in real time as the fleet's do.
        let beat_every = StdDuration::from_secs(
            boot.get("interval")
                .and_then(Value::as_u64)
                .unwrap_or(300)
                .clamp(10, 3600),
        );
        let mut beat_due = Instant::now() + beat_every;
        let status = match (&io.tx, &robot.activity) {
            (Some(_), _) => "Charging",
            (None, Activity::Plugging { .. }) => "Preparing",
            _ => "Available",
        };
        self.status(cp, status, clock.now()).await?;

        let mut last = clock.now();
        let mut report_due = Instant::now();
        let mut meter_due = Instant::now();
        loop {
            let now = clock.now();
            let dt = secs(now - last).max(0.0);
            let step_start = last;
            last = now;
            let happened = robot.advance(dt, fleet, io.dock);
            let changed = !happened.is_empty();
            for (after, h) in happened {
                let at = step_start + Duration::microseconds((after * 1e6) as i64);
                self.tell(cp, io, h, at.min(now)).await?;
            }
            if changed || Instant::now() >= report_due {
                let retell = self.report(robot, io).await;
                for h in retell {
                    self.tell(cp, io, h, clock.now()).await?;
                }
                let every = clock
                    .real_duration(Duration::milliseconds((io.report_every_s * 1000.0) as i64))
                    .max(self.config.min_report_interval);
                report_due = Instant::now() + every;
            }
            if robot.is_charging() && Instant::now() >= meter_due {
                if let Some(Tx { id: Some(tx), .. }) = &io.tx {
                    let now = clock.now();
                    let p = json!({
                        "connectorId": 1,
                        "transactionId": tx,
                        "meterValue": [meter_value(robot.register_wh(), robot.power_kw() * 1000.0, now)],
                    });
                    cp.call("MeterValues", &p).await?;
                }
                // Every simulated minute, as the fleet's chargers do, but at most once a real
                // second: a short charge at a fast clock still sends a few.
                meter_due = Instant::now()
                    + clock
                        .real_duration(Duration::minutes(1))
                        .max(StdDuration::from_secs(1));
            }
            if Instant::now() >= beat_due {
                cp.call("Heartbeat", &json!({})).await?;
                beat_due = Instant::now() + beat_every;
            }
            let mut wake = report_due.min(beat_due);
            if let Some(s) = robot.next_happening_s(fleet, io.dock) {
                let real = clock.real_duration(Duration::milliseconds((s * 1000.0).ceil() as i64));
                wake = wake.min(Instant::now() + real);
            }
            if robot.is_charging() {
                wake = wake.min(meter_due);
            }
            let stopping = cp
                .serve_until(async {
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake) => false,
                        _ = stopped(stop) => true,
                    }
                })
                .await?;
            if stopping {
                return Ok(());
            }
        }
    }

    /// Reports to the robot interface and takes the task in the answer. Returns what the new
    /// task ended (a transaction stopped by a release or a reassignment).
    async fn report(&self, robot: &mut Robot, io: &mut Io) -> Vec<Happening> {
        let (state, car) = robot.reported();
        let mut body = json!({
            "x": robot.pos.x,
            "y": robot.pos.y,
            "battery_kwh": robot.battery_kwh.clamp(0.0, self.spec.fleet.robot_kwh),
            "state": state.as_str(),
        });
        if let Some(car) = car {
            body["car"] = json!(car);
        }
        let path = format!("/api/v1/robots/{}/report", encode(&self.id));
        inc(&self.stats.reports);
        let answer = match io
            .http
            .request("POST", &path, io.auth.as_deref(), Some(&body))
            .await
        {
            Ok(a) if a.ok() => a,
            Ok(a) => {
                inc(&self.stats.report_errors);
                tracing::debug!(charger_id = %self.id, status = a.status, message = %a.message(), "report refused");
                return Vec::new();
            }
            Err(e) => {
                inc(&self.stats.report_errors);
                tracing::debug!(charger_id = %self.id, error = %e, "report failed");
                return Vec::new();
            }
        };
        if let Some(every) = answer
            .json
            .get("report_every_s")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0)
        {
            io.report_every_s = every.min(300.0);
        }
        let mut task = Task::parse(answer.json.get("task").unwrap_or(&Value::Null));
        let power = match &mut task {
            Task::Car { car, .. } if robot.car() != Some(car.as_str()) => {
                self.power_for(io, car).await
            }
            Task::Dock { at } => {
                io.dock = *at;
                *at = self.dock_slot(*at);
                0.0
            }
            _ => 0.0,
        };
        robot.take(task, power)
    }

    /// The power this robot charges `car` at: its own maximum and the car's, the lower.
    async fn power_for(&self, io: &mut Io, car: &str) -> f64 {
        let robot_kw = self.spec.fleet.robot_kw;
        if let Some(p) = io.powers.get(car) {
            return *p;
        }
        let path = format!("/api/v1/lot-cars/{}", encode(car));
        let car_kw = match io.http.request("GET", &path, None, None).await {
            Ok(a) if a.ok() => a.json.get("max_power_kw").and_then(Value::as_f64),
            _ => None,
        };
        let power = self.spec.fleet.power_kw(
            car_kw
                .filter(|p| p.is_finite() && *p > 0.0)
                .unwrap_or(robot_kw),
        );
        if io.powers.len() > 64 {
            io.powers.clear();
        }
        io.powers.insert(car.to_owned(), power);
        power
    }

    /// Tells the platform over OCPP what the vehicle did.
    async fn tell(
        &self,
        cp: &mut ChargePoint,
        io: &mut Io,
        h: Happening,
        at: DateTime<Utc>,
    ) -> Result<(), ClientError> {
        match h {
            Happening::AtCar { .. } => self.status(cp, "Preparing", at).await,
            Happening::PluggedIn { car, register_wh } => {
                let id_tag: String = car.chars().take(20).collect();
                io.tx = Some(Tx {
                    car: car.clone(),
                    id: None,
                    id_tag: id_tag.clone(),
                });
                let answer = cp
                    .call(
                        "StartTransaction",
                        &json!({ "connectorId": 1, "idTag": id_tag, "meterStart": register_wh, "timestamp": rfc3339(at) }),
                    )
                    .await?;
                if let Some(tx) = io.tx.as_mut() {
                    tx.id = answer.get("transactionId").and_then(Value::as_i64);
                }
                inc(&self.stats.sessions_started);
                self.status(cp, "Charging", at).await
            }
            Happening::Unplugged {
                car,
                given_kwh,
                register_wh,
                full,
            } => {
                let tx = io.tx.take().filter(|t| t.car == car);
                if let Some(Tx {
                    id: Some(id),
                    id_tag,
                    ..
                }) = tx
                {
                    let reason = if full { "EVDisconnected" } else { "Local" };
                    cp.call(
                        "StopTransaction",
                        &json!({
                            "transactionId": id,
                            "idTag": id_tag,
                            "meterStop": register_wh,
                            "timestamp": rfc3339(at),
                            "reason": reason,
                            "transactionData": [meter_value(register_wh, 0.0, at)],
                        }),
                    )
                    .await?;
                }
                if full {
                    inc(&self.stats.cars_served);
                } else {
                    inc(&self.stats.sessions_interrupted);
                }
                self.stats.energy_wh.fetch_add(
                    (given_kwh * 1000.0).round().max(0.0) as u64,
                    Ordering::Relaxed,
                );
                self.status(cp, "Finishing", at).await?;
                self.status(cp, "Available", at).await
            }
            Happening::Docked => Ok(()),
        }
    }

    async fn status(
        &self,
        cp: &mut ChargePoint,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ClientError> {
        cp.call(
            "StatusNotification",
            &json!({ "connectorId": 1, "status": status, "errorCode": "NoError", "timestamp": rfc3339(at) }),
        )
        .await
        .map(drop)
    }
}

fn meter_value(register_wh: i64, power_w: f64, at: DateTime<Utc>) -> Value {
    json!({
        "timestamp": rfc3339(at),
        "sampledValue": [
            { "value": register_wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Periodic" },
            { "value": format!("{:.0}", power_w.max(0.0)), "measurand": "Power.Active.Import", "unit": "W", "context": "Sample.Periodic" },
        ],
    })
}

// ---------------------------------------------------------------------------------------------
// Cars.

/// The longest a draw waits before the rate is looked at again: the rate follows the hour.
const REDRAW_S: f64 = 600.0;

struct Arrivals {
    config: Arc<RobotsConfig>,
    spec: Arc<LotSpec>,
    stats: Arc<RobotStats>,
    rng: SmallRng,
    rate: ArrivalRate,
}

/// A car this simulation brought, as far as it knows.
struct OurCar {
    id: String,
    /// When its driver gives up unless a robot has been sent. The platform is told the
    /// driver's patience and lets the car go itself; this is a little later, so a driver still
    /// waiting then leaves by hand (`DELETE`).
    leaves_at: Option<DateTime<Utc>>,
}

impl Arrivals {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let clock = self.config.clock;
        let http = Http::new(self.config.http);
        let mut bays: HashMap<usize, OurCar> = HashMap::new();
        let mut next = self.draw(clock.now());
        loop {
            let now = clock.now();
            if now >= next.0 {
                if next.1 {
                    self.arrive(&http, &mut bays).await;
                }
                next = self.draw(clock.now());
            }
            self.impatience(&http, &mut bays, clock.now()).await;
            let mut wake = next.0;
            if let Some(t) = bays.values().filter_map(|c| c.leaves_at).min() {
                wake = wake.min(t);
            }
            let real = clock.real_duration(wake - clock.now());
            tokio::select! {
                _ = tokio::time::sleep(real) => {}
                _ = stopped(&mut stop) => return,
            }
        }
    }

    /// The next moment to look: an arrival (true) drawn at the current rate, or, when none
    /// comes within [`REDRAW_S`], a fresh look at the rate then (false).
    fn draw(&mut self, now: DateTime<Utc>) -> (DateTime<Utc>, bool) {
        let per_s = (self.rate)(now) / 3600.0;
        let gap = if per_s.is_finite() && per_s > 0.0 {
            let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
            -u.ln() / per_s
        } else {
            f64::INFINITY
        };
        // Memoryless: cutting a draw short and drawing again keeps the process Poisson.
        let (gap, arrives) = if gap <= REDRAW_S {
            (gap, true)
        } else {
            (REDRAW_S, false)
        };
        (now + Duration::milliseconds((gap * 1000.0) as i64), arrives)
    }

    async fn arrive(&mut self, http: &Http, bays: &mut HashMap<usize, OurCar>) {
        let spec = self.spec.clone();
        let (lot, fleet) = (&spec.lot, &spec.fleet);
        let mut free: Vec<usize> = (0..lot.bays.len())
            .filter(|b| !bays.contains_key(b))
            .collect();
        if free.is_empty() {
            // Every bay we filled may have emptied since: ask before turning the driver away.
            self.forget_ended(http, bays).await;
            free = (0..lot.bays.len())
                .filter(|b| !bays.contains_key(b))
                .collect();
        }
        let (energy, power) = HolidayPeak::draw_car(&mut self.rng);
        let patience_s = self
            .rng
            .random_bool(0.4)
            .then(|| self.rng.random_range(1200.0..3600.0_f64).round());
        let plate = plate(&mut self.rng);
        let path = format!(
            "/api/v1/stations/{}/lot/cars",
            encode(&self.spec.station_id)
        );
        for _ in 0..3 {
            if free.is_empty() {
                break;
            }
            let bay = free.swap_remove(self.rng.random_range(0..free.len()));
            let Some(at) = lot.bay(bay) else {
                continue;
            };
            // A full robot from the dock must cover the drive there and back (the platform's
            // check): a driver needing more takes what one robot can give.
            let most = fleet.robot_kwh - fleet.required_kwh(lot, lot.dock, at, 0.0) - 0.5;
            let energy_kwh = (energy.min(most).max(1.0) * 100.0).round() / 100.0;
            let mut body = json!({
                "bay": bay,
                "energy_kwh": energy_kwh,
                "max_power_kw": power,
                "plate": plate,
            });
            if let Some(p) = patience_s {
                body["patience_s"] = json!(p);
            }
            match http.request("POST", &path, None, Some(&body)).await {
                Ok(a) if a.status == 201 || a.status == 200 => {
                    let Some(id) = a.json.get("id").and_then(Value::as_str) else {
                        return;
                    };
                    inc(&self.stats.cars_arrived);
                    let clock = self.config.clock;
                    // The platform checks patience on its tick, every second of real time.
                    let grace = (3.0 * clock.speed()).max(120.0);
                    let now = clock.now();
                    bays.insert(
                        bay,
                        OurCar {
                            id: id.to_owned(),
                            leaves_at: patience_s.map(|p| {
                                now + Duration::milliseconds(((p + grace) * 1000.0) as i64)
                            }),
                        },
                    );
                    return;
                }
                // Someone else's car is in that bay: try another.
                Ok(a) if a.status == 409 => continue,
                Ok(a) => {
                    tracing::debug!(station_id = %self.spec.station_id, status = a.status, message = %a.message(), "car refused");
                    return;
                }
                Err(e) => {
                    tracing::debug!(station_id = %self.spec.station_id, error = %e, "car could not reach the platform");
                    return;
                }
            }
        }
        inc(&self.stats.cars_turned_away);
    }

    /// Drivers whose patience has run out leave unless a robot is on its way or charging.
    async fn impatience(&self, http: &Http, bays: &mut HashMap<usize, OurCar>, now: DateTime<Utc>) {
        let due: Vec<usize> = bays
            .iter()
            .filter(|(_, c)| c.leaves_at.is_some_and(|t| t <= now))
            .map(|(b, _)| *b)
            .collect();
        for bay in due {
            let Some(car) = bays.get_mut(&bay) else {
                continue;
            };
            car.leaves_at = None;
            let path = format!("/api/v1/lot-cars/{}", encode(&car.id));
            let state = match http.request("GET", &path, None, None).await {
                Ok(a) if a.ok() => a
                    .json
                    .get("state")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                _ => continue,
            };
            match state.as_str() {
                "waiting" => {
                    if let Ok(a) = http.request("DELETE", &path, None, None).await
                        && a.ok()
                    {
                        inc(&self.stats.cars_left);
                    }
                    bays.remove(&bay);
                }
                "assigned" | "charging" => {}
                "left" => {
                    inc(&self.stats.cars_left);
                    bays.remove(&bay);
                }
                _ => {
                    bays.remove(&bay);
                }
            }
        }
    }

    /// Drops the cars that are no longer in their bays (served, gone).
    async fn forget_ended(&self, http: &Http, bays: &mut HashMap<usize, OurCar>) {
        let all: Vec<(usize, String)> = bays.iter().map(|(b, c)| (*b, c.id.clone())).collect();
        for (bay, id) in all {
            let path = format!("/api/v1/lot-cars/{}", encode(&id));
            match http.request("GET", &path, None, None).await {
                Ok(a) if a.ok() => {
                    let state = a.json.get("state").and_then(Value::as_str);
                    if !matches!(state, Some("waiting" | "assigned" | "charging")) {
                        bays.remove(&bay);
                    }
                }
                Ok(a) if a.status == 404 => {
                    bays.remove(&bay);
                }
                _ => {}
            }
        }
    }
}

/// A Hunan new-energy plate: 湘, the prefecture's letter, D (battery electric) or F (hybrid),
/// five digits.
fn plate(rng: &mut SmallRng) -> String {
    const PREFECTURES: &[u8] = b"ABCDEFGHJKLMNU";
    let letter = PREFECTURES[rng.random_range(0..PREFECTURES.len())] as char;
    let kind = if rng.random_bool(0.8) { 'D' } else { 'F' };
    format!("湘{letter}{kind}{:05}", rng.random_range(0..100_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_core::network_file::{HUNAN, parse_network};

    fn fleet() -> Fleet {
        Fleet::default()
    }

    #[test]
    fn the_demo_puts_robots_at_three_busy_g4_service_areas() {
        let net = parse_network(HUNAN).expect("network");
        let start = Scenario::SpringFestival.start(Utc::now());
        let lots = demo_lots(&net, Scenario::SpringFestival, start, 3, 40, 6, 0.25);
        assert_eq!(lots.len(), 3);
        let mut ids = std::collections::HashSet::new();
        for l in &lots {
            let s = net
                .stations
                .iter()
                .find(|s| s.id == l.station_id)
                .expect("a station of the network");
            assert_eq!(s.highway.as_deref(), Some("G4"));
            assert_eq!(s.kind, StationKind::ServiceArea);
            assert_eq!(l.lot.bays.len(), 40);
            assert_eq!(l.robots.len(), 6);
            assert_eq!(l.robots[0], format!("{}-R01", s.id));
            for r in &l.robots {
                assert!(ids.insert(r.clone()));
                assert!(r.len() <= 48);
            }
            // Holiday traffic brings a few cars an hour, more at midday than at night.
            let rate = l.arrivals.as_ref().expect("cars");
            let night = rate(start + Duration::hours(21));
            let noon = rate(start + Duration::hours(8));
            assert!(noon > night && noon > 2.0 && noon < 40.0, "{night} {noon}");
        }
        // Deterministic: the same lots every time.
        let again = demo_lots(&net, Scenario::SpringFestival, start, 3, 40, 6, 0.25);
        assert_eq!(
            lots.iter().map(|l| &l.station_id).collect::<Vec<_>>(),
            again.iter().map(|l| &l.station_id).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn arrivals_follow_the_rate_and_plates_look_like_hunan_ones() {
        let config = Arc::new(RobotsConfig {
            http: "127.0.0.1:9".parse().expect("addr"),
            endpoint: Endpoint::resolve("ws://127.0.0.1:9/ocpp")
                .await
                .expect("endpoint"),
            clock: Clock::real(),
            credentials: Arc::new(|_: &str| None),
            admin_token: None,
            seed: 1,
            min_report_interval: StdDuration::from_millis(100),
        });
        let spec = Arc::new(LotSpec {
            station_id: "s".into(),
            lot: Lot::service_area(10),
            fleet: fleet(),
            robots: vec![],
            arrivals: None,
        });
        let mut a = Arrivals {
            config,
            spec,
            stats: Arc::default(),
            rng: SmallRng::seed_from_u64(7),
            rate: Arc::new(|_| 12.0),
        };
        let t0 = Utc::now();
        let mut t = t0;
        let mut cars = 0;
        while t < t0 + Duration::hours(100) {
            let (next, arrives) = a.draw(t);
            assert!(next > t && next <= t + Duration::seconds(600));
            cars += usize::from(arrives);
            t = next;
        }
        assert!((1000..1400).contains(&cars), "{cars} cars in 100 h at 12/h");
        let p = plate(&mut a.rng);
        assert!(p.starts_with('湘') && p.chars().count() == 8, "{p}");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("g4-changsha-s"), "g4-changsha-s");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
