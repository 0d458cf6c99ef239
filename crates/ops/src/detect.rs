//! Fault detection over the network's events and the passing of time.
//!
//! The detector keeps a small amount of state per charger (online since, connector statuses,
//! running sessions' last energy, recent boots and command failures) and turns events and
//! ticks into [`Signal`]s. It reports rising edges only: a charger that stays offline is one
//! `offline` problem, not one per missed heartbeat; a connector that stays faulted is one
//! `faulted` problem. Deduplication against cases already open is the case book's job
//! ([`crate::cases`]), since problems outlive a restart and the detector does not.
//!
//! Time comes in from outside (`now`, the platform clock); a charger's own timestamps are used
//! only for the spacing of its meter readings.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Duration, Utc};

use chargeops_core::{ConnectorStatus, Event};

use crate::config::OpsConfig;
use crate::model::CaseKind;

/// A problem the platform found by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub charger_id: String,
    pub station_id: String,
    pub kind: CaseKind,
    /// The outlet concerned, when the problem is one outlet's.
    pub connector_id: Option<u32>,
    pub error_code: Option<String>,
    /// One line for people: "connector 1 faulted (GroundFailure)".
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    Problem(Problem),
    /// The condition behind an earlier problem is gone (the connector is no longer faulted, the
    /// charger is back online, the session moves again). Not yet proof of repair.
    Cleared {
        charger_id: String,
        kind: CaseKind,
        connector_id: Option<u32>,
        detail: String,
        at: DateTime<Utc>,
    },
    /// A session delivered energy: the proof that a charger works again.
    Working {
        charger_id: String,
        connector_id: u32,
        session_id: i64,
        /// When the session started, if the detector saw it start.
        started_at: Option<DateTime<Utc>>,
        energy_wh: i64,
        at: DateTime<Utc>,
    },
}

#[derive(Debug)]
struct SessionTrack {
    evse: u32,
    started_at: DateTime<Utc>,
    /// Last energy register reading and the charger's time of it.
    last_energy: Option<(i64, DateTime<Utc>)>,
    /// Platform time of the last sign of progress (start, charging began, energy rose).
    progress_at: DateTime<Utc>,
    /// Readings since then that showed no increase: the evidence of a stuck session (a meter
    /// that reports rarely is not stuck).
    flat_readings: u32,
    /// Platform time of the last reading.
    reading_at: Option<DateTime<Utc>>,
    stuck: bool,
    anomaly: bool,
}

#[derive(Debug, Default)]
struct ChargerTrack {
    station_id: String,
    online: bool,
    offline_since: Option<DateTime<Utc>>,
    connectors: HashMap<u32, ConnectorStatus>,
    sessions: HashMap<i64, SessionTrack>,
    boots: VecDeque<DateTime<Utc>>,
    failures: VecDeque<DateTime<Utc>>,
    /// Problems raised and not cleared: (kind, outlet).
    active: HashSet<(CaseKind, Option<u32>)>,
}

/// Sessions with no news for this long are forgotten (their stop was lost).
const SESSION_FORGET: i64 = 48 * 3600;

pub struct Detector {
    config: OpsConfig,
    chargers: HashMap<String, ChargerTrack>,
}

fn secs(n: u64) -> Duration {
    Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 2_000))
}

impl Detector {
    pub fn new(config: OpsConfig) -> Self {
        Detector {
            config,
            chargers: HashMap::new(),
        }
    }

    pub fn config(&self) -> &OpsConfig {
        &self.config
    }

    fn track(&mut self, charger_id: &str, station_id: &str) -> &mut ChargerTrack {
        let t = self.chargers.entry(charger_id.to_owned()).or_default();
        if t.station_id != station_id {
            t.station_id = station_id.to_owned();
        }
        t
    }

    /// Whether a problem of `kind` (on `connector`, or on any outlet when `None`) is still
    /// going on at the charger as far as the detector knows.
    pub fn is_active(&self, charger_id: &str, kind: CaseKind, connector: Option<u32>) -> bool {
        let Some(t) = self.chargers.get(charger_id) else {
            return false;
        };
        match connector {
            Some(_) => t.active.contains(&(kind, connector)),
            None => t.active.iter().any(|(k, _)| *k == kind),
        }
    }

    /// Takes a charger the platform knows but that is not connected at `since` (the platform
    /// has just started) as offline from then: if it never connects, the offline rule opens a
    /// case `offline_after_secs` later, as it would have for a charger seen dropping. A charger
    /// already tracked keeps what the detector saw.
    pub fn assume_offline(&mut self, charger_id: &str, station_id: &str, since: DateTime<Utc>) {
        if self.chargers.contains_key(charger_id) {
            return;
        }
        let t = self.track(charger_id, station_id);
        t.online = false;
        t.offline_since = Some(since);
    }

    /// Feeds one event seen at platform time `now`.
    pub fn on_event(&mut self, event: &Event, now: DateTime<Utc>) -> Vec<Signal> {
        let mut out = Vec::new();
        match event {
            Event::ChargerOnline {
                charger_id,
                station_id,
                ..
            } => {
                let t = self.track(charger_id, station_id);
                t.online = true;
                t.offline_since = None;
                if t.active.remove(&(CaseKind::Offline, None)) {
                    out.push(Signal::Cleared {
                        charger_id: charger_id.clone(),
                        kind: CaseKind::Offline,
                        connector_id: None,
                        detail: "charger connected again".into(),
                        at: now,
                    });
                }
            }
            Event::ChargerOffline {
                charger_id,
                station_id,
                ..
            } => {
                let t = self.track(charger_id, station_id);
                t.online = false;
                t.offline_since.get_or_insert(now);
            }
            Event::StatusChanged {
                charger_id,
                station_id,
                evse_id,
                status,
                error_code,
                ..
            } => {
                let t = self.track(charger_id, station_id);
                // A status report means the charger is talking to us.
                t.online = true;
                t.offline_since = None;
                let before = t.connectors.insert(*evse_id, *status);
                let key = (CaseKind::Faulted, Some(*evse_id));
                if *status == ConnectorStatus::Faulted {
                    if t.active.insert(key) {
                        let detail = match error_code {
                            Some(code) => format!("connector {evse_id} faulted ({code})"),
                            None => format!("connector {evse_id} faulted"),
                        };
                        out.push(Signal::Problem(Problem {
                            charger_id: charger_id.clone(),
                            station_id: station_id.clone(),
                            kind: CaseKind::Faulted,
                            connector_id: Some(*evse_id),
                            error_code: error_code.clone(),
                            detail,
                            at: now,
                        }));
                    }
                } else if *status != ConnectorStatus::Offline && t.active.remove(&key) {
                    out.push(Signal::Cleared {
                        charger_id: charger_id.clone(),
                        kind: CaseKind::Faulted,
                        connector_id: Some(*evse_id),
                        detail: format!("connector {evse_id} reports {}", status.as_str()),
                        at: now,
                    });
                }
                if *status == ConnectorStatus::Charging && before != Some(ConnectorStatus::Charging)
                {
                    for s in t.sessions.values_mut().filter(|s| s.evse == *evse_id) {
                        s.progress_at = now;
                        s.flat_readings = 0;
                    }
                }
            }
            Event::SessionStarted {
                session_id,
                charger_id,
                station_id,
                evse_id,
                at,
                ..
            } => {
                let t = self.track(charger_id, station_id);
                t.sessions.insert(
                    *session_id,
                    SessionTrack {
                        evse: *evse_id,
                        started_at: *at,
                        last_energy: None,
                        progress_at: now,
                        flat_readings: 0,
                        reading_at: None,
                        stuck: false,
                        anomaly: false,
                    },
                );
            }
            Event::MeterReading {
                charger_id,
                station_id,
                evse_id,
                session_id,
                energy_wh,
                power_w,
                at,
            } => {
                let cap_w = self.config.max_power_kw * 1000.0;
                let t = self.track(charger_id, station_id);
                let Some(s) = session_id.and_then(|id| t.sessions.get_mut(&id)) else {
                    return out;
                };
                let mut anomaly = None;
                if let Some(p) = power_w.filter(|p| *p > cap_w) {
                    anomaly = Some(format!(
                        "power {:.0} kW above the plausible {:.0} kW",
                        p / 1000.0,
                        cap_w / 1000.0
                    ));
                }
                s.reading_at = Some(now);
                if let Some(e) = *energy_wh {
                    let before = s.flat_readings;
                    s.flat_readings = s.flat_readings.saturating_add(1);
                    match s.last_energy {
                        Some((prev, _)) if e < prev => {
                            anomaly = Some(format!(
                                "energy register went backwards from {prev} Wh to {e} Wh"
                            ));
                        }
                        Some((prev, prev_at)) if e > prev => {
                            let dt = (*at - prev_at).num_milliseconds() as f64 / 3_600_000.0;
                            // Readings closer than 30 s apart say little about power.
                            if dt >= 30.0 / 3600.0 {
                                let w = (e - prev) as f64 / dt;
                                if w > cap_w * 1.1 {
                                    anomaly = Some(format!(
                                        "energy rose {} Wh in {:.0} s: {:.0} kW, above the plausible {:.0} kW",
                                        e - prev,
                                        dt * 3600.0,
                                        w / 1000.0,
                                        cap_w / 1000.0
                                    ));
                                }
                            }
                            s.progress_at = now;
                            s.flat_readings = 0;
                            if s.stuck {
                                s.stuck = false;
                                t.active.remove(&(CaseKind::StuckSession, Some(s.evse)));
                                out.push(Signal::Cleared {
                                    charger_id: charger_id.clone(),
                                    kind: CaseKind::StuckSession,
                                    connector_id: Some(s.evse),
                                    detail: "energy is rising again".into(),
                                    at: now,
                                });
                            }
                        }
                        // The first reading sets the baseline; it shows nothing yet.
                        None => s.flat_readings = before,
                        _ => {}
                    }
                    if s.last_energy.is_none_or(|(_, prev_at)| *at >= prev_at) {
                        s.last_energy = Some((e, *at));
                    }
                }
                // One anomaly case per session: a meter that is wrong stays wrong.
                if let Some(detail) = anomaly
                    && !s.anomaly
                {
                    s.anomaly = true;
                    out.push(Signal::Problem(Problem {
                        charger_id: charger_id.clone(),
                        station_id: station_id.clone(),
                        kind: CaseKind::MeterAnomaly,
                        connector_id: Some(*evse_id),
                        error_code: None,
                        detail: format!("session {}: {detail}", session_id.unwrap_or_default()),
                        at: now,
                    }));
                }
            }
            Event::SessionStopped {
                session_id,
                charger_id,
                station_id,
                evse_id,
                energy_wh,
                ..
            } => {
                let t = self.track(charger_id, station_id);
                let track = t.sessions.remove(session_id);
                if track.as_ref().is_some_and(|s| s.stuck)
                    && t.active.remove(&(CaseKind::StuckSession, Some(*evse_id)))
                {
                    out.push(Signal::Cleared {
                        charger_id: charger_id.clone(),
                        kind: CaseKind::StuckSession,
                        connector_id: Some(*evse_id),
                        detail: format!("session {session_id} ended"),
                        at: now,
                    });
                }
                let energy = energy_wh.unwrap_or(0);
                if energy > 0 && !track.as_ref().is_some_and(|s| s.anomaly) {
                    out.push(Signal::Working {
                        charger_id: charger_id.clone(),
                        connector_id: *evse_id,
                        session_id: *session_id,
                        started_at: track.map(|s| s.started_at),
                        energy_wh: energy,
                        at: now,
                    });
                }
            }
            Event::ChargerBooted {
                charger_id,
                station_id,
                ..
            } => {
                let (limit, window) = (self.config.reboots, secs(self.config.reboot_window_secs));
                let t = self.track(charger_id, station_id);
                t.boots.push_back(now);
                while t.boots.front().is_some_and(|b| now - *b > window) {
                    t.boots.pop_front();
                }
                if t.boots.len() >= limit as usize && t.active.insert((CaseKind::RebootLoop, None))
                {
                    out.push(Signal::Problem(Problem {
                        charger_id: charger_id.clone(),
                        station_id: station_id.clone(),
                        kind: CaseKind::RebootLoop,
                        connector_id: None,
                        error_code: None,
                        detail: format!(
                            "{} boots within {} min",
                            t.boots.len(),
                            window.num_minutes().max(1)
                        ),
                        at: now,
                    }));
                }
            }
            Event::CommandFailed {
                charger_id,
                station_id,
                command,
                reason,
                ..
            } => {
                let (limit, window) = (
                    self.config.command_failures,
                    secs(self.config.command_failure_window_secs),
                );
                let t = self.track(charger_id, station_id);
                t.failures.push_back(now);
                while t.failures.front().is_some_and(|b| now - *b > window) {
                    t.failures.pop_front();
                }
                if t.failures.len() >= limit as usize
                    && t.active.insert((CaseKind::CommandFailures, None))
                {
                    out.push(Signal::Problem(Problem {
                        charger_id: charger_id.clone(),
                        station_id: station_id.clone(),
                        kind: CaseKind::CommandFailures,
                        connector_id: None,
                        error_code: None,
                        detail: format!(
                            "{} failed commands within {} min, the last {command}: {reason}",
                            t.failures.len(),
                            window.num_minutes().max(1)
                        ),
                        at: now,
                    }));
                }
            }
            Event::QueueChanged { .. }
            | Event::CaseChanged { .. }
            | Event::LotChanged { .. }
            | Event::UnitsPlanned { .. }
            | Event::UnitMoved { .. } => {}
        }
        out
    }

    /// Evaluates the time-based rules at platform time `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Signal> {
        let offline_after = secs(self.config.offline_after_secs);
        let stuck_after = secs(self.config.stuck_after_secs);
        let reboot_window = secs(self.config.reboot_window_secs);
        let failure_window = secs(self.config.command_failure_window_secs);
        let mut out = Vec::new();
        for (id, t) in &mut self.chargers {
            if !t.online
                && let Some(since) = t.offline_since
                && now - since >= offline_after
                && t.active.insert((CaseKind::Offline, None))
            {
                out.push(Signal::Problem(Problem {
                    charger_id: id.clone(),
                    station_id: t.station_id.clone(),
                    kind: CaseKind::Offline,
                    connector_id: None,
                    error_code: None,
                    detail: format!(
                        "not connected for {} min (since {})",
                        (now - since).num_minutes(),
                        since.format("%Y-%m-%d %H:%M UTC")
                    ),
                    at: now,
                }));
            }
            if t.online {
                for (sid, s) in &mut t.sessions {
                    let charging = t.connectors.get(&s.evse) == Some(&ConnectorStatus::Charging);
                    // Stuck: readings kept coming and showed no energy for the whole time, or
                    // none came at all for twice as long (a meter gone silent mid-charge).
                    let flat = s.flat_readings >= 2 && now - s.progress_at >= stuck_after;
                    let silent = now - s.reading_at.unwrap_or(s.progress_at).max(s.progress_at)
                        >= stuck_after * 2;
                    if charging
                        && !s.stuck
                        && (flat || silent)
                        && t.active.insert((CaseKind::StuckSession, Some(s.evse)))
                    {
                        s.stuck = true;
                        out.push(Signal::Problem(Problem {
                            charger_id: id.clone(),
                            station_id: t.station_id.clone(),
                            kind: CaseKind::StuckSession,
                            connector_id: Some(s.evse),
                            error_code: None,
                            detail: format!(
                                "session {sid} charging with no energy for {} min",
                                (now - s.progress_at).num_minutes()
                            ),
                            at: now,
                        }));
                    }
                }
            }
            t.sessions
                .retain(|_, s| now - s.progress_at < Duration::seconds(SESSION_FORGET));
            for (window, queue, kind) in [
                (reboot_window, &mut t.boots, CaseKind::RebootLoop),
                (failure_window, &mut t.failures, CaseKind::CommandFailures),
            ] {
                while queue.front().is_some_and(|b| now - *b > window) {
                    queue.pop_front();
                }
                if queue.is_empty() && t.active.remove(&(kind, None)) {
                    out.push(Signal::Cleared {
                        charger_id: id.clone(),
                        kind,
                        connector_id: None,
                        detail: format!("quiet for {} min", window.num_minutes().max(1)),
                        at: now,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2027-02-05T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn m(n: i64) -> DateTime<Utc> {
        t0() + Duration::minutes(n)
    }

    fn cfg() -> OpsConfig {
        OpsConfig {
            offline_after_secs: 600,
            stuck_after_secs: 900,
            max_power_kw: 350.0,
            command_failures: 3,
            command_failure_window_secs: 3600,
            reboots: 3,
            reboot_window_secs: 600,
            ..OpsConfig::default()
        }
    }

    fn status(s: ConnectorStatus, code: Option<&str>) -> Event {
        Event::StatusChanged {
            charger_id: "CP1".into(),
            station_id: "S1".into(),
            evse_id: 1,
            connector_id: 1,
            status: s,
            previous: None,
            error_code: code.map(Into::into),
            at: t0(),
        }
    }

    fn online(on: bool) -> Event {
        if on {
            Event::ChargerOnline {
                charger_id: "CP1".into(),
                station_id: "S1".into(),
                protocol: "ocpp1.6".into(),
                at: t0(),
            }
        } else {
            Event::ChargerOffline {
                charger_id: "CP1".into(),
                station_id: "S1".into(),
                at: t0(),
            }
        }
    }

    fn started(id: i64) -> Event {
        Event::SessionStarted {
            session_id: id,
            charger_id: "CP1".into(),
            station_id: "S1".into(),
            evse_id: 1,
            connector_id: 1,
            id_tag: None,
            at: t0(),
        }
    }

    fn stopped(id: i64, wh: i64) -> Event {
        Event::SessionStopped {
            session_id: id,
            charger_id: "CP1".into(),
            station_id: "S1".into(),
            evse_id: 1,
            connector_id: 1,
            energy_wh: Some(wh),
            reason: None,
            cost: None,
            at: t0(),
        }
    }

    fn meter(id: i64, wh: i64, at: DateTime<Utc>, power_w: Option<f64>) -> Event {
        Event::MeterReading {
            charger_id: "CP1".into(),
            station_id: "S1".into(),
            evse_id: 1,
            session_id: Some(id),
            energy_wh: Some(wh),
            power_w,
            at,
        }
    }

    fn problems(signals: &[Signal]) -> Vec<(CaseKind, Option<u32>)> {
        signals
            .iter()
            .filter_map(|s| match s {
                Signal::Problem(p) => Some((p.kind, p.connector_id)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn faulted_once_per_episode_and_cleared() {
        let mut d = Detector::new(cfg());
        d.on_event(&online(true), m(0));
        let s = d.on_event(
            &status(ConnectorStatus::Faulted, Some("GroundFailure")),
            m(1),
        );
        assert_eq!(problems(&s), [(CaseKind::Faulted, Some(1))]);
        let Signal::Problem(p) = &s[0] else {
            panic!("not a problem")
        };
        assert_eq!(p.error_code.as_deref(), Some("GroundFailure"));
        assert_eq!(p.detail, "connector 1 faulted (GroundFailure)");
        // The same fault reported again is not a new problem.
        assert!(
            d.on_event(&status(ConnectorStatus::Faulted, None), m(2))
                .is_empty()
        );
        assert!(d.is_active("CP1", CaseKind::Faulted, Some(1)));
        let s = d.on_event(&status(ConnectorStatus::Available, None), m(3));
        assert!(matches!(
            s.as_slice(),
            [Signal::Cleared {
                kind: CaseKind::Faulted,
                ..
            }]
        ));
        assert!(!d.is_active("CP1", CaseKind::Faulted, None));
        // A new episode is a new problem.
        let s = d.on_event(&status(ConnectorStatus::Faulted, None), m(4));
        assert_eq!(problems(&s), [(CaseKind::Faulted, Some(1))]);
    }

    #[test]
    fn offline_beyond_threshold_is_one_problem() {
        let mut d = Detector::new(cfg());
        d.on_event(&online(true), m(0));
        d.on_event(&online(false), m(1));
        assert!(d.tick(m(5)).is_empty(), "not yet past the threshold");
        let s = d.tick(m(11));
        assert_eq!(problems(&s), [(CaseKind::Offline, None)]);
        // However many ticks (missed heartbeats) follow, no second problem.
        for n in 12..200 {
            assert!(d.tick(m(n)).is_empty());
        }
        let s = d.on_event(&online(true), m(200));
        assert!(matches!(
            s.as_slice(),
            [Signal::Cleared {
                kind: CaseKind::Offline,
                ..
            }]
        ));
        // A short drop does not count.
        d.on_event(&online(false), m(201));
        d.on_event(&online(true), m(205));
        assert!(d.tick(m(300)).is_empty());
    }

    #[test]
    fn chargers_absent_at_start_count_as_offline_from_start() {
        let mut d = Detector::new(cfg());
        d.assume_offline("CP1", "S1", m(0));
        d.assume_offline("CP2", "S1", m(0));
        // CP2 connects in time: no problem for it.
        let cp2_online = Event::ChargerOnline {
            charger_id: "CP2".into(),
            station_id: "S1".into(),
            protocol: "ocpp1.6".into(),
            at: t0(),
        };
        d.on_event(&cp2_online, m(3));
        // A charger the detector already tracks keeps its own history.
        d.assume_offline("CP2", "S1", m(4));
        assert!(d.tick(m(9)).is_empty(), "not yet past the threshold");
        let s = d.tick(m(11));
        assert_eq!(problems(&s), [(CaseKind::Offline, None)]);
        assert!(d.is_active("CP1", CaseKind::Offline, None));
        assert!(!d.is_active("CP2", CaseKind::Offline, None));
    }

    #[test]
    fn stuck_session_then_moving_again() {
        let mut d = Detector::new(cfg());
        d.on_event(&online(true), m(0));
        d.on_event(&started(7), m(0));
        d.on_event(&status(ConnectorStatus::Charging, None), m(1));
        d.on_event(&meter(7, 1000, m(1), None), m(1));
        d.on_event(&meter(7, 2000, m(2), None), m(2));
        assert!(d.tick(m(10)).is_empty());
        // Same register for a quarter of an hour.
        for n in 3..18 {
            d.on_event(&meter(7, 2000, m(n), None), m(n));
        }
        let s = d.tick(m(18));
        assert_eq!(problems(&s), [(CaseKind::StuckSession, Some(1))]);
        assert!(d.tick(m(40)).is_empty(), "one problem per stuck session");
        let s = d.on_event(&meter(7, 2500, m(41), None), m(41));
        assert!(matches!(
            s.as_slice(),
            [Signal::Cleared {
                kind: CaseKind::StuckSession,
                ..
            }]
        ));
    }

    #[test]
    fn a_meter_that_reports_rarely_is_not_stuck() {
        let mut d = Detector::new(cfg());
        d.on_event(&online(true), m(0));
        d.on_event(&started(9), m(0));
        d.on_event(&status(ConnectorStatus::Charging, None), m(0));
        // A reading every 25 minutes (a fast-forwarded simulation), energy rising each time.
        for (n, wh) in [(25, 1000), (50, 9000), (75, 17_000)] {
            assert!(d.tick(m(n - 1)).is_empty(), "minute {n}");
            d.on_event(&meter(9, wh, m(n), None), m(n));
        }
        assert!(d.tick(m(90)).is_empty());
        // Silence for twice the threshold while charging is stuck.
        assert_eq!(
            problems(&d.tick(m(106))),
            [(CaseKind::StuckSession, Some(1))]
        );
    }

    #[test]
    fn a_session_not_charging_is_not_stuck() {
        let mut d = Detector::new(cfg());
        d.on_event(&online(true), m(0));
        d.on_event(&started(8), m(0));
        // Plugged but suspended by the car: occupied, no energy, not a fault.
        d.on_event(&status(ConnectorStatus::Occupied, None), m(0));
        assert!(d.tick(m(60)).is_empty());
    }

    #[test]
    fn meter_anomalies() {
        let mut d = Detector::new(cfg());
        d.on_event(&online(true), m(0));
        d.on_event(&started(1), m(0));
        d.on_event(&meter(1, 5000, m(1), None), m(1));
        let s = d.on_event(&meter(1, 4000, m(2), None), m(2));
        assert_eq!(problems(&s), [(CaseKind::MeterAnomaly, Some(1))]);
        // One per session.
        assert!(d.on_event(&meter(1, 3000, m(3), None), m(3)).is_empty());

        d.on_event(&started(2), m(4));
        let s = d.on_event(&meter(2, 10, m(4), Some(900_000.0)), m(4));
        assert_eq!(problems(&s), [(CaseKind::MeterAnomaly, Some(1))]);

        // 100 kWh in one minute is 6 MW.
        d.on_event(&started(3), m(5));
        d.on_event(&meter(3, 0, m(5), None), m(5));
        let s = d.on_event(&meter(3, 100_000, m(6), None), m(6));
        assert_eq!(problems(&s), [(CaseKind::MeterAnomaly, Some(1))]);

        // 5 kWh in one minute is 300 kW: plausible under a 350 kW cap.
        d.on_event(&started(4), m(7));
        d.on_event(&meter(4, 0, m(7), None), m(7));
        assert!(d.on_event(&meter(4, 5_000, m(8), None), m(8)).is_empty());
        // A session with an anomaly is no proof of repair; a clean one is.
        assert!(d.on_event(&stopped(3, 100_000), m(9)).is_empty());
        let s = d.on_event(&stopped(4, 5_000), m(9));
        assert!(matches!(
            s.as_slice(),
            [Signal::Working {
                energy_wh: 5000,
                started_at: Some(_),
                ..
            }]
        ));
    }

    #[test]
    fn reboot_loop_and_command_failures() {
        let mut d = Detector::new(cfg());
        let boot = Event::ChargerBooted {
            charger_id: "CP1".into(),
            station_id: "S1".into(),
            at: t0(),
        };
        assert!(d.on_event(&boot, m(0)).is_empty());
        assert!(d.on_event(&boot, m(30)).is_empty(), "boots far apart");
        assert!(d.on_event(&boot, m(32)).is_empty());
        let s = d.on_event(&boot, m(34));
        assert_eq!(problems(&s), [(CaseKind::RebootLoop, None)]);
        assert!(d.on_event(&boot, m(35)).is_empty(), "one loop, one problem");
        let s = d.tick(m(60));
        assert!(matches!(
            s.as_slice(),
            [Signal::Cleared {
                kind: CaseKind::RebootLoop,
                ..
            }]
        ));

        let fail = Event::CommandFailed {
            charger_id: "CP1".into(),
            station_id: "S1".into(),
            command: "reset".into(),
            reason: "Rejected".into(),
            at: t0(),
        };
        assert!(d.on_event(&fail, m(61)).is_empty());
        assert!(d.on_event(&fail, m(62)).is_empty());
        let s = d.on_event(&fail, m(63));
        assert_eq!(problems(&s), [(CaseKind::CommandFailures, None)]);
        assert!(d.on_event(&fail, m(64)).is_empty());
    }

    #[test]
    fn working_needs_energy() {
        let mut d = Detector::new(cfg());
        d.on_event(&started(5), m(0));
        assert!(d.on_event(&stopped(5, 0), m(1)).is_empty());
        let s = d.on_event(&stopped(6, 1200), m(2));
        assert!(matches!(
            s.as_slice(),
            [Signal::Working {
                started_at: None,
                ..
            }]
        ));
    }
}
