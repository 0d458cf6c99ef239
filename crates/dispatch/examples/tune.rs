//! Parameter sweep for the chargeops policy (development aid), on tuning seeds that the
//! benchmark does not report (101-120 by default; the benchmark's tables use seeds 1-10).
//!
//! `cargo run --release -p chargeops-dispatch --example tune -- ROBOTS [FIRST_SEED LAST_SEED]`,
//! with `GRID="age_h,age_per_backlog,hold,rescue_after_h,due_h,lead_min,rescue_backlog_h;..."`
//! (hold 1 or 0) naming the settings to try.

use chargeops_dispatch::lot::{Fleet, Lot};
use chargeops_dispatch::policy::{Chargeops, DockRule, Fifo, NearestIdle, Policy};
use chargeops_dispatch::sim::{Metrics, SimOptions, metrics, simulate};
use chargeops_dispatch::trace::HolidayPeak;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let robots = arg(1, 10) as usize;
    let (first, last) = (arg(2, 101), arg(3, 120));
    let fleet = Fleet {
        robots,
        ..Fleet::default()
    };
    let lot = Lot::service_area(60);
    let traces: Vec<_> = (first..=last)
        .map(|s| HolidayPeak::new(s).generate())
        .collect();
    let eval = |p: &mut dyn Policy| -> Metrics {
        let mut cars = Vec::new();
        for t in &traces {
            match simulate(&lot, &fleet, t, p, &SimOptions::default()) {
                Ok(r) => cars.extend(r.cars),
                Err(e) => panic!("simulate failed: {e}"),
            }
        }
        metrics(&cars, 0.0)
    };
    let ni = eval(&mut NearestIdle::default());
    println!(
        "{robots} robots, seeds {first}-{last}: nearest_idle mean {:.1} p95 {:.1} max {:.1}",
        ni.mean_wait_s / 60.0,
        ni.p95_wait_s / 60.0,
        ni.max_wait_s / 60.0
    );
    for (name, m) in [
        ("fifo", eval(&mut Fifo::default())),
        (
            "fifo_opportunistic",
            eval(&mut Fifo {
                dock: DockRule::Opportunistic,
            }),
        ),
        (
            "nearest_idle_opportunistic",
            eval(&mut NearestIdle {
                dock: DockRule::Opportunistic,
            }),
        ),
    ] {
        println!(
            "{name}: mean {:.1} ({:.3} of nearest_idle) p95 {:.1} max {:.1}",
            m.mean_wait_s / 60.0,
            m.mean_wait_s / ni.mean_wait_s,
            m.p95_wait_s / 60.0,
            m.max_wait_s / 60.0
        );
    }
    let grid = std::env::var("GRID").unwrap_or_else(|_| "5,1.75,1,1.5,2.5,17,3.75".into());
    for setting in grid.split(';') {
        let v: Vec<f64> = setting
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        let [age_h, beta, hold, after_h, due_h, lead_min, gate_h] = v[..] else {
            panic!(
                "GRID entries are age_h,age_per_backlog,hold,rescue_after_h,due_h,lead_min,rescue_backlog_h: {setting:?}"
            );
        };
        let mut p = Chargeops {
            age_s: age_h * 3600.0,
            age_per_backlog: beta,
            hold: hold > 0.0,
            rescue_after_s: after_h * 3600.0,
            due_s: due_h * 3600.0,
            lead_s: lead_min * 60.0,
            rescue_backlog_s: gate_h * 3600.0,
        };
        let m = eval(&mut p);
        println!(
            "age {age_h} h, per backlog {beta}, hold {}, rescue after {after_h} h, due {due_h} h, lead {lead_min} min, up to backlog {gate_h} h: mean {:.1} ({:.3} of nearest_idle) p95 {:.1} max {:.1}",
            p.hold,
            m.mean_wait_s / 60.0,
            m.mean_wait_s / ni.mean_wait_s,
            m.p95_wait_s / 60.0,
            m.max_wait_s / 60.0
        );
    }
}
