//! What the version handlers work with: the connection's state as they see it (`Ctx`: the
//! charger, its cached sessions and EVSE charging states, and the writes that keep the store,
//! the live state and the event bus in step), the failure a CALL is answered with, and the
//! payload helpers OCPP 1.6 and 2.0.1 share. The connection task owns a `Ctx` and hands it to
//! the version of its charger; neither version knows the task.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use chargeops_core::{
    ConnectorStatus, Event, IdTagStatus, MeterSample, NewSession, Registration, Session,
    SessionStop,
};
use chargeops_ocpp::{ErrorCode, Version};

use crate::Gateway;

/// An error to answer a charger's CALL with.
pub(crate) type CallFailure = (ErrorCode, String);

pub(crate) fn internal(e: impl std::fmt::Display) -> CallFailure {
    (ErrorCode::InternalError, e.to_string())
}

/// Per-connection state handed to the version handlers.
pub(crate) struct Ctx {
    pub gw: Arc<Gateway>,
    pub charger_id: String,
    pub station_id: String,
    pub version: Version,
    pub registration: Registration,
    /// OCPP 2.0.1: whether each EVSE's transaction is in chargingState Charging, so that an
    /// Occupied connector can be shown as `charging`. A few EVSEs at most: a list.
    evse_charging: Vec<(u32, bool)>,
    /// This charger's running sessions, so meter values do not read the store each time. The
    /// connection is the charger's only writer, so the copy stays true. One per connector at
    /// most: a list, emptied of its allocation when no session runs.
    sessions: Vec<Session>,
    next_message_id: u64,
}

impl Ctx {
    /// The state of a charger's new connection: nothing cached yet.
    pub(crate) fn new(
        gw: Arc<Gateway>,
        charger_id: String,
        station_id: String,
        version: Version,
        registration: Registration,
    ) -> Self {
        Ctx {
            gw,
            charger_id,
            station_id,
            version,
            registration,
            evse_charging: Vec::new(),
            sessions: Vec::new(),
            next_message_id: 0,
        }
    }

    /// OCPP 2.0.1: whether the EVSE's transaction is in chargingState Charging.
    pub fn evse_charging(&self, evse: u32) -> bool {
        self.evse_charging
            .iter()
            .find(|(e, _)| *e == evse)
            .is_some_and(|(_, charging)| *charging)
    }

    /// Records the EVSE's charging state; returns the one it had, if known.
    pub fn set_evse_charging(&mut self, evse: u32, charging: bool) -> Option<bool> {
        match self.evse_charging.iter_mut().find(|(e, _)| *e == evse) {
            Some((_, c)) => Some(std::mem::replace(c, charging)),
            None => {
                self.evse_charging.reserve_exact(1);
                self.evse_charging.push((evse, charging));
                None
            }
        }
    }

    fn cached_session(&mut self, reference: &str) -> Option<&mut Session> {
        self.sessions
            .iter_mut()
            .find(|s| s.transaction_ref == reference)
    }

    /// Records a connector status: on disk first, then the live state, then the event.
    pub async fn apply_status(
        &mut self,
        evse_id: u32,
        connector_id: u32,
        status: ConnectorStatus,
        raw_status: Option<String>,
        error_code: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(), CallFailure> {
        let state = chargeops_core::live::connector_state(
            evse_id,
            connector_id,
            status,
            raw_status,
            error_code,
            at,
        );
        self.gw
            .store
            .record_status(&self.charger_id, &state)
            .await
            .map_err(internal)?;
        crate::writer::connector_status(
            &self.gw.live,
            &self.charger_id,
            &self.station_id,
            state,
            crate::writer::Origin::Local,
        );
        Ok(())
    }

    /// The authorization answer for an id tag.
    pub async fn authorize(&self, id_tag: &str) -> Result<IdTagStatus, CallFailure> {
        let tag = self.gw.store.get_id_tag(id_tag).await.map_err(internal)?;
        Ok(match tag {
            Some(t) => t.effective_status(self.gw.live.now()),
            None if self.vouched_for(id_tag).await => IdTagStatus::Accepted,
            None => IdTagStatus::Invalid,
        })
    }

    /// Whether a [`crate::TagAuthority`] accepts a tag the id-tag list does not know: this
    /// node's, or in a cluster the duties' node's (which keeps the queue and the lots).
    async fn vouched_for(&self, id_tag: &str) -> bool {
        if self.gw.vouched_locally(&self.charger_id, id_tag) {
            return true;
        }
        match self.gw.cluster.get() {
            Some(cluster) => cluster.vouch(&self.charger_id, id_tag).await,
            None => false,
        }
    }

    /// A session of this charger by its transaction id, from the cache or the store.
    pub async fn find_session(&mut self, reference: &str) -> Result<Option<Session>, CallFailure> {
        if let Some(s) = self.cached_session(reference) {
            return Ok(Some(s.clone()));
        }
        let found = self
            .gw
            .store
            .find_session(&self.charger_id, reference)
            .await
            .map_err(internal)?;
        if let Some(s) = &found {
            self.remember(s);
        }
        Ok(found)
    }

    fn remember(&mut self, s: &Session) {
        self.sessions
            .retain(|cached| cached.transaction_ref != s.transaction_ref);
        if s.stopped_at.is_some() {
            if self.sessions.is_empty() {
                self.sessions = Vec::new();
            }
            return;
        }
        // A charger runs a session per connector at most; more means stale entries from
        // sessions the charger abandoned, which the store still has.
        if self.sessions.len() >= 16 {
            self.sessions = Vec::new();
        }
        self.sessions.reserve_exact(1);
        self.sessions.push(s.clone());
    }

    /// Records meter samples and a running session's energy so far in one commit.
    pub async fn record_meter(
        &mut self,
        samples: &[chargeops_core::MeterSample],
        energy: Option<(&Session, Option<i64>, Option<i64>)>,
    ) -> Result<(), CallFailure> {
        let store = &self.gw.store;
        let write_samples = async {
            if samples.is_empty() {
                Ok(())
            } else {
                store.record_meter_samples(samples).await
            }
        };
        let write_energy = async {
            match energy {
                Some((s, energy_wh, seq_no)) => {
                    store.update_session_energy(s.id, energy_wh, seq_no).await
                }
                None => Ok(()),
            }
        };
        // Both writes reach the store's writer together and share one commit.
        tokio::try_join!(write_samples, write_energy).map_err(internal)?;
        self.publish_meter(samples);
        if let Some((s, energy_wh, seq_no)) = energy
            && let Some(cached) = self.cached_session(&s.transaction_ref)
        {
            if energy_wh.is_some() {
                cached.energy_wh = energy_wh;
            }
            if seq_no.is_some() {
                cached.last_seq_no = seq_no.max(cached.last_seq_no);
            }
        }
        Ok(())
    }

    /// Tells the event bus the latest energy register and power of each EVSE in `samples`
    /// (fault detection reads it for stuck sessions and implausible meters).
    fn publish_meter(&self, samples: &[chargeops_core::MeterSample]) {
        let mut evses: Vec<u32> = samples.iter().map(|s| s.evse_id).collect();
        evses.sort_unstable();
        evses.dedup();
        for evse_id in evses {
            let latest = |measurand: &str| {
                samples
                    .iter()
                    .filter(|s| {
                        s.evse_id == evse_id && s.measurand == measurand && s.phase.is_none()
                    })
                    .max_by_key(|s| s.at)
            };
            let energy = latest("Energy.Active.Import.Register");
            let power = latest("Power.Active.Import");
            let Some(at) = energy.or(power).map(|s| s.at) else {
                continue;
            };
            self.gw.live.publish(Event::MeterReading {
                charger_id: self.charger_id.clone(),
                station_id: self.station_id.clone(),
                evse_id,
                session_id: energy.or(power).and_then(|s| s.session_id),
                energy_wh: energy.map(|s| to_wh(s.value, s.unit.as_deref())),
                power_w: power.map(|s| match s.unit.as_deref() {
                    Some("kW") => s.value * 1000.0,
                    _ => s.value,
                }),
                at,
            });
        }
    }

    /// Tells the event bus the charger booted (reboot loops are found from these).
    pub fn publish_boot(&self) {
        self.gw.live.publish(Event::ChargerBooted {
            charger_id: self.charger_id.clone(),
            station_id: self.station_id.clone(),
            at: self.gw.live.now(),
        });
    }

    pub async fn start_session(&mut self, new: &NewSession) -> Result<Session, CallFailure> {
        let started = self.gw.store.start_session(new).await.map_err(internal)?;
        let s = started.session;
        self.remember(&s);
        if started.created {
            tracing::info!(charger_id = %self.charger_id, session_id = s.id, transaction = %s.transaction_ref, "session started");
            self.gw.live.publish(Event::SessionStarted {
                session_id: s.id,
                charger_id: self.charger_id.clone(),
                station_id: self.station_id.clone(),
                evse_id: s.evse_id,
                connector_id: s.connector_id,
                id_tag: s.id_tag.clone(),
                at: s.started_at,
            });
        } else {
            tracing::info!(charger_id = %self.charger_id, session_id = s.id, "repeated session start, existing session returned");
        }
        Ok(s)
    }

    pub async fn stop_session(&self, id: i64, stop: &SessionStop) -> Result<Session, CallFailure> {
        let stopped = self
            .gw
            .store
            .stop_session(id, stop)
            .await
            .map_err(internal)?;
        let s = stopped.session;
        if stopped.applied {
            tracing::info!(charger_id = %self.charger_id, session_id = s.id, energy_wh = s.energy_wh, "session stopped");
            self.gw.live.publish(Event::SessionStopped {
                session_id: s.id,
                charger_id: self.charger_id.clone(),
                station_id: self.station_id.clone(),
                evse_id: s.evse_id,
                connector_id: s.connector_id,
                energy_wh: s.energy_wh,
                reason: s.stop_reason.clone(),
                cost: None,
                at: s.stopped_at.unwrap_or(stop.stopped_at),
            });
        } else {
            tracing::info!(charger_id = %self.charger_id, session_id = s.id, "repeated session stop ignored");
        }
        Ok(s)
    }

    /// Re-reads the charger's registration (an operator may have accepted it meanwhile).
    pub async fn refresh_registration(&mut self) -> Result<Registration, CallFailure> {
        let charger = self
            .gw
            .store
            .get_charger(&self.charger_id)
            .await
            .map_err(internal)?;
        if let Some(c) = charger {
            self.registration = c.registration;
            self.station_id = c.station_id;
        }
        Ok(self.registration)
    }

    /// The id of the next server-initiated CALL.
    pub(crate) fn message_id(&mut self) -> String {
        self.next_message_id += 1;
        format!("cs-{}", self.next_message_id)
    }
}

/// Parses a decimal meter reading to watt-hours, honouring a kWh unit.
pub(crate) fn to_wh(value: f64, unit: Option<&str>) -> i64 {
    let wh = match unit {
        Some("kWh") => value * 1000.0,
        _ => value,
    };
    wh.round() as i64
}

/// The latest Energy.Active.Import.Register reading among the samples, in Wh.
pub(crate) fn energy_register(samples: &[MeterSample]) -> Option<i64> {
    samples
        .iter()
        .filter(|s| s.measurand == "Energy.Active.Import.Register" && s.phase.is_none())
        .max_by_key(|s| s.at)
        .map(|s| to_wh(s.value, s.unit.as_deref()))
}

/// A connector or EVSE number; the schemas of neither version forbid negative ones, we do.
pub(crate) fn index(value: i32, field: &str) -> Result<u32, CallFailure> {
    u32::try_from(value).map_err(|_| {
        (
            ErrorCode::PropertyConstraintViolation,
            format!("/{field}: must not be negative"),
        )
    })
}

/// Reads a validated payload into its typed message (a value the schema allows but the type
/// cannot hold, like an integer beyond 32 bits, is a PropertyConstraintViolation).
pub(crate) fn parse<T: DeserializeOwned>(payload: Value) -> Result<T, CallFailure> {
    chargeops_ocpp::from_payload(&payload).map_err(|e| (e.code, e.to_string()))
}

/// The wire spelling of a serde enum value.
pub(crate) fn wire<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The platform's time as OCPP writes it (the demo's simulated time in the demo).
pub(crate) fn now_rfc3339(ctx: &Ctx) -> String {
    ctx.gw
        .live
        .now()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}
