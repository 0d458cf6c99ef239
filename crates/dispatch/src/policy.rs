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
/// - **Order by robot-time, with aging.** Waiting cars are served in the order of the key
///   `arrival + min(k * robot_time, cap)`, where robot_time is the plugging, charging and dock
///   time the car costs. Short cars go first (shortest-processing-time), and the cap is the
///   aging rule: a car is never passed by a car that arrived more than `cap` after it, as long
///   as the free robot can cover both.
/// - **Battery-aware assignment.** Each car in key order gets the available robot that reaches
///   it first among those that can cover it, ties to the robot with less battery (keeping full
///   batteries for the cars that need them).
/// - **Top-up.** A robot at the dock is available at any charge (it leaves as soon as its
///   battery covers the car it is given) and every robot with nothing to do goes to the dock.
/// - **Reservation (the starvation bound).** A car that has waited `reserve_after_s` and that
///   no available robot can cover gets the available robot that will cover it soonest: that
///   robot goes (or stays) at the dock until it can, and is not spent on later cars. Without it
///   the cars too big for the partly charged robots would wait for a lull (the baselines' max).
#[derive(Debug, Clone)]
pub struct Chargeops {
    /// Weight of robot-time in the key.
    pub k: f64,
    /// Aging cap: the most robot-time can move a car back, seconds.
    pub cap_s: f64,
    /// Reserve a robot for each car that no available robot can cover once it has waited
    /// this long (`f64::INFINITY`: never).
    pub reserve_after_s: f64,
}

impl Default for Chargeops {
    fn default() -> Chargeops {
        Chargeops {
            k: 4.0,
            cap_s: 3.0 * 3600.0,
            reserve_after_s: 2.5 * 3600.0,
        }
    }
}

impl Chargeops {
    pub fn key(&self, view: &View<'_>, car: &CarView) -> f64 {
        let work = view.fleet.robot_time_s(car.energy_kwh, car.max_power_kw);
        car.arrival_s + (self.k * work).min(self.cap_s)
    }

    /// Seconds until robot `r` could cover `car` by going (or staying) at the dock and charging.
    fn time_to_cover(view: &View<'_>, r: &RobotView, car: &CarView) -> Option<f64> {
        let f = view.fleet;
        let bay = view.lot.bay(car.bay)?;
        let need = f.required_kwh(view.lot, view.lot.dock, bay, car.energy_kwh);
        if need > f.robot_kwh {
            return None;
        }
        let at_dock = r.battery_kwh - f.drive_kwh(r.pos, view.lot.dock);
        let drive = f.travel_s(r.pos, view.lot.dock);
        Some(drive + (need - at_dock).max(0.0) / f.dock_kw * 3600.0)
    }
}

impl Policy for Chargeops {
    fn name(&self) -> &'static str {
        "chargeops"
    }

    fn wake_at(&self, view: &View<'_>) -> Option<f64> {
        view.waiting
            .iter()
            .map(|c| c.arrival_s + self.reserve_after_s)
            .filter(|&t| t > view.now && t.is_finite())
            .min_by(f64::total_cmp)
    }

    fn decide(&mut self, view: &View<'_>) -> Vec<Action> {
        let mut used = vec![false; view.robots.len()];
        let mut out = Vec::new();
        let mut order: Vec<(f64, usize)> = view
            .waiting
            .iter()
            .enumerate()
            .map(|(i, c)| (self.key(view, c), i))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(_, i) in &order {
            if used.iter().all(|&u| u) {
                break;
            }
            let car = &view.waiting[i];
            let best = view
                .robots
                .iter()
                .filter(|r| r.status.available() && !used[r.id] && view.can_cover(r, car))
                .min_by(|a, b| {
                    // Travel rounded to 5 s so that near ties go to the smaller battery.
                    let ta = (view.travel_s(a, car) / 5.0).round();
                    let tb = (view.travel_s(b, car) / 5.0).round();
                    ta.total_cmp(&tb)
                        .then(a.battery_kwh.total_cmp(&b.battery_kwh))
                        .then(a.id.cmp(&b.id))
                });
            if let Some(r) = best {
                used[r.id] = true;
                out.push(Action::Assign {
                    robot: r.id,
                    car: car.id,
                });
            } else if view.now - car.arrival_s >= self.reserve_after_s {
                let soonest = view
                    .robots
                    .iter()
                    .filter(|r| r.status.available() && !used[r.id])
                    .filter_map(|r| Some((Self::time_to_cover(view, r, car)?, r)))
                    .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
                if let Some((_, r)) = soonest {
                    used[r.id] = true;
                    if r.status != RobotStatus::Docked {
                        out.push(Action::ToDock { robot: r.id });
                    }
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
}

/// The three policies of the benchmark, in report order.
pub fn all_policies() -> Vec<Box<dyn Policy>> {
    vec![
        Box::new(Fifo::default()),
        Box::new(NearestIdle::default()),
        Box::new(Chargeops::default()),
    ]
}
