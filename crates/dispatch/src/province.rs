//! Mobile charging units across the province: which unit goes where, and when, from hourly
//! shortfall forecasts.
//!
//! The queue model, per site and hour `h` (hours from the plan's start): the backlog of cars
//! `B(h+1) = max(0, B(h) + shortfall(h) - units(h))`, where `shortfall` is the forecast arrivals
//! minus what the site's own chargers serve in that hour (negative: spare capacity that drains
//! the queue) and `units(h)` the cars per hour of the mobile units there for the whole hour.
//! Unmet demand is the queue's car-hours, `sum (B(h) + B(h+1)) / 2`.
//!
//! [`plan_relocation`] plans one unit at a time against the others' plans (coordinate descent):
//! for one unit the best sequence of stays is an exact dynamic programme over (site, hour),
//! because stays at different sites do not interact. The descent starts from every unit staying
//! put and, when the static placement is better than where that settles, from the static
//! placement too: a plan is never worse than [`static_placement`]. Travel takes whole hours (rounded up):
//! a unit serves from the first full hour after it arrives. Re-planning is calling it again with
//! the units where they are now and the new forecasts; a broken unit is left out.

use serde::Serialize;

use crate::DispatchError;

/// A service area (or any site) and its forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub id: String,
    /// Forecast arrivals minus own capacity, cars per hour, one value per hour of the horizon.
    pub shortfall: Vec<f64>,
    /// Cars already queueing at the start.
    pub queue: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    Ready,
    /// Reported broken (for example mid-route): planned for no more.
    Broken,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unit {
    pub id: String,
    /// Cars per hour it serves when placed (its guns times sessions per gun-hour).
    pub cars_per_hour: f64,
    /// The site it is at, or driving to.
    pub site: usize,
    /// Hours from the plan's start until it is at `site` and can serve or leave (0 if there).
    pub available_h: f64,
    pub status: UnitStatus,
}

/// Road distances between sites, km, and the units' speed.
#[derive(Debug, Clone, PartialEq)]
pub struct Travel {
    pub km: Vec<Vec<f64>>,
    pub speed_kmh: f64,
}

impl Travel {
    fn hours(&self, a: usize, b: usize) -> usize {
        if a == b {
            0
        } else {
            (self.km[a][b] / self.speed_kmh).ceil() as usize
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stay {
    pub site: usize,
    /// Serving from the start of hour `from_h` to the start of hour `to_h`.
    pub from_h: usize,
    pub to_h: usize,
    /// Cars this unit is expected to serve there (its share of the mobile capacity used).
    pub expected_cars: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Move {
    pub from: usize,
    pub to: usize,
    /// Hour it must leave.
    pub depart_h: usize,
    /// Hour it arrives (exact; it serves from the next whole hour).
    pub arrive_h: f64,
    pub km: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitPlan {
    pub unit: String,
    pub stays: Vec<Stay>,
    pub moves: Vec<Move>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub units: Vec<UnitPlan>,
    /// Car-hours of queue with the plan, and with no unit anywhere.
    pub unmet_car_h: f64,
    pub no_units_car_h: f64,
    pub relocation_km: f64,
    pub served_cars: f64,
}

/// Checks inputs: sizes, finite numbers, sites that exist.
fn check(
    units: &[Unit],
    sites: &[Site],
    travel: &Travel,
    horizon_h: usize,
) -> Result<(), DispatchError> {
    let bad = |m: String| Err(DispatchError::Relocation(m));
    if horizon_h == 0 || horizon_h > 24 * 14 {
        return bad(format!("horizon must be 1-336 hours, got {horizon_h}"));
    }
    if travel.km.len() != sites.len() || travel.km.iter().any(|r| r.len() != sites.len()) {
        return bad(format!(
            "the distance matrix must be {n}x{n} for {n} sites",
            n = sites.len()
        ));
    }
    if travel
        .km
        .iter()
        .flatten()
        .any(|d| !d.is_finite() || *d < 0.0)
    {
        return bad("distances must be finite and not negative".into());
    }
    if !(travel.speed_kmh.is_finite() && travel.speed_kmh > 0.0) {
        return bad(format!("speed must be above 0, got {}", travel.speed_kmh));
    }
    for s in sites {
        if s.shortfall.len() < horizon_h {
            return bad(format!(
                "site {}: {} hourly values for a {horizon_h} h horizon",
                s.id,
                s.shortfall.len()
            ));
        }
        if s.shortfall.iter().any(|v| !v.is_finite()) || !(s.queue.is_finite() && s.queue >= 0.0) {
            return bad(format!("site {}: forecast values must be finite", s.id));
        }
    }
    for u in units {
        if u.site >= sites.len() {
            return bad(format!("unit {}: site {} does not exist", u.id, u.site));
        }
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !(ok(u.cars_per_hour) && ok(u.available_h)) {
            return bad(format!(
                "unit {}: capacity and availability must be finite and not negative",
                u.id
            ));
        }
    }
    Ok(())
}

/// Queue car-hours at one site with `extra[h]` mobile cars/hour, and the mobile cars served.
fn site_queue(site: &Site, extra: &[f64], horizon_h: usize) -> (f64, f64) {
    let mut b = site.queue;
    let mut car_h = 0.0;
    let mut served = 0.0;
    for (h, &s) in site.shortfall.iter().take(horizon_h).enumerate() {
        let demand = b + s;
        let e = extra.get(h).copied().unwrap_or(0.0);
        served += e.min(demand.max(0.0));
        let next = (demand - e).max(0.0);
        car_h += (b + next) / 2.0;
        b = next;
    }
    (car_h, served)
}

/// Mobile capacity (cars/hour) per site and hour of a set of stays.
fn capacity(n_sites: usize, horizon_h: usize, stays: &[(f64, &Stay)]) -> Vec<Vec<f64>> {
    let mut cap = vec![vec![0.0; horizon_h]; n_sites];
    for (c, st) in stays {
        let row = &mut cap[st.site];
        for v in row.iter_mut().take(st.to_h.min(horizon_h)).skip(st.from_h) {
            *v += c;
        }
    }
    cap
}

/// Total queue car-hours and served cars for a capacity table.
pub fn evaluate(sites: &[Site], cap: &[Vec<f64>], horizon_h: usize) -> (f64, f64) {
    sites.iter().zip(cap).fold((0.0, 0.0), |(q, s), (site, c)| {
        let (q1, s1) = site_queue(site, c, horizon_h);
        (q + q1, s + s1)
    })
}

/// The best stays for one unit given the other units' capacity `others`: exact DP over
/// (site, hour). Returns the stays; a small cost per km keeps the unit still when moving gains
/// nothing.
fn best_for_unit(
    unit: &Unit,
    sites: &[Site],
    travel: &Travel,
    horizon_h: usize,
    others: &[Vec<f64>],
    candidates: &[usize],
    km_cost: f64,
) -> Vec<Stay> {
    let hzn = horizon_h;
    let c = unit.cars_per_hour;
    let start_h = (unit.available_h.ceil() as usize).min(hzn);
    // gain[j][a][b]: queue reduction from this unit at site j over hours [a, b).
    let mut site_list: Vec<usize> = candidates.to_vec();
    if !site_list.contains(&unit.site) {
        site_list.push(unit.site);
    }
    let idx = |j: usize| site_list.iter().position(|&s| s == j).unwrap_or(0);
    let gains: Vec<Vec<Vec<f64>>> = site_list
        .iter()
        .map(|&j| {
            let (base, _) = site_queue(&sites[j], &others[j], hzn);
            let mut g = vec![vec![0.0; hzn + 1]; hzn + 1];
            for (a, ga) in g.iter_mut().enumerate().take(hzn) {
                let mut extra = others[j].clone();
                for b in a + 1..=hzn {
                    extra[b - 1] += c;
                    let (q, _) = site_queue(&sites[j], &extra, hzn);
                    ga[b] = base - q;
                }
            }
            g
        })
        .collect();
    // value[k][t]: best gain from being at site_list[k] and free at hour t.
    let n = site_list.len();
    let mut value = vec![vec![0.0_f64; hzn + 1]; n];
    let mut choice: Vec<Vec<Option<(usize, usize)>>> = vec![vec![None; hzn + 1]; n];
    for t in (0..hzn).rev() {
        for k in 0..n {
            let j = site_list[k];
            // Stay to the end.
            let mut best = gains[k][t][hzn];
            let mut pick = None;
            for (b, &g_tb) in gains[k][t].iter().enumerate().take(hzn).skip(t + 1) {
                for (k2, &j2) in site_list.iter().enumerate() {
                    if k2 == k {
                        continue;
                    }
                    let arrive = b + travel.hours(j, j2);
                    if arrive >= hzn {
                        continue;
                    }
                    let v = g_tb + value[k2][arrive] - km_cost * travel.km[j][j2];
                    if v > best + 1e-9 {
                        best = v;
                        pick = Some((b, k2));
                    }
                }
            }
            // Leaving right now (b = t) is the same as arriving elsewhere.
            for (k2, &j2) in site_list.iter().enumerate() {
                if k2 == k {
                    continue;
                }
                let arrive = t + travel.hours(j, j2);
                if arrive >= hzn {
                    continue;
                }
                let v = value[k2][arrive] - km_cost * travel.km[j][j2];
                if v > best + 1e-9 {
                    best = v;
                    pick = Some((t, k2));
                }
            }
            value[k][t] = best;
            choice[k][t] = pick;
        }
    }
    let mut stays = Vec::new();
    let (mut k, mut t) = (idx(unit.site), start_h);
    while t < hzn {
        match choice[k][t] {
            None => {
                stays.push(Stay {
                    site: site_list[k],
                    from_h: t,
                    to_h: hzn,
                    expected_cars: 0.0,
                });
                break;
            }
            Some((b, k2)) => {
                if b > t {
                    stays.push(Stay {
                        site: site_list[k],
                        from_h: t,
                        to_h: b,
                        expected_cars: 0.0,
                    });
                }
                t = b + travel.hours(site_list[k], site_list[k2]);
                k = k2;
            }
        }
    }
    if stays.is_empty() {
        stays.push(Stay {
            site: site_list[k],
            from_h: hzn,
            to_h: hzn,
            expected_cars: 0.0,
        });
    }
    merge_returns(stays)
}

/// Joins consecutive stays at the same site. The DP values each stay against the other units
/// only, so a round trip away and back (through a stay too short to keep) can look better than
/// staying, counting the same backlog twice; staying through the gap serves at least as many
/// cars and drives no kilometre.
fn merge_returns(stays: Vec<Stay>) -> Vec<Stay> {
    let mut out: Vec<Stay> = Vec::with_capacity(stays.len());
    for s in stays {
        match out.last_mut() {
            Some(last) if last.site == s.site => last.to_h = last.to_h.max(s.to_h),
            _ => out.push(s),
        }
    }
    out
}

fn moves_of(unit: &Unit, stays: &[Stay], travel: &Travel) -> Vec<Move> {
    let mut moves = Vec::new();
    let (mut at, mut free) = (unit.site, unit.available_h.ceil() as usize);
    for s in stays {
        if s.site != at {
            let h = travel.hours(at, s.site);
            let depart = s.from_h.saturating_sub(h).max(free);
            moves.push(Move {
                from: at,
                to: s.site,
                depart_h: depart,
                arrive_h: depart as f64 + travel.km[at][s.site] / travel.speed_kmh,
                km: travel.km[at][s.site],
            });
        }
        at = s.site;
        free = s.to_h;
    }
    moves
}

/// Plans the units over `horizon_h` hours. Broken units get an empty plan; a unit driving
/// somewhere (`available_h` > 0) first arrives there.
pub fn plan_relocation(
    units: &[Unit],
    sites: &[Site],
    travel: &Travel,
    horizon_h: usize,
) -> Result<Plan, DispatchError> {
    check(units, sites, travel, horizon_h)?;
    let hzn = horizon_h;
    // Only sites that are ever short are worth a move.
    let candidates: Vec<usize> = (0..sites.len())
        .filter(|&j| sites[j].queue > 0.0 || sites[j].shortfall.iter().take(hzn).any(|&v| v > 0.0))
        .collect();
    let stay_put: Vec<Vec<Stay>> = units
        .iter()
        .map(|u| {
            vec![Stay {
                site: u.site,
                from_h: (u.available_h.ceil() as usize).min(hzn),
                to_h: if u.status == UnitStatus::Ready {
                    hzn
                } else {
                    0
                },
                expected_cars: 0.0,
            }]
        })
        .collect();
    let (mut plans, best) = descend(units, sites, travel, hzn, &candidates, stay_put);
    // Coordinate descent from "everyone stays" can settle where the static placement is better
    // (each unit's best move alone is small, all moving together is not): then descend from
    // the static placement too, so a plan is never worse than the simple rule.
    let fixed = static_stays(units, sites, travel, hzn);
    if total_queue(units, sites, hzn, &fixed) < best - 1e-6 {
        let (p, q) = descend(units, sites, travel, hzn, &candidates, fixed);
        if q < best {
            plans = p;
        }
    }
    finish(units, sites, travel, hzn, plans)
}

/// Queue car-hours of a set of unit plans.
fn total_queue(units: &[Unit], sites: &[Site], hzn: usize, plans: &[Vec<Stay>]) -> f64 {
    let stays: Vec<(f64, &Stay)> = plans
        .iter()
        .enumerate()
        .flat_map(|(u, p)| p.iter().map(move |s| (units[u].cars_per_hour, s)))
        .collect();
    evaluate(sites, &capacity(sites.len(), hzn, &stays), hzn).0
}

/// Coordinate descent from `plans`: each ready unit in turn takes its best stays against the
/// others', kept only when the total queue improves; at most four passes.
fn descend(
    units: &[Unit],
    sites: &[Site],
    travel: &Travel,
    hzn: usize,
    candidates: &[usize],
    mut plans: Vec<Vec<Stay>>,
) -> (Vec<Vec<Stay>>, f64) {
    let km_cost = 1e-3;
    let ready: Vec<usize> = (0..units.len())
        .filter(|&u| units[u].status == UnitStatus::Ready)
        .collect();
    let mut best = total_queue(units, sites, hzn, &plans);
    for _pass in 0..4 {
        let mut improved = false;
        for &u in &ready {
            let others: Vec<(f64, &Stay)> = plans
                .iter()
                .enumerate()
                .filter(|(v, _)| *v != u)
                .flat_map(|(v, p)| p.iter().map(move |s| (units[v].cars_per_hour, s)))
                .collect();
            let cap = capacity(sites.len(), hzn, &others);
            let stays = best_for_unit(&units[u], sites, travel, hzn, &cap, candidates, km_cost);
            let old = std::mem::replace(&mut plans[u], stays);
            let q = total_queue(units, sites, hzn, &plans);
            if q < best - 1e-6 {
                best = q;
                improved = true;
            } else if q > best + 1e-9 {
                plans[u] = old;
            }
        }
        if !improved {
            break;
        }
    }
    (plans, best)
}

/// Fills in expected cars, moves and totals.
fn finish(
    units: &[Unit],
    sites: &[Site],
    travel: &Travel,
    hzn: usize,
    mut plans: Vec<Vec<Stay>>,
) -> Result<Plan, DispatchError> {
    let stays: Vec<(f64, &Stay)> = plans
        .iter()
        .enumerate()
        .flat_map(|(u, p)| p.iter().map(move |s| (units[u].cars_per_hour, s)))
        .collect();
    let cap = capacity(sites.len(), hzn, &stays);
    let (unmet, served) = evaluate(sites, &cap, hzn);
    let zero = vec![vec![0.0; hzn]; sites.len()];
    let (none, _) = evaluate(sites, &zero, hzn);
    // Served cars per site-hour, shared among the units there by capacity.
    let mut used = vec![vec![0.0; hzn]; sites.len()];
    for (j, site) in sites.iter().enumerate() {
        let mut b = site.queue;
        for h in 0..hzn {
            let demand = b + site.shortfall[h];
            used[j][h] = if cap[j][h] > 0.0 {
                cap[j][h].min(demand.max(0.0)) / cap[j][h]
            } else {
                0.0
            };
            b = (demand - cap[j][h]).max(0.0);
        }
    }
    for (u, p) in plans.iter_mut().enumerate() {
        for s in p.iter_mut() {
            s.expected_cars = (s.from_h..s.to_h.min(hzn))
                .map(|h| used[s.site][h] * units[u].cars_per_hour)
                .sum();
        }
    }
    let unit_plans: Vec<UnitPlan> = units
        .iter()
        .zip(plans)
        .map(|(u, stays)| {
            let stays: Vec<Stay> = stays.into_iter().filter(|s| s.to_h > s.from_h).collect();
            UnitPlan {
                unit: u.id.clone(),
                moves: moves_of(u, &stays, travel),
                stays,
            }
        })
        .collect();
    let relocation_km = unit_plans.iter().flat_map(|p| &p.moves).map(|m| m.km).sum();
    Ok(Plan {
        units: unit_plans,
        unmet_car_h: unmet,
        no_units_car_h: none,
        relocation_km,
        served_cars: served,
    })
}

/// The static placement: units spread over sites in proportion to each site's peak shortfall
/// (largest remainder, biggest units to the biggest shares), each driving there from where it is
/// at the start and staying all horizon.
pub fn static_placement(
    units: &[Unit],
    sites: &[Site],
    travel: &Travel,
    horizon_h: usize,
) -> Result<Plan, DispatchError> {
    check(units, sites, travel, horizon_h)?;
    let plans = static_stays(units, sites, travel, horizon_h);
    finish(units, sites, travel, horizon_h, plans)
}

/// The stays of [`static_placement`], on checked input.
fn static_stays(
    units: &[Unit],
    sites: &[Site],
    travel: &Travel,
    horizon_h: usize,
) -> Vec<Vec<Stay>> {
    let peaks: Vec<f64> = sites
        .iter()
        .map(|s| {
            s.shortfall
                .iter()
                .take(horizon_h)
                .fold(0.0_f64, |a, &b| a.max(b))
        })
        .collect();
    let total: f64 = peaks.iter().sum();
    let ready: Vec<usize> = (0..units.len())
        .filter(|&u| units[u].status == UnitStatus::Ready)
        .collect();
    let n = ready.len();
    let mut slots: Vec<usize> = Vec::new();
    if total > 0.0 {
        let quota: Vec<f64> = peaks.iter().map(|p| p / total * n as f64).collect();
        let mut rem: Vec<(f64, usize)> = Vec::new();
        for (j, q) in quota.iter().enumerate() {
            for _ in 0..q.floor() as usize {
                slots.push(j);
            }
            rem.push((q - q.floor(), j));
        }
        rem.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, j) in rem.iter().take(n.saturating_sub(slots.len())) {
            slots.push(j);
        }
    }
    // Each slot to the nearest unplaced unit, biggest peaks first.
    slots.sort_by(|a, b| peaks[*b].total_cmp(&peaks[*a]));
    let mut plans: Vec<Vec<Stay>> = units
        .iter()
        .map(|u| {
            vec![Stay {
                site: u.site,
                from_h: (u.available_h.ceil() as usize).min(horizon_h),
                to_h: if u.status == UnitStatus::Ready {
                    horizon_h
                } else {
                    0
                },
                expected_cars: 0.0,
            }]
        })
        .collect();
    let mut free: Vec<usize> = ready.clone();
    for j in slots {
        let Some((pos, &u)) = free.iter().enumerate().min_by(|a, b| {
            travel.km[units[*a.1].site][j].total_cmp(&travel.km[units[*b.1].site][j])
        }) else {
            break;
        };
        free.remove(pos);
        let arrive = (units[u].available_h.ceil() as usize) + travel.hours(units[u].site, j);
        plans[u] = vec![Stay {
            site: j,
            from_h: arrive.min(horizon_h),
            to_h: horizon_h,
            expected_cars: 0.0,
        }];
    }
    plans
}

/// The reference with instant moves: every hour each unit is put, with no travel, where it
/// reduces the remaining queue most (greedy, one unit at a time). The transport-problem view
/// "units moved instantly to where demand is"; greedy, so a reference rather than a proof.
pub fn instant_reference(units: &[Unit], sites: &[Site], horizon_h: usize) -> f64 {
    let caps: Vec<f64> = units
        .iter()
        .filter(|u| u.status == UnitStatus::Ready)
        .map(|u| u.cars_per_hour)
        .collect();
    let mut cap = vec![vec![0.0; horizon_h]; sites.len()];
    for h in 0..horizon_h {
        for &c in &caps {
            let mut best = (0.0, None);
            for (j, site) in sites.iter().enumerate() {
                let (q0, _) = site_queue(site, &cap[j], horizon_h);
                cap[j][h] += c;
                let (q1, _) = site_queue(site, &cap[j], horizon_h);
                cap[j][h] -= c;
                if q0 - q1 > best.0 {
                    best = (q0 - q1, Some(j));
                }
            }
            if let Some(j) = best.1 {
                cap[j][h] += c;
            }
        }
    }
    evaluate(sites, &cap, horizon_h).0
}

/// Road distance between two stations: along the highway when both are on the same one (plus a
/// turn at the next interchange to change sides), else the great-circle distance times 1.3.
pub fn road_km(
    a: &chargeops_core::network_file::StationSpec,
    b: &chargeops_core::network_file::StationSpec,
) -> f64 {
    if a.id == b.id {
        return 0.0;
    }
    place_km(&Place::of_spec(a), &Place::of_spec(b))
}

/// Where a site is, for distances and routes: its position and, for a highway service area, the
/// highway, the side (direction of travel) and the kilometre post. Stations the network file
/// does not know have no kilometre post, so their distances and routes are straight lines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Place {
    pub lat: f64,
    pub lon: f64,
    pub highway: Option<String>,
    pub direction: Option<String>,
    pub km: Option<f64>,
}

impl Place {
    pub fn of_spec(s: &chargeops_core::network_file::StationSpec) -> Place {
        Place {
            lat: s.lat,
            lon: s.lon,
            highway: s.highway.clone(),
            direction: s.direction.map(|d| d.as_str().to_owned()),
            km: s.km,
        }
    }

    fn point(&self) -> (f64, f64) {
        (self.lat, self.lon)
    }

    /// The kilometre post on `highway`, when this place is on it.
    fn km_on(&self, highway: &str) -> Option<f64> {
        (self.highway.as_deref() == Some(highway))
            .then_some(self.km)
            .flatten()
    }
}

/// [`road_km`] between two places: along the highway (plus 10 km to change sides) when both are
/// on the same one with kilometre posts, else the great-circle distance times 1.3 (roads wind).
pub fn place_km(a: &Place, b: &Place) -> f64 {
    if let (Some(h), Some(ka)) = (&a.highway, a.km)
        && let Some(kb) = b.km_on(h)
    {
        let turn = if a.direction == b.direction {
            0.0
        } else {
            10.0
        };
        return (ka - kb).abs() + turn;
    }
    great_circle_km(a.point(), b.point()) * 1.3
}

/// Great-circle distance between two (lat, lon) points, km.
pub fn great_circle_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la, lb) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lb - la;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// The route from `places[a]` to `places[b]` as (lat, lon) points, for drawing and for a unit
/// driving it. When both are on the same highway it passes every place on that highway between
/// the two kilometre posts, in order (the highway lines on the map are drawn through the same
/// service areas, so the route follows the road as the map shows it); otherwise it is straight.
/// Places at the same position (the two sides of one service area) give one point.
pub fn route(places: &[Place], a: usize, b: usize) -> Vec<(f64, f64)> {
    let (Some(pa), Some(pb)) = (places.get(a), places.get(b)) else {
        return Vec::new();
    };
    let mut points = vec![pa.point()];
    if let (Some(h), Some(ka)) = (&pa.highway, pa.km)
        && let Some(kb) = pb.km_on(h)
    {
        let (lo, hi) = (ka.min(kb), ka.max(kb));
        let mut between: Vec<(f64, (f64, f64))> = places
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != a && *j != b)
            .filter_map(|(_, p)| p.km_on(h).map(|k| (k, p.point())))
            .filter(|(k, _)| *k > lo && *k < hi)
            .collect();
        between.sort_by(|x, y| {
            if ka <= kb {
                x.0.total_cmp(&y.0)
            } else {
                y.0.total_cmp(&x.0)
            }
        });
        points.extend(between.into_iter().map(|(_, p)| p));
    }
    points.push(pb.point());
    // The two sides of a service area share a position: one point for both.
    points.dedup_by(|x, y| great_circle_km(*x, *y) < 0.05);
    if points.len() == 1 {
        points.push(pb.point());
    }
    points
}

/// Length of a polyline of (lat, lon) points, km.
pub fn polyline_km(points: &[(f64, f64)]) -> f64 {
    points.windows(2).map(|w| great_circle_km(w[0], w[1])).sum()
}

/// The point `fraction` (clamped to 0..=1) of the way along a polyline, by length.
pub fn along(points: &[(f64, f64)], fraction: f64) -> Option<(f64, f64)> {
    let first = *points.first()?;
    let total = polyline_km(points);
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if total <= 0.0 {
        return Some(first);
    }
    let mut left = total * f;
    for w in points.windows(2) {
        let d = great_circle_km(w[0], w[1]);
        if left <= d && d > 0.0 {
            let t = left / d;
            return Some((
                w[0].0 + (w[1].0 - w[0].0) * t,
                w[0].1 + (w[1].1 - w[0].1) * t,
            ));
        }
        left -= d;
    }
    points.last().copied()
}

/// What is left of a route for a unit at `at` on (or near) it: `at`, then every point after the
/// segment nearest to it. Near enough for a unit's reported position, which is never exactly
/// on the drawn line.
pub fn rest_of_route(points: &[(f64, f64)], at: (f64, f64)) -> Vec<(f64, f64)> {
    if points.len() < 2 {
        let mut v = vec![at];
        v.extend(points.last().copied());
        return v;
    }
    // Distances on a local plane: the segments are tens of km, where that is accurate enough.
    let k = at.0.to_radians().cos();
    let xy = |p: (f64, f64)| (p.1 * k, p.0);
    let (px, py) = xy(at);
    let nearest = points
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let ((ax, ay), (bx, by)) = (xy(w[0]), xy(w[1]));
            let (dx, dy) = (bx - ax, by - ay);
            let len2 = dx * dx + dy * dy;
            let t = if len2 > 0.0 {
                (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (cx, cy) = (ax + t * dx, ay + t * dy);
            (i, (px - cx).powi(2) + (py - cy).powi(2))
        })
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .map_or(0, |(i, _)| i);
    let mut v = vec![at];
    v.extend_from_slice(&points[nearest + 1..]);
    v
}

/// Queue car-hours at each site under a plan made for `units` (the plan's unit plans are in the
/// same order), for telling which sites the plan helps.
pub fn site_queues(units: &[Unit], sites: &[Site], plan: &Plan, horizon_h: usize) -> Vec<f64> {
    let stays: Vec<(f64, &Stay)> = plan
        .units
        .iter()
        .zip(units)
        .flat_map(|(p, u)| p.stays.iter().map(move |s| (u.cars_per_hour, s)))
        .filter(|(_, s)| s.site < sites.len())
        .collect();
    let cap = capacity(sites.len(), horizon_h, &stays);
    sites
        .iter()
        .zip(&cap)
        .map(|(site, c)| site_queue(site, c, horizon_h).0)
        .collect()
}

/// A relocation scenario: sites, units, travel and the sites' names.
pub type Scenario = (Vec<Site>, Vec<Unit>, Travel, Vec<String>);

/// The synthetic holiday day over the Hunan network: sites, 18 units at three depots, travel.
pub fn hunan_holiday(seed: u64) -> Result<Scenario, DispatchError> {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let net = chargeops_core::network_file::parse_network(chargeops_core::network_file::HUNAN)
        .map_err(|e| DispatchError::Relocation(format!("the Hunan network: {e:?}")))?;
    let st = &net.stations;
    let mut rng = SmallRng::seed_from_u64(seed);
    // Holiday traffic weight by highway; the first day of the holiday is outbound, so one
    // direction of each highway carries more.
    let weight = |h: &str| match h {
        "G4" => 1.0,
        "G60" => 0.85,
        "G55" => 0.7,
        "G0421" | "G72" | "G65" => 0.55,
        _ => 0.4,
    };
    let sites: Vec<Site> = st
        .iter()
        .map(|s| {
            let (w, outbound) = match (&s.highway, s.direction) {
                (Some(h), Some(d)) => {
                    let out = matches!(d.as_str(), "S" | "W");
                    (weight(h), if out { 1.3 } else { 0.75 })
                }
                _ => (0.35, 1.0),
            };
            // Own capacity: sessions per charger-hour by charger power.
            let per_charger = if s.power_kw >= 120 { 1.6 } else { 1.0 };
            let own = s.chargers as f64 * per_charger;
            let peak = own * w * outbound * rng.random_range(0.75..1.35) * 1.25;
            let centre = rng.random_range(10.0..15.0);
            let shortfall = (0..24)
                .map(|h| {
                    let x = (h as f64 + 0.5 - centre) / 3.5;
                    let night = if (1..6).contains(&h) { 0.15 } else { 0.3 };
                    peak * (night + (1.0 - night) * (-0.5 * x * x).exp()) - own
                })
                .collect();
            Site {
                id: s.id.clone(),
                shortfall,
                queue: 0.0,
            }
        })
        .collect();
    let km: Vec<Vec<f64>> = st
        .iter()
        .map(|a| st.iter().map(|b| road_km(a, b)).collect())
        .collect();
    // Depots: the stations nearest Changsha, Hengyang and Yueyang.
    let nearest = |lat: f64, lon: f64| {
        (0..st.len())
            .min_by(|&a, &b| {
                let da = (st[a].lat - lat).powi(2) + (st[a].lon - lon).powi(2);
                let db = (st[b].lat - lat).powi(2) + (st[b].lon - lon).powi(2);
                da.total_cmp(&db)
            })
            .unwrap_or(0)
    };
    let depots = [
        nearest(28.23, 112.94),
        nearest(26.89, 112.57),
        nearest(29.36, 113.13),
    ];
    let units: Vec<Unit> = (0..18)
        .map(|i| {
            let (kind, cars) = if i < 10 {
                ("vehicle", 2.4)
            } else {
                ("container", 3.6)
            };
            Unit {
                id: format!("{kind}-{i:02}"),
                cars_per_hour: cars,
                site: depots[i % 3],
                available_h: 0.0,
                status: UnitStatus::Ready,
            }
        })
        .collect();
    let names = st.iter().map(|s| s.id.clone()).collect();
    Ok((
        sites,
        units,
        Travel {
            km,
            speed_kmh: 70.0,
        },
        names,
    ))
}

/// `bench dispatch --province`: plan vs static vs instant moves on the holiday day, with the
/// plan made on the truth and on a forecast with 25% error.
pub fn hunan_holiday_report(seed: u64, json: bool) -> Result<String, DispatchError> {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::fmt::Write as _;
    let hzn = 24;
    let (sites, units, travel, names) = hunan_holiday(seed)?;
    let t0 = std::time::Instant::now();
    let plan = plan_relocation(&units, &sites, &travel, hzn)?;
    let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
    let fixed = static_placement(&units, &sites, &travel, hzn)?;
    let instant = instant_reference(&units, &sites, hzn);
    // Plan on a noisy forecast, judge on the truth.
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xf0);
    let noisy: Vec<Site> = sites
        .iter()
        .map(|s| {
            let f = rng.random_range(0.75..1.25);
            Site {
                shortfall: s
                    .shortfall
                    .iter()
                    .map(|v| {
                        let own = -s.shortfall[3].min(0.0);
                        (v + own) * f * rng.random_range(0.9..1.1) - own
                    })
                    .collect(),
                ..s.clone()
            }
        })
        .collect();
    let nplan = plan_relocation(&units, &noisy, &travel, hzn)?;
    let judge = |p: &Plan| {
        let stays: Vec<(f64, &Stay)> = p
            .units
            .iter()
            .zip(&units)
            .flat_map(|(up, u)| up.stays.iter().map(move |s| (u.cars_per_hour, s)))
            .collect();
        evaluate(&sites, &capacity(sites.len(), hzn, &stays), hzn).0
    };
    let noisy_unmet = judge(&nplan);
    let short = sites
        .iter()
        .filter(|s| s.shortfall.iter().any(|&v| v > 0.0))
        .count();
    let peak_short: f64 = (0..hzn)
        .map(|h| sites.iter().map(|s| s.shortfall[h].max(0.0)).sum::<f64>())
        .fold(0.0, f64::max);
    let cap: f64 = units.iter().map(|u| u.cars_per_hour).sum();
    if json {
        return Ok(format!(
            "{}\n",
            serde_json::json!({
                "sites": sites.len(), "short_sites": short, "units": units.len(),
                "unit_cars_per_hour": cap, "peak_shortfall_cars_per_hour": peak_short,
                "no_units_car_h": plan.no_units_car_h,
                "static": {"unmet_car_h": fixed.unmet_car_h, "relocation_km": fixed.relocation_km},
                "plan": {"unmet_car_h": plan.unmet_car_h, "relocation_km": plan.relocation_km, "served_cars": plan.served_cars, "plan_ms": plan_ms},
                "plan_on_noisy_forecast": {"unmet_car_h": noisy_unmet, "relocation_km": nplan.relocation_km},
                "instant_reference_car_h": instant,
            })
        ));
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mobile units, synthetic holiday day over the Hunan network: {} sites ({short} short at some hour), {} units ({cap:.1} cars/h in all), peak shortfall {peak_short:.1} cars/h",
        sites.len(),
        units.len()
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<34}{:>14}{:>16}",
        "placement", "queue car-h", "relocation km"
    );
    let _ = writeln!(
        s,
        "{:<34}{:>14.1}{:>16}",
        "no mobile units", plan.no_units_car_h, "-"
    );
    let _ = writeln!(
        s,
        "{:<34}{:>14.1}{:>16.0}",
        "static, proportional to peak", fixed.unmet_car_h, fixed.relocation_km
    );
    let _ = writeln!(
        s,
        "{:<34}{:>14.1}{:>16.0}",
        "chargeops plan (true forecast)", plan.unmet_car_h, plan.relocation_km
    );
    let _ = writeln!(
        s,
        "{:<34}{:>14.1}{:>16.0}",
        "chargeops plan (forecast +-25%)", noisy_unmet, nplan.relocation_km
    );
    let _ = writeln!(
        s,
        "{:<34}{:>14.1}{:>16}",
        "instant moves (reference)", instant, "-"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "planned in {plan_ms:.0} ms; the plan's moves:");
    for up in &plan.units {
        for m in &up.moves {
            let cars: f64 = up
                .stays
                .iter()
                .filter(|st| st.site == m.to)
                .map(|st| st.expected_cars)
                .sum();
            let _ = writeln!(
                s,
                "  {:<13} {:>24} -> {:<24} leave {:>2}:00 arrive {:>5.1} h {:>5.0} km, {:>5.1} cars",
                up.unit, names[m.from], names[m.to], m.depart_h, m.arrive_h, m.km, cars
            );
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(highway: &str, dir: &str, km: f64, lat: f64, lon: f64) -> Place {
        Place {
            lat,
            lon,
            highway: Some(highway.into()),
            direction: Some(dir.into()),
            km: Some(km),
        }
    }

    #[test]
    fn routes_follow_the_highway_through_the_service_areas_between() {
        // Three service areas on G4 (both sides share a position) and one off the highway.
        let places = vec![
            on("G4", "S", 100.0, 29.0, 113.0),
            on("G4", "N", 100.0, 29.0, 113.0),
            on("G4", "S", 150.0, 28.6, 113.1),
            on("G4", "N", 200.0, 28.2, 113.0),
            Place {
                lat: 27.0,
                lon: 111.0,
                ..Place::default()
            },
        ];
        let r = route(&places, 0, 3);
        assert_eq!(r, vec![(29.0, 113.0), (28.6, 113.1), (28.2, 113.0)]);
        // The other way round, in the other order.
        let back = route(&places, 3, 1);
        assert_eq!(back, vec![(28.2, 113.0), (28.6, 113.1), (29.0, 113.0)]);
        assert_eq!(place_km(&places[0], &places[3]), 110.0, "100 km and a turn");
        // Off the highway: straight, and 1.3 times the great circle.
        assert_eq!(route(&places, 2, 4), vec![(28.6, 113.1), (27.0, 111.0)]);
        let gc = great_circle_km((28.6, 113.1), (27.0, 111.0));
        assert!((place_km(&places[2], &places[4]) - 1.3 * gc).abs() < 1e-9);
        // The two sides of one service area: two points at the same place, 10 km apart by road.
        assert_eq!(route(&places, 0, 1).len(), 2);
        assert_eq!(place_km(&places[0], &places[1]), 10.0);
        assert!(route(&places, 0, 9).is_empty());
    }

    #[test]
    fn a_unit_moves_along_its_route_by_length() {
        let r = vec![(28.0, 113.0), (28.0, 113.2), (28.4, 113.2)];
        assert_eq!(along(&r, 0.0), Some((28.0, 113.0)));
        assert_eq!(along(&r, 1.0), Some((28.4, 113.2)));
        assert_eq!(along(&r, 7.0), Some((28.4, 113.2)), "clamped");
        assert_eq!(along(&r, f64::NAN), Some((28.0, 113.0)));
        let total = polyline_km(&r);
        let first = great_circle_km(r[0], r[1]);
        let mid = along(&r, first / total / 2.0).expect("a point");
        assert!(
            (mid.0 - 28.0).abs() < 1e-9 && (mid.1 - 113.1).abs() < 1e-3,
            "{mid:?}"
        );
        assert_eq!(along(&[], 0.5), None);
        // Half way along the second segment, what is left is the point and the end.
        let at = (28.2, 113.2);
        assert_eq!(rest_of_route(&r, at), vec![at, (28.4, 113.2)]);
        // Near the first segment: the point, the corner and the end.
        assert_eq!(rest_of_route(&r, (28.01, 113.1)).len(), 3);
    }

    #[test]
    fn site_queues_add_up_to_the_plan() {
        let sites = vec![
            Site {
                id: "a".into(),
                shortfall: vec![3.0; 6],
                queue: 2.0,
            },
            Site {
                id: "b".into(),
                shortfall: vec![-1.0; 6],
                queue: 0.0,
            },
        ];
        let travel = Travel {
            km: vec![vec![0.0, 70.0], vec![70.0, 0.0]],
            speed_kmh: 70.0,
        };
        let units = vec![Unit {
            id: "u".into(),
            cars_per_hour: 2.0,
            site: 1,
            available_h: 0.0,
            status: UnitStatus::Ready,
        }];
        let plan = plan_relocation(&units, &sites, &travel, 6).expect("plan");
        assert_eq!(plan.units[0].moves.len(), 1, "{plan:?}");
        assert_eq!(plan.units[0].moves[0].to, 0);
        let q = site_queues(&units, &sites, &plan, 6);
        assert!((q.iter().sum::<f64>() - plan.unmet_car_h).abs() < 1e-9);
        assert_eq!(q[1], 0.0);
    }
}
