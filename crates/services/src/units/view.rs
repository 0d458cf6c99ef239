//! The plan and the units as they are served: the planner's plan (site indices, hours from the
//! start) turned into times, station names and routes, and each unit with its next move.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::SPEED_KMH;
use super::problem::{Inputs, Solved};
use super::roads::Point;
use super::unit::{MobileUnit, UnitKind, UnitStatus};
use crate::forecasts::hour_of;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StayView {
    pub station_id: String,
    pub name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub expected_cars: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MoveView {
    /// The station it leaves; none when it starts from where the unit is now, off a station.
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub to: String,
    pub to_name: String,
    pub depart_at: DateTime<Utc>,
    pub arrive_at: DateTime<Utc>,
    pub km: f64,
    /// The drive the unit is on now (it starts at the unit's position).
    pub in_progress: bool,
    /// `[lat, lon]` points, along the highway where both ends are on the same one.
    pub route: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UnitPlanView {
    pub unit: String,
    pub name: String,
    pub kind: UnitKind,
    pub cars_per_hour: f64,
    pub position: Position,
    pub status: UnitStatus,
    pub station_id: Option<String>,
    pub stays: Vec<StayView>,
    pub moves: Vec<MoveView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ShortStation {
    pub station_id: String,
    pub name: String,
    pub position: Position,
    /// Largest forecast shortfall over the horizon, cars/h.
    pub peak_shortfall: f64,
    /// Queue car-hours with no unit, and with the plan.
    pub no_units_car_h: f64,
    pub plan_car_h: f64,
}

/// A relocation plan as it is served.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = UnitsPlan)]
pub struct PlanView {
    /// Counts plans since the platform started.
    pub version: u64,
    pub planned_at: DateTime<Utc>,
    /// `start`, `forecast`, `capacity`, `hourly`, `unit_report`, `unit_added`, `unit_removed`
    /// or `request` (as in the `units_planned` event).
    pub reason: String,
    /// The same in a sentence: which unit, which forecasts.
    pub reason_detail: String,
    pub horizon_h: usize,
    /// Start of the first planned hour (the platform hour the forecasts start at).
    pub start: DateTime<Utc>,
    pub speed_kmh: f64,
    pub units: Vec<UnitPlanView>,
    /// Queue car-hours over the horizon with the plan, with the static placement (units spread
    /// in proportion to peak shortfall and left there), and with no units at all.
    pub unmet_car_h: f64,
    pub static_car_h: f64,
    pub no_units_car_h: f64,
    /// The reference with every unit moved instantly, each hour, to where it cuts the queue
    /// most (greedy): what no plan with real driving can beat by much.
    pub instant_car_h: f64,
    pub relocation_km: f64,
    pub served_cars: f64,
    /// Stations short at some hour of the horizon.
    pub sites_short: usize,
    /// The stations with the most queue without units, worst first (at most 20).
    pub short_stations: Vec<ShortStation>,
    /// Platform time of this answer, and platform seconds per wall second (1, or the demo's
    /// speed): what a page needs to tell which moves are past without the server's clock.
    pub now: DateTime<Utc>,
    pub clock_speed: f64,
}

impl PlanView {
    /// The plan when there are no units: nothing planned, no forecast fitted.
    pub(super) fn empty(version: u64, hours: usize, now: DateTime<Utc>) -> PlanView {
        PlanView {
            version,
            planned_at: now,
            reason: "start".to_owned(),
            reason_detail: "no mobile units".to_owned(),
            horizon_h: hours,
            start: hour_of(now),
            speed_kmh: SPEED_KMH,
            units: Vec::new(),
            unmet_car_h: 0.0,
            static_car_h: 0.0,
            no_units_car_h: 0.0,
            instant_car_h: 0.0,
            relocation_km: 0.0,
            served_cars: 0.0,
            sites_short: 0,
            short_stations: Vec::new(),
            now,
            clock_speed: 1.0,
        }
    }

    /// The plan as seen for the first `hours` hours only (stays and moves that start within;
    /// the totals stay those of the whole plan).
    pub(super) fn clipped(&self, hours: usize) -> PlanView {
        if hours >= self.horizon_h {
            return self.clone();
        }
        let end = self.start + Duration::hours(hours as i64);
        let mut v = self.clone();
        v.horizon_h = hours;
        for u in &mut v.units {
            u.stays.retain(|s| s.from < end);
            for s in &mut u.stays {
                s.to = s.to.min(end);
            }
            u.moves.retain(|m| m.depart_at < end);
        }
        v
    }
}

fn r1(v: f64) -> f64 {
    // Plus zero: no "-0.0" in the answers.
    (v * 10.0).round() / 10.0 + 0.0
}

fn r5(v: f64) -> f64 {
    (v * 1e5).round() / 1e5
}

fn points(route: &[Point]) -> Vec<[f64; 2]> {
    route.iter().map(|&(lat, lon)| [r5(lat), r5(lon)]).collect()
}

/// The solved plan as times, names and routes, numbered `version` and named after `reason`.
pub(super) fn plan_view(
    inp: &Inputs,
    solved: &Solved,
    version: u64,
    reason: &str,
    detail: String,
) -> PlanView {
    let Solved {
        problem,
        plan,
        static_car_h,
        instant_car_h,
        with_plan,
        no_units,
    } = solved;
    let n = inp.places.len();
    let hour = |h: f64| inp.origin + Duration::milliseconds((h * 3_600_000.0) as i64);
    let name = |i: usize| inp.stations[i].name.clone();
    let mut out = Vec::with_capacity(problem.mobile.len());
    for ((u, up), drive) in problem.mobile.iter().zip(&plan.units).zip(&problem.drives) {
        let mut moves = Vec::new();
        if let Some(d) = drive {
            moves.push(MoveView {
                from: d.from.map(|i| inp.stations[i].id.clone()),
                from_name: d.from.map(name),
                to: inp.stations[d.to].id.clone(),
                to_name: name(d.to),
                depart_at: inp.now,
                arrive_at: inp.now + Duration::seconds((d.km / SPEED_KMH * 3600.0) as i64),
                km: r1(d.km),
                in_progress: true,
                route: points(&d.route),
            });
        }
        // Moves to a site off the stations (back to where a unit stood) are not planned: such a
        // site is never short. Stays there serve nobody and are not shown.
        for m in up.moves.iter().filter(|m| m.to < n) {
            let depart = hour(m.depart_h as f64).max(inp.now);
            moves.push(MoveView {
                from: (m.from < n).then(|| inp.stations[m.from].id.clone()),
                from_name: (m.from < n).then(|| name(m.from)),
                to: inp.stations[m.to].id.clone(),
                to_name: name(m.to),
                depart_at: depart,
                arrive_at: depart + Duration::seconds((m.km / SPEED_KMH * 3600.0) as i64),
                km: r1(m.km),
                in_progress: false,
                route: points(&problem.route(&inp.places, m.from, m.to)),
            });
        }
        let stays = up
            .stays
            .iter()
            .filter(|s| s.site < n)
            .map(|s| StayView {
                station_id: inp.stations[s.site].id.clone(),
                name: name(s.site),
                from: hour(s.from_h as f64).max(inp.now),
                to: hour(s.to_h as f64),
                expected_cars: r1(s.expected_cars),
            })
            .filter(|s| s.to > s.from)
            .collect();
        out.push(UnitPlanView {
            unit: u.id.clone(),
            name: u.name.clone(),
            kind: u.kind,
            cars_per_hour: u.cars_per_hour,
            position: Position {
                lat: u.lat,
                lon: u.lon,
            },
            status: u.status,
            station_id: u.station_id.clone(),
            stays,
            moves,
        });
    }
    let mut short: Vec<ShortStation> = inp
        .sites
        .iter()
        .enumerate()
        .filter(|(i, _)| no_units[*i] > 0.0)
        .map(|(i, s)| ShortStation {
            station_id: s.id.clone(),
            name: name(i),
            position: Position {
                lat: inp.places[i].lat,
                lon: inp.places[i].lon,
            },
            peak_shortfall: r1(s.shortfall.iter().fold(0.0, |a: f64, &b| a.max(b))),
            no_units_car_h: r1(no_units[i]),
            plan_car_h: r1(with_plan[i]),
        })
        .collect();
    short.sort_by(|a, b| {
        b.no_units_car_h
            .total_cmp(&a.no_units_car_h)
            .then(a.station_id.cmp(&b.station_id))
    });
    short.truncate(20);
    let sites_short = inp
        .sites
        .iter()
        .filter(|s| s.queue > 0.0 || s.shortfall.iter().any(|&v| v > 0.0))
        .count();
    let in_progress_km: f64 = problem.drives.iter().flatten().map(|d| d.km).sum();
    PlanView {
        version,
        planned_at: inp.now,
        reason: reason.to_owned(),
        reason_detail: detail,
        horizon_h: inp.horizon,
        start: inp.origin,
        speed_kmh: SPEED_KMH,
        units: out,
        unmet_car_h: r1(plan.unmet_car_h),
        static_car_h: r1(*static_car_h),
        no_units_car_h: r1(plan.no_units_car_h),
        instant_car_h: r1(*instant_car_h),
        relocation_km: r1(plan.relocation_km + in_progress_km),
        served_cars: r1(plan.served_cars),
        sites_short,
        short_stations: short,
        now: inp.now,
        clock_speed: 1.0,
    }
}

/// The destination of a unit's drive in the current plan, for a driving unit that did not say
/// where it is going.
pub(super) fn planned_target(
    plan: Option<&PlanView>,
    unit: &str,
    now: DateTime<Utc>,
) -> Option<String> {
    plan?
        .units
        .iter()
        .find(|u| u.unit == unit)?
        .moves
        .iter()
        .find(|m| m.arrive_at > now)
        .map(|m| m.to.clone())
}

/// A unit's next drive in the current plan (or the one it is on).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NextMove {
    pub to: String,
    pub to_name: String,
    pub depart_at: DateTime<Utc>,
    pub arrive_at: DateTime<Utc>,
    pub km: f64,
}

/// A unit as it is served: where it is and what it does, and its next move.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnitView {
    pub id: String,
    pub name: String,
    pub kind: UnitKind,
    pub guns: u32,
    pub gun_kw: f64,
    pub cars_per_hour: f64,
    pub position: Position,
    pub status: UnitStatus,
    pub station_id: Option<String>,
    pub station_name: Option<String>,
    pub reported_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The unit's next drive in the current plan (or the one it is on).
    pub next_move: Option<NextMove>,
}

/// `u` with its station's name from `names` and its next move in `plan` at `now`.
pub(super) fn unit_view(
    u: MobileUnit,
    names: &HashMap<String, String>,
    plan: Option<&PlanView>,
    now: DateTime<Utc>,
) -> UnitView {
    let next_move = plan
        .and_then(|p| p.units.iter().find(|x| x.unit == u.id))
        .filter(|_| u.status != UnitStatus::Broken)
        .and_then(|x| x.moves.iter().find(|m| m.arrive_at > now))
        .map(|m| NextMove {
            to: m.to.clone(),
            to_name: m.to_name.clone(),
            depart_at: m.depart_at,
            arrive_at: m.arrive_at,
            km: m.km,
        });
    UnitView {
        station_name: u.station_id.as_ref().and_then(|s| names.get(s).cloned()),
        position: Position {
            lat: u.lat,
            lon: u.lon,
        },
        id: u.id,
        name: u.name,
        kind: u.kind,
        guns: u.guns,
        gun_kw: u.gun_kw,
        cars_per_hour: u.cars_per_hour,
        status: u.status,
        station_id: u.station_id,
        reported_at: u.reported_at,
        created_at: u.created_at,
        next_move,
    }
}
