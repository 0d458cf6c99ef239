//! The past of a simulated network: the [`traffic`](crate::traffic) engine run over the weeks
//! before a start time, without OCPP, into finished charging sessions. Forecasts need weeks of
//! history per station; a demo that starts from an empty database would have none. Seeded like
//! the engine: the same network, scenario, end, length and seed give the same sessions.
//!
//! `chargeops sim history` writes them as the canonical session CSV
//! (`site,charger,connector,start,end,kwh`), so `chargeops forecast eval` can run on them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, TimeZone, Utc};

use chargeops_core::network_file::{HUNAN, NetworkSpec, parse_network};

use crate::fleet::fleet_charger;
use crate::traffic::{Action, Engine, Scenario, cst};

/// One finished session of the simulated past, compact (weeks of a province are millions):
/// stations and chargers by their index in the network file. Every simulated charger has one
/// connector (connector 1 of EVSE 1), as in the live fleet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimSession {
    pub station: u32,
    /// The charger's number within its station (0-based, as [`fleet_charger`] names it).
    pub charger: u32,
    pub car: u64,
    /// The driver's tag number (`DRV{tag:06}`).
    pub tag: u32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub energy_wh: i64,
    /// The charger faulted during the session and ended it.
    pub interrupted: bool,
}

impl SimSession {
    pub fn station_id<'a>(&self, network: &'a NetworkSpec) -> &'a str {
        &network.stations[self.station as usize].id
    }

    /// The charger's id, YKC or OCPP as the fleet with `share_ykc` names it.
    pub fn charger_id(&self, network: &NetworkSpec, share_ykc: f64) -> String {
        fleet_charger(
            self.station as usize,
            &network.stations[self.station as usize],
            self.charger as usize,
            share_ykc,
        )
        .id
    }

    /// Unique within a run of one seed; never all digits.
    pub fn transaction_ref(&self, seed: u64) -> String {
        format!("sim-{seed}-{}", self.car)
    }

    pub fn id_tag(&self) -> String {
        format!("DRV{:06}", self.tag)
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct HistorySpec {
    pub scenario: Scenario,
    /// The simulated past ends here (the demo's start).
    pub end: DateTime<Utc>,
    pub weeks: u32,
    pub seed: u64,
    pub fault_rate: f64,
    pub disconnect_rate: f64,
}

/// A running session: its start, planned end, energy and car.
struct Running {
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    energy_wh: i64,
    car_id: u64,
    tag: u32,
}

/// Runs the engine over `spec.weeks` weeks before `spec.end` and returns the sessions that
/// started and ended in that time, in start order.
/// `progress` is called with the share done (0 to 1) about once a simulated day.
pub fn generate(
    network: &NetworkSpec,
    spec: &HistorySpec,
    mut progress: impl FnMut(f64),
) -> Vec<SimSession> {
    let span = Duration::weeks(i64::from(spec.weeks));
    let start = spec.end - span;
    // A different stream from the live traffic of the same seed.
    let mut engine = Engine::new(network, spec.scenario, start, spec.seed ^ 0x005e_ed0f_4157)
        .with_incident_rates(spec.fault_rate, spec.disconnect_rate);
    let mut running: Vec<Vec<Option<Running>>> = network
        .stations
        .iter()
        .map(|s| (0..s.chargers.max(1)).map(|_| None).collect())
        .collect();
    let mut out = Vec::new();
    let finish = |out: &mut Vec<SimSession>,
                  station: usize,
                  charger: usize,
                  r: Running,
                  end: DateTime<Utc>,
                  interrupted: bool| {
        let planned = (r.until - r.start).num_milliseconds().max(1);
        let done = (end - r.start).num_milliseconds().clamp(0, planned);
        out.push(SimSession {
            station: station as u32,
            charger: charger as u32,
            car: r.car_id,
            tag: r.tag,
            start: r.start,
            end,
            energy_wh: (r.energy_wh as f64 * done as f64 / planned as f64).round() as i64,
            interrupted,
        });
    };
    // Two-minute steps: half the work of the live fleet's one-minute steps for weeks of
    // history, at the cost of start times on a two-minute grid and a charger freed within a
    // step taking its next car at the step's end (about 3% of capacity with 35-minute sessions).
    let step = Duration::minutes(2);
    let total_steps = span.num_minutes().max(1);
    let mut steps = 0i64;
    while engine.now() < spec.end {
        let dt = (spec.end - engine.now()).min(step);
        let actions = engine.advance(dt);
        let now = engine.now();
        for action in actions {
            match action {
                Action::Plug {
                    station,
                    charger,
                    car,
                    duration,
                    energy_wh,
                } => {
                    running[station][charger] = Some(Running {
                        start: now,
                        until: now + duration,
                        energy_wh,
                        car_id: car.id,
                        tag: car
                            .id_tag
                            .trim_start_matches("DRV")
                            .parse()
                            .unwrap_or_default(),
                    });
                }
                Action::Unplug {
                    station, charger, ..
                } => {
                    if let Some(r) = running[station][charger].take() {
                        let end = r.until.min(now);
                        finish(&mut out, station, charger, r, end, false);
                    }
                }
                Action::Fault {
                    station,
                    charger,
                    interrupted: Some(_),
                    ..
                } => {
                    if let Some(r) = running[station][charger].take() {
                        finish(&mut out, station, charger, r, now, true);
                    }
                }
                _ => {}
            }
        }
        steps += 1;
        if steps % 720 == 0 {
            progress(steps as f64 / total_steps as f64);
        }
    }
    // Sessions still running at the end are left out: the live fleet starts with every
    // charger free, and a session cut at the start would look like a car that took a few Wh.
    progress(1.0);
    // Stable: sessions starting in the same step keep the engine's order.
    out.sort_by_key(|s| s.start);
    out
}

/// The canonical session CSV: `site,charger,connector,start,end,kwh`, times in China Standard
/// Time with their offset.
pub fn write_canonical(
    network: &NetworkSpec,
    share_ykc: f64,
    sessions: &[SimSession],
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(out, "site,charger,connector,start,end,kwh")?;
    let tz = cst();
    for s in sessions {
        writeln!(
            out,
            "{},{},1,{},{},{:.3}",
            s.station_id(network),
            s.charger_id(network, share_ykc),
            s.start
                .with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            s.end
                .with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            s.energy_wh as f64 / 1000.0,
        )?;
    }
    Ok(())
}

/// `chargeops sim history`
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Which traffic to simulate
    #[arg(long, value_enum, default_value_t = Scenario::SpringFestival)]
    pub scenario: Scenario,
    /// Weeks of history
    #[arg(long, default_value_t = 8)]
    pub weeks: u32,
    /// Last day of the history (local date, YYYY-MM-DD); it ends at the following midnight
    /// [default: the scenario's start, as `chargeops demo` seeds it]
    #[arg(long, value_name = "DATE")]
    pub until: Option<NaiveDate>,
    /// Seed of the traffic
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Network file [default: the bundled Hunan network]
    #[arg(long, value_name = "FILE")]
    pub network: Option<PathBuf>,
    /// Share of chargers named as YKC chargers (as `chargeops demo --share-ykc` names them)
    #[arg(long, default_value_t = 0.15)]
    pub share_ykc: f64,
    /// Output: the canonical session CSV
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Most weeks `sim history` and the demo accept: two years.
pub const MAX_WEEKS: u32 = 104;

/// Runs `chargeops sim history`: a report on stderr, the CSV in `--out`.
pub fn run_history(args: &HistoryArgs) -> Result<()> {
    if args.weeks == 0 || args.weeks > MAX_WEEKS {
        bail!("--weeks must be 1 to {MAX_WEEKS}");
    }
    if !(0.0..=1.0).contains(&args.share_ykc) {
        bail!("--share-ykc must be between 0 and 1");
    }
    let network = match &args.network {
        None => parse_network(HUNAN).context("the bundled network file is invalid")?,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("failed to read network file {}", p.display()))?;
            parse_network(&text).with_context(|| format!("invalid network file {}", p.display()))?
        }
    };
    let end = match args.until {
        Some(d) => {
            let midnight = (d + Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .and_then(|t| cst().from_local_datetime(&t).single())
                .context("--until is out of range")?;
            midnight.with_timezone(&Utc)
        }
        None => args.scenario.start(Utc::now()),
    };
    let spec = HistorySpec {
        scenario: args.scenario,
        end,
        weeks: args.weeks,
        seed: args.seed,
        fault_rate: 0.002,
        disconnect_rate: 0.003,
    };
    let t0 = std::time::Instant::now();
    let bar = indicatif::ProgressBar::new(1000);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let sessions = generate(&network, &spec, |f| bar.set_position((f * 1000.0) as u64));
    bar.finish_and_clear();
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("failed to create {}", args.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    write_canonical(&network, args.share_ykc, &sessions, &mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("failed to write {}", args.out.display()))?;
    eprintln!(
        "wrote {} sessions of {} stations, {} .. {} ({}), scenario {}, in {:.1} s to {}",
        sessions.len(),
        network.stations.len(),
        (end - Duration::weeks(i64::from(args.weeks)))
            .with_timezone(&cst())
            .format("%Y-%m-%d %H:%M"),
        end.with_timezone(&cst()).format("%Y-%m-%d %H:%M %:z"),
        format_args!("{} weeks", args.weeks),
        args.scenario.name(),
        t0.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(weeks: u32, seed: u64) -> HistorySpec {
        HistorySpec {
            scenario: Scenario::Normal,
            end: Utc
                .with_ymd_and_hms(2026, 5, 20, 0, 0, 0)
                .single()
                .expect("date"),
            weeks,
            seed,
            fault_rate: 0.002,
            disconnect_rate: 0.003,
        }
    }

    #[test]
    fn history_is_seeded_ordered_and_never_double_books_a_charger() {
        let text = "id,pair,name_zh,name_pinyin,kind,highway,direction,travel,km,lat,lon,position,chargers,power_kw,twin,source\n\
                    a,,甲,Jia,urban,,,,,28.2,112.9,approximate,4,120,,verified\n";
        let net = parse_network(text).expect("network");
        let a = generate(&net, &spec(1, 7), |_| {});
        let b = generate(&net, &spec(1, 7), |_| {});
        assert_eq!(a, b);
        assert!(a.len() > 100, "{} sessions in a week", a.len());
        let s = spec(1, 7);
        let mut last_end = std::collections::HashMap::new();
        for x in &a {
            assert!(x.start >= s.end - Duration::weeks(1) && x.end <= s.end);
            assert!(x.end >= x.start && x.energy_wh >= 0);
            assert!(!x.transaction_ref(7).bytes().all(|c| c.is_ascii_digit()));
            assert!(x.id_tag().starts_with("DRV"));
            if let Some(prev) = last_end.insert(x.charger, x.end) {
                assert!(prev <= x.start, "charger {} double-booked", x.charger);
            }
        }
        assert!(a.windows(2).all(|w| w[0].start <= w[1].start));
        let mut csv = Vec::new();
        write_canonical(&net, 0.0, &a[..2], &mut csv).expect("write");
        let csv = String::from_utf8(csv).expect("utf8");
        assert!(
            csv.starts_with("site,charger,connector,start,end,kwh\na,a-0"),
            "{csv}"
        );
        assert!(csv.contains("+08:00"));
    }
}
