//! Parameter sweep for the chargeops policy (development aid).

use chargeops_dispatch::lot::{Fleet, Lot};
use chargeops_dispatch::policy::{Chargeops, DockRule, Fifo, NearestIdle, Policy};
use chargeops_dispatch::sim::{SimOptions, metrics, simulate};
use chargeops_dispatch::trace::HolidayPeak;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let robots: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let runs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let fleet = Fleet {
        robots,
        ..Fleet::default()
    };
    let lot = Lot::service_area(60);
    let traces: Vec<_> = (1..=runs).map(|s| HolidayPeak::new(s).generate()).collect();
    let eval = |p: &mut dyn Policy| {
        let mut cars = Vec::new();
        let (mut sv, mut dr, mut rc, mut dk, mut tot) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for t in &traces {
            let r = simulate(&lot, &fleet, t, p, &SimOptions::default()).expect("sim");
            sv += r.serving_s;
            dr += r.driving_s;
            rc += r.recharging_s;
            dk += r.docked_s;
            tot += (r.end_s - t[0].arrival_s) * fleet.robots as f64;
            cars.extend(r.cars);
        }
        eprintln!(
            "  serving {:.3} driving {:.3} recharging {:.3} docked-full {:.3} idle {:.3}",
            sv / tot,
            dr / tot,
            rc / tot,
            (dk - rc) / tot,
            1.0 - (sv + dr + dk) / tot
        );
        metrics(&cars, 0.0)
    };
    let mut ni = eval(&mut NearestIdle {
        dock: DockRule::Opportunistic,
    });
    println!(
        "nearest_idle opportunistic mean {:.1} p95 {:.1} max {:.1}",
        ni.mean_wait_s / 60.0,
        ni.p95_wait_s / 60.0,
        ni.max_wait_s / 60.0
    );
    let m = eval(&mut Fifo {
        dock: DockRule::Opportunistic,
    });
    println!(
        "fifo opportunistic mean {:.1} p95 {:.1} max {:.1}",
        m.mean_wait_s / 60.0,
        m.p95_wait_s / 60.0,
        m.max_wait_s / 60.0
    );
    let m = eval(&mut Fifo {
        dock: DockRule::FullCharge,
    });
    println!(
        "fifo full mean {:.1} p95 {:.1} max {:.1}",
        m.mean_wait_s / 60.0,
        m.p95_wait_s / 60.0,
        m.max_wait_s / 60.0
    );
    if std::env::var("FULL").is_ok() {
        ni = eval(&mut NearestIdle {
            dock: DockRule::FullCharge,
        });
    }
    println!(
        "nearest_idle full mean {:.1} p95 {:.1} max {:.1}",
        ni.mean_wait_s / 60.0,
        ni.p95_wait_s / 60.0,
        ni.max_wait_s / 60.0
    );
    for &k in &[2.0, 4.0, 8.0] {
        for &cap in &[3.0] {
            for &reserve in &[7200.0, 9000.0, 10800.0] {
                let mut p = Chargeops {
                    k,
                    cap_s: cap * 3600.0,
                    reserve_after_s: reserve,
                };
                let m = eval(&mut p);
                println!(
                    "k {k:>5} cap {cap:>3}h reserve {reserve:>5}: mean {:.1} ({:.3}) p95 {:.1} max {:.1}",
                    m.mean_wait_s / 60.0,
                    m.mean_wait_s / ni.mean_wait_s,
                    m.p95_wait_s / 60.0,
                    m.max_wait_s / 60.0
                );
            }
        }
    }
}
