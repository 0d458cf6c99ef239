//! Arrival traces: the CSV reader (`arrival_s,bay,energy_kwh,max_power_kw,patience_s`) and the
//! seeded holiday-peak generator.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::DispatchError;
use crate::lot::{Car, Fleet, Lot, MAX_CAR_KW, MAX_CAR_KWH};

/// The trace CSV's columns, in this order.
pub const HEADER: [&str; 5] = [
    "arrival_s",
    "bay",
    "energy_kwh",
    "max_power_kw",
    "patience_s",
];

/// Reads a trace. Checks every row on its own (times, energies, powers; bays against `bays`
/// when given) and names the line at fault. Rows may come in any order; the cars are returned
/// sorted by arrival (stable, so equal times keep file order).
pub fn parse_trace(text: &str, bays: Option<usize>) -> Result<Vec<Car>, DispatchError> {
    let err = |line: usize, message: String| DispatchError::Trace { line, message };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (hline, header) = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty())
        .ok_or_else(|| err(1, "empty trace: expected the header".into()))?;
    let cols: Vec<&str> = header
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::trim)
        .collect();
    if cols != HEADER {
        return Err(err(
            hline,
            format!(
                "expected the header {:?}, got {:?}",
                HEADER.join(","),
                header.trim()
            ),
        ));
    }
    let mut cars = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != HEADER.len() {
            return Err(err(
                n,
                format!("expected {} fields, got {}", HEADER.len(), f.len()),
            ));
        }
        let num = |i: usize| -> Result<f64, DispatchError> {
            let v: f64 = f[i]
                .parse()
                .map_err(|_| err(n, format!("{} is not a number: {:?}", HEADER[i], f[i])))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(err(
                    n,
                    format!("{} is not a finite number: {:?}", HEADER[i], f[i]),
                ))
            }
        };
        let arrival_s = num(0)?;
        if arrival_s < 0.0 {
            return Err(err(n, format!("arrival_s is negative: {arrival_s}")));
        }
        let bay: usize = f[1].parse().map_err(|_| {
            err(
                n,
                format!("bay is not a bay number (0, 1, ...): {:?}", f[1]),
            )
        })?;
        if let Some(b) = bays
            && bay >= b
        {
            return Err(err(
                n,
                format!("bay {bay} does not exist (the lot has bays 0-{})", b - 1),
            ));
        }
        let energy_kwh = num(2)?;
        if energy_kwh <= 0.0 || energy_kwh > MAX_CAR_KWH {
            return Err(err(
                n,
                format!("energy_kwh must be above 0 and at most {MAX_CAR_KWH}, got {energy_kwh}"),
            ));
        }
        let max_power_kw = num(3)?;
        if max_power_kw <= 0.0 || max_power_kw > MAX_CAR_KW {
            return Err(err(
                n,
                format!(
                    "max_power_kw must be above 0 and at most {MAX_CAR_KW}, got {max_power_kw}"
                ),
            ));
        }
        let patience_s = if f[4].is_empty() {
            None
        } else {
            let p = num(4)?;
            if p < 0.0 {
                return Err(err(n, format!("patience_s is negative: {p}")));
            }
            Some(p)
        };
        cars.push(Car {
            arrival_s,
            bay,
            energy_kwh,
            max_power_kw,
            patience_s,
        });
    }
    cars.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    Ok(cars)
}

/// Writes cars as a trace CSV (the reader's format).
pub fn write_trace(cars: &[Car]) -> String {
    let mut s = HEADER.join(",");
    s.push('\n');
    for c in cars {
        let p = c.patience_s.map(|p| format!("{p:.0}")).unwrap_or_default();
        s.push_str(&format!(
            "{:.1},{},{:.2},{},{}\n",
            c.arrival_s, c.bay, c.energy_kwh, c.max_power_kw, p
        ));
    }
    s
}

/// The seeded holiday-peak generator: a service area on a holiday travel day, 12 hours of
/// arrivals, a quiet morning rising to a peak about twice the mean rate in the early afternoon,
/// then falling.
#[derive(Debug, Clone)]
pub struct HolidayPeak {
    pub seed: u64,
    pub bays: usize,
    /// Length of the arrival window.
    pub span_s: f64,
    /// The trace's load on `reference`: robot-time the cars need (plugging, charging, dock
    /// time) over the reference fleet's robot-time in the window.
    pub load: f64,
    /// The fleet the load is measured against; 10 robots of 150 kWh, 120 kW, 150 kW dock.
    pub reference: Fleet,
    /// Share of drivers with a finite patience (30-120 minutes); the rest wait forever.
    pub patience_share: f64,
}

impl HolidayPeak {
    pub fn new(seed: u64) -> HolidayPeak {
        HolidayPeak {
            seed,
            bays: 60,
            span_s: 12.0 * 3600.0,
            load: 1.0,
            reference: Fleet {
                robots: 10,
                ..Fleet::default()
            },
            patience_share: 0.0,
        }
    }

    /// Relative arrival rate at time `t` of the window, peak 1.
    fn shape(&self, t: f64) -> f64 {
        let x = (t / self.span_s - 0.55) / 0.16;
        0.3 + 0.7 * (-0.5 * x * x).exp()
    }

    /// One holiday driver's energy need (kWh) and car power (kW); the demo's simulated robot
    /// lots draw their cars from it too, so the live lot and the benchmark see the same drivers.
    pub fn draw_car(rng: &mut SmallRng) -> (f64, f64) {
        // Holiday drivers: most top up 20-40 kWh, a third arrive low and take 40-90.
        let energy = if rng.random_bool(0.67) {
            normal(rng, 28.0, 10.0).clamp(5.0, 60.0)
        } else {
            normal(rng, 58.0, 15.0).clamp(25.0, 100.0)
        };
        let power = match rng.random_range(0..100) {
            0..15 => 60.0,
            15..35 => 90.0,
            35..65 => 120.0,
            65..85 => 150.0,
            _ => 250.0,
        };
        (energy, power)
    }

    /// Mean robot-time of one car on the reference fleet, by a fixed-seed sample.
    fn mean_robot_time_s(&self) -> f64 {
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        let n = 20_000;
        (0..n)
            .map(|_| {
                let (e, p) = Self::draw_car(&mut rng);
                self.reference.robot_time_s(e, p)
            })
            .sum::<f64>()
            / n as f64
    }

    pub fn generate(&self) -> Vec<Car> {
        let fleet_s = self.reference.robots as f64 * self.span_s;
        let n = (self.load * fleet_s / self.mean_robot_time_s()).round() as usize;
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut times: Vec<f64> = Vec::with_capacity(n);
        while times.len() < n {
            let t = rng.random_range(0.0..self.span_s);
            if rng.random_range(0.0..1.0) < self.shape(t) {
                times.push((t * 10.0).round() / 10.0);
            }
        }
        times.sort_by(f64::total_cmp);
        times
            .into_iter()
            .map(|arrival_s| {
                let (energy, power) = Self::draw_car(&mut rng);
                let patience_s = rng
                    .random_bool(self.patience_share.clamp(0.0, 1.0))
                    .then(|| rng.random_range(1800.0..7200.0_f64).round());
                Car {
                    arrival_s,
                    bay: rng.random_range(0..self.bays.max(1)),
                    energy_kwh: (energy * 100.0).round() / 100.0,
                    max_power_kw: power,
                    patience_s,
                }
            })
            .collect()
    }
}

fn normal(rng: &mut SmallRng, mean: f64, sd: f64) -> f64 {
    // Box-Muller; `rand` without `rand_distr` has no normal.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Checks every car against the lot and the fleet, naming the car (its index in arrival order).
pub fn check_cars(cars: &[Car], lot: &Lot, fleet: &Fleet) -> Result<(), DispatchError> {
    for (i, c) in cars.iter().enumerate() {
        crate::lot::check_car(c, lot, fleet).map_err(|message| DispatchError::Car {
            car: i,
            arrival_s: c.arrival_s,
            message,
        })?;
    }
    Ok(())
}
