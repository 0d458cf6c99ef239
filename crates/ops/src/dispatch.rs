//! Which crew to send: the platform ranks every crew for a case and proposes the best; the
//! dispatcher confirms or picks another.
//!
//! Travel time is the great-circle distance stretched by a road factor, at the crew's average
//! speed: a fair first approximation on a highway network, with no routing engine to run.
//! The score is minutes-like (lower is better): travel time, plus a penalty for a crew without
//! the skill, off shift, or already busy with open orders.

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;

use crate::model::{Case, Crew};

/// Roads are longer than the straight line; 1.3 is typical of a highway network.
pub const ROAD_FACTOR: f64 = 1.3;
const NO_SKILL_PENALTY: f64 = 180.0;
const OFF_SHIFT_PENALTY: f64 = 240.0;
const PER_OPEN_ORDER: f64 = 60.0;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Proposal {
    pub crew_id: String,
    pub crew_name: String,
    pub score: f64,
    pub distance_km: f64,
    pub travel_minutes: f64,
    pub has_skill: bool,
    pub on_shift: bool,
    pub open_orders: usize,
    /// Why, in words, for the dispatcher.
    pub reason: String,
}

pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6371.0 * 2.0 * a.sqrt().atan2((1.0 - a).sqrt())
}

/// Road travel time in minutes from the crew's position to `(lat, lon)`.
pub fn travel_minutes(crew: &Crew, lat: f64, lon: f64) -> f64 {
    let km = distance_km(crew.lat, crew.lon, lat, lon) * ROAD_FACTOR;
    km / crew.speed_kmh.max(5.0) * 60.0
}

/// Whether the crew is on shift at `now` (shift hours are China Standard Time).
pub fn on_shift(crew: &Crew, now: DateTime<Utc>) -> bool {
    // China Standard Time is UTC+8 all year (no daylight saving).
    let hour = ((now.hour() + 8) % 24) as u8;
    let (start, end) = (crew.shift_start_hour.min(24), crew.shift_end_hour.min(24));
    if start == end || (start == 0 && end == 24) {
        true
    } else if start < end {
        (start..end).contains(&hour)
    } else {
        hour >= start || hour < end
    }
}

/// Every crew ranked for `case` at a station at `(lat, lon)`, best first. `open_orders` gives
/// each crew's number of open orders.
pub fn rank(
    case: &Case,
    station: Option<(f64, f64)>,
    crews: &[Crew],
    open_orders: impl Fn(&str) -> usize,
    now: DateTime<Utc>,
) -> Vec<Proposal> {
    let skill = case.kind.skill();
    let mut out: Vec<Proposal> = crews
        .iter()
        .map(|crew| {
            let (distance_km, travel) = match station {
                Some((lat, lon)) => (
                    distance_km(crew.lat, crew.lon, lat, lon) * ROAD_FACTOR,
                    travel_minutes(crew, lat, lon),
                ),
                // No position for the station: every crew is equally far.
                None => (0.0, 60.0),
            };
            let has_skill =
                skill == "general" || crew.skills.iter().any(|s| s == skill || s == "all");
            let shift = on_shift(crew, now);
            let orders = open_orders(&crew.id);
            let score = travel
                + if has_skill { 0.0 } else { NO_SKILL_PENALTY }
                + if shift { 0.0 } else { OFF_SHIFT_PENALTY }
                + orders as f64 * PER_OPEN_ORDER;
            let mut reason = format!("{distance_km:.0} km, about {travel:.0} min by road");
            if !has_skill {
                reason.push_str(&format!("; lacks {skill}"));
            }
            if !shift {
                reason.push_str("; off shift");
            }
            if orders > 0 {
                reason.push_str(&format!("; {orders} open order(s)"));
            }
            Proposal {
                crew_id: crew.id.clone(),
                crew_name: crew.name.clone(),
                score: (score * 10.0).round() / 10.0,
                distance_km: (distance_km * 10.0).round() / 10.0,
                travel_minutes: travel.round(),
                has_skill,
                on_shift: shift,
                open_orders: orders,
                reason,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.score
            .total_cmp(&b.score)
            .then_with(|| a.crew_id.cmp(&b.crew_id))
    });
    out
}

/// The demo's crews: a few depots around Hunan's highway network.
pub fn demo_crews() -> Vec<Crew> {
    let crew = |id: &str, name: &str, lat: f64, lon: f64, skills: &[&str], shift: (u8, u8)| Crew {
        id: id.into(),
        name: name.into(),
        skills: skills.iter().map(|s| (*s).to_owned()).collect(),
        lat,
        lon,
        shift_start_hour: shift.0,
        shift_end_hour: shift.1,
        speed_kmh: 75.0,
        phone: None,
        simulated: true,
    };
    vec![
        crew(
            "crew-changsha-1",
            "长沙一队 (Changsha 1)",
            28.23,
            112.94,
            &["electrical", "network", "metering"],
            (0, 24),
        ),
        crew(
            "crew-changsha-2",
            "长沙二队 (Changsha 2)",
            28.19,
            113.06,
            &["electrical", "network"],
            (8, 20),
        ),
        crew(
            "crew-yueyang",
            "岳阳队 (Yueyang)",
            29.36,
            113.13,
            &["electrical", "network"],
            (0, 24),
        ),
        crew(
            "crew-hengyang",
            "衡阳队 (Hengyang)",
            26.89,
            112.57,
            &["electrical", "metering"],
            (0, 24),
        ),
        crew(
            "crew-chenzhou",
            "郴州队 (Chenzhou)",
            25.77,
            113.01,
            &["electrical", "network"],
            (0, 24),
        ),
        crew(
            "crew-huaihua",
            "怀化队 (Huaihua)",
            27.55,
            109.98,
            &["electrical", "network", "metering"],
            (0, 24),
        ),
        crew(
            "crew-changde",
            "常德队 (Changde)",
            29.03,
            111.70,
            &["electrical", "network"],
            (0, 24),
        ),
        crew(
            "crew-shaoyang",
            "邵阳队 (Shaoyang)",
            27.24,
            111.47,
            &["electrical", "network"],
            (0, 24),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::open_detected;
    use crate::config::OpsConfig;
    use crate::detect::Problem;
    use crate::model::CaseKind;

    fn at(hour_utc: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2027-02-05T{hour_utc:02}:00:00Z"))
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn case(kind: CaseKind) -> Case {
        open_detected(
            &Problem {
                charger_id: "CP1".into(),
                station_id: "S1".into(),
                kind,
                connector_id: None,
                error_code: None,
                detail: "x".into(),
                at: at(2),
            },
            &OpsConfig::default(),
        )
        .0
    }

    #[test]
    fn distance_and_travel() {
        // Changsha to Yueyang: about 130 km as the crow flies.
        let d = distance_km(28.23, 112.94, 29.36, 113.13);
        assert!((120.0..140.0).contains(&d), "{d}");
        let crews = demo_crews();
        let t = travel_minutes(&crews[0], 29.36, 113.13);
        assert!((120.0..150.0).contains(&t), "{t}");
    }

    #[test]
    fn shifts() {
        let mut c = demo_crews()[1].clone(); // 08-20 local = 00-12 UTC
        assert!(on_shift(&c, at(2)));
        assert!(!on_shift(&c, at(13)));
        c.shift_start_hour = 20;
        c.shift_end_hour = 6; // overnight: 12-22 UTC
        assert!(on_shift(&c, at(13)));
        assert!(!on_shift(&c, at(2)));
        c.shift_start_hour = 0;
        c.shift_end_hour = 24;
        assert!(on_shift(&c, at(23)));
    }

    #[test]
    fn nearest_skilled_free_crew_first() {
        let crews = demo_crews();
        // A station near Yueyang.
        let near_yueyang = Some((29.30, 113.10));
        let ranked = rank(&case(CaseKind::Faulted), near_yueyang, &crews, |_| 0, at(2));
        assert_eq!(ranked[0].crew_id, "crew-yueyang");
        assert!(ranked.windows(2).all(|w| w[0].score <= w[1].score));
        // Busy: the next nearest takes over.
        let ranked = rank(
            &case(CaseKind::Faulted),
            near_yueyang,
            &crews,
            |id| if id == "crew-yueyang" { 3 } else { 0 },
            at(2),
        );
        assert_ne!(ranked[0].crew_id, "crew-yueyang");
        // Metering needs the skill: Yueyang lacks it.
        let ranked = rank(
            &case(CaseKind::MeterAnomaly),
            near_yueyang,
            &crews,
            |_| 0,
            at(2),
        );
        assert!(ranked[0].has_skill);
        assert!(
            ranked
                .iter()
                .any(|p| p.crew_id == "crew-yueyang" && !p.has_skill)
        );
    }
}
