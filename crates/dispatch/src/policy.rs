//! Dispatch policies and what they see.
//!
//! A policy is online by construction: it is handed a [`View`] of the lot *now* (the robots, and
//! the cars that have arrived and wait for a robot) and answers with [`Action`]s. The simulator
//! calls it whenever something changes; the live platform can build the same `View` from robot
//! reports and queue tickets and call the same policy.

use crate::DispatchError;
use crate::lot::{Fleet, Lot, Point};

/// What a robot is doing, as a policy sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RobotStatus {
    /// Stopped in the lot (just finished a car). Available.
    Idle,
    /// Driving back to the dock. Available: it can be sent to a car from where it is.
    ToDock,
    /// At the dock, recharging while the battery is not full. Available.
    Docked,
    /// Driving to, plugging or charging a car; free at `free_at` (an estimate in the live lot).
    Busy { car: usize, free_at: f64 },
    /// Not reporting: neither available nor counted on.
    Offline,
}

impl RobotStatus {
    pub fn available(self) -> bool {
        matches!(
            self,
            RobotStatus::Idle | RobotStatus::ToDock | RobotStatus::Docked
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RobotView {
    /// Index of the robot in [`View::robots`].
    pub id: usize,
    pub pos: Point,
    pub battery_kwh: f64,
    pub status: RobotStatus,
}

/// A car that has arrived and waits for a robot to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct CarView {
    /// The car's id (its index in the trace; in the live lot, its queue ticket).
    pub id: usize,
    pub arrival_s: f64,
    pub bay: usize,
    /// Energy still to give (less than asked if a robot failed part-way).
    pub energy_kwh: f64,
    pub max_power_kw: f64,
}

/// The lot now.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub now: f64,
    pub lot: &'a Lot,
    pub fleet: &'a Fleet,
    pub robots: &'a [RobotView],
    /// Waiting cars in arrival order.
    pub waiting: &'a [CarView],
}

/// A dispatch decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an available robot to a waiting car.
    Assign { robot: usize, car: usize },
    /// Send an idle robot back to the dock (no-op for one already there or on its way).
    ToDock { robot: usize },
}

impl View<'_> {
    fn bay(&self, car: &CarView) -> Point {
        // Cars are checked against the lot before they reach a view; the dock is a harmless
        // stand-in that no check depends on.
        self.lot.bay(car.bay).unwrap_or(self.lot.dock)
    }

    /// Energy robot `r` must hold to take `car` from where it is (the battery rule).
    pub fn required_kwh(&self, r: &RobotView, car: &CarView) -> f64 {
        self.fleet
            .required_kwh(self.lot, r.pos, self.bay(car), car.energy_kwh)
    }

    pub fn can_cover(&self, r: &RobotView, car: &CarView) -> bool {
        r.battery_kwh + 1e-9 >= self.required_kwh(r, car)
    }

    pub fn travel_s(&self, r: &RobotView, car: &CarView) -> f64 {
        self.fleet.travel_s(r.pos, self.bay(car))
    }

    /// Checks an assignment (a policy's, or a staff override) against the robot's state, the
    /// car's and the battery rule.
    pub fn check_assignment(&self, robot: usize, car: usize) -> Result<(), DispatchError> {
        let bad = |reason: String| DispatchError::Assignment { robot, car, reason };
        let r = self
            .robots
            .get(robot)
            .ok_or_else(|| bad("no such robot".into()))?;
        if !r.status.available() {
            return Err(bad(format!("the robot is not available ({:?})", r.status)));
        }
        let c = self
            .waiting
            .iter()
            .find(|c| c.id == car)
            .ok_or_else(|| bad("the car is not waiting for a robot".into()))?;
        let need = self.required_kwh(r, c);
        if r.battery_kwh + 1e-9 < need {
            return Err(bad(format!(
                "battery too low: holds {:.2} kWh, needs {:.2} kWh (drive there, {:.2} kWh for the car, drive back to the dock)",
                r.battery_kwh, need, c.energy_kwh
            )));
        }
        Ok(())
    }
}

/// An online dispatch policy.
pub trait Policy {
    /// The name in reports (`fifo`, `nearest_idle`, `chargeops`).
    fn name(&self) -> &'static str;
    /// The actions to take now. Robots not named keep doing what they do.
    fn decide(&mut self, view: &View<'_>) -> Vec<Action>;
    /// A later moment at which the policy wants to be asked again even if nothing happens.
    fn wake_at(&self, _view: &View<'_>) -> Option<f64> {
        None
    }
}

/// When a robot that went to the dock is free again, for the baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DockRule {
    /// Only when full: a robot that goes to recharge recharges (the usual robot behaviour).
    #[default]
    FullCharge,
    /// At any moment: a robot at the dock takes a car as soon as its battery covers one.
    Opportunistic,
}

impl DockRule {
    fn free(self, view: &View<'_>, r: &RobotView) -> bool {
        match (self, r.status) {
            (DockRule::Opportunistic, s) => s.available(),
            (DockRule::FullCharge, RobotStatus::Idle) => true,
            (DockRule::FullCharge, RobotStatus::Docked) => {
                r.battery_kwh >= view.fleet.robot_kwh - 1e-6
            }
            (DockRule::FullCharge, _) => false,
        }
    }
}

/// The nearest free, unused robot that can cover `car`, by travel time.
fn nearest_robot(view: &View<'_>, dock: DockRule, used: &[bool], car: &CarView) -> Option<usize> {
    view.robots
        .iter()
        .filter(|r| dock.free(view, r) && !used[r.id] && view.can_cover(r, car))
        .min_by(|a, b| {
            view.travel_s(a, car)
                .total_cmp(&view.travel_s(b, car))
                .then(a.id.cmp(&b.id))
        })
        .map(|r| r.id)
}

/// Robot-centric pass shared by the baselines: each robot that has just become free (idle in the
/// lot) takes the waiting car `pick` chooses among those it can cover, or goes to the dock.
fn free_robots_pass(
    view: &View<'_>,
    used: &mut [bool],
    taken: &mut [bool],
    out: &mut Vec<Action>,
    pick: impl Fn(&RobotView, &[usize]) -> Option<usize>,
) {
    for r in view.robots.iter().filter(|r| r.status == RobotStatus::Idle) {
        let coverable: Vec<usize> = (0..view.waiting.len())
            .filter(|&i| !taken[i] && view.can_cover(r, &view.waiting[i]))
            .collect();
        used[r.id] = true;
        match pick(r, &coverable) {
            Some(i) => {
                taken[i] = true;
                out.push(Action::Assign {
                    robot: r.id,
                    car: view.waiting[i].id,
                });
            }
            None => out.push(Action::ToDock { robot: r.id }),
        }
    }
}

/// Car-centric pass: each remaining waiting car, oldest first, goes to the nearest available
/// robot that can cover it.
fn cars_pass(
    view: &View<'_>,
    dock: DockRule,
    used: &mut [bool],
    taken: &mut [bool],
    out: &mut Vec<Action>,
) {
    for (i, car) in view.waiting.iter().enumerate() {
        if taken[i] {
            continue;
        }
        if let Some(r) = nearest_robot(view, dock, used, car) {
            used[r] = true;
            taken[i] = true;
            out.push(Action::Assign {
                robot: r,
                car: car.id,
            });
        }
    }
}

/// FIFO: a free robot takes the oldest waiting car its battery can cover, else goes to the dock;
/// a car arriving to free robots gets the nearest one that can cover it.
#[derive(Debug, Default, Clone)]
pub struct Fifo {
    pub dock: DockRule,
}

impl Policy for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn decide(&mut self, view: &View<'_>) -> Vec<Action> {
        let mut used = vec![false; view.robots.len()];
        let mut taken = vec![false; view.waiting.len()];
        let mut out = Vec::new();
        free_robots_pass(view, &mut used, &mut taken, &mut out, |_, cov| {
            cov.first().copied()
        });
        cars_pass(view, self.dock, &mut used, &mut taken, &mut out);
        out
    }
}

/// Nearest-idle: an arriving car goes to the nearest idle robot that can cover it; a robot that
/// becomes free takes the nearest waiting car it can cover; a robot that can cover no waiting car
/// goes to the dock.
#[derive(Debug, Default, Clone)]
pub struct NearestIdle {
    pub dock: DockRule,
}

impl Policy for NearestIdle {
    fn name(&self) -> &'static str {
        "nearest_idle"
    }

    fn decide(&mut self, view: &View<'_>) -> Vec<Action> {
        let mut used = vec![false; view.robots.len()];
        let mut taken = vec![false; view.waiting.len()];
        let mut out = Vec::new();
        free_robots_pass(view, &mut used, &mut taken, &mut out, |r, cov| {
            cov.iter().copied().min_by(|&a, &b| {
                view.travel_s(r, &view.waiting[a])
                    .total_cmp(&view.travel_s(r, &view.waiting[b]))
            })
        });
        cars_pass(view, self.dock, &mut used, &mut taken, &mut out);
        out
    }
}

/// The chargeops policy.
///
/// - **Shortest robot-time first.** A car's robot-time is the plugging, charging and dock time it
///   costs the fleet ([`Fleet::robot_time_s`]). Waiting cars are taken in order of robot-time, so
///   short cars go first: at a load near 1 and above, the order is what sets the mean wait.
/// - **Aging (the starvation rule).** A car that has waited at least the aging threshold
///   `T = max(age_s, age_per_backlog x backlog)` comes before every car that has waited less,
///   and such cars go in arrival order. The backlog is the robot-time of all waiting cars divided
///   by the robots that report: the wait a car arriving now would have in arrival order. So the
///   threshold is a fixed time in a normal peak and grows with the overload, where serving old
///   cars first would turn the whole queue into first-come-first-served. What it guarantees:
///   with `T*` the largest threshold a trace reaches, a car waits at most
///   `T* + (q + 1) x (longest service + full recharge + three drives across the lot)`, `q` the
///   older cars still waiting when it has waited `T*`. The rescue below reorders only cars
///   below the threshold, so it changes neither the rule nor the bound.
/// - **Rescue (the tail).** Shortest-first leaves the long cars of a peak for its end, which
///   sets the p95. Below the threshold, and only while the backlog is at most
///   `rescue_backlog_s`, a car that has waited `rescue_after_s` is a candidate, due to start
///   within `due_s` of its arrival. The candidates are walked in arrival order (their due order)
///   with a fluid start each: now plus the robot-time of the aged cars and of the candidates
///   kept before it, over the robots that report. When one would start after its due time, the
///   longest candidate kept so far is given up on (Moore-Hodgson: the most candidates on time)
///   and left to shortest-first and the threshold. A kept candidate whose fluid start is within
///   `lead_s` of its due time is rescued: rescued cars come after the aged ones and before the
///   rest, in arrival order. So a few long cars absorb a peak's delay (the threshold still
///   bounds them) instead of every long car; in an overload most candidates would miss their
///   due time whatever the order, and the rescue is off.
/// - **Battery-aware assignment and holding.** Each car in that order gets the available robot
///   that can reach it soonest: one that covers it now (the nearest, near-ties to the smaller
///   battery, so full batteries are kept for the cars that need them), else the robot that will
///   cover it soonest after charging at the dock, which then goes (or stays) at the dock and is
///   spent on no later car. A robot at the dock is available at any charge and leaves as soon as
///   its battery covers its car; every robot with nothing to do goes to the dock to top up.
#[derive(Debug, Clone)]
pub struct Chargeops {
    /// The least the aging threshold is, seconds.
    pub age_s: f64,
    /// How the aging threshold grows with the backlog (seconds of threshold per second of
    /// backlog).
    pub age_per_backlog: f64,
    /// Hold a robot at the dock for a car that has not reached the aging threshold when no
    /// robot covers it now (cars past it always get one).
    pub hold: bool,
    /// A car not past the aging threshold is a rescue candidate once it has waited this long,
    /// seconds (infinite: no rescue, pure shortest-first below the threshold).
    pub rescue_after_s: f64,
    /// The wait the rescue tries to start candidates within, seconds.
    pub due_s: f64,
    /// How long before its due time a rescued car goes ahead of shorter cars, seconds.
    pub lead_s: f64,
    /// No rescue while the backlog is above this, seconds: in an overload, most candidates
    /// miss their due time whatever the order, and rescuing the rest costs the mean for nothing.
    pub rescue_backlog_s: f64,
}

impl Default for Chargeops {
    fn default() -> Chargeops {
        Chargeops {
            age_s: 5.0 * 3600.0,
            age_per_backlog: 1.75,
            hold: true,
            rescue_after_s: 1.5 * 3600.0,
            due_s: 2.5 * 3600.0,
            lead_s: 17.0 * 60.0,
            rescue_backlog_s: 3.75 * 3600.0,
        }
    }
}

/// Rounded travel, so that near ties go to the smaller battery.
fn travel_5s(view: &View<'_>, r: &RobotView, car: &CarView) -> f64 {
    (view.travel_s(r, car) / 5.0).round() * 5.0
}

impl Chargeops {
    /// Robot-seconds the car costs: plugging, charging and dock time.
    pub fn robot_time_s(view: &View<'_>, car: &CarView) -> f64 {
        view.fleet.robot_time_s(car.energy_kwh, car.max_power_kw)
    }

    /// The robots that report (at least one, so that the backlog stays finite).
    fn reporting(view: &View<'_>) -> usize {
        view.robots
            .iter()
            .filter(|r| r.status != RobotStatus::Offline)
            .count()
            .max(1)
    }

    /// The backlog now: robot-time of the waiting cars over the robots that report, seconds.
    pub fn backlog_s(view: &View<'_>) -> f64 {
        let robots = Self::reporting(view);
        view.waiting
            .iter()
            .map(|c| Self::robot_time_s(view, c))
            .sum::<f64>()
            / robots as f64
    }

    /// The aging threshold now, seconds.
    pub fn threshold_s(&self, view: &View<'_>) -> f64 {
        self.age_s.max(self.age_per_backlog * Self::backlog_s(view))
    }

    /// Indices into `view.waiting` in the order cars are given robots: cars past the aging
    /// threshold by arrival, then the rescued cars by arrival, then the rest by robot-time.
    pub fn order(&self, view: &View<'_>) -> Vec<usize> {
        let backlog = Self::backlog_s(view);
        let threshold = self.age_s.max(self.age_per_backlog * backlog);
        let robots = Self::reporting(view) as f64;
        let rescue = backlog <= self.rescue_backlog_s;
        // (class, key, index, robot-time): class 0 aged, 1 rescued, 2 the rest.
        let mut keyed: Vec<(u8, f64, usize, f64)> = view
            .waiting
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let p = Self::robot_time_s(view, c);
                let waited = view.now - c.arrival_s;
                if waited >= threshold {
                    (0, c.arrival_s, i, p)
                } else if rescue && waited >= self.rescue_after_s {
                    (1, c.arrival_s, i, p)
                } else {
                    (2, p, i, p)
                }
            })
            .collect();
        let by_key = |a: &(u8, f64, usize, f64), b: &(u8, f64, usize, f64)| {
            a.0.cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(
                    view.waiting[a.2]
                        .arrival_s
                        .total_cmp(&view.waiting[b.2].arrival_s),
                )
                .then(a.2.cmp(&b.2))
        };
        keyed.sort_by(by_key);
        // Moore-Hodgson over the candidates in arrival order (their due order): the fluid start
        // of each is now plus the robot-time before it over the robots; when one would start
        // after its due time, the longest candidate so far is given up on (left to
        // shortest-first and the aging threshold). That keeps the most candidates on time.
        let aged_work: f64 = keyed.iter().filter(|k| k.0 == 0).map(|k| k.3).sum();
        let mut work = aged_work;
        let mut kept: Vec<usize> = Vec::new();
        for j in 0..keyed.len() {
            if keyed[j].0 != 1 {
                continue;
            }
            let start = view.now + work / robots;
            kept.push(j);
            work += keyed[j].3;
            if start > view.waiting[keyed[j].2].arrival_s + self.due_s {
                let longest = kept
                    .iter()
                    .enumerate()
                    .max_by(|a, b| keyed[*a.1].3.total_cmp(&keyed[*b.1].3))
                    .map(|(pos, &k)| (pos, k));
                if let Some((pos, k)) = longest {
                    kept.remove(pos);
                    work -= keyed[k].3;
                    keyed[k] = (2, keyed[k].3, keyed[k].2, keyed[k].3);
                }
            }
        }
        // A kept candidate goes ahead of shorter cars only from `lead_s` before its fluid start
        // would pass its due time.
        let mut work = aged_work;
        for &j in &kept {
            let start = view.now + work / robots;
            work += keyed[j].3;
            if start + self.lead_s < view.waiting[keyed[j].2].arrival_s + self.due_s {
                keyed[j] = (2, keyed[j].3, keyed[j].2, keyed[j].3);
            }
        }
        keyed.sort_by(by_key);
        keyed.into_iter().map(|k| k.2).collect()
    }

    /// Seconds until robot `r` could cover `car` by going (or staying) at the dock and charging.
    fn time_to_cover(view: &View<'_>, r: &RobotView, car: &CarView) -> Option<f64> {
        let f = view.fleet;
        let bay = view.lot.bay(car.bay)?;
        let need = f.required_kwh(view.lot, view.lot.dock, bay, car.energy_kwh);
        if need > f.robot_kwh + 1e-9 {
            return None;
        }
        let at_dock = r.battery_kwh - f.drive_kwh(r.pos, view.lot.dock);
        let drive = f.travel_s(r.pos, view.lot.dock);
        Some(
            drive + (need - at_dock).max(0.0) / f.dock_kw * 3600.0 + f.travel_s(view.lot.dock, bay),
        )
    }
}

impl Policy for Chargeops {
    fn name(&self) -> &'static str {
        "chargeops"
    }

    fn wake_at(&self, view: &View<'_>) -> Option<f64> {
        // The next moment a car crosses the aging threshold or becomes a rescue candidate. When a
        // rescued car's lead begins depends on the others' robot-time and is checked at every
        // decision, which the arrivals and robots' ends make frequent enough.
        let t = self.threshold_s(view);
        view.waiting
            .iter()
            .flat_map(|c| [c.arrival_s + t, c.arrival_s + self.rescue_after_s])
            .filter(|&w| w > view.now && w.is_finite())
            .min_by(f64::total_cmp)
    }

    fn decide(&mut self, view: &View<'_>) -> Vec<Action> {
        let threshold = self.threshold_s(view);
        let hold = self.hold;
        assign_in_order(view, self.order(view), |car| {
            hold || view.now - car.arrival_s >= threshold
        })
    }
}

/// Gives the waiting cars robots in `order` (indices into `view.waiting`): each car gets the
/// available robot that can reach it soonest. That is a robot that covers it now (the nearest,
/// near-ties to the smaller battery) unless `hold(car)` and a robot charging at the dock would
/// reach it sooner; with no robot covering it now and `hold(car)`, the robot that will cover it
/// soonest goes (or stays) at the dock and is kept for it. Idle robots left over top up at the
/// dock.
fn assign_in_order(
    view: &View<'_>,
    order: impl IntoIterator<Item = usize>,
    hold: impl Fn(&CarView) -> bool,
) -> Vec<Action> {
    let mut used = vec![false; view.robots.len()];
    let mut out = Vec::new();
    for i in order {
        if used.iter().all(|&u| u) {
            break;
        }
        let car = &view.waiting[i];
        let now_ready = view
            .robots
            .iter()
            .filter(|r| r.status.available() && !used[r.id] && view.can_cover(r, car))
            .min_by(|a, b| {
                travel_5s(view, a, car)
                    .total_cmp(&travel_5s(view, b, car))
                    .then(a.battery_kwh.total_cmp(&b.battery_kwh))
                    .then(a.id.cmp(&b.id))
            });
        let charging = if hold(car) {
            view.robots
                .iter()
                .filter(|r| r.status.available() && !used[r.id] && !view.can_cover(r, car))
                .filter_map(|r| Some((Chargeops::time_to_cover(view, r, car)?, r)))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.id.cmp(&b.1.id)))
        } else {
            None
        };
        let held = match (now_ready, charging) {
            (Some(r), Some((t, h))) if t < view.travel_s(r, car) => Some(h),
            (Some(r), _) => {
                used[r.id] = true;
                out.push(Action::Assign {
                    robot: r.id,
                    car: car.id,
                });
                None
            }
            (None, Some((_, h))) => Some(h),
            (None, None) => None,
        };
        if let Some(h) = held {
            used[h.id] = true;
            if h.status != RobotStatus::Docked {
                out.push(Action::ToDock { robot: h.id });
            }
        }
    }
    for r in view.robots {
        if r.status == RobotStatus::Idle && !used[r.id] {
            out.push(Action::ToDock { robot: r.id });
        }
    }
    out
}

/// A fixed service order: waiting cars by their rank (`rank[car id]`, lower first; cars without
/// one last, by arrival), robots as [`Chargeops`] gives them, always holding a robot for the car
/// first in order. Not an online policy when the ranks come from the whole trace: it is how the
/// clairvoyant reference ([`crate::bounds::clairvoyant`]) plays a schedule in the simulator.
#[derive(Debug, Clone, Default)]
pub struct Ranked {
    pub rank: Vec<usize>,
}

impl Policy for Ranked {
    fn name(&self) -> &'static str {
        "clairvoyant"
    }

    fn decide(&mut self, view: &View<'_>) -> Vec<Action> {
        let mut order: Vec<(usize, usize)> = view
            .waiting
            .iter()
            .enumerate()
            .map(|(i, c)| (self.rank.get(c.id).copied().unwrap_or(usize::MAX), i))
            .collect();
        order.sort_unstable();
        assign_in_order(view, order.into_iter().map(|(_, i)| i), |_| true)
    }
}

/// The three policies of the benchmark, in report order.
pub fn all_policies() -> Vec<Box<dyn Policy>> {
    vec![
        Box::new(Fifo::default()),
        Box::new(NearestIdle::default()),
        Box::new(Chargeops::default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One robot, busy; the dock at 0, bays 10 m apart; 60 kW everywhere, no plugging or
    /// driving energy: a car of `e` kWh costs `e x 60 + e x 60` robot-seconds.
    fn view_of<'a>(
        lot: &'a Lot,
        fleet: &'a Fleet,
        robots: &'a [RobotView],
        waiting: &'a [CarView],
        now: f64,
    ) -> View<'a> {
        View {
            now,
            lot,
            fleet,
            robots,
            waiting,
        }
    }

    fn car(id: usize, arrival_s: f64, energy_kwh: f64) -> CarView {
        CarView {
            id,
            arrival_s,
            bay: 0,
            energy_kwh,
            max_power_kw: 60.0,
        }
    }

    #[test]
    fn the_rescue_puts_a_car_near_its_due_time_ahead_and_gives_up_on_the_longest() {
        let lot = Lot {
            bays: vec![Point::new(10.0, 0.0)],
            dock: Point::new(0.0, 0.0),
        };
        let fleet = Fleet {
            robots: 1,
            robot_kwh: 100.0,
            robot_kw: 60.0,
            speed_mps: 1.0,
            dock_kw: 60.0,
            plug_s: 0.0,
            drive_kwh_per_km: 0.0,
        };
        let robots = [RobotView {
            id: 0,
            pos: lot.dock,
            battery_kwh: 100.0,
            status: RobotStatus::Busy {
                car: 99,
                free_at: 0.0,
            },
        }];
        let p = Chargeops {
            age_s: 10_000.0,
            age_per_backlog: 0.0,
            hold: true,
            rescue_after_s: 1000.0,
            due_s: 3000.0,
            lead_s: 600.0,
            rescue_backlog_s: f64::INFINITY,
        };
        // At 2500: car 0 (10 kWh, 1200 robot-s) has waited 2500, car 1 (5 kWh, 600 robot-s)
        // has just arrived. Car 0 starts at 2500 at the earliest, within 600 s of its due time
        // (3000): rescued ahead of the shorter car 1.
        let waiting = [car(0, 0.0, 10.0), car(1, 2500.0, 5.0)];
        assert_eq!(
            p.order(&view_of(&lot, &fleet, &robots, &waiting, 2500.0)),
            [0, 1]
        );
        // At 2000 it is still 1000 s from its due time: shortest first.
        assert_eq!(
            p.order(&view_of(&lot, &fleet, &robots, &waiting, 2000.0)),
            [1, 0]
        );
        // Without the rescue, shortest first.
        let off = Chargeops {
            rescue_after_s: f64::INFINITY,
            ..p.clone()
        };
        assert_eq!(
            off.order(&view_of(&lot, &fleet, &robots, &waiting, 2500.0)),
            [1, 0]
        );
        // Car 0 (40 kWh, 4800 robot-s) and car 1 (10 kWh, 1200 robot-s) have waited 2600 and
        // 2500: car 1's fluid start behind car 0 is 7400, past its due time 3100, so the
        // longest candidate (car 0) is given up on; car 1 starts at 2600, rescued; car 2 (a
        // fresh 5 kWh car) goes after it, car 0 last.
        let waiting = [car(0, 0.0, 40.0), car(1, 100.0, 10.0), car(2, 2600.0, 5.0)];
        assert_eq!(
            p.order(&view_of(&lot, &fleet, &robots, &waiting, 2600.0)),
            [1, 2, 0]
        );
        // The gate: with the backlog (6600 robot-s on one robot) above it, no rescue.
        let gated = Chargeops {
            rescue_backlog_s: 6000.0,
            ..p.clone()
        };
        assert_eq!(
            gated.order(&view_of(&lot, &fleet, &robots, &waiting, 2600.0)),
            [2, 1, 0]
        );
    }
}
