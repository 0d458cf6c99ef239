//! The robot lot: bays and a dock at positions in a service area's car park, the robot fleet's
//! parameters, the cars, and the one battery rule every policy obeys.
//!
//! Units: metres, seconds, kWh, kW. Charging is lossless (the kWh a robot's battery gives is the
//! kWh the car gets) and driving costs `drive_kwh_per_km` of battery.

use serde::{Deserialize, Serialize};

use crate::DispatchError;

/// A position in the lot, metres.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub fn new(x: f64, y: f64) -> Point {
        Point { x, y }
    }

    /// Straight-line distance: robots drive across the aisles.
    pub fn dist(self, o: Point) -> f64 {
        (self.x - o.x).hypot(self.y - o.y)
    }

    /// The point a fraction `f` (0..=1) of the way to `o`.
    pub fn lerp(self, o: Point, f: f64) -> Point {
        let f = f.clamp(0.0, 1.0);
        Point::new(self.x + (o.x - self.x) * f, self.y + (o.y - self.y) * f)
    }
}

/// A service area's car park: numbered bays (0-based) and the robots' dock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lot {
    pub bays: Vec<Point>,
    pub dock: Point,
}

impl Lot {
    /// A typical service-area lot: rows of 20 bays 2.7 m apart, rows 16 m apart (bays on both
    /// sides of an aisle), the dock 15 m beside the first row.
    pub fn service_area(bays: usize) -> Lot {
        let bays = (0..bays)
            .map(|i| Point::new((i % 20) as f64 * 2.7, (i / 20) as f64 * 8.0))
            .collect();
        Lot {
            bays,
            dock: Point::new(-15.0, 0.0),
        }
    }

    pub fn check(&self) -> Result<(), DispatchError> {
        if self.bays.is_empty() {
            return Err(DispatchError::Lot("no bays".into()));
        }
        let finite = |p: &Point| p.x.is_finite() && p.y.is_finite();
        if !finite(&self.dock) || !self.bays.iter().all(finite) {
            return Err(DispatchError::Lot(
                "a position is not a finite number".into(),
            ));
        }
        Ok(())
    }

    /// The bay's position; `None` for a bay that does not exist.
    pub fn bay(&self, bay: usize) -> Option<Point> {
        self.bays.get(bay).copied()
    }
}

/// The robot fleet of one lot. Field names are the TOML fleet file's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Fleet {
    pub robots: usize,
    /// Usable battery of each robot.
    pub robot_kwh: f64,
    /// Maximum charging power a robot gives a car.
    pub robot_kw: f64,
    /// Driving speed, walking pace.
    pub speed_mps: f64,
    /// Power at which a robot's battery recharges at the dock (each robot has its own dock slot).
    pub dock_kw: f64,
    /// Plugging overhead per car (connect, handshake, unplug).
    pub plug_s: f64,
    /// Battery used by driving.
    pub drive_kwh_per_km: f64,
}

impl Default for Fleet {
    /// The example: six robots of up to 120 kW, 150 kWh batteries, walking pace.
    fn default() -> Fleet {
        Fleet {
            robots: 6,
            robot_kwh: 150.0,
            robot_kw: 120.0,
            speed_mps: 1.0,
            dock_kw: 150.0,
            plug_s: 60.0,
            drive_kwh_per_km: 0.3,
        }
    }
}

impl Fleet {
    /// Reads a TOML fleet file's text; missing keys take the defaults.
    pub fn from_toml(text: &str) -> Result<Fleet, DispatchError> {
        let f: Fleet = toml::from_str(text).map_err(|e| DispatchError::Fleet(e.to_string()))?;
        f.check()?;
        Ok(f)
    }

    pub fn check(&self) -> Result<(), DispatchError> {
        let pos = |v: f64, name: &str, max: f64| {
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(())
            } else {
                Err(DispatchError::Fleet(format!(
                    "{name} must be above 0 and at most {max}, got {v}"
                )))
            }
        };
        if self.robots == 0 || self.robots > 10_000 {
            return Err(DispatchError::Fleet(format!(
                "robots must be 1-10000, got {}",
                self.robots
            )));
        }
        pos(self.robot_kwh, "robot_kwh", 2000.0)?;
        pos(self.robot_kw, "robot_kw", 1000.0)?;
        pos(self.speed_mps, "speed_mps", 50.0)?;
        pos(self.dock_kw, "dock_kw", 2000.0)?;
        if !(self.plug_s.is_finite() && (0.0..=3600.0).contains(&self.plug_s)) {
            return Err(DispatchError::Fleet(format!(
                "plug_s must be 0-3600, got {}",
                self.plug_s
            )));
        }
        if !(self.drive_kwh_per_km.is_finite() && (0.0..=50.0).contains(&self.drive_kwh_per_km)) {
            return Err(DispatchError::Fleet(format!(
                "drive_kwh_per_km must be 0-50, got {}",
                self.drive_kwh_per_km
            )));
        }
        Ok(())
    }

    pub fn travel_s(&self, a: Point, b: Point) -> f64 {
        a.dist(b) / self.speed_mps
    }

    pub fn drive_kwh(&self, a: Point, b: Point) -> f64 {
        a.dist(b) / 1000.0 * self.drive_kwh_per_km
    }

    /// Charging power a car gets from a robot.
    pub fn power_kw(&self, car_max_kw: f64) -> f64 {
        self.robot_kw.min(car_max_kw)
    }

    /// Time a robot spends at the car: plugging plus charging.
    pub fn service_s(&self, energy_kwh: f64, car_max_kw: f64) -> f64 {
        self.plug_s + energy_kwh / self.power_kw(car_max_kw) * 3600.0
    }

    /// Robot-time a car costs the fleet, travel aside: plugging, charging and the dock time
    /// that puts the energy back. The ordering key of the chargeops policy and the unit of the load.
    pub fn robot_time_s(&self, energy_kwh: f64, car_max_kw: f64) -> f64 {
        self.service_s(energy_kwh, car_max_kw) + energy_kwh / self.dock_kw * 3600.0
    }

    /// The battery rule: the energy a robot at `from` must hold to take a car at `bay`: drive
    /// there, give the car all it asked for, and drive back to the dock. A robot never starts a
    /// car with less, so no battery ever goes below zero.
    pub fn required_kwh(&self, lot: &Lot, from: Point, bay: Point, energy_kwh: f64) -> f64 {
        self.drive_kwh(from, bay) + energy_kwh + self.drive_kwh(bay, lot.dock)
    }

    /// The most a full robot leaving the dock can give a car at the farthest bay.
    pub fn max_car_kwh(&self, lot: &Lot) -> f64 {
        let far = lot
            .bays
            .iter()
            .map(|b| 2.0 * self.drive_kwh(lot.dock, *b))
            .fold(0.0, f64::max);
        self.robot_kwh - far
    }
}

/// One car of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Car {
    pub arrival_s: f64,
    /// 0-based bay index in the lot.
    pub bay: usize,
    pub energy_kwh: f64,
    pub max_power_kw: f64,
    /// How long the driver waits for a robot to be sent before leaving; `None` = forever.
    pub patience_s: Option<f64>,
}

/// The largest energy need a trace may ask for; above it the row is an error ("absurd").
pub const MAX_CAR_KWH: f64 = 200.0;
/// The largest car power accepted.
pub const MAX_CAR_KW: f64 = 1000.0;

/// Checks one car against the lot and the fleet (the trace reader checks rows on their own).
pub fn check_car(car: &Car, lot: &Lot, fleet: &Fleet) -> Result<(), String> {
    if !(car.arrival_s.is_finite() && car.arrival_s >= 0.0) {
        return Err(format!(
            "arrival_s must be 0 or more, got {}",
            car.arrival_s
        ));
    }
    if lot.bay(car.bay).is_none() {
        return Err(format!(
            "bay {} does not exist (the lot has bays 0-{})",
            car.bay,
            lot.bays.len().saturating_sub(1)
        ));
    }
    if !(car.energy_kwh.is_finite() && car.energy_kwh > 0.0 && car.energy_kwh <= MAX_CAR_KWH) {
        return Err(format!(
            "energy_kwh must be above 0 and at most {MAX_CAR_KWH}, got {}",
            car.energy_kwh
        ));
    }
    if !(car.max_power_kw.is_finite() && car.max_power_kw > 0.0 && car.max_power_kw <= MAX_CAR_KW) {
        return Err(format!(
            "max_power_kw must be above 0 and at most {MAX_CAR_KW}, got {}",
            car.max_power_kw
        ));
    }
    if let Some(p) = car.patience_s
        && !(p.is_finite() && p >= 0.0)
    {
        return Err(format!("patience_s must be 0 or more, got {p}"));
    }
    if let Some(bay) = lot.bay(car.bay) {
        let most = fleet.robot_kwh - fleet.required_kwh(lot, lot.dock, bay, 0.0);
        if car.energy_kwh > most {
            return Err(format!(
                "energy_kwh {} is more than a full robot can give at bay {} ({most:.1} kWh)",
                car.energy_kwh, car.bay
            ));
        }
    }
    Ok(())
}
