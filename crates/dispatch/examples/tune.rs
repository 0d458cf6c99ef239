//! Parameter sweep for the chargeops policy (development aid), on tuning seeds that the
//! benchmark does not report (101-120 by default; the benchmark's tables use seeds 1-10).
//!
//! `cargo run --release -p chargeops-dispatch --example tune -- ROBOTS [FIRST_SEED LAST_SEED]`,
//! with `GRID="age_h,age_per_backlog,hold;..."` (hold 1 or 0) naming the settings to try.

use chargeops_dispatch::lot::{Fleet, Lot};
use chargeops_dispatch::policy::{Chargeops, DockRule, NearestIdle, Policy};
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
    let opp = eval(&mut NearestIdle {
        dock: DockRule::Opportunistic,
    });
    println!(
        "{robots} robots, seeds {first}-{last}: nearest_idle mean {:.1} min; nearest_idle_opportunistic mean {:.1} p95 {:.1} max {:.1}",
        ni.mean_wait_s / 60.0,
        opp.mean_wait_s / 60.0,
        opp.p95_wait_s / 60.0,
        opp.max_wait_s / 60.0
    );
    let grid = std::env::var("GRID").unwrap_or_else(|_| "5,1.75,1".into());
    for setting in grid.split(';') {
        let v: Vec<f64> = setting
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        let [age_h, beta, hold] = v[..] else {
            panic!("GRID entries are age_h,age_per_backlog,hold: {setting:?}");
        };
        let mut p = Chargeops {
            age_s: age_h * 3600.0,
            age_per_backlog: beta,
            hold: hold > 0.0,
        };
        let m = eval(&mut p);
        println!(
            "age {age_h:>5} h, per backlog {beta:>5}, hold {}: mean {:.1} ({:.3} of nearest_idle, {:.3} of opportunistic) p95 {:.1} max {:.1}",
            p.hold,
            m.mean_wait_s / 60.0,
            m.mean_wait_s / ni.mean_wait_s,
            m.mean_wait_s / opp.mean_wait_s,
            m.p95_wait_s / 60.0,
            m.max_wait_s / 60.0
        );
    }
}
