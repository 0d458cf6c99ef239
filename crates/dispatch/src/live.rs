//! The live robot lot: the state of one service area's lot as the platform knows it from robot
//! reports, cars taking a place and the robots' charging sessions, and the dispatcher that turns
//! the [`Chargeops`] policy's decisions into robot tasks.
//!
//! Pure: no clock, no IO. Every method takes `now` (platform seconds, any fixed epoch) and either
//! changes the lot and says what changed ([`Change`]) or refuses with a [`LiveError`] and changes
//! nothing. The API crate owns HTTP, storage and the event bus around it.
//!
//! What the platform knows of a robot is its last report (position, battery, what it says it
//! does) and the task it was given. Between reports the battery is estimated from the last
//! report downwards only (a robot charging a car draws at most the car's power): the estimate
//! never invents energy the robot has not reported, so the battery rule stays on the safe side.

use serde::{Deserialize, Serialize};

use crate::DispatchError;
use crate::lot::{Fleet, Lot, MAX_CAR_KW, MAX_CAR_KWH, Point};
use crate::policy::{Action, CarView, Chargeops, Policy, RobotStatus, RobotView, View};

/// How often a robot is asked to report, seconds.
pub const REPORT_EVERY_S: f64 = 5.0;
/// A robot silent this long is offline (the default; the platform may configure another).
pub const DEFAULT_TIMEOUT_S: f64 = 30.0;
/// A reported position farther than this from every bay and the dock is refused: the robot is
/// not in this lot, or its positioning is broken.
pub const MAX_DISTANCE_M: f64 = 500.0;
/// A reported battery may exceed the rated capacity by this factor (gauges read high when full).
pub const BATTERY_TOLERANCE: f64 = 1.05;
/// A session that gave the car all it was owed but this much counts as serving it (meters and
/// the car's own charge limit round).
pub const SERVED_SLACK_KWH: f64 = 0.5;
/// Ended cars (served, left, cancelled) kept for the lot view.
pub const KEEP_ENDED: usize = 50;
/// The most bays and robots one lot may have.
pub const MAX_BAYS: usize = 10_000;
pub const MAX_ROBOTS: usize = 1_000;
/// Bay and dock coordinates are at most this far from the lot's origin, metres.
pub const MAX_COORD_M: f64 = 5_000.0;
/// The longest patience a driver may state, seconds (a day).
pub const MAX_PATIENCE_S: f64 = 86_400.0;
/// Longest plate accepted, in characters.
pub const MAX_PLATE_CHARS: usize = 16;
/// Length of the id tag a robot starts its car's transaction with: the first characters of the
/// car id (OCPP 1.6 caps an idTag at 20).
pub const ID_TAG_CHARS: usize = 20;

/// Why a request was refused; the API maps the kinds to 400, 404 and 409.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LiveError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

/// What a robot says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reported {
    Idle,
    Driving,
    Charging,
    Docked,
    Fault,
}

impl Reported {
    pub fn parse(s: &str) -> Result<Reported, LiveError> {
        Ok(match s {
            "idle" => Reported::Idle,
            "driving" => Reported::Driving,
            "charging" => Reported::Charging,
            "docked" => Reported::Docked,
            "fault" => Reported::Fault,
            other => {
                return Err(LiveError::Invalid(format!(
                    "state must be idle, driving, charging, docked or fault, got {:?}",
                    other.chars().take(40).collect::<String>()
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reported::Idle => "idle",
            Reported::Driving => "driving",
            Reported::Charging => "charging",
            Reported::Docked => "docked",
            Reported::Fault => "fault",
        }
    }
}

/// A robot's state as the lot view shows it: its task and its report together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RobotState {
    Idle,
    ToCar,
    Charging,
    ToDock,
    Docked,
    /// Silent past the timeout, never reported, or reporting a fault: no task.
    Offline,
}

impl RobotState {
    pub fn as_str(self) -> &'static str {
        match self {
            RobotState::Idle => "idle",
            RobotState::ToCar => "to_car",
            RobotState::Charging => "charging",
            RobotState::ToDock => "to_dock",
            RobotState::Docked => "docked",
            RobotState::Offline => "offline",
        }
    }
}

/// What a robot was told to do.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Stay where it is.
    #[default]
    Stay,
    /// Drive to the dock and recharge.
    Dock,
    /// Drive to the car's bay, plug in and give it what it is owed.
    Car { car: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Robot {
    /// The robot's charger id.
    pub id: String,
    pub pos: Point,
    /// The battery of the last report.
    pub battery_kwh: f64,
    pub reported: Reported,
    pub last_report_s: Option<f64>,
    pub task: Task,
    /// A staff override: the automatic dispatcher leaves this robot and its car alone.
    pub pinned: bool,
    /// Reported within the timeout. A robot that never reported is not.
    pub online: bool,
    /// A car staff took from this robot: the dispatcher does not give it back to the same robot.
    #[serde(default)]
    pub released_car: Option<String>,
}

impl Robot {
    fn new(id: &str, dock: Point, fleet: &Fleet) -> Robot {
        Robot {
            id: id.to_owned(),
            pos: dock,
            battery_kwh: fleet.robot_kwh,
            reported: Reported::Docked,
            last_report_s: None,
            task: Task::Stay,
            pinned: false,
            online: false,
            released_car: None,
        }
    }

    fn car(&self) -> Option<&str> {
        match &self.task {
            Task::Car { car } => Some(car),
            _ => None,
        }
    }

    /// Ends the robot's car task (or any task): it stays where it is until the dispatcher says.
    fn free(&mut self) {
        self.task = Task::Stay;
        self.pinned = false;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CarState {
    Waiting,
    Assigned,
    Charging,
    Served,
    /// The driver left before a robot came (patience ran out).
    Left,
    Cancelled,
}

impl CarState {
    pub fn is_active(self) -> bool {
        matches!(
            self,
            CarState::Waiting | CarState::Assigned | CarState::Charging
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CarState::Waiting => "waiting",
            CarState::Assigned => "assigned",
            CarState::Charging => "charging",
            CarState::Served => "served",
            CarState::Left => "left",
            CarState::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveCar {
    pub id: String,
    /// 0-based bay index.
    pub bay: usize,
    pub plate: Option<String>,
    /// What the driver asked for.
    pub energy_kwh: f64,
    /// What is still owed (less after a session that stopped short).
    pub remaining_kwh: f64,
    pub max_power_kw: f64,
    pub arrival_s: f64,
    pub patience_s: Option<f64>,
    pub state: CarState,
    pub robot: Option<String>,
    /// When a robot first started charging it: the end of its wait.
    pub started_s: Option<f64>,
    /// Start of the session running now.
    pub charging_since_s: Option<f64>,
    /// The platform's id of the session running now.
    pub session_id: Option<i64>,
    pub served_s: Option<f64>,
    pub ended_s: Option<f64>,
}

impl LiveCar {
    /// Seconds from arrival until charging began (or until now / the end, if it never did).
    pub fn wait_s(&self, now: f64) -> f64 {
        let until = self.started_s.or(self.ended_s).unwrap_or(now);
        (until - self.arrival_s).max(0.0)
    }

    /// Back in the pool, keeping its arrival time and what is still owed.
    fn back_to_waiting(&mut self) {
        self.state = CarState::Waiting;
        self.robot = None;
        self.charging_since_s = None;
    }

    fn end(&mut self, state: CarState, now: f64) {
        self.state = state;
        self.ended_s = Some(now);
        self.charging_since_s = None;
        self.session_id = None;
        if state == CarState::Served {
            self.served_s = Some(now);
        }
    }
}

/// A car taking a place in the lot.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCar {
    /// Chosen by the caller (unguessable: it is the driver's capability).
    pub id: String,
    pub bay: usize,
    pub energy_kwh: f64,
    pub max_power_kw: f64,
    pub plate: Option<String>,
    pub patience_s: Option<f64>,
}

/// A robot's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub x: f64,
    pub y: f64,
    pub battery_kwh: f64,
    pub state: Reported,
    /// The car the robot says it works on.
    pub car: Option<String>,
}

/// What a successful call changed: `reason` names it for the event bus, `cars` says a car's
/// state changed (the caller stores those at once; a plain report can wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub reason: &'static str,
    pub cars: bool,
}

impl Change {
    fn cars(reason: &'static str) -> Change {
        Change { reason, cars: true }
    }

    fn robots(reason: &'static str) -> Change {
        Change {
            reason,
            cars: false,
        }
    }

    /// Two changes as one: the car change wins the reason.
    pub fn merge(a: Option<Change>, b: Option<Change>) -> Option<Change> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Change {
                reason: if b.cars && !a.cars {
                    b.reason
                } else {
                    a.reason
                },
                cars: a.cars || b.cars,
            }),
            (a, b) => a.or(b),
        }
    }
}

/// One service area's live lot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveLot {
    pub lot: Lot,
    pub fleet: Fleet,
    pub robots: Vec<Robot>,
    /// Active cars and the last [`KEEP_ENDED`] ended ones.
    pub cars: Vec<LiveCar>,
    /// Cars served since the lot was set up.
    #[serde(default)]
    pub served_total: u64,
}

/// Checks a layout: bays, dock and fleet usable, robot ids distinct.
pub fn check_layout(lot: &Lot, fleet: &Fleet, robots: &[String]) -> Result<(), LiveError> {
    let bad = |m: String| LiveError::Invalid(m);
    lot.check().map_err(|e| bad(e.to_string()))?;
    if lot.bays.len() > MAX_BAYS {
        return Err(bad(format!(
            "a lot has at most {MAX_BAYS} bays, got {}",
            lot.bays.len()
        )));
    }
    let near = |p: &Point| p.x.abs() <= MAX_COORD_M && p.y.abs() <= MAX_COORD_M;
    if !near(&lot.dock) || !lot.bays.iter().all(near) {
        return Err(bad(format!(
            "bay and dock coordinates must be within {MAX_COORD_M} m of the lot's origin"
        )));
    }
    let mut f = fleet.clone();
    // The live robot count is the robot list's length; the fleet check wants at least one.
    f.robots = robots.len().max(1);
    f.check().map_err(|e| bad(e.to_string()))?;
    if robots.len() > MAX_ROBOTS {
        return Err(bad(format!("a lot has at most {MAX_ROBOTS} robots")));
    }
    for (i, r) in robots.iter().enumerate() {
        if robots[..i].contains(r) {
            return Err(bad(format!("robot {r} is listed twice")));
        }
    }
    if fleet.max_car_kwh(lot) <= 0.0 {
        return Err(bad(
            "a full robot cannot reach the farthest bay and come back: the bays are too far from the dock"
                .into(),
        ));
    }
    Ok(())
}

impl LiveLot {
    /// A new lot; robots start offline at the dock until they report.
    pub fn new(lot: Lot, fleet: Fleet, robots: &[String]) -> Result<LiveLot, LiveError> {
        check_layout(&lot, &fleet, robots)?;
        let mut fleet = fleet;
        fleet.robots = robots.len();
        let robots = robots
            .iter()
            .map(|id| Robot::new(id, lot.dock, &fleet))
            .collect();
        Ok(LiveLot {
            lot,
            fleet,
            robots,
            cars: Vec::new(),
            served_total: 0,
        })
    }

    /// Replaces the layout, keeping the state of the robots and cars that remain. A robot that
    /// leaves the lot gives its car back to the pool; a car whose bay is gone is cancelled.
    pub fn relayout(
        &mut self,
        lot: Lot,
        fleet: Fleet,
        robots: &[String],
        now: f64,
    ) -> Result<Change, LiveError> {
        check_layout(&lot, &fleet, robots)?;
        let mut old = std::mem::take(&mut self.robots);
        for r in &old {
            if !robots.contains(&r.id) {
                self.drop_robot_car(&r.id);
            }
        }
        self.robots = robots
            .iter()
            .map(|id| match old.iter().position(|r| &r.id == id) {
                Some(i) => old.swap_remove(i),
                None => Robot::new(id, lot.dock, &fleet),
            })
            .collect();
        for c in self.cars.iter_mut() {
            if c.state.is_active() && lot.bay(c.bay).is_none() {
                let robot = c.robot.take();
                c.end(CarState::Cancelled, now);
                if let Some(r) = robot.and_then(|id| self.robots.iter_mut().find(|r| r.id == id)) {
                    r.free();
                }
            }
        }
        self.lot = lot;
        self.fleet = fleet;
        self.fleet.robots = robots.len();
        self.trim();
        Ok(Change::cars("layout"))
    }

    fn drop_robot_car(&mut self, robot: &str) {
        for c in self.cars.iter_mut() {
            if c.state.is_active() && c.robot.as_deref() == Some(robot) {
                c.back_to_waiting();
            }
        }
    }

    pub fn robot(&self, id: &str) -> Option<&Robot> {
        self.robots.iter().find(|r| r.id == id)
    }

    pub fn car(&self, id: &str) -> Option<&LiveCar> {
        self.cars.iter().find(|c| c.id == id)
    }

    fn robot_index(&self, id: &str) -> Result<usize, LiveError> {
        self.robots
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| LiveError::NotFound(format!("robot {id} is not in this lot")))
    }

    fn car_index(&self, id: &str) -> Result<usize, LiveError> {
        self.cars
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| LiveError::NotFound(format!("car {id} is not in this lot")))
    }

    /// The robot's state as shown: its task and its report together.
    pub fn robot_state(&self, r: &Robot) -> RobotState {
        if !r.online || r.reported == Reported::Fault {
            return RobotState::Offline;
        }
        match &r.task {
            Task::Car { car } => match self.car(car).map(|c| c.state) {
                Some(CarState::Charging) => RobotState::Charging,
                _ => RobotState::ToCar,
            },
            Task::Dock if r.reported == Reported::Docked => RobotState::Docked,
            Task::Dock => RobotState::ToDock,
            Task::Stay if r.reported == Reported::Docked => RobotState::Docked,
            Task::Stay => RobotState::Idle,
        }
    }

    /// The battery now: the last report, less what charging a car has drawn since at most (the
    /// car's power). Never more than reported.
    pub fn battery_at(&self, r: &Robot, now: f64) -> f64 {
        let mut b = r.battery_kwh;
        if let Some(c) = r.car().and_then(|id| self.car(id))
            && c.state == CarState::Charging
            && let Some(since) = c.charging_since_s
        {
            let from = r.last_report_s.map_or(since, |t| t.max(since));
            let hours = (now - from).max(0.0) / 3600.0;
            b -= (self.fleet.power_kw(c.max_power_kw) * hours).min(c.remaining_kwh);
        }
        b.max(0.0)
    }

    /// The point a task sends the robot to; `None` for staying.
    pub fn task_point(&self, task: &Task) -> Option<Point> {
        match task {
            Task::Stay => None,
            Task::Dock => Some(self.lot.dock),
            Task::Car { car } => self.car(car).and_then(|c| self.lot.bay(c.bay)),
        }
    }

    /// The most a car may ask for in this lot: what a full robot can give at the farthest bay,
    /// and never more than [`MAX_CAR_KWH`].
    pub fn max_car_kwh(&self) -> f64 {
        self.fleet.max_car_kwh(&self.lot).min(MAX_CAR_KWH)
    }

    // -----------------------------------------------------------------------------------------
    // Cars.

    /// A car takes a place in bay `car.bay`.
    pub fn add_car(&mut self, car: NewCar, now: f64) -> Result<Change, LiveError> {
        let bad = |m: String| Err(LiveError::Invalid(m));
        if self.lot.bay(car.bay).is_none() {
            return bad(format!(
                "bay {} does not exist (the lot has bays 0-{})",
                car.bay,
                self.lot.bays.len().saturating_sub(1)
            ));
        }
        let most = self.max_car_kwh();
        if !(car.energy_kwh.is_finite() && car.energy_kwh > 0.0 && car.energy_kwh <= most) {
            return bad(format!(
                "energy_kwh must be above 0 and at most {most:.1} (what a full robot can give here), got {}",
                car.energy_kwh
            ));
        }
        if !(car.max_power_kw.is_finite()
            && car.max_power_kw > 0.0
            && car.max_power_kw <= MAX_CAR_KW)
        {
            return bad(format!(
                "max_power_kw must be above 0 and at most {MAX_CAR_KW}, got {}",
                car.max_power_kw
            ));
        }
        if let Some(p) = car.patience_s
            && !(p.is_finite() && (0.0..=MAX_PATIENCE_S).contains(&p))
        {
            return bad(format!(
                "patience_s must be 0-{MAX_PATIENCE_S} seconds, got {p}"
            ));
        }
        if let Some(plate) = &car.plate
            && (plate.trim().is_empty()
                || plate.chars().count() > MAX_PLATE_CHARS
                || plate.chars().any(char::is_control))
        {
            return bad(format!(
                "plate must be 1-{MAX_PLATE_CHARS} printable characters"
            ));
        }
        if self.cars.iter().any(|c| c.id == car.id) {
            return Err(LiveError::Conflict(format!("car {} exists", car.id)));
        }
        if let Some(c) = self
            .cars
            .iter()
            .find(|c| c.bay == car.bay && c.state.is_active())
        {
            return Err(LiveError::Conflict(format!(
                "bay {} already holds an active car ({})",
                car.bay,
                c.state.as_str()
            )));
        }
        self.cars.push(LiveCar {
            id: car.id,
            bay: car.bay,
            plate: car.plate.map(|p| p.trim().to_owned()),
            energy_kwh: car.energy_kwh,
            remaining_kwh: car.energy_kwh,
            max_power_kw: car.max_power_kw,
            arrival_s: now,
            patience_s: car.patience_s,
            state: CarState::Waiting,
            robot: None,
            started_s: None,
            charging_since_s: None,
            session_id: None,
            served_s: None,
            ended_s: None,
        });
        Ok(Change::cars("car_added"))
    }

    /// The driver leaves: the car is cancelled and a robot on its way is freed. Cancelling a car
    /// that has already left or been cancelled changes nothing; a served car cannot be.
    pub fn cancel_car(&mut self, id: &str, now: f64) -> Result<Option<Change>, LiveError> {
        let i = self.car_index(id)?;
        match self.cars[i].state {
            CarState::Cancelled | CarState::Left => return Ok(None),
            CarState::Served => {
                return Err(LiveError::Conflict(format!("car {id} has been served")));
            }
            _ => {}
        }
        let robot = self.cars[i].robot.take();
        self.cars[i].end(CarState::Cancelled, now);
        if let Some(r) = robot.and_then(|r| self.robots.iter_mut().find(|x| x.id == r))
            && r.car() == Some(id)
        {
            r.free();
        }
        self.trim();
        Ok(Some(Change::cars("car_cancelled")))
    }

    // -----------------------------------------------------------------------------------------
    // Robots.

    /// Applies a robot's report. Refused reports change nothing. A report whose battery no longer
    /// covers the car it was sent to (from where it is now) frees the car and sends the robot to
    /// the dock; a fault report frees its car.
    pub fn apply_report(
        &mut self,
        robot: &str,
        report: &Report,
        now: f64,
    ) -> Result<Change, LiveError> {
        let i = self.robot_index(robot)?;
        self.check_report(report)?;
        let was_online = self.robots[i].online;
        let r = &mut self.robots[i];
        r.pos = Point::new(report.x, report.y);
        r.battery_kwh = report.battery_kwh;
        r.reported = report.state;
        r.last_report_s = Some(now);
        r.online = true;
        let mut change = Some(Change::robots(if was_online {
            "report"
        } else {
            "robot_online"
        }));

        if report.state == Reported::Fault {
            if let Some(car) = self.robots[i].car().map(str::to_owned) {
                self.give_back(i, &car);
                change = Change::merge(change, Some(Change::cars("robot_fault")));
            }
            return Ok(change.unwrap_or(Change::robots("report")));
        }

        // A robot that lost its car (it timed out mid-session) and reports charging it again
        // gets it back, if nobody else has it.
        if report.state == Reported::Charging
            && self.robots[i].car().is_none()
            && let Some(id) = &report.car
            && let Some(c) = self.cars.iter_mut().find(|c| &c.id == id)
            && c.state == CarState::Waiting
        {
            c.state = CarState::Charging;
            c.robot = Some(robot.to_owned());
            c.charging_since_s = Some(now);
            c.started_s.get_or_insert(now);
            self.robots[i].task = Task::Car { car: id.clone() };
            self.robots[i].released_car = None;
            change = Change::merge(change, Some(Change::cars("charging")));
        }

        // The battery rule, from where the robot is now, for a car it has not started.
        if let Some(car) = self.robots[i].car().map(str::to_owned)
            && let Some(c) = self.car(&car)
            && c.state == CarState::Assigned
            && let Some(bay) = self.lot.bay(c.bay)
        {
            let r = &self.robots[i];
            let need = self
                .fleet
                .required_kwh(&self.lot, r.pos, bay, c.remaining_kwh);
            if r.battery_kwh + 1e-9 < need {
                self.give_back(i, &car);
                self.robots[i].task = Task::Dock;
                change = Change::merge(change, Some(Change::cars("battery_low")));
            }
        }
        Ok(change.unwrap_or(Change::robots("report")))
    }

    fn check_report(&self, report: &Report) -> Result<(), LiveError> {
        let bad = |m: String| Err(LiveError::Invalid(m));
        if !(report.x.is_finite() && report.y.is_finite()) {
            return bad("x and y must be finite numbers".into());
        }
        let b = report.battery_kwh;
        let cap = self.fleet.robot_kwh * BATTERY_TOLERANCE;
        if !(b.is_finite() && b >= 0.0) {
            return bad(format!("battery_kwh must be 0 or more, got {b}"));
        }
        if b > cap {
            return bad(format!(
                "battery_kwh {b} is above the robots' capacity ({} kWh)",
                self.fleet.robot_kwh
            ));
        }
        let at = Point::new(report.x, report.y);
        let nearest = self
            .lot
            .bays
            .iter()
            .chain(std::iter::once(&self.lot.dock))
            .map(|p| p.dist(at))
            .fold(f64::INFINITY, f64::min);
        if nearest > MAX_DISTANCE_M {
            return bad(format!(
                "position ({}, {}) is {nearest:.0} m from the nearest bay or the dock (at most {MAX_DISTANCE_M} m)",
                report.x, report.y
            ));
        }
        if let Some(car) = &report.car
            && (car.is_empty() || car.len() > 64)
        {
            return bad("car must be a car id".into());
        }
        Ok(())
    }

    /// Robot `i`'s car goes back to the pool and the robot has no task.
    fn give_back(&mut self, i: usize, car: &str) {
        let robot = self.robots[i].id.clone();
        if let Some(c) = self.cars.iter_mut().find(|c| c.id == car)
            && c.state.is_active()
            && c.robot.as_deref() == Some(robot.as_str())
        {
            c.back_to_waiting();
        }
        self.robots[i].free();
    }

    /// A charging session started on a robot's charge point: its car is charging. The car is
    /// the robot's task if the session's id tag matches it (or there is none), else a waiting
    /// car whose id the tag starts. `None` when the session is for no car of this lot.
    pub fn session_started(
        &mut self,
        robot: &str,
        session_id: i64,
        id_tag: Option<&str>,
        now: f64,
    ) -> Option<Change> {
        let i = self.robot_index(robot).ok()?;
        let tag_matches = |car: &str| match id_tag {
            None => true,
            Some(t) => {
                !t.is_empty() && car.starts_with(t) && t.len() >= car.len().min(ID_TAG_CHARS)
            }
        };
        let task_car = self.robots[i]
            .car()
            .filter(|c| tag_matches(c))
            .map(str::to_owned);
        let car = match task_car {
            Some(c) => c,
            None if self.robots[i].car().is_none() => self
                .cars
                .iter()
                .find(|c| c.state == CarState::Waiting && id_tag.is_some() && tag_matches(&c.id))
                .map(|c| c.id.clone())?,
            None => return None,
        };
        let c = self.cars.iter_mut().find(|c| c.id == car)?;
        if !c.state.is_active() {
            return None;
        }
        c.state = CarState::Charging;
        c.robot = Some(robot.to_owned());
        c.session_id = Some(session_id);
        c.charging_since_s = Some(now);
        c.started_s.get_or_insert(now);
        let r = &mut self.robots[i];
        if r.car() != Some(car.as_str()) {
            r.task = Task::Car { car };
            r.pinned = false;
        }
        r.released_car = None;
        Some(Change::cars("charging"))
    }

    /// A robot's session stopped having given `energy_wh`: the car is served when that covers
    /// what it was owed (less [`SERVED_SLACK_KWH`]), else it goes back to waiting with the rest
    /// owed. The robot is then free where it is.
    pub fn session_stopped(
        &mut self,
        robot: &str,
        session_id: i64,
        energy_wh: Option<i64>,
        now: f64,
    ) -> Option<Change> {
        let i = self.robot_index(robot).ok()?;
        let by_session = self
            .cars
            .iter()
            .position(|c| c.state.is_active() && c.session_id == Some(session_id));
        let by_task = || {
            let car = self.robots[i].car()?;
            self.cars
                .iter()
                .position(|c| c.id == car && c.state == CarState::Charging)
        };
        let ci = by_session.or_else(by_task)?;
        // The estimate of what the session drew becomes the robot's battery until it reports.
        let battery = self.battery_at(&self.robots[i], now);
        let energy = energy_wh.map_or(0.0, |wh| (wh as f64 / 1000.0).max(0.0));
        let c = &mut self.cars[ci];
        let owed = c.remaining_kwh;
        c.remaining_kwh = (owed - energy).max(0.0);
        c.session_id = None;
        c.charging_since_s = None;
        let holder = c.robot.clone();
        let served = energy + SERVED_SLACK_KWH >= owed;
        let car_id = c.id.clone();
        if served {
            c.remaining_kwh = 0.0;
            c.robot = None;
            c.end(CarState::Served, now);
            self.served_total += 1;
        } else if c.robot.as_deref() == Some(robot) || c.state == CarState::Charging {
            c.back_to_waiting();
        }
        let r = &mut self.robots[i];
        r.battery_kwh = battery.min(r.battery_kwh);
        if r.car() == Some(car_id.as_str()) {
            r.free();
        }
        // A served car that another robot was on its way to (staff gave it away mid-session)
        // frees that robot too.
        if served
            && let Some(h) = holder.filter(|h| h != robot)
            && let Some(other) = self.robots.iter_mut().find(|r| r.id == h)
            && other.car() == Some(car_id.as_str())
        {
            other.free();
        }
        self.trim();
        Some(Change::cars(if served {
            "car_served"
        } else {
            "car_partial"
        }))
    }

    // -----------------------------------------------------------------------------------------
    // Staff.

    /// A staff override: `robot` goes to `car`, checked with [`View::check_assignment`]. A car
    /// on its way from another robot is taken from it. The pair is pinned until the car is
    /// served or the assignment released.
    pub fn assign(&mut self, robot: &str, car: &str, now: f64) -> Result<Change, LiveError> {
        let ri = self.robot_index(robot)?;
        let ci = self.car_index(car)?;
        let c = &self.cars[ci];
        match c.state {
            CarState::Waiting | CarState::Assigned => {}
            CarState::Charging => {
                return Err(LiveError::Conflict(format!(
                    "car {car} is charging; release its robot first"
                )));
            }
            s => {
                return Err(LiveError::Conflict(format!(
                    "car {car} is {}, not waiting",
                    s.as_str()
                )));
            }
        }
        if c.robot.as_deref() == Some(robot) {
            self.robots[ri].pinned = true;
            return Ok(Change::cars("override"));
        }
        // Try it on a copy so that a refusal changes nothing.
        let mut next = self.clone();
        if let Some(other) = next.cars[ci].robot.clone()
            && let Some(oi) = next.robots.iter().position(|r| r.id == other)
        {
            next.give_back(oi, car);
        }
        let (robots, waiting) = next.views(now);
        let car_index = waiting
            .iter()
            .position(|w| w.id == ci)
            .map(|_| ci)
            .unwrap_or(usize::MAX);
        let view = next.view(now, &robots, &waiting);
        view.check_assignment(ri, car_index).map_err(|e| match e {
            DispatchError::Assignment { reason, .. } => {
                LiveError::Conflict(format!("robot {robot} cannot take car {car}: {reason}"))
            }
            other => LiveError::Conflict(other.to_string()),
        })?;
        next.start_task(ri, ci);
        next.robots[ri].pinned = true;
        *self = next;
        Ok(Change::cars("override"))
    }

    /// Ends the robot's car task; the car goes back to waiting (its arrival time and what is
    /// still owed kept) and the dispatcher will not give it back to the same robot. `None` when
    /// the robot had no car.
    pub fn release(&mut self, robot: &str) -> Result<Option<Change>, LiveError> {
        let i = self.robot_index(robot)?;
        let Some(car) = self.robots[i].car().map(str::to_owned) else {
            self.robots[i].pinned = false;
            return Ok(None);
        };
        self.give_back(i, &car);
        self.robots[i].released_car = Some(car);
        Ok(Some(Change::cars("released")))
    }

    fn start_task(&mut self, ri: usize, ci: usize) {
        let c = &mut self.cars[ci];
        c.state = CarState::Assigned;
        c.robot = Some(self.robots[ri].id.clone());
        let r = &mut self.robots[ri];
        r.task = Task::Car { car: c.id.clone() };
        r.pinned = false;
        r.released_car = None;
    }

    // -----------------------------------------------------------------------------------------
    // Time.

    /// Robots silent for `timeout_s` go offline and give their car back; drivers whose patience
    /// ran out before a robot was sent leave; old ended cars are dropped.
    pub fn timeouts(&mut self, now: f64, timeout_s: f64) -> Option<Change> {
        let mut change = None;
        for i in 0..self.robots.len() {
            let r = &self.robots[i];
            let silent = r.last_report_s.is_none_or(|t| now - t > timeout_s);
            if !(r.online && silent) {
                continue;
            }
            self.robots[i].online = false;
            let car = self.robots[i].car().map(str::to_owned);
            match car {
                Some(car) => {
                    self.give_back(i, &car);
                    change = Change::merge(change, Some(Change::cars("robot_offline")));
                }
                None => {
                    self.robots[i].free();
                    change = Change::merge(change, Some(Change::robots("robot_offline")));
                }
            }
        }
        for c in self.cars.iter_mut() {
            if c.state == CarState::Waiting
                && c.started_s.is_none()
                && c.patience_s.is_some_and(|p| now - c.arrival_s > p)
            {
                c.end(CarState::Left, now);
                change = Change::merge(change, Some(Change::cars("car_left")));
            }
        }
        self.trim();
        change
    }

    /// Keeps the active cars and the last [`KEEP_ENDED`] ended ones.
    fn trim(&mut self) {
        let mut ended: Vec<(f64, usize)> = self
            .cars
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.state.is_active())
            .map(|(i, c)| (c.ended_s.unwrap_or(f64::NEG_INFINITY), i))
            .collect();
        if ended.len() <= KEEP_ENDED {
            return;
        }
        // Newest first; what is past the limit goes.
        ended.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        let mut drop = vec![false; self.cars.len()];
        for &(_, i) in &ended[KEEP_ENDED..] {
            drop[i] = true;
        }
        let mut i = 0;
        self.cars.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
    }

    // -----------------------------------------------------------------------------------------
    // Dispatch.

    /// What the policy decides on: this lot's layout and fleet with `robots` and `waiting` (see
    /// [`LiveLot::views`]) at `now`.
    fn view<'a>(&'a self, now: f64, robots: &'a [RobotView], waiting: &'a [CarView]) -> View<'a> {
        View {
            now,
            lot: &self.lot,
            fleet: &self.fleet,
            robots,
            waiting,
        }
    }

    /// The lot as the policy sees it: robot `i` of the views is `self.robots[i]`, a car view's
    /// id is the car's index in `self.cars`; waiting cars in arrival order.
    fn views(&self, now: f64) -> (Vec<RobotView>, Vec<CarView>) {
        let robots = self
            .robots
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let status = match self.robot_state(r) {
                    RobotState::Idle => RobotStatus::Idle,
                    RobotState::ToDock => RobotStatus::ToDock,
                    RobotState::Docked => RobotStatus::Docked,
                    RobotState::Offline => RobotStatus::Offline,
                    RobotState::ToCar | RobotState::Charging => {
                        let ci = r
                            .car()
                            .and_then(|id| self.cars.iter().position(|c| c.id == id))
                            .unwrap_or(usize::MAX);
                        RobotStatus::Busy {
                            car: ci,
                            free_at: self.free_at(r, now),
                        }
                    }
                };
                RobotView {
                    id: i,
                    pos: r.pos,
                    battery_kwh: self.battery_at(r, now),
                    status,
                }
            })
            .collect();
        let mut waiting: Vec<CarView> = self
            .cars
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state == CarState::Waiting && self.lot.bay(c.bay).is_some())
            .map(|(i, c)| CarView {
                id: i,
                arrival_s: c.arrival_s,
                bay: c.bay,
                energy_kwh: c.remaining_kwh,
                max_power_kw: c.max_power_kw,
            })
            .collect();
        waiting.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s).then(a.id.cmp(&b.id)));
        (robots, waiting)
    }

    /// When a busy robot should be free: drive to its car, plug and give what is owed.
    fn free_at(&self, r: &Robot, now: f64) -> f64 {
        let Some(c) = r.car().and_then(|id| self.car(id)) else {
            return now;
        };
        let charge_s = c.remaining_kwh / self.fleet.power_kw(c.max_power_kw) * 3600.0;
        match (c.state, c.charging_since_s) {
            (CarState::Charging, Some(since)) => now + (charge_s - (now - since)).max(0.0),
            _ => {
                let bay = self.lot.bay(c.bay).unwrap_or(self.lot.dock);
                now + self.fleet.travel_s(r.pos, bay) + self.fleet.plug_s + charge_s
            }
        }
    }

    /// Runs the chargeops policy on the lot now and turns its decisions into tasks. Pinned
    /// robots are busy and never touched; a robot staff took a car from is not given that car
    /// again (the policy is asked once more without that robot). `None` when nothing changed.
    pub fn dispatch(&mut self, now: f64) -> Option<Change> {
        let mut policy = Chargeops::default();
        let (mut robots, waiting) = self.views(now);
        if waiting.is_empty() && !robots.iter().any(|r| r.status == RobotStatus::Idle) {
            return None;
        }
        let mut actions = Vec::new();
        // Each round hides at least one more robot, so this ends.
        for _ in 0..=self.robots.len() {
            let view = self.view(now, &robots, &waiting);
            actions = policy.decide(&view);
            let refused: Vec<usize> = actions
                .iter()
                .filter_map(|a| match *a {
                    Action::Assign { robot, car } => {
                        let r = self.robots.get(robot)?;
                        let c = self.cars.get(car)?;
                        (r.released_car.as_deref() == Some(c.id.as_str())).then_some(robot)
                    }
                    Action::ToDock { .. } => None,
                })
                .collect();
            if refused.is_empty() {
                break;
            }
            for i in refused {
                robots[i].status = RobotStatus::Offline;
            }
            actions.clear();
        }
        let mut change = None;
        for a in actions {
            match a {
                Action::Assign { robot, car } => {
                    let view = self.view(now, &robots, &waiting);
                    // The policy obeys the battery rule; checked again because a robot's task
                    // is a promise the platform makes to a driver.
                    if view.check_assignment(robot, car).is_err()
                        || self.robots.get(robot).is_none_or(|r| r.pinned)
                        || self
                            .cars
                            .get(car)
                            .is_none_or(|c| c.state != CarState::Waiting)
                    {
                        continue;
                    }
                    self.start_task(robot, car);
                    change = Change::merge(change, Some(Change::cars("assigned")));
                }
                Action::ToDock { robot } => {
                    let Some(r) = self.robots.get_mut(robot) else {
                        continue;
                    };
                    if r.pinned || r.car().is_some() || r.task == Task::Dock {
                        continue;
                    }
                    r.task = Task::Dock;
                    change = Change::merge(change, Some(Change::robots("to_dock")));
                }
            }
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_000_000.0;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("R{i}")).collect()
    }

    /// A 20-bay lot, robots at the dock (-15, 0), all reported full and docked at `T0`.
    fn lot(robots: usize) -> LiveLot {
        let mut l =
            LiveLot::new(Lot::service_area(20), Fleet::default(), &ids(robots)).expect("valid lot");
        for i in 0..robots {
            l.apply_report(
                &format!("R{i}"),
                &report(-15.0, 0.0, 150.0, Reported::Docked),
                T0,
            )
            .expect("report");
        }
        l
    }

    fn report(x: f64, y: f64, battery_kwh: f64, state: Reported) -> Report {
        Report {
            x,
            y,
            battery_kwh,
            state,
            car: None,
        }
    }

    fn car(id: &str, bay: usize, kwh: f64) -> NewCar {
        NewCar {
            id: id.into(),
            bay,
            energy_kwh: kwh,
            max_power_kw: 120.0,
            plate: None,
            patience_s: None,
        }
    }

    /// [`lot`] with car c1 at `bay` owed `kwh`, added and dispatched at `T0`.
    fn lot_with_c1(robots: usize, bay: usize, kwh: f64) -> LiveLot {
        let mut l = lot(robots);
        l.add_car(car("c1", bay, kwh), T0).expect("added");
        l.dispatch(T0);
        l
    }

    /// The robot of a two-robot lot that is not `robot`.
    fn other_of(robot: &str) -> &'static str {
        if robot == "R0" { "R1" } else { "R0" }
    }

    fn state(l: &LiveLot, id: &str) -> CarState {
        l.car(id).expect("car").state
    }

    fn robot_of(l: &LiveLot, car: &str) -> Option<String> {
        l.car(car).expect("car").robot.clone()
    }

    #[test]
    fn a_car_gets_a_robot_and_is_served() {
        let mut l = lot(2);
        assert_eq!(
            l.add_car(car("c1", 3, 30.0), T0).map(|c| c.reason),
            Ok("car_added")
        );
        assert_eq!(state(&l, "c1"), CarState::Waiting);
        assert_eq!(l.dispatch(T0).map(|c| c.reason), Some("assigned"));
        assert_eq!(state(&l, "c1"), CarState::Assigned);
        let r = robot_of(&l, "c1").expect("a robot");
        let robot = l.robot(&r).expect("robot");
        assert_eq!(robot.task, Task::Car { car: "c1".into() });
        assert_eq!(l.robot_state(robot), RobotState::ToCar);
        assert_eq!(l.task_point(&robot.task), l.lot.bay(3));

        assert!(l.session_started(&r, 7, Some("c1"), T0 + 60.0).is_some());
        assert_eq!(state(&l, "c1"), CarState::Charging);
        assert_eq!(
            l.robot_state(l.robot(&r).expect("robot")),
            RobotState::Charging
        );

        l.apply_report(&r, &report(8.1, 0.0, 120.0, Reported::Charging), T0 + 900.0)
            .expect("report");
        let ch = l
            .session_stopped(&r, 7, Some(29_700), T0 + 1000.0)
            .expect("applied");
        assert_eq!(ch.reason, "car_served");
        let c = l.car("c1").expect("car");
        assert_eq!(c.state, CarState::Served);
        assert_eq!(c.served_s, Some(T0 + 1000.0));
        assert_eq!(c.wait_s(T0 + 5000.0), 60.0);
        assert_eq!(l.robot(&r).expect("robot").task, Task::Stay);
        assert_eq!(l.served_total, 1);
        // Nothing waits: the free robot goes back to the dock.
        assert_eq!(l.dispatch(T0 + 1000.0).map(|c| c.reason), Some("to_dock"));
        assert_eq!(l.robot(&r).expect("robot").task, Task::Dock);
    }

    #[test]
    fn a_short_session_puts_the_car_back_with_the_rest_owed() {
        let mut l = lot_with_c1(1, 0, 40.0);
        l.session_started("R0", 1, Some("c1"), T0 + 30.0);
        let ch = l
            .session_stopped("R0", 1, Some(15_000), T0 + 600.0)
            .expect("applied");
        assert_eq!(ch.reason, "car_partial");
        let c = l.car("c1").expect("car");
        assert_eq!(c.state, CarState::Waiting);
        assert_eq!(c.remaining_kwh, 25.0);
        assert_eq!(c.arrival_s, T0);
        assert_eq!(c.robot, None);
        assert_eq!(l.robot("R0").expect("robot").task, Task::Stay);
        // The robot's battery: its report less what the session drew at most.
        assert!(l.robot("R0").expect("robot").battery_kwh < 150.0);
    }

    #[test]
    fn refused_reports_change_nothing() {
        let mut l = lot_with_c1(1, 0, 40.0);
        let before = l.clone();
        let bad = [
            report(f64::NAN, 0.0, 100.0, Reported::Idle),
            report(0.0, f64::INFINITY, 100.0, Reported::Idle),
            report(0.0, 0.0, -1.0, Reported::Idle),
            report(0.0, 0.0, f64::NAN, Reported::Idle),
            report(0.0, 0.0, 150.0 * 1.06, Reported::Idle),
            report(10_000.0, 0.0, 100.0, Reported::Idle),
        ];
        for b in bad {
            let e = l.apply_report("R0", &b, T0 + 1.0);
            assert!(matches!(e, Err(LiveError::Invalid(_))), "{b:?}: {e:?}");
            assert_eq!(l, before);
        }
        assert!(matches!(
            l.apply_report("R9", &report(0.0, 0.0, 1.0, Reported::Idle), T0),
            Err(LiveError::NotFound(_))
        ));
        assert!(matches!(
            Reported::parse("flying"),
            Err(LiveError::Invalid(_))
        ));
        assert_eq!(l, before);
        // At the edge: 5 % over capacity and 500 m from the dock are fine.
        let ok = report(-515.0, 0.0, 150.0 * 1.05, Reported::Driving);
        assert!(l.apply_report("R0", &ok, T0 + 1.0).is_ok());
    }

    #[test]
    fn refused_cars_change_nothing() {
        let mut l = lot(1);
        l.add_car(car("c1", 0, 40.0), T0).expect("added");
        let before = l.clone();
        let mut bad = vec![
            car("x", 20, 10.0),
            car("x", 1, 0.0),
            car("x", 1, -5.0),
            car("x", 1, 1e9),
            car("x", 1, f64::NAN),
            car("x", 1, 150.0),
        ];
        let mut p = car("x", 1, 10.0);
        p.max_power_kw = 0.0;
        bad.push(p);
        let mut p = car("x", 1, 10.0);
        p.max_power_kw = 1001.0;
        bad.push(p);
        let mut p = car("x", 1, 10.0);
        p.patience_s = Some(-1.0);
        bad.push(p);
        let mut p = car("x", 1, 10.0);
        p.plate = Some("\u{7}".into());
        bad.push(p);
        for c in bad {
            let e = l.add_car(c.clone(), T0);
            assert!(matches!(e, Err(LiveError::Invalid(_))), "{c:?}: {e:?}");
        }
        assert!(matches!(
            l.add_car(car("c2", 0, 10.0), T0),
            Err(LiveError::Conflict(m)) if m.contains("bay 0 already holds")
        ));
        assert!(matches!(
            l.add_car(car("c1", 5, 10.0), T0),
            Err(LiveError::Conflict(_))
        ));
        assert_eq!(l, before);
    }

    #[test]
    fn an_offline_robot_gives_its_car_to_another() {
        let mut l = lot_with_c1(2, 5, 20.0);
        let first = robot_of(&l, "c1").expect("assigned");
        let other = other_of(&first);
        l.session_started(&first, 3, Some("c1"), T0 + 10.0);
        // The other robot keeps reporting; the first goes silent.
        let t = T0 + 31.0;
        l.apply_report(other, &report(-15.0, 0.0, 150.0, Reported::Docked), t)
            .expect("report");
        assert_eq!(l.timeouts(T0 + 29.0, 30.0), None);
        assert_eq!(l.timeouts(t, 30.0).map(|c| c.reason), Some("robot_offline"));
        let r = l.robot(&first).expect("robot");
        assert!(!r.online);
        assert_eq!(l.robot_state(r), RobotState::Offline);
        assert_eq!(state(&l, "c1"), CarState::Waiting);
        l.dispatch(t);
        assert_eq!(robot_of(&l, "c1").as_deref(), Some(other));
        // Its late session stop still counts the energy towards the car.
        l.session_stopped(&first, 3, Some(5_000), t + 1.0);
        assert_eq!(l.car("c1").expect("car").remaining_kwh, 15.0);
        assert_eq!(state(&l, "c1"), CarState::Assigned);
        assert_eq!(robot_of(&l, "c1").as_deref(), Some(other));
    }

    #[test]
    fn a_battery_too_low_for_the_car_sends_the_robot_to_the_dock() {
        let mut l = lot_with_c1(1, 19, 100.0);
        assert_eq!(state(&l, "c1"), CarState::Assigned);
        let ch = l
            .apply_report("R0", &report(0.0, 0.0, 60.0, Reported::Driving), T0 + 5.0)
            .expect("report");
        assert_eq!(ch.reason, "battery_low");
        assert!(ch.cars);
        assert_eq!(state(&l, "c1"), CarState::Waiting);
        assert_eq!(l.robot("R0").expect("robot").task, Task::Dock);
        // And the dispatcher does not send it back to a car it cannot cover.
        l.dispatch(T0 + 5.0);
        assert_eq!(state(&l, "c1"), CarState::Waiting);
    }

    #[test]
    fn staff_override_is_checked_pinned_and_takes_a_car_from_another_robot() {
        let mut l = lot_with_c1(2, 2, 30.0);
        let first = robot_of(&l, "c1").expect("assigned");
        let other = other_of(&first);
        // A robot with too little battery is refused with the battery rule's numbers.
        l.apply_report(other, &report(-15.0, 0.0, 12.0, Reported::Docked), T0 + 1.0)
            .expect("report");
        let before = l.clone();
        let e = l.assign(other, "c1", T0 + 1.0);
        assert!(
            matches!(&e, Err(LiveError::Conflict(m)) if m.contains("battery too low: holds 12.00 kWh, needs")),
            "{e:?}"
        );
        assert_eq!(l, before);
        l.apply_report(
            other,
            &report(-15.0, 0.0, 150.0, Reported::Docked),
            T0 + 2.0,
        )
        .expect("report");
        assert_eq!(
            l.assign(other, "c1", T0 + 2.0).map(|c| c.reason),
            Ok("override")
        );
        assert_eq!(robot_of(&l, "c1").as_deref(), Some(other));
        assert!(l.robot(other).expect("robot").pinned);
        assert_eq!(l.robot(&first).expect("robot").task, Task::Stay);
        // The dispatcher leaves the pinned pair alone.
        l.dispatch(T0 + 3.0);
        assert_eq!(robot_of(&l, "c1").as_deref(), Some(other));
        assert!(matches!(
            l.assign("nope", "c1", T0),
            Err(LiveError::NotFound(_))
        ));
        assert!(matches!(
            l.assign(other, "nope", T0),
            Err(LiveError::NotFound(_))
        ));
    }

    #[test]
    fn a_released_car_goes_to_another_robot() {
        let mut l = lot_with_c1(2, 2, 30.0);
        let first = robot_of(&l, "c1").expect("assigned");
        assert_eq!(
            l.release(&first).map(|c| c.map(|c| c.reason)),
            Ok(Some("released"))
        );
        assert_eq!(state(&l, "c1"), CarState::Waiting);
        assert_eq!(l.car("c1").expect("car").arrival_s, T0);
        l.dispatch(T0 + 1.0);
        let second = robot_of(&l, "c1").expect("assigned again");
        assert_ne!(second, first);
        assert_eq!(l.release("R0").map(|_| ()), Ok(()));
        assert!(matches!(l.release("R7"), Err(LiveError::NotFound(_))));
    }

    #[test]
    fn cancelling_frees_the_robot_and_impatient_drivers_leave() {
        let mut l = lot_with_c1(1, 2, 30.0);
        assert_eq!(
            l.cancel_car("c1", T0 + 1.0).map(|c| c.map(|c| c.reason)),
            Ok(Some("car_cancelled"))
        );
        assert_eq!(state(&l, "c1"), CarState::Cancelled);
        assert_eq!(l.robot("R0").expect("robot").task, Task::Stay);
        assert_eq!(l.cancel_car("c1", T0 + 2.0), Ok(None));

        // One robot, busy: the second driver gives up after 10 minutes.
        l.add_car(car("c2", 3, 30.0), T0).expect("added");
        l.dispatch(T0 + 2.0);
        let mut c = car("c3", 4, 30.0);
        c.patience_s = Some(600.0);
        l.add_car(c, T0 + 2.0).expect("added");
        l.dispatch(T0 + 3.0);
        assert_eq!(state(&l, "c3"), CarState::Waiting);
        l.apply_report(
            "R0",
            &report(0.0, 0.0, 150.0, Reported::Driving),
            T0 + 600.0,
        )
        .expect("report");
        assert_eq!(l.timeouts(T0 + 601.0, 30.0), None);
        assert_eq!(
            l.timeouts(T0 + 603.0, 30.0).map(|c| c.reason),
            Some("car_left")
        );
        assert_eq!(state(&l, "c3"), CarState::Left);
    }

    #[test]
    fn the_battery_estimate_only_goes_down() {
        let mut l = lot_with_c1(1, 0, 60.0);
        l.session_started("R0", 1, Some("c1"), T0 + 100.0);
        let r = l.robot("R0").expect("robot").clone();
        assert_eq!(l.battery_at(&r, T0 + 100.0), 150.0);
        // 120 kW for half an hour is 60 kWh, all the car is owed.
        assert!((l.battery_at(&r, T0 + 100.0 + 1800.0) - 90.0).abs() < 1e-9);
        assert!((l.battery_at(&r, T0 + 100.0 + 7200.0) - 90.0).abs() < 1e-9);
        // A docked robot's estimate stays at its report: recharging is only what it reports.
        let mut d = lot(1);
        d.apply_report("R0", &report(-15.0, 0.0, 40.0, Reported::Docked), T0 + 1.0)
            .expect("report");
        let r = d.robot("R0").expect("robot").clone();
        assert_eq!(d.battery_at(&r, T0 + 3600.0), 40.0);
    }

    #[test]
    fn a_new_layout_keeps_what_remains() {
        let mut l = lot(2);
        l.add_car(car("c1", 2, 30.0), T0).expect("added");
        l.add_car(car("c2", 15, 30.0), T0).expect("added");
        l.dispatch(T0);
        let robots = vec!["R1".to_owned(), "R5".to_owned()];
        l.relayout(Lot::service_area(10), Fleet::default(), &robots, T0 + 1.0)
            .expect("relayout");
        assert_eq!(l.robots.len(), 2);
        assert!(l.robot("R1").expect("kept").online);
        assert!(!l.robot("R5").expect("new").online);
        assert_eq!(state(&l, "c2"), CarState::Cancelled);
        assert!(l.car("c1").expect("car").state.is_active());
        assert_eq!(l.fleet.robots, 2);
        let bad = l.clone();
        assert!(matches!(
            l.relayout(Lot::service_area(0), Fleet::default(), &robots, T0),
            Err(LiveError::Invalid(_))
        ));
        let twice = vec!["R1".to_owned(), "R1".to_owned()];
        assert!(matches!(
            l.relayout(Lot::service_area(5), Fleet::default(), &twice, T0),
            Err(LiveError::Invalid(_))
        ));
        assert_eq!(l, bad);
    }

    #[test]
    fn ended_cars_are_kept_up_to_a_limit_and_the_state_round_trips() {
        let mut l = lot(1);
        for i in 0..(KEEP_ENDED + 10) {
            let id = format!("c{i}");
            l.add_car(car(&id, 0, 10.0), T0 + i as f64).expect("added");
            l.cancel_car(&id, T0 + i as f64).expect("cancelled");
        }
        assert_eq!(l.cars.len(), KEEP_ENDED);
        assert!(l.car("c0").is_none());
        assert!(l.car(&format!("c{}", KEEP_ENDED + 9)).is_some());
        let text = serde_json::to_string(&l).expect("json");
        let back: LiveLot = serde_json::from_str(&text).expect("json");
        // Coordinates may come back a unit in the last place off; everything else exactly.
        assert_eq!(back.cars, l.cars);
        assert_eq!(back.robots, l.robots);
        assert_eq!(back.fleet, l.fleet);
        assert_eq!(back.lot.bays.len(), l.lot.bays.len());
        for (a, b) in back.lot.bays.iter().zip(&l.lot.bays) {
            assert!(a.dist(*b) < 1e-9);
        }
    }

    #[test]
    fn timed_out_robots_return_when_they_report() {
        let mut l = lot(1);
        assert!(l.timeouts(T0 + 100.0, 30.0).is_some());
        assert!(!l.robot("R0").expect("robot").online);
        l.add_car(car("c1", 0, 10.0), T0 + 100.0).expect("added");
        assert_eq!(l.dispatch(T0 + 100.0), None);
        let ch = l
            .apply_report(
                "R0",
                &report(-15.0, 0.0, 150.0, Reported::Docked),
                T0 + 101.0,
            )
            .expect("report");
        assert_eq!(ch.reason, "robot_online");
        assert_eq!(l.dispatch(T0 + 101.0).map(|c| c.reason), Some("assigned"));
    }

    #[test]
    fn sessions_for_no_car_of_the_lot_are_ignored() {
        let mut l = lot(1);
        assert_eq!(l.session_started("R0", 1, Some("someone-else"), T0), None);
        assert_eq!(l.session_stopped("R0", 1, Some(1000), T0), None);
        assert_eq!(l.session_started("R9", 1, None, T0), None);
        // A robot that starts a session for a waiting car by its id tag takes that car.
        l.add_car(car("0123456789abcdef01234567", 1, 10.0), T0)
            .expect("added");
        assert!(
            l.session_started("R0", 2, Some("0123456789abcdef0123"), T0)
                .is_some()
        );
        assert_eq!(state(&l, "0123456789abcdef01234567"), CarState::Charging);
    }

    /// Any sequence of reports, cars, sessions, overrides and ticks keeps the lot consistent:
    /// a robot's car task and the car's robot agree, no car has two robots, active cars hold
    /// distinct bays, and the battery estimate stays within 0 and the last report.
    mod props {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Car(usize, f64),
            Cancel(usize),
            Report(usize, f64, f64, f64, u8),
            Started(usize, usize),
            Stopped(usize, f64),
            Assign(usize, usize),
            Release(usize),
            Tick(f64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0usize..25, -10.0f64..200.0).prop_map(|(b, e)| Op::Car(b, e)),
                (0usize..30).prop_map(Op::Cancel),
                (
                    0usize..4,
                    -100.0f64..100.0,
                    -100.0f64..100.0,
                    -5.0f64..170.0,
                    0u8..5
                )
                    .prop_map(|(r, x, y, b, s)| Op::Report(r, x, y, b, s)),
                (0usize..4, 0usize..30).prop_map(|(r, c)| Op::Started(r, c)),
                (0usize..4, -5.0f64..80.0).prop_map(|(r, e)| Op::Stopped(r, e)),
                (0usize..4, 0usize..30).prop_map(|(r, c)| Op::Assign(r, c)),
                (0usize..4).prop_map(Op::Release),
                (0.0f64..60.0).prop_map(Op::Tick),
            ]
        }

        fn check(l: &LiveLot, now: f64) {
            for r in &l.robots {
                if let Some(id) = r.car() {
                    let c = l.car(id).expect("a robot's car exists");
                    assert!(c.state.is_active(), "{id} is {:?}", c.state);
                    assert_eq!(c.robot.as_deref(), Some(r.id.as_str()));
                }
                let b = l.battery_at(r, now);
                assert!(b >= 0.0 && b <= r.battery_kwh.max(0.0) + 1e-9);
            }
            for c in &l.cars {
                if let Some(r) = &c.robot {
                    assert!(c.state.is_active());
                    let holders = l.robots.iter().filter(|x| x.car() == Some(c.id.as_str()));
                    assert_eq!(
                        holders.map(|x| x.id.clone()).collect::<Vec<_>>(),
                        vec![r.clone()]
                    );
                }
                if c.state == CarState::Waiting {
                    assert!(c.robot.is_none());
                }
                assert!(c.remaining_kwh >= 0.0 && c.remaining_kwh <= c.energy_kwh);
            }
            let mut bays: Vec<usize> = l
                .cars
                .iter()
                .filter(|c| c.state.is_active())
                .map(|c| c.bay)
                .collect();
            let n = bays.len();
            bays.sort_unstable();
            bays.dedup();
            assert_eq!(bays.len(), n, "two active cars on one bay");
        }

        proptest! {
            #[test]
            fn the_lot_stays_consistent(ops in proptest::collection::vec(op(), 1..80)) {
                let mut l = lot(4);
                let mut now = T0;
                let mut session = 0i64;
                let states = [Reported::Idle, Reported::Driving, Reported::Charging, Reported::Docked, Reported::Fault];
                for op in ops {
                    let car_id = |l: &LiveLot, k: usize| l.cars.get(k % l.cars.len().max(1)).map(|c| c.id.clone());
                    match op {
                        Op::Car(bay, e) => {
                            let _ = l.add_car(car(&format!("c{session}-{bay}"), bay, e), now);
                            session += 1;
                        }
                        Op::Cancel(k) => if let Some(id) = car_id(&l, k) { let _ = l.cancel_car(&id, now); },
                        Op::Report(r, x, y, b, s) => {
                            let _ = l.apply_report(&format!("R{r}"), &report(x, y, b, states[s as usize]), now);
                        }
                        Op::Started(r, k) => {
                            session += 1;
                            let tag = car_id(&l, k);
                            let _ = l.session_started(&format!("R{r}"), session, tag.as_deref(), now);
                        }
                        Op::Stopped(r, e) => {
                            let robot = format!("R{r}");
                            let sid = l.robot(&robot).and_then(|x| x.car()).and_then(|c| l.car(c)).and_then(|c| c.session_id).unwrap_or(-1);
                            let _ = l.session_stopped(&robot, sid, Some((e * 1000.0) as i64), now);
                        }
                        Op::Assign(r, k) => if let Some(id) = car_id(&l, k) { let _ = l.assign(&format!("R{r}"), &id, now); },
                        Op::Release(r) => { let _ = l.release(&format!("R{r}")); }
                        Op::Tick(dt) => {
                            now += dt;
                            l.timeouts(now, 30.0);
                        }
                    }
                    l.dispatch(now);
                    check(&l, now);
                }
            }
        }
    }
}
