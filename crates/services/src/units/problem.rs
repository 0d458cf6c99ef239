//! The planner's problem, made from the platform, and the one call into
//! `chargeops_dispatch::province` that solves it.
//!
//! [`Inputs::read`] turns the fitted forecasts and the live capacity of every placed station
//! into its shortfall per hour (a `province::Site`) and its place on the roads;
//! [`Problem::build`] adds the units where each starts (a `province::Unit`) and the road
//! distances between every site (`province::Travel`); [`Problem::solve`] plans on it, with the
//! references the plan is judged against.
//!
//! Demand, per station and hour: the shortfall is the fitted forecast of arrivals (P50, sessions
//! starting in the hour, from `crate::forecasts`) minus what the station serves itself: its
//! connectors in service now (every connector the platform knows, or one per charger when it
//! knows none, minus the faulted and unavailable ones; an offline charger is counted as serving,
//! since a lost connection seldom stops a charger) times the sessions a connector serves in an
//! hour (one over the station's mean session length from the same fit, 0.25 to 6). Connectors
//! rather than chargers because a multi-gun charger serves as many cars at once as it has guns
//! in use, and the fit's session length is per connector. Cars seen waiting now
//! (`Live::station_waiting`, set by staff or the demo's traffic) are the queue at the start.
//!
//! Where units start: at their station; a driving unit first arrives where it is driving (it
//! does not turn round mid-route); a unit standing off every station (a depot, a lay-by, where
//! it was repaired) starts from a site of its own at its position.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use chargeops_core::{Live, Station};
use chargeops_dispatch::province::{self, Place, Plan, Site, Travel, Unit};
use chargeops_forecast::SiteForecast;

use super::roads::{self, Point, Sites};
use super::unit::{MobileUnit, UnitStatus};
use super::view::{PlanView, planned_target};
use super::{AT_STATION_KM, SPEED_KMH};
use crate::forecasts::{Forecasts, forecasts_of, hour_of};
use crate::{Error, Platform, Result};

/// The platform's view of every placed station for one plan.
pub(super) struct Inputs {
    pub now: DateTime<Utc>,
    /// Start of the first planned hour.
    pub origin: DateTime<Utc>,
    pub horizon: usize,
    /// Stations with a position (the only ones a unit can drive to), in store order; the
    /// planner's first sites, in the same order.
    pub stations: Vec<Station>,
    pub places: Vec<Place>,
    pub sites: Vec<Site>,
    /// The forecasts the shortfalls came from, to tell a refit from a change of capacity.
    pub fits: HashMap<String, Arc<SiteForecast>>,
}

/// Stations with a position (the only ones a unit can drive to), in store order.
pub(super) async fn placed_stations(platform: &Platform) -> Result<Vec<Station>> {
    Ok(platform
        .store
        .list_stations()
        .await?
        .into_iter()
        .filter(|s| roads::position_of(s).is_some())
        .collect())
}

/// Connectors in service: the ones known, or one per charger when none is known yet, less the
/// faulted and unavailable (see the module doc).
fn in_service(live: &Live, id: &str) -> f64 {
    let counts = live.station_counts(id).unwrap_or_default();
    let known = counts.total().max(live.station_chargers(id));
    known.saturating_sub(counts.faulted + counts.unavailable) as f64
}

/// A station's shortfall, cars/h, for each of `horizon` hours: the forecast arrivals less what
/// its connectors in service serve.
fn shortfall(live: &Live, s: &Station, f: &SiteForecast, horizon: usize) -> Vec<f64> {
    let per_connector = if f.fit.mean_service_hours.is_finite() && f.fit.mean_service_hours > 0.0 {
        (1.0 / f.fit.mean_service_hours).clamp(0.25, 6.0)
    } else {
        1.0
    };
    let own = in_service(live, &s.id) * per_connector;
    (0..horizon)
        .map(|h| f.hours.get(h).map_or(0.0, |x| x.arrivals.p50.max(0.0)) - own)
        .collect()
}

impl Inputs {
    /// Every placed station's shortfall for `horizon` hours from the platform hour, and its
    /// place on the roads.
    pub async fn read(
        platform: &Platform,
        forecasts: &Forecasts,
        horizon: usize,
    ) -> Result<Inputs> {
        let now = platform.now();
        let origin = hour_of(now);
        let stations = placed_stations(platform).await?;
        let fcs = forecasts_of(platform, forecasts, now, &stations, horizon).await?;
        let mut sites = Vec::with_capacity(stations.len());
        let mut fits = HashMap::with_capacity(stations.len());
        for (s, f) in stations.iter().zip(fcs) {
            sites.push(Site {
                id: s.id.clone(),
                shortfall: shortfall(&platform.live, s, &f, horizon),
                queue: platform.live.station_waiting(&s.id) as f64,
            });
            fits.insert(s.id.clone(), f);
        }
        let places = stations
            .iter()
            .map(|s| roads::place_of(&forecasts.network, s))
            .collect();
        Ok(Inputs {
            now,
            origin,
            horizon,
            stations,
            places,
            sites,
            fits,
        })
    }
}

/// The drive a unit is on when the plan is made: where to, what is left of the route, and
/// how far.
pub(super) struct Drive {
    pub from: Option<usize>,
    pub to: usize,
    pub km: f64,
    pub route: Vec<Point>,
}

/// Where a unit starts the plan from.
enum Start {
    /// At a station (or broken anywhere: it goes nowhere).
    At(usize),
    /// On the road: it first arrives where it is driving.
    Driving(Drive),
    /// Standing off every station (a depot, a lay-by, where it was repaired): the plan starts
    /// it from a site of its own at its position, so it can go anywhere from there.
    Off(Point),
}

/// Where a unit starts the plan from; `target` is where the last plan sent it.
fn start_of(
    u: &MobileUnit,
    inp: &Inputs,
    index: &HashMap<&str, usize>,
    target: Option<&str>,
) -> Option<Start> {
    let at = (u.lat, u.lon);
    let idx = |id: Option<&str>| id.and_then(|id| index.get(id).copied());
    let nearest_site = || roads::nearest_place(&inp.places, at).map(|x| x.0);
    if u.status == UnitStatus::Broken {
        let site = idx(u.station_id.as_deref()).or_else(nearest_site)?;
        return Some(Start::At(site));
    }
    if u.status == UnitStatus::Driving {
        let to = idx(u.station_id.as_deref())
            .or_else(|| idx(target))
            .or_else(nearest_site)?;
        let (from, (km, route)) = match idx(u.left_from.as_deref()) {
            Some(from) if from != to => {
                (Some(from), roads::rest_of_drive(&inp.places, from, to, at))
            }
            _ => (None, roads::road_from(&inp.places, at, to)),
        };
        return Some(Start::Driving(Drive {
            from,
            to,
            km,
            route,
        }));
    }
    // Ready or serving: at its station when within reach of it, else off the stations.
    let site = idx(u.station_id.as_deref()).or_else(nearest_site)?;
    let p = &inp.places[site];
    if roads::great_circle_km(at, (p.lat, p.lon)) <= AT_STATION_KM {
        Some(Start::At(site))
    } else {
        Some(Start::Off(at))
    }
}

/// What the planner is given: the stations and, after them, one site for each unit standing
/// off the stations.
pub(super) struct Problem {
    /// The units planned, in the planner's order (units with no station to start from are
    /// left out).
    pub mobile: Vec<MobileUnit>,
    pub units: Vec<Unit>,
    pub sites: Vec<Site>,
    pub travel: Travel,
    pub horizon: usize,
    /// Position of each site past the stations.
    pub off: Vec<Point>,
    /// The drive each unit is on, in the order of `units`.
    pub drives: Vec<Option<Drive>>,
}

impl Problem {
    /// The problem of planning `units` as they are now on `inp`; `previous` (the current plan)
    /// says where a driving unit that did not say where it is going was sent.
    pub fn build(inp: &Inputs, units: &[MobileUnit], previous: Option<&PlanView>) -> Problem {
        let index: HashMap<&str, usize> = inp
            .stations
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let n = inp.places.len();
        let frac_h = (inp.now - inp.origin).num_seconds() as f64 / 3600.0;
        let mut sites = inp.sites.clone();
        let mut off = Vec::new();
        let mut mobile = Vec::with_capacity(units.len());
        let mut planned = Vec::with_capacity(units.len());
        let mut drives = Vec::with_capacity(units.len());
        for u in units {
            let target = planned_target(previous, &u.id, inp.now);
            let Some(start) = start_of(u, inp, &index, target.as_deref()) else {
                tracing::warn!(unit_id = %u.id, "no station to plan this unit from");
                continue;
            };
            let (site, available_h, drive) = match start {
                Start::At(site) => (site, 0.0, None),
                Start::Driving(d) => (d.to, frac_h + d.km / SPEED_KMH, Some(d)),
                Start::Off(at) => {
                    off.push(at);
                    sites.push(Site {
                        id: format!("@{}", u.id),
                        shortfall: vec![0.0; inp.horizon],
                        queue: 0.0,
                    });
                    (n + off.len() - 1, 0.0, None)
                }
            };
            let broken = u.status == UnitStatus::Broken;
            planned.push(Unit {
                id: u.id.clone(),
                cars_per_hour: u.cars_per_hour,
                site,
                available_h,
                status: if broken {
                    province::UnitStatus::Broken
                } else {
                    province::UnitStatus::Ready
                },
            });
            // A broken unit drives nowhere.
            drives.push(drive.filter(|_| !broken));
            mobile.push(u.clone());
        }
        let roads = Sites {
            places: &inp.places,
            off: &off,
        };
        let total = n + off.len();
        let km = (0..total)
            .map(|a| (0..total).map(|b| roads.km(a, b)).collect())
            .collect();
        Problem {
            mobile,
            units: planned,
            sites,
            travel: Travel {
                km,
                speed_kmh: SPEED_KMH,
            },
            horizon: inp.horizon,
            off,
            drives,
        }
    }

    /// The route of a planned move between two sites.
    pub fn route(&self, places: &[Place], from: usize, to: usize) -> Vec<Point> {
        Sites {
            places,
            off: &self.off,
        }
        .route(from, to)
    }

    /// Plans the units on a blocking thread, with the references the plan is judged against.
    pub async fn solve(self) -> Result<Solved> {
        tokio::task::spawn_blocking(move || {
            let h = self.horizon;
            let plan = province::plan_relocation(&self.units, &self.sites, &self.travel, h)
                .map_err(|e| {
                    tracing::error!(error = %e, "relocation planning refused its input");
                    Error::internal("planning failed")
                })?;
            let fixed = province::static_placement(&self.units, &self.sites, &self.travel, h);
            let instant_car_h = province::instant_reference(&self.units, &self.sites, h);
            let with_plan = province::site_queues(&self.units, &self.sites, &plan, h);
            let empty = Plan {
                units: Vec::new(),
                unmet_car_h: 0.0,
                no_units_car_h: 0.0,
                relocation_km: 0.0,
                served_cars: 0.0,
            };
            let stations = self.sites.len() - self.off.len();
            let no_units = province::site_queues(&[], &self.sites[..stations], &empty, h);
            Ok(Solved {
                static_car_h: fixed.map_or(f64::NAN, |f| f.unmet_car_h),
                instant_car_h,
                with_plan,
                no_units,
                plan,
                problem: self,
            })
        })
        .await
        .map_err(|_| Error::internal("planning failed"))?
    }
}

/// A solved problem: the plan and what it is judged against.
pub(super) struct Solved {
    pub problem: Problem,
    pub plan: Plan,
    /// Queue car-hours with the static placement (NaN when the planner refused it).
    pub static_car_h: f64,
    /// Queue car-hours with every unit moved instantly, each hour, where it helps most.
    pub instant_car_h: f64,
    /// Queue car-hours at each site with the plan.
    pub with_plan: Vec<f64>,
    /// Queue car-hours at each station with no unit.
    pub no_units: Vec<f64>,
}
