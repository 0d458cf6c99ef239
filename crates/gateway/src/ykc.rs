//! The YKC (云快充) side of the gateway: a TCP listener, one task per charger connection that
//! reads binary frames, answers them, maps them into the network model, and takes commands
//! from the API through the same `Connections` table as OCPP connections.
//!
//! Protocol rules kept here: a connection must log in (0x01) before anything else; every
//! answer echoes the request's sequence number; a connection silent for three heartbeat
//! periods is closed and its charger marked offline; a remote start must be confirmed within
//! 90 s; a transaction record (0x3B) is acknowledged (0x40) only after it is on disk, and a
//! repeated record changes nothing. Bad frames have no error answer in YKC: they are logged and
//! dropped, and the decoder resynchronises on the next start byte.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use chargeops_core::{
    BootInfo, Charger, Command, CommandError, CommandReply, ConnectorStatus, Event, IdTagStatus,
    NewSession, Protocol, Registration, Session, SessionStop, Station,
};
use chargeops_store::ErrorKind;
use chargeops_ykc::codes::{digits_to_bcd, gun_number, to_bcd, to_hex};
use chargeops_ykc::frame::{self, CrcOrder, Encryption, Frame};
use chargeops_ykc::msg::{self, BillingModel, Message, Rate, types};
use chargeops_ykc::{BodyError, ChargerId, Cp56Time, Decoder, Serial};

use crate::metrics::Metrics;
use crate::{ConnHandle, Control, Gateway, RegistrationPolicy, UNASSIGNED_STATION};

const PROTOCOL: &str = "ykc";

/// The platform's time-of-use tariff, sent to chargers as their billing model (0x0A) and used
/// to price transaction records.
#[derive(Debug, Clone, PartialEq)]
pub struct Tariff {
    /// Model number (BCD on the wire); a charger holding another asks for this one.
    pub model: [u8; 2],
    /// Sharp, peak, flat, valley: energy and service price in 0.00001 yuan/kWh.
    pub rates: [Rate; 4],
    /// For each half hour from 00:00 local time, 0 sharp, 1 peak, 2 flat, 3 valley.
    pub periods: [u8; 48],
}

impl Default for Tariff {
    /// A typical provincial split (see [`TariffSpec::default`]).
    fn default() -> Self {
        TariffSpec::default()
            .to_tariff()
            .unwrap_or_else(|_| unreachable!("the default tariff is valid"))
    }
}

/// The tariff as an operator writes it (`[ykc_tariff]` in the TOML file): prices in yuan per
/// kWh and the period of each hour of the day, local (Beijing) time.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TariffSpec {
    /// The model number chargers are told; change it whenever the prices change, so chargers
    /// holding the old one ask for the new one.
    pub model: u16,
    /// Energy prices, yuan/kWh, of the four periods.
    pub sharp: f64,
    pub peak: f64,
    pub flat: f64,
    pub valley: f64,
    /// Service fee, yuan/kWh, added in every period.
    pub service: f64,
    /// 24 letters, one per hour from 00:00: `s` sharp, `p` peak, `f` flat, `v` valley.
    /// Or 48, one per half hour.
    pub hours: String,
}

impl Default for TariffSpec {
    /// Valley 00-07, peak 07-10 and 14-17, flat 10-14 and 21-24, sharp 17-21; service fee 0.40
    /// yuan/kWh on top of every energy price.
    fn default() -> Self {
        TariffSpec {
            model: 1,
            sharp: 1.30,
            peak: 1.00,
            flat: 0.70,
            valley: 0.30,
            service: 0.40,
            hours: "vvvvvvvpppffffpppssssfff".to_owned(),
        }
    }
}

impl TariffSpec {
    /// The most a price may be: a typo guard, far above any real tariff.
    const MAX_YUAN: f64 = 20.0;

    /// Checks the spec and builds the wire tariff; the error names the field.
    pub fn to_tariff(&self) -> Result<Tariff, String> {
        if self.model > 9999 {
            return Err(format!(
                "model must be 0-9999 (four BCD digits), got {}",
                self.model
            ));
        }
        let price = |v: f64, name: &str| -> Result<u32, String> {
            if v.is_finite() && (0.0..=Self::MAX_YUAN).contains(&v) {
                Ok((v * 100_000.0).round() as u32)
            } else {
                Err(format!(
                    "{name} must be 0-{} yuan/kWh, got {v}",
                    Self::MAX_YUAN
                ))
            }
        };
        let service = price(self.service, "service")?;
        let mut rates = [Rate { energy: 0, service }; 4];
        for (rate, (v, name)) in rates.iter_mut().zip([
            (self.sharp, "sharp"),
            (self.peak, "peak"),
            (self.flat, "flat"),
            (self.valley, "valley"),
        ]) {
            rate.energy = price(v, name)?;
        }
        let letters: Vec<char> = self.hours.chars().filter(|c| !c.is_whitespace()).collect();
        let per_slot = match letters.len() {
            24 => 2,
            48 => 1,
            n => {
                return Err(format!(
                    "hours must have 24 letters (one per hour) or 48 (one per half hour), got {n}"
                ));
            }
        };
        let mut periods = [0u8; 48];
        for (i, c) in letters.iter().enumerate() {
            let period = match c.to_ascii_lowercase() {
                's' => 0,
                'p' => 1,
                'f' => 2,
                'v' => 3,
                other => {
                    return Err(format!(
                        "hours: {other:?} at position {} is not s (sharp), p (peak), f (flat) or v (valley)",
                        i + 1
                    ));
                }
            };
            for slot in &mut periods[i * per_slot..(i + 1) * per_slot] {
                *slot = period;
            }
        }
        let model = digits_to_bcd::<2>(&format!("{:04}", self.model))
            .ok_or_else(|| format!("model {} is not four digits", self.model))?;
        Ok(Tariff {
            model,
            rates,
            periods,
        })
    }
}

impl Tariff {
    /// Price of a bill: each time-of-use line's energy times that line's energy and service
    /// price, in yuan.
    pub fn price(&self, tou: &[msg::TouLine; 4]) -> f64 {
        tou.iter()
            .zip(&self.rates)
            .map(|(line, rate)| {
                let kwh = f64::from(line.energy) / 10_000.0;
                kwh * f64::from(rate.energy + rate.service) / 100_000.0
            })
            .sum()
    }
}

#[derive(Debug, Clone)]
pub struct YkcConfig {
    /// A connection silent this long is closed and its charger marked offline: three missed
    /// heartbeats of the protocol's 10-second period.
    pub heartbeat_timeout: Duration,
    /// Byte order of the CRC on frames we send (we accept both).
    pub crc_order: CrcOrder,
    /// A remote start must be confirmed (0x33) within this time.
    pub start_timeout: Duration,
    /// After a stop, the charger owes its transaction record within this time.
    pub record_timeout: Duration,
    pub tariff: Tariff,
    /// How often a logged-in charger's clock is set again (time sync, 0x56): at login and then
    /// at this period, so clocks that drift do not misplace energy between tariff periods.
    pub time_sync_every: Duration,
}

impl Default for YkcConfig {
    fn default() -> Self {
        YkcConfig {
            heartbeat_timeout: Duration::from_secs(30),
            crc_order: CrcOrder::LowFirst,
            start_timeout: Duration::from_secs(90),
            record_timeout: Duration::from_secs(30),
            tariff: Tariff::default(),
            time_sync_every: Duration::from_secs(3600),
        }
    }
}

/// Chargers keep Beijing time on their clocks; CP56Time2a carries no zone.
fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

fn to_utc(t: Cp56Time) -> Option<DateTime<Utc>> {
    let naive: NaiveDateTime = t.to_naive()?;
    china()
        .from_local_datetime(&naive)
        .single()
        .map(|d| d.with_timezone(&Utc))
}

fn to_cp56(t: DateTime<Utc>) -> Cp56Time {
    Cp56Time::from_naive(t.with_timezone(&china()).naive_local())
}

/// Accepts YKC chargers on `listener` until the task is dropped.
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener, config: YkcConfig) {
    let config = Arc::new(config);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "YKC listening");
    }
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(run(gw.clone(), config.clone(), stream, peer));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "YKC accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A command sent to the charger, waiting for its answer.
struct Pending {
    /// The answer's frame type.
    expect: u8,
    seq: u16,
    kind: PendingKind,
    reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    deadline: Instant,
}

enum PendingKind {
    RemoteStart {
        serial: Serial,
        gun: u8,
        id_tag: String,
    },
    RemoteStop {
        transaction_ref: String,
    },
    Plain(&'static str),
}

impl PendingKind {
    fn name(&self) -> &'static str {
        match self {
            PendingKind::RemoteStart { .. } => "remote-start",
            PendingKind::RemoteStop { .. } => "remote-stop",
            PendingKind::Plain(name) => name,
        }
    }
}

struct LoggedIn {
    id: ChargerId,
    charger_id: String,
    station_id: String,
    conn_id: u64,
    /// The charger's 3DES key for frames with the encryption flag, when one is set.
    key: Option<chargeops_ykc::crypto::Key>,
    /// When the charger's clock was last set.
    synced_at: Instant,
    /// The charger has sent an encrypted frame that its key opened: from then on what the
    /// platform sends it is encrypted too, as the charger now expects.
    encrypting: bool,
}

/// A stored key (32 or 48 hex digits) as a 3DES key.
fn parse_key(hex: &str) -> Option<chargeops_ykc::crypto::Key> {
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    chargeops_ykc::crypto::Key::new(&bytes?).ok()
}

struct Conn {
    gw: Arc<Gateway>,
    cfg: Arc<YkcConfig>,
    peer: String,
    stream: TcpStream,
    login: Option<LoggedIn>,
    pending: Option<Pending>,
    next_seq: u16,
    serial_counter: u16,
    /// Running sessions by transaction serial; this connection is the charger's one writer.
    sessions: HashMap<String, Session>,
    /// Transaction records owed after a stop, by serial.
    records_due: HashMap<String, Instant>,
}

enum Flow {
    Continue,
    Close(&'static str),
}

async fn run(gw: Arc<Gateway>, cfg: Arc<YkcConfig>, stream: TcpStream, peer: SocketAddr) {
    Metrics::inc(&gw.metrics.connections_total);
    Metrics::inc(&gw.metrics.connections_open);
    let mut conn = Conn {
        gw: gw.clone(),
        cfg: cfg.clone(),
        peer: peer.to_string(),
        stream,
        login: None,
        pending: None,
        next_seq: 0,
        serial_counter: (Utc::now().timestamp_subsec_micros() % 10_000) as u16,
        sessions: HashMap::new(),
        records_due: HashMap::new(),
    };
    tracing::info!(peer = %conn.peer, "YKC connection opened");
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 1024];
    let mut last_heard = Instant::now();
    // The control channel exists from the start; it is registered once the charger logs in.
    let (tx, mut rx) = mpsc::channel::<Control>(16);
    let mut tx = Some(tx);

    let reason = 'conn: loop {
        let idle_deadline = last_heard + cfg.heartbeat_timeout;
        let pending_deadline = conn.pending.as_ref().map(|p| p.deadline);
        let record_deadline = conn.records_due.values().min().copied();
        let sync_deadline = conn
            .login
            .as_ref()
            .map(|l| l.synced_at + cfg.time_sync_every);
        tokio::select! {
            read = conn.stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break 'conn "closed by charger",
                    Ok(n) => n,
                    Err(e) => {
                        tracing::info!(peer = %conn.peer, error = %e, "YKC read failed");
                        break 'conn "connection error";
                    }
                };
                let dropped = decoder.push(&buf[..n]);
                if dropped > 0 {
                    tracing::warn!(peer = %conn.peer, dropped, "YKC input without frames dropped");
                }
                while let Some(next) = decoder.next_frame() {
                    match next {
                        Ok(decoded) => {
                            last_heard = Instant::now();
                            Metrics::inc(&gw.metrics.messages_received_total);
                            match conn.on_frame(decoded.frame, &mut tx).await {
                                Flow::Continue => {}
                                Flow::Close(why) => break 'conn why,
                            }
                        }
                        Err(e) => {
                            tracing::warn!(peer = %conn.peer, charger_id = conn.id_str(), error = %e, "bad YKC frame dropped");
                        }
                    }
                }
            }
            ctrl = rx.recv(), if conn.pending.is_none() && conn.login.is_some() => match ctrl {
                Some(Control::Command { command, reply }) => {
                    if let Err(why) = conn.start_command(command, reply).await {
                        break 'conn why;
                    }
                }
                Some(Control::Superseded) | None => break 'conn "superseded",
            },
            _ = tokio::time::sleep_until(idle_deadline) => {
                break 'conn "silent for three heartbeat periods";
            }
            _ = sleep_until(pending_deadline), if pending_deadline.is_some() => {
                if let Some(p) = conn.pending.take() {
                    Metrics::inc(&gw.metrics.commands_timed_out_total);
                    let secs = p.deadline.saturating_duration_since(Instant::now()).as_secs();
                    tracing::warn!(charger_id = conn.id_str(), command = p.kind.name(), expect = p.expect, "YKC command not answered in time");
                    let timeout = match p.kind {
                        PendingKind::RemoteStart { .. } => cfg.start_timeout.as_secs(),
                        _ => gw.config.command_timeout.as_secs().max(secs),
                    };
                    let _ = p.reply.send(Err(CommandError::Timeout(timeout)));
                }
            }
            _ = sleep_until(sync_deadline), if sync_deadline.is_some() => {
                if let Flow::Close(why) = conn.time_sync().await {
                    break 'conn why;
                }
            }
            _ = sleep_until(record_deadline), if record_deadline.is_some() => {
                let now = Instant::now();
                let late: Vec<String> = conn.records_due.iter().filter(|(_, d)| **d <= now).map(|(s, _)| s.clone()).collect();
                for serial in late {
                    conn.records_due.remove(&serial);
                    tracing::warn!(charger_id = conn.id_str(), transaction = %serial, "no transaction record within the protocol's time after the stop");
                }
            }
        }
    };

    let _ = conn.stream.shutdown().await;
    if let Some(p) = conn.pending.take() {
        let _ = p.reply.send(Err(CommandError::Closed));
    }
    Metrics::dec(&gw.metrics.connections_open);
    if let Some(login) = &conn.login {
        if gw
            .connections
            .remove_if_current(&login.charger_id, login.conn_id)
        {
            gw.live.set_online(&login.charger_id, false, None);
            gw.live.publish(Event::ChargerOffline {
                charger_id: login.charger_id.clone(),
                station_id: login.station_id.clone(),
                at: gw.live.now(),
            });
        }
        tracing::info!(charger_id = %login.charger_id, peer = %conn.peer, reason, "YKC charger disconnected");
    } else {
        tracing::info!(peer = %conn.peer, reason, "YKC connection closed before login");
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn stop_reason(code: u8) -> String {
    match code {
        0x40 => "remote".to_owned(),
        0x41 => "soc_full".to_owned(),
        0x42 => "energy_limit".to_owned(),
        0x43 => "amount_limit".to_owned(),
        0x44 => "time_limit".to_owned(),
        0x45 => "local".to_owned(),
        other => format!("ykc_{other:#04x}"),
    }
}

/// The one internal status for a gun's real-time report.
fn map_status(status: u8, plugged: u8) -> (ConnectorStatus, &'static str) {
    match (status, plugged) {
        (0x00, _) => (ConnectorStatus::Offline, "offline"),
        (0x01, _) => (ConnectorStatus::Faulted, "fault"),
        (0x02, 0x01) => (ConnectorStatus::Occupied, "idle_plugged"),
        (0x02, _) => (ConnectorStatus::Available, "idle"),
        (0x03, _) => (ConnectorStatus::Charging, "charging"),
        _ => (ConnectorStatus::Unavailable, "unknown"),
    }
}

impl Conn {
    fn id_str(&self) -> Option<&str> {
        self.login.as_ref().map(|l| l.charger_id.as_str())
    }

    fn seq(&mut self) -> u16 {
        let s = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        s
    }

    async fn send(&mut self, seq: u16, msg: &Message) -> std::io::Result<()> {
        let body = msg.encode_body();
        let (encryption, body) = match self.login.as_ref() {
            Some(LoggedIn {
                key: Some(key),
                encrypting: true,
                ..
            }) => (Encryption::TripleDes, key.encrypt(&body)),
            _ => (Encryption::Plain, body),
        };
        let frame = Frame {
            seq,
            encryption,
            frame_type: msg.frame_type(),
            body,
        };
        let bytes = frame::encode(&frame, self.cfg.crc_order)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.stream.write_all(&bytes).await?;
        Metrics::inc(&self.gw.metrics.messages_sent_total);
        Ok(())
    }

    async fn reply(&mut self, seq: u16, msg: Message) -> Flow {
        match self.send(seq, &msg).await {
            Ok(()) => Flow::Continue,
            Err(e) => {
                tracing::info!(peer = %self.peer, error = %e, "YKC send failed");
                Flow::Close("send failed")
            }
        }
    }

    async fn on_frame(&mut self, mut frame: Frame, tx: &mut Option<mpsc::Sender<Control>>) -> Flow {
        if frame.encryption != Encryption::Plain {
            // Readable only after login, with the charger's own key; without one the frame
            // is refused rather than guessed at.
            let Some(login) = self.login.as_mut().filter(|l| l.key.is_some()) else {
                tracing::warn!(peer = %self.peer, charger_id = self.id_str(), frame_type = frame.frame_type, "encrypted YKC frame refused: no 3DES key is configured for this charger (or not logged in)");
                return Flow::Continue;
            };
            let decrypted = login.key.as_ref().map(|key| key.decrypt(&frame.body));
            match decrypted {
                Some(Ok(plain)) => {
                    frame.body = plain;
                    frame.encryption = Encryption::Plain;
                    if !login.encrypting {
                        login.encrypting = true;
                        tracing::info!(charger_id = %login.charger_id, "YKC charger encrypts its frames; replies are encrypted from now on");
                    }
                }
                None => return Flow::Continue,
                Some(Err(e)) => {
                    tracing::warn!(peer = %self.peer, charger_id = self.id_str(), frame_type = frame.frame_type, error = %e, "encrypted YKC frame could not be decrypted with the charger's key; dropped");
                    return Flow::Continue;
                }
            }
        }
        let message = match Message::decode(frame.frame_type, &frame.body) {
            Ok(m) => m,
            Err(BodyError::UnknownType(t)) => {
                tracing::warn!(peer = %self.peer, charger_id = self.id_str(), frame_type = t, "unknown or unhandled YKC frame type ignored");
                return Flow::Continue;
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, charger_id = self.id_str(), error = %e, "malformed YKC body dropped");
                return Flow::Continue;
            }
        };
        if let Message::Login(login) = message {
            return self.on_login(frame.seq, login, tx).await;
        }
        let Some(me) = self.login.as_ref().map(|l| l.id) else {
            tracing::warn!(peer = %self.peer, frame_type = frame.frame_type, "YKC frame before login ignored");
            return Flow::Continue;
        };
        if let Some(other) = body_charger(&message)
            && other != me
        {
            tracing::warn!(charger_id = self.id_str(), claimed = %other, frame_type = frame.frame_type, "YKC frame for another charger ignored");
            if let Message::TransactionRecord(rec) = &message {
                return self
                    .reply(
                        frame.seq,
                        Message::TransactionAck {
                            serial: rec.serial,
                            result: 1,
                        },
                    )
                    .await;
            }
            return Flow::Continue;
        }
        self.on_message(frame.seq, message).await
    }

    async fn on_login(
        &mut self,
        seq: u16,
        login: msg::Login,
        tx: &mut Option<mpsc::Sender<Control>>,
    ) -> Flow {
        let charger_id = login.charger.to_string();
        if let Some(current) = &self.login {
            if current.id == login.charger {
                // A repeated login on a live link: answer it again.
                return self
                    .reply(
                        seq,
                        Message::LoginReply {
                            charger: login.charger,
                            result: 0,
                        },
                    )
                    .await;
            }
            tracing::warn!(charger_id = %current.charger_id, claimed = %charger_id, "login for another charger on a logged-in connection refused");
            return self
                .reply(
                    seq,
                    Message::LoginReply {
                        charger: login.charger,
                        result: 1,
                    },
                )
                .await;
        }
        let refuse = Message::LoginReply {
            charger: login.charger,
            result: 1,
        };
        if !login.charger.is_decimal() {
            tracing::warn!(peer = %self.peer, claimed = %charger_id, "YKC login refused: charger id is not 14 BCD digits");
            let _ = self.reply(seq, refuse).await;
            return Flow::Close("invalid charger id");
        }
        let charger = match self.gw.store.get_charger(&charger_id).await {
            Ok(Some(c)) => c,
            Ok(None) => match self.register_unknown(&charger_id).await {
                Ok(Some(c)) => c,
                Ok(None) => {
                    tracing::warn!(charger_id, peer = %self.peer, "YKC login refused: unknown charger (registration closed)");
                    Metrics::inc(&self.gw.metrics.upgrades_rejected_total);
                    let _ = self.reply(seq, refuse).await;
                    return Flow::Close("unknown charger");
                }
                Err(e) => {
                    tracing::error!(charger_id, error = %e, "could not register YKC charger");
                    return Flow::Close("storage unavailable");
                }
            },
            Err(e) => {
                tracing::error!(charger_id, error = %e, "charger lookup failed");
                return Flow::Close("storage unavailable");
            }
        };
        let info = BootInfo {
            vendor: None,
            model: Some(
                format!(
                    "{} {} gun(s)",
                    if login.kind == 1 { "AC" } else { "DC" },
                    login.guns
                )
                .to_owned(),
            ),
            serial_number: None,
            firmware_version: Some(login.software_version_text()).filter(|v| !v.is_empty()),
        };
        if let Err(e) = self
            .gw
            .store
            .record_boot(&charger_id, Protocol::Ykc, &info, self.gw.live.now())
            .await
        {
            tracing::error!(charger_id, error = %e, "could not record YKC login");
            return Flow::Close("storage unavailable");
        }
        let key = match self.gw.store.charger_ykc_key(&charger_id).await {
            Ok(Some(hex)) => {
                let key = parse_key(&hex);
                if key.is_none() {
                    tracing::error!(
                        charger_id,
                        "stored YKC 3DES key is invalid; encrypted frames will be refused"
                    );
                }
                key
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(charger_id, error = %e, "could not read the charger's YKC key");
                return Flow::Close("storage unavailable");
            }
        };
        match charger.registration {
            Registration::Accepted => {}
            Registration::Pending => {
                // Held until an operator accepts it; the charger retries its login.
                tracing::info!(charger_id, peer = %self.peer, "YKC login of a pending charger answered not accepted");
                return self.reply(seq, refuse).await;
            }
            Registration::Rejected => {
                tracing::warn!(charger_id, peer = %self.peer, "YKC login of a rejected charger refused");
                let _ = self.reply(seq, refuse).await;
                return Flow::Close("charger rejected");
            }
        }

        // Logged in: this connection becomes the charger's one writer.
        let Some(tx) = tx.take() else {
            return Flow::Close("login state lost");
        };
        let conn_id = self.gw.next_conn_id();
        if let Some(old) = self
            .gw
            .connections
            .insert(&charger_id, ConnHandle { conn_id, tx })
        {
            tracing::warn!(charger_id, peer = %self.peer, "a newer connection claimed this charger; closing the older one");
            if old.tx.try_send(Control::Superseded).is_err() {
                tokio::spawn(async move {
                    let _ = old.tx.send(Control::Superseded).await;
                });
            }
        }
        let live = &self.gw.live;
        if !live.set_online(&charger_id, true, Some(Protocol::Ykc)) {
            live.upsert_charger(
                &charger_id,
                &charger.station_id,
                Some(Protocol::Ykc),
                Vec::new(),
            );
            live.set_online(&charger_id, true, Some(Protocol::Ykc));
        }
        tracing::info!(charger_id, peer = %self.peer, guns = login.guns, protocol_version = login.protocol_version, "YKC charger logged in");
        // A login is how a YKC charger starts up: the reboot-loop rule counts them.
        live.publish(Event::ChargerBooted {
            charger_id: charger_id.clone(),
            station_id: charger.station_id.clone(),
            at: live.now(),
        });
        live.publish(Event::ChargerOnline {
            charger_id: charger_id.clone(),
            station_id: charger.station_id.clone(),
            protocol: PROTOCOL.to_owned(),
            at: live.now(),
        });
        self.login = Some(LoggedIn {
            id: login.charger,
            charger_id,
            station_id: charger.station_id,
            conn_id,
            key,
            synced_at: Instant::now(),
            encrypting: false,
        });
        if let Flow::Close(why) = self
            .reply(
                seq,
                Message::LoginReply {
                    charger: login.charger,
                    result: 0,
                },
            )
            .await
        {
            return Flow::Close(why);
        }
        self.time_sync().await
    }

    /// Sets the logged-in charger's clock (the protocol's time sync, 0x56); its answer is
    /// logged. Repeated every `time_sync_every`.
    async fn time_sync(&mut self) -> Flow {
        let Some(login) = self.login.as_mut() else {
            return Flow::Continue;
        };
        login.synced_at = Instant::now();
        let charger = login.id;
        let seq = self.seq();
        let now = to_cp56(self.gw.live.now());
        self.reply(seq, Message::TimeSync { charger, time: now })
            .await
    }

    /// Registers an unknown charger under the open and pending policies; `None` when the
    /// policy is closed.
    async fn register_unknown(
        &self,
        charger_id: &str,
    ) -> Result<Option<Charger>, chargeops_store::StoreError> {
        let registration = match self.gw.config.registration {
            RegistrationPolicy::Closed => return Ok(None),
            RegistrationPolicy::Open => Registration::Accepted,
            RegistrationPolicy::Pending => Registration::Pending,
        };
        let store = &self.gw.store;
        if store.get_station(UNASSIGNED_STATION).await?.is_none() {
            store
                .upsert_station(&Station {
                    id: UNASSIGNED_STATION.to_owned(),
                    name: "Unassigned chargers".to_owned(),
                    lat: None,
                    lon: None,
                    highway: None,
                    direction: None,
                })
                .await?;
            self.gw.live.add_station(UNASSIGNED_STATION);
        }
        let charger = Charger {
            id: charger_id.to_owned(),
            station_id: UNASSIGNED_STATION.to_owned(),
            protocol: Some(Protocol::Ykc),
            vendor: None,
            model: None,
            serial_number: None,
            firmware_version: None,
            registration,
            password_hash: None,
            created_at: self.gw.live.now(),
            last_boot_at: None,
        };
        match store.insert_charger(&charger).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {
                return store.get_charger(charger_id).await;
            }
            Err(e) => return Err(e),
        }
        self.gw.live.upsert_charger(
            charger_id,
            UNASSIGNED_STATION,
            Some(Protocol::Ykc),
            Vec::new(),
        );
        tracing::info!(
            charger_id,
            registration = registration.as_str(),
            "registered unknown YKC charger"
        );
        Ok(Some(charger))
    }

    async fn on_message(&mut self, seq: u16, message: Message) -> Flow {
        let Some(me) = self.login.as_ref().map(|l| l.id) else {
            return Flow::Continue;
        };
        match message {
            Message::Heartbeat {
                gun, gun_status, ..
            } => {
                if gun_status != 0 {
                    tracing::info!(
                        charger_id = self.id_str(),
                        gun = gun_number(gun),
                        gun_status,
                        "heartbeat reports a gun fault"
                    );
                }
                self.reply(
                    seq,
                    Message::HeartbeatReply {
                        charger: me,
                        gun,
                        ack: 0,
                    },
                )
                .await
            }
            Message::BillingCheck { model, .. } => {
                let result = u8::from(model != self.cfg.tariff.model);
                self.reply(
                    seq,
                    Message::BillingCheckReply {
                        charger: me,
                        model: self.cfg.tariff.model,
                        result,
                    },
                )
                .await
            }
            Message::BillingRequest { .. } => {
                let t = &self.cfg.tariff;
                let model = BillingModel {
                    charger: me,
                    model: t.model,
                    rates: t.rates,
                    loss_ratio: 0,
                    periods: t.periods,
                };
                self.reply(seq, Message::BillingModel(model)).await
            }
            Message::Realtime(rt) => {
                if let Err(e) = self.on_realtime(&rt).await {
                    tracing::error!(charger_id = self.id_str(), error = %e, "could not record YKC real-time data");
                }
                Flow::Continue
            }
            Message::StartRequest(req) => self.on_start_request(seq, req).await,
            Message::TransactionRecord(rec) => self.on_record(seq, *rec).await,
            Message::TimeSyncReply { time, .. } => {
                tracing::debug!(charger_id = self.id_str(), time = ?time.to_naive(), "time sync answered");
                Flow::Continue
            }
            reply @ (Message::RemoteStartReply(_)
            | Message::RemoteStopReply(_)
            | Message::RebootReply { .. }
            | Message::WorkParamsReply { .. }
            | Message::BillingSetReply { .. }) => {
                self.on_command_reply(seq, reply).await;
                Flow::Continue
            }
            other => {
                tracing::warn!(
                    charger_id = self.id_str(),
                    frame_type = other.frame_type(),
                    "YKC frame of the platform's direction from a charger ignored"
                );
                Flow::Continue
            }
        }
    }

    async fn on_realtime(&mut self, rt: &msg::Realtime) -> Result<(), chargeops_store::StoreError> {
        let Some(login) = &self.login else {
            return Ok(());
        };
        let charger_id = login.charger_id.clone();
        let station_id = login.station_id.clone();
        let gun = u32::from(gun_number(rt.gun));
        let (status, raw) = map_status(rt.status, rt.plugged);
        let error_code = (rt.faults != 0).then(|| format!("faults_{:#06x}", rt.faults));
        tracing::debug!(
            charger_id,
            gun,
            status = raw,
            voltage_dv = rt.voltage,
            current_da = rt.current,
            soc = rt.soc,
            energy = rt.energy,
            amount = rt.amount,
            faults = rt.faults,
            "YKC real-time data"
        );
        let last = self.gw.live.connector(&charger_id, gun, gun);
        let changed = last.as_ref().is_none_or(|c| {
            c.status != status || c.error_code != error_code || c.raw_status.as_deref() != Some(raw)
        });
        if changed {
            let at = self.gw.live.now();
            let state = chargeops_core::live::connector_state(
                gun,
                gun,
                status,
                Some(raw.to_owned()),
                error_code.clone(),
                at,
            );
            self.gw.store.record_status(&charger_id, &state).await?;
            let previous = self.gw.live.set_status(&charger_id, state).ok().flatten();
            if previous != Some(status) {
                self.gw.live.publish(Event::StatusChanged {
                    charger_id: charger_id.clone(),
                    station_id: station_id.clone(),
                    evse_id: gun,
                    connector_id: gun,
                    status,
                    previous,
                    error_code,
                    at,
                });
            }
        }
        // Energy so far of the running session.
        if rt.status == 0x03 && !rt.serial.is_zero() {
            let serial = rt.serial.to_string();
            if let Some(s) = self.find_session(&serial).await?
                && s.stopped_at.is_none()
            {
                let wh = i64::from(rt.energy / 10);
                self.gw
                    .store
                    .update_session_energy(s.id, Some(wh), None)
                    .await?;
                if let Some(c) = self.sessions.get_mut(&serial) {
                    c.energy_wh = Some(wh);
                }
                // The session's energy so far and the gun's power: what an OCPP charger's meter
                // values give the fault detector (a register that goes back, implausible power).
                self.gw.live.publish(Event::MeterReading {
                    charger_id,
                    station_id,
                    evse_id: gun,
                    session_id: Some(s.id),
                    energy_wh: Some(wh),
                    power_w: Some(f64::from(rt.voltage) * f64::from(rt.current) / 100.0),
                    at: self.gw.live.now(),
                });
            }
        }
        Ok(())
    }

    async fn find_session(
        &mut self,
        serial: &str,
    ) -> Result<Option<Session>, chargeops_store::StoreError> {
        if let Some(s) = self.sessions.get(serial) {
            return Ok(Some(s.clone()));
        }
        let Some(charger_id) = self.id_str().map(str::to_owned) else {
            return Ok(None);
        };
        let found = self.gw.store.find_session(&charger_id, serial).await?;
        if let Some(s) = &found
            && s.stopped_at.is_none()
        {
            if self.sessions.len() >= 16 {
                self.sessions.clear();
            }
            self.sessions.insert(serial.to_owned(), s.clone());
        }
        Ok(found)
    }

    /// Starts (or finds) the session of a transaction serial; on disk before it returns.
    async fn start_session(
        &mut self,
        serial: Serial,
        gun: u32,
        id_tag: Option<String>,
        started_at: DateTime<Utc>,
        meter_start_wh: Option<i64>,
    ) -> Result<Session, chargeops_store::StoreError> {
        let Some(login) = &self.login else {
            return Err(chargeops_store::StoreError::Invalid(
                "not logged in".to_owned(),
            ));
        };
        let charger_id = login.charger_id.clone();
        let station_id = login.station_id.clone();
        let started = self
            .gw
            .store
            .start_session(&NewSession {
                charger_id: charger_id.clone(),
                evse_id: gun,
                connector_id: gun,
                transaction_ref: Some(serial.to_string()),
                id_tag,
                started_at,
                meter_start_wh,
                seq_no: None,
            })
            .await?;
        let s = started.session;
        if started.created {
            tracing::info!(charger_id, session_id = s.id, transaction = %s.transaction_ref, "session started");
            self.gw.live.publish(Event::SessionStarted {
                session_id: s.id,
                charger_id,
                station_id,
                evse_id: s.evse_id,
                connector_id: s.connector_id,
                id_tag: s.id_tag.clone(),
                at: s.started_at,
            });
        }
        if s.stopped_at.is_none() {
            if self.sessions.len() >= 16 {
                self.sessions.clear();
            }
            self.sessions.insert(s.transaction_ref.clone(), s.clone());
        }
        Ok(s)
    }

    fn issue_serial(&mut self, gun: u8) -> Option<Serial> {
        let id = self.login.as_ref()?.id;
        let local = self.gw.live.now().with_timezone(&china());
        let t = local.format("%y%m%d%H%M%S").to_string();
        let d: Vec<u8> = t.bytes().map(|b| b.wrapping_sub(b'0')).collect();
        let mut stamp = [0u8; 6];
        for (i, pair) in d.chunks(2).take(6).enumerate() {
            stamp[i] = pair[0]
                .saturating_mul(10)
                .saturating_add(*pair.get(1).unwrap_or(&0));
        }
        self.serial_counter = (self.serial_counter + 1) % 10_000;
        Some(Serial::issue(id, gun, stamp, self.serial_counter))
    }

    /// 0x31: a card or VIN at the charger asks to start. The card number is the id tag.
    async fn on_start_request(&mut self, seq: u16, req: msg::StartRequest) -> Flow {
        let Some(me) = self.login.as_ref().map(|l| l.id) else {
            return Flow::Continue;
        };
        let id_tag = match req.method {
            3 => {
                let mut vin = req.vin;
                vin.reverse();
                String::from_utf8_lossy(&vin).trim_matches('\0').to_owned()
            }
            _ => to_hex(&req.account),
        };
        let gun = gun_number(req.gun);
        let status = match self.gw.store.get_id_tag(&id_tag).await {
            Ok(tag) => tag.map_or(IdTagStatus::Invalid, |t| {
                t.effective_status(self.gw.live.now())
            }),
            Err(e) => {
                tracing::error!(charger_id = self.id_str(), error = %e, "id tag lookup failed; start not answered");
                return Flow::Continue;
            }
        };
        let serial = self.issue_serial(gun).unwrap_or(Serial::ZERO);
        let (ok, reason) = match status {
            IdTagStatus::Accepted => (1, 0),
            IdTagStatus::Blocked => (0, 0x02),
            IdTagStatus::Expired | IdTagStatus::Invalid => (0, 0x01),
        };
        if ok == 1 {
            // On disk before the charger is told to start.
            let now = self.gw.live.now();
            if let Err(e) = self
                .start_session(serial, u32::from(gun), Some(id_tag.clone()), now, None)
                .await
            {
                tracing::error!(charger_id = self.id_str(), error = %e, "could not start session; start not answered");
                return Flow::Continue;
            }
        }
        tracing::info!(
            charger_id = self.id_str(),
            gun,
            id_tag,
            ok,
            "charger-requested start answered"
        );
        self.reply(
            seq,
            Message::StartConfirm(msg::StartConfirm {
                serial,
                charger: me,
                gun: req.gun,
                logical_card: req.account,
                balance: 0,
                ok,
                reason,
            }),
        )
        .await
    }

    /// 0x3B: the bill. Starts and stops the session idempotently, then acknowledges.
    async fn on_record(&mut self, seq: u16, rec: msg::TransactionRecord) -> Flow {
        let serial = rec.serial.to_string();
        self.records_due.remove(&serial);
        let gun = u32::from(gun_number(rec.gun));
        let now = self.gw.live.now();
        let stopped_at = to_utc(rec.ended).unwrap_or(now);
        let started_at = to_utc(rec.started).unwrap_or(stopped_at);
        let card = (rec.physical_card != [0; 8]).then(|| to_hex(&rec.physical_card));
        let energy_wh = i64::from(rec.energy / 10);
        let cost = self.cfg.tariff.price(&rec.tou);
        let charger_amount = f64::from(rec.amount) / 10_000.0;
        let result = async {
            let session = match self.find_session(&serial).await? {
                Some(s) => s,
                None => {
                    self.start_session(
                        rec.serial,
                        gun,
                        card.clone(),
                        started_at,
                        i64::try_from(rec.meter_start / 10).ok(),
                    )
                    .await?
                }
            };
            let stopped = self
                .gw
                .store
                .stop_session(
                    session.id,
                    &SessionStop {
                        stopped_at,
                        meter_stop_wh: i64::try_from(rec.meter_stop / 10).ok(),
                        energy_wh: Some(energy_wh),
                        reason: Some(stop_reason(rec.stop_reason)),
                        seq_no: None,
                    },
                )
                .await?;
            Ok::<_, chargeops_store::StoreError>(stopped)
        }
        .await;
        let stopped = match result {
            Ok(s) => s,
            Err(e) => {
                // Not acknowledged: the charger sends the record again.
                tracing::error!(charger_id = self.id_str(), transaction = %serial, error = %e, "could not store YKC transaction record; not acknowledged");
                return Flow::Continue;
            }
        };
        self.sessions.remove(&serial);
        let s = &stopped.session;
        if stopped.applied {
            if (cost - charger_amount).abs() > 0.01 {
                tracing::warn!(charger_id = self.id_str(), transaction = %serial, cost, charger_amount, "charger's bill differs from the platform's tariff");
            }
            tracing::info!(charger_id = self.id_str(), session_id = s.id, transaction = %serial, energy_wh, cost, charger_amount, sharp_kwh = f64::from(rec.tou[0].energy) / 1e4, peak_kwh = f64::from(rec.tou[1].energy) / 1e4, flat_kwh = f64::from(rec.tou[2].energy) / 1e4, valley_kwh = f64::from(rec.tou[3].energy) / 1e4, "session stopped (YKC transaction record)");
            if let Some(login) = &self.login {
                self.gw.live.publish(Event::SessionStopped {
                    session_id: s.id,
                    charger_id: login.charger_id.clone(),
                    station_id: login.station_id.clone(),
                    evse_id: s.evse_id,
                    connector_id: s.connector_id,
                    energy_wh: s.energy_wh,
                    reason: s.stop_reason.clone(),
                    cost: Some((cost * 100.0).round() / 100.0),
                    at: s.stopped_at.unwrap_or(stopped_at),
                });
            }
        } else {
            tracing::info!(charger_id = self.id_str(), session_id = s.id, transaction = %serial, "repeated YKC transaction record acknowledged again");
        }
        self.reply(
            seq,
            Message::TransactionAck {
                serial: rec.serial,
                result: 0,
            },
        )
        .await
    }

    /// Sends a command; its answer arrives as a frame later. `Err` closes the connection.
    async fn start_command(
        &mut self,
        command: Command,
        reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    ) -> Result<(), &'static str> {
        let Some(me) = self.login.as_ref().map(|l| l.id) else {
            let _ = reply.send(Err(CommandError::Closed));
            return Ok(());
        };
        let unsupported = |c: &Command| CommandError::Unsupported {
            command: c.name(),
            protocol: PROTOCOL,
        };
        let timeout = self.gw.config.command_timeout;
        let (msg, expect, kind, wait) = match &command {
            Command::RemoteStart {
                evse_id,
                connector_id,
                id_tag,
            } => {
                let gun = connector_id.or(*evse_id).unwrap_or(1);
                let Some(gun) = u8::try_from(gun).ok().filter(|g| (1..=99).contains(g)) else {
                    let _ = reply.send(Err(CommandError::Invalid(format!(
                        "YKC gun numbers are 1 to 99, got {gun}"
                    ))));
                    return Ok(());
                };
                let cards = card_numbers(id_tag);
                let Some((logical_card, physical_card)) = cards else {
                    let _ = reply.send(Err(CommandError::Invalid(format!(
                        "{id_tag:?} is not a YKC card number (up to 16 decimal or hex digits)"
                    ))));
                    return Ok(());
                };
                let Some(serial) = self.issue_serial(gun) else {
                    let _ = reply.send(Err(CommandError::Closed));
                    return Ok(());
                };
                (
                    Message::RemoteStart(msg::RemoteStart {
                        serial,
                        charger: me,
                        gun: to_bcd(gun),
                        logical_card,
                        physical_card,
                        // 0.01 yuan; the platform does not keep accounts, so the screen shows
                        // a nominal balance.
                        balance: 100_000,
                    }),
                    types::REMOTE_START_REPLY,
                    PendingKind::RemoteStart {
                        serial,
                        gun,
                        id_tag: id_tag.clone(),
                    },
                    self.cfg.start_timeout,
                )
            }
            Command::RemoteStop { transaction_ref } => {
                let session = match self.find_session(transaction_ref).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = reply.send(Err(CommandError::Invalid(format!(
                            "session lookup failed: {e}"
                        ))));
                        return Ok(());
                    }
                };
                let Some(session) = session else {
                    let _ = reply.send(Err(CommandError::Invalid(format!(
                        "no session {transaction_ref:?} on this charger"
                    ))));
                    return Ok(());
                };
                let gun = u8::try_from(session.connector_id).unwrap_or(1);
                (
                    Message::RemoteStop {
                        charger: me,
                        gun: to_bcd(gun),
                    },
                    types::REMOTE_STOP_REPLY,
                    PendingKind::RemoteStop {
                        transaction_ref: transaction_ref.clone(),
                    },
                    timeout,
                )
            }
            Command::Reset { hard } => (
                Message::Reboot {
                    charger: me,
                    control: if *hard { 0x01 } else { 0x02 },
                },
                types::REBOOT_REPLY,
                PendingKind::Plain("reboot"),
                timeout,
            ),
            // YKC enables or disables the whole charger (work parameters, 0x52).
            Command::ChangeAvailability { available, .. } => (
                Message::WorkParams {
                    charger: me,
                    disable: u8::from(!*available),
                    max_power_percent: 100,
                },
                types::WORK_PARAMS_REPLY,
                PendingKind::Plain("work-params"),
                timeout,
            ),
            other => {
                let _ = reply.send(Err(unsupported(other)));
                return Ok(());
            }
        };
        let seq = self.seq();
        if let Err(e) = self.send(seq, &msg).await {
            tracing::info!(charger_id = self.id_str(), error = %e, "YKC send failed");
            let _ = reply.send(Err(CommandError::Closed));
            return Err("send failed");
        }
        tracing::info!(
            charger_id = self.id_str(),
            command = command.name(),
            frame_type = msg.frame_type(),
            seq,
            "YKC command sent"
        );
        self.pending = Some(Pending {
            expect,
            seq,
            kind,
            reply,
            deadline: Instant::now() + wait,
        });
        Ok(())
    }

    async fn on_command_reply(&mut self, seq: u16, reply: Message) {
        let frame_type = reply.frame_type();
        let Some(p) = self.pending.take_if(|p| p.expect == frame_type) else {
            tracing::warn!(
                charger_id = self.id_str(),
                frame_type,
                seq,
                "YKC answer with no command waiting ignored"
            );
            return;
        };
        if p.seq != seq {
            // Some firmware numbers its answers itself; the frame type is what correlates.
            tracing::debug!(
                charger_id = self.id_str(),
                sent = p.seq,
                got = seq,
                "YKC answer with another sequence number"
            );
        }
        let result = match (p.kind, reply) {
            (
                PendingKind::RemoteStart {
                    serial,
                    gun,
                    id_tag,
                },
                Message::RemoteStartReply(r),
            ) => {
                if r.result == 1 {
                    let now = self.gw.live.now();
                    match self
                        .start_session(serial, u32::from(gun), Some(id_tag), now, None)
                        .await
                    {
                        Ok(s) => Ok(CommandReply {
                            status: "Accepted".to_owned(),
                            response: json!({
                                "result": r.result,
                                "transaction_ref": serial.to_string(),
                                "session_id": s.id,
                            }),
                        }),
                        Err(e) => Err(CommandError::CallError {
                            code: "InternalError".to_owned(),
                            description: format!("started, but the session was not stored: {e}"),
                        }),
                    }
                } else {
                    Ok(CommandReply {
                        status: "Rejected".to_owned(),
                        response: json!({
                            "result": r.result,
                            "reason": r.reason,
                            "reason_text": start_failure(r.reason),
                            "transaction_ref": serial.to_string(),
                        }),
                    })
                }
            }
            (PendingKind::RemoteStop { transaction_ref }, Message::RemoteStopReply(r)) => {
                if r.result == 1 {
                    self.records_due.insert(
                        transaction_ref.clone(),
                        Instant::now() + self.cfg.record_timeout,
                    );
                }
                Ok(CommandReply {
                    status: if r.result == 1 {
                        "Accepted"
                    } else {
                        "Rejected"
                    }
                    .to_owned(),
                    response: json!({
                        "result": r.result,
                        "reason": r.reason,
                        "transaction_ref": transaction_ref,
                    }),
                })
            }
            (
                PendingKind::Plain(_),
                Message::RebootReply { result, .. } | Message::WorkParamsReply { result, .. },
            ) => Ok(CommandReply {
                status: if result == 1 { "Accepted" } else { "Rejected" }.to_owned(),
                response: json!({ "result": result }),
            }),
            (_, other) => Err(CommandError::CallError {
                code: "ProtocolError".to_owned(),
                description: format!("unexpected answer {:#04x}", other.frame_type()),
            }),
        };
        let _ = p.reply.send(result);
    }
}

fn start_failure(reason: u8) -> &'static str {
    match reason {
        0x01 => "charger id mismatch",
        0x02 => "gun already charging",
        0x03 => "charger fault",
        0x04 => "charger offline",
        0x05 => "gun not plugged in",
        _ => "unknown",
    }
}

/// An id tag as YKC card numbers: the logical card (BCD, shown on screen) and the physical card
/// (binary). Decimal tags fill both; hex tags are a physical card.
fn card_numbers(id_tag: &str) -> Option<([u8; 8], [u8; 8])> {
    if let Some(bcd) = digits_to_bcd::<8>(id_tag) {
        return Some((bcd, bcd));
    }
    if id_tag.is_empty() || id_tag.len() > 16 || !id_tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{id_tag:0>16}");
    let mut physical = [0u8; 8];
    for (i, chunk) in padded.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        physical[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(([0; 8], physical))
}

/// The charger id a charger-sent body names, for checking it against the logged-in one.
fn body_charger(m: &Message) -> Option<ChargerId> {
    Some(match m {
        Message::Heartbeat { charger, .. }
        | Message::BillingCheck { charger, .. }
        | Message::BillingRequest { charger }
        | Message::TimeSyncReply { charger, .. }
        | Message::RebootReply { charger, .. }
        | Message::WorkParamsReply { charger, .. }
        | Message::BillingSetReply { charger, .. } => *charger,
        Message::Realtime(r) => r.charger,
        Message::StartRequest(r) => r.charger,
        Message::RemoteStartReply(r) => r.charger,
        Message::RemoteStopReply(r) => r.charger,
        Message::TransactionRecord(r) => r.charger,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_into_the_model() {
        assert_eq!(map_status(2, 0).0, ConnectorStatus::Available);
        assert_eq!(map_status(2, 1).0, ConnectorStatus::Occupied);
        assert_eq!(map_status(3, 1).0, ConnectorStatus::Charging);
        assert_eq!(map_status(1, 0).0, ConnectorStatus::Faulted);
        assert_eq!(map_status(0, 0).0, ConnectorStatus::Offline);
    }

    #[test]
    fn tariff_spec_builds_the_wire_tariff_and_names_bad_fields() {
        let t = TariffSpec::default().to_tariff().unwrap();
        assert_eq!(t.model, [0x00, 0x01]);
        assert_eq!(t.rates[0].energy, 130_000);
        assert_eq!(t.rates[3].service, 40_000);
        assert_eq!(t.periods[0], 3, "00:00 is valley");
        assert_eq!(t.periods[2 * 18], 0, "18:00 is sharp");
        let half = TariffSpec {
            model: 1234,
            hours: "v".repeat(47) + "s",
            ..TariffSpec::default()
        }
        .to_tariff()
        .unwrap();
        assert_eq!(half.model, [0x12, 0x34]);
        assert_eq!((half.periods[46], half.periods[47]), (3, 0));
        let err = |spec: TariffSpec| spec.to_tariff().unwrap_err();
        assert!(
            err(TariffSpec {
                hours: "vvv".into(),
                ..TariffSpec::default()
            })
            .contains("24 letters")
        );
        assert!(
            err(TariffSpec {
                hours: "x".repeat(24),
                ..TariffSpec::default()
            })
            .contains("position 1")
        );
        assert!(
            err(TariffSpec {
                peak: -1.0,
                ..TariffSpec::default()
            })
            .contains("peak")
        );
        assert!(
            err(TariffSpec {
                service: f64::NAN,
                ..TariffSpec::default()
            })
            .contains("service")
        );
        assert!(
            err(TariffSpec {
                model: 10_000,
                ..TariffSpec::default()
            })
            .contains("model")
        );
    }

    #[test]
    fn tariff_prices_time_of_use_lines() {
        let t = Tariff::default();
        let mut tou = [msg::TouLine::default(); 4];
        tou[3].energy = 100_000; // 10 kWh at valley: 10 * (0.30 + 0.40)
        tou[0].energy = 10_000; // 1 kWh at sharp: 1.30 + 0.40
        assert!((t.price(&tou) - 8.7).abs() < 1e-9);
        assert_eq!(t.periods[0], 3);
        assert_eq!(t.periods[36], 0);
    }

    #[test]
    fn card_numbers_from_id_tags() {
        let (l, p) = card_numbers("1000000573").unwrap();
        assert_eq!(l, [0, 0, 0, 0x10, 0, 0, 0x05, 0x73]);
        assert_eq!(l, p);
        let (l, p) = card_numbers("D14B0A54").unwrap();
        assert_eq!(l, [0; 8]);
        assert_eq!(p, [0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x54]);
        assert!(card_numbers("not a card").is_none());
        assert!(card_numbers("12345678901234567").is_none());
    }

    #[test]
    fn stored_keys_parse_as_two_or_three_key_3des() {
        assert!(parse_key("00112233445566778899aabbccddeeff").is_some());
        assert!(parse_key(&"0123456789abcdef".repeat(3)).is_some());
        assert!(parse_key("0011").is_none());
        assert!(parse_key("zz112233445566778899aabbccddeeff").is_none());
        assert!(parse_key("0011223344556677889").is_none());
        assert!(parse_key("é0112233445566778899aabbccddeef").is_none());
    }

    #[test]
    fn beijing_time_round_trip() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T02:30:15Z")
            .unwrap()
            .with_timezone(&Utc);
        let cp = to_cp56(t);
        assert_eq!(cp.0[3], 10); // 10:30 in Beijing
        assert_eq!(to_utc(cp), Some(t));
    }
}
