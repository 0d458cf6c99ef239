//! A station's plan for a peak period ("one station, one plan"), from its forecast: per hour
//! the expected arrivals and busy connectors, the capacity gap in cars per hour, and what it
//! takes to keep the wait under a target: extra connectors (M/M/c, Erlang C), as mobile units
//! or as robot hours; then the neighbouring stations to divert to and the advice for drivers.
//!
//! Sizing is deliberately simple and stated: an hour is planned for the cars that want to charge
//! in it (forecast arrivals, P50 by default or P90 for a bad but plausible hour; never less than
//! the busy connectors imply), arrivals are Poisson, service times exponential with the site's
//! mean session duration (M/M/c); a mobile unit is `guns` connectors of `gun_kw` each, counted as a fraction
//! of a station connector when slower; a robot hour delivers `robot_kwh_per_hour`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{HourForecast, SiteForecast};
use crate::queue::erlang_c;

/// How to size a plan.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlanParams {
    /// Mean wait in a queue to stay under, minutes.
    pub target_wait_minutes: f64,
    /// Power of one station connector, kW.
    pub connector_kw: f64,
    /// Guns of one mobile charging unit and the power of each, kW.
    pub unit_guns: u32,
    pub unit_gun_kw: f64,
    /// Energy one charging robot delivers in an hour of work, kWh.
    pub robot_kwh_per_hour: f64,
    /// Energy a car takes, kWh.
    pub kwh_per_car: f64,
    /// Plan every hour for its P90 demand instead of its P50.
    pub p90: bool,
}

impl Default for PlanParams {
    fn default() -> Self {
        Self {
            target_wait_minutes: 15.0,
            connector_kw: 120.0,
            unit_guns: 2,
            unit_gun_kw: 60.0,
            robot_kwh_per_hour: 60.0,
            kwh_per_car: 40.0,
            p90: false,
        }
    }
}

/// One hour of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlanHour {
    pub at: DateTime<Utc>,
    pub arrivals_p50: f64,
    pub arrivals_p90: f64,
    pub busy_connectors_p50: f64,
    pub busy_connectors_p90: f64,
    /// Cars an hour the plan sizes for (arrivals at the planned quantile).
    pub demand_cars_per_hour: f64,
    /// With the station as it is, at that demand: probability that a car waits, mean cars
    /// waiting and mean wait in minutes (a fluid estimate over the hour when saturated).
    pub probability_of_queue: f64,
    pub expected_queue: f64,
    pub expected_wait_minutes: f64,
    /// Cars an hour beyond what the connectors serve within the target wait.
    pub capacity_gap_cars_per_hour: f64,
    /// Connectors needed for the target wait, and how many more than the station has.
    pub connectors_needed: u32,
    pub extra_connectors: u32,
    /// The extra connectors as mobile units, or as robot hours.
    pub mobile_units: u32,
    pub robot_hours: f64,
}

/// A neighbouring station and how it looks over the hours the planned station is short.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Neighbour {
    pub station_id: String,
    pub name: String,
    /// `downstream` (further along the same direction) or `opposite_direction`.
    pub relation: String,
    pub distance_km: f64,
    /// Mean probability of a queue there over the short hours (all hours when none is short).
    pub probability_of_queue: f64,
    /// Mean free connectors there over those hours (P50).
    pub spare_connectors: f64,
    /// Whether it can take cars: a queue there is unlikely (below one in three).
    pub recommended: bool,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StationPlan {
    pub station_id: String,
    pub connectors: u32,
    pub mean_service_minutes: f64,
    pub params: PlanParams,
    pub hours: Vec<PlanHour>,
    /// Hours with a capacity gap.
    pub short_hours: usize,
    pub peak_at: Option<DateTime<Utc>>,
    pub peak_extra_connectors: u32,
    /// Mobile units to bring for the period (the most any hour needs).
    pub mobile_units: u32,
    /// Robot hours over the period, as the alternative.
    pub robot_hours: f64,
    pub expected_arrivals: f64,
    pub neighbours: Vec<Neighbour>,
    /// Advice for drivers, one sentence an item.
    pub advice: Vec<String>,
}

/// Mean wait in queue (hours) of M/M/c with `c` servers, arrival rate `lambda` per hour and
/// mean service `s` hours; infinite when saturated.
pub fn mmc_wait_hours(c: u32, lambda: f64, s: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    let mu = 1.0 / s;
    let load = lambda * s;
    if c == 0 || load >= f64::from(c) {
        return f64::INFINITY;
    }
    erlang_c(c, load) / (f64::from(c) * mu - lambda)
}

/// Fewest connectors keeping the mean wait under `target_hours` (capped at 10,000).
pub fn connectors_needed(lambda: f64, s: f64, target_hours: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let mut c = ((lambda * s).floor() as u32).max(1);
    while c < 10_000 && mmc_wait_hours(c, lambda, s) > target_hours {
        c += 1;
    }
    c
}

/// Highest arrival rate `c` connectors serve within the target wait, by bisection.
pub fn max_rate(c: u32, s: f64, target_hours: f64) -> f64 {
    if c == 0 {
        return 0.0;
    }
    let (mut lo, mut hi) = (0.0, f64::from(c) / s);
    for _ in 0..50 {
        let mid = (lo + hi) / 2.0;
        if mmc_wait_hours(c, mid, s) <= target_hours {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Sizes one hour.
pub fn plan_hour(h: &HourForecast, connectors: u32, s: f64, p: &PlanParams) -> PlanHour {
    let s = if s.is_finite() && s > 0.0 { s } else { 0.75 };
    let target = (p.target_wait_minutes / 60.0).max(1.0 / 60.0);
    // The cars that want to charge: forecast arrivals, or what the busy connectors imply by
    // Little's law when that is more (busy connectors are capped at the station's size,
    // arrivals are not, so at saturation arrivals tell the demand).
    let (arrivals, busy) = if p.p90 {
        (h.arrivals.p90, h.busy_connectors.p90)
    } else {
        (h.arrivals.p50, h.busy_connectors.p50)
    };
    let lambda = (busy / s).max(arrivals).max(0.0);
    let now = crate::queue::estimate(connectors, lambda * s, s);
    let needed = connectors_needed(lambda, s, target);
    let extra = needed.saturating_sub(connectors);
    let gap = (lambda - max_rate(connectors, s, target)).max(0.0);
    let per_unit = f64::from(p.unit_guns) * (p.unit_gun_kw / p.connector_kw.max(1.0)).min(1.0);
    let mobile_units = if extra == 0 || per_unit <= 0.0 {
        0
    } else {
        (f64::from(extra) / per_unit).ceil() as u32
    };
    let robot_hours = if p.robot_kwh_per_hour > 0.0 {
        gap * p.kwh_per_car / p.robot_kwh_per_hour
    } else {
        0.0
    };
    PlanHour {
        at: h.at,
        arrivals_p50: h.arrivals.p50,
        arrivals_p90: h.arrivals.p90,
        busy_connectors_p50: h.busy_connectors.p50,
        busy_connectors_p90: h.busy_connectors.p90,
        demand_cars_per_hour: lambda,
        probability_of_queue: now.probability_of_queue,
        expected_queue: now.expected_queue,
        expected_wait_minutes: now.expected_wait_minutes,
        capacity_gap_cars_per_hour: gap,
        connectors_needed: needed,
        extra_connectors: extra,
        mobile_units,
        robot_hours,
    }
}

/// The plan of `forecast`'s hours that fall in `[from, to)`, with its neighbours already
/// summarised by the caller (who knows the network) and `names` to word the advice:
/// `local_hour` renders an instant as the drivers' local time.
pub fn plan(
    forecast: &SiteForecast,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    params: &PlanParams,
    neighbours: Vec<Neighbour>,
    local_hour: impl Fn(DateTime<Utc>) -> String,
) -> StationPlan {
    let s = forecast.fit.mean_service_hours;
    let hours: Vec<PlanHour> = forecast
        .hours
        .iter()
        .filter(|h| h.at >= from && h.at < to)
        .map(|h| plan_hour(h, forecast.connectors, s, params))
        .collect();
    let short: Vec<&PlanHour> = hours.iter().filter(|h| h.extra_connectors > 0).collect();
    let peak = hours
        .iter()
        .max_by(|a, b| {
            a.capacity_gap_cars_per_hour
                .total_cmp(&b.capacity_gap_cars_per_hour)
        })
        .filter(|h| h.extra_connectors > 0);
    let mut advice = Vec::new();
    if short.is_empty() {
        advice.push(format!(
            "No queue beyond {:.0} minutes is expected in this period; charge when convenient.",
            params.target_wait_minutes
        ));
    } else {
        let first = short.first().map(|h| h.at);
        let last = short.last().map(|h| h.at + chrono::Duration::hours(1));
        if let (Some(a), Some(b), Some(p)) = (first, last, peak) {
            advice.push(format!(
                "Queues are likely from {} to {}, worst at {} (about {:.0} cars waiting, {:.0} min wait).",
                local_hour(a),
                local_hour(b),
                local_hour(p.at),
                p.expected_queue,
                p.expected_wait_minutes.min(600.0),
            ));
        }
        let mut quiet: Vec<&PlanHour> = hours.iter().filter(|h| h.extra_connectors == 0).collect();
        quiet.sort_by(|a, b| a.probability_of_queue.total_cmp(&b.probability_of_queue));
        let mut quiet: Vec<_> = quiet.into_iter().take(3).collect();
        quiet.sort_by_key(|h| h.at);
        if !quiet.is_empty() {
            let when: Vec<String> = quiet.iter().map(|h| local_hour(h.at)).collect();
            advice.push(format!("Best hours to charge here: {}.", when.join(", ")));
        }
        for n in neighbours.iter().filter(|n| n.recommended).take(2) {
            advice.push(format!(
                "Or charge at {} ({}, {:.0} km): a queue there is {} ({:.0}%) at those hours.",
                n.name,
                n.relation.replace('_', " "),
                n.distance_km,
                if n.probability_of_queue < 0.1 {
                    "unlikely"
                } else {
                    "less likely"
                },
                100.0 * n.probability_of_queue
            ));
        }
        advice.push(
            "Arrive with charge to spare and top up rather than charge to full during the peak."
                .into(),
        );
    }
    StationPlan {
        station_id: forecast.site.clone(),
        connectors: forecast.connectors,
        mean_service_minutes: 60.0 * s,
        params: params.clone(),
        short_hours: short.len(),
        peak_at: peak.map(|h| h.at),
        peak_extra_connectors: peak.map_or(0, |h| h.extra_connectors),
        mobile_units: hours.iter().map(|h| h.mobile_units).max().unwrap_or(0),
        robot_hours: hours.iter().map(|h| h.robot_hours).sum(),
        expected_arrivals: hours.iter().map(|h| h.arrivals_p50).sum(),
        hours,
        neighbours,
        advice,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Quantiles;
    use crate::queue;

    fn hour(busy: f64, arrivals: f64) -> HourForecast {
        HourForecast {
            at: DateTime::from_timestamp(1_800_000_000, 0).expect("t"),
            occupancy: Quantiles { p50: 0.5, p90: 0.6 },
            busy_connectors: Quantiles {
                p50: busy,
                p90: busy * 1.2,
            },
            arrivals: Quantiles {
                p50: arrivals,
                p90: arrivals * 1.5,
            },
            queue: queue::estimate(8, busy, 0.5),
            queue_p90: queue::estimate(8, busy, 0.5),
        }
    }

    #[test]
    fn erlang_sizing() {
        // M/M/1 at rho 0.5 with 1 h service: Wq = rho / (mu - lambda) = 0.5 / 0.5 = 1 h.
        assert!((mmc_wait_hours(1, 0.5, 1.0) - 1.0).abs() < 1e-9);
        assert!(mmc_wait_hours(2, 3.0, 1.0).is_infinite());
        let c = connectors_needed(10.0, 0.5, 0.25);
        assert!(mmc_wait_hours(c, 10.0, 0.5) <= 0.25);
        assert!(mmc_wait_hours(c - 1, 10.0, 0.5) > 0.25);
        let r = max_rate(c, 0.5, 0.25);
        assert!(r >= 10.0 && mmc_wait_hours(c, r, 0.5) <= 0.25 + 1e-6);
        assert_eq!(connectors_needed(0.0, 0.5, 0.25), 0);
    }

    #[test]
    fn a_quiet_hour_needs_nothing_and_a_full_one_needs_units() {
        let p = PlanParams::default();
        let quiet = plan_hour(&hour(2.0, 4.0), 8, 0.5, &p);
        assert_eq!((quiet.extra_connectors, quiet.mobile_units), (0, 0));
        assert_eq!(quiet.capacity_gap_cars_per_hour, 0.0);
        let full = plan_hour(&hour(8.0, 20.0), 8, 0.5, &p);
        assert!(full.extra_connectors > 0 && full.mobile_units > 0);
        assert!(full.capacity_gap_cars_per_hour > 0.0 && full.robot_hours > 0.0);
        // Slower mobile guns count as part of a connector: 2 x 60 kW for 120 kW connectors.
        assert_eq!(full.mobile_units, full.extra_connectors);
        assert!(full.probability_of_queue > 0.99 && full.expected_wait_minutes > 15.0);
        // Planning for the P90 demand asks for more.
        let bad = plan_hour(
            &hour(8.0, 20.0),
            8,
            0.5,
            &PlanParams {
                p90: true,
                ..p.clone()
            },
        );
        assert!(bad.extra_connectors > full.extra_connectors);
        assert!(bad.demand_cars_per_hour > full.demand_cars_per_hour);
    }
}
