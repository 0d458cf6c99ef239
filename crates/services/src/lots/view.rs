//! What staff, drivers and robots see of a lot: views of the state machine's lot, cars, robots
//! and tasks, in seconds and metres rounded to the millimetre, times in RFC 3339 (ms, UTC).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use chargeops_dispatch::live::{self, LiveCar, LiveLot, Reported, Robot, Task};
use chargeops_dispatch::{Fleet, Point};

fn rfc3339(secs: f64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_micros((secs * 1e6).round() as i64)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn point(p: &Point) -> Point {
    Point::new(round3(p.x), round3(p.y))
}

/// What a robot is told to do.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskView {
    /// Stay where it is.
    Stay,
    /// Drive to the dock and recharge.
    Dock { x: f64, y: f64 },
    /// Drive to the car in `bay` and give it `energy_kwh`.
    Car {
        car: String,
        bay: usize,
        x: f64,
        y: f64,
        energy_kwh: f64,
    },
}

/// A robot of the lot, as staff see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RobotView {
    /// Its charger id.
    pub id: String,
    pub x: f64,
    pub y: f64,
    pub battery_kwh: f64,
    pub battery_pct: f64,
    /// idle, to_car, charging, to_dock, docked or offline.
    pub state: &'static str,
    /// What the robot itself last said: idle, driving, charging, docked or fault.
    pub reported_state: &'static str,
    pub last_report_at: Option<String>,
    pub task: TaskView,
    /// Sent to its car by hand: the dispatcher leaves it alone until released.
    #[serde(rename = "override")]
    pub pinned: bool,
    pub online: bool,
    pub fault: bool,
}

/// A car in a bay, as its driver (and staff) see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CarView {
    /// Unguessable: knowing it is the capability to follow and cancel the car.
    pub id: String,
    pub station_id: String,
    pub bay: usize,
    pub x: Option<f64>,
    pub y: Option<f64>,
    pub plate: Option<String>,
    pub energy_kwh: f64,
    pub remaining_kwh: f64,
    pub max_power_kw: f64,
    pub patience_s: Option<f64>,
    pub arrived_at: Option<String>,
    /// waiting, assigned, charging, served, cancelled or gave_up.
    pub state: &'static str,
    pub robot: Option<String>,
    pub wait_s: f64,
    pub served_at: Option<String>,
    pub ended_at: Option<String>,
}

/// Counts over a lot's cars and robots.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LotStats {
    pub waiting: usize,
    pub assigned: usize,
    pub charging: usize,
    pub served: u64,
    pub mean_wait_s: f64,
    pub robots_online: usize,
}

/// A lot, live: layout, fleet, robots, cars (active ones in arrival order, then the ended
/// ones, newest first).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LotView {
    pub station_id: String,
    pub now: Option<String>,
    /// Index = bay number, from 0.
    pub bays: Vec<Point>,
    pub dock: Point,
    pub fleet: Fleet,
    pub max_car_kwh: f64,
    pub robot_timeout_s: f64,
    pub robots: Vec<RobotView>,
    pub cars: Vec<CarView>,
    pub stats: LotStats,
}

/// What a robot hears back from its report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RobotAnswer {
    pub task: TaskView,
    pub report_every_s: u64,
    pub station_id: String,
    pub state: &'static str,
    #[serde(rename = "override")]
    pub pinned: bool,
}

pub(super) fn task_view(l: &LiveLot, task: &Task) -> TaskView {
    match task {
        Task::Stay => TaskView::Stay,
        Task::Dock => TaskView::Dock {
            x: round3(l.lot.dock.x),
            y: round3(l.lot.dock.y),
        },
        Task::Car { car } => match l.car(car) {
            Some(c) => {
                let p = l.lot.bay(c.bay).unwrap_or(l.lot.dock);
                TaskView::Car {
                    car: c.id.clone(),
                    bay: c.bay,
                    x: round3(p.x),
                    y: round3(p.y),
                    energy_kwh: round3(c.remaining_kwh),
                }
            }
            None => TaskView::Stay,
        },
    }
}

fn robot_view(l: &LiveLot, r: &Robot, now: f64) -> RobotView {
    let battery = l.battery_at(r, now);
    RobotView {
        id: r.id.clone(),
        x: round3(r.pos.x),
        y: round3(r.pos.y),
        battery_kwh: round3(battery),
        battery_pct: round3(battery / l.fleet.robot_kwh * 100.0),
        state: l.robot_state(r).as_str(),
        reported_state: r.reported.as_str(),
        last_report_at: r.last_report_s.and_then(rfc3339),
        task: task_view(l, &r.task),
        pinned: r.pinned,
        online: r.online,
        fault: r.online && r.reported == Reported::Fault,
    }
}

pub(super) fn car_view(station: &str, l: &LiveLot, c: &LiveCar, now: f64) -> CarView {
    let p = l.lot.bay(c.bay);
    CarView {
        id: c.id.clone(),
        station_id: station.to_owned(),
        bay: c.bay,
        x: p.map(|p| round3(p.x)),
        y: p.map(|p| round3(p.y)),
        plate: c.plate.clone(),
        energy_kwh: round3(c.energy_kwh),
        remaining_kwh: round3(c.remaining_kwh),
        max_power_kw: round3(c.max_power_kw),
        patience_s: c.patience_s,
        arrived_at: rfc3339(c.arrival_s),
        state: c.state.as_str(),
        robot: c.robot.clone(),
        wait_s: round3(c.wait_s(now)),
        served_at: c.served_s.and_then(rfc3339),
        ended_at: c.ended_s.and_then(rfc3339),
    }
}

pub(super) fn lot_view(station: &str, l: &LiveLot, now: f64, timeout_s: f64) -> LotView {
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
    LotView {
        station_id: station.to_owned(),
        now: rfc3339(now),
        bays: l.lot.bays.iter().map(point).collect(),
        dock: point(&l.lot.dock),
        fleet: l.fleet.clone(),
        max_car_kwh: round3(l.max_car_kwh()),
        robot_timeout_s: timeout_s,
        robots: l.robots.iter().map(|r| robot_view(l, r, now)).collect(),
        cars: cars.iter().map(|c| car_view(station, l, c, now)).collect(),
        stats: LotStats {
            waiting: count(live::CarState::Waiting),
            assigned: count(live::CarState::Assigned),
            charging: count(live::CarState::Charging),
            served: l.served_total,
            mean_wait_s: round3(mean_wait),
            robots_online: l.robots.iter().filter(|r| r.online).count(),
        },
    }
}
