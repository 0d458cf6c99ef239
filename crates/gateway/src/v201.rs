//! OCPP 2.0.1: charger-initiated actions into the network model, and commands out of it.

use chrono::Utc;
use serde_json::{Value, json};

use chargeops_core::{
    BootInfo, Command, CommandError, ConnectorStatus, IdTagStatus, MeterSample, NewSession,
    Protocol, Registration, SessionStop,
};
use chargeops_ocpp::{ErrorCode, v201};

use crate::ctx::{CallFailure, Ctx, energy_register, index, internal, now_rfc3339, parse, wire};

/// The internal status of a 2.0.1 connector: Occupied is `charging` while the EVSE's
/// transaction is in chargingState Charging.
fn map_status(raw: &str, charging: bool) -> ConnectorStatus {
    match raw {
        "Available" => ConnectorStatus::Available,
        "Occupied" if charging => ConnectorStatus::Charging,
        "Occupied" => ConnectorStatus::Occupied,
        "Reserved" => ConnectorStatus::Reserved,
        "Unavailable" => ConnectorStatus::Unavailable,
        _ => ConnectorStatus::Faulted,
    }
}

fn id_token_info(status: IdTagStatus) -> Value {
    let s = match status {
        IdTagStatus::Accepted => "Accepted",
        IdTagStatus::Blocked => "Blocked",
        IdTagStatus::Expired => "Expired",
        IdTagStatus::Invalid => "Invalid",
    };
    json!({ "status": s })
}

pub(crate) async fn handle(
    ctx: &mut Ctx,
    action: &str,
    payload: Value,
) -> Result<Value, CallFailure> {
    match action {
        "BootNotification" => boot(ctx, parse(payload)?).await,
        "Heartbeat" => Ok(json!({ "currentTime": now_rfc3339(ctx) })),
        "StatusNotification" => status(ctx, parse(payload)?).await,
        "Authorize" => {
            let req: v201::AuthorizeRequest = parse(payload)?;
            let status = ctx.authorize(&req.id_token.id_token).await?;
            Ok(json!({ "idTokenInfo": id_token_info(status) }))
        }
        "TransactionEvent" => transaction_event(ctx, parse(payload)?).await,
        "MeterValues" => {
            let req: v201::MeterValuesRequest = parse(payload)?;
            let evse = index(req.evse_id, "evseId")?;
            let samples = samples(ctx, evse, 0, None, &req.meter_value);
            ctx.record_meter(&samples, None).await?;
            Ok(json!({}))
        }
        "DataTransfer" => {
            tracing::info!(charger_id = %ctx.charger_id, vendor_id = %payload["vendorId"], "data transfer from an unknown vendor");
            Ok(json!({ "status": "UnknownVendorId" }))
        }
        "ReservationStatusUpdate" => {
            // Expired or Removed: the platform's own hold runs on its own deadline, so the
            // charger's word is logged for the operator.
            let req: v201::ReservationStatusUpdateRequest = parse(payload)?;
            tracing::info!(charger_id = %ctx.charger_id, reservation_id = req.reservation_id, status = %wire(&req.reservation_update_status), "reservation status update");
            Ok(json!({}))
        }
        "NotifyEvent"
        | "SecurityEventNotification"
        | "NotifyReport"
        | "FirmwareStatusNotification"
        | "LogStatusNotification" => {
            tracing::info!(charger_id = %ctx.charger_id, action, payload = %payload, "charger reported");
            Ok(json!({}))
        }
        other => Err((
            ErrorCode::NotSupported,
            format!("action {other} is not supported"),
        )),
    }
}

async fn boot(ctx: &mut Ctx, req: v201::BootNotificationRequest) -> Result<Value, CallFailure> {
    let station = &req.charging_station;
    let info = BootInfo {
        vendor: Some(station.vendor_name.clone()),
        model: Some(station.model.clone()),
        serial_number: station.serial_number.clone(),
        firmware_version: station.firmware_version.clone(),
    };
    ctx.gw
        .store
        .record_boot(&ctx.charger_id, Protocol::Ocpp201, &info, ctx.gw.live.now())
        .await
        .map_err(internal)?;
    let registration = ctx.refresh_registration().await?;
    ctx.publish_boot();
    let status = match registration {
        Registration::Accepted => "Accepted",
        Registration::Pending => "Pending",
        Registration::Rejected => "Rejected",
    };
    tracing::info!(charger_id = %ctx.charger_id, vendor = %station.vendor_name, model = %station.model, reason = %wire(&req.reason), status, "boot notification");
    Ok(json!({
        "status": status,
        "currentTime": now_rfc3339(ctx),
        "interval": ctx.gw.config.heartbeat_interval.as_secs(),
    }))
}

async fn status(ctx: &mut Ctx, req: v201::StatusNotificationRequest) -> Result<Value, CallFailure> {
    let raw = wire(&req.connector_status);
    let evse = index(req.evse_id, "evseId")?;
    let connector = index(req.connector_id, "connectorId")?;
    let charging = ctx.evse_charging(evse);
    let error = (raw == "Faulted").then(|| "Faulted".to_owned());
    ctx.apply_status(
        evse,
        connector,
        map_status(&raw, charging),
        Some(raw),
        error,
        req.timestamp,
    )
    .await?;
    Ok(json!({}))
}

/// Re-derives the status of the EVSE's Occupied connectors after its charging state changed.
async fn refresh_evse(ctx: &mut Ctx, evse: u32, charging: bool) -> Result<(), CallFailure> {
    if ctx.set_evse_charging(evse, charging) == Some(charging) {
        return Ok(());
    }
    let Some(snapshot) = ctx.gw.live.snapshot(&ctx.charger_id) else {
        return Ok(());
    };
    for c in snapshot
        .connectors
        .into_iter()
        .filter(|c| c.evse_id == evse)
    {
        let Some(current) = ctx.gw.live.connector(&ctx.charger_id, evse, c.connector_id) else {
            continue;
        };
        if current.raw_status.as_deref() == Some("Occupied") {
            let status = map_status("Occupied", charging);
            if status != current.status {
                ctx.apply_status(
                    evse,
                    c.connector_id,
                    status,
                    current.raw_status,
                    None,
                    ctx.gw.live.now(),
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn transaction_event(
    ctx: &mut Ctx,
    req: v201::TransactionEventRequest,
) -> Result<Value, CallFailure> {
    let event = wire(&req.event_type);
    let info = &req.transaction_info;
    let reference = info.transaction_id.clone();
    let seq_no = req.seq_no as i64;
    let id_tag = req.id_token.as_ref().map(|t| t.id_token.clone());
    let existing = ctx.find_session(&reference).await?;
    let (evse, connector) = match (&req.evse, &existing) {
        (Some(e), _) => (
            index(e.id, "evse/id")?,
            e.connector_id
                .map(|c| index(c, "evse/connectorId"))
                .transpose()?
                .unwrap_or(1),
        ),
        (None, Some(s)) => (s.evse_id, s.connector_id),
        (None, None) => (0, 0),
    };
    let meter = req.meter_value.as_deref().unwrap_or(&[]);
    let samples = samples(ctx, evse, connector, existing.as_ref().map(|s| s.id), meter);
    let register = energy_register(&samples);
    if req.offline == Some(true) {
        tracing::info!(charger_id = %ctx.charger_id, transaction = %reference, seq_no, event, "transaction event replayed from offline");
    }
    if let Some(reservation_id) = req.reservation_id {
        tracing::info!(charger_id = %ctx.charger_id, transaction = %reference, reservation_id, "transaction on a reservation");
    }

    // A Started that was lost (or an Updated/Ended for a transaction begun while the platform
    // could not hear it) still makes the session, so no energy goes unaccounted.
    let session = match existing {
        Some(s) => s,
        None => {
            if evse == 0 {
                return Err((
                    ErrorCode::OccurrenceConstraintViolation,
                    "evse is required on the first event of a transaction".to_owned(),
                ));
            }
            ctx.start_session(&NewSession {
                charger_id: ctx.charger_id.clone(),
                evse_id: evse,
                connector_id: connector,
                transaction_ref: Some(reference.clone()),
                id_tag: id_tag.clone(),
                started_at: req.timestamp,
                meter_start_wh: register,
                seq_no: Some(seq_no),
            })
            .await?
        }
    };
    let samples: Vec<MeterSample> = samples
        .into_iter()
        .map(|s| MeterSample {
            session_id: Some(session.id),
            ..s
        })
        .collect();
    let fresh = session.last_seq_no.is_none_or(|last| seq_no > last);
    match event.as_str() {
        "Ended" => {
            ctx.record_meter(&samples, None).await?;
            ctx.stop_session(
                session.id,
                &SessionStop {
                    stopped_at: req.timestamp,
                    meter_stop_wh: register,
                    energy_wh: None,
                    reason: info.stopped_reason.as_ref().map(wire),
                    seq_no: Some(seq_no),
                },
            )
            .await?;
            refresh_evse(ctx, session.evse_id, false).await?;
        }
        _ => {
            let energy = (fresh && event != "Started").then(|| {
                let energy = match (register, session.meter_start_wh) {
                    (Some(r), Some(start)) => Some(r - start),
                    _ => None,
                };
                (&session, energy, Some(seq_no))
            });
            ctx.record_meter(&samples, energy).await?;
            if let Some(state) = &info.charging_state {
                refresh_evse(ctx, session.evse_id, wire(state) == "Charging").await?;
            }
        }
    }
    match id_tag {
        Some(tag) => Ok(json!({ "idTokenInfo": id_token_info(ctx.authorize(&tag).await?) })),
        None => Ok(json!({})),
    }
}

fn samples(
    ctx: &Ctx,
    evse: u32,
    connector: u32,
    session_id: Option<i64>,
    values: &[v201::MeterValueType],
) -> Vec<MeterSample> {
    let mut out = Vec::new();
    for mv in values {
        for sv in &mv.sampled_value {
            let (unit, multiplier) = match &sv.unit_of_measure {
                Some(u) => (u.unit.clone(), u.multiplier.unwrap_or(0)),
                None => (None, 0),
            };
            let value = sv.value * 10f64.powi(multiplier);
            if !value.is_finite() {
                tracing::warn!(charger_id = %ctx.charger_id, "non-finite sampled value skipped");
                continue;
            }
            out.push(MeterSample {
                charger_id: ctx.charger_id.clone(),
                evse_id: evse,
                connector_id: connector,
                session_id,
                at: mv.timestamp,
                measurand: sv
                    .measurand
                    .as_ref()
                    .map(wire)
                    .unwrap_or_else(|| "Energy.Active.Import.Register".to_owned()),
                phase: sv.phase.as_ref().map(wire),
                unit: unit.or_else(|| Some("Wh".to_owned())),
                value,
            });
        }
    }
    out
}

/// `Component.Variable` (or `Component/Variable`) as used by the configuration commands.
fn component_variable(key: &str) -> Result<(&str, &str), CommandError> {
    key.split_once('/')
        .or_else(|| key.split_once('.'))
        .filter(|(c, v)| !c.is_empty() && !v.is_empty())
        .ok_or_else(|| {
            CommandError::Invalid(format!(
                "OCPP 2.0.1 keys are Component.Variable (for example OCPPCommCtrlr.HeartbeatInterval), got {key:?}"
            ))
        })
}

fn evse_of(evse_id: Option<u32>, connector_id: Option<u32>) -> Option<u32> {
    evse_id.or(connector_id)
}

/// An EVSEType: with an `evse_id` the connector is passed on as `connectorId`; with only a
/// `connector_id` (the API's 1.6 habit) it names the EVSE, EVSE n having connector 1.
fn evse_type(evse_id: Option<u32>, connector_id: Option<u32>) -> Option<Value> {
    match (evse_id, connector_id) {
        (Some(e), Some(c)) => Some(json!({ "id": e, "connectorId": c })),
        (Some(e), None) => Some(json!({ "id": e })),
        (None, Some(c)) => Some(json!({ "id": c })),
        (None, None) => None,
    }
}

/// Maps a protocol-neutral command to the 2.0.1 action and payload.
pub(crate) fn command(cmd: &Command) -> Result<(&'static str, Value), CommandError> {
    Ok(match cmd {
        Command::RemoteStart {
            evse_id,
            connector_id,
            id_tag,
        } => {
            // remoteStartId only has to be unique enough for the charger to correlate its
            // TransactionEvent; the clock gives that without shared state.
            let remote_start_id = (Utc::now().timestamp_millis() % i64::from(i32::MAX)) as i32;
            let mut p = json!({
                "idToken": { "idToken": id_tag, "type": "Central" },
                "remoteStartId": remote_start_id,
            });
            if let Some(e) = evse_of(*evse_id, *connector_id) {
                p["evseId"] = json!(e);
            }
            ("RequestStartTransaction", p)
        }
        Command::RemoteStop { transaction_ref } => (
            "RequestStopTransaction",
            json!({ "transactionId": transaction_ref }),
        ),
        Command::ChangeAvailability {
            evse_id,
            connector_id,
            available,
        } => {
            let mut p = json!({
                "operationalStatus": if *available { "Operative" } else { "Inoperative" },
            });
            if let Some(evse) = evse_type(*evse_id, *connector_id).filter(|e| e["id"] != 0) {
                p["evse"] = evse;
            }
            ("ChangeAvailability", p)
        }
        Command::Reset { hard } => (
            "Reset",
            json!({ "type": if *hard { "Immediate" } else { "OnIdle" } }),
        ),
        Command::UnlockConnector {
            evse_id,
            connector_id,
        } => (
            "UnlockConnector",
            json!({ "evseId": evse_id.unwrap_or(*connector_id), "connectorId": if evse_id.is_some() { *connector_id } else { 1 } }),
        ),
        Command::Trigger {
            message,
            evse_id,
            connector_id,
        } => {
            let mut p = json!({ "requestedMessage": message });
            if let Some(evse) = evse_type(*evse_id, *connector_id) {
                p["evse"] = evse;
            }
            ("TriggerMessage", p)
        }
        Command::GetConfiguration { keys } => {
            if keys.is_empty() {
                return Err(CommandError::Invalid(
                    "OCPP 2.0.1 needs keys (Component.Variable); use get-base-report for everything".to_owned(),
                ));
            }
            let data = keys
                .iter()
                .map(|k| {
                    component_variable(k).map(
                        |(c, v)| json!({ "component": { "name": c }, "variable": { "name": v } }),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            ("GetVariables", json!({ "getVariableData": data }))
        }
        Command::SetConfiguration { key, value } => {
            let (c, v) = component_variable(key)?;
            (
                "SetVariables",
                json!({ "setVariableData": [{ "attributeValue": value, "component": { "name": c }, "variable": { "name": v } }] }),
            )
        }
        Command::ClearCache => ("ClearCache", json!({})),
        Command::ReserveNow {
            evse_id,
            connector_id,
            id_tag,
            expiry,
            reservation_id,
        } => {
            let mut p = json!({
                "id": reservation_id,
                "expiryDateTime": expiry.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "idToken": { "idToken": id_tag, "type": "Central" },
            });
            // Without an EVSE (or with EVSE 0) the station reserves any EVSE it has free.
            if let Some(e) = evse_of(*evse_id, *connector_id).filter(|e| *e != 0) {
                p["evseId"] = json!(e);
            }
            ("ReserveNow", p)
        }
        Command::CancelReservation { reservation_id } => (
            "CancelReservation",
            json!({ "reservationId": reservation_id }),
        ),
        Command::GetBaseReport { report_base } => {
            let request_id = (Utc::now().timestamp_millis() % i64::from(i32::MAX)) as i32;
            (
                "GetBaseReport",
                json!({ "requestId": request_id, "reportBase": report_base }),
            )
        }
    })
}

pub(crate) fn reply_status(action: &str, payload: &Value) -> String {
    let nested = match action {
        "GetVariables" => payload.pointer("/getVariableResult/0/attributeStatus"),
        "SetVariables" => payload.pointer("/setVariableResult/0/attributeStatus"),
        _ => payload.get("status"),
    };
    nested
        .and_then(Value::as_str)
        .unwrap_or("Accepted")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_ocpp::Version;
    use chargeops_ocpp::schema::{self, Direction};
    use chrono::TimeZone;

    fn out(cmd: &Command) -> (&'static str, Value) {
        let (action, payload) = command(cmd).expect("maps");
        schema::validate(Version::V201, action, Direction::Request, &payload)
            .unwrap_or_else(|e| panic!("{action} {payload}: {e}"));
        (action, payload)
    }

    fn reserve(evse_id: Option<u32>, connector_id: Option<u32>) -> Command {
        Command::ReserveNow {
            evse_id,
            connector_id,
            id_tag: "Q3f9c0a17e2b4d6c81".into(),
            expiry: Utc
                .with_ymd_and_hms(2024, 5, 1, 10, 5, 0)
                .single()
                .expect("time"),
            reservation_id: 1_048_577,
        }
    }

    #[test]
    fn reserve_now_names_the_evse_and_a_central_token() {
        let want = json!({
            "id": 1_048_577,
            "expiryDateTime": "2024-05-01T10:05:00.000Z",
            "idToken": { "idToken": "Q3f9c0a17e2b4d6c81", "type": "Central" },
            "evseId": 2,
        });
        assert_eq!(
            out(&reserve(Some(2), Some(1))),
            ("ReserveNow", want.clone())
        );
        // A bare connector id names the EVSE (EVSE n has connector 1), as for the other commands.
        assert_eq!(out(&reserve(None, Some(2))), ("ReserveNow", want));
        // No EVSE, or EVSE 0: the station picks.
        for (e, c) in [(None, None), (Some(0), None)] {
            let (_, p) = out(&reserve(e, c));
            assert!(p.get("evseId").is_none(), "{p}");
        }
    }

    #[test]
    fn cancel_reservation_and_answers() {
        assert_eq!(
            out(&Command::CancelReservation { reservation_id: 9 }),
            ("CancelReservation", json!({ "reservationId": 9 }))
        );
        for status in ["Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"] {
            let answer = json!({ "status": status, "statusInfo": { "reasonCode": "x" } });
            assert_eq!(
                schema::validate(Version::V201, "ReserveNow", Direction::Response, &answer),
                Ok(())
            );
            assert_eq!(reply_status("ReserveNow", &answer), status);
        }
        // A 37-character token is more than 2.0.1 allows: refused before it reaches a charger.
        let mut long = reserve(Some(1), None);
        if let Command::ReserveNow { id_tag, .. } = &mut long {
            *id_tag = "x".repeat(37);
        }
        let (action, payload) = command(&long).expect("maps");
        assert!(schema::validate(Version::V201, action, Direction::Request, &payload).is_err());
    }
}
