//! The fleet's YKC (云快充) chargers: the same traffic commands as the OCPP chargers, turned
//! into YKC frames over TCP through [`YkcCharger`]. A charger logs in, heartbeats every 10 s
//! real (the platform gives up after 30 s), reports real-time data (0x13) on every status
//! change and periodically while charging, and on unplug sends the transaction record (0x3B)
//! until the platform acknowledges it (0x40). Records of sessions that ended while offline wait
//! and are sent after the next login.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Result, bail};
use chrono::{DateTime, Duration, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;

use chargeops_core::Clock;
use chargeops_ykc::msg::{self, Message, TouLine};
use chargeops_ykc::{ChargerId, Cp56Time, Serial};

use crate::drive::{Cmd, FleetStats, commands_until, connect_while_applying, dec, inc};
use crate::traffic::cst;
use crate::ykc::YkcCharger;

const GUN: u8 = 1;
/// The protocol's heartbeat period, in real time (the platform's timeout is real time too).
const HEARTBEAT: StdDuration = StdDuration::from_secs(10);
/// How long an answer (login, heartbeat, record acknowledgement) may take.
const ANSWER: StdDuration = StdDuration::from_secs(15);
/// Real-time status values.
const FAULT: u8 = 0x01;
const IDLE: u8 = 0x02;
const CHARGING: u8 = 0x03;
/// Stop reasons of the record: stopped at the charger, and a fault (vendor range).
const STOP_LOCAL: u8 = 0x45;
const STOP_FAULT: u8 = 0x6A;
/// The platform's default time-of-use prices (energy plus service, 0.00001 yuan/kWh) for
/// sharp, peak, flat and valley, and the hours they apply to in Beijing time.
const PRICES: [u32; 4] = [170_000, 140_000, 110_000, 70_000];

fn period(t: DateTime<Utc>) -> usize {
    use chrono::Timelike;
    match t.with_timezone(&cst()).hour() {
        0..=6 => 3,
        7..=9 | 14..=16 => 1,
        17..=20 => 0,
        _ => 2,
    }
}

/// Splits a session's energy (0.0001 kWh, delivered evenly) over the time-of-use lines.
fn tou_lines(start: DateTime<Utc>, end: DateTime<Utc>, energy: u32) -> [TouLine; 4] {
    let mut e = [0u64; 4];
    let (from, to) = (start.timestamp_millis(), end.timestamp_millis());
    let total = to - from;
    if total <= 0 {
        e[period(start)] = u64::from(energy);
    } else {
        // Periods change on the hour; Beijing time is a whole number of hours from UTC.
        let mut t = from;
        while t < to {
            let next = (t - t.rem_euclid(3_600_000) + 3_600_000).min(to);
            let at = DateTime::from_timestamp_millis(t).unwrap_or(start);
            e[period(at)] += u64::from(energy) * (next - t) as u64 / total as u64;
            t = next;
        }
        let rest = u64::from(energy).saturating_sub(e.iter().sum());
        e[period(start)] += rest;
    }
    let mut lines = [TouLine::default(); 4];
    for (i, line) in lines.iter_mut().enumerate() {
        let energy = e[i] as u32;
        *line = TouLine {
            unit_price: PRICES[i],
            energy,
            lossy_energy: energy,
            amount: (u64::from(energy) * u64::from(PRICES[i]) / 100_000) as u32,
        };
    }
    lines
}

/// A time as the charger's clock shows it: Beijing wall-clock time.
fn cp56(t: DateTime<Utc>) -> Cp56Time {
    Cp56Time::from_naive(t.with_timezone(&cst()).naive_local())
}

pub(crate) struct SimYkcCharger {
    pub id: ChargerId,
    pub addr: SocketAddr,
    pub power_kw: f64,
    pub stats: Arc<FleetStats>,
    pub connect_limit: Arc<tokio::sync::Semaphore>,
    pub clock: Clock,
}

/// The session running on the gun.
struct Running {
    serial: Serial,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    start_register_wh: i64,
    energy_wh: i64,
}

impl Running {
    fn register_at(&self, t: DateTime<Utc>) -> i64 {
        let total = (self.end - self.start).num_milliseconds().max(1) as f64;
        let done = ((t - self.start).num_milliseconds() as f64 / total).clamp(0.0, 1.0);
        self.start_register_wh + (self.energy_wh as f64 * done).round() as i64
    }
}

struct State {
    register_wh: i64,
    session: Option<Running>,
    status: u8,
    counter: u16,
    offline_until: Option<DateTime<Utc>>,
    /// Transaction records not yet acknowledged, oldest first.
    records: VecDeque<msg::TransactionRecord>,
}

impl SimYkcCharger {
    pub(crate) async fn run(self, mut rx: mpsc::Receiver<Cmd>) {
        let digits = self.id.to_string();
        let seed: i64 = digits[digits.len() - 7..].parse().unwrap_or_default();
        let mut state = State {
            register_wh: 1_000_000 + (seed * 7919) % 4_000_000,
            session: None,
            status: IDLE,
            counter: (seed % 10_000) as u16,
            offline_until: None,
            records: VecDeque::new(),
        };
        let mut backoff = StdDuration::from_millis(500);
        loop {
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
            let Some(connected) =
                connect_while_applying(&self.connect_limit, &mut rx, self.connect(), |cmd| {
                    self.apply(&mut state, cmd)
                })
                .await
            else {
                return;
            };
            if connected.is_ok() && state.offline_until.is_some() {
                // Told to drop offline while logging in.
                continue;
            }
            let outcome = match connected {
                Ok(mut ch) => {
                    backoff = StdDuration::from_millis(500);
                    inc(&self.stats.connected);
                    let outcome = self.online(&mut ch, &mut state, &mut rx).await;
                    dec(&self.stats.connected);
                    outcome
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(true) => inc(&self.stats.reconnects),
                Ok(false) => return,
                Err(e) => {
                    inc(&self.stats.errors);
                    tracing::debug!(charger_id = %self.id, error = %e, ?backoff, "YKC connection failed; reconnecting");
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

    async fn connect(&self) -> Result<YkcCharger> {
        let mut ch = YkcCharger::connect(&self.addr.to_string(), self.id).await?;
        if !ch.login(1, ANSWER).await? {
            bail!("login not accepted");
        }
        ch.received.clear();
        Ok(ch)
    }

    /// Applies commands without a connection until `deadline`; false when the fleet stopped.
    async fn offline_until(
        &self,
        state: &mut State,
        rx: &mut mpsc::Receiver<Cmd>,
        deadline: Instant,
    ) -> bool {
        commands_until(rx, deadline, |cmd| self.apply(state, cmd)).await
    }

    /// Serves one connection. `Ok(true)`: disconnect on purpose; `Ok(false)`: the fleet stopped.
    async fn online(
        &self,
        ch: &mut YkcCharger,
        state: &mut State,
        rx: &mut mpsc::Receiver<Cmd>,
    ) -> Result<bool> {
        self.realtime(ch, state).await?;
        self.flush(ch, state).await?;
        let mut beat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        let meter_every = self
            .clock
            .real_duration(Duration::minutes(1))
            .max(StdDuration::from_secs(5));
        let mut meter = tokio::time::interval_at(Instant::now() + meter_every, meter_every);
        loop {
            enum Wake {
                Cmd(Option<Cmd>),
                Read(std::result::Result<(), crate::ykc::YkcClientError>),
                Beat,
                Meter,
            }
            let wake = tokio::select! {
                c = rx.recv() => Wake::Cmd(c),
                r = ch.fill() => Wake::Read(r),
                _ = beat.tick() => Wake::Beat,
                _ = meter.tick() => Wake::Meter,
            };
            match wake {
                Wake::Cmd(None) => return Ok(false),
                Wake::Cmd(Some(Cmd::Disconnect { until })) => {
                    state.offline_until = Some(until);
                    return Ok(true);
                }
                Wake::Cmd(Some(cmd)) => {
                    self.apply(state, cmd);
                    self.realtime(ch, state).await?;
                    self.flush(ch, state).await?;
                }
                Wake::Read(r) => {
                    r?;
                    ch.drain().await?;
                }
                Wake::Beat => {
                    ch.heartbeat(GUN, ANSWER).await?;
                    ch.received.clear();
                    ch.started.clear();
                }
                Wake::Meter => {
                    if state.session.is_some() {
                        self.realtime(ch, state).await?;
                    }
                }
            }
        }
    }

    /// The traffic's command, applied to the charger's state; records wait in the queue.
    fn apply(&self, state: &mut State, cmd: Cmd) {
        let now = self.clock.now();
        match cmd {
            Cmd::Plug {
                duration,
                energy_wh,
                at,
                ..
            } => {
                state.counter = (state.counter + 1) % 10_000;
                let start = at.min(now);
                state.session = Some(Running {
                    serial: Serial::issue(self.id, GUN, stamp(now), state.counter),
                    start,
                    end: start + duration,
                    start_register_wh: state.register_wh,
                    energy_wh,
                });
                state.status = CHARGING;
                inc(&self.stats.sessions_started);
            }
            Cmd::Unplug | Cmd::Fault { .. } => {
                let fault = matches!(cmd, Cmd::Fault { .. });
                if let Some(s) = state.session.take() {
                    let register = s.register_at(now);
                    state.register_wh = register;
                    state
                        .records
                        .push_back(self.record(&s, now, register, fault));
                    inc(&self.stats.sessions_completed);
                    self.stats.energy_wh.fetch_add(
                        (register - s.start_register_wh).max(0) as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
                state.status = if fault { FAULT } else { IDLE };
            }
            Cmd::Repair => state.status = IDLE,
            Cmd::Disconnect { until } => {
                state.offline_until = Some(state.offline_until.map_or(until, |u| u.max(until)));
            }
        }
    }

    fn record(
        &self,
        s: &Running,
        end: DateTime<Utc>,
        register_wh: i64,
        fault: bool,
    ) -> msg::TransactionRecord {
        let energy = ((register_wh - s.start_register_wh).max(0) * 10) as u32;
        let tou = tou_lines(s.start, end, energy);
        msg::TransactionRecord {
            serial: s.serial,
            charger: self.id,
            gun: GUN,
            started: cp56(s.start),
            ended: cp56(end),
            tou,
            meter_start: (s.start_register_wh.max(0) * 10) as u64,
            meter_stop: (register_wh.max(0) * 10) as u64,
            energy,
            lossy_energy: energy,
            amount: tou.iter().map(|l| l.amount).sum(),
            vin: [0; 17],
            start_kind: 2,
            traded_at: cp56(end),
            stop_reason: if fault { STOP_FAULT } else { STOP_LOCAL },
            physical_card: [0; 8],
        }
    }

    /// Real-time data (0x13) of the gun as it is now.
    async fn realtime(&self, ch: &mut YkcCharger, state: &State) -> Result<()> {
        let now = self.clock.now();
        let (serial, energy, minutes, soc) = match &state.session {
            Some(s) => {
                let wh = (s.register_at(now) - s.start_register_wh).max(0);
                let minutes = (now - s.start).num_minutes().clamp(0, 65_535) as u16;
                let total = (s.end - s.start).num_milliseconds().max(1) as f64;
                let done = ((now - s.start).num_milliseconds() as f64 / total).clamp(0.0, 1.0);
                (
                    s.serial,
                    (wh * 10) as u32,
                    minutes,
                    20 + (60.0 * done) as u8,
                )
            }
            None => (Serial::ZERO, 0, 0, 0),
        };
        let charging = state.status == CHARGING;
        // Volts and amps (0.1 units) for the charger's power at about 750 V.
        let current = (self.power_kw * 0.85 * 1000.0 / 750.0 * 10.0) as u16;
        let m = Message::Realtime(msg::Realtime {
            serial,
            charger: self.id,
            gun: GUN,
            status: state.status,
            homed: u8::from(!charging),
            plugged: u8::from(charging),
            voltage: if charging { 7500 } else { 0 },
            current: if charging { current } else { 0 },
            gun_temp: 75,
            gun_code: [0; 8],
            soc,
            battery_temp: 80,
            charged_minutes: minutes,
            remaining_minutes: 0,
            energy,
            lossy_energy: energy,
            amount: 0,
            faults: u16::from(state.status == FAULT),
        });
        ch.send(&m).await?;
        Ok(())
    }

    /// Sends the waiting transaction records, each until acknowledged.
    async fn flush(&self, ch: &mut YkcCharger, state: &mut State) -> Result<()> {
        while let Some(record) = state.records.front() {
            let result = ch.record(record.clone(), ANSWER).await?;
            if result != 0 {
                tracing::debug!(charger_id = %self.id, result, "transaction record refused");
            }
            state.records.pop_front();
            ch.received.clear();
        }
        Ok(())
    }
}

/// yyMMddHHmmss of a time in Beijing, as a serial carries it.
fn stamp(t: DateTime<Utc>) -> [u8; 6] {
    use chrono::{Datelike, Timelike};
    let l = t.with_timezone(&cst());
    [
        (l.year().rem_euclid(100)) as u8,
        l.month() as u8,
        l.day() as u8,
        l.hour() as u8,
        l.minute() as u8,
        l.second() as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn energy_is_split_over_the_time_of_use_lines() {
        // 06:30 to 07:30 Beijing: half valley, half peak.
        let start = cst()
            .with_ymd_and_hms(2027, 2, 1, 6, 30, 0)
            .single()
            .expect("time")
            .with_timezone(&Utc);
        let lines = tou_lines(start, start + Duration::hours(1), 100_001);
        assert_eq!(lines.iter().map(|l| l.energy).sum::<u32>(), 100_001);
        assert_eq!(lines[1].energy, 50_000);
        assert_eq!(lines[3].energy, 50_001);
        assert_eq!(lines[0].energy + lines[2].energy, 0);
        // 10 kWh at 1.40 yuan: 7 yuan, in 0.0001 yuan.
        assert_eq!(lines[1].amount, 70_000);
    }
}
