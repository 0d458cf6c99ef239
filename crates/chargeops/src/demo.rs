//! `chargeops demo` and `chargeops sim`: the province network, simulated chargers and traffic,
//! against our own platform (demo) or any OCPP server (sim).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result, bail};
use chrono::{Duration, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use chargeops_core::network_file::{HUNAN, NetworkSpec, parse_network};
use chargeops_core::secret::{derive_password, hash_secret, random_hex};
use chargeops_core::{Charger, Clock, IdTag, IdTagStatus, Station};
use chargeops_gateway::RegistrationPolicy;
use chargeops_sim::client::Endpoint;
use chargeops_sim::fleet::{self, FleetConfig, FleetStats};
use chargeops_sim::traffic::{DRIVER_TAGS, Scenario};
use chargeops_store::{ErrorKind, SqliteStore, Store};

use crate::config::Config;
use crate::serve;

#[derive(Debug, Clone, clap::Args)]
pub struct TrafficArgs {
    /// Simulated seconds per real second
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Which traffic to simulate
    #[arg(long, value_enum, default_value_t = Scenario::Normal)]
    pub scenario: Scenario,
    /// Seed of the traffic: the same seed gives the same cars
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Network file (CSV, see data/network/README.md) [default: the bundled Hunan network]
    #[arg(long, value_name = "FILE")]
    pub network: Option<PathBuf>,
    /// Stop after this many simulated hours [default: run until Ctrl-C]
    #[arg(long, value_name = "HOURS")]
    pub sim_hours: Option<f64>,
    /// Share of chargers speaking OCPP 2.0.1 (the rest speak 1.6J)
    #[arg(long, default_value_t = 0.3)]
    pub share_v201: f64,
    /// Share of chargers speaking YKC (云快充) over TCP instead of OCPP (`sim`: only with
    /// --ykc-server)
    #[arg(long, default_value_t = 0.15)]
    pub share_ykc: f64,
    /// Charger faults per charger and simulated hour
    #[arg(long, default_value_t = 0.002)]
    pub fault_rate: f64,
    /// Connection drops per charger and simulated hour
    #[arg(long, default_value_t = 0.003)]
    pub disconnect_rate: f64,
    /// Drivers facing a queue get the platform's diversion suggestion, and most take it
    #[arg(long)]
    pub divert: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub traffic: TrafficArgs,
    /// Address of the platform (OCPP and HTTP)
    #[arg(long, default_value = "127.0.0.1:8180")]
    pub listen: SocketAddr,
    /// Data directory [default: a fresh directory under the system's temporary directory]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Do not open a browser
    #[arg(long)]
    pub headless: bool,
    /// Weeks of simulated session history written before the start, for the forecasts
    /// (0: none; skipped when the data directory has it already)
    #[arg(long, value_name = "WEEKS", default_value_t = 8)]
    pub history_weeks: u32,
}

/// `chargeops sim`: the fleet against a server, or a subcommand.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimCli {
    #[command(subcommand)]
    pub cmd: Option<SimCmd>,
    #[command(flatten)]
    pub run: SimArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SimCmd {
    /// The traffic engine run over past weeks without OCPP, written as the canonical session
    /// CSV (site,charger,connector,start,end,kwh) for `chargeops forecast eval`.
    History(chargeops_sim::history::HistoryArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub traffic: TrafficArgs,
    /// The OCPP server, e.g. ws://127.0.0.1:8180/ocpp (each charger appends its id); required
    /// unless a subcommand is given
    #[arg(
        long,
        value_name = "URL",
        default_value = "",
        hide_default_value = true
    )]
    pub server: String,
    /// Secret from which each charger's password is derived (as `chargeops demo` does);
    /// without it chargers connect without credentials
    #[arg(long, value_name = "SECRET")]
    pub password_secret: Option<String>,
    /// Chargers connecting at once
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// The server's YKC listener (ADDR:PORT); without it every simulated charger speaks OCPP
    #[arg(long, value_name = "ADDR")]
    pub ykc_server: Option<SocketAddr>,
}

fn load_network(path: Option<&PathBuf>) -> Result<NetworkSpec> {
    match path {
        None => parse_network(HUNAN).context("the bundled network file is invalid"),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("failed to read network file {}", p.display()))?;
            parse_network(&text).with_context(|| format!("invalid network file {}", p.display()))
        }
    }
}

fn total_chargers(network: &NetworkSpec) -> u64 {
    network
        .stations
        .iter()
        .map(|s| u64::from(s.chargers.max(1)))
        .sum()
}

/// Writes the network into the store: stations, chargers (OCPP ones with derived passwords,
/// YKC ones without: the protocol has none), the drivers' id tags. Re-running on the same data
/// directory leaves what exists alone.
async fn seed(
    store: &Arc<dyn Store>,
    network: &NetworkSpec,
    secret: &str,
    share_ykc: f64,
) -> Result<()> {
    let now = Utc::now();
    for s in &network.stations {
        store
            .upsert_station(&Station {
                id: s.id.clone(),
                name: format!("{} ({})", s.name_zh, s.name_pinyin),
                lat: Some(s.lat),
                lon: Some(s.lon),
                highway: s.highway.clone(),
                direction: s.direction.map(|d| d.as_str().to_owned()),
            })
            .await?;
    }
    let mut chargers = Vec::new();
    for (index, s) in network.stations.iter().enumerate() {
        for n in 0..s.chargers.max(1) as usize {
            chargers.push((fleet::fleet_charger(index, s, n, share_ykc), s.id.clone()));
        }
    }
    // Many writes at once share a commit (the store batches them), so seeding thousands of
    // chargers takes a few commits rather than thousands.
    for chunk in chargers.chunks(256) {
        let mut set = tokio::task::JoinSet::new();
        for (fleet::FleetCharger { id, ykc }, station_id) in chunk.iter().cloned() {
            let secret = secret.to_owned();
            let store = store.clone();
            set.spawn(async move {
                let password_hash = (!ykc).then(|| hash_secret(&derive_password(&secret, &id)));
                let charger = Charger::registered(id, station_id, password_hash, now);
                match store.insert_charger(&charger).await {
                    Err(e) if e.kind() != ErrorKind::Conflict => Err(e),
                    _ => Ok(()),
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.context("seeding task failed")??;
        }
    }
    // Field crews at depots around the province, driven by the simulation.
    for crew in chargeops_ops::dispatch::demo_crews() {
        store.upsert_crew(&crew).await?;
    }
    let tags: Vec<String> = (0..DRIVER_TAGS).map(|i| format!("DRV{i:06}")).collect();
    for chunk in tags.chunks(500) {
        let mut set = tokio::task::JoinSet::new();
        for tag in chunk.iter().cloned() {
            let store = store.clone();
            set.spawn(async move {
                store
                    .upsert_id_tag(&IdTag {
                        id_tag: tag,
                        status: IdTagStatus::Accepted,
                        expiry: None,
                        parent_id_tag: None,
                    })
                    .await
            });
        }
        while let Some(r) = set.join_next().await {
            r.context("seeding task failed")??;
        }
    }
    Ok(())
}

/// Sessions a history import writes in one transaction: big enough that each commit amortises
/// the index pages it touches, and nothing else is writing before the platform starts.
const HISTORY_CHUNK: usize = 100_000;

/// Runs the traffic engine over the `weeks` before `end` without OCPP and bulk-imports the
/// sessions, so the forecasts have a past to learn from. A data directory that already holds
/// sessions in the last hour before `end` keeps its history.
async fn seed_history(
    store: &Arc<dyn Store>,
    network: &NetworkSpec,
    traffic: &TrafficArgs,
    end: chrono::DateTime<Utc>,
    weeks: u32,
) -> Result<()> {
    use chargeops_sim::history::{HistorySpec, generate};
    use chargeops_store::ImportedSession;

    if !store
        .session_spans(None, end - Duration::hours(1), end)
        .await?
        .is_empty()
    {
        eprintln!("history: the data directory has it already");
        return Ok(());
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {percent}%")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("simulating {weeks} weeks of history"));
    let spec = HistorySpec {
        scenario: traffic.scenario,
        end,
        weeks,
        seed: traffic.seed,
        fault_rate: traffic.fault_rate,
        disconnect_rate: traffic.disconnect_rate,
    };
    let t0 = std::time::Instant::now();
    let sessions = {
        let (network, bar) = (network.clone(), bar.clone());
        tokio::task::spawn_blocking(move || {
            generate(&network, &spec, |f| bar.set_position((f * 500.0) as u64))
        })
        .await
        .context("history task failed")?
    };
    let simulated = t0.elapsed();
    bar.set_message(format!("importing {} sessions", sessions.len()));
    let t1 = std::time::Instant::now();
    let mut added = 0;
    let mut done = 0;
    for chunk in sessions.chunks(HISTORY_CHUNK) {
        let mut rows: Vec<ImportedSession> = chunk
            .iter()
            .map(|s| ImportedSession {
                charger_id: s.charger_id(network, traffic.share_ykc),
                evse_id: 1,
                connector_id: 1,
                transaction_ref: s.transaction_ref(traffic.seed),
                id_tag: Some(s.id_tag()),
                started_at: s.start,
                stopped_at: Some(s.end),
                energy_wh: Some(s.energy_wh),
                stop_reason: s.interrupted.then(|| "EmergencyStop".to_owned()),
            })
            .collect();
        // Grouped by charger, the per-charger indexes take the rows page by page.
        rows.sort_by(|a, b| (&a.charger_id, a.started_at).cmp(&(&b.charger_id, b.started_at)));
        added += store.import_sessions(&rows).await?;
        done += chunk.len();
        bar.set_position(500 + (500 * done / sessions.len().max(1)) as u64);
    }
    bar.finish_and_clear();
    eprintln!(
        "history: {added} sessions over {weeks} weeks before {} (simulated in {:.1} s, imported in {:.1} s)",
        end.with_timezone(&chargeops_sim::traffic::cst())
            .format("%Y-%m-%d %H:%M"),
        simulated.as_secs_f64(),
        t1.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(StdDuration::from_millis(250));
    bar.set_message(format!("starting {total} chargers"));
    bar
}

fn progress_line(stats: &FleetStats, total: u64) -> String {
    let g = FleetStats::get;
    let diverted = match g(&stats.diverted) {
        0 => String::new(),
        n => format!("  diverted {n}"),
    };
    format!(
        "{}  chargers {}/{}  charging {}  queued {}{diverted}  sessions {}  energy {:.1} MWh  faults {}  reconnects {}",
        stats
            .sim_time()
            .with_timezone(&chargeops_sim::traffic::cst())
            .format("%a %Y-%m-%d %H:%M"),
        g(&stats.connected),
        total,
        g(&stats.charging),
        g(&stats.waiting),
        g(&stats.sessions_completed),
        g(&stats.energy_wh) as f64 / 1e6,
        g(&stats.faults),
        g(&stats.reconnects),
    )
}

/// Runs the fleet with a progress line until Ctrl-C or the simulated-hours limit.
async fn drive(config: FleetConfig, traffic: &TrafficArgs, total: u64) -> Result<Arc<FleetStats>> {
    let clock = config.clock;
    let start = clock.now();
    let stats = Arc::new(FleetStats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let fleet = tokio::spawn(fleet::run(config, stats.clone(), stop_rx));
    let bar = progress_bar(total);
    let limit = traffic
        .sim_hours
        .map(|h| Duration::milliseconds((h * 3_600_000.0) as i64));
    let mut tick = tokio::time::interval(StdDuration::from_millis(250));
    let ctrl_c = serve::shutdown_signal();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut ctrl_c => break,
        }
        bar.set_message(progress_line(&stats, total));
        if limit.is_some_and(|l| clock.now() - start >= l) {
            break;
        }
    }
    let _ = stop_tx.send(true);
    fleet.await.context("fleet task failed")?;
    bar.finish_with_message(progress_line(&stats, total));
    Ok(stats)
}

fn check_traffic(t: &TrafficArgs) -> Result<()> {
    if !(t.speed.is_finite() && t.speed > 0.0 && t.speed <= 100_000.0) {
        bail!("--speed must be above 0 and at most 100000");
    }
    if !(0.0..=1.0).contains(&t.share_v201) {
        bail!("--share-v201 must be between 0 and 1");
    }
    if !(0.0..=1.0).contains(&t.share_ykc) {
        bail!("--share-ykc must be between 0 and 1");
    }
    if t.sim_hours.is_some_and(|h| !(h.is_finite() && h > 0.0)) {
        bail!("--sim-hours must be above 0");
    }
    Ok(())
}

pub async fn demo(args: DemoArgs) -> Result<()> {
    check_traffic(&args.traffic)?;
    if args.history_weeks > chargeops_sim::history::MAX_WEEKS {
        bail!(
            "--history-weeks must be at most {}",
            chargeops_sim::history::MAX_WEEKS
        );
    }
    let start = args.traffic.scenario.start(Utc::now());
    let network = load_network(args.traffic.network.as_ref())?;
    let robot_lots = crate::demo_robots::lots(&network, args.traffic.scenario, start);
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("chargeops-demo-{}", random_hex(4))),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;
    // The password secret stays in the data directory so a restarted demo's chargers still
    // authenticate; it protects only simulated chargers.
    let secret_file = data_dir.join("demo-secret");
    let secret = match std::fs::read_to_string(&secret_file) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => {
            let s = random_hex(16);
            std::fs::write(&secret_file, &s)
                .with_context(|| format!("failed to write {}", secret_file.display()))?;
            s
        }
    };
    let total = total_chargers(&network);
    eprintln!(
        "chargeops demo: {} stations, {} chargers, scenario {}, {}x speed, data in {}",
        network.stations.len(),
        total,
        args.traffic.scenario.name(),
        args.traffic.speed,
        data_dir.display()
    );
    {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open_dir(&data_dir).with_context(|| {
                format!("failed to open the database in {}", data_dir.display())
            })?);
        seed(&store, &network, &secret, args.traffic.share_ykc)
            .await
            .context("failed to write the demo network")?;
        if args.history_weeks > 0 {
            seed_history(&store, &network, &args.traffic, start, args.history_weeks)
                .await
                .context("failed to write the simulated history")?;
        }
        crate::demo_units::seed(&store, &network, start)
            .await
            .context("failed to write the mobile units")?;
        crate::demo_robots::seed(&store, &robot_lots, &secret)
            .await
            .context("failed to write the robot chargers")?;
    }

    let token = std::env::var("CHARGEOPS_ADMIN_TOKEN")
        .ok()
        .filter(|t| t.len() >= 16)
        .unwrap_or_else(|| format!("demo_{}", random_hex(16)));
    // The demo's YKC chargers connect to a listener on a free loopback port.
    let ykc_listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("no free port for the YKC listener")?;
    let config = Config {
        listen: args.listen,
        ykc_listen: Some(ykc_listen),
        data_dir: data_dir.clone(),
        registration: RegistrationPolicy::Closed,
        admin_token: Some(token.clone()),
        log: std::env::var("CHARGEOPS_LOG").unwrap_or_else(|_| "warn".to_owned()),
        robot_timeout_secs: crate::demo_robots::robot_timeout_secs(args.traffic.speed),
        // The demo's dispatcher confirms every proposal and its crews drive and repair.
        ops: chargeops_ops::OpsConfig {
            auto_assign: true,
            simulate_crews: true,
            ..chargeops_ops::OpsConfig::default()
        },
        ..Config::default()
    };
    serve::init_tracing(&config.log);
    let clock = Clock::simulated(start, args.traffic.speed);
    let platform = serve::start(&config, clock).await?;
    let addr = platform.addr;
    let url = format!("http://{addr}/#token={token}");
    eprintln!(
        "\n  Operations map: {url}\n  Driver page:    http://{addr}/driver\n  YKC chargers:   tcp://{ykc_listen}\n  API token:      {token}\n"
    );
    if !args.headless {
        open_browser(&url);
    }

    crate::demo_units::spawn(platform.state.services.units.clone(), platform.live.clock());
    // Runs until this sender is dropped at the end of the demo.
    let _robots =
        crate::demo_robots::spawn(addr, clock, &secret, &token, robot_lots, args.traffic.seed)
            .await?;
    let live = platform.live.clone();
    let repairs = crew_repairs(&platform.live);
    let fleet_config = FleetConfig {
        endpoint: Endpoint::resolve(&format!("ws://{addr}/ocpp")).await?,
        network,
        scenario: args.traffic.scenario,
        clock,
        seed: args.traffic.seed,
        share_v201: args.traffic.share_v201,
        share_ykc: args.traffic.share_ykc,
        ykc_addr: Some(ykc_listen),
        credentials: Arc::new(move |id: &str| Some(derive_password(&secret, id))),
        on_queue: Some(Arc::new(move |station: &str, waiting: usize| {
            live.set_waiting(station, waiting as u64);
        })),
        connect_concurrency: 200,
        fault_rate: args.traffic.fault_rate,
        disconnect_rate: args.traffic.disconnect_rate,
        repairs: Some(repairs),
        divert: args.traffic.divert,
    };
    let stats = drive(fleet_config, &args.traffic, total).await?;
    summary(&stats);
    platform.stop().await
}

/// Hands the fleet each charger a simulated crew resolved, so the charger reports Available
/// again: the operations loop and the simulation meet only on the event bus.
fn crew_repairs(live: &chargeops_core::Live) -> fleet::RepairRequests {
    let repairs = fleet::RepairRequests::default();
    let queue = repairs.clone();
    let mut events = live.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(chargeops_core::Event::CaseChanged {
                    charger_id: Some(id),
                    state,
                    ..
                }) if state == "resolved" => {
                    queue.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    repairs
}

pub async fn sim(args: SimArgs) -> Result<()> {
    if args.server.is_empty() {
        bail!("chargeops sim needs --server URL (or the history subcommand)");
    }
    check_traffic(&args.traffic)?;
    let network = load_network(args.traffic.network.as_ref())?;
    let endpoint = Endpoint::resolve(&args.server)
        .await
        .with_context(|| format!("invalid --server {}", args.server))?;
    // Wait for the server with backoff, saying so, rather than start thousands of chargers
    // that would all fail at once.
    let mut backoff = StdDuration::from_millis(500);
    loop {
        match tokio::net::TcpStream::connect(endpoint.addr()).await {
            Ok(_) => break,
            Err(e) => {
                eprintln!(
                    "server {} not reachable ({e}); retrying in {:.1} s",
                    args.server,
                    backoff.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = serve::shutdown_signal() => bail!("stopped while waiting for the server"),
                }
                backoff = (backoff * 2).min(StdDuration::from_secs(30));
            }
        }
    }
    let total = total_chargers(&network);
    let clock = Clock::simulated(args.traffic.scenario.start(Utc::now()), args.traffic.speed);
    let secret = args.password_secret.clone();
    let config = FleetConfig {
        endpoint,
        network,
        scenario: args.traffic.scenario,
        clock,
        seed: args.traffic.seed,
        share_v201: args.traffic.share_v201,
        share_ykc: args.traffic.share_ykc,
        ykc_addr: args.ykc_server,
        credentials: Arc::new(move |id: &str| secret.as_ref().map(|s| derive_password(s, id))),
        on_queue: None,
        connect_concurrency: args.connect_concurrency.max(1),
        fault_rate: args.traffic.fault_rate,
        disconnect_rate: args.traffic.disconnect_rate,
        repairs: None,
        divert: args.traffic.divert,
    };
    let stats = drive(config, &args.traffic, total).await?;
    summary(&stats);
    Ok(())
}

fn summary(stats: &FleetStats) {
    let g = FleetStats::get;
    eprintln!(
        "simulated until {}: {} sessions completed ({} started), {:.2} MWh, {} faults, {} reconnects, {} connection errors, {} cars diverted",
        stats
            .sim_time()
            .with_timezone(&chargeops_sim::traffic::cst())
            .format("%Y-%m-%d %H:%M %:z"),
        g(&stats.sessions_completed),
        g(&stats.sessions_started),
        g(&stats.energy_wh) as f64 / 1e6,
        g(&stats.faults),
        g(&stats.reconnects),
        g(&stats.errors),
        g(&stats.diverted),
    );
}

fn open_browser(url: &str) {
    for opener in ["xdg-open", "open"] {
        if std::process::Command::new(opener)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
        {
            return;
        }
    }
    eprintln!("  (could not open a browser: open the address above yourself)");
}
