//! OCPP 1.6J: charger-initiated actions into the network model, and commands out of it.

use chrono::SecondsFormat;
use serde_json::{Value, json};

use chargeops_core::{
    BootInfo, Command, CommandError, ConnectorStatus, IdTagStatus, MeterSample, NewSession,
    Protocol, Registration, SessionStop,
};
use chargeops_ocpp::{ErrorCode, v16};

use crate::ctx::{CallFailure, Ctx, energy_register, index, internal, now_rfc3339, parse, wire};

fn map_status(raw: &str) -> ConnectorStatus {
    match raw {
        "Available" => ConnectorStatus::Available,
        "Preparing" | "SuspendedEV" | "SuspendedEVSE" | "Finishing" => ConnectorStatus::Occupied,
        "Charging" => ConnectorStatus::Charging,
        "Reserved" => ConnectorStatus::Reserved,
        "Unavailable" => ConnectorStatus::Unavailable,
        _ => ConnectorStatus::Faulted,
    }
}

fn id_tag_info(status: IdTagStatus) -> Value {
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
            let req: v16::AuthorizeRequest = parse(payload)?;
            let status = ctx.authorize(&req.id_tag).await?;
            Ok(json!({ "idTagInfo": id_tag_info(status) }))
        }
        "StartTransaction" => start(ctx, parse(payload)?).await,
        "StopTransaction" => stop(ctx, parse(payload)?).await,
        "MeterValues" => meter_values(ctx, parse(payload)?).await,
        "DataTransfer" => {
            let req: v16::DataTransferRequest = parse(payload)?;
            tracing::info!(charger_id = %ctx.charger_id, vendor_id = %req.vendor_id, "data transfer from an unknown vendor");
            Ok(json!({ "status": "UnknownVendorId" }))
        }
        "DiagnosticsStatusNotification" | "FirmwareStatusNotification" => {
            tracing::info!(charger_id = %ctx.charger_id, action, status = %payload["status"], "charger reported");
            Ok(json!({}))
        }
        other => Err((
            ErrorCode::NotSupported,
            format!("action {other} is not supported"),
        )),
    }
}

async fn boot(ctx: &mut Ctx, req: v16::BootNotificationRequest) -> Result<Value, CallFailure> {
    let info = BootInfo {
        vendor: Some(req.charge_point_vendor.clone()),
        model: Some(req.charge_point_model.clone()),
        serial_number: req
            .charge_point_serial_number
            .clone()
            .or(req.charge_box_serial_number.clone()),
        firmware_version: req.firmware_version.clone(),
    };
    ctx.gw
        .store
        .record_boot(&ctx.charger_id, Protocol::Ocpp16, &info, ctx.gw.live.now())
        .await
        .map_err(internal)?;
    let registration = ctx.refresh_registration().await?;
    ctx.publish_boot();
    let interval = ctx.gw.config.heartbeat_interval.as_secs();
    let status = match registration {
        Registration::Accepted => "Accepted",
        Registration::Pending => "Pending",
        Registration::Rejected => "Rejected",
    };
    tracing::info!(charger_id = %ctx.charger_id, vendor = %req.charge_point_vendor, model = %req.charge_point_model, status, "boot notification");
    Ok(json!({ "status": status, "currentTime": now_rfc3339(ctx), "interval": interval }))
}

async fn status(ctx: &mut Ctx, req: v16::StatusNotificationRequest) -> Result<Value, CallFailure> {
    let raw = wire(&req.status);
    let error_code = wire(&req.error_code);
    let error_code = (error_code != "NoError").then_some(error_code);
    let connector = index(req.connector_id, "connectorId")?;
    if connector == 0 {
        // Connector 0 is the charger as a whole; it is logged, not listed as a connector.
        tracing::info!(charger_id = %ctx.charger_id, status = %raw, error_code, "charger-level status");
        return Ok(json!({}));
    }
    let at = req.timestamp.unwrap_or_else(|| ctx.gw.live.now());
    ctx.apply_status(
        connector,
        connector,
        map_status(&raw),
        Some(raw),
        error_code,
        at,
    )
    .await?;
    Ok(json!({}))
}

async fn start(ctx: &mut Ctx, req: v16::StartTransactionRequest) -> Result<Value, CallFailure> {
    let auth = ctx.authorize(&req.id_tag).await?;
    let connector = index(req.connector_id, "connectorId")?;
    if let Some(reservation_id) = req.reservation_id {
        // The charger has ended the reservation by starting on it; whoever reserved follows
        // the session through its id tag.
        tracing::info!(charger_id = %ctx.charger_id, connector, reservation_id, "transaction started on a reservation");
    }
    // The session is recorded whatever the tag's status: the charger has started it and will
    // stop it itself when told the tag is not accepted, and that energy is real.
    let session = ctx
        .start_session(&NewSession {
            charger_id: ctx.charger_id.clone(),
            evse_id: connector,
            connector_id: connector,
            transaction_ref: None,
            id_tag: Some(req.id_tag.clone()),
            started_at: req.timestamp,
            meter_start_wh: Some(req.meter_start),
            seq_no: None,
        })
        .await?;
    let transaction_id = i32::try_from(session.id)
        .map_err(|_| internal("session id no longer fits an OCPP 1.6 transactionId"))?;
    Ok(json!({ "transactionId": transaction_id, "idTagInfo": id_tag_info(auth) }))
}

async fn stop(ctx: &mut Ctx, req: v16::StopTransactionRequest) -> Result<Value, CallFailure> {
    let reference = req.transaction_id.to_string();
    let session = ctx.find_session(&reference).await?;
    let answer = match &req.id_tag {
        Some(tag) => json!({ "idTagInfo": id_tag_info(ctx.authorize(tag).await?) }),
        None => json!({}),
    };
    let Some(session) = session else {
        // Answering an error would make the charger retry forever; the spec wants the
        // stop accepted. The energy is still logged for reconciliation.
        tracing::warn!(charger_id = %ctx.charger_id, transaction_id = req.transaction_id, meter_stop = req.meter_stop, "stop for an unknown transaction");
        return Ok(answer);
    };
    if let Some(data) = &req.transaction_data {
        let samples = samples(ctx, session.evse_id, Some(session.id), data);
        ctx.record_meter(&samples, None).await?;
    }
    let reason = req.reason.as_ref().map(wire).or(Some("Local".to_owned()));
    ctx.stop_session(
        session.id,
        &SessionStop {
            stopped_at: req.timestamp,
            meter_stop_wh: Some(req.meter_stop),
            energy_wh: None,
            reason,
            seq_no: None,
        },
    )
    .await?;
    Ok(answer)
}

async fn meter_values(ctx: &mut Ctx, req: v16::MeterValuesRequest) -> Result<Value, CallFailure> {
    let connector = index(req.connector_id, "connectorId")?;
    let session = match req.transaction_id {
        Some(tx) => ctx.find_session(&tx.to_string()).await?,
        None => None,
    };
    let samples = samples(
        ctx,
        connector,
        session.as_ref().map(|s| s.id),
        &req.meter_value,
    );
    let energy = match (&session, energy_register(&samples)) {
        (Some(s), Some(register)) if s.stopped_at.is_none() => {
            Some((s, s.meter_start_wh.map(|start| register - start), None))
        }
        _ => None,
    };
    ctx.record_meter(&samples, energy).await?;
    Ok(json!({}))
}

fn samples(
    ctx: &Ctx,
    connector: u32,
    session_id: Option<i64>,
    values: &[v16::MeterValue],
) -> Vec<MeterSample> {
    let mut out = Vec::new();
    for mv in values {
        for sv in &mv.sampled_value {
            // The schema allows any string; a value that is not a number is kept out of the
            // history rather than refused, since the rest of the message is good.
            let Ok(value) = sv.value.trim().parse::<f64>() else {
                tracing::warn!(charger_id = %ctx.charger_id, value = %sv.value, "non-numeric sampled value skipped");
                continue;
            };
            if !value.is_finite() {
                continue;
            }
            out.push(MeterSample {
                charger_id: ctx.charger_id.clone(),
                evse_id: connector,
                connector_id: connector,
                session_id,
                at: mv.timestamp,
                measurand: sv
                    .measurand
                    .as_ref()
                    .map(wire)
                    .unwrap_or_else(|| "Energy.Active.Import.Register".to_owned()),
                phase: sv.phase.as_ref().map(wire),
                unit: Some(
                    sv.unit
                        .as_ref()
                        .map(wire)
                        .unwrap_or_else(|| "Wh".to_owned()),
                ),
                value,
            });
        }
    }
    out
}

/// Maps a protocol-neutral command to the 1.6 action and payload.
pub(crate) fn command(cmd: &Command) -> Result<(&'static str, Value), CommandError> {
    Ok(match cmd {
        Command::RemoteStart {
            evse_id,
            connector_id,
            id_tag,
        } => {
            let mut p = json!({ "idTag": id_tag });
            if let Some(c) = connector_id.or(*evse_id) {
                p["connectorId"] = json!(c);
            }
            ("RemoteStartTransaction", p)
        }
        Command::RemoteStop { transaction_ref } => {
            let id: i32 = transaction_ref.parse().map_err(|_| {
                CommandError::Invalid(format!(
                    "{transaction_ref:?} is not an OCPP 1.6 transaction id"
                ))
            })?;
            ("RemoteStopTransaction", json!({ "transactionId": id }))
        }
        Command::ChangeAvailability {
            evse_id,
            connector_id,
            available,
        } => (
            "ChangeAvailability",
            json!({
                "connectorId": connector_id.or(*evse_id).unwrap_or(0),
                "type": if *available { "Operative" } else { "Inoperative" },
            }),
        ),
        Command::Reset { hard } => (
            "Reset",
            json!({ "type": if *hard { "Hard" } else { "Soft" } }),
        ),
        Command::UnlockConnector { connector_id, .. } => {
            ("UnlockConnector", json!({ "connectorId": connector_id }))
        }
        Command::Trigger {
            message,
            evse_id,
            connector_id,
        } => {
            let mut p = json!({ "requestedMessage": message });
            if let Some(c) = connector_id.or(*evse_id) {
                p["connectorId"] = json!(c);
            }
            ("TriggerMessage", p)
        }
        Command::GetConfiguration { keys } => {
            if keys.is_empty() {
                ("GetConfiguration", json!({}))
            } else {
                ("GetConfiguration", json!({ "key": keys }))
            }
        }
        Command::SetConfiguration { key, value } => {
            ("ChangeConfiguration", json!({ "key": key, "value": value }))
        }
        Command::ClearCache => ("ClearCache", json!({})),
        Command::ReserveNow {
            evse_id,
            connector_id,
            id_tag,
            expiry,
            reservation_id,
        } => (
            "ReserveNow",
            json!({
                // Connector 0 reserves the charger as a whole (ReserveConnectorZeroSupported).
                "connectorId": connector_id.or(*evse_id).unwrap_or(0),
                "expiryDate": expiry.to_rfc3339_opts(SecondsFormat::Millis, true),
                "idTag": id_tag,
                "reservationId": reservation_id,
            }),
        ),
        Command::CancelReservation { reservation_id } => (
            "CancelReservation",
            json!({ "reservationId": reservation_id }),
        ),
        Command::GetBaseReport { .. } => {
            return Err(CommandError::Unsupported {
                command: cmd.name(),
                protocol: "ocpp1.6",
            });
        }
    })
}

/// The status to report for a charger's answer.
pub(crate) fn reply_status(action: &str, payload: &Value) -> String {
    match (action, payload.get("status").and_then(Value::as_str)) {
        (_, Some(s)) => s.to_owned(),
        // GetConfiguration has no status: an answer is the success.
        _ => "Accepted".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_ocpp::Version;
    use chargeops_ocpp::schema::{self, Direction};
    use chrono::{TimeZone, Utc};

    fn out(cmd: &Command) -> (&'static str, Value) {
        let (action, payload) = command(cmd).expect("maps");
        schema::validate(Version::V16, action, Direction::Request, &payload)
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
    fn reserve_now_names_the_connector() {
        let want = |c: u32| {
            json!({
                "connectorId": c,
                "expiryDate": "2024-05-01T10:05:00.000Z",
                "idTag": "Q3f9c0a17e2b4d6c81",
                "reservationId": 1_048_577,
            })
        };
        assert_eq!(out(&reserve(Some(1), Some(2))), ("ReserveNow", want(2)));
        assert_eq!(out(&reserve(Some(3), None)), ("ReserveNow", want(3)));
        // Neither: connector 0, the charger as a whole.
        assert_eq!(out(&reserve(None, None)), ("ReserveNow", want(0)));
    }

    #[test]
    fn cancel_reservation_and_answers() {
        assert_eq!(
            out(&Command::CancelReservation { reservation_id: 9 }),
            ("CancelReservation", json!({ "reservationId": 9 }))
        );
        for status in ["Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"] {
            let answer = json!({ "status": status });
            assert_eq!(
                schema::validate(Version::V16, "ReserveNow", Direction::Response, &answer),
                Ok(())
            );
            assert_eq!(reply_status("ReserveNow", &answer), status);
        }
        assert!(
            schema::validate(
                Version::V16,
                "CancelReservation",
                Direction::Response,
                &json!({ "status": "Occupied" })
            )
            .is_err()
        );
        // A 21-character tag is more than 1.6 allows: refused before it reaches a charger.
        let mut long = reserve(Some(1), None);
        if let Command::ReserveNow { id_tag, .. } = &mut long {
            *id_tag = "x".repeat(21);
        }
        let (action, payload) = command(&long).expect("maps");
        assert!(schema::validate(Version::V16, action, Direction::Request, &payload).is_err());
    }
}
