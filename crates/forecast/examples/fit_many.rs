//! Times one fit-and-forecast round for many sites: the real sites of a session log, copied
//! until there are at least `--sites` of them (default 160), 24 hours ahead from the last
//! local midnight of the data.
//!
//! `cargo run --release -p chargeops-forecast --example fit_many -- SESSIONS.csv [--sites N]`

use std::time::Instant;

use chargeops_forecast::session::read_canonical;
use chargeops_forecast::{Calendar, Zone, by_site, forecast};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: fit_many SESSIONS.csv [--sites N]");
        std::process::exit(2);
    };
    let want: usize = match (args.next().as_deref(), args.next()) {
        (Some("--sites"), Some(n)) => n.parse().unwrap_or(160),
        _ => 160,
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("error: {path}: {e}");
        std::process::exit(1);
    });
    let (sessions, _) = read_canonical(&text, &path).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1);
    });
    let Some(last) = sessions.iter().map(|s| s.start).max() else {
        eprintln!("error: no sessions");
        std::process::exit(1);
    };
    let zone = Zone::infer(sessions.iter().map(|s| s.start));
    let calendar = match zone {
        Zone::LONDON => Calendar::scotland(),
        z => Calendar::empty(z),
    };
    let origin = zone.midnight(zone.to_local(last.to_utc()).date());
    let real = by_site(&sessions);
    let sites: Vec<_> = real.iter().cycle().take(want.max(real.len())).collect();
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let mut hours = 0;
        for site in &sites {
            match forecast(site, origin, 24, &calendar) {
                Ok(f) => hours += f.hours.len(),
                Err(e) => eprintln!("{}: {e}", site.site),
            }
        }
        rounds.push(t0.elapsed().as_secs_f64());
        assert_eq!(hours, 24 * sites.len());
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "{} sites ({} real, copied), origin {}: fit + 24 h forecast of occupancy, arrivals and queue in {:.1} ms (median of 5 rounds, single thread)",
        sites.len(),
        real.len(),
        origin.to_rfc3339(),
        1e3 * rounds[2]
    );
}
