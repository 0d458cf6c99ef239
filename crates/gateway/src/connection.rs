//! One task per charger connection: reads frames, answers CALLs in order, sends at most one
//! server-initiated CALL at a time and correlates its answer, and is the only writer of its
//! charger's live state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use chargeops_core::{
    Charger, CommandError, CommandReply, ConnectorStatus, Event, IdTagStatus, NewSession,
    Registration, Session, SessionStop,
};
use chargeops_ocpp::schema::{self, Direction};
use chargeops_ocpp::{ErrorCode, Frame, Version};

use crate::metrics::Metrics;
use crate::{ConnHandle, Control, Gateway};

/// An error to answer a charger's CALL with.
pub(crate) type CallFailure = (ErrorCode, String);

pub(crate) fn internal(e: impl std::fmt::Display) -> CallFailure {
    (ErrorCode::InternalError, e.to_string())
}

struct Pending {
    id: String,
    action: &'static str,
    reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    deadline: tokio::time::Instant,
}

/// Per-connection state handed to the version handlers.
pub(crate) struct Ctx {
    pub gw: Arc<Gateway>,
    pub charger_id: String,
    pub station_id: String,
    pub version: Version,
    pub registration: Registration,
    /// OCPP 2.0.1: whether each EVSE's transaction is in chargingState Charging, so that an
    /// Occupied connector can be shown as `charging`.
    pub evse_charging: HashMap<u32, bool>,
    /// This charger's running sessions by transaction id, so meter values do not read the
    /// store each time. The connection is the charger's only writer, so the copy stays true.
    sessions: HashMap<String, Session>,
    next_message_id: u64,
}

impl Ctx {
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
            error_code.clone(),
            at,
        );
        self.gw
            .store
            .record_status(&self.charger_id, &state)
            .await
            .map_err(internal)?;
        let previous = self
            .gw
            .live
            .set_status(&self.charger_id, state)
            .ok()
            .flatten();
        if previous != Some(status) {
            self.gw.live.publish(Event::StatusChanged {
                charger_id: self.charger_id.clone(),
                station_id: self.station_id.clone(),
                evse_id,
                connector_id,
                status,
                previous,
                error_code,
                at,
            });
        }
        Ok(())
    }

    /// The authorization answer for an id tag.
    pub async fn authorize(&self, id_tag: &str) -> Result<IdTagStatus, CallFailure> {
        let tag = self.gw.store.get_id_tag(id_tag).await.map_err(internal)?;
        Ok(tag.map_or(IdTagStatus::Invalid, |t| {
            t.effective_status(self.gw.live.now())
        }))
    }

    /// A session of this charger by its transaction id, from the cache or the store.
    pub async fn find_session(&mut self, reference: &str) -> Result<Option<Session>, CallFailure> {
        if let Some(s) = self.sessions.get(reference) {
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
        if s.stopped_at.is_some() {
            self.sessions.remove(&s.transaction_ref);
            return;
        }
        // A charger runs a session per connector at most; more means stale entries from
        // sessions the charger abandoned, which the store still has.
        if self.sessions.len() >= 16 {
            self.sessions.clear();
        }
        self.sessions.insert(s.transaction_ref.clone(), s.clone());
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
            && let Some(cached) = self.sessions.get_mut(&s.transaction_ref)
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

    fn message_id(&mut self) -> String {
        self.next_message_id += 1;
        format!("cs-{}", self.next_message_id)
    }
}

/// A charger that offered no subprotocol we speak: handshake done, close at once (OCPP-J).
pub(crate) async fn refuse_subprotocol(
    gw: Arc<Gateway>,
    charger_id: String,
    mut socket: WebSocket,
    peer: Option<String>,
) {
    Metrics::inc(&gw.metrics.upgrades_rejected_total);
    tracing::warn!(
        charger_id,
        peer,
        "closed connection: no supported OCPP subprotocol offered"
    );
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::PROTOCOL,
            reason: "no supported subprotocol (ocpp1.6, ocpp2.0.1)".into(),
        })))
        .await;
}

pub(crate) async fn run(
    gw: Arc<Gateway>,
    charger: Charger,
    version: Version,
    mut socket: WebSocket,
    peer: Option<String>,
) {
    let charger_id = charger.id.clone();
    let conn_id = gw.next_conn_id();
    let (tx, mut rx) = mpsc::channel::<Control>(16);
    if let Some(old) = gw
        .connections
        .insert(&charger_id, ConnHandle { conn_id, tx })
    {
        tracing::warn!(
            charger_id,
            peer,
            "a newer connection claimed this charger; closing the older one"
        );
        if old.tx.try_send(Control::Superseded).is_err() {
            tokio::spawn(async move {
                let _ = old.tx.send(Control::Superseded).await;
            });
        }
    }
    let protocol = match version {
        Version::V16 => chargeops_core::Protocol::Ocpp16,
        Version::V201 => chargeops_core::Protocol::Ocpp201,
    };
    if !gw.live.set_online(&charger_id, true, Some(protocol)) {
        gw.live
            .upsert_charger(&charger_id, &charger.station_id, Some(protocol), Vec::new());
        gw.live.set_online(&charger_id, true, Some(protocol));
    }
    Metrics::inc(&gw.metrics.connections_total);
    Metrics::inc(&gw.metrics.connections_open);
    tracing::info!(
        charger_id,
        peer,
        protocol = version.subprotocol(),
        "charger connected"
    );
    gw.live.publish(Event::ChargerOnline {
        charger_id: charger_id.clone(),
        station_id: charger.station_id.clone(),
        protocol: protocol.as_str().to_owned(),
        at: gw.live.now(),
    });

    let mut ctx = Ctx {
        gw: gw.clone(),
        charger_id: charger_id.clone(),
        station_id: charger.station_id.clone(),
        version,
        registration: charger.registration,
        evse_charging: HashMap::new(),
        sessions: HashMap::new(),
        next_message_id: 0,
    };
    let mut pending: Option<Pending> = None;
    let ping_every = gw.config.ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();

    let reason = loop {
        let deadline = pending.as_ref().map(|p| p.deadline);
        tokio::select! {
            msg = socket.recv() => {
                last_heard = Instant::now();
                match msg {
                    None => break "closed by charger",
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("too big") {
                            tracing::warn!(charger_id, error = %text, "frame over the size limit; closing");
                            let _ = socket.send(Message::Close(Some(CloseFrame {
                                code: close_code::SIZE,
                                reason: "frame too large".into(),
                            }))).await;
                            break "frame too large";
                        }
                        tracing::info!(charger_id, error = %text, "connection error");
                        break "connection error";
                    }
                    Some(Ok(Message::Text(text))) => {
                        Metrics::inc(&gw.metrics.messages_received_total);
                        if let Some(out) = on_text(&mut ctx, &mut pending, text.as_str()).await
                            && socket.send(Message::Text(out.into())).await.is_err()
                        {
                            break "send failed";
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        Metrics::inc(&gw.metrics.messages_received_total);
                        let out = call_error(&ctx, "-1", ErrorCode::FormatViolation,
                            "OCPP-J uses text frames; binary frame ignored");
                        if socket.send(Message::Text(out.into())).await.is_err() {
                            break "send failed";
                        }
                    }
                    Some(Ok(Message::Close(_))) => break "closed by charger",
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                }
            }
            ctrl = rx.recv(), if pending.is_none() => match ctrl {
                Some(Control::Command { command, reply }) => {
                    match encode_command(&mut ctx, &command) {
                        Ok((id, action, frame)) => {
                            if socket.send(Message::Text(frame.into())).await.is_err() {
                                let _ = reply.send(Err(CommandError::Closed));
                                break "send failed";
                            }
                            Metrics::inc(&gw.metrics.messages_sent_total);
                            tracing::info!(charger_id, action, message_id = %id, "command sent");
                            pending = Some(Pending {
                                id,
                                action,
                                reply,
                                deadline: tokio::time::Instant::now() + gw.config.command_timeout,
                            });
                        }
                        Err(e) => { let _ = reply.send(Err(e)); }
                    }
                }
                Some(Control::Superseded) | None => {
                    let _ = socket.send(Message::Close(Some(CloseFrame {
                        code: close_code::POLICY,
                        reason: "superseded by a newer connection".into(),
                    }))).await;
                    break "superseded";
                }
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Some(p) = pending.take() {
                    Metrics::inc(&gw.metrics.commands_timed_out_total);
                    tracing::warn!(charger_id, action = p.action, message_id = %p.id, "command timed out");
                    let _ = p.reply.send(Err(CommandError::Timeout(gw.config.command_timeout.as_secs())));
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 3 {
                    break "silent for three ping intervals";
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break "send failed";
                }
            }
        }
    };

    // Completes the closing handshake (tungstenite queues the answer to the charger's Close
    // frame until the next flush) so the charger sees a clean close.
    let close = futures_util::SinkExt::close(&mut socket);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), close).await;
    if let Some(p) = pending.take() {
        let _ = p.reply.send(Err(CommandError::Closed));
    }
    Metrics::dec(&gw.metrics.connections_open);
    if gw.connections.remove_if_current(&charger_id, conn_id) {
        gw.live.set_online(&charger_id, false, None);
        gw.live.publish(Event::ChargerOffline {
            charger_id: charger_id.clone(),
            station_id: ctx.station_id.clone(),
            at: gw.live.now(),
        });
    }
    tracing::info!(charger_id, reason, "charger disconnected");
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn call_error(ctx: &Ctx, id: &str, code: ErrorCode, description: &str) -> String {
    Metrics::inc(&ctx.gw.metrics.call_errors_sent_total);
    chargeops_ocpp::encode_error(
        id,
        code,
        ctx.version,
        description,
        &Value::Object(Default::default()),
    )
}

/// Handles one text frame; returns the frame to send back, if any.
async fn on_text(ctx: &mut Ctx, pending: &mut Option<Pending>, text: &str) -> Option<String> {
    let started = Instant::now();
    let frame = match chargeops_ocpp::decode(text, ctx.version) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(charger_id = %ctx.charger_id, code = ?e.code, error = %e.description, "malformed frame");
            // The codec knows when the spec wants silence (a broken CALLRESULT, an unknown
            // message type on 1.6) and otherwise gives the CALLERROR to send.
            let answer = e.answer(ctx.version);
            if answer.is_some() {
                Metrics::inc(&ctx.gw.metrics.call_errors_sent_total);
            }
            return answer;
        }
    };
    match frame {
        Frame::Call(call) => {
            // The validator answers NotImplemented for unknown actions and NotSupported for
            // the version's actions we have no handler for.
            let result = match schema::validate(
                ctx.version,
                &call.action,
                Direction::Request,
                &call.payload,
            ) {
                Err(e) => Err((e.code, e.to_string())),
                Ok(()) => dispatch(ctx, &call.action, call.payload).await,
            };
            ctx.gw.metrics.handling.observe(started.elapsed());
            Metrics::inc(&ctx.gw.metrics.messages_sent_total);
            Some(match result {
                Ok(payload) => chargeops_ocpp::encode_result(&call.id, &payload),
                Err((code, description)) => {
                    tracing::warn!(charger_id = %ctx.charger_id, action = %call.action, code = ?code, error = %description, "call answered with error");
                    call_error(ctx, &call.id, code, &description)
                }
            })
        }
        Frame::CallResult(res) => {
            match pending.take_if(|p| p.id == res.id) {
                Some(p) => {
                    let reply = match schema::validate(
                        ctx.version,
                        p.action,
                        Direction::Response,
                        &res.payload,
                    ) {
                        Ok(()) => Ok(CommandReply {
                            status: reply_status(ctx.version, p.action, &res.payload),
                            response: res.payload,
                        }),
                        Err(e) => Err(CommandError::CallError {
                            code: format!("{:?}", e.code),
                            description: format!("invalid {} answer: {e}", p.action),
                        }),
                    };
                    let _ = p.reply.send(reply);
                }
                None => {
                    tracing::warn!(charger_id = %ctx.charger_id, message_id = %res.id, "CALLRESULT for an unknown message id ignored")
                }
            }
            None
        }
        Frame::CallError(err) => {
            match pending.take_if(|p| p.id == err.id) {
                Some(p) => {
                    let _ = p.reply.send(Err(CommandError::CallError {
                        code: err.code,
                        description: err.description,
                    }));
                }
                None => {
                    tracing::warn!(charger_id = %ctx.charger_id, message_id = %err.id, code = %err.code, "CALLERROR for an unknown message id ignored")
                }
            }
            None
        }
    }
}

/// Actions a charger not yet accepted by the operator may send.
fn allowed_before_acceptance(action: &str) -> bool {
    matches!(action, "BootNotification" | "Heartbeat")
}

async fn dispatch(ctx: &mut Ctx, action: &str, payload: Value) -> Result<Value, CallFailure> {
    if ctx.registration != Registration::Accepted && !allowed_before_acceptance(action) {
        // The operator may have accepted the charger since it booted.
        if ctx.refresh_registration().await? != Registration::Accepted {
            return Err((
                ErrorCode::SecurityError,
                "charger is not accepted by the operator yet".to_owned(),
            ));
        }
    }
    match ctx.version {
        Version::V16 => crate::v16::handle(ctx, action, payload).await,
        Version::V201 => crate::v201::handle(ctx, action, payload).await,
    }
}

fn encode_command(
    ctx: &mut Ctx,
    command: &chargeops_core::Command,
) -> Result<(String, &'static str, String), CommandError> {
    let (action, payload) = match ctx.version {
        Version::V16 => crate::v16::command(command)?,
        Version::V201 => crate::v201::command(command)?,
    };
    // Our own payload is checked against the charger's schema, so bad API input (a 30-character
    // id tag for a 1.6 charger, say) is refused here instead of confusing the charger.
    schema::validate(ctx.version, action, Direction::Request, &payload)
        .map_err(|e| CommandError::Invalid(format!("{action} {e}")))?;
    let id = ctx.message_id();
    let frame = chargeops_ocpp::encode_call(&id, action, &payload);
    Ok((id, action, frame))
}

fn reply_status(version: Version, action: &str, payload: &Value) -> String {
    match version {
        Version::V16 => crate::v16::reply_status(action, payload),
        Version::V201 => crate::v201::reply_status(action, payload),
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
