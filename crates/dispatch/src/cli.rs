//! `chargeops bench dispatch`, for the binary to mount: the only place in the crate that reads
//! files and prints.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::DispatchError;
use crate::bounds::{Bounds, bounds};
use crate::lot::{Car, Fleet, Lot};
use crate::policy::{
    CarView, Chargeops, DockRule, Fifo, NearestIdle, Policy, RobotStatus, RobotView, View,
};
use crate::replay::{LiveComparison, ReplayOptions, compare_live};
use crate::sim::{CarResult, Metrics, SimOptions, metrics, simulate};
use crate::trace::{HolidayPeak, parse_trace, write_trace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// `chargeops bench dispatch`: replays a seeded or given arrival trace through the robot
/// dispatcher under FIFO, nearest-idle and chargeops, beside the lower bounds.
#[derive(Debug, Clone, clap::Args)]
pub struct DispatchBenchArgs {
    /// Arrival trace CSV (arrival_s,bay,energy_kwh,max_power_kw,patience_s); default: the seeded
    /// holiday-peak generator.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// TOML fleet file (robots, robot_kwh, robot_kw, speed_mps, dock_kw, plug_s,
    /// drive_kwh_per_km); the flags below override it.
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Robots in the lot [default: 6].
    #[arg(long)]
    pub robots: Option<usize>,
    /// Battery of each robot, kWh [default: 150].
    #[arg(long)]
    pub robot_kwh: Option<f64>,
    /// Charging power of each robot, kW [default: 120].
    #[arg(long)]
    pub robot_kw: Option<f64>,
    /// Driving speed, m/s [default: 1.0].
    #[arg(long)]
    pub speed_mps: Option<f64>,
    /// Dock charging power per robot, kW [default: 150].
    #[arg(long)]
    pub dock_kw: Option<f64>,
    /// Plugging overhead per car, s [default: 60].
    #[arg(long)]
    pub plug_s: Option<f64>,
    /// Bays in the lot (rows of 20).
    #[arg(long, default_value_t = 60)]
    pub bays: usize,
    /// Seed of the generated trace.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Generated traces to pool (seeds seed, seed+1, ...).
    #[arg(long, default_value_t = 1)]
    pub runs: u64,
    /// Load of the generated trace on the reference fleet (10 robots of 150 kWh, 120 kW, 150 kW
    /// dock): 1.0 is the "load near 1"; with --robots 6 the same trace is ~1.7.
    #[arg(long, default_value_t = 1.0)]
    pub load: f64,
    /// Share of generated drivers who leave after 30-120 min without a robot.
    #[arg(long, default_value_t = 0.0)]
    pub patience_share: f64,
    /// Also write the (first) generated trace to this CSV.
    #[arg(long)]
    pub write_trace: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Also search a clairvoyant reference schedule (sees the whole trace; slow: one simulation
    /// per iteration and trace).
    #[arg(long)]
    pub clairvoyant: bool,
    /// Schedules the clairvoyant search tries per trace.
    #[arg(long, default_value_t = 2000)]
    pub clairvoyant_iterations: usize,
    /// Also replay the same traces through the live lot (`live::LiveLot`, the platform's
    /// dispatcher) with simulated robots reporting every 5 s, and compare its waits with the
    /// simulator's chargeops.
    #[arg(long)]
    pub live: bool,
    /// Instead: time the chargeops decision for 200 waiting cars (median and p99).
    #[arg(long)]
    pub decision_timing: bool,
    /// Instead: the mobile-unit relocation comparison on a synthetic holiday day over the Hunan
    /// network.
    #[arg(long)]
    pub province: bool,
}

fn read(path: &Path) -> Result<String, DispatchError> {
    std::fs::read_to_string(path).map_err(|source| DispatchError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The fleet from defaults, then the TOML file, then the flags.
pub fn fleet_from(args: &DispatchBenchArgs) -> Result<Fleet, DispatchError> {
    let mut f = match &args.fleet {
        Some(p) => Fleet::from_toml(&read(p)?)?,
        None => Fleet::default(),
    };
    if let Some(v) = args.robots {
        f.robots = v;
    }
    if let Some(v) = args.robot_kwh {
        f.robot_kwh = v;
    }
    if let Some(v) = args.robot_kw {
        f.robot_kw = v;
    }
    if let Some(v) = args.speed_mps {
        f.speed_mps = v;
    }
    if let Some(v) = args.dock_kw {
        f.dock_kw = v;
    }
    if let Some(v) = args.plug_s {
        f.plug_s = v;
    }
    f.check()?;
    Ok(f)
}

/// One policy's pooled result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyReport {
    pub name: &'static str,
    pub metrics: Metrics,
}

/// The whole comparison: what `--format json` prints.
#[derive(Debug, Clone)]
pub struct Report {
    pub fleet: Fleet,
    pub traces: usize,
    pub policies: Vec<PolicyReport>,
    pub bound: Bounds,
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        let mut policies = serde_json::Map::new();
        for p in self
            .policies
            .iter()
            .enumerate()
            .filter(|(i, p)| *i < 3 || p.name == "clairvoyant")
            .map(|(_, p)| p)
        {
            policies.insert(
                p.name.to_string(),
                serde_json::to_value(&p.metrics).unwrap_or_default(),
            );
        }
        serde_json::json!({
            "policies": policies,
            "bound": serde_json::to_value(&self.bound).unwrap_or_default(),
        })
    }

    pub fn to_table(&self) -> String {
        let f = &self.fleet;
        let b = &self.bound;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "chargeops bench dispatch: {} robots of {} kWh / {} kW, dock {} kW, {} m/s, plug {} s; {} trace(s), {} cars",
            f.robots,
            f.robot_kwh,
            f.robot_kw,
            f.dock_kw,
            f.speed_mps,
            f.plug_s,
            self.traces,
            b.cars
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<28}{:>10}{:>10}{:>10}{:>8}{:>10}{:>9}{:>10}{:>8}{:>10}{:>10}",
            "policy",
            "mean min",
            "p95 min",
            "max min",
            "served",
            "abandoned",
            "unserved",
            "kWh",
            "util",
            "vs n-idle",
            "vs ni-opp"
        );
        let ni = self
            .policies
            .iter()
            .find(|p| p.name == "nearest_idle")
            .map_or(0.0, |p| p.metrics.mean_wait_s);
        let opp = self
            .policies
            .iter()
            .find(|p| p.name == "nearest_idle_opportunistic")
            .map_or(0.0, |p| p.metrics.mean_wait_s);
        let ratio = |m: f64, to: f64| {
            if to > 0.0 {
                format!("{:.3}", m / to)
            } else {
                "-".into()
            }
        };
        for p in &self.policies {
            let m = &p.metrics;
            let _ = writeln!(
                s,
                "{:<28}{:>10.1}{:>10.1}{:>10.1}{:>8}{:>10}{:>9}{:>10.0}{:>8.3}{:>10}{:>10}",
                p.name,
                m.mean_wait_s / 60.0,
                m.p95_wait_s / 60.0,
                m.max_wait_s / 60.0,
                m.served,
                m.abandoned,
                m.unserved,
                m.energy_kwh,
                m.robot_utilisation,
                ratio(m.mean_wait_s, ni),
                ratio(m.mean_wait_s, opp)
            );
        }
        let _ = writeln!(
            s,
            "(fifo, nearest_idle: a robot that goes to the dock is free again when full; *_opportunistic: free at any charge)"
        );
        if self.policies.iter().any(|p| p.name == "clairvoyant") {
            let _ = writeln!(
                s,
                "(clairvoyant: sees the whole trace; the best service order a local search found, started from chargeops's; a reference, not a bound)"
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "load        {:.3}: needs {:.1} robot-h (charging {:.1} + plugging {:.1} + dock {:.1}) of {:.1} fleet robot-h ({:.1} h window)",
            b.load,
            b.needed_robot_h,
            b.charging_h,
            b.plugging_h,
            b.dock_h,
            b.fleet_robot_h,
            b.window_h
        );
        let _ = writeln!(
            s,
            "power       fleet {:.0} kW: charging the cars takes at least {:.1} h",
            b.fleet_kw, b.power_bound_h
        );
        let _ = writeln!(
            s,
            "energy      {:.0} kWh; sustained {:.0} kW with dock time: at least {:.1} h from full batteries",
            b.energy_kwh, b.sustained_kw, b.energy_bound_h
        );
        let _ = writeln!(
            s,
            "fluid wait  {:.1} min (FIFO fluid with dock time; a reference, not a guarantee)",
            b.fluid_wait_s / 60.0
        );
        let _ = writeln!(
            s,
            "wait bound  {:.1} min (SRPT on one fleet-fast machine, no batteries/driving/dock: a true, loose lower bound)",
            b.srpt_wait_lb_s / 60.0
        );
        s
    }
}

/// Runs every policy on every trace and pools the cars.
pub fn compare(
    lot: &Lot,
    fleet: &Fleet,
    traces: &[Vec<Car>],
    opportunistic: bool,
    progress: bool,
) -> Result<Report, DispatchError> {
    let mut policies: Vec<(&'static str, Box<dyn Policy>)> = vec![
        ("fifo", Box::new(Fifo::default())),
        ("nearest_idle", Box::new(NearestIdle::default())),
        ("chargeops", Box::new(Chargeops::default())),
    ];
    if opportunistic {
        policies.push((
            "fifo_opportunistic",
            Box::new(Fifo {
                dock: DockRule::Opportunistic,
            }),
        ));
        policies.push((
            "nearest_idle_opportunistic",
            Box::new(NearestIdle {
                dock: DockRule::Opportunistic,
            }),
        ));
    }
    let bar = if progress {
        let b = indicatif::ProgressBar::new((traces.len() * policies.len()) as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut reports = Vec::new();
    for (name, mut p) in policies {
        let mut cars: Vec<CarResult> = Vec::new();
        let mut util = 0.0;
        for t in traces {
            let r = simulate(lot, fleet, t, p.as_mut(), &SimOptions::default())?;
            cars.extend(r.cars);
            util += r.metrics.robot_utilisation;
            bar.inc(1);
        }
        reports.push(PolicyReport {
            name,
            metrics: metrics(&cars, util / traces.len().max(1) as f64),
        });
    }
    bar.finish_and_clear();
    let all: Vec<Car> = traces.iter().flatten().cloned().collect();
    // Bounds are per trace; pooled traces are reported with the first trace's window scaled.
    let mut bound = bounds(fleet, traces.first().map_or(&[][..], |t| &t[..]));
    if traces.len() > 1 {
        let per: Vec<Bounds> = traces.iter().map(|t| bounds(fleet, t)).collect();
        let n = per.len() as f64;
        let sum = |f: fn(&Bounds) -> f64| per.iter().map(f).sum::<f64>();
        bound.cars = all.len();
        bound.energy_kwh = sum(|b| b.energy_kwh);
        bound.needed_robot_h = sum(|b| b.needed_robot_h);
        bound.charging_h = sum(|b| b.charging_h);
        bound.plugging_h = sum(|b| b.plugging_h);
        bound.dock_h = sum(|b| b.dock_h);
        bound.fleet_robot_h = sum(|b| b.fleet_robot_h);
        bound.window_h = sum(|b| b.window_h) / n;
        bound.load = bound.needed_robot_h / bound.fleet_robot_h;
        bound.power_bound_h = sum(|b| b.power_bound_h) / n;
        bound.energy_bound_h = sum(|b| b.energy_bound_h) / n;
        // Means over cars: weight each trace by its cars.
        let cars_w = |f: fn(&Bounds) -> f64| {
            per.iter().map(|b| f(b) * b.cars as f64).sum::<f64>() / all.len().max(1) as f64
        };
        bound.fluid_wait_s = cars_w(|b| b.fluid_wait_s);
        bound.srpt_wait_lb_s = cars_w(|b| b.srpt_wait_lb_s);
    }
    Ok(Report {
        fleet: fleet.clone(),
        traces: traces.len(),
        policies: reports,
        bound,
    })
}

/// Adds the clairvoyant reference to `report`: on each trace, the best schedule a search of
/// `iterations` schedules finds, started from chargeops's (see [`crate::bounds::clairvoyant`]).
pub fn add_clairvoyant(
    report: &mut Report,
    lot: &Lot,
    traces: &[Vec<Car>],
    iterations: usize,
    progress: bool,
) -> Result<(), DispatchError> {
    let bar = if progress {
        let b = indicatif::ProgressBar::new((traces.len() * iterations) as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "clairvoyant {bar:40} {pos}/{len} schedules {elapsed} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut cars: Vec<CarResult> = Vec::new();
    let mut util = 0.0;
    for (k, t) in traces.iter().enumerate() {
        let r = crate::bounds::clairvoyant(
            lot,
            &report.fleet,
            t,
            &mut Chargeops::default(),
            iterations,
            k as u64 + 1,
            || bar.inc(1),
        )?;
        cars.extend(r.cars);
        util += r.metrics.robot_utilisation;
    }
    bar.finish_and_clear();
    report.policies.push(PolicyReport {
        name: "clairvoyant",
        metrics: metrics(&cars, util / traces.len().max(1) as f64),
    });
    Ok(())
}

/// Times the chargeops decision on random lots with 200 waiting cars: (median, p99, max) in µs.
pub fn decision_timing(lot: &Lot, fleet: &Fleet, decisions: usize, seed: u64) -> (f64, f64, f64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut policy = Chargeops::default();
    let mut times = Vec::with_capacity(decisions);
    for _ in 0..decisions {
        let robots: Vec<RobotView> = (0..fleet.robots)
            .map(|id| {
                let status = match rng.random_range(0..4) {
                    0 => RobotStatus::Docked,
                    1 => RobotStatus::Idle,
                    2 => RobotStatus::ToDock,
                    _ => RobotStatus::Busy {
                        car: usize::MAX,
                        free_at: 600.0,
                    },
                };
                let pos = if status == RobotStatus::Docked {
                    lot.dock
                } else {
                    lot.bays[rng.random_range(0..lot.bays.len())]
                };
                RobotView {
                    id,
                    pos,
                    battery_kwh: rng.random_range(0.0..fleet.robot_kwh),
                    status,
                }
            })
            .collect();
        let waiting: Vec<CarView> = (0..200)
            .map(|id| CarView {
                id,
                arrival_s: id as f64 * 20.0,
                bay: rng.random_range(0..lot.bays.len()),
                energy_kwh: rng.random_range(5.0..100.0),
                max_power_kw: [60.0, 90.0, 120.0, 150.0, 250.0][rng.random_range(0..5)],
            })
            .collect();
        let view = View {
            now: 4000.0,
            lot,
            fleet,
            robots: &robots,
            waiting: &waiting,
        };
        let t = Instant::now();
        let actions = policy.decide(&view);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(actions);
    }
    times.sort_by(f64::total_cmp);
    (
        crate::sim::percentile(&times, 50.0),
        crate::sim::percentile(&times, 99.0),
        times.last().copied().unwrap_or(0.0),
    )
}

/// Runs `chargeops bench dispatch`: results on stdout, progress on stderr.
pub fn run(args: DispatchBenchArgs) -> Result<(), DispatchError> {
    if args.province {
        let out =
            crate::province::hunan_holiday_report(args.seed, args.format == OutputFormat::Json)?;
        print!("{out}");
        return Ok(());
    }
    let fleet = fleet_from(&args)?;
    if args.bays == 0 || args.bays > 100_000 {
        return Err(DispatchError::Lot(format!(
            "bays must be 1-100000, got {}",
            args.bays
        )));
    }
    let lot = Lot::service_area(args.bays);
    if args.decision_timing {
        let robots = fleet.robots.max(10);
        let f = Fleet { robots, ..fleet };
        let (p50, p99, max) = decision_timing(&lot, &f, 5000, args.seed);
        let text = format!(
            "chargeops decision, 200 waiting cars, {robots} robots, 5000 decisions: median {p50:.1} µs, p99 {p99:.1} µs, max {max:.1} µs\n"
        );
        match args.format {
            OutputFormat::Table => print!("{text}"),
            OutputFormat::Json => println!(
                "{}",
                serde_json::json!({"waiting": 200, "robots": robots, "decisions": 5000,
                    "median_us": p50, "p99_us": p99, "max_us": max})
            ),
        }
        return Ok(());
    }
    if !(args.load.is_finite() && args.load > 0.0 && args.load <= 20.0) {
        return Err(DispatchError::Fleet(format!(
            "--load must be above 0 and at most 20, got {}",
            args.load
        )));
    }
    let traces: Vec<Vec<Car>> = match &args.trace {
        Some(p) => vec![parse_trace(&read(p)?, Some(args.bays))?],
        None => (0..args.runs.max(1))
            .map(|i| {
                let mut g = HolidayPeak::new(args.seed + i);
                g.bays = args.bays;
                g.load = args.load;
                g.patience_share = args.patience_share;
                g.generate()
            })
            .collect(),
    };
    if let Some(p) = &args.write_trace
        && let Some(t) = traces.first()
    {
        std::fs::write(p, write_trace(t)).map_err(|source| DispatchError::Io {
            path: p.clone(),
            source,
        })?;
    }
    let n_cars: usize = traces.iter().map(Vec::len).sum();
    let progress = std::io::stderr().is_terminal() && n_cars * 3 > 2000;
    let mut report = compare(
        &lot,
        &fleet,
        &traces,
        args.format == OutputFormat::Table,
        progress,
    )?;
    if args.clairvoyant {
        add_clairvoyant(
            &mut report,
            &lot,
            &traces,
            args.clairvoyant_iterations,
            std::io::stderr().is_terminal(),
        )?;
    }
    let live = if args.live {
        let bar = if std::io::stderr().is_terminal() {
            let b = indicatif::ProgressBar::new(traces.len() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "live lot {bar:40} {pos}/{len} traces {elapsed} (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let c = compare_live(&lot, &fleet, &traces, &ReplayOptions::default(), || {
            bar.inc(1)
        })?;
        bar.finish_and_clear();
        Some(c)
    } else {
        None
    };
    match args.format {
        OutputFormat::Table => {
            print!("{}", report.to_table());
            if let Some(c) = &live {
                print!("{}", live_table(c));
            }
        }
        OutputFormat::Json => {
            let mut json = report.to_json();
            if let (Some(c), Some(obj)) = (&live, json.as_object_mut()) {
                obj.insert("live".into(), c.to_json());
            }
            println!("{}", serde_json::to_string_pretty(&json)?)
        }
    }
    Ok(())
}

/// The `--live` table: the simulator's chargeops beside the live lot on the same cars.
pub fn live_table(c: &LiveComparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "live lot against the simulator ({} trace(s); waits to the robot reaching the car):",
        c.traces
    );
    let _ = writeln!(
        s,
        "{:<28}{:>10}{:>10}{:>10}{:>8}{:>10}{:>8}{:>8}",
        "", "mean min", "p95 min", "max min", "served", "abandoned", "lost", "util"
    );
    for (name, m) in [
        ("chargeops (simulator)", &c.simulator),
        ("chargeops (live lot)", &c.live),
    ] {
        let _ = writeln!(
            s,
            "{:<28}{:>10.1}{:>10.1}{:>10.1}{:>8}{:>10}{:>8}{:>8.3}",
            name,
            m.mean_wait_s / 60.0,
            m.p95_wait_s / 60.0,
            m.max_wait_s / 60.0,
            m.served,
            m.abandoned,
            m.unserved,
            m.robot_utilisation
        );
    }
    let r = |l: f64, m: f64| {
        LiveComparison::ratio(l, m).map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"))
    };
    let _ = writeln!(
        s,
        "{:<28}{:>10}{:>10}{:>10}",
        "live / simulator",
        r(c.live.mean_wait_s, c.simulator.mean_wait_s),
        r(c.live.p95_wait_s, c.simulator.p95_wait_s),
        r(c.live.max_wait_s, c.simulator.max_wait_s)
    );
    let _ = writeln!(
        s,
        "(live lot's own wait, to the session start: mean {:.1} min; {} reports, {} sessions, {} stopped short; lowest battery {:.4} kWh (a robot may come home empty); {} cars found their bay taken and were given a copy of it; {} refused)",
        c.lot_mean_wait_s / 60.0,
        c.reports,
        c.sessions,
        c.short_sessions,
        c.min_battery_kwh,
        c.stacked,
        c.refused
    );
    s
}
