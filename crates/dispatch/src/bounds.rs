//! What no policy can beat, a fluid reference, and a clairvoyant reference schedule, for a
//! trace on a fleet.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::DispatchError;
use crate::lot::{Car, Fleet, Lot};
use crate::policy::{Action, Policy, Ranked};
use crate::sim::{SimOptions, SimResult, simulate};

/// The `bound` object of `bench dispatch --format json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bounds {
    pub cars: usize,
    pub energy_kwh: f64,
    /// Robot-hours the trace needs: charging + plugging + dock time to put the energy back
    /// (driving excluded).
    pub needed_robot_h: f64,
    pub charging_h: f64,
    pub plugging_h: f64,
    pub dock_h: f64,
    /// Robots times the arrival window (first to last arrival).
    pub fleet_robot_h: f64,
    pub window_h: f64,
    /// `needed_robot_h / fleet_robot_h`.
    pub load: f64,
    /// Power bound: the fleet's peak power (robots x robot kW), and the shortest time in which
    /// it could charge the trace's cars at each car's power (charging hours / robots).
    pub fleet_kw: f64,
    pub power_bound_h: f64,
    /// Energy bound: the power the fleet can keep up, charging and recharging in turn
    /// (robots x P x D / (P + D)), and the shortest time in which it could deliver the trace's
    /// energy starting from full batteries.
    pub sustained_kw: f64,
    pub energy_bound_h: f64,
    /// Fluid estimate (a reference, not a guarantee): work (charging + plugging + dock time)
    /// queues in arrival order and drains at one robot-second per robot per second; mean over
    /// cars of the backlog in front of each car divided by the robots.
    pub fluid_wait_s: f64,
    /// A true lower bound on the mean wait of any schedule (no patience, no faults): preemptive
    /// SRPT on one machine as fast as the whole fleet, on plugging + charging times, minus those
    /// times. Ignores batteries, driving and the dock, so it is loose.
    pub srpt_wait_lb_s: f64,
}

pub fn bounds(fleet: &Fleet, cars: &[Car]) -> Bounds {
    let n = fleet.robots as f64;
    let energy_kwh: f64 = cars.iter().map(|c| c.energy_kwh).sum();
    let charging_s: f64 = cars
        .iter()
        .map(|c| c.energy_kwh / fleet.power_kw(c.max_power_kw) * 3600.0)
        .sum();
    let plugging_s = fleet.plug_s * cars.len() as f64;
    let dock_s = energy_kwh / fleet.dock_kw * 3600.0;
    let needed = charging_s + plugging_s + dock_s;
    let (first, last) = match (cars.first(), cars.last()) {
        (Some(f), Some(l)) => (f.arrival_s, l.arrival_s),
        _ => (0.0, 0.0),
    };
    let window_s = (last - first).max(1.0);
    let (p, d, b) = (fleet.robot_kw, fleet.dock_kw, fleet.robot_kwh);
    let sustained_kw = n * p * d / (p + d);
    // Each robot: charging time c and dock time e with c + e <= T deliver at most
    // min(P c, B + D e); the best split gives P (B + D T) / (P + D).
    let energy_bound_h = (((p + d) * energy_kwh / (n * p) - b) / d).max(0.0);

    // Fluid FIFO backlog of robot-seconds.
    let mut backlog = 0.0_f64;
    let mut t_prev = first;
    let mut fluid_sum = 0.0;
    for c in cars {
        backlog = (backlog - n * (c.arrival_s - t_prev)).max(0.0);
        t_prev = c.arrival_s;
        fluid_sum += backlog / n;
        backlog += fleet.robot_time_s(c.energy_kwh, c.max_power_kw);
    }

    Bounds {
        cars: cars.len(),
        energy_kwh,
        needed_robot_h: needed / 3600.0,
        charging_h: charging_s / 3600.0,
        plugging_h: plugging_s / 3600.0,
        dock_h: dock_s / 3600.0,
        fleet_robot_h: n * window_s / 3600.0,
        window_h: window_s / 3600.0,
        load: needed / (n * window_s),
        fleet_kw: n * p,
        power_bound_h: charging_s / n / 3600.0,
        sustained_kw,
        energy_bound_h,
        fluid_wait_s: if cars.is_empty() {
            0.0
        } else {
            fluid_sum / cars.len() as f64
        },
        srpt_wait_lb_s: srpt_wait_lb(fleet, cars),
    }
}

/// Mean over cars of (flow time under preemptive SRPT on a machine of speed `robots`) minus the
/// car's own plugging + charging time, floored at 0 overall.
fn srpt_wait_lb(fleet: &Fleet, cars: &[Car]) -> f64 {
    if cars.is_empty() {
        return 0.0;
    }
    let speed = fleet.robots as f64;
    let sizes: Vec<f64> = cars
        .iter()
        .map(|c| fleet.service_s(c.energy_kwh, c.max_power_kw))
        .collect();
    // Remaining work in integer microseconds so the heap orders exactly.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut t = 0.0_f64;
    let mut flow_sum = 0.0;
    let mut i = 0;
    while i < cars.len() || !heap.is_empty() {
        let next_arrival = cars.get(i).map_or(f64::INFINITY, |c| c.arrival_s);
        match heap.peek().copied() {
            None => {
                t = next_arrival;
            }
            Some(Reverse((rem_us, j))) => {
                let rem = rem_us as f64 / 1e6;
                let finish = t + rem / speed;
                if finish <= next_arrival {
                    heap.pop();
                    t = finish;
                    flow_sum += t - cars[j].arrival_s;
                    continue;
                }
                heap.pop();
                let done = (next_arrival - t) * speed;
                heap.push(Reverse((((rem - done).max(0.0) * 1e6) as u64, j)));
                t = next_arrival;
            }
        }
        if i < cars.len() && cars[i].arrival_s <= t {
            heap.push(Reverse(((sizes[i] * 1e6) as u64, i)));
            i += 1;
        }
    }
    ((flow_sum - sizes.iter().sum::<f64>()) / cars.len() as f64).max(0.0)
}

/// What the clairvoyant search minimises: the mean wait of served cars, with every car that
/// leaves or is never served counted as a day of waiting, so no schedule buys its mean by losing
/// cars.
fn schedule_cost(r: &SimResult) -> f64 {
    let m = &r.metrics;
    m.mean_wait_s + 86_400.0 * (m.abandoned + m.unserved) as f64
}

/// The service order a simulated run gave: cars by the moment a robot was last sent to them,
/// cars never sent one after, by arrival. `rank[car]` is the car's place.
pub fn service_rank(r: &SimResult, cars: usize) -> Vec<usize> {
    let mut last = vec![None; cars];
    for (k, (_, a)) in r.decisions.iter().enumerate() {
        if let Action::Assign { car, .. } = *a
            && car < cars
        {
            last[car] = Some(k);
        }
    }
    let mut ids: Vec<usize> = (0..cars).collect();
    ids.sort_by_key(|&c| (last[c].is_none(), last[c], c));
    let mut rank = vec![0; cars];
    for (place, c) in ids.into_iter().enumerate() {
        rank[c] = place;
    }
    rank
}

/// The clairvoyant reference: a schedule that sees the whole trace. A local search over the
/// service order (the [`Ranked`] policy, robots given as chargeops gives them, in the same
/// simulator with the same battery rule), started from the order `start` (an online policy)
/// served the trace in. `iterations` schedules are tried (each one simulation); `step` is called
/// after each. The result is the best schedule seen, the start's own run included, so it is
/// never worse than the online policy it starts from. A reference, not a bound: a longer or
/// cleverer search can do better.
pub fn clairvoyant(
    lot: &Lot,
    fleet: &Fleet,
    cars: &[Car],
    start: &mut dyn Policy,
    iterations: usize,
    seed: u64,
    mut step: impl FnMut(),
) -> Result<SimResult, DispatchError> {
    let record = SimOptions {
        record: true,
        ..SimOptions::default()
    };
    let online = simulate(lot, fleet, cars, start, &record)?;
    let n = cars.len();
    let mut best_cost = schedule_cost(&online);
    let mut best = online;
    if n < 2 {
        return Ok(best);
    }
    let mut order: Vec<usize> = vec![0; n];
    for (c, &place) in service_rank(&best, n).iter().enumerate() {
        order[place] = c;
    }
    let run = |order: &[usize]| -> Result<SimResult, DispatchError> {
        let mut rank = vec![0; n];
        for (place, &c) in order.iter().enumerate() {
            rank[c] = place;
        }
        simulate(
            lot,
            fleet,
            cars,
            &mut Ranked { rank },
            &SimOptions::default(),
        )
    };
    let first = run(&order)?;
    let mut cur_cost = schedule_cost(&first);
    if cur_cost < best_cost {
        best_cost = cur_cost;
        best = first;
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    // Moves within a window of the order: a car served up to 40 places earlier or later (cars
    // far apart in the order seldom wait at the same time, so swapping them changes nothing).
    let window = 40.min(n - 1);
    for _ in 0..iterations {
        let mut cand = order.clone();
        let p = rng.random_range(0..n);
        let lo = p.saturating_sub(window);
        let hi = (p + window).min(n - 1);
        let q = rng.random_range(lo..=hi);
        if rng.random_bool(0.5) {
            cand.swap(p, q);
        } else {
            let c = cand.remove(p);
            cand.insert(q, c);
        }
        let r = run(&cand)?;
        let cost = schedule_cost(&r);
        // Equal cost is accepted too: it lets the search walk across the many orders that
        // give the same schedule.
        if cost <= cur_cost {
            order = cand;
            cur_cost = cost;
            if cost < best_cost {
                best_cost = cost;
                best = r;
            }
        }
        step();
    }
    Ok(best)
}
