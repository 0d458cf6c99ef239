//! The demo's mobile units: eighteen of them seeded at three depots, and a simulated crew for
//! each that follows the current relocation plan in platform time: it leaves when a move says,
//! drives the move's route at the plan's speed, and serves at the stay, reporting its position
//! and status through the same report the real units' trackers use.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};

use chargeops_core::Clock;
use chargeops_core::network_file::NetworkSpec;
use chargeops_dispatch::province;
use chargeops_services::units::{
    self, MobileUnit, PlanView, Report, Reporter, UnitKind, UnitPlanView, UnitStatus, Units,
};
use chargeops_store::Store;

/// The depots: the stations nearest Changsha, Hengyang and Yueyang (as `bench dispatch
/// --province` places them).
const DEPOTS: [(f64, f64); 3] = [(28.23, 112.94), (26.89, 112.57), (29.36, 113.13)];

/// Seeds 10 charging vehicles (2 guns of 60 kW, 2.4 cars/h) and 8 containers (3 guns of
/// 120 kW, 3.6 cars/h: the bench's figures) at the depots, one after the other, unless the data
/// directory has units already.
pub async fn seed(store: &Arc<dyn Store>, network: &NetworkSpec, at: DateTime<Utc>) -> Result<()> {
    if !store.list_documents(units::DOC_KIND).await?.is_empty() {
        return Ok(());
    }
    let depots: Vec<_> = DEPOTS
        .iter()
        .filter_map(|&(lat, lon)| {
            network.stations.iter().min_by(|a, b| {
                let d = |s: &chargeops_core::network_file::StationSpec| {
                    (s.lat - lat).powi(2) + (s.lon - lon).powi(2)
                };
                d(a).total_cmp(&d(b))
            })
        })
        .collect();
    if depots.is_empty() {
        return Ok(());
    }
    for i in 0..18 {
        let depot = depots[i % depots.len()];
        let (id, name, kind, guns, gun_kw, cars_per_hour) = if i < 10 {
            let n = i + 1;
            let name = format!("移动充电车 {n:02} (charging vehicle {n:02})");
            (
                format!("vehicle-{n:02}"),
                name,
                UnitKind::Vehicle,
                2,
                60.0,
                2.4,
            )
        } else {
            let n = i - 9;
            let name = format!("充电方舱 {n:02} (charging container {n:02})");
            (
                format!("container-{n:02}"),
                name,
                UnitKind::Container,
                3,
                120.0,
                3.6,
            )
        };
        let unit = MobileUnit {
            id,
            name,
            kind,
            guns,
            gun_kw,
            cars_per_hour,
            lat: depot.lat,
            lon: depot.lon,
            status: UnitStatus::Ready,
            station_id: Some(depot.id.clone()),
            left_from: None,
            reported_at: at,
            created_at: at,
            tracker_secret: None,
        };
        store
            .put_document(units::DOC_KIND, &unit.id, &serde_json::to_string(&unit)?)
            .await?;
    }
    eprintln!(
        "mobile units: 18 at {}",
        depots
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Where the plan puts a unit at `now`: on a move's route, or at the station of the last move
/// it finished (serving when a stay there covers `now`). `None` when the plan has nothing to
/// say (no move started yet), so the unit stays as it is.
fn planned_state(p: &UnitPlanView, now: DateTime<Utc>) -> Option<(f64, f64, UnitStatus, String)> {
    let point = |m: &units::MoveView, f: f64| {
        let route: Vec<(f64, f64)> = m.route.iter().map(|x| (x[0], x[1])).collect();
        province::along(&route, f)
    };
    for m in &p.moves {
        if m.depart_at <= now && now < m.arrive_at {
            let total = (m.arrive_at - m.depart_at).num_milliseconds().max(1) as f64;
            let f = (now - m.depart_at).num_milliseconds() as f64 / total;
            let (lat, lon) = point(m, f)?;
            return Some((lat, lon, UnitStatus::Driving, m.to.clone()));
        }
    }
    let (lat, lon, station) = match p.moves.iter().rev().find(|m| m.arrive_at <= now) {
        Some(m) => {
            let (lat, lon) = point(m, 1.0)?;
            (lat, lon, m.to.clone())
        }
        None => (p.position.lat, p.position.lon, p.station_id.clone()?),
    };
    let serving = p
        .stays
        .iter()
        .any(|s| s.station_id == station && s.from <= now && now < s.to && s.expected_cars > 0.0);
    let status = if serving {
        UnitStatus::Serving
    } else {
        UnitStatus::Ready
    };
    Some((lat, lon, status, station))
}

/// Moves every unit that is not broken to where the plan has it now; reports only changes.
async fn follow(units: &Units, now: DateTime<Utc>, plan: &PlanView) -> Result<()> {
    for u in units.list().await.map_err(|e| anyhow::anyhow!(e.message))? {
        if u.status == UnitStatus::Broken {
            continue;
        }
        let Some(p) = plan.units.iter().find(|p| p.unit == u.id) else {
            continue;
        };
        let Some((lat, lon, status, station)) = planned_state(p, now) else {
            continue;
        };
        let moved = province::great_circle_km((u.lat, u.lon), (lat, lon)) > 0.2;
        if !moved && status == u.status && u.station_id.as_deref() == Some(station.as_str()) {
            continue;
        }
        let r = Report {
            lat,
            lon,
            status,
            station_id: Some(station),
        };
        if let Err(e) = units.report(&u.id, &r, Reporter::Tracker).await {
            tracing::debug!(unit_id = %u.id, error = %e.message, "simulated unit report refused");
        }
    }
    Ok(())
}

/// Runs the simulated units until the process ends: a look every simulated minute (at most
/// every quarter second, at least every five seconds of wall time).
pub fn spawn(units: Arc<Units>, clock: Clock) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tick = clock
            .real_duration(Duration::minutes(1))
            .clamp(StdDuration::from_millis(250), StdDuration::from_secs(5));
        loop {
            tokio::time::sleep(tick).await;
            let Some(plan) = units.current() else {
                continue;
            };
            if let Err(e) = follow(&units, clock.now(), &plan).await {
                tracing::warn!(error = %e, "simulated mobile units");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_services::units::{MoveView, Position, StayView};

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("t") + Duration::minutes(min)
    }

    #[test]
    fn a_unit_leaves_drives_the_route_and_serves_at_its_stay() {
        let p = UnitPlanView {
            unit: "vehicle-01".into(),
            name: "v".into(),
            kind: UnitKind::Vehicle,
            cars_per_hour: 2.4,
            position: Position {
                lat: 28.0,
                lon: 113.0,
            },
            status: UnitStatus::Ready,
            station_id: Some("a".into()),
            stays: vec![StayView {
                station_id: "b".into(),
                name: "B".into(),
                from: t(120),
                to: t(600),
                expected_cars: 9.0,
            }],
            moves: vec![MoveView {
                from: Some("a".into()),
                from_name: Some("A".into()),
                to: "b".into(),
                to_name: "B".into(),
                depart_at: t(30),
                arrive_at: t(90),
                km: 70.0,
                in_progress: false,
                route: vec![[28.0, 113.0], [28.2, 113.0], [28.6, 113.0]],
            }],
        };
        let (lat, lon, s, at) = planned_state(&p, t(10)).expect("before leaving");
        assert_eq!(
            (lat, lon, s, at.as_str()),
            (28.0, 113.0, UnitStatus::Ready, "a")
        );
        let (lat, _, s, to) = planned_state(&p, t(60)).expect("half way");
        assert_eq!((s, to.as_str()), (UnitStatus::Driving, "b"));
        assert!((lat - 28.3).abs() < 0.01, "half the route's length: {lat}");
        let (lat, _, s, _) = planned_state(&p, t(100)).expect("arrived");
        assert_eq!(
            (lat, s),
            (28.6, UnitStatus::Ready),
            "arrived, stay not begun"
        );
        assert_eq!(
            planned_state(&p, t(130)).map(|x| x.2),
            Some(UnitStatus::Serving)
        );
        assert_eq!(
            planned_state(&p, t(700)).map(|x| x.2),
            Some(UnitStatus::Ready)
        );
    }
}
