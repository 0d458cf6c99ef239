//! The simulated fleet: one OCPP charge point per charger of the network, over real
//! WebSockets, driven by the [`traffic`](crate::traffic) engine. A mix of OCPP 1.6J and 2.0.1
//! chargers, each with its own credentials; they boot, heartbeat, report status, run sessions
//! with meter values, fault, drop offline and reconnect, replaying what they could not send.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use chargeops_core::Clock;
use chargeops_core::network_file::{NetworkSpec, StationSpec};
use chargeops_ocpp::Version;

use crate::client::{ChargePoint, ClientError, ConnectOptions, Endpoint};
pub use crate::drive::FleetStats;
use crate::drive::{Cmd, commands_until, connect_while_applying, dec, inc};
use crate::traffic::{Action, Car, Engine, Scenario};

/// The id of the `n`th (0-based) charger of a station.
pub fn charger_id(station: &StationSpec, n: usize) -> String {
    format!("{}-{:02}", station.id, n + 1)
}

/// One charger of the simulated fleet: its id and whether it speaks YKC (云快充) over TCP
/// rather than OCPP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetCharger {
    pub id: String,
    pub ykc: bool,
}

/// The one decision of which charger of the network speaks YKC, and its id: a stable share
/// `share_ykc` of the chargers, chosen by station and number. The seed, the fleet, the repairs
/// and the generated history all name chargers through it. YKC ids are 14 decimal digits
/// (the 7-byte BCD code): `4301`, the station's index in the network file, the charger's number.
pub fn fleet_charger(
    station_index: usize,
    station: &StationSpec,
    n: usize,
    share_ykc: f64,
) -> FleetCharger {
    // FNV-1a: stable across builds, so a kept data directory names the same chargers.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in station.id.bytes().chain((n as u64).to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // SplitMix64's finaliser spreads FNV's few varying bits over the whole word.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let ykc = share_ykc > 0.0
        && station_index < 1_000_000
        && n < 9_999
        && (h % 1000) as f64 / 1000.0 < share_ykc;
    if ykc {
        FleetCharger {
            id: format!("4301{station_index:06}{:04}", n + 1),
            ykc: true,
        }
    } else {
        FleetCharger {
            id: charger_id(station, n),
            ykc: false,
        }
    }
}

/// Which OCPP version a charger speaks: a stable share of the fleet speaks 2.0.1.
pub fn charger_version(id: &str, share_v201: f64) -> Version {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    if (h.finish() % 1000) as f64 / 1000.0 < share_v201 {
        Version::V201
    } else {
        Version::V16
    }
}

/// Gives each charger its password (`None`: connect without credentials).
pub type Credentials = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Called with a station id and the number of cars waiting there whenever it changes.
pub type QueueObserver = Arc<dyn Fn(&str, usize) + Send + Sync>;

/// Charger ids a field crew has repaired, pushed from outside (the demo's operations loop) and
/// taken by the fleet at its next step. With it, faults wait for a crew.
pub type RepairRequests = Arc<std::sync::Mutex<Vec<String>>>;

pub struct FleetConfig {
    pub endpoint: Endpoint,
    pub network: NetworkSpec,
    pub scenario: Scenario,
    /// The simulated clock (shared with the server in the demo).
    pub clock: Clock,
    pub seed: u64,
    /// Fraction of chargers speaking OCPP 2.0.1.
    pub share_v201: f64,
    /// Fraction of chargers speaking YKC, and the platform's YKC address; without an address
    /// every charger speaks OCPP.
    pub share_ykc: f64,
    pub ykc_addr: Option<SocketAddr>,
    pub credentials: Credentials,
    pub on_queue: Option<QueueObserver>,
    /// Chargers connecting at once during the start-up storm.
    pub connect_concurrency: usize,
    /// Per charger and simulated hour.
    pub fault_rate: f64,
    pub disconnect_rate: f64,
    /// Repairs by field crews; `None`: faults clear by themselves after 1-4 h.
    pub repairs: Option<RepairRequests>,
    /// Drivers facing a queue are offered the platform's diversion ranking and most of them
    /// drive on to the suggested station ([`crate::traffic::DiversionOptions`]).
    pub divert: bool,
}

impl FleetConfig {
    /// The share of YKC chargers in effect: none without a YKC address.
    pub fn effective_share_ykc(&self) -> f64 {
        if self.ykc_addr.is_some() {
            self.share_ykc
        } else {
            0.0
        }
    }
}

/// Runs the fleet until `stop` turns true.
pub async fn run(config: FleetConfig, stats: Arc<FleetStats>, mut stop: watch::Receiver<bool>) {
    let clock = config.clock;
    let connect_limit = Arc::new(tokio::sync::Semaphore::new(
        config.connect_concurrency.max(1),
    ));
    let share_ykc = config.effective_share_ykc();
    let mut chargers: Vec<Vec<mpsc::Sender<Cmd>>> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, station) in config.network.stations.iter().enumerate() {
        let mut senders = Vec::new();
        for n in 0..station.chargers.max(1) as usize {
            let FleetCharger { id, ykc } = fleet_charger(index, station, n, share_ykc);
            let (tx, rx) = mpsc::channel(64);
            senders.push(tx);
            if let (true, Some(addr)) = (ykc, config.ykc_addr) {
                let Some(ykc_id) = chargeops_ykc::ChargerId::parse(&id) else {
                    continue;
                };
                let sim = crate::ykc_fleet::SimYkcCharger {
                    id: ykc_id,
                    addr,
                    power_kw: f64::from(station.power_kw),
                    stats: stats.clone(),
                    connect_limit: connect_limit.clone(),
                    clock,
                };
                inc(&stats.chargers);
                tasks.spawn(sim.run(rx));
                continue;
            }
            let sim = SimCharger {
                version: charger_version(&id, config.share_v201),
                options: ConnectOptions {
                    password: (config.credentials)(&id),
                    clock,
                    ..ConnectOptions::default()
                },
                id,
                endpoint: config.endpoint.clone(),
                power_kw: f64::from(station.power_kw),
                stats: stats.clone(),
                connect_limit: connect_limit.clone(),
                clock,
            };
            inc(&stats.chargers);
            tasks.spawn(sim.run(rx));
        }
        chargers.push(senders);
    }

    let mut engine = Engine::new(&config.network, config.scenario, clock.now(), config.seed)
        .with_incident_rates(config.fault_rate, config.disconnect_rate);
    if config.repairs.is_some() {
        engine = engine.with_held_faults();
    }
    if config.divert {
        engine = engine.with_diversion(crate::traffic::DiversionOptions::default());
    }
    let slot_of: std::collections::HashMap<String, (usize, usize)> = config
        .network
        .stations
        .iter()
        .enumerate()
        .flat_map(|(s, station)| {
            (0..station.chargers.max(1) as usize)
                .map(move |c| (fleet_charger(s, station, c, share_ykc).id, (s, c)))
        })
        .collect();
    let mut tick = tokio::time::interval(StdDuration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        let target = clock.now();
        if let Some(repairs) = &config.repairs {
            let done: Vec<String> =
                std::mem::take(&mut *repairs.lock().unwrap_or_else(|e| e.into_inner()));
            for id in done {
                if let Some(&(s, c)) = slot_of.get(&id) {
                    engine.repair(s, c);
                }
            }
        }
        // Steps of at most a simulated minute keep the arrival process fine-grained.
        while engine.now() < target {
            let dt = (target - engine.now()).min(Duration::minutes(1));
            for action in engine.advance(dt) {
                dispatch(&config, &chargers, &stats, engine.now(), action).await;
            }
        }
        stats
            .sim_time_ms
            .store(target.timestamp_millis().max(0) as u64, Ordering::Relaxed);
        stats
            .waiting
            .store(engine.waiting() as u64, Ordering::Relaxed);
        stats
            .charging
            .store(engine.charging() as u64, Ordering::Relaxed);
        stats
            .diverted
            .store(engine.diverted() as u64, Ordering::Relaxed);
    }
    drop(chargers);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

async fn dispatch(
    config: &FleetConfig,
    chargers: &[Vec<mpsc::Sender<Cmd>>],
    stats: &FleetStats,
    now: DateTime<Utc>,
    action: Action,
) {
    let (station, charger, cmd) = match action {
        Action::Plug {
            station,
            charger,
            car,
            duration,
            energy_wh,
        } => (
            station,
            charger,
            Cmd::Plug {
                car,
                duration,
                energy_wh,
                at: now,
            },
        ),
        Action::Unplug {
            station, charger, ..
        } => (station, charger, Cmd::Unplug),
        Action::Fault {
            station,
            charger,
            error_code,
            ..
        } => {
            inc(&stats.faults);
            (station, charger, Cmd::Fault { code: error_code })
        }
        Action::Repair { station, charger } => (station, charger, Cmd::Repair),
        Action::Disconnect {
            station,
            charger,
            duration,
        } => (
            station,
            charger,
            Cmd::Disconnect {
                until: now + duration,
            },
        ),
        Action::Queue { station, waiting } => {
            if let (Some(observe), Some(spec)) =
                (&config.on_queue, config.network.stations.get(station))
            {
                observe(&spec.id, waiting);
            }
            return;
        }
    };
    if let Some(tx) = chargers.get(station).and_then(|s| s.get(charger)) {
        // A charger task that fell behind holds up the engine rather than losing an event.
        let _ = tx.send(cmd).await;
    }
}

/// A message the charger could not send while offline, replayed in order on reconnect.
#[derive(Debug, Clone)]
enum Pending {
    Status {
        status: &'static str,
        error_code: &'static str,
        at: DateTime<Utc>,
    },
    Start {
        session: u64,
        tx201: String,
        id_tag: String,
        register_wh: i64,
        at: DateTime<Utc>,
    },
    Stop {
        session: u64,
        /// OCPP 1.6: the server's id when the start was answered before the charger went offline.
        tx16: Option<i64>,
        tx201: String,
        seq_no: i64,
        id_tag: String,
        register_wh: i64,
        reason: &'static str,
        at: DateTime<Utc>,
    },
}

/// The charger's current session.
#[derive(Debug, Clone)]
struct Session {
    /// Local number, to tie a replayed Start to its Stop.
    local: u64,
    /// OCPP 1.6: the server's transactionId once StartTransaction was answered.
    tx16: Option<i64>,
    /// OCPP 2.0.1: the charger's own transactionId.
    tx201: String,
    seq_no: i64,
    id_tag: String,
    start_register: i64,
    energy_wh: i64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Session {
    /// The energy register at `t`, rising linearly over the session.
    fn register_at(&self, t: DateTime<Utc>) -> i64 {
        let total = (self.end - self.start).num_milliseconds().max(1) as f64;
        let done = ((t - self.start).num_milliseconds() as f64 / total).clamp(0.0, 1.0);
        self.start_register + (self.energy_wh as f64 * done).round() as i64
    }
}

struct SimCharger {
    id: String,
    version: Version,
    endpoint: Endpoint,
    options: ConnectOptions,
    power_kw: f64,
    stats: Arc<FleetStats>,
    connect_limit: Arc<tokio::sync::Semaphore>,
    clock: Clock,
}

struct State {
    register_wh: i64,
    session: Option<Session>,
    next_local: u64,
    /// 1.6 transaction ids learned on replay, by local session number.
    replayed: Vec<(u64, i64)>,
    status: (&'static str, &'static str),
    offline_until: Option<DateTime<Utc>>,
    backlog: VecDeque<Pending>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl SimCharger {
    async fn run(self, mut rx: mpsc::Receiver<Cmd>) {
        let mut h = DefaultHasher::new();
        self.id.hash(&mut h);
        let mut state = State {
            register_wh: 1_000_000 + (h.finish() % 4_000_000) as i64,
            session: None,
            next_local: 1,
            replayed: Vec::new(),
            status: ("Available", "NoError"),
            offline_until: None,
            backlog: VecDeque::new(),
        };
        let mut backoff = StdDuration::from_millis(500);
        loop {
            // Offline on purpose: apply commands locally until the time comes to reconnect.
            if let Some(until) = state.offline_until {
                let wait = self.clock.real_duration(until - self.clock.now());
                if !self
                    .offline_until(&mut state, &mut rx, Instant::now() + wait)
                    .await
                {
                    return;
                }
                state.offline_until = None;
            }
            let mut opts = self.options.clone();
            opts.version = self.version;
            let connect = ChargePoint::connect(&self.endpoint, &self.id, &opts);
            let Some(cp) = connect_while_applying(&self.connect_limit, &mut rx, connect, |cmd| {
                self.apply_offline(&mut state, cmd)
            })
            .await
            else {
                return;
            };
            let cp = match cp {
                Ok(cp) if state.offline_until.is_some() => {
                    // Told to drop offline while connecting.
                    let _ = cp.close().await;
                    continue;
                }
                other => other,
            };
            let mut cp = match cp {
                Ok(cp) => cp,
                Err(e) => {
                    inc(&self.stats.errors);
                    tracing::debug!(charger_id = %self.id, error = %e, ?backoff, "connect failed; retrying");
                    // Commands keep flowing while the charger cannot reach the server.
                    if !self
                        .offline_until(&mut state, &mut rx, Instant::now() + backoff)
                        .await
                    {
                        return;
                    }
                    backoff = (backoff * 2).min(StdDuration::from_secs(30));
                    continue;
                }
            };
            inc(&self.stats.connected);
            let outcome = self.online(&mut cp, &mut state, &mut rx).await;
            dec(&self.stats.connected);
            if outcome.is_ok() {
                backoff = StdDuration::from_millis(500);
            }
            match outcome {
                Ok(true) => {
                    let _ = cp.close().await;
                    inc(&self.stats.reconnects);
                }
                Ok(false) => return,
                Err(e) => {
                    inc(&self.stats.errors);
                    tracing::debug!(charger_id = %self.id, error = %e, ?backoff, "connection lost; reconnecting");
                    // Like a real charger, wait before trying again so that a server refusing
                    // us does not become a reconnect storm.
                    if !self
                        .offline_until(&mut state, &mut rx, Instant::now() + backoff)
                        .await
                    {
                        return;
                    }
                    backoff = (backoff * 2).min(StdDuration::from_secs(30));
                }
            }
        }
    }

    /// Runs the charger without a connection until `deadline`: commands keep coming and are
    /// applied locally, what the server must hear waits in the backlog. False when the fleet
    /// stopped meanwhile.
    async fn offline_until(
        &self,
        state: &mut State,
        rx: &mut mpsc::Receiver<Cmd>,
        deadline: Instant,
    ) -> bool {
        commands_until(rx, deadline, |cmd| self.apply_offline(state, cmd)).await
    }

    /// Serves one connection. `Ok(true)`: disconnect on purpose; `Ok(false)`: the fleet stopped.
    async fn online(
        &self,
        cp: &mut ChargePoint,
        state: &mut State,
        rx: &mut mpsc::Receiver<Cmd>,
    ) -> Result<bool, ClientError> {
        let boot = match self.version {
            Version::V16 => json!({
                "chargePointVendor": "chargeops-sim",
                "chargePointModel": format!("DC{}", self.power_kw as u32),
                "chargePointSerialNumber": self.serial(),
                "firmwareVersion": env!("CARGO_PKG_VERSION"),
            }),
            Version::V201 => json!({
                "reason": "PowerUp",
                "chargingStation": {
                    "vendorName": "chargeops-sim",
                    "model": format!("DC{}", self.power_kw as u32),
                    "serialNumber": self.serial(),
                    "firmwareVersion": env!("CARGO_PKG_VERSION"),
                },
            }),
        };
        let answer = cp.call("BootNotification", &boot).await?;
        let heartbeat = answer
            .get("interval")
            .and_then(Value::as_u64)
            .unwrap_or(300)
            .clamp(10, 3600);
        let (status, error_code) = state.status;
        let now = self.clock.now();
        self.status(cp, status, error_code, now).await?;
        while let Some(p) = state.backlog.pop_front() {
            if let Err(e) = self.replay(cp, state, &p).await {
                state.backlog.push_front(p);
                return Err(e);
            }
        }
        let mut beat = tokio::time::interval_at(
            Instant::now() + StdDuration::from_secs(heartbeat),
            StdDuration::from_secs(heartbeat),
        );
        // Meter values every simulated minute, but not more than every 5 real seconds.
        let meter_every = self
            .clock
            .real_duration(Duration::minutes(1))
            .max(StdDuration::from_secs(5));
        let mut meter = tokio::time::interval_at(Instant::now() + meter_every, meter_every);
        loop {
            enum Wake {
                Cmd(Option<Cmd>),
                Beat,
                Meter,
            }
            let wake = cp
                .serve_until(async {
                    tokio::select! {
                        c = rx.recv() => Wake::Cmd(c),
                        _ = beat.tick() => Wake::Beat,
                        _ = meter.tick() => Wake::Meter,
                    }
                })
                .await?;
            match wake {
                Wake::Cmd(None) => return Ok(false),
                Wake::Cmd(Some(Cmd::Disconnect { until })) => {
                    state.offline_until = Some(until);
                    return Ok(true);
                }
                Wake::Cmd(Some(cmd)) => self.apply_online(cp, state, cmd).await?,
                Wake::Beat => {
                    cp.call("Heartbeat", &json!({})).await?;
                }
                Wake::Meter => {
                    if let Some(s) = state.session.as_mut() {
                        let now = self.clock.now();
                        let register = s.register_at(now);
                        match self.version {
                            Version::V16 => {
                                if let Some(tx) = s.tx16 {
                                    let p = json!({
                                        "connectorId": 1,
                                        "transactionId": tx,
                                        "meterValue": [meter_value_16(register, self.power_w(), now)],
                                    });
                                    cp.call("MeterValues", &p).await?;
                                }
                            }
                            Version::V201 => {
                                s.seq_no += 1;
                                let p = json!({
                                    "eventType": "Updated",
                                    "timestamp": rfc3339(now),
                                    "triggerReason": "MeterValuePeriodic",
                                    "seqNo": s.seq_no,
                                    "transactionInfo": { "transactionId": s.tx201, "chargingState": "Charging" },
                                    "meterValue": [meter_value_201(register, self.power_w(), now)],
                                });
                                cp.call("TransactionEvent", &p).await?;
                            }
                        }
                    }
                }
            }
        }
    }

    /// A serial number within both versions' 25 characters, stable per charger.
    fn serial(&self) -> String {
        let mut h = DefaultHasher::new();
        self.id.hash(&mut h);
        format!("CS{:012}", h.finish() % 1_000_000_000_000)
    }

    fn power_w(&self) -> f64 {
        self.power_kw * 1000.0 * 0.85
    }

    /// Applies a command while not connected: the session runs locally and what must reach
    /// the server waits in the backlog.
    fn apply_offline(&self, state: &mut State, cmd: Cmd) {
        let now = self.clock.now();
        match cmd {
            Cmd::Plug {
                car,
                duration,
                energy_wh,
                at,
            } => {
                let s = self.new_session(state, &car, duration, energy_wh, at.min(now));
                state.backlog.push_back(Pending::Start {
                    session: s.local,
                    tx201: s.tx201.clone(),
                    id_tag: s.id_tag.clone(),
                    register_wh: s.start_register,
                    at: now,
                });
                // The replayed Started takes seqNo 0.
                let mut s = s;
                s.seq_no = 1;
                state.session = Some(s);
                state.status = ("Charging", "NoError");
                inc(&self.stats.sessions_started);
            }
            Cmd::Unplug | Cmd::Fault { .. } => {
                let fault = match &cmd {
                    Cmd::Fault { code } => Some(*code),
                    _ => None,
                };
                if let Some(s) = state.session.take() {
                    let register = s.register_at(now);
                    state.register_wh = register;
                    state.backlog.push_back(Pending::Stop {
                        session: s.local,
                        tx16: s.tx16,
                        tx201: s.tx201.clone(),
                        seq_no: s.seq_no,
                        id_tag: s.id_tag,
                        register_wh: register,
                        reason: if fault.is_some() {
                            "Other"
                        } else {
                            "EVDisconnected"
                        },
                        at: now,
                    });
                    self.completed(register - s.start_register);
                }
                state.status = match fault {
                    Some(code) => ("Faulted", code),
                    None => ("Available", "NoError"),
                };
                state.backlog.push_back(Pending::Status {
                    status: state.status.0,
                    error_code: state.status.1,
                    at: now,
                });
            }
            Cmd::Repair => {
                state.status = ("Available", "NoError");
                state.backlog.push_back(Pending::Status {
                    status: "Available",
                    error_code: "NoError",
                    at: now,
                });
            }
            Cmd::Disconnect { until } => {
                state.offline_until = Some(state.offline_until.map_or(until, |u| u.max(until)));
            }
        }
    }

    fn completed(&self, energy_wh: i64) {
        inc(&self.stats.sessions_completed);
        self.stats
            .energy_wh
            .fetch_add(energy_wh.max(0) as u64, Ordering::Relaxed);
    }

    fn new_session(
        &self,
        state: &mut State,
        car: &Car,
        duration: Duration,
        energy_wh: i64,
        now: DateTime<Utc>,
    ) -> Session {
        let local = state.next_local;
        state.next_local += 1;
        Session {
            local,
            tx16: None,
            // Unique per charger and session, within 2.0.1's 36 characters.
            tx201: format!("{}-{local}-{:x}", self.serial(), now.timestamp_millis()),
            seq_no: 0,
            id_tag: car.id_tag.clone(),
            start_register: state.register_wh,
            energy_wh,
            start: now,
            end: now + duration,
        }
    }

    async fn apply_online(
        &self,
        cp: &mut ChargePoint,
        state: &mut State,
        cmd: Cmd,
    ) -> Result<(), ClientError> {
        let now = self.clock.now();
        match cmd {
            Cmd::Plug {
                car,
                duration,
                energy_wh,
                at,
            } => {
                let mut s = self.new_session(state, &car, duration, energy_wh, at.min(now));
                inc(&self.stats.sessions_started);
                match self.version {
                    Version::V16 => {
                        self.status(cp, "Preparing", "NoError", now).await?;
                        cp.call("Authorize", &json!({ "idTag": s.id_tag })).await?;
                        s.tx16 = Some(self.start_16(cp, &s.id_tag, s.start_register, now).await?);
                        self.status(cp, "Charging", "NoError", now).await?;
                    }
                    Version::V201 => {
                        self.status(cp, "Occupied", "NoError", now).await?;
                        cp.call(
                            "Authorize",
                            &json!({ "idToken": { "idToken": s.id_tag, "type": "ISO14443" } }),
                        )
                        .await?;
                        let register = s.start_register;
                        self.event_201(
                            cp,
                            &mut s,
                            "Started",
                            "Authorized",
                            register,
                            None,
                            now,
                            false,
                        )
                        .await?;
                    }
                }
                state.status = ("Charging", "NoError");
                state.session = Some(s);
            }
            Cmd::Unplug | Cmd::Fault { .. } => {
                let fault = match &cmd {
                    Cmd::Fault { code } => Some(*code),
                    _ => None,
                };
                if let Some(mut s) = state.session.take() {
                    let register = s.register_at(now);
                    state.register_wh = register;
                    let reason = if fault.is_some() {
                        "Other"
                    } else {
                        "EVDisconnected"
                    };
                    match self.version {
                        Version::V16 => {
                            if let Some(tx) = s.tx16 {
                                self.stop_16(cp, tx, &s.id_tag, register, reason, now)
                                    .await?;
                            }
                            if fault.is_none() {
                                self.status(cp, "Finishing", "NoError", now).await?;
                            }
                        }
                        Version::V201 => {
                            let trigger = if fault.is_some() {
                                "AbnormalCondition"
                            } else {
                                "EVDeparted"
                            };
                            self.event_201(
                                cp,
                                &mut s,
                                "Ended",
                                trigger,
                                register,
                                Some(reason),
                                now,
                                false,
                            )
                            .await?;
                        }
                    }
                    self.completed(register - s.start_register);
                }
                state.status = match fault {
                    Some(code) => ("Faulted", code),
                    None => ("Available", "NoError"),
                };
                self.status(cp, state.status.0, state.status.1, now).await?;
            }
            Cmd::Repair => {
                state.status = ("Available", "NoError");
                self.status(cp, "Available", "NoError", now).await?;
            }
            Cmd::Disconnect { .. } => {}
        }
        Ok(())
    }

    async fn replay(
        &self,
        cp: &mut ChargePoint,
        state: &mut State,
        p: &Pending,
    ) -> Result<(), ClientError> {
        match p {
            Pending::Status {
                status,
                error_code,
                at,
            } => self.status(cp, status, error_code, *at).await,
            Pending::Start {
                session,
                tx201,
                id_tag,
                register_wh,
                at,
            } => match self.version {
                Version::V16 => {
                    let tx = self.start_16(cp, id_tag, *register_wh, *at).await?;
                    match state.session.as_mut().filter(|s| s.local == *session) {
                        Some(s) => s.tx16 = Some(tx),
                        None => state.replayed.push((*session, tx)),
                    }
                    Ok(())
                }
                Version::V201 => {
                    let mut s =
                        self.replayed_session(*session, tx201, 0, id_tag, *register_wh, *at);
                    self.event_201(
                        cp,
                        &mut s,
                        "Started",
                        "Authorized",
                        *register_wh,
                        None,
                        *at,
                        true,
                    )
                    .await
                }
            },
            Pending::Stop {
                session,
                tx16,
                tx201,
                seq_no,
                id_tag,
                register_wh,
                reason,
                at,
            } => match self.version {
                Version::V16 => {
                    let learned = state
                        .replayed
                        .iter()
                        .position(|(l, _)| l == session)
                        .map(|i| state.replayed.remove(i).1);
                    match tx16.or(learned) {
                        Some(tx) => {
                            self.stop_16(cp, tx, id_tag, *register_wh, reason, *at)
                                .await
                        }
                        None => Ok(()),
                    }
                }
                Version::V201 => {
                    let mut s =
                        self.replayed_session(*session, tx201, *seq_no, id_tag, *register_wh, *at);
                    let trigger = if *reason == "Other" {
                        "AbnormalCondition"
                    } else {
                        "EVDeparted"
                    };
                    self.event_201(
                        cp,
                        &mut s,
                        "Ended",
                        trigger,
                        *register_wh,
                        Some(reason),
                        *at,
                        true,
                    )
                    .await
                }
            },
        }
    }

    /// Just enough of a session to send one replayed 2.0.1 event for it.
    fn replayed_session(
        &self,
        local: u64,
        tx201: &str,
        seq_no: i64,
        id_tag: &str,
        register_wh: i64,
        at: DateTime<Utc>,
    ) -> Session {
        Session {
            local,
            tx16: None,
            tx201: tx201.to_owned(),
            seq_no,
            id_tag: id_tag.to_owned(),
            start_register: register_wh,
            energy_wh: 0,
            start: at,
            end: at,
        }
    }

    async fn status(
        &self,
        cp: &mut ChargePoint,
        status: &str,
        error_code: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ClientError> {
        let payload = match self.version {
            Version::V16 => json!({
                "connectorId": 1,
                "status": status,
                "errorCode": error_code,
                "timestamp": rfc3339(at),
            }),
            Version::V201 => {
                let status = match status {
                    "Preparing" | "Charging" | "Finishing" | "SuspendedEV" | "SuspendedEVSE" => {
                        "Occupied"
                    }
                    other => other,
                };
                json!({ "timestamp": rfc3339(at), "connectorStatus": status, "evseId": 1, "connectorId": 1 })
            }
        };
        cp.call("StatusNotification", &payload).await.map(drop)
    }

    async fn start_16(
        &self,
        cp: &mut ChargePoint,
        id_tag: &str,
        register: i64,
        at: DateTime<Utc>,
    ) -> Result<i64, ClientError> {
        let answer = cp
            .call(
                "StartTransaction",
                &json!({ "connectorId": 1, "idTag": id_tag, "meterStart": register, "timestamp": rfc3339(at) }),
            )
            .await?;
        answer
            .get("transactionId")
            .and_then(Value::as_i64)
            .ok_or_else(|| ClientError::BadAnswer {
                action: "StartTransaction".to_owned(),
                reason: "no transactionId".to_owned(),
            })
    }

    async fn stop_16(
        &self,
        cp: &mut ChargePoint,
        tx: i64,
        id_tag: &str,
        register: i64,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ClientError> {
        let payload = json!({
            "transactionId": tx,
            "idTag": id_tag,
            "meterStop": register,
            "timestamp": rfc3339(at),
            "reason": reason,
            "transactionData": [meter_value_16(register, 0.0, at)],
        });
        cp.call("StopTransaction", &payload).await.map(drop)
    }

    #[expect(clippy::too_many_arguments, reason = "one TransactionEvent's fields")]
    async fn event_201(
        &self,
        cp: &mut ChargePoint,
        s: &mut Session,
        event: &str,
        trigger: &str,
        register: i64,
        stopped: Option<&str>,
        at: DateTime<Utc>,
        offline: bool,
    ) -> Result<(), ClientError> {
        let mut info = json!({ "transactionId": s.tx201 });
        match stopped {
            Some(reason) => {
                info["stoppedReason"] = json!(reason);
                info["chargingState"] = json!("Idle");
            }
            None => info["chargingState"] = json!("Charging"),
        }
        let mut p = json!({
            "eventType": event,
            "timestamp": rfc3339(at),
            "triggerReason": trigger,
            "seqNo": s.seq_no,
            "transactionInfo": info,
            "meterValue": [meter_value_201(register, if stopped.is_some() { 0.0 } else { self.power_w() }, at)],
        });
        if event == "Started" {
            p["evse"] = json!({ "id": 1, "connectorId": 1 });
            p["idToken"] = json!({ "idToken": s.id_tag, "type": "ISO14443" });
        }
        if offline {
            p["offline"] = json!(true);
        }
        s.seq_no += 1;
        cp.call("TransactionEvent", &p).await.map(drop)
    }
}

fn meter_value_16(register: i64, power_w: f64, at: DateTime<Utc>) -> Value {
    json!({
        "timestamp": rfc3339(at),
        "sampledValue": [
            { "value": register.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Periodic" },
            { "value": format!("{:.0}", power_w), "measurand": "Power.Active.Import", "unit": "W", "context": "Sample.Periodic" },
        ],
    })
}

fn meter_value_201(register: i64, power_w: f64, at: DateTime<Utc>) -> Value {
    json!({
        "timestamp": rfc3339(at),
        "sampledValue": [
            { "value": register, "measurand": "Energy.Active.Import.Register", "context": "Sample.Periodic", "unitOfMeasure": { "unit": "Wh" } },
            { "value": power_w.round(), "measurand": "Power.Active.Import", "context": "Sample.Periodic", "unitOfMeasure": { "unit": "W" } },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_core::network_file::{HUNAN, parse_network};

    #[test]
    fn a_stable_share_of_chargers_speaks_ykc_under_14_digit_ids() {
        let net = parse_network(HUNAN).expect("network");
        let mut ykc = 0;
        let mut total = 0;
        let mut ids = std::collections::HashSet::new();
        for (i, station) in net.stations.iter().enumerate() {
            for n in 0..station.chargers.max(1) as usize {
                let c = fleet_charger(i, station, n, 0.15);
                assert_eq!(c, fleet_charger(i, station, n, 0.15));
                assert!(!fleet_charger(i, station, n, 0.0).ykc);
                if c.ykc {
                    ykc += 1;
                    assert!(c.id.len() == 14 && c.id.bytes().all(|b| b.is_ascii_digit()));
                    assert!(chargeops_ykc::ChargerId::parse(&c.id).is_some());
                } else {
                    assert_eq!(c.id, charger_id(station, n));
                }
                assert!(ids.insert(c.id));
                total += 1;
            }
        }
        let share = f64::from(ykc) / f64::from(total);
        assert!((0.12..0.18).contains(&share), "{ykc} of {total}");
    }
}
