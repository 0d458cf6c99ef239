//! The live lot against the simulator: replays an arrival trace through a [`LiveLot`] the way
//! the platform drives one, with one simulated robot per fleet robot, and measures the cars'
//! waits with the simulator's definitions ([`crate::sim`]).
//!
//! Pure: simulated time only, no IO. The platform's side is what the API crate does around a
//! live lot: a robot's report is [`LiveLot::apply_report`] then [`LiveLot::dispatch`], and the
//! answer's task is what the robot does next; an OCPP session start or stop is
//! [`LiveLot::session_started`] / [`LiveLot::session_stopped`] then a dispatch; a car taking a
//! place is [`LiveLot::add_car`] then a dispatch; every tick runs [`LiveLot::timeouts`] and a
//! dispatch. The robots are [`Robot`]s, the physics the demo's robots run too (drive at the
//! fleet's speed, plug, charge at the lower of the robot's and the car's power keeping the drive
//! home, recharge at the dock), and, like the demo's robots, report every [`REPORT_EVERY_S`] and
//! at once after anything happened.
//!
//! One deliberate difference from a real car park: the simulator lets two cars of a trace share
//! a bay, the live lot refuses a car on a bay that holds an active one. The replay gives the live
//! lot every bay position several times over (bay `b` and `b + k * bays` are the same spot), so a
//! car that finds its bay taken parks on a copy at the same spot: the geometry stays the
//! simulator's and the difference measured is the live lot's own. [`ReplayResult::stacked`]
//! counts the cars that would have needed another bay.

use std::collections::HashMap;

use crate::DispatchError;
use crate::live::{CarState, DEFAULT_TIMEOUT_S, LiveLot, NewCar, REPORT_EVERY_S, Report, Task};
use crate::lot::{Car, Fleet, Lot, Point};
use crate::robot::{Activity, Happening, Robot, Task as RobotTask};
use crate::sim::{CarResult, Metrics, Outcome, metrics};
use crate::trace::check_cars;

/// How the platform and the robots are paced.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// Seconds between a robot's reports when nothing happens.
    pub report_every_s: f64,
    /// Seconds between the platform's ticks (timeouts and a dispatch); the API's runner ticks at
    /// most every 2 s.
    pub tick_s: f64,
    /// The robot timeout the ticks apply.
    pub timeout_s: f64,
    /// Give up this long after the last arrival: cars still active then are lost.
    pub horizon_s: f64,
}

impl Default for ReplayOptions {
    fn default() -> ReplayOptions {
        ReplayOptions {
            report_every_s: REPORT_EVERY_S,
            tick_s: 1.0,
            timeout_s: DEFAULT_TIMEOUT_S,
            horizon_s: 7.0 * 86_400.0,
        }
    }
}

/// One replay's outcome, per car in trace order as the simulator gives it.
#[derive(Debug, Clone)]
pub struct ReplayResult {
    /// Waits with the simulator's definition: arrival to the robot reaching the car (plugging is
    /// service). A car still active at the horizon is [`Outcome::Unserved`]: lost.
    pub cars: Vec<CarResult>,
    pub metrics: Metrics,
    /// The live lot's own wait per served car: arrival to the session start
    /// ([`crate::live::LiveCar::wait_s`]), so plugging included.
    pub lot_wait_s: Vec<f64>,
    /// The lowest battery any robot had, before any clamping.
    pub min_battery_kwh: f64,
    /// Sessions a robot stopped short because its battery ran down to the drive home.
    pub short_sessions: usize,
    /// Cars that found their bay holding an active car and parked on a copy of it.
    pub stacked: usize,
    pub reports: usize,
    /// Reports or car additions the live lot refused (none expected).
    pub refused: usize,
    pub sessions: usize,
    pub end_s: f64,
}

impl ReplayResult {
    /// Cars neither served nor abandoned.
    pub fn lost(&self) -> usize {
        self.metrics.unserved
    }
}

// ---------------------------------------------------------------------------------------------
// The replay.

#[derive(Debug, Clone)]
struct CarTrack {
    id: String,
    wait: f64,
    wait_since: Option<f64>,
    delivered: f64,
    outcome: Option<Outcome>,
    started_s: Option<f64>,
}

struct Replay<'a> {
    fleet: &'a Fleet,
    dock: Point,
    opts: &'a ReplayOptions,
    live: LiveLot,
    ids: Vec<String>,
    vehicles: Vec<Robot>,
    /// The open session of each robot: (session id, car).
    open: Vec<Option<(i64, String)>>,
    tracks: Vec<CarTrack>,
    by_id: HashMap<String, usize>,
    next_session: i64,
    reports: usize,
    refused: usize,
    sessions: usize,
    short_sessions: usize,
    end_s: f64,
}

impl Replay<'_> {
    /// Brings the per-car record in step with the live lot after a platform call at `now`.
    fn sync(&mut self, now: f64) {
        for c in &self.live.cars {
            let Some(&k) = self.by_id.get(&c.id) else {
                continue;
            };
            let t = &mut self.tracks[k];
            if t.outcome.is_some() {
                continue;
            }
            match c.state {
                CarState::Waiting => {
                    if t.wait_since.is_none() {
                        t.wait_since = Some(now);
                    }
                }
                CarState::Served => {
                    t.outcome = Some(Outcome::Served {
                        robot: 0,
                        done_s: c.served_s.unwrap_or(now),
                    });
                    t.started_s = c.started_s;
                    self.end_s = self.end_s.max(now);
                }
                CarState::Left | CarState::Cancelled => {
                    let at = c.ended_s.unwrap_or(now);
                    if let Some(s) = t.wait_since.take() {
                        t.wait += at - s;
                    }
                    t.outcome = Some(Outcome::Abandoned { at_s: at });
                    self.end_s = self.end_s.max(now);
                }
                CarState::Assigned | CarState::Charging => {}
            }
        }
    }

    fn dispatch(&mut self, now: f64) {
        self.live.dispatch(now);
        self.sync(now);
    }

    /// Tells the platform what robot `i` did at `at` (the robot's OCPP side).
    fn tell(&mut self, i: usize, h: Happening, at: f64) {
        match h {
            Happening::AtCar { car } => {
                if let Some(&k) = self.by_id.get(&car) {
                    let t = &mut self.tracks[k];
                    if let Some(s) = t.wait_since.take() {
                        t.wait += at - s;
                    }
                }
            }
            Happening::PluggedIn { car, .. } => {
                self.next_session += 1;
                let sid = self.next_session;
                let tag: String = car.chars().take(crate::live::ID_TAG_CHARS).collect();
                self.open[i] = Some((sid, car));
                self.sessions += 1;
                self.live.session_started(&self.ids[i], sid, Some(&tag), at);
                self.sync(at);
                self.dispatch(at);
            }
            Happening::Unplugged {
                car,
                given_kwh,
                full,
                ..
            } => {
                if !full {
                    self.short_sessions += 1;
                }
                if let Some(&k) = self.by_id.get(&car) {
                    self.tracks[k].delivered += given_kwh;
                }
                if let Some((sid, open_car)) = self.open[i].take()
                    && open_car == car
                {
                    // The meter register counts whole watt-hours, as StopTransaction's meterStop.
                    let wh = (given_kwh * 1000.0).round() as i64;
                    self.live.session_stopped(&self.ids[i], sid, Some(wh), at);
                    self.sync(at);
                    if let Some(&k) = self.by_id.get(&car)
                        && let Some(Outcome::Served { robot, .. }) = &mut self.tracks[k].outcome
                    {
                        *robot = i;
                    }
                    self.dispatch(at);
                }
            }
            Happening::Docked => {}
        }
    }

    /// Robot `i` reports; the platform applies it, dispatches and answers with the task.
    fn report(&mut self, i: usize, now: f64) {
        let v = &self.vehicles[i];
        let (state, car) = v.reported();
        let report = Report {
            x: v.pos.x,
            y: v.pos.y,
            battery_kwh: v.battery_kwh.clamp(0.0, self.fleet.robot_kwh),
            state,
            car: car.map(str::to_owned),
        };
        self.reports += 1;
        if self.live.apply_report(&self.ids[i], &report, now).is_err() {
            self.refused += 1;
            return;
        }
        self.sync(now);
        self.dispatch(now);
        // The task as the answer gives it, and the power the robot looks up for the car.
        let (task, power_kw) = match self.live.robot(&self.ids[i]).map(|r| r.task.clone()) {
            Some(Task::Car { car }) => match self.live.car(&car) {
                Some(c) => (
                    RobotTask::Car {
                        at: self.live.lot.bay(c.bay).unwrap_or(self.dock),
                        energy_kwh: c.remaining_kwh,
                        car,
                    },
                    self.fleet.power_kw(c.max_power_kw),
                ),
                None => (RobotTask::Stay, 0.0),
            },
            Some(Task::Dock) => (RobotTask::Dock { at: self.dock }, 0.0),
            Some(Task::Stay) | None => (RobotTask::Stay, 0.0),
        };
        // A task without energy is unreadable to a robot, which then stays.
        let task = match task {
            RobotTask::Car { energy_kwh, .. } if energy_kwh <= 0.0 => RobotTask::Stay,
            t => t,
        };
        for h in self.vehicles[i].take(task, power_kw) {
            self.tell(i, h, now);
        }
    }
}

/// A robot standing at the dock with `battery_kwh`.
fn docked(dock: Point, battery_kwh: f64) -> Robot {
    let mut robot = Robot::new(dock, battery_kwh, 0);
    robot.activity = Activity::Docked;
    robot
}

/// Replays `cars` (sorted by arrival) through a live lot of `fleet.robots` simulated robots.
/// Robots start at the dock, full, and report at the first arrival.
pub fn replay(
    lot: &Lot,
    fleet: &Fleet,
    cars: &[Car],
    opts: &ReplayOptions,
) -> Result<ReplayResult, DispatchError> {
    lot.check()?;
    fleet.check()?;
    check_cars(cars, lot, fleet)?;
    if cars.windows(2).any(|w| w[1].arrival_s < w[0].arrival_s) {
        return Err(DispatchError::Car {
            car: 0,
            arrival_s: 0.0,
            message: "cars must be sorted by arrival".into(),
        });
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !(positive(opts.report_every_s)
        && positive(opts.tick_s)
        && positive(opts.timeout_s)
        && positive(opts.horizon_s))
    {
        return Err(DispatchError::Fleet(
            "replay intervals must be finite and above 0".into(),
        ));
    }
    let n = lot.bays.len();
    // Copies of every bay position: as many as the most cars any one bay gets in the trace.
    let mut per_bay = vec![0usize; n];
    for c in cars {
        per_bay[c.bay] += 1;
    }
    let copies = per_bay
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .clamp(1, (crate::live::MAX_BAYS / n).max(1));
    let stacked_lot = Lot {
        bays: (0..copies).flat_map(|_| lot.bays.iter().copied()).collect(),
        dock: lot.dock,
    };
    let ids: Vec<String> = (0..fleet.robots).map(|i| format!("R{i:02}")).collect();
    let live = LiveLot::new(stacked_lot, fleet.clone(), &ids)
        .map_err(|e| DispatchError::Lot(e.to_string()))?;
    let t0 = cars.first().map_or(0.0, |c| c.arrival_s);
    let mut r = Replay {
        fleet,
        dock: lot.dock,
        opts,
        live,
        vehicles: vec![docked(lot.dock, fleet.robot_kwh); fleet.robots],
        open: vec![None; fleet.robots],
        ids,
        tracks: cars
            .iter()
            .enumerate()
            .map(|(k, _)| CarTrack {
                id: format!("car-{k:05}"),
                wait: 0.0,
                wait_since: None,
                delivered: 0.0,
                outcome: None,
                started_s: None,
            })
            .collect(),
        by_id: HashMap::new(),
        next_session: 0,
        reports: 0,
        refused: 0,
        sessions: 0,
        short_sessions: 0,
        end_s: t0,
    };
    for (k, t) in r.tracks.iter().enumerate() {
        r.by_id.insert(t.id.clone(), k);
    }
    let robots = fleet.robots;
    let every = r.opts.report_every_s;
    let mut next_report: Vec<f64> = (0..robots)
        .map(|i| t0 + every * (i + 1) as f64 / robots as f64)
        .collect();
    for i in 0..robots {
        r.report(i, t0);
    }
    let mut next_tick = t0 + r.opts.tick_s;
    let mut next_car = 0usize;
    let mut occupied: Vec<Option<usize>> = vec![None; copies * n];
    let mut stacked = 0usize;
    let last_arrival = cars.last().map_or(t0, |c| c.arrival_s);
    let give_up = last_arrival + r.opts.horizon_s;
    let mut now = t0;
    let mut ended = 0usize;
    loop {
        ended = ended.max(r.tracks.iter().filter(|t| t.outcome.is_some()).count());
        if next_car == cars.len() && ended == cars.len() {
            break;
        }
        let mut t = next_tick.min(next_report.iter().copied().fold(f64::INFINITY, f64::min));
        if let Some(c) = cars.get(next_car) {
            t = t.min(c.arrival_s);
        }
        for v in &r.vehicles {
            if let Some(s) = v.next_happening_s(fleet, lot.dock) {
                t = t.min(now + s);
            }
        }
        // A phase of no length (a robot sent to the spot it stands on) still takes a step.
        let t = t.max(now + 1e-6);
        if t > give_up {
            break;
        }
        let mut happened: Vec<(f64, usize, Happening)> = Vec::new();
        for (i, v) in r.vehicles.iter_mut().enumerate() {
            for (after, h) in v.advance(t - now, fleet, lot.dock) {
                happened.push((now + after, i, h));
            }
        }
        now = t;
        happened.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut changed = vec![false; robots];
        for (at, i, h) in happened {
            changed[i] = true;
            r.tell(i, h, at.min(now));
        }
        // Cars taking a place.
        while let Some(c) = cars.get(next_car).filter(|c| c.arrival_s <= now) {
            let k = next_car;
            next_car += 1;
            // Bays freed by cars that ended.
            for slot in occupied.iter_mut() {
                if slot.is_some_and(|o| r.tracks[o].outcome.is_some()) {
                    *slot = None;
                }
            }
            let Some(copy) = (0..copies).find(|j| occupied[j * n + c.bay].is_none()) else {
                // Never with as many copies as the bay's cars in the trace.
                r.refused += 1;
                r.tracks[k].outcome = Some(Outcome::Unserved);
                continue;
            };
            if copy > 0 {
                stacked += 1;
            }
            let live_bay = copy * n + c.bay;
            occupied[live_bay] = Some(k);
            r.tracks[k].wait_since = Some(c.arrival_s);
            let added = r.live.add_car(
                NewCar {
                    id: r.tracks[k].id.clone(),
                    bay: live_bay,
                    energy_kwh: c.energy_kwh,
                    max_power_kw: c.max_power_kw,
                    plate: None,
                    patience_s: c.patience_s,
                },
                c.arrival_s,
            );
            if added.is_err() {
                r.refused += 1;
                r.tracks[k].wait_since = None;
                r.tracks[k].outcome = Some(Outcome::Unserved);
                continue;
            }
            r.dispatch(now);
        }
        for i in 0..robots {
            if changed[i] || next_report[i] <= now {
                r.report(i, now);
                next_report[i] = now + every;
            }
        }
        if next_tick <= now {
            r.live.timeouts(now, r.opts.timeout_s);
            r.sync(now);
            r.dispatch(now);
            next_tick = now + r.opts.tick_s;
        }
    }
    let end_s = r.end_s;
    let out: Vec<CarResult> = r
        .tracks
        .iter()
        .map(|t| CarResult {
            wait_s: t.wait + t.wait_since.map_or(0.0, |s| (now - s).max(0.0)),
            delivered_kwh: t.delivered,
            outcome: t.outcome.unwrap_or(Outcome::Unserved),
        })
        .collect();
    let lot_wait_s: Vec<f64> = r
        .tracks
        .iter()
        .zip(cars)
        .filter_map(|(t, c)| match t.outcome {
            Some(Outcome::Served { .. }) => t.started_s.map(|s| s - c.arrival_s),
            _ => None,
        })
        .collect();
    let serving: f64 = r.vehicles.iter().map(Robot::serving_s).sum();
    let util = serving / (robots as f64 * (end_s - t0).max(1e-9));
    Ok(ReplayResult {
        metrics: metrics(&out, util),
        cars: out,
        lot_wait_s,
        min_battery_kwh: r
            .vehicles
            .iter()
            .map(Robot::min_battery_kwh)
            .fold(fleet.robot_kwh, f64::min),
        short_sessions: r.short_sessions,
        stacked,
        reports: r.reports,
        refused: r.refused,
        sessions: r.sessions,
        end_s,
    })
}

/// The simulator's chargeops and the live replay on the same traces, cars pooled.
#[derive(Debug, Clone)]
pub struct LiveComparison {
    pub traces: usize,
    pub simulator: Metrics,
    pub live: Metrics,
    /// The live lot's own mean wait (to the session start, plugging included), served cars.
    pub lot_mean_wait_s: f64,
    pub min_battery_kwh: f64,
    pub short_sessions: usize,
    pub stacked: usize,
    pub refused: usize,
    pub reports: usize,
    pub sessions: usize,
}

impl LiveComparison {
    /// Live over simulator, or `None` when the simulator's value is 0.
    pub fn ratio(live: f64, sim: f64) -> Option<f64> {
        (sim > 0.0).then(|| live / sim)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let s = &self.simulator;
        let l = &self.live;
        serde_json::json!({
            "traces": self.traces,
            "simulator": serde_json::to_value(s).unwrap_or_default(),
            "live_lot": serde_json::to_value(l).unwrap_or_default(),
            "ratio": {
                "mean_wait": Self::ratio(l.mean_wait_s, s.mean_wait_s),
                "p95_wait": Self::ratio(l.p95_wait_s, s.p95_wait_s),
                "max_wait": Self::ratio(l.max_wait_s, s.max_wait_s),
            },
            "lot_mean_wait_s": self.lot_mean_wait_s,
            "min_battery_kwh": self.min_battery_kwh,
            "short_sessions": self.short_sessions,
            "stacked_cars": self.stacked,
            "refused": self.refused,
            "reports": self.reports,
            "sessions": self.sessions,
        })
    }
}

/// Runs the simulator's chargeops and the live replay on every trace; `progress` is called
/// after each trace.
pub fn compare_live(
    lot: &Lot,
    fleet: &Fleet,
    traces: &[Vec<Car>],
    opts: &ReplayOptions,
    mut progress: impl FnMut(),
) -> Result<LiveComparison, DispatchError> {
    let mut sim_cars = Vec::new();
    let mut live_cars = Vec::new();
    let (mut sim_util, mut live_util) = (0.0, 0.0);
    let mut lot_waits = Vec::new();
    let mut out = LiveComparison {
        traces: traces.len(),
        simulator: metrics(&[], 0.0),
        live: metrics(&[], 0.0),
        lot_mean_wait_s: 0.0,
        min_battery_kwh: fleet.robot_kwh,
        short_sessions: 0,
        stacked: 0,
        refused: 0,
        reports: 0,
        sessions: 0,
    };
    for t in traces {
        let s = crate::sim::simulate(
            lot,
            fleet,
            t,
            &mut crate::policy::Chargeops::default(),
            &crate::sim::SimOptions::default(),
        )?;
        sim_util += s.metrics.robot_utilisation;
        sim_cars.extend(s.cars);
        let r = replay(lot, fleet, t, opts)?;
        live_util += r.metrics.robot_utilisation;
        live_cars.extend(r.cars);
        lot_waits.extend(r.lot_wait_s);
        out.min_battery_kwh = out.min_battery_kwh.min(r.min_battery_kwh);
        out.short_sessions += r.short_sessions;
        out.stacked += r.stacked;
        out.refused += r.refused;
        out.reports += r.reports;
        out.sessions += r.sessions;
        progress();
    }
    let n = traces.len().max(1) as f64;
    out.simulator = metrics(&sim_cars, sim_util / n);
    out.live = metrics(&live_cars, live_util / n);
    out.lot_mean_wait_s = if lot_waits.is_empty() {
        0.0
    } else {
        lot_waits.iter().sum::<f64>() / lot_waits.len() as f64
    };
    Ok(out)
}
