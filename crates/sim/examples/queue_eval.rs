//! Queue numbers and diversion on vs off in the demo's holiday scenario, offline (the traffic
//! engine alone, no OCPP): waits of all cars, cars diverted, queue lengths per service area,
//! and the accuracy of the wait estimate given when a car takes its number. Prints the
//! markdown tables of `docs/benchmarks.md`.
//!
//! ```text
//! cargo run -p chargeops-sim --release --example queue_eval -- [hours] [seed]
//! ```

use chrono::Utc;

use chargeops_core::network_file::{HUNAN, parse_network};
use chargeops_sim::traffic::{DiversionOptions, Scenario, evaluate};

fn main() {
    let mut args = std::env::args().skip(1);
    let hours: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(72);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let net = match parse_network(HUNAN) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("bundled network: {e}");
            std::process::exit(1);
        }
    };
    let scenario = Scenario::SpringFestival;
    let start = scenario.start(Utc::now());
    let t = std::time::Instant::now();
    let off = evaluate(&net, scenario, start, hours, seed, None);
    let on = evaluate(
        &net,
        scenario,
        start,
        hours,
        seed,
        Some(DiversionOptions::default()),
    );
    println!(
        "Scenario {}, {hours} h from {start}, seed {seed}, {} stations ({:.1} s)\n",
        scenario.name(),
        net.stations.len(),
        t.elapsed().as_secs_f64()
    );
    println!("| | diversion off | diversion on | change |");
    println!("| --- | ---: | ---: | ---: |");
    let row = |name: &str, a: f64, b: f64, digits: usize| {
        let change = if a.abs() > 1e-9 {
            format!("{:+.0} %", (b - a) / a * 100.0)
        } else {
            "".into()
        };
        println!("| {name} | {a:.digits$} | {b:.digits$} | {change} |");
    };
    row("cars arriving", off.arrived as f64, on.arrived as f64, 0);
    row("cars served", off.served as f64, on.served as f64, 0);
    row(
        "cars that gave up waiting",
        off.abandoned as f64,
        on.abandoned as f64,
        0,
    );
    row("cars diverted", off.diverted as f64, on.diverted as f64, 0);
    row(
        "mean extra driving of a diverted car, km",
        off.mean_detour_km,
        on.mean_detour_km,
        1,
    );
    row("mean wait, min", off.mean_wait_min, on.mean_wait_min, 1);
    row("p95 wait, min", off.p95_wait_min, on.p95_wait_min, 1);
    row("longest wait, min", off.max_wait_min, on.max_wait_min, 0);
    row(
        "cars given a wait estimate",
        off.estimated as f64,
        on.estimated as f64,
        0,
    );
    row(
        "estimate MAE, min",
        off.estimate_mae_min,
        on.estimate_mae_min,
        1,
    );
    println!();
    let mut worst: Vec<usize> = (0..off.queues.len()).collect();
    worst.sort_by(|&a, &b| off.queues[b].1.cmp(&off.queues[a].1));
    println!(
        "| service area | most waiting, off | most waiting, on | mean waiting, off | mean waiting, on |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for &i in worst.iter().take(12) {
        let (id, max_off, mean_off) = &off.queues[i];
        let (_, max_on, mean_on) = &on.queues[i];
        println!("| {id} | {max_off} | {max_on} | {mean_off:.1} | {mean_on:.1} |");
    }
}
