//! A charging robot as a vehicle: where it is, what its battery holds, its energy register and
//! what it is doing, as a pure state machine in simulated time. It drives to a car's bay or the
//! dock at the fleet's speed (paying for the distance), plugs, charges the car at the lower of
//! its own and the car's power while keeping the energy the drive home needs, unplugs, and
//! recharges at the dock.
//!
//! One physics for every simulated robot: the demo's robots (`chargeops_sim::robots`, which
//! wrap it in an OCPP charge point and an HTTP reporter) and the live replay ([`crate::replay`]).

use std::collections::VecDeque;

use serde_json::Value;

use crate::live::Reported;
use crate::lot::{Fleet, Point};

/// A task as the robot interface's answer gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Drive to the car at `at`, plug in, give it `energy_kwh`.
    Car {
        car: String,
        at: Point,
        energy_kwh: f64,
    },
    /// Drive to the dock at `at` and recharge.
    Dock { at: Point },
    /// Stay where you are.
    Stay,
}

impl Task {
    /// Reads the `task` of a report's answer; anything unreadable is [`Task::Stay`], the one
    /// task that cannot hurt.
    pub fn parse(v: &Value) -> Task {
        let num = |k: &str| v.get(k).and_then(Value::as_f64).filter(|x| x.is_finite());
        let at = || Some(Point::new(num("x")?, num("y")?));
        match v.get("kind").and_then(Value::as_str) {
            Some("car") => {
                let (Some(car), Some(at), Some(energy_kwh)) = (
                    v.get("car").and_then(Value::as_str),
                    at(),
                    num("energy_kwh").filter(|e| *e > 0.0),
                ) else {
                    return Task::Stay;
                };
                Task::Car {
                    car: car.to_owned(),
                    at,
                    energy_kwh,
                }
            }
            Some("dock") => at().map_or(Task::Stay, |at| Task::Dock { at }),
            _ => Task::Stay,
        }
    }
}

/// A car the robot is working on.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub car: String,
    pub at: Point,
    pub energy_kwh: f64,
    /// Charging power: the robot's and the car's maximum, whichever is lower.
    pub power_kw: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    Idle,
    ToCar(Job),
    Plugging { job: Job, left_s: f64 },
    Charging { job: Job, given_kwh: f64 },
    ToDock(Point),
    Docked,
}

/// Something the outside world must hear about, `after_s` into the step that produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    /// At the car: the connector is taken (OCPP `Preparing`), plugging under way.
    AtCar {
        car: String,
    },
    /// Plugged in: the transaction starts with the register as it is.
    PluggedIn {
        car: String,
        register_wh: i64,
    },
    /// The transaction ends. `full`: the car has what it asked for.
    Unplugged {
        car: String,
        given_kwh: f64,
        register_wh: i64,
        full: bool,
    },
    Docked,
}

/// One robot: where it is, what its battery holds, its energy register, what it is doing.
#[derive(Debug, Clone)]
pub struct Robot {
    pub pos: Point,
    pub battery_kwh: f64,
    /// The charge point's energy register, Wh (kept fractional; sent rounded).
    register_wh: f64,
    pub activity: Activity,
    /// Cars this robot gave all they asked for, newest last: the platform learns of it from
    /// the transaction's stop, which may reach it after the next report; a task for one of
    /// these cars is stale, never a reason to charge it twice.
    served: VecDeque<String>,
    /// The car this robot last stopped short of its energy (its battery ran down): a task for
    /// it is stale until the robot has taken some other task since.
    short: Option<String>,
    /// Seconds spent plugging and charging cars.
    serving_s: f64,
    /// The lowest the battery went, before clamping at 0.
    min_battery_kwh: f64,
}

/// How many served cars a robot remembers.
const SERVED_MEMORY: usize = 16;

impl Robot {
    pub fn new(pos: Point, battery_kwh: f64, register_wh: i64) -> Robot {
        Robot {
            pos,
            battery_kwh,
            register_wh: register_wh as f64,
            activity: Activity::Idle,
            served: VecDeque::new(),
            short: None,
            serving_s: 0.0,
            min_battery_kwh: battery_kwh,
        }
    }

    pub fn register_wh(&self) -> i64 {
        self.register_wh.round() as i64
    }

    /// Simulated seconds this robot spent plugging and charging cars.
    pub fn serving_s(&self) -> f64 {
        self.serving_s
    }

    /// The lowest the battery went, before clamping at 0 (a negative value is a physics bug).
    pub fn min_battery_kwh(&self) -> f64 {
        self.min_battery_kwh
    }

    /// The robot interface's state and the car it concerns.
    pub fn reported(&self) -> (Reported, Option<&str>) {
        match &self.activity {
            Activity::Idle => (Reported::Idle, None),
            Activity::ToCar(job) => (Reported::Driving, Some(&job.car)),
            Activity::Plugging { job, .. } | Activity::Charging { job, .. } => {
                (Reported::Charging, Some(&job.car))
            }
            Activity::ToDock(_) => (Reported::Driving, None),
            Activity::Docked => (Reported::Docked, None),
        }
    }

    fn set_battery(&mut self, kwh: f64) {
        self.min_battery_kwh = self.min_battery_kwh.min(kwh);
        self.battery_kwh = kwh.max(0.0);
    }

    /// The car whose task the robot holds, if any.
    pub fn car(&self) -> Option<&str> {
        match &self.activity {
            Activity::ToCar(job)
            | Activity::Plugging { job, .. }
            | Activity::Charging { job, .. } => Some(&job.car),
            _ => None,
        }
    }

    pub fn is_charging(&self) -> bool {
        matches!(self.activity, Activity::Charging { .. })
    }

    pub fn was_served(&self, car: &str) -> bool {
        self.served.iter().any(|c| c == car)
    }

    /// Power the robot gives now, kW.
    pub fn power_kw(&self) -> f64 {
        match &self.activity {
            Activity::Charging { job, .. } => job.power_kw,
            _ => 0.0,
        }
    }

    /// Takes the platform's task. `power_kw` is the power this robot would charge the task's
    /// car at (the caller knows the car). Returns what must be told: a running transaction
    /// ended by a changed task.
    pub fn take(&mut self, task: Task, power_kw: f64) -> Vec<Happening> {
        let mut out = Vec::new();
        match &task {
            Task::Car { car, .. } if self.short.as_deref() == Some(car.as_str()) => return out,
            _ => self.short = None,
        }
        match task {
            Task::Car { car, .. } if self.was_served(&car) => {}
            Task::Car {
                car,
                at,
                energy_kwh,
            } => {
                if self.car() == Some(car.as_str()) {
                    // Same car: keep going; a corrected position only matters on the way.
                    if let Activity::ToCar(job) = &mut self.activity {
                        job.at = at;
                    }
                    return out;
                }
                out.extend(self.unplug(false));
                self.activity = Activity::ToCar(Job {
                    car,
                    at,
                    energy_kwh,
                    power_kw: power_kw.max(0.1),
                });
            }
            Task::Dock { at } => match &mut self.activity {
                Activity::ToDock(p) => *p = at,
                Activity::Docked => {}
                _ => {
                    out.extend(self.unplug(false));
                    self.activity = Activity::ToDock(at);
                }
            },
            Task::Stay => match self.activity {
                Activity::Idle | Activity::Docked => {}
                _ => {
                    out.extend(self.unplug(false));
                    self.activity = Activity::Idle;
                }
            },
        }
        out
    }

    /// Ends a running transaction (none while driving or plugging).
    fn unplug(&mut self, full: bool) -> Option<Happening> {
        let Activity::Charging { job, given_kwh } = &self.activity else {
            return None;
        };
        let h = Happening::Unplugged {
            car: job.car.clone(),
            given_kwh: *given_kwh,
            register_wh: self.register_wh(),
            full,
        };
        if full {
            self.served.push_back(job.car.clone());
            if self.served.len() > SERVED_MEMORY {
                self.served.pop_front();
            }
        }
        self.activity = Activity::Idle;
        Some(h)
    }

    /// Simulated seconds until the next [`Happening`] if nothing changes; `None` when the
    /// robot waits for a task.
    pub fn next_happening_s(&self, fleet: &Fleet, dock: Point) -> Option<f64> {
        match &self.activity {
            Activity::Idle | Activity::Docked => None,
            Activity::ToCar(job) => Some(fleet.travel_s(self.pos, job.at)),
            Activity::ToDock(p) => Some(fleet.travel_s(self.pos, *p)),
            Activity::Plugging { left_s, .. } => Some(*left_s),
            Activity::Charging { job, given_kwh } => {
                let left = (job.energy_kwh - given_kwh)
                    .min((self.battery_kwh - fleet.drive_kwh(self.pos, dock)).max(0.0));
                Some(left.max(0.0) / job.power_kw * 3600.0)
            }
        }
    }

    /// Moves the robot on by `dt_s` simulated seconds: driving (battery spent by distance),
    /// plugging, charging the car (the battery gives what the car gets, never the energy the
    /// drive back to `dock` needs), recharging at the dock. Returns what happened, each with
    /// its time into the step.
    pub fn advance(&mut self, dt_s: f64, fleet: &Fleet, dock: Point) -> Vec<(f64, Happening)> {
        let mut out = Vec::new();
        if !(dt_s.is_finite() && dt_s > 0.0) {
            return out;
        }
        let mut t = 0.0;
        // Each pass ends the step or one phase; a phase change always makes progress.
        for _ in 0..16 {
            let left = dt_s - t;
            if left <= 0.0 {
                break;
            }
            match &mut self.activity {
                Activity::Idle => break,
                Activity::Docked => {
                    self.battery_kwh =
                        (self.battery_kwh + fleet.dock_kw * left / 3600.0).min(fleet.robot_kwh);
                    break;
                }
                Activity::ToCar(Job { at, .. }) | Activity::ToDock(at) => {
                    let to = *at;
                    let need = fleet.travel_s(self.pos, to);
                    let from = self.pos;
                    if need <= left {
                        self.pos = to;
                        t += need;
                    } else {
                        self.pos = from.lerp(to, left / need.max(f64::EPSILON));
                        t = dt_s;
                    }
                    self.set_battery(self.battery_kwh - fleet.drive_kwh(from, self.pos));
                    if self.pos == to {
                        match std::mem::replace(&mut self.activity, Activity::Idle) {
                            Activity::ToCar(job) => {
                                out.push((
                                    t,
                                    Happening::AtCar {
                                        car: job.car.clone(),
                                    },
                                ));
                                self.activity = Activity::Plugging {
                                    job,
                                    left_s: fleet.plug_s,
                                };
                            }
                            _ => {
                                out.push((t, Happening::Docked));
                                self.activity = Activity::Docked;
                            }
                        }
                    }
                }
                Activity::Plugging { left_s, .. } => {
                    if *left_s <= left {
                        t += *left_s;
                        self.serving_s += *left_s;
                        if let Activity::Plugging { job, .. } =
                            std::mem::replace(&mut self.activity, Activity::Idle)
                        {
                            out.push((
                                t,
                                Happening::PluggedIn {
                                    car: job.car.clone(),
                                    register_wh: self.register_wh(),
                                },
                            ));
                            self.activity = Activity::Charging {
                                job,
                                given_kwh: 0.0,
                            };
                        }
                    } else {
                        *left_s -= left;
                        self.serving_s += left;
                        t = dt_s;
                    }
                }
                Activity::Charging { job, given_kwh } => {
                    let reserve = fleet.drive_kwh(self.pos, dock);
                    let can = (job.energy_kwh - *given_kwh)
                        .min(self.battery_kwh - reserve)
                        .max(0.0);
                    let rate = job.power_kw / 3600.0;
                    let full_after = can / rate;
                    let (give, done, spent) = if full_after <= left {
                        (can, true, full_after)
                    } else {
                        (rate * left, false, left)
                    };
                    *given_kwh += give;
                    self.serving_s += spent;
                    // `set_battery`, field by field: `job` still borrows the activity.
                    let b = self.battery_kwh - give;
                    self.min_battery_kwh = self.min_battery_kwh.min(b);
                    self.battery_kwh = b.max(0.0);
                    self.register_wh += give * 1000.0;
                    if done {
                        t += full_after;
                        let full = *given_kwh >= job.energy_kwh - 0.01;
                        let car = job.car.clone();
                        if let Some(h) = self.unplug(full) {
                            out.push((t, h));
                        }
                        if !full {
                            self.short = Some(car);
                        }
                    } else {
                        t = dt_s;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fleet() -> Fleet {
        Fleet::default()
    }

    const DOCK: Point = Point { x: -15.0, y: 0.0 };

    #[test]
    fn a_robot_drives_at_its_speed_and_pays_for_the_distance() {
        let f = fleet();
        let mut r = Robot::new(DOCK, 100.0, 0);
        let h = r.take(
            Task::Car {
                car: "c1".into(),
                at: Point::new(15.0, 40.0),
                energy_kwh: 20.0,
            },
            90.0,
        );
        assert!(h.is_empty());
        assert_eq!(r.reported(), (Reported::Driving, Some("c1")));
        // 50 m at 1 m/s: half way after 25 s.
        assert_eq!(r.next_happening_s(&f, DOCK), Some(50.0));
        assert!(r.advance(25.0, &f, DOCK).is_empty());
        assert!((r.pos.dist(Point::new(0.0, 20.0))) < 1e-9, "{:?}", r.pos);
        assert!((r.battery_kwh - (100.0 - 0.025 * 0.3)).abs() < 1e-9);
        let h = r.advance(25.0 + 10.0, &f, DOCK);
        assert_eq!(h, vec![(25.0, Happening::AtCar { car: "c1".into() })]);
        assert_eq!(r.pos, Point::new(15.0, 40.0));
        assert!(
            matches!(r.activity, Activity::Plugging { left_s, .. } if (left_s - 50.0).abs() < 1e-9)
        );
        assert_eq!(r.reported(), (Reported::Charging, Some("c1")));
    }

    #[test]
    fn a_car_gets_exactly_what_it_asked_at_the_lower_of_the_two_powers() {
        let f = fleet();
        let at = Point::new(0.0, 0.0);
        let mut r = Robot::new(at, 100.0, 5_000);
        r.take(
            Task::Car {
                car: "c1".into(),
                at,
                energy_kwh: 30.0,
            },
            f.power_kw(90.0),
        );
        // At the car already: plugging (60 s), then 30 kWh at 90 kW = 1200 s.
        let h = r.advance(61.0, &f, DOCK);
        assert_eq!(h[0], (0.0, Happening::AtCar { car: "c1".into() }));
        assert_eq!(
            h[1],
            (
                60.0,
                Happening::PluggedIn {
                    car: "c1".into(),
                    register_wh: 5_000
                }
            )
        );
        assert!(r.is_charging());
        assert_eq!(r.power_kw(), 90.0);
        let left = r.next_happening_s(&f, DOCK).expect("charging ends");
        assert!((left - 1199.0).abs() < 1e-6, "{left}");
        let h = r.advance(2000.0, &f, DOCK);
        assert_eq!(h.len(), 1);
        let (
            after,
            Happening::Unplugged {
                car,
                given_kwh,
                register_wh,
                full,
            },
        ) = h[0].clone()
        else {
            panic!("expected the unplug, got {h:?}");
        };
        assert!((after - 1199.0).abs() < 1e-6);
        assert_eq!((car.as_str(), full, register_wh), ("c1", true, 35_000));
        assert!((given_kwh - 30.0).abs() < 1e-9);
        assert!((r.battery_kwh - 70.0).abs() < 1e-9);
        assert_eq!(r.reported(), (Reported::Idle, None));
        // A late answer naming the served car again is stale: no second charge.
        r.take(
            Task::Car {
                car: "c1".into(),
                at,
                energy_kwh: 30.0,
            },
            90.0,
        );
        assert_eq!(r.activity, Activity::Idle);
    }

    #[test]
    fn the_battery_keeps_the_drive_home_and_stops_short_when_it_runs_low() {
        let f = fleet();
        let at = Point::new(985.0, 0.0); // 1 km from the dock: 0.3 kWh to get back.
        let mut r = Robot::new(at, 10.3, 0);
        r.activity = Activity::Charging {
            job: Job {
                car: "c".into(),
                at,
                energy_kwh: 40.0,
                power_kw: 120.0,
            },
            given_kwh: 0.0,
        };
        let h = r.advance(3600.0, &f, DOCK);
        let [
            (
                _,
                Happening::Unplugged {
                    given_kwh, full, ..
                },
            ),
        ] = h.as_slice()
        else {
            panic!("{h:?}");
        };
        assert!(!full, "10 kWh of 40 is not served");
        assert!((given_kwh - 10.0).abs() < 1e-9);
        assert!((r.battery_kwh - 0.3).abs() < 1e-9);
        assert!(!r.was_served("c"));
        // The platform may name that car once more before it hears of the stop: stale.
        let again = Task::Car {
            car: "c".into(),
            at,
            energy_kwh: 30.0,
        };
        assert!(r.take(again.clone(), 120.0).is_empty());
        assert_eq!(r.activity, Activity::Idle);
        // After the dock, the same car may rightly come back.
        r.take(Task::Dock { at: DOCK }, 0.0);
        r.take(again, 120.0);
        assert_eq!(r.car(), Some("c"));
    }

    #[test]
    fn release_and_reassignment_stop_the_transaction_and_the_dock_recharges() {
        let f = fleet();
        let at = Point::new(0.0, 0.0);
        let mut r = Robot::new(at, 50.0, 0);
        r.activity = Activity::Charging {
            job: Job {
                car: "a".into(),
                at,
                energy_kwh: 40.0,
                power_kw: 120.0,
            },
            given_kwh: 0.0,
        };
        r.advance(60.0, &f, DOCK);
        // The same task again changes nothing.
        let same = Task::Car {
            car: "a".into(),
            at,
            energy_kwh: 40.0,
        };
        assert!(r.take(same, 120.0).is_empty());
        assert!(r.is_charging());
        // Reassigned to another car: the running transaction ends, not served.
        let h = r.take(
            Task::Car {
                car: "b".into(),
                at: Point::new(10.0, 0.0),
                energy_kwh: 10.0,
            },
            60.0,
        );
        assert!(
            matches!(&h[..], [Happening::Unplugged { car, full: false, given_kwh, .. }] if car == "a" && (given_kwh - 2.0).abs() < 1e-9)
        );
        assert_eq!(r.car(), Some("b"));
        // Released on the way: it stops where it is.
        assert!(r.take(Task::Stay, 0.0).is_empty());
        assert_eq!(r.activity, Activity::Idle);
        // Sent to the dock, it recharges there at dock_kw up to full.
        r.take(Task::Dock { at: DOCK }, 0.0);
        let h = r.advance(15.0 + 3600.0, &f, DOCK);
        assert_eq!(h, vec![(15.0, Happening::Docked)]);
        assert_eq!(r.battery_kwh, f.robot_kwh);
        assert_eq!(r.reported(), (Reported::Docked, None));
    }

    #[test]
    fn tasks_are_read_leniently() {
        assert_eq!(
            Task::parse(
                &json!({"kind": "car", "car": "abc", "bay": 3, "x": 8.1, "y": 0.0, "energy_kwh": 31.5})
            ),
            Task::Car {
                car: "abc".into(),
                at: Point::new(8.1, 0.0),
                energy_kwh: 31.5
            }
        );
        assert_eq!(
            Task::parse(&json!({"kind": "dock", "x": -15, "y": 0})),
            Task::Dock { at: DOCK }
        );
        for odd in [
            json!(null),
            json!({"kind": "stay"}),
            json!({"kind": "car", "car": "x", "x": 1, "y": 1}),
            json!({"kind": "car", "car": "x", "x": 1, "y": 1, "energy_kwh": -3}),
            json!({"kind": "dock"}),
            json!({"kind": "fly"}),
        ] {
            assert_eq!(Task::parse(&odd), Task::Stay, "{odd}");
        }
    }

    #[test]
    fn odd_steps_change_nothing() {
        let f = fleet();
        let mut r = Robot::new(DOCK, 10.0, 0);
        r.activity = Activity::ToDock(Point::new(0.0, 0.0));
        for dt in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            assert!(r.advance(dt, &f, DOCK).is_empty());
        }
        assert_eq!(r.pos, DOCK);
    }
}
