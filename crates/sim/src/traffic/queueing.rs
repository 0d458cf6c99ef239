//! Queue numbers and diversion in the traffic engine, offline: every car's wait is recorded;
//! a car that has to queue is given a wait estimate by the platform's own estimator
//! (`chargeops_queue::estimate`, from what the platform could know: how long each session has
//! run and the station's recent session lengths, never when a car will really leave), and,
//! with diversion on, is offered the best other service area by the platform's own ranking
//! (`chargeops_queue::diversion`) and takes it with some probability.
//!
//! Diversion decisions draw from their own random stream, so the same seed brings the same cars
//! at the same times whether diversion is on or off.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use chargeops_core::network_file::NetworkSpec;
use chargeops_queue::diversion::{self, KWH_PER_KM, StationNow, Trip};
use chargeops_queue::estimate::{self, History, Slot as Est};

use super::{Car, Engine, Scenario, Slot};

/// Session lengths kept per station for its history.
const RECENT: usize = 60;

/// How cars respond to diversion suggestions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiversionOptions {
    /// Probability a driver takes a suggestion.
    pub accept_probability: f64,
    /// A suggestion is made only when it saves at least this long.
    pub min_saving_s: f64,
    pub speed_kmh: f64,
    pub twin_detour_km: f64,
}

impl Default for DiversionOptions {
    fn default() -> Self {
        DiversionOptions {
            accept_probability: 0.7,
            min_saving_s: 600.0,
            speed_kmh: 90.0,
            twin_detour_km: 20.0,
        }
    }
}

pub(super) struct Queueing {
    net: NetworkSpec,
    index: HashMap<String, usize>,
    diversion: Option<DiversionOptions>,
    rng: SmallRng,
    plug_start: HashMap<(usize, usize), DateTime<Utc>>,
    recent: Vec<VecDeque<f64>>,
    histories: Vec<History>,
    rebuilt_at: Option<DateTime<Utc>>,
    estimates: HashMap<u64, f64>,
    pending: Vec<(DateTime<Utc>, usize, Car)>,
    diverted: HashSet<u64>,
    // Measurements.
    waits_s: Vec<f64>,
    abandoned_waits_s: Vec<f64>,
    errors_s: Vec<f64>,
    detour_km: f64,
    queue_max: Vec<usize>,
    queue_sum: Vec<u64>,
    samples: u64,
}

impl Queueing {
    pub(super) fn new(net: &NetworkSpec) -> Queueing {
        let n = net.stations.len();
        Queueing {
            net: net.clone(),
            index: net
                .stations
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i))
                .collect(),
            diversion: None,
            rng: SmallRng::seed_from_u64(0x5eed_d1e5),
            plug_start: HashMap::new(),
            recent: vec![VecDeque::new(); n],
            histories: vec![History::fallback(35.0 * 60.0); n],
            rebuilt_at: None,
            estimates: HashMap::new(),
            pending: Vec::new(),
            diverted: HashSet::new(),
            waits_s: Vec::new(),
            abandoned_waits_s: Vec::new(),
            errors_s: Vec::new(),
            detour_km: 0.0,
            queue_max: vec![0; n],
            queue_sum: vec![0; n],
            samples: 0,
        }
    }

    pub(super) fn plugged(
        &mut self,
        s: usize,
        c: usize,
        car: &Car,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        duration: Duration,
    ) {
        let wait = (now - since).num_milliseconds() as f64 / 1000.0;
        self.waits_s.push(wait);
        if let Some(est) = self.estimates.remove(&car.id) {
            self.errors_s.push((est - wait).abs());
        }
        self.plug_start.insert((s, c), now);
        let r = &mut self.recent[s];
        r.push_back(duration.num_milliseconds() as f64 / 1000.0);
        if r.len() > RECENT {
            r.pop_front();
        }
    }

    pub(super) fn abandoned(&mut self, car: &Car, since: DateTime<Utc>, now: DateTime<Utc>) {
        self.abandoned_waits_s
            .push((now - since).num_milliseconds() as f64 / 1000.0);
        self.estimates.remove(&car.id);
    }
}

impl Engine {
    /// Offer queued cars a better service area by the platform's ranking.
    pub fn with_diversion(mut self, options: DiversionOptions) -> Engine {
        self.queueing.diversion = Some(options);
        self
    }

    /// What the platform's estimator sees of station `s`: its usable connectors.
    fn estimator_slots(&self, s: usize, now: DateTime<Utc>) -> Vec<Est> {
        self.stations[s]
            .slots
            .iter()
            .enumerate()
            .filter_map(|(c, slot)| match slot {
                Slot::Free => Some(Est::Free),
                Slot::Charging { .. } => {
                    let start = self
                        .queueing
                        .plug_start
                        .get(&(s, c))
                        .copied()
                        .unwrap_or(now);
                    Some(Est::Busy {
                        elapsed_s: (now - start).num_seconds().max(0) as f64,
                        energy_wh: None,
                    })
                }
                Slot::Faulted { .. } => None,
            })
            .collect()
    }

    fn estimated_wait(&self, s: usize, ahead: usize, now: DateTime<Utc>) -> Option<f64> {
        let slots = self.estimator_slots(s, now);
        estimate::wait(&slots, ahead, &self.queueing.histories[s]).map(|e| e.wait_s)
    }

    /// Cars that have taken a diversion suggestion so far.
    pub fn diverted(&self) -> usize {
        self.queueing.diverted.len()
    }

    /// Cars that took a diversion reach their new station; queue lengths are sampled.
    pub(super) fn arrive_diverted(&mut self, s: usize, now: DateTime<Utc>) {
        if s == 0 {
            self.queueing.samples += 1;
            if self
                .queueing
                .rebuilt_at
                .is_none_or(|t| now - t >= Duration::hours(1))
            {
                let q = &mut self.queueing;
                q.histories = q
                    .recent
                    .iter()
                    .map(|r| History::new(r.iter().copied(), [], 35.0 * 60.0))
                    .collect();
                q.rebuilt_at = Some(now);
            }
        }
        let len = self.stations[s].queue.len();
        self.queueing.queue_max[s] = self.queueing.queue_max[s].max(len);
        self.queueing.queue_sum[s] += len as u64;
        if self.queueing.pending.iter().any(|p| p.1 == s && p.0 <= now) {
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queueing.pending)
                .into_iter()
                .partition(|p| p.1 == s && p.0 <= now);
            self.queueing.pending = rest;
            for (at, _, car) in due {
                self.queue_car(s, car, at, now);
            }
        }
    }

    /// A car stops at station `s`: it queues (with a wait estimate when it has to wait), or,
    /// with diversion on, may drive on to a better station.
    pub(super) fn arrive(&mut self, s: usize, car: Car, now: DateTime<Utc>) {
        let must_wait = !self.stations[s].queue.is_empty()
            || !self.stations[s]
                .slots
                .iter()
                .any(|x| matches!(x, Slot::Free));
        if must_wait
            && let Some(opts) = self.queueing.diversion
            && !self.queueing.diverted.contains(&car.id)
            && let Some((t, eta, detour)) = self.suggestion(s, &car, now, &opts)
            && self
                .queueing
                .rng
                .random_bool(opts.accept_probability.clamp(0.0, 1.0))
        {
            self.queueing.diverted.insert(car.id);
            self.queueing.detour_km += detour;
            self.queueing.pending.push((
                now + Duration::milliseconds((eta * 1000.0) as i64),
                t,
                car,
            ));
            return;
        }
        self.queue_car(s, car, now, now);
    }

    fn queue_car(&mut self, s: usize, car: Car, at: DateTime<Utc>, now: DateTime<Utc>) {
        let must_wait = !self.stations[s].queue.is_empty()
            || !self.stations[s]
                .slots
                .iter()
                .any(|x| matches!(x, Slot::Free));
        if must_wait && let Some(w) = self.estimated_wait(s, self.stations[s].queue.len(), now) {
            self.queueing.estimates.insert(car.id, w);
        }
        self.stations[s].queue.push_back((car, at));
    }

    /// The best other station for `car` at `s`, by the platform's ranking: (station, driving
    /// seconds, detour km).
    fn suggestion(
        &self,
        s: usize,
        car: &Car,
        now: DateTime<Utc>,
        opts: &DiversionOptions,
    ) -> Option<(usize, f64, f64)> {
        let net = &self.queueing.net;
        let origin = net.stations.get(s).filter(|o| o.highway.is_some())?;
        let trip = Trip {
            range_km: car.battery_kwh * car.soc_arrival / KWH_PER_KM,
            energy_kwh: car.energy_kwh(),
            speed_kmh: opts.speed_kmh,
            twin_detour_km: opts.twin_detour_km,
        };
        let candidates = diversion::candidates(net, origin, &trip);
        if candidates.len() < 2 {
            return None;
        }
        let ranked = diversion::rank(&candidates, &trip, |spec, eta| {
            let Some(&i) = self.queueing.index.get(&spec.id) else {
                return StationNow {
                    wait_s: None,
                    power_kw: 0.0,
                };
            };
            // Cars already sent there count as queued: paired areas see each other's queues.
            let en_route = self.queueing.pending.iter().filter(|p| p.1 == i).count();
            let ahead = self.stations[i].queue.len() + en_route;
            StationNow {
                wait_s: self
                    .estimated_wait(i, ahead, now)
                    .map(|w| if i == s { w } else { (w - eta).max(0.0) }),
                power_kw: self.stations[i].power_kw,
            }
        });
        let best = diversion::best_alternative(&ranked, opts.min_saving_s)?;
        let t = *self.queueing.index.get(&best.station_id)?;
        Some((t, best.drive_s, best.detour_km))
    }
}

/// One run's waits and queues.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueReport {
    pub diversion: bool,
    pub hours: i64,
    pub arrived: u64,
    pub served: usize,
    pub abandoned: usize,
    pub diverted: usize,
    pub mean_detour_km: f64,
    /// Over every car that plugged in or gave up (the wait until it left).
    pub mean_wait_min: f64,
    pub p95_wait_min: f64,
    pub max_wait_min: f64,
    /// Cars that had to queue and were given an estimate, and the mean absolute error of it.
    pub estimated: usize,
    pub estimate_mae_min: f64,
    /// Per station id: (most cars waiting at once, mean cars waiting).
    pub queues: Vec<(String, usize, f64)>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `scenario` for `hours` from `start` in one-minute steps, with or without diversion,
/// and reports waits, queues and the accuracy of the wait estimates.
pub fn evaluate(
    network: &NetworkSpec,
    scenario: Scenario,
    start: DateTime<Utc>,
    hours: i64,
    seed: u64,
    diversion: Option<DiversionOptions>,
) -> QueueReport {
    let mut engine = Engine::new(network, scenario, start, seed);
    if let Some(d) = diversion {
        engine = engine.with_diversion(d);
    }
    for _ in 0..hours * 60 {
        engine.advance(Duration::minutes(1));
    }
    let q = &engine.queueing;
    let mut all: Vec<f64> = q
        .waits_s
        .iter()
        .chain(&q.abandoned_waits_s)
        .map(|w| w / 60.0)
        .collect();
    all.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let samples = q.samples.max(1) as f64;
    QueueReport {
        diversion: diversion.is_some(),
        hours,
        arrived: engine.totals.arrived,
        served: q.waits_s.len(),
        abandoned: q.abandoned_waits_s.len(),
        diverted: q.diverted.len(),
        mean_detour_km: q.detour_km / q.diverted.len().max(1) as f64,
        mean_wait_min: mean(&all),
        p95_wait_min: percentile(&all, 0.95),
        max_wait_min: all.last().copied().unwrap_or(0.0),
        estimated: q.errors_s.len(),
        estimate_mae_min: mean(&q.errors_s) / 60.0,
        queues: network
            .stations
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    s.id.clone(),
                    q.queue_max[i],
                    q.queue_sum[i] as f64 / samples,
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_core::network_file::{HUNAN, parse_network};

    #[test]
    fn diversion_shortens_holiday_waits_and_keeps_the_same_cars() {
        let net = parse_network(HUNAN).expect("network");
        let start = Scenario::SpringFestival.start(Utc::now()) + Duration::days(1);
        let off = evaluate(&net, Scenario::SpringFestival, start, 12, 11, None);
        let on = evaluate(
            &net,
            Scenario::SpringFestival,
            start,
            12,
            11,
            Some(DiversionOptions::default()),
        );
        assert_eq!(off.arrived, on.arrived, "the same cars arrive either way");
        assert_eq!(off.diverted, 0);
        assert!(on.diverted > 0);
        assert!(off.p95_wait_min > 0.0);
        assert!(
            on.p95_wait_min < off.p95_wait_min,
            "p95 {} with diversion vs {} without",
            on.p95_wait_min,
            off.p95_wait_min
        );
        assert!(off.estimated > 100 && off.estimate_mae_min.is_finite());
    }
}
