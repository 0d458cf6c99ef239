//! What no policy can beat, and a fluid reference, for a trace on a fleet.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::Serialize;

use crate::lot::{Car, Fleet};

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
