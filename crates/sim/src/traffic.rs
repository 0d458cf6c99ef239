//! The traffic model: cars arriving at service areas, queueing when every charger is busy,
//! charging to about 80 %, leaving; chargers faulting and dropping offline. Pure and seeded:
//! the same network, scenario and seed give the same cars at the same simulated times.
//!
//! The engine only decides; [`crate::fleet`] turns its [`Action`]s into OCPP traffic.

use std::collections::VecDeque;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, Offset, TimeZone, Timelike, Utc, Weekday,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use chargeops_core::network_file::{Direction, NetworkSpec, StationKind, StationSpec};

mod queueing;
pub use queueing::{DiversionOptions, QueueReport, evaluate};

/// China Standard Time: every scenario's calendar is local to the province.
pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// Changsha, the capital: holiday flows run out of it.
const CHANGSHA: (f64, f64) = (28.228, 112.939);

/// Which traffic to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// An ordinary week, starting now.
    Normal,
    /// The Spring Festival travel rush of 2027 (Festival on 6 February), from three days before
    /// (history of earlier years has the rush of its own festival).
    SpringFestival,
    /// The National Day golden week of 2027, from the afternoon before 1 October.
    NationalDay,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::SpringFestival => "spring-festival",
            Scenario::NationalDay => "national-day",
        }
    }

    /// Simulated time at which the scenario starts.
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let at = |y, m, d, h| {
            NaiveDate::from_ymd_opt(y, m, d)
                .and_then(|date| date.and_hms_opt(h, 0, 0))
                .and_then(|t| cst().from_local_datetime(&t).single())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(now)
        };
        match self {
            Scenario::Normal => now,
            Scenario::SpringFestival => at(2027, 2, 3, 6),
            Scenario::NationalDay => at(2027, 9, 30, 12),
        }
    }

    /// Holiday intensity of a local day, 0 (ordinary) to 1 (the heaviest day), and whether the
    /// flow that day runs out of the cities (true) or back into them.
    fn holiday(self, day: NaiveDate) -> (f64, bool) {
        let (festival, profile): (NaiveDate, &[(i64, f64, bool)]) = match self {
            Scenario::Normal => return (0.0, true),
            Scenario::SpringFestival => (
                spring_festival_near(day),
                &[
                    (-6, 0.35, true),
                    (-5, 0.5, true),
                    (-4, 0.7, true),
                    (-3, 0.9, true),
                    (-2, 1.0, true),
                    (-1, 0.6, true),
                    (0, 0.15, true),
                    (1, 0.2, false),
                    (2, 0.35, false),
                    (3, 0.5, false),
                    (4, 0.8, false),
                    (5, 0.9, false),
                    (6, 0.7, false),
                ],
            ),
            Scenario::NationalDay => (
                NaiveDate::from_ymd_opt(day.year(), 10, 1).unwrap_or_default(),
                &[
                    (-1, 0.6, true),
                    (0, 1.0, true),
                    (1, 0.8, true),
                    (2, 0.4, true),
                    (3, 0.3, false),
                    (4, 0.45, false),
                    (5, 0.8, false),
                    (6, 0.9, false),
                ],
            ),
        };
        let offset = (day - festival).num_days();
        profile
            .iter()
            .find(|(d, ..)| *d == offset)
            .map_or((0.0, true), |&(_, k, out)| (k, out))
    }

    /// How many times the ordinary demand the heaviest holiday day brings to a main corridor.
    fn peak(self) -> f64 {
        match self {
            Scenario::Normal => 1.0,
            Scenario::SpringFestival => 4.5,
            Scenario::NationalDay => 3.5,
        }
    }
}

/// The Spring Festival (lunar new year's day) nearest to `day`, so that simulated history of
/// earlier years has its own rush (2024-2028; 2027's outside that range).
fn spring_festival_near(day: NaiveDate) -> NaiveDate {
    const FESTIVALS: [(i32, u32, u32); 5] = [
        (2024, 2, 10),
        (2025, 1, 29),
        (2026, 2, 17),
        (2027, 2, 6),
        (2028, 1, 26),
    ];
    FESTIVALS
        .iter()
        .filter_map(|&(y, m, d)| NaiveDate::from_ymd_opt(y, m, d))
        .min_by_key(|f| (*f - day).num_days().abs())
        .unwrap_or_default()
}

/// Relative arrivals by local hour of day on a highway (night low, late morning and
/// afternoon peaks).
const HOURLY: [f64; 24] = [
    0.25, 0.18, 0.14, 0.12, 0.12, 0.18, 0.35, 0.6, 0.85, 1.0, 1.05, 1.0, 0.9, 0.95, 1.0, 1.05, 1.0,
    0.9, 0.75, 0.6, 0.5, 0.42, 0.35, 0.3,
];

fn weekday_factor(d: Weekday) -> f64 {
    match d {
        Weekday::Fri => 1.15,
        Weekday::Sat => 1.1,
        Weekday::Sun => 1.2,
        _ => 0.95,
    }
}

/// How much a highway carries relative to the busiest (G4).
fn highway_weight(highway: &str) -> f64 {
    match highway {
        "G4" => 1.0,
        "G60" => 0.85,
        "G55" | "G65" | "G72" => 0.6,
        "G56" | "G5513" => 0.55,
        _ => 0.4,
    }
}

/// Cars per charger per hour at the ordinary daily peak: with sessions of about 35 minutes
/// this keeps an ordinary day's peak occupancy near one half.
const BASE_RATE_PER_CHARGER: f64 = 0.8;

fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// A car that stops to charge.
#[derive(Debug, Clone, PartialEq)]
pub struct Car {
    pub id: u64,
    pub battery_kwh: f64,
    pub soc_arrival: f64,
    pub soc_target: f64,
    pub max_kw: f64,
    /// How long the driver waits in a queue before driving on; `None` waits until served.
    pub patience: Option<Duration>,
    /// The driver's RFID tag / app account, presented to the charger.
    pub id_tag: String,
}

impl Car {
    pub fn energy_kwh(&self) -> f64 {
        (self.battery_kwh * (self.soc_target - self.soc_arrival)).max(0.5)
    }

    /// Charging time on a charger of `charger_kw`: the car takes at most its own maximum, and
    /// the taper above about 60 % state of charge brings the average to 85 % of that.
    pub fn charge_time(&self, charger_kw: f64) -> Duration {
        let kw = self.max_kw.min(charger_kw).max(7.0) * 0.85;
        Duration::milliseconds((self.energy_kwh() / kw * 3_600_000.0) as i64)
    }
}

/// What the engine decided; the fleet acts on it over OCPP.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A car plugs into a charger and charges for `duration`, taking `energy_wh`.
    Plug {
        station: usize,
        charger: usize,
        car: Car,
        duration: Duration,
        energy_wh: i64,
    },
    /// The car is full and leaves.
    Unplug {
        station: usize,
        charger: usize,
        car_id: u64,
    },
    /// The charger faults; a session running on it (`interrupted`, the car) ends with it.
    Fault {
        station: usize,
        charger: usize,
        error_code: &'static str,
        interrupted: Option<u64>,
    },
    Repair {
        station: usize,
        charger: usize,
    },
    /// The charger loses its connection for `duration` and then reconnects.
    Disconnect {
        station: usize,
        charger: usize,
        duration: Duration,
    },
    /// The physical queue at the station changed.
    Queue {
        station: usize,
        waiting: usize,
    },
}

#[derive(Debug, Clone)]
enum Slot {
    Free,
    Charging { car_id: u64, until: DateTime<Utc> },
    Faulted { until: DateTime<Utc> },
}

/// One station as the engine sees it.
#[derive(Debug, Clone)]
pub struct StationSim {
    pub id: String,
    pub power_kw: f64,
    /// Ordinary-peak arrivals per hour for the whole station.
    base_rate: f64,
    /// 0-1: how much of the holiday surge reaches this station.
    corridor: f64,
    /// The side's direction of travel runs away from Changsha.
    outbound: bool,
    slots: Vec<Slot>,
    /// Chargers out of contact until the given time (their slot state is unchanged).
    offline_until: Vec<Option<DateTime<Utc>>>,
    queue: VecDeque<(Car, DateTime<Utc>)>,
}

impl StationSim {
    fn new(spec: &StationSpec) -> StationSim {
        let chargers = spec.chargers.max(1) as usize;
        let (corridor, outbound) = match (&spec.highway, spec.direction) {
            (Some(h), Some(dir)) => {
                let near = (-distance_km((spec.lat, spec.lon), CHANGSHA) / 150.0).exp();
                let weight = highway_weight(h) * (0.7 + 0.3 * near);
                // Outbound: the direction of travel points away from Changsha.
                let (dy, dx) = (spec.lat - CHANGSHA.0, spec.lon - CHANGSHA.1);
                let outbound = match dir {
                    Direction::N => dy > 0.0,
                    Direction::S => dy < 0.0,
                    Direction::E => dx > 0.0,
                    Direction::W => dx < 0.0,
                };
                (weight.min(1.0), outbound)
            }
            _ => (0.15, true),
        };
        let kind_factor = match spec.kind {
            StationKind::ServiceArea => 1.0,
            StationKind::ParkingArea => 0.7,
            StationKind::Urban => 0.9,
        };
        StationSim {
            id: spec.id.clone(),
            power_kw: f64::from(spec.power_kw.max(7)),
            base_rate: BASE_RATE_PER_CHARGER * chargers as f64 * kind_factor,
            corridor,
            outbound,
            slots: vec![Slot::Free; chargers],
            offline_until: vec![None; chargers],
            queue: VecDeque::new(),
        }
    }

    pub fn chargers(&self) -> usize {
        self.slots.len()
    }

    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    pub fn charging(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Charging { .. }))
            .count()
    }

    /// Expected arrivals per hour at `t` under `scenario`.
    pub fn arrival_rate(&self, t: DateTime<Utc>, scenario: Scenario) -> f64 {
        let local = t.with_timezone(&cst());
        let hourly = HOURLY[local.hour() as usize];
        let (intensity, out) = scenario.holiday(local.date_naive());
        let direction = if out == self.outbound { 1.0 } else { 0.55 };
        let surge = 1.0 + (scenario.peak() - 1.0) * intensity * self.corridor * direction;
        // On holidays the night stays busier: people drive through it to get home.
        let hourly = hourly + (1.0 - hourly) * 0.5 * intensity * self.corridor;
        self.base_rate * hourly * weekday_factor(local.weekday()) * surge
    }
}

/// Counters the progress line and the end-of-run summary show.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub arrived: u64,
    pub served: u64,
    pub abandoned: u64,
    pub energy_kwh: f64,
    pub faults: u64,
    pub disconnects: u64,
}

/// The whole province's traffic.
pub struct Engine {
    rng: SmallRng,
    scenario: Scenario,
    now: DateTime<Utc>,
    stations: Vec<StationSim>,
    next_car: u64,
    /// Per charger and hour.
    fault_rate: f64,
    disconnect_rate: f64,
    /// Faults wait for a repair from outside ([`Engine::repair`]) rather than clearing after a
    /// random 1-4 h; `HELD_FAULT_LIMIT` still bounds them if nobody comes.
    held_faults: bool,
    pub totals: Totals,
    /// Waits, wait estimates and (when on) diversion: see [`queueing`].
    queueing: queueing::Queueing,
}

/// How long a held fault lasts when no repair comes.
const HELD_FAULT_LIMIT: i64 = 24 * 60;

impl Engine {
    pub fn new(
        network: &NetworkSpec,
        scenario: Scenario,
        start: DateTime<Utc>,
        seed: u64,
    ) -> Engine {
        Engine {
            rng: SmallRng::seed_from_u64(seed),
            scenario,
            now: start,
            stations: network.stations.iter().map(StationSim::new).collect(),
            next_car: 1,
            fault_rate: 0.002,
            held_faults: false,
            disconnect_rate: 0.003,
            totals: Totals::default(),
            queueing: queueing::Queueing::new(network),
        }
    }

    /// Sets how often chargers fault and drop offline (per charger per simulated hour).
    pub fn with_incident_rates(mut self, fault_rate: f64, disconnect_rate: f64) -> Engine {
        self.fault_rate = fault_rate.max(0.0);
        self.disconnect_rate = disconnect_rate.max(0.0);
        self
    }

    /// Faults stay until [`Engine::repair`] (a field crew, in the demo) clears them.
    pub fn with_held_faults(mut self) -> Engine {
        self.held_faults = true;
        self
    }

    /// A crew repaired the charger: a fault on it clears at the next step. False when the
    /// charger is not faulted (or unknown).
    pub fn repair(&mut self, station: usize, charger: usize) -> bool {
        let now = self.now;
        match self
            .stations
            .get_mut(station)
            .and_then(|s| s.slots.get_mut(charger))
        {
            Some(Slot::Faulted { until }) => {
                *until = now;
                true
            }
            _ => false,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn stations(&self) -> &[StationSim] {
        &self.stations
    }

    pub fn waiting(&self) -> usize {
        self.stations.iter().map(|s| s.queue.len()).sum()
    }

    pub fn charging(&self) -> usize {
        self.stations.iter().map(StationSim::charging).sum()
    }

    fn new_car(&mut self) -> Car {
        let rng = &mut self.rng;
        let battery_kwh = [50.0, 60.0, 75.0, 80.0, 90.0, 100.0][rng.random_range(0..6)];
        let id = self.next_car;
        self.next_car += 1;
        Car {
            id,
            battery_kwh,
            soc_arrival: rng.random_range(0.08..0.40),
            soc_target: rng.random_range(0.75..0.85),
            max_kw: [60.0, 90.0, 120.0, 150.0, 180.0][rng.random_range(0..5)],
            patience: if rng.random_bool(0.25) {
                Some(Duration::minutes(rng.random_range(15..60)))
            } else {
                None
            },
            id_tag: format!("DRV{:06}", rng.random_range(0..crate::traffic::DRIVER_TAGS)),
        }
    }

    /// Advances simulated time by `dt` and returns what happened, in order.
    pub fn advance(&mut self, dt: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        let end = self.now + dt;
        let hours = dt.num_milliseconds() as f64 / 3_600_000.0;
        for s in 0..self.stations.len() {
            self.step_station(s, end, hours, &mut actions);
        }
        self.now = end;
        actions
    }

    fn step_station(&mut self, s: usize, now: DateTime<Utc>, hours: f64, out: &mut Vec<Action>) {
        let queue_before = self.stations[s].queue.len();
        // Departures and repairs due by now.
        for c in 0..self.stations[s].slots.len() {
            match self.stations[s].slots[c] {
                Slot::Charging { car_id, until } if until <= now => {
                    self.stations[s].slots[c] = Slot::Free;
                    self.totals.served += 1;
                    out.push(Action::Unplug {
                        station: s,
                        charger: c,
                        car_id,
                    });
                }
                Slot::Faulted { until } if until <= now => {
                    self.stations[s].slots[c] = Slot::Free;
                    out.push(Action::Repair {
                        station: s,
                        charger: c,
                    });
                }
                _ => {}
            }
            if self.stations[s].offline_until[c].is_some_and(|t| t <= now) {
                self.stations[s].offline_until[c] = None;
            }
        }
        // Incidents.
        for c in 0..self.stations[s].slots.len() {
            if !matches!(self.stations[s].slots[c], Slot::Faulted { .. })
                && self
                    .rng
                    .random_bool((self.fault_rate * hours).clamp(0.0, 1.0))
            {
                // A car charging there ends its session with the fault and drives on.
                let interrupted = match self.stations[s].slots[c] {
                    Slot::Charging { car_id, .. } => Some(car_id),
                    _ => None,
                };
                let mut repair = Duration::minutes(self.rng.random_range(60..240));
                if self.held_faults {
                    repair = Duration::minutes(HELD_FAULT_LIMIT);
                }
                self.stations[s].slots[c] = Slot::Faulted {
                    until: now + repair,
                };
                self.totals.faults += 1;
                let code = [
                    "GroundFailure",
                    "OverCurrentFailure",
                    "HighTemperature",
                    "PowerMeterFailure",
                ][self.rng.random_range(0..4)];
                out.push(Action::Fault {
                    station: s,
                    charger: c,
                    error_code: code,
                    interrupted,
                });
            }
            if self.stations[s].offline_until[c].is_none()
                && self
                    .rng
                    .random_bool((self.disconnect_rate * hours).clamp(0.0, 1.0))
            {
                let d = Duration::minutes(self.rng.random_range(2..15));
                self.stations[s].offline_until[c] = Some(now + d);
                self.totals.disconnects += 1;
                out.push(Action::Disconnect {
                    station: s,
                    charger: c,
                    duration: d,
                });
            }
        }
        // Arrivals: a Poisson process thinned per step.
        let rate = self.stations[s].arrival_rate(now, self.scenario) * hours;
        let arrivals = poisson(&mut self.rng, rate);
        self.arrive_diverted(s, now);
        for _ in 0..arrivals {
            let car = self.new_car();
            self.totals.arrived += 1;
            self.arrive(s, car, now);
        }
        // Drivers who lose patience drive on.
        let before = self.stations[s].queue.len();
        let queueing = &mut self.queueing;
        self.stations[s].queue.retain(|(car, at)| {
            let stays = car.patience.is_none_or(|p| *at + p > now);
            if !stays {
                queueing.abandoned(car, *at, now);
            }
            stays
        });
        self.totals.abandoned += (before - self.stations[s].queue.len()) as u64;
        // Free chargers take the next cars in the order they came.
        for c in 0..self.stations[s].slots.len() {
            if !matches!(self.stations[s].slots[c], Slot::Free) {
                continue;
            }
            let Some((car, since)) = self.stations[s].queue.pop_front() else {
                break;
            };
            let duration = car.charge_time(self.stations[s].power_kw);
            self.queueing.plugged(s, c, &car, since, now, duration);
            let energy_wh = (car.energy_kwh() * 1000.0).round() as i64;
            self.totals.energy_kwh += car.energy_kwh();
            self.stations[s].slots[c] = Slot::Charging {
                car_id: car.id,
                until: now + duration,
            };
            out.push(Action::Plug {
                station: s,
                charger: c,
                car,
                duration,
                energy_wh,
            });
        }
        if self.stations[s].queue.len() != queue_before {
            out.push(Action::Queue {
                station: s,
                waiting: self.stations[s].queue.len(),
            });
        }
    }
}

/// How many driver tags the simulated population uses (registered as accepted id tags).
pub const DRIVER_TAGS: u32 = 5000;

/// A Poisson draw by inversion; rates per step are small, so this is quick.
fn poisson(rng: &mut SmallRng, mean: f64) -> u32 {
    if mean <= 0.0 || !mean.is_finite() {
        return 0;
    }
    if mean > 30.0 {
        // Normal approximation for big steps (a very high speed).
        let z: f64 = {
            let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        };
        return (mean + z * mean.sqrt()).round().max(0.0) as u32;
    }
    let limit = (-mean).exp();
    let mut k = 0;
    let mut p: f64 = rng.random();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_core::network_file::{HUNAN, parse_network};

    fn engine(scenario: Scenario, seed: u64) -> Engine {
        let net = parse_network(HUNAN).expect("bundled network parses");
        Engine::new(&net, scenario, scenario.start(Utc::now()), seed)
    }

    fn run(e: &mut Engine, hours: i64) -> Vec<Action> {
        let mut all = Vec::new();
        for _ in 0..hours * 60 {
            all.extend(e.advance(Duration::minutes(1)));
        }
        all
    }

    #[test]
    fn same_seed_same_traffic() {
        let (mut a, mut b) = (
            engine(Scenario::SpringFestival, 7),
            engine(Scenario::SpringFestival, 7),
        );
        assert_eq!(run(&mut a, 3), run(&mut b, 3));
        let mut c = engine(Scenario::SpringFestival, 8);
        assert_ne!(run(&mut a, 3), run(&mut c, 3));
    }

    #[test]
    fn sessions_start_and_end_and_never_double_book() {
        let mut e = engine(Scenario::Normal, 1);
        let actions = run(&mut e, 12);
        let mut busy = std::collections::HashSet::new();
        let (mut plugs, mut unplugs) = (0, 0);
        for a in &actions {
            match a {
                Action::Plug {
                    station,
                    charger,
                    duration,
                    energy_wh,
                    ..
                } => {
                    assert!(busy.insert((*station, *charger)), "charger plugged twice");
                    assert!(*duration > Duration::minutes(2) && *duration < Duration::hours(3));
                    assert!(*energy_wh > 0);
                    plugs += 1;
                }
                Action::Unplug {
                    station, charger, ..
                } => {
                    assert!(
                        busy.remove(&(*station, *charger)),
                        "unplugged a free charger"
                    );
                    unplugs += 1;
                }
                Action::Fault {
                    station,
                    charger,
                    interrupted,
                    ..
                } => {
                    assert_eq!(busy.remove(&(*station, *charger)), interrupted.is_some());
                }
                _ => {}
            }
        }
        assert!(
            plugs > 1000,
            "only {plugs} sessions in 12 h across the province"
        );
        assert!(unplugs > plugs / 2);
        let interrupted = actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Fault {
                        interrupted: Some(_),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(e.totals.served as usize + e.charging() + interrupted, plugs);
    }

    #[test]
    fn spring_festival_brings_queues_on_g4() {
        let net = parse_network(HUNAN).expect("bundled network parses");
        let normal_rate: f64;
        let festival_rate: f64;
        {
            let e = engine(Scenario::Normal, 3);
            let i = net
                .stations
                .iter()
                .position(|s| s.highway.as_deref() == Some("G4"))
                .expect("a G4 station");
            let t =
                Scenario::SpringFestival.start(Utc::now()) + Duration::days(1) + Duration::hours(4);
            normal_rate = e.stations()[i].arrival_rate(t, Scenario::Normal);
            festival_rate = e.stations()[i].arrival_rate(t, Scenario::SpringFestival);
        }
        assert!(
            festival_rate > 2.0 * normal_rate,
            "{festival_rate} vs {normal_rate}"
        );

        let mut normal = engine(Scenario::Normal, 5);
        let mut festival = engine(Scenario::SpringFestival, 5);
        let mut max_wait = (0, 0);
        for _ in 0..(10 * 60) {
            normal.advance(Duration::minutes(1));
            festival.advance(Duration::minutes(1));
            max_wait.0 = max_wait.0.max(normal.waiting());
            max_wait.1 = max_wait.1.max(festival.waiting());
        }
        assert!(max_wait.1 > 3 * max_wait.0.max(1), "queues {max_wait:?}");
    }

    #[test]
    fn charge_time_follows_energy_and_power() {
        let car = Car {
            id: 1,
            battery_kwh: 80.0,
            soc_arrival: 0.2,
            soc_target: 0.8,
            max_kw: 150.0,
            patience: None,
            id_tag: "T".into(),
        };
        // 48 kWh at 0.85 x 120 kW is about 28 minutes.
        let t = car.charge_time(120.0).num_minutes();
        assert!((27..=29).contains(&t), "{t}");
        assert!(car.charge_time(60.0) > car.charge_time(120.0));
    }

    #[test]
    fn poisson_mean_is_right() {
        let mut rng = SmallRng::seed_from_u64(1);
        let n = 20_000;
        let mean = (0..n).map(|_| poisson(&mut rng, 0.3) as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.3).abs() < 0.02, "{mean}");
        let big = (0..2000)
            .map(|_| poisson(&mut rng, 50.0) as f64)
            .sum::<f64>()
            / 2000.0;
        assert!((big - 50.0).abs() < 1.0, "{big}");
    }
}
