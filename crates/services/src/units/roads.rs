//! Where the stations are and the roads between them, and between them and a unit standing off
//! every station: along the highway through the stations between, by the network file's
//! kilometre posts, when both ends are on the same highway; else straight, 1.3 times the
//! great-circle distance. All of the planner's geometry (`chargeops_dispatch::province`) that
//! the service uses goes through here.

use chargeops_core::Station;
use chargeops_core::network_file::NetworkSpec;
use chargeops_dispatch::province::{self, Place};

pub(super) use chargeops_dispatch::province::great_circle_km;

/// A point as (lat, lon).
pub(super) type Point = (f64, f64);

pub(super) fn position_of(s: &Station) -> Option<Point> {
    match (s.lat, s.lon) {
        (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => Some((lat, lon)),
        _ => None,
    }
}

/// The station nearest `at`, and how far it is (km).
pub(super) fn nearest(stations: &[Station], at: Point) -> Option<(&Station, f64)> {
    stations
        .iter()
        .filter_map(|s| position_of(s).map(|p| (s, great_circle_km(p, at))))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The place nearest `at`: its index, and how far it is (km).
pub(super) fn nearest_place(places: &[Place], at: Point) -> Option<(usize, f64)> {
    places
        .iter()
        .enumerate()
        .map(|(i, p)| (i, great_circle_km((p.lat, p.lon), at)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// A station's place for distances and routes: its own position, and the kilometre post from
/// the network file when the file has this station on the same highway.
pub(super) fn place_of(network: &NetworkSpec, s: &Station) -> Place {
    let (lat, lon) = position_of(s).unwrap_or_default();
    let km = network
        .station(&s.id)
        .filter(|spec| spec.highway.is_some() && spec.highway == s.highway)
        .and_then(|spec| spec.km);
    Place {
        lat,
        lon,
        highway: s.highway.clone(),
        direction: s.direction.clone(),
        km,
    }
}

/// What is left of the drive from `places[from]` to `places[to]` for a unit at `at` on it:
/// its length in road km (the road's length in the share of the route still ahead) and route.
pub(super) fn rest_of_drive(
    places: &[Place],
    from: usize,
    to: usize,
    at: Point,
) -> (f64, Vec<Point>) {
    let full = province::route(places, from, to);
    let rest = province::rest_of_route(&full, at);
    let (full_km, rest_km) = (province::polyline_km(&full), province::polyline_km(&rest));
    let road = province::place_km(&places[from], &places[to]);
    let km = if full_km > 0.0 {
        road * (rest_km / full_km).min(1.0)
    } else {
        rest_km
    };
    (km, rest)
}

/// The road from a point off the stations to `places[to]`: along the highway when the nearest
/// station is on the same highway as `to` (what is left of that station's route from where
/// the point is), else straight; and its length in road km.
pub(super) fn road_from(places: &[Place], at: Point, to: usize) -> (f64, Vec<Point>) {
    let target = &places[to];
    let straight = || {
        (
            great_circle_km(at, (target.lat, target.lon)) * 1.3,
            vec![at, (target.lat, target.lon)],
        )
    };
    let Some(near) = nearest_place(places, at).map(|(i, _)| i) else {
        return straight();
    };
    let p = &places[near];
    let same_road = near != to
        && p.km.is_some()
        && target.km.is_some()
        && p.highway.is_some()
        && p.highway == target.highway;
    if !same_road {
        return straight();
    }
    let full = province::route(places, near, to);
    let rest = province::rest_of_route(&full, at);
    let full_km = province::polyline_km(&full);
    let km = if full_km > 0.0 {
        province::place_km(p, target) * province::polyline_km(&rest) / full_km
    } else {
        province::polyline_km(&rest)
    };
    (km, rest)
}

/// The planner's sites: the stations' places, then one point for each unit standing off them.
pub(super) struct Sites<'a> {
    pub places: &'a [Place],
    pub off: &'a [Point],
}

impl Sites<'_> {
    /// Road km from site `a` to site `b`.
    pub fn km(&self, a: usize, b: usize) -> f64 {
        let n = self.places.len();
        match (a < n, b < n) {
            _ if a == b => 0.0,
            (true, true) => province::place_km(&self.places[a], &self.places[b]),
            (false, true) => road_from(self.places, self.off[a - n], b).0,
            (true, false) => road_from(self.places, self.off[b - n], a).0,
            (false, false) => great_circle_km(self.off[a - n], self.off[b - n]) * 1.3,
        }
    }

    /// The route of a drive from site `from` to site `to`.
    pub fn route(&self, from: usize, to: usize) -> Vec<Point> {
        let n = self.places.len();
        match (from < n, to < n) {
            (true, true) => province::route(self.places, from, to),
            (false, true) => road_from(self.places, self.off[from - n], to).1,
            (true, false) => {
                let mut r = road_from(self.places, self.off[to - n], from).1;
                r.reverse();
                r
            }
            (false, false) => vec![self.off[from - n], self.off[to - n]],
        }
    }
}
