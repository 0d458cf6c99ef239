//! The discrete-event simulator of one lot: cars arrive, a policy sends robots, robots drive,
//! plug, charge, drive back and recharge at the dock. Battery accounting is exact: driving costs
//! `drive_kwh_per_km`, a car takes what it asked, the dock gives `dock_kw` up to full, and the
//! simulator refuses any assignment that breaks the battery rule ([`Fleet::required_kwh`]).
//!
//! Waiting time is from a car's arrival to the moment its robot reaches it (plugging is
//! service). A driver with a patience leaves if no robot has been sent by then. A robot that
//! stops reporting (a [`Fault`]) drops its car back into the pool with the energy still owed;
//! that car keeps its place (its arrival time) and no longer leaves for impatience.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::Serialize;

use crate::DispatchError;
use crate::lot::{Car, Fleet, Lot, Point};
use crate::policy::{Action, CarView, Policy, RobotStatus, RobotView, View};
use crate::trace::check_cars;

/// A robot that stops reporting at `at_s` and, if `back_s` is set, reports again then, where it
/// stopped, with the battery it had.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    pub robot: usize,
    pub at_s: f64,
    pub back_s: Option<f64>,
}

/// A staff override: send `robot` to `car` at `at_s`. Applied only if it passes
/// [`View::check_assignment`]; otherwise recorded in [`SimResult::rejected`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Override {
    pub at_s: f64,
    pub robot: usize,
    pub car: usize,
}

#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    pub faults: Vec<Fault>,
    pub overrides: Vec<Override>,
    /// Keep every decision in [`SimResult::decisions`].
    pub record: bool,
}

/// How a car's visit ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Served {
        robot: usize,
        done_s: f64,
    },
    Abandoned {
        at_s: f64,
    },
    /// Still waiting when nothing more could happen (every robot offline).
    Unserved,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarResult {
    pub wait_s: f64,
    pub delivered_kwh: f64,
    pub outcome: Outcome,
}

/// The benchmark's per-policy numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Over served cars.
    pub mean_wait_s: f64,
    pub p95_wait_s: f64,
    pub max_wait_s: f64,
    pub served: usize,
    pub abandoned: usize,
    pub unserved: usize,
    /// Delivered to cars.
    pub energy_kwh: f64,
    /// Share of the fleet's time, from the first arrival to the last car done, spent plugging
    /// and charging cars.
    pub robot_utilisation: f64,
}

#[derive(Debug, Clone)]
pub struct SimResult {
    pub cars: Vec<CarResult>,
    pub metrics: Metrics,
    /// (time, action) of every decision applied, when recorded.
    pub decisions: Vec<(f64, Action)>,
    /// Overrides refused, with the reason.
    pub rejected: Vec<String>,
    /// The lowest battery any robot had at any event.
    pub min_battery_kwh: f64,
    /// Fleet robot-seconds: plugging and charging cars, driving, at the dock recharging, at the
    /// dock (charging or full).
    pub serving_s: f64,
    pub driving_s: f64,
    pub recharging_s: f64,
    pub docked_s: f64,
    pub end_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum St {
    Idle,
    ToDock {
        from: Point,
        t0: f64,
        arrive: f64,
    },
    Docked,
    ToCar {
        car: usize,
        from: Point,
        to: Point,
        t0: f64,
        arrive: f64,
    },
    Serving {
        car: usize,
        start: f64,
        charge_start: f64,
        end: f64,
        kw: f64,
    },
    Offline,
}

#[derive(Debug, Clone)]
struct Robot {
    st: St,
    /// Position and battery at `t_ref` (for moving and docked robots, the state's start).
    pos: Point,
    battery: f64,
    t_ref: f64,
    epoch: u64,
    serving_s: f64,
    driving_s: f64,
    charging_s: f64,
    docked_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CarSt {
    NotYet,
    Waiting,
    Assigned,
    Done,
}

#[derive(Debug, Clone)]
struct CarRun {
    st: CarSt,
    remaining: f64,
    delivered: f64,
    wait: f64,
    wait_since: Option<f64>,
    patient: bool,
    outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Arrival(usize),
    Abandon(usize),
    AtCar(usize, u64),
    Done(usize, u64),
    AtDock(usize, u64),
    Recheck,
    Fault(usize),
    Back(usize),
    Override(usize),
}

#[derive(Debug, Clone, Copy)]
struct Timed {
    t: f64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Timed {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timed {
    // Reversed: BinaryHeap is a max-heap and we want the earliest event.
    fn cmp(&self, o: &Self) -> Ordering {
        o.t.total_cmp(&self.t).then(o.seq.cmp(&self.seq))
    }
}

struct Sim<'a> {
    lot: &'a Lot,
    fleet: &'a Fleet,
    cars: &'a [Car],
    opts: &'a SimOptions,
    robots: Vec<Robot>,
    runs: Vec<CarRun>,
    waiting: Vec<usize>,
    heap: BinaryHeap<Timed>,
    seq: u64,
    next_recheck: f64,
    decisions: Vec<(f64, Action)>,
    rejected: Vec<String>,
    min_battery: f64,
}

impl Sim<'_> {
    fn push(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Timed {
            t,
            seq: self.seq,
            ev,
        });
    }

    fn bay(&self, car: usize) -> Point {
        self.lot.bay(self.cars[car].bay).unwrap_or(self.lot.dock)
    }

    /// Position and battery of robot `i` at `t`, without changing it.
    fn robot_at(&self, i: usize, t: f64) -> (Point, f64) {
        let r = &self.robots[i];
        match r.st {
            St::ToDock { from, t0, arrive } => {
                let f = if arrive > t0 {
                    (t - t0) / (arrive - t0)
                } else {
                    1.0
                };
                let p = from.lerp(self.lot.dock, f);
                (p, r.battery - self.fleet.drive_kwh(from, p))
            }
            St::ToCar {
                from,
                to,
                t0,
                arrive,
                ..
            } => {
                let f = if arrive > t0 {
                    (t - t0) / (arrive - t0)
                } else {
                    1.0
                };
                let p = from.lerp(to, f);
                (p, r.battery - self.fleet.drive_kwh(from, p))
            }
            St::Docked => (
                r.pos,
                (r.battery + self.fleet.dock_kw * (t - r.t_ref) / 3600.0)
                    .min(self.fleet.robot_kwh)
                    .max(r.battery),
            ),
            St::Serving {
                charge_start, kw, ..
            } => {
                let given = (kw * (t - charge_start).max(0.0) / 3600.0).max(0.0);
                (r.pos, r.battery - given)
            }
            St::Idle | St::Offline => (r.pos, r.battery),
        }
    }

    /// Brings robot `i`'s position and battery up to `t` (before changing its state).
    fn settle(&mut self, i: usize, t: f64) {
        let (p, b) = self.robot_at(i, t);
        let dock_kw = self.fleet.dock_kw;
        let r = &mut self.robots[i];
        match r.st {
            St::Docked => {
                r.docked_s += t - r.t_ref;
                r.charging_s += (b - r.battery) / dock_kw * 3600.0;
            }
            St::ToDock { .. } | St::ToCar { .. } => r.driving_s += t - r.t_ref,
            _ => {}
        }
        r.pos = p;
        r.battery = b;
        r.t_ref = t;
        self.min_battery = self.min_battery.min(b);
    }

    fn view_robots(&self, now: f64) -> Vec<RobotView> {
        (0..self.robots.len())
            .map(|i| {
                let (pos, battery_kwh) = self.robot_at(i, now);
                let status = match self.robots[i].st {
                    St::Idle => RobotStatus::Idle,
                    St::ToDock { .. } => RobotStatus::ToDock,
                    St::Docked => RobotStatus::Docked,
                    St::ToCar { car, arrive, .. } => RobotStatus::Busy {
                        car,
                        free_at: arrive
                            + self
                                .fleet
                                .service_s(self.runs[car].remaining, self.cars[car].max_power_kw),
                    },
                    St::Serving { car, end, .. } => RobotStatus::Busy { car, free_at: end },
                    St::Offline => RobotStatus::Offline,
                };
                RobotView {
                    id: i,
                    pos,
                    battery_kwh,
                    status,
                }
            })
            .collect()
    }

    fn view_cars(&self) -> Vec<CarView> {
        self.waiting
            .iter()
            .map(|&c| CarView {
                id: c,
                arrival_s: self.cars[c].arrival_s,
                bay: self.cars[c].bay,
                energy_kwh: self.runs[c].remaining,
                max_power_kw: self.cars[c].max_power_kw,
            })
            .collect()
    }

    fn unwait(&mut self, car: usize) {
        self.waiting.retain(|&c| c != car);
    }

    fn requeue(&mut self, car: usize) {
        let run = &mut self.runs[car];
        run.st = CarSt::Waiting;
        run.patient = false;
        let a = self.cars[car].arrival_s;
        let at = self
            .waiting
            .partition_point(|&c| (self.cars[c].arrival_s, c) < (a, car));
        self.waiting.insert(at, car);
    }

    fn apply(&mut self, now: f64, action: Action) -> Result<(), DispatchError> {
        match action {
            Action::Assign { robot, car } => {
                let robots = self.view_robots(now);
                let cars = self.view_cars();
                let view = View {
                    now,
                    lot: self.lot,
                    fleet: self.fleet,
                    robots: &robots,
                    waiting: &cars,
                };
                view.check_assignment(robot, car)?;
                self.settle(robot, now);
                let from = self.robots[robot].pos;
                let to = self.bay(car);
                let arrive = now + self.fleet.travel_s(from, to);
                let r = &mut self.robots[robot];
                r.st = St::ToCar {
                    car,
                    from,
                    to,
                    t0: now,
                    arrive,
                };
                r.epoch += 1;
                let epoch = r.epoch;
                self.runs[car].st = CarSt::Assigned;
                self.unwait(car);
                self.push(arrive, Ev::AtCar(robot, epoch));
            }
            Action::ToDock { robot } => {
                let st = self.robots.get(robot).map(|r| r.st).ok_or_else(|| {
                    DispatchError::Assignment {
                        robot,
                        car: usize::MAX,
                        reason: "no such robot".into(),
                    }
                })?;
                match st {
                    St::Idle => {
                        self.settle(robot, now);
                        let from = self.robots[robot].pos;
                        let arrive = now + self.fleet.travel_s(from, self.lot.dock);
                        let r = &mut self.robots[robot];
                        r.st = St::ToDock {
                            from,
                            t0: now,
                            arrive,
                        };
                        r.epoch += 1;
                        let epoch = r.epoch;
                        self.push(arrive, Ev::AtDock(robot, epoch));
                    }
                    St::ToDock { .. } | St::Docked => {}
                    _ => {
                        return Err(DispatchError::Assignment {
                            robot,
                            car: usize::MAX,
                            reason: "sent to the dock while busy or offline".into(),
                        });
                    }
                }
            }
        }
        if self.opts.record {
            self.decisions.push((now, action));
        }
        Ok(())
    }

    fn handle(&mut self, now: f64, ev: Ev) {
        match ev {
            Ev::Arrival(c) => {
                self.runs[c].st = CarSt::Waiting;
                self.runs[c].wait_since = Some(now);
                self.waiting.push(c);
                if let Some(p) = self.cars[c].patience_s {
                    self.push(now + p, Ev::Abandon(c));
                }
            }
            Ev::Abandon(c) => {
                let run = &mut self.runs[c];
                if run.st == CarSt::Waiting && run.patient {
                    run.st = CarSt::Done;
                    run.wait += now - run.wait_since.take().unwrap_or(now);
                    run.outcome = Outcome::Abandoned { at_s: now };
                    self.unwait(c);
                }
            }
            Ev::AtCar(i, epoch) if self.robots[i].epoch == epoch => {
                self.settle(i, now);
                let St::ToCar { car, .. } = self.robots[i].st else {
                    return;
                };
                let run = &mut self.runs[car];
                run.wait += now - run.wait_since.take().unwrap_or(now);
                let kw = self.fleet.power_kw(self.cars[car].max_power_kw);
                let end = now
                    + self
                        .fleet
                        .service_s(run.remaining, self.cars[car].max_power_kw);
                let r = &mut self.robots[i];
                r.st = St::Serving {
                    car,
                    start: now,
                    charge_start: now + self.fleet.plug_s,
                    end,
                    kw,
                };
                r.t_ref = now;
                self.push(end, Ev::Done(i, epoch));
            }
            Ev::Done(i, epoch) if self.robots[i].epoch == epoch => {
                let St::Serving { car, start, .. } = self.robots[i].st else {
                    return;
                };
                let run = &mut self.runs[car];
                let r = &mut self.robots[i];
                r.battery -= run.remaining;
                r.serving_s += now - start;
                r.st = St::Idle;
                r.t_ref = now;
                self.min_battery = self.min_battery.min(r.battery);
                run.delivered += run.remaining;
                run.remaining = 0.0;
                run.st = CarSt::Done;
                run.outcome = Outcome::Served {
                    robot: i,
                    done_s: now,
                };
            }
            Ev::AtDock(i, epoch) if self.robots[i].epoch == epoch => {
                self.settle(i, now);
                let r = &mut self.robots[i];
                r.pos = self.lot.dock;
                r.st = St::Docked;
            }
            Ev::AtCar(..) | Ev::Done(..) | Ev::AtDock(..) | Ev::Recheck => {}
            Ev::Fault(k) => self.fault(now, k),
            Ev::Back(i) => {
                if self.robots[i].st == St::Offline {
                    let r = &mut self.robots[i];
                    r.t_ref = now;
                    r.st = if r.pos.dist(self.lot.dock) < 1e-9 {
                        St::Docked
                    } else {
                        St::Idle
                    };
                }
            }
            Ev::Override(k) => {
                let o = self.opts.overrides[k].clone();
                if let Err(e) = self.apply(
                    now,
                    Action::Assign {
                        robot: o.robot,
                        car: o.car,
                    },
                ) {
                    self.rejected.push(format!("at {now:.0} s: {e}"));
                }
            }
        }
    }

    fn fault(&mut self, now: f64, k: usize) {
        let i = self.opts.faults[k].robot;
        if i >= self.robots.len() || self.robots[i].st == St::Offline {
            return;
        }
        let st = self.robots[i].st;
        self.settle(i, now);
        match st {
            St::ToCar { car, .. } => self.requeue(car),
            St::Serving {
                car,
                start,
                charge_start,
                kw,
                ..
            } => {
                let given = (kw * (now - charge_start).max(0.0) / 3600.0)
                    .min(self.runs[car].remaining)
                    .max(0.0);
                // `settle` already took `given` off the battery.
                self.robots[i].serving_s += now - start;
                let run = &mut self.runs[car];
                run.remaining -= given;
                run.delivered += given;
                if run.remaining <= 1e-9 {
                    run.remaining = 0.0;
                    run.st = CarSt::Done;
                    run.outcome = Outcome::Served {
                        robot: i,
                        done_s: now,
                    };
                } else {
                    run.wait_since = Some(now);
                    self.requeue(car);
                }
            }
            _ => {}
        }
        let r = &mut self.robots[i];
        r.st = St::Offline;
        r.epoch += 1;
        if let Some(b) = self.opts.faults[k].back_s {
            self.push(b.max(now), Ev::Back(i));
        }
    }

    /// When a docked robot will first cover a waiting car it cannot cover now: the policy must
    /// then be asked again even if nothing else happens.
    fn schedule_recheck(&mut self, now: f64, wake: Option<f64>) {
        let mut next = wake.filter(|&t| t > now).unwrap_or(f64::INFINITY);
        for (i, r) in self.robots.iter().enumerate() {
            if r.st != St::Docked {
                continue;
            }
            let (_, b) = self.robot_at(i, now);
            if !self.waiting.is_empty() && b < self.fleet.robot_kwh - 1e-9 {
                // Baselines that free a docked robot only when full must hear of it.
                next =
                    next.min(now + (self.fleet.robot_kwh - b) / self.fleet.dock_kw * 3600.0 + 1e-6);
            }
            for &c in &self.waiting {
                let need = self.fleet.required_kwh(
                    self.lot,
                    self.lot.dock,
                    self.bay(c),
                    self.runs[c].remaining,
                );
                if need > b + 1e-9 && need <= self.fleet.robot_kwh {
                    next = next.min(now + (need - b) / self.fleet.dock_kw * 3600.0 + 1e-6);
                }
            }
        }
        if next.is_finite() && !(self.next_recheck > now && self.next_recheck <= next) {
            self.next_recheck = next;
            self.push(next, Ev::Recheck);
        }
    }
}

/// Replays `cars` (sorted by arrival) through `policy`. Robots start at the dock, full.
pub fn simulate(
    lot: &Lot,
    fleet: &Fleet,
    cars: &[Car],
    policy: &mut dyn Policy,
    opts: &SimOptions,
) -> Result<SimResult, DispatchError> {
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
    let mut sim = Sim {
        lot,
        fleet,
        cars,
        opts,
        robots: vec![
            Robot {
                st: St::Docked,
                pos: lot.dock,
                battery: fleet.robot_kwh,
                t_ref: cars.first().map_or(0.0, |c| c.arrival_s),
                epoch: 0,
                serving_s: 0.0,
                driving_s: 0.0,
                charging_s: 0.0,
                docked_s: 0.0,
            };
            fleet.robots
        ],
        runs: cars
            .iter()
            .map(|c| CarRun {
                st: CarSt::NotYet,
                remaining: c.energy_kwh,
                delivered: 0.0,
                wait: 0.0,
                wait_since: None,
                patient: true,
                outcome: Outcome::Unserved,
            })
            .collect(),
        waiting: Vec::new(),
        heap: BinaryHeap::new(),
        seq: 0,
        next_recheck: f64::NEG_INFINITY,
        decisions: Vec::new(),
        rejected: Vec::new(),
        min_battery: fleet.robot_kwh,
    };
    for (i, c) in cars.iter().enumerate() {
        sim.push(c.arrival_s, Ev::Arrival(i));
    }
    for (k, f) in opts.faults.iter().enumerate() {
        if !(f.at_s.is_finite() && f.at_s >= 0.0) || f.back_s.is_some_and(|b| !b.is_finite()) {
            return Err(DispatchError::Fleet(format!(
                "fault {k}: times must be finite and not negative"
            )));
        }
        sim.push(f.at_s, Ev::Fault(k));
    }
    for (k, o) in opts.overrides.iter().enumerate() {
        if !(o.at_s.is_finite() && o.at_s >= 0.0) {
            return Err(DispatchError::Fleet(format!(
                "override {k}: time must be finite and not negative"
            )));
        }
        sim.push(o.at_s, Ev::Override(k));
    }
    let mut end_s = cars.first().map_or(0.0, |c| c.arrival_s);
    while let Some(Timed { t: now, ev, .. }) = sim.heap.pop() {
        sim.handle(now, ev);
        // A policy's wake-up after the last car changes nothing and does not lengthen the run.
        if ev != Ev::Recheck {
            end_s = end_s.max(now);
        }
        // Everything that happens at one instant before the policy looks.
        if sim.heap.peek().is_some_and(|n| n.t <= now) {
            continue;
        }
        let robots = sim.view_robots(now);
        let waiting = sim.view_cars();
        if waiting.is_empty() && !robots.iter().any(|r| r.status == RobotStatus::Idle) {
            continue;
        }
        let view = View {
            now,
            lot,
            fleet,
            robots: &robots,
            waiting: &waiting,
        };
        let actions = policy.decide(&view);
        let wake = policy.wake_at(&view);
        for a in actions {
            sim.apply(now, a)?;
        }
        sim.schedule_recheck(now, wake);
    }
    for i in 0..sim.robots.len() {
        if sim.robots[i].st == St::Docked {
            sim.settle(i, end_s);
        }
    }
    let cars_out: Vec<CarResult> = sim
        .runs
        .iter()
        .map(|r| CarResult {
            wait_s: r.wait + r.wait_since.map_or(0.0, |s| end_s - s),
            delivered_kwh: r.delivered,
            outcome: r.outcome,
        })
        .collect();
    let serving: f64 = sim.robots.iter().map(|r| r.serving_s).sum();
    let start = cars.first().map_or(0.0, |c| c.arrival_s);
    let metrics = metrics(
        &cars_out,
        serving / (fleet.robots as f64 * (end_s - start).max(1e-9)),
    );
    Ok(SimResult {
        cars: cars_out,
        metrics,
        decisions: sim.decisions,
        rejected: sim.rejected,
        min_battery_kwh: sim.min_battery,
        serving_s: serving,
        driving_s: sim.robots.iter().map(|r| r.driving_s).sum(),
        recharging_s: sim.robots.iter().map(|r| r.charging_s).sum(),
        docked_s: sim.robots.iter().map(|r| r.docked_s).sum(),
        end_s,
    })
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Metrics of one or more runs' cars.
pub fn metrics(cars: &[CarResult], robot_utilisation: f64) -> Metrics {
    let mut waits: Vec<f64> = cars
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Served { .. }))
        .map(|c| c.wait_s)
        .collect();
    waits.sort_by(f64::total_cmp);
    let served = waits.len();
    Metrics {
        mean_wait_s: if served == 0 {
            0.0
        } else {
            waits.iter().sum::<f64>() / served as f64
        },
        p95_wait_s: percentile(&waits, 95.0),
        max_wait_s: waits.last().copied().unwrap_or(0.0),
        served,
        abandoned: cars
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Abandoned { .. }))
            .count(),
        unserved: cars
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Unserved))
            .count(),
        energy_kwh: cars.iter().map(|c| c.delivered_kwh).sum(),
        robot_utilisation,
    }
}
