//! Expected queue from a load forecast: an M/M/c (Erlang C) approximation per hour.
//!
//! The offered load of an hour is the forecast number of busy connectors (occupancy x
//! connectors; by Little's law that is arrivals x mean service time when the site is not
//! saturated). Erlang C gives the probability that an arriving car finds every connector busy
//! and the mean number of cars waiting. When the load reaches the connector count the
//! stationary formulas break down; the hour is then reported as certainly queued and the
//! waiting cars are estimated by a fluid approximation (excess load accumulating over the hour).

use serde::Serialize;

/// Queue estimate for one hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QueueEstimate {
    /// Probability that an arriving car has to wait for a connector.
    pub probability_of_queue: f64,
    /// Mean number of cars waiting.
    pub expected_queue: f64,
    /// Mean wait of an arriving car, in minutes.
    pub expected_wait_minutes: f64,
}

/// Erlang C: the probability of waiting with `servers` servers and `load` Erlangs offered.
/// 1 when `load >= servers`, 0 with no load; 1 with no servers.
pub fn erlang_c(servers: u32, load: f64) -> f64 {
    if servers == 0 {
        return 1.0;
    }
    let load = if load.is_finite() {
        load.max(0.0)
    } else {
        f64::MAX
    };
    let c = f64::from(servers);
    if load <= 0.0 {
        return 0.0;
    }
    if load >= c {
        return 1.0;
    }
    // Erlang B by its stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=servers {
        b = load * b / (f64::from(k) + load * b);
    }
    let p = c * b / (c - load * (1.0 - b));
    p.clamp(0.0, 1.0)
}

/// Queue estimate for an hour with `servers` connectors, `busy` expected busy connectors
/// (offered load, Erlangs) and a mean service time in hours.
pub fn estimate(servers: u32, busy: f64, mean_service_hours: f64) -> QueueEstimate {
    let busy = if busy.is_finite() { busy.max(0.0) } else { 0.0 };
    let service = if mean_service_hours.is_finite() && mean_service_hours > 0.0 {
        mean_service_hours
    } else {
        1.0
    };
    if servers == 0 {
        return QueueEstimate {
            probability_of_queue: if busy > 0.0 { 1.0 } else { 0.0 },
            expected_queue: busy,
            expected_wait_minutes: if busy > 0.0 { 60.0 * service } else { 0.0 },
        };
    }
    let c = f64::from(servers);
    // Stationary formulas up to 98% utilisation; above it, a fluid excess on top.
    let capped = busy.min(0.98 * c);
    let p = erlang_c(servers, capped);
    let mut lq = p * capped / (c - capped);
    let mut prob = p;
    if busy > capped {
        // Arrival rate above capacity (per hour) accumulates; on average half an hour's excess waits.
        let excess_per_hour = (busy - capped) / service;
        lq += excess_per_hour / 2.0;
        prob = erlang_c(servers, busy).max(p);
    }
    let arrivals_per_hour = busy / service;
    let wait_hours = if arrivals_per_hour > 0.0 {
        lq / arrivals_per_hour
    } else {
        0.0
    };
    QueueEstimate {
        probability_of_queue: prob,
        expected_queue: lq,
        expected_wait_minutes: 60.0 * wait_hours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_known_values() {
        // Textbook: 2 servers, 1 Erlang -> P(wait) = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        // 1 server is M/M/1: P(wait) = rho.
        assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
        assert_eq!(erlang_c(4, 0.0), 0.0);
        assert_eq!(erlang_c(4, 4.0), 1.0);
        assert_eq!(erlang_c(0, 1.0), 1.0);
        assert_eq!(erlang_c(4, f64::NAN), 1.0);
    }

    #[test]
    fn estimate_is_finite_and_monotone_in_load() {
        let mut last = -1.0;
        for i in 0..=60 {
            let q = estimate(6, f64::from(i) * 0.2, 0.75);
            assert!(q.expected_queue.is_finite() && q.expected_wait_minutes.is_finite());
            assert!(q.expected_queue >= last);
            last = q.expected_queue;
        }
        let m_m_1 = estimate(1, 0.5, 1.0);
        // M/M/1 at rho 0.5: Lq = rho^2 / (1 - rho) = 0.5.
        assert!((m_m_1.expected_queue - 0.5).abs() < 1e-12);
    }
}
