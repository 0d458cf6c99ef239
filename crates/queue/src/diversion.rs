//! Diversion ("one group receives the other"): for a car at or approaching a service area,
//! where else it could charge, ranked by expected total time.
//!
//! The options are the service area itself, the stations downstream on the same highway and
//! direction within the car's range, and the opposite-direction twin (reached by driving to the
//! next interchange and back: `twin_detour_km`). Each option's total is driving + waiting +
//! charging, where driving counts only what is off the car's way (downstream stations are on
//! it; the twin is not), and charging grows with the energy the extra distance costs. Options
//! beyond the range, or with no usable connector, are left out.

use serde::Serialize;

use chargeops_core::network_file::{Direction, NetworkSpec, StationSpec};

/// Energy a car uses per km on the highway, kWh.
pub const KWH_PER_KM: f64 = 0.18;
/// A reserve kept in the range: nobody is sent somewhere they reach on their last kilometres.
pub const RANGE_RESERVE_KM: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OptionKind {
    /// Stay and charge here.
    Here,
    Downstream,
    /// The opposite-direction side of the same service area.
    Twin,
}

/// The caller's side of the question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trip {
    /// Remaining range, km.
    pub range_km: f64,
    /// Energy the car wants, kWh (more for a station further away).
    pub energy_kwh: f64,
    /// Average speed, km/h.
    pub speed_kmh: f64,
    /// Extra driving to the twin and back onto the route, km.
    pub twin_detour_km: f64,
}

/// What is known about one station right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StationNow {
    /// Expected wait for a car arriving at `eta_s` from now; `None`: no usable connector.
    pub wait_s: Option<f64>,
    pub power_kw: f64,
}

/// One ranked option.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub station_id: String,
    pub kind: OptionKind,
    /// Driving distance from here, km.
    pub distance_km: f64,
    /// Of it, off the car's way, km.
    pub detour_km: f64,
    pub drive_s: f64,
    pub wait_s: f64,
    pub charge_s: f64,
    /// detour driving + waiting + charging.
    pub total_s: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiversionError {
    #[error("unknown station {0}")]
    UnknownStation(String),
    #[error("station {0} is not on a highway")]
    NotOnHighway(String),
    #[error("station {station} has no side travelling {direction}")]
    WrongDirection { station: String, direction: String },
    #[error("range_km must be between 0 and 1500")]
    BadRange,
}

/// The side of `station_id`'s service area a car travelling `direction` is on: the station
/// itself, or its twin.
pub fn origin<'a>(
    network: &'a NetworkSpec,
    station_id: &str,
    direction: Option<Direction>,
) -> Result<&'a StationSpec, DiversionError> {
    let me = network
        .station(station_id)
        .ok_or_else(|| DiversionError::UnknownStation(station_id.to_owned()))?;
    if me.highway.is_none() {
        return Err(DiversionError::NotOnHighway(station_id.to_owned()));
    }
    match direction {
        None => Ok(me),
        Some(d) if me.direction == Some(d) => Ok(me),
        Some(d) => network
            .twin(station_id)
            .filter(|t| t.direction == Some(d))
            .ok_or_else(|| DiversionError::WrongDirection {
                station: station_id.to_owned(),
                direction: d.as_str().to_owned(),
            }),
    }
}

/// Candidate stations with their distances: the origin, downstream ones within range, and the
/// twin when the detour is within range.
pub fn candidates<'a>(
    network: &'a NetworkSpec,
    origin: &'a StationSpec,
    trip: &Trip,
) -> Vec<(&'a StationSpec, OptionKind, f64, f64)> {
    let usable = trip.range_km - RANGE_RESERVE_KM;
    let mut v = vec![(origin, OptionKind::Here, 0.0, 0.0)];
    let km = origin.km.unwrap_or(0.0);
    for s in network.downstream(&origin.id) {
        let d = (s.km.unwrap_or(km) - km).abs();
        if d > usable {
            break;
        }
        v.push((s, OptionKind::Downstream, d, 0.0));
    }
    if let Some(t) = network.twin(&origin.id)
        && trip.twin_detour_km <= usable
    {
        v.push((
            t,
            OptionKind::Twin,
            trip.twin_detour_km,
            trip.twin_detour_km,
        ));
    }
    v
}

/// Ranks `candidates` (from [`candidates`]) by total time, best first; `now(station, eta_s)`
/// says what is known of each. Options without a usable connector are dropped.
pub fn rank(
    candidates: &[(&StationSpec, OptionKind, f64, f64)],
    trip: &Trip,
    mut now: impl FnMut(&StationSpec, f64) -> StationNow,
) -> Vec<Choice> {
    let speed = trip.speed_kmh.max(1.0);
    let mut out: Vec<Choice> = candidates
        .iter()
        .filter_map(|&(s, kind, distance_km, detour_km)| {
            let drive_s = distance_km / speed * 3600.0;
            let info = now(s, drive_s);
            let wait_s = info.wait_s?;
            let energy = trip.energy_kwh + distance_km * KWH_PER_KM;
            let charge_s = energy / (info.power_kw.max(7.0) * 0.85) * 3600.0;
            let detour_s = detour_km / speed * 3600.0;
            Some(Choice {
                station_id: s.id.clone(),
                kind,
                distance_km,
                detour_km,
                drive_s,
                wait_s,
                charge_s,
                total_s: detour_s + wait_s + charge_s,
            })
        })
        .collect();
    out.sort_by(|a, b| a.total_s.total_cmp(&b.total_s));
    out
}

/// The best option that is not the origin and saves at least `min_saving_s` over staying.
pub fn best_alternative(ranked: &[Choice], min_saving_s: f64) -> Option<&Choice> {
    let here = ranked.iter().find(|c| c.kind == OptionKind::Here)?;
    ranked
        .iter()
        .find(|c| c.kind != OptionKind::Here && here.total_s - c.total_s >= min_saving_s)
}

pub fn parse_direction(s: &str) -> Option<Direction> {
    match s.trim().to_ascii_uppercase().as_str() {
        "N" | "NORTH" | "NORTHBOUND" => Some(Direction::N),
        "S" | "SOUTH" | "SOUTHBOUND" => Some(Direction::S),
        "E" | "EAST" | "EASTBOUND" => Some(Direction::E),
        "W" | "WEST" | "WESTBOUND" => Some(Direction::W),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_core::network_file::{HUNAN, parse_network};

    fn trip(range_km: f64) -> Trip {
        Trip {
            range_km,
            energy_kwh: 40.0,
            speed_kmh: 90.0,
            twin_detour_km: 20.0,
        }
    }

    #[test]
    fn ranks_a_busy_origin_below_a_quiet_neighbour() {
        let net = parse_network(HUNAN).expect("network");
        let me = origin(&net, "g4-changsha-s", None)
            .or_else(|_| origin(&net, &net.stations[10].id, None))
            .expect("origin");
        let t = trip(150.0);
        let cands = candidates(&net, me, &t);
        assert_eq!(cands[0].1, OptionKind::Here);
        assert!(cands.iter().all(|c| c.2 <= 140.0));
        assert!(cands.iter().any(|c| c.1 == OptionKind::Downstream));
        let ranked = rank(&cands, &t, |s, _| StationNow {
            wait_s: Some(if s.id == me.id { 3600.0 } else { 300.0 }),
            power_kw: 120.0,
        });
        assert_ne!(ranked[0].kind, OptionKind::Here);
        let best = best_alternative(&ranked, 600.0).expect("an alternative");
        assert!(
            best.total_s + 600.0
                <= ranked
                    .iter()
                    .find(|c| c.kind == OptionKind::Here)
                    .map_or(0.0, |c| c.total_s)
        );
        // Nothing is worth it when the origin is free.
        let calm = rank(&cands, &t, |_, _| StationNow {
            wait_s: Some(0.0),
            power_kw: 120.0,
        });
        assert_eq!(calm[0].kind, OptionKind::Here);
        assert!(best_alternative(&calm, 60.0).is_none());
    }

    #[test]
    fn range_and_direction() {
        let net = parse_network(HUNAN).expect("network");
        let s = net
            .stations
            .iter()
            .find(|s| s.twin.is_some())
            .expect("a paired side");
        let d = s.direction.expect("direction");
        assert_eq!(
            origin(&net, &s.id, Some(d)).map(|o| o.id.clone()),
            Ok(s.id.clone())
        );
        assert_eq!(
            origin(&net, &s.id, Some(d.opposite())).map(|o| o.id.clone()),
            Ok(s.twin.clone().unwrap_or_default())
        );
        assert!(origin(&net, "nope", None).is_err());
        // With 15 km left only the origin (and no twin: the detour is 20 km).
        let short = candidates(&net, s, &trip(15.0));
        assert_eq!(short.len(), 1);
        assert_eq!(parse_direction("north"), Some(Direction::N));
        assert_eq!(parse_direction("up"), None);
    }
}
