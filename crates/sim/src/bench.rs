//! `chargeops bench ocpp`: thousands of simulated OCPP 1.6J chargers against one server.
//!
//! Three phases. **Connect**: every charger opens its WebSocket and sends BootNotification
//! and a StatusNotification for each of its two connectors, at most `--connect-concurrency`
//! at a time. **Measure**: for `--duration-secs`, each charger runs charging sessions
//! (Heartbeat, status changes, Authorize, Start, MeterValues, Stop), either at `--rate`
//! messages a second (open loop: the offered load is fixed and the report says whether the
//! server kept up) or, with `--max`, as fast as answers come back (closed loop: the
//! server's ceiling). **Report**: throughput, round-trip latency quantiles per action,
//! errors, and the server's resident memory per connection read from `/proc`.
//!
//! Without `--server` the bench starts `chargeops serve` itself (the running executable)
//! on a free loopback port with a fresh data directory, and kills it at the end.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::client::{
    BootInfo, CallOutcome, ChargePoint, ClientError, ConnectOptions, Endpoint, RttSink,
};
use crate::hist::{Histogram, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Simulated OCPP 1.6J chargers against a server: messages per second, latency, memory.
#[derive(Debug, Clone, clap::Args)]
pub struct OcppBenchArgs {
    /// Server to load, e.g. ws://127.0.0.1:8180/ocpp; without it a server is started for the run
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Process id of the external --server, to read its memory and CPU from /proc
    #[arg(long, value_name = "PID", requires = "server")]
    pub server_pid: Option<u32>,
    /// HTTP Basic password every charger presents (security profile 1)
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "CHARGEOPS_BENCH_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Number of simulated chargers, each on its own connection
    #[arg(long, default_value_t = 2000)]
    pub chargers: usize,
    /// Length of the measured phase
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Messages per second each charger offers during the measured phase (open loop). The
    /// default, times the default 2,000 chargers, is about what the 628,700-charger province
    /// of DESIGN.md sends in all (heartbeat every 5 min, meter values every minute while
    /// charging): about 5,000 messages a second
    #[arg(long, default_value_t = 2.5, value_name = "MSGS_PER_SEC")]
    pub rate: f64,
    /// Closed loop: each charger sends its next message as soon as the last is answered
    #[arg(long)]
    pub max: bool,
    /// Register the chargers first (connect and boot each once against a server started for
    /// that), then start a new server process on the same data and measure against it: memory
    /// per connection without the cost of registering unknown chargers, as on a network whose
    /// chargers are all known. Only with a server the bench starts itself
    #[arg(long, conflicts_with = "server")]
    pub registered: bool,
    /// Spread connections over source addresses 127.0.0.1 ..= 127.0.0.K
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(u8).range(1..=254))]
    pub sources: u8,
    /// Chargers connecting and booting at the same time
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Seconds to wait for an answer before counting a timeout
    #[arg(long, default_value_t = 10)]
    pub call_timeout_secs: u64,
    /// Charger ids are PREFIX-00001, PREFIX-00002, ...
    #[arg(long, default_value = "BENCH", value_name = "PREFIX")]
    pub id_prefix: String,
    /// Output format of the report on stdout
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run_ocpp(args: OcppBenchArgs) -> Result<()> {
    if args.chargers == 0 {
        bail!("--chargers must be at least 1");
    }
    if !(args.max || args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number of messages per second");
    }
    if args.connect_concurrency == 0 {
        bail!("--connect-concurrency must be at least 1");
    }
    check_fd_limit("this process", &proc_path("self", "limits"), args.chargers)?;
    check_port_range(args.chargers, args.sources);

    let mut spawned = None;
    let (url, server_pid) = match &args.server {
        Some(url) => (url.clone(), args.server_pid),
        None => {
            let dir = if args.registered {
                let dir = register_chargers(&args).await?;
                Some(dir)
            } else {
                None
            };
            let server = SpawnedServer::start(dir).await?;
            let pid = server.child.id();
            check_fd_limit(
                "the spawned server",
                &proc_path(&pid.to_string(), "limits"),
                args.chargers,
            )?;
            let url = server.url.clone();
            spawned = Some(server);
            (url, Some(pid))
        }
    };
    let result = run(&args, &url, server_pid).await;
    let server_log = spawned.map(|server| server.stop(result.is_err()));
    let mut report = result?;
    report.server_log = server_log;
    match args.format {
        Format::Table => print!("{}", report.table()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

/// `--registered`: a first server registers every charger (connect, boot, close); it is then
/// killed and its data directory handed to the server the run measures.
async fn register_chargers(args: &OcppBenchArgs) -> Result<PathBuf> {
    let mut server = SpawnedServer::start(None).await?;
    check_fd_limit(
        "the spawned server",
        &proc_path(&server.child.id().to_string(), "limits"),
        args.chargers,
    )?;
    let endpoint = Endpoint::resolve(&server.url)
        .await
        .context("failed to resolve the registering server")?;
    let shared = Arc::new(Shared {
        endpoint,
        options: ConnectOptions {
            password: args.password.clone(),
            bind: None,
            call_timeout: Duration::from_secs(args.call_timeout_secs.max(1)),
            connect_timeout: Duration::from_secs(30),
            ..ConnectOptions::default()
        },
        recorder: Arc::new(Recorder::default()),
        connect_limit: Semaphore::new(args.connect_concurrency),
        chargers: args.chargers,
        sources: args.sources,
        id_prefix: args.id_prefix.clone(),
        interval: None,
        errors: ErrorLog::default(),
    });
    let progress = bar(args.chargers as u64, "registering");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.chargers {
        let shared = shared.clone();
        tasks.spawn(async move {
            let id = format!("{}-{:05}", shared.id_prefix, i + 1);
            let cp = connect(i, &id, &shared).await?;
            cp.close().await
        });
    }
    let mut failed = 0usize;
    while let Some(done) = tasks.join_next().await {
        if !matches!(done, Ok(Ok(()))) {
            failed += 1;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if failed > 0 {
        bail!(
            "{failed} of {} chargers could not be registered",
            args.chargers
        );
    }
    // The data directory outlives this server: the measured one opens it.
    server
        .child
        .kill()
        .context("failed to stop the registering server")?;
    server
        .child
        .wait()
        .context("failed to stop the registering server")?;
    Ok(std::mem::take(&mut server.dir))
}

// ---------------------------------------------------------------------------------------------
// The run

/// What the charger tasks are told to do next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Connect,
    Measure { start: Instant, end: Instant },
    Stop,
}

enum Event {
    Connected(Result<(), String>),
    Measured(Measured),
}

#[derive(Default)]
struct Measured {
    disconnected: bool,
    behind_schedule: u64,
    transactions_started: u64,
    transactions_stopped: u64,
    server_calls: u64,
    stray_frames: u64,
}

struct Shared {
    endpoint: Endpoint,
    options: ConnectOptions,
    recorder: Arc<Recorder>,
    connect_limit: Semaphore,
    chargers: usize,
    sources: u8,
    id_prefix: String,
    /// `None` in closed-loop mode.
    interval: Option<Duration>,
    errors: ErrorLog,
}

async fn run(args: &OcppBenchArgs, url: &str, server_pid: Option<u32>) -> Result<Report> {
    let endpoint = Endpoint::resolve(url)
        .await
        .context("failed to resolve --server")?;
    let recorder = Arc::new(Recorder::default());
    let shared = Arc::new(Shared {
        endpoint,
        options: ConnectOptions {
            password: args.password.clone(),
            bind: None,
            call_timeout: Duration::from_secs(args.call_timeout_secs.max(1)),
            connect_timeout: Duration::from_secs(30),
            ..ConnectOptions::default()
        },
        recorder: recorder.clone(),
        connect_limit: Semaphore::new(args.connect_concurrency),
        chargers: args.chargers,
        sources: args.sources,
        id_prefix: args.id_prefix.clone(),
        interval: (!args.max).then(|| Duration::from_secs_f64(1.0 / args.rate)),
        errors: ErrorLog::default(),
    });
    let server_pid_s = server_pid.map(|p| p.to_string());
    let server_rss = || {
        server_pid_s
            .as_deref()
            .and_then(|p| rss_kib(&proc_path(p, "status")))
    };
    let server_cpu = || {
        server_pid_s
            .as_deref()
            .and_then(|p| cpu_ticks(&proc_path(p, "stat")))
    };
    let bench_rss = || rss_kib(&proc_path("self", "status"));

    let rss_before = server_rss();
    let bench_rss_before = bench_rss();

    // Connect phase.
    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    let (event_tx, mut events) = mpsc::unbounded_channel();
    let progress = bar(args.chargers as u64, "connecting");
    let connect_started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.chargers {
        tasks.spawn(charger(
            i,
            shared.clone(),
            phase_rx.clone(),
            event_tx.clone(),
        ));
    }
    drop(event_tx);
    let (mut connected, mut failed) = (0usize, 0usize);
    while connected + failed < args.chargers {
        match events.recv().await {
            Some(Event::Connected(Ok(()))) => connected += 1,
            Some(Event::Connected(Err(e))) => {
                failed += 1;
                shared.errors.note("connect", &e);
            }
            Some(Event::Measured(_)) => {}
            None => bail!("the charger tasks ended before connecting"),
        }
        progress.set_position((connected + failed) as u64);
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    // Let the server settle (the last answers written, allocator caches trimmed) before
    // reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = server_rss();
    let bench_rss_connected = bench_rss();
    let connect_latency = recorder.all.summary();
    if connected == 0 {
        let _ = phase_tx.send(Phase::Stop);
        bail!(
            "no charger could connect; first error: {}",
            shared.errors.first().unwrap_or_default()
        );
    }

    // Measured phase.
    recorder.measuring.store(1, Ordering::Relaxed);
    let cpu_start = (
        server_cpu(),
        cpu_ticks(&proc_path("self", "stat")),
        machine_busy_ticks(),
    );
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs(args.duration_secs);
    let _ = phase_tx.send(Phase::Measure { start, end });
    let progress = bar(args.duration_secs, "measuring");
    let ticker = {
        let progress = progress.clone();
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
            loop {
                tick.tick().await;
                progress.inc(1);
                progress.set_message(format!("{} answered", recorder.measured_count()));
            }
        })
    };
    let mut measured = Measured::default();
    let mut reported = 0;
    while reported < connected {
        match events.recv().await {
            Some(Event::Measured(m)) => {
                reported += 1;
                measured.behind_schedule += m.behind_schedule;
                measured.transactions_started += m.transactions_started;
                measured.transactions_stopped += m.transactions_stopped;
                measured.server_calls += m.server_calls;
                measured.stray_frames += m.stray_frames;
                if m.disconnected {
                    measured.disconnected = true;
                    recorder.disconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Event::Connected(_)) => {}
            None => break,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_end = (
        server_cpu(),
        cpu_ticks(&proc_path("self", "stat")),
        machine_busy_ticks(),
    );
    ticker.abort();
    progress.finish_and_clear();
    let rss_after = server_rss();
    let _ = phase_tx.send(Phase::Stop);
    // Connections close as the tasks end; a stuck one is not worth waiting for.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();

    let cores = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / CLOCK_TICKS_PER_SEC / elapsed),
        _ => None,
    };
    let per_conn = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / connected as f64),
        _ => None,
    };
    let total = recorder.measured.summary();
    Ok(Report {
        mode: if args.max {
            "max (closed loop)"
        } else {
            "open loop"
        },
        server: url.to_owned(),
        server_spawned: args.server.is_none(),
        registered: args.registered,
        chargers: args.chargers,
        sources: args.sources,
        connect: ConnectReport {
            connected,
            failed,
            seconds: connect_secs,
            per_second: connected as f64 / connect_secs.max(1e-9),
            latency: connect_latency,
        },
        measure: MeasureReport {
            seconds: elapsed,
            offered_per_second: shared
                .interval
                .map(|iv| connected as f64 / iv.as_secs_f64()),
            answered: total.count,
            answered_per_second: total.count as f64 / elapsed.max(1e-9),
            call_errors: recorder.measured_errors.load(Ordering::Relaxed),
            timeouts: recorder.measured_timeouts.load(Ordering::Relaxed),
            disconnects: recorder.disconnects.load(Ordering::Relaxed),
            behind_schedule: measured.behind_schedule,
            transactions_started: measured.transactions_started,
            transactions_stopped: measured.transactions_stopped,
            server_calls_answered: measured.server_calls,
            stray_frames: measured.stray_frames,
            latency: total,
            by_action: recorder.by_action(),
        },
        server_memory: MemoryReport {
            rss_before_kib: rss_before,
            rss_connected_kib: rss_connected,
            rss_after_kib: rss_after,
            per_connection_kib: per_conn(rss_before, rss_connected),
        },
        // After `--registered` the bench's own allocator is already warm from registering: its
        // growth would understate what its connections cost.
        bench_memory_per_connection_kib: per_conn(bench_rss_before, bench_rss_connected)
            .filter(|_| !args.registered),
        server_cores: cores(cpu_start.0, cpu_end.0),
        bench_cores: cores(cpu_start.1, cpu_end.1),
        machine_cores: cores(cpu_start.2, cpu_end.2),
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        first_errors: shared.errors.samples(),
        server_log: None,
    })
}

/// One simulated charger: connect, wait, run traffic, wait, disconnect.
async fn charger(
    index: usize,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    events: mpsc::UnboundedSender<Event>,
) {
    let id = format!("{}-{:05}", shared.id_prefix, index + 1);
    let mut cp = match connect(index, &id, &shared).await {
        Ok(cp) => {
            let _ = events.send(Event::Connected(Ok(())));
            cp
        }
        Err(e) => {
            let _ = events.send(Event::Connected(Err(e.to_string())));
            return;
        }
    };
    let next_phase = async {
        // The watch guard must not live across an await: copy the phase out at once.
        match phase.wait_for(|p| !matches!(p, Phase::Connect)).await {
            Ok(p) => *p,
            Err(_) => Phase::Stop,
        }
    };
    let wait_for_measure = cp.serve_until(next_phase).await;
    let mut outcome = Measured::default();
    match wait_for_measure {
        Ok(Phase::Measure { start, end }) => {
            let mut mix = Mix::new(index as u64);
            if let Err(e) =
                traffic(index, &mut cp, &mut mix, &shared, start, end, &mut outcome).await
            {
                shared.errors.note("traffic", &e.to_string());
                outcome.disconnected = true;
            }
            outcome.transactions_started = mix.started;
            outcome.transactions_stopped = mix.stopped;
        }
        Ok(_) => {}
        Err(e) => {
            shared.errors.note("waiting", &e.to_string());
            outcome.disconnected = true;
        }
    }
    let stats = cp.stats();
    outcome.server_calls = stats.server_calls;
    outcome.stray_frames = stats.stray_frames;
    let disconnected = outcome.disconnected;
    let _ = events.send(Event::Measured(outcome));
    if !disconnected {
        let stop = async {
            let _ = phase
                .wait_for(|p| matches!(p, Phase::Stop))
                .await
                .map(|_| ());
        };
        let _ = cp.serve_until(stop).await;
    }
}

async fn connect(index: usize, id: &str, shared: &Shared) -> Result<ChargePoint, ClientError> {
    let _permit = shared.connect_limit.acquire().await;
    let mut options = shared.options.clone();
    if shared.sources > 1 {
        let k = (index % usize::from(shared.sources)) as u8;
        options.bind = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, k + 1)));
    }
    let mut cp = ChargePoint::connect(&shared.endpoint, id, &options)
        .await?
        .with_rtt_sink(shared.recorder.clone());
    let boot = cp
        .boot_notification(&BootInfo {
            vendor: "chargeops".to_owned(),
            model: "bench-sim".to_owned(),
            serial_number: Some(format!("SN{index:07}")),
            firmware_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        })
        .await?;
    if boot.status != "Accepted" {
        return Err(ClientError::BadAnswer {
            action: "BootNotification".to_owned(),
            reason: format!(
                "status {} (start the server with --registration open, or register the chargers)",
                boot.status
            ),
        });
    }
    cp.status_notification(1, "Available", "NoError").await?;
    cp.status_notification(2, "Available", "NoError").await?;
    Ok(cp)
}

async fn traffic(
    index: usize,
    cp: &mut ChargePoint,
    mix: &mut Mix,
    shared: &Shared,
    start: Instant,
    end: Instant,
    outcome: &mut Measured,
) -> Result<(), ClientError> {
    // Chargers start spread over one interval so the load is even from the first second.
    let mut next = match shared.interval {
        Some(iv) => start + iv.mul_f64(index as f64 / shared.chargers as f64),
        None => start,
    };
    loop {
        if next >= end {
            return Ok(());
        }
        cp.idle_until(next).await?;
        if let Some(iv) = shared.interval {
            next += iv;
            // One outstanding CALL per charger (OCPP-J): a slow answer delays the next
            // message. Far behind means the server did not keep up with the offered load;
            // resynchronise instead of bursting to catch up, and count it.
            let now = Instant::now();
            if now > next + iv {
                outcome.behind_schedule += 1;
                next = now;
            }
        } else {
            next = Instant::now();
        }
        match mix.step(cp, index).await {
            Ok(()) => {}
            Err(e) if !e.is_fatal() => {
                if !matches!(e, ClientError::Timeout { .. }) {
                    shared.errors.note("call", &e.to_string());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic mix

/// The message sequence of one charger: idle with heartbeats, then a charging session on one
/// of its two connectors (Preparing, Authorize, Start, Charging, 3-8 MeterValues, Stop,
/// Finishing, Available), and again. About 13 messages a session, half of them MeterValues,
/// which is the shape of a charger's day compressed in time.
struct Mix {
    rng: u64,
    state: MixState,
    connector: u32,
    transaction: Option<i64>,
    meter_left: u8,
    energy_wh: i64,
    started: u64,
    stopped: u64,
}

#[derive(Clone, Copy)]
enum MixState {
    Idle,
    Preparing,
    Authorized,
    Started,
    Charging,
    Stopped,
    Finishing,
}

impl Mix {
    fn new(seed: u64) -> Mix {
        Mix {
            rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            state: MixState::Idle,
            connector: 1 + (seed % 2) as u32,
            transaction: None,
            meter_left: 0,
            energy_wh: 1_000_000 + (seed % 1000) as i64 * 1000,
            started: 0,
            stopped: 0,
        }
    }

    /// xorshift64: plenty for choosing between messages.
    fn next_u64(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    async fn step(&mut self, cp: &mut ChargePoint, index: usize) -> Result<(), ClientError> {
        let c = self.connector;
        match self.state {
            MixState::Idle => {
                if self.next_u64() % 3 == 0 {
                    cp.heartbeat().await?;
                } else {
                    self.state = MixState::Preparing;
                    cp.status_notification(c, "Preparing", "NoError").await?;
                }
            }
            MixState::Preparing => {
                self.state = MixState::Authorized;
                cp.authorize(&id_tag(index)).await?;
            }
            MixState::Authorized => {
                // Whatever happens, do not ask again for the same session.
                self.state = MixState::Idle;
                let tx = cp
                    .start_transaction(c, &id_tag(index), self.energy_wh)
                    .await?;
                self.transaction = Some(tx);
                self.started += 1;
                self.state = MixState::Started;
            }
            MixState::Started => {
                self.state = MixState::Charging;
                self.meter_left = 3 + (self.next_u64() % 6) as u8;
                cp.status_notification(c, "Charging", "NoError").await?;
            }
            MixState::Charging if self.meter_left > 0 => {
                if self.next_u64() % 8 == 0 {
                    cp.heartbeat().await?;
                } else {
                    self.meter_left -= 1;
                    self.energy_wh += 500 + (self.next_u64() % 1000) as i64;
                    let power = 7_000 + (self.next_u64() % 50_000) as u32;
                    cp.meter_values(c, self.transaction, self.energy_wh, power)
                        .await?;
                }
            }
            MixState::Charging => {
                self.state = MixState::Stopped;
                if let Some(tx) = self.transaction.take() {
                    cp.stop_transaction(tx, Some(&id_tag(index)), self.energy_wh, "EVDisconnected")
                        .await?;
                    self.stopped += 1;
                }
            }
            MixState::Stopped => {
                self.state = MixState::Finishing;
                cp.status_notification(c, "Finishing", "NoError").await?;
            }
            MixState::Finishing => {
                self.state = MixState::Idle;
                let done = c;
                self.connector = 3 - c;
                cp.status_notification(done, "Available", "NoError").await?;
            }
        }
        Ok(())
    }
}

fn id_tag(index: usize) -> String {
    format!("TAG{:05}", index % 10_000)
}

// ---------------------------------------------------------------------------------------------
// Measurements

const ACTIONS: [&str; 7] = [
    "BootNotification",
    "StatusNotification",
    "Heartbeat",
    "Authorize",
    "StartTransaction",
    "MeterValues",
    "StopTransaction",
];

#[derive(Default)]
struct ActionStats {
    latency: Histogram,
    call_errors: AtomicU64,
    timeouts: AtomicU64,
}

/// Round trips of the whole fleet: everything in `all`, the measured phase also per action.
#[derive(Default)]
struct Recorder {
    /// 0 while connecting, 1 once the measured phase has begun.
    measuring: AtomicU64,
    all: Histogram,
    measured: Histogram,
    measured_errors: AtomicU64,
    measured_timeouts: AtomicU64,
    disconnects: AtomicU64,
    actions: [ActionStats; ACTIONS.len()],
}

impl RttSink for Recorder {
    fn record(&self, action: &str, rtt: Duration, outcome: CallOutcome) {
        if self.measuring.load(Ordering::Relaxed) == 0 {
            if outcome != CallOutcome::Timeout {
                self.all.record(rtt);
            }
            return;
        }
        let per_action = ACTIONS
            .iter()
            .position(|a| *a == action)
            .map(|i| &self.actions[i]);
        match outcome {
            CallOutcome::Result | CallOutcome::CallError => {
                self.measured.record(rtt);
                if let Some(a) = per_action {
                    a.latency.record(rtt);
                }
                if outcome == CallOutcome::CallError {
                    self.measured_errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(a) = per_action {
                        a.call_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            CallOutcome::Timeout => {
                self.measured_timeouts.fetch_add(1, Ordering::Relaxed);
                if let Some(a) = per_action {
                    a.timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Recorder {
    fn measured_count(&self) -> u64 {
        self.measured.summary().count
    }

    fn by_action(&self) -> Vec<ActionReport> {
        ACTIONS
            .iter()
            .zip(&self.actions)
            .map(|(name, a)| ActionReport {
                action: name,
                latency: a.latency.summary(),
                call_errors: a.call_errors.load(Ordering::Relaxed),
                timeouts: a.timeouts.load(Ordering::Relaxed),
            })
            .filter(|a| a.latency.count + a.timeouts > 0)
            .collect()
    }
}

/// The first few errors verbatim, and how many of each kind, so a failed run says why.
#[derive(Default)]
struct ErrorLog {
    inner: Mutex<(Vec<String>, u64)>,
}

impl ErrorLog {
    const KEEP: usize = 8;

    fn note(&self, phase: &str, error: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1 += 1;
        if inner.0.len() < Self::KEEP {
            inner.0.push(format!("{phase}: {error}"));
        }
    }

    fn first(&self) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .first()
            .cloned()
    }

    fn samples(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = inner.0.clone();
        if inner.1 > inner.0.len() as u64 {
            out.push(format!("... {} errors in all", inner.1));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(Serialize)]
struct Report {
    mode: &'static str,
    server: String,
    server_spawned: bool,
    /// `--registered`: the chargers were known to the server before it started.
    registered: bool,
    chargers: usize,
    sources: u8,
    connect: ConnectReport,
    measure: MeasureReport,
    server_memory: MemoryReport,
    bench_memory_per_connection_kib: Option<f64>,
    /// Average CPU cores busy during the measured phase.
    server_cores: Option<f64>,
    bench_cores: Option<f64>,
    /// Every process on the machine: more than server plus bench means the run shared the
    /// CPUs with something else, and its numbers are pessimistic.
    machine_cores: Option<f64>,
    cpus: usize,
    first_errors: Vec<String>,
    /// Only when the bench started the server.
    server_log: Option<ServerLog>,
}

#[derive(Serialize, Default)]
struct ServerLog {
    warnings: u64,
    errors: u64,
    samples: Vec<String>,
}

#[derive(Serialize)]
struct ConnectReport {
    connected: usize,
    failed: usize,
    seconds: f64,
    per_second: f64,
    /// Round trips of BootNotification and StatusNotification while connecting.
    latency: Summary,
}

#[derive(Serialize)]
struct MeasureReport {
    seconds: f64,
    offered_per_second: Option<f64>,
    answered: u64,
    answered_per_second: f64,
    call_errors: u64,
    timeouts: u64,
    disconnects: u64,
    behind_schedule: u64,
    transactions_started: u64,
    transactions_stopped: u64,
    server_calls_answered: u64,
    stray_frames: u64,
    latency: Summary,
    by_action: Vec<ActionReport>,
}

#[derive(Serialize)]
struct ActionReport {
    action: &'static str,
    latency: Summary,
    call_errors: u64,
    timeouts: u64,
}

#[derive(Serialize)]
struct MemoryReport {
    rss_before_kib: Option<u64>,
    rss_connected_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    per_connection_kib: Option<f64>,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| v.to_string())
}

impl Report {
    fn table(&self) -> String {
        let mut s = String::new();
        let c = &self.connect;
        let m = &self.measure;
        let mem = &self.server_memory;
        let _ = writeln!(
            s,
            "chargeops bench ocpp: {} chargers, {}, {}",
            self.chargers, self.mode, self.server
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "connect    {} connected, {} failed in {:.2} s ({:.0} chargers/s)",
            c.connected, c.failed, c.seconds, c.per_second
        );
        let _ = writeln!(
            s,
            "           boot+status round trip ms: p50 {}  p99 {}  max {}",
            ms(c.latency.p50_us),
            ms(c.latency.p99_us),
            ms(c.latency.max_us)
        );
        let offered = m
            .offered_per_second
            .map_or_else(String::new, |o| format!(" (offered {o:.0}/s)"));
        let _ = writeln!(
            s,
            "measure    {:.2} s, {} answered, {:.0} msg/s{}",
            m.seconds, m.answered, m.answered_per_second, offered
        );
        let _ = writeln!(
            s,
            "           errors: {} CALLERROR, {} timeouts, {} disconnects, {} sends behind schedule",
            m.call_errors, m.timeouts, m.disconnects, m.behind_schedule
        );
        let _ = writeln!(
            s,
            "           transactions: {} started, {} stopped",
            m.transactions_started, m.transactions_stopped
        );
        let _ = writeln!(
            s,
            "memory     server RSS {} KiB idle, {} KiB connected, {} KiB after load: {} KiB per connection",
            opt(mem.rss_before_kib),
            opt(mem.rss_connected_kib),
            opt(mem.rss_after_kib),
            opt(mem.per_connection_kib.map(|v| format!("{v:.1}")))
        );
        let _ = writeln!(
            s,
            "           {}",
            if self.registered {
                "chargers registered before the server started: connections only"
            } else {
                "chargers registered while connecting: includes registering them"
            }
        );
        let _ = writeln!(
            s,
            "           bench RSS {} KiB per connection",
            opt(self
                .bench_memory_per_connection_kib
                .map(|v| format!("{v:.1}")))
        );
        let _ = writeln!(
            s,
            "cpu        server {} cores, bench {} cores, whole machine {} of {} cores (measured phase)",
            opt(self.server_cores.map(|v| format!("{v:.2}"))),
            opt(self.bench_cores.map(|v| format!("{v:.2}"))),
            opt(self.machine_cores.map(|v| format!("{v:.2}"))),
            self.cpus
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<20} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8}",
            "round trip (ms)", "count", "p50", "p90", "p99", "p99.9", "max", "errors", "timeouts"
        );
        let row = |s: &mut String, name: &str, l: &Summary, errors: u64, timeouts: u64| {
            let _ = writeln!(
                s,
                "{:<20} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8}",
                name,
                l.count,
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us),
                errors,
                timeouts
            );
        };
        for a in &m.by_action {
            row(&mut s, a.action, &a.latency, a.call_errors, a.timeouts);
        }
        row(&mut s, "all", &m.latency, m.call_errors, m.timeouts);
        if let Some(log) = &self.server_log
            && log.warnings + log.errors > 0
        {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "server log: {} warnings, {} errors; first:",
                log.warnings, log.errors
            );
            for line in &log.samples {
                let _ = writeln!(s, "  {line}");
            }
        }
        if !self.first_errors.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "first errors:");
            for e in &self.first_errors {
                let _ = writeln!(s, "  {e}");
            }
        }
        s
    }
}

fn bar(len: u64, prefix: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {elapsed} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix);
    bar
}

// ---------------------------------------------------------------------------------------------
// The spawned server and /proc

/// `chargeops serve` started by the bench: a free port, a fresh data directory, open
/// registration. Killed and cleaned up by [`SpawnedServer::stop`] (or on drop).
struct SpawnedServer {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl SpawnedServer {
    /// Starts a server on a fresh data directory, or on `dir` (which it then owns).
    async fn start(dir: Option<PathBuf>) -> Result<SpawnedServer> {
        let exe = std::env::current_exe().context("failed to find the chargeops executable")?;
        // Bind :0 to learn a free port, then give it to the server. Another process could take
        // it in between; on a bench machine that is unlikely, and the health check would say.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("failed to find a free port")?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("chargeops-bench-{}-{nanos}", std::process::id()))
        });
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).context("failed to create the server log")?;
        let child = Command::new(&exe)
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--registration")
            .arg("open")
            .env(
                "CHARGEOPS_ADMIN_TOKEN",
                format!("bench-admin-token-{nanos:010}"),
            )
            .env("CHARGEOPS_LOG", "warn")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("failed to start {} serve", exe.display()))?;
        let mut server = SpawnedServer {
            child,
            dir,
            url: format!("ws://{addr}/ocpp"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!(
                    "the server exited at start ({status}):\n{}",
                    server.log_tail()
                );
            }
            if healthz(addr).await {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "the server did not answer /healthz within 30 s:\n{}",
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Warnings and errors the server logged, with the first few verbatim.
    fn log_issues(&self) -> ServerLog {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let mut log = ServerLog::default();
        for line in text.lines() {
            let line = strip_ansi(line);
            let is_error = line.contains(" ERROR ");
            if !(is_error || line.contains(" WARN ")) {
                continue;
            }
            if is_error {
                log.errors += 1;
            } else {
                log.warnings += 1;
            }
            if log.samples.len() < 5 {
                log.samples.push(line.chars().take(300).collect());
            }
        }
        log
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Kills the server; prints the end of its log when the run failed.
    fn stop(mut self, failed: bool) -> ServerLog {
        if failed {
            eprintln!("server log (last lines):\n{}", self.log_tail());
        }
        let issues = self.log_issues();
        self.kill();
        issues
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server colours its log even into a file; the escapes are in the way of reading it.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `GET /healthz` over a plain TCP stream; true on a 200.
async fn healthz(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let n = stream.read(&mut head).await.ok()?;
        let head = std::str::from_utf8(&head[..n]).ok()?;
        Some(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

/// Linux's USER_HZ, which /proc/<pid>/stat counts CPU time in. It is 100 on every mainstream
/// architecture; reading it properly needs `sysconf`, which is unsafe FFI we do not allow.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

fn proc_path(pid: &str, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

/// VmRSS of a process in KiB.
fn rss_kib(status: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(stat: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // The command name may contain spaces and parentheses; fields restart after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy CPU time of the whole machine (all but idle and iowait), in clock ticks.
fn machine_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal; guest time is already in user.
    let total: u64 = ticks.iter().take(8).sum();
    Some(total - ticks.get(3)? - ticks.get(4)?)
}

/// The soft "Max open files" limit from a /proc/<pid>/limits file.
fn open_files_limit(limits: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(limits).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Refuses to start a run that would run out of file descriptors halfway: one per charger,
/// plus a margin for the runtime, the database and the log.
fn check_fd_limit(who: &str, limits: &Path, chargers: usize) -> Result<()> {
    const MARGIN: u64 = 64;
    let Some(limit) = open_files_limit(limits) else {
        return Ok(());
    };
    let needed = chargers as u64 + MARGIN;
    if needed > limit {
        bail!(
            "{chargers} chargers need about {needed} file descriptors in {who}, but its limit is {limit} \
             (`ulimit -n`); raise it (`ulimit -n {needed}`, up to the hard limit `ulimit -Hn`) or use fewer --chargers"
        );
    }
    Ok(())
}

/// Warns when one source address may run out of ephemeral ports.
fn check_port_range(chargers: usize, sources: u8) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return;
    };
    let mut it = text
        .split_whitespace()
        .filter_map(|v| v.parse::<usize>().ok());
    if let (Some(lo), Some(hi)) = (it.next(), it.next()) {
        let per_source = chargers.div_ceil(usize::from(sources));
        if per_source > hi.saturating_sub(lo) {
            eprintln!(
                "warning: {per_source} connections per source address exceed the {} ephemeral ports ({lo}-{hi}); use more --sources",
                hi - lo
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_from_log_lines() {
        let line = "\u{1b}[2m2026-11-29T02:54:30Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m \u{1b}[2mgw\u{1b}[0m: refused";
        assert_eq!(strip_ansi(line), "2026-11-29T02:54:30Z  WARN gw: refused");
    }

    #[test]
    fn reads_proc_files() {
        let dir = std::env::temp_dir().join(format!("chargeops-sim-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let status = dir.join("status");
        std::fs::write(&status, "Name:\tx\nVmRSS:\t   12345 kB\n").expect("write");
        assert_eq!(rss_kib(&status), Some(12345));
        let stat = dir.join("stat");
        std::fs::write(&stat, "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0\n").expect("write");
        assert_eq!(cpu_ticks(&stat), Some(175));
        let limits = dir.join("limits");
        std::fs::write(
            &limits,
            "Limit                     Soft Limit           Hard Limit           Units\n\
             Max open files            1024                 20000                files\n",
        )
        .expect("write");
        assert_eq!(open_files_limit(&limits), Some(1024));
        assert!(check_fd_limit("test", &limits, 900).is_ok());
        assert!(check_fd_limit("test", &limits, 2000).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        // The real files parse too.
        assert!(rss_kib(&proc_path("self", "status")).is_some_and(|v| v > 0));
        assert!(cpu_ticks(&proc_path("self", "stat")).is_some());
    }
}
