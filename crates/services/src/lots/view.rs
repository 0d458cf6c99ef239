//! What staff, drivers and robots see of a lot: JSON views of the state machine's lot, cars,
//! robots and tasks, in seconds and metres rounded to the millimetre.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use chargeops_dispatch::Point;
use chargeops_dispatch::live::{self, LiveCar, LiveLot, Reported, Robot, Task};

pub(super) fn rfc3339(secs: f64) -> Value {
    DateTime::<Utc>::from_timestamp_micros((secs * 1e6).round() as i64).map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(SecondsFormat::Millis, true))
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub(super) fn task_view(l: &LiveLot, task: &Task) -> Value {
    match task {
        Task::Stay => json!({ "kind": "stay" }),
        Task::Dock => {
            json!({ "kind": "dock", "x": round3(l.lot.dock.x), "y": round3(l.lot.dock.y) })
        }
        Task::Car { car } => match l.car(car) {
            Some(c) => {
                let p = l.lot.bay(c.bay).unwrap_or(l.lot.dock);
                json!({
                    "kind": "car",
                    "car": c.id,
                    "bay": c.bay,
                    "x": round3(p.x),
                    "y": round3(p.y),
                    "energy_kwh": round3(c.remaining_kwh),
                })
            }
            None => json!({ "kind": "stay" }),
        },
    }
}

fn robot_view(l: &LiveLot, r: &Robot, now: f64) -> Value {
    let battery = l.battery_at(r, now);
    json!({
        "id": r.id,
        "x": round3(r.pos.x),
        "y": round3(r.pos.y),
        "battery_kwh": round3(battery),
        "battery_pct": round3(battery / l.fleet.robot_kwh * 100.0),
        "state": l.robot_state(r).as_str(),
        "reported_state": r.reported.as_str(),
        "last_report_at": r.last_report_s.map_or(Value::Null, rfc3339),
        "task": task_view(l, &r.task),
        "override": r.pinned,
        "online": r.online,
        "fault": r.online && r.reported == Reported::Fault,
    })
}

pub(super) fn car_view(station: &str, l: &LiveLot, c: &LiveCar, now: f64) -> Value {
    let p = l.lot.bay(c.bay);
    json!({
        "id": c.id,
        "station_id": station,
        "bay": c.bay,
        "x": p.map(|p| round3(p.x)),
        "y": p.map(|p| round3(p.y)),
        "plate": c.plate,
        "energy_kwh": round3(c.energy_kwh),
        "remaining_kwh": round3(c.remaining_kwh),
        "max_power_kw": round3(c.max_power_kw),
        "patience_s": c.patience_s,
        "arrived_at": rfc3339(c.arrival_s),
        "state": c.state.as_str(),
        "robot": c.robot,
        "wait_s": round3(c.wait_s(now)),
        "served_at": c.served_s.map_or(Value::Null, rfc3339),
        "ended_at": c.ended_s.map_or(Value::Null, rfc3339),
    })
}

pub(super) fn lot_view(station: &str, l: &LiveLot, now: f64, timeout_s: f64) -> Value {
    let mut cars: Vec<&LiveCar> = l.cars.iter().collect();
    // Active cars in arrival order, then the ended ones, newest first.
    cars.sort_by(|a, b| {
        let (aa, ba) = (a.state.is_active(), b.state.is_active());
        ba.cmp(&aa).then_with(|| {
            if aa {
                a.arrival_s.total_cmp(&b.arrival_s)
            } else {
                b.ended_s
                    .unwrap_or(0.0)
                    .total_cmp(&a.ended_s.unwrap_or(0.0))
            }
        })
    });
    let count = |s: live::CarState| l.cars.iter().filter(|c| c.state == s).count();
    let waits: Vec<f64> = l
        .cars
        .iter()
        .filter(|c| c.started_s.is_some())
        .map(|c| c.wait_s(now))
        .collect();
    let mean_wait = if waits.is_empty() {
        0.0
    } else {
        waits.iter().sum::<f64>() / waits.len() as f64
    };
    let point = |p: &Point| json!({ "x": round3(p.x), "y": round3(p.y) });
    json!({
        "station_id": station,
        "now": rfc3339(now),
        "bays": l.lot.bays.iter().map(point).collect::<Vec<_>>(),
        "dock": point(&l.lot.dock),
        "fleet": l.fleet,
        "max_car_kwh": round3(l.max_car_kwh()),
        "robot_timeout_s": timeout_s,
        "robots": l.robots.iter().map(|r| robot_view(l, r, now)).collect::<Vec<_>>(),
        "cars": cars.iter().map(|c| car_view(station, l, c, now)).collect::<Vec<_>>(),
        "stats": {
            "waiting": count(live::CarState::Waiting),
            "assigned": count(live::CarState::Assigned),
            "charging": count(live::CarState::Charging),
            "served": l.served_total,
            "mean_wait_s": round3(mean_wait),
            "robots_online": l.robots.iter().filter(|r| r.online).count(),
        },
    })
}
