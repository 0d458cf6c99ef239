//! Payload in, typed message, payload out: the same JSON (up to key order).

use chargeops_ocpp::schema::{self, Direction};
use chargeops_ocpp::{ErrorCode, Version, from_payload, parse_timestamp, to_payload, v16, v201};
use chrono::{TimeZone, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::data;

type RoundTrip = fn(&Value) -> Result<Value, String>;

fn rt<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = from_payload(v).map_err(|e| e.to_string())?;
    Ok(to_payload(&typed))
}

macro_rules! table {
    ($module:ident: $($action:literal => $req:ident, $res:ident;)*) => {
        &[$(($action, rt::<$module::$req> as RoundTrip, rt::<$module::$res> as RoundTrip)),*]
    };
}

const V16: &[(&str, RoundTrip, RoundTrip)] = table! { v16:
    "BootNotification" => BootNotificationRequest, BootNotificationResponse;
    "Heartbeat" => HeartbeatRequest, HeartbeatResponse;
    "StatusNotification" => StatusNotificationRequest, StatusNotificationResponse;
    "Authorize" => AuthorizeRequest, AuthorizeResponse;
    "StartTransaction" => StartTransactionRequest, StartTransactionResponse;
    "StopTransaction" => StopTransactionRequest, StopTransactionResponse;
    "MeterValues" => MeterValuesRequest, MeterValuesResponse;
    "DataTransfer" => DataTransferRequest, DataTransferResponse;
    "DiagnosticsStatusNotification" => DiagnosticsStatusNotificationRequest, DiagnosticsStatusNotificationResponse;
    "FirmwareStatusNotification" => FirmwareStatusNotificationRequest, FirmwareStatusNotificationResponse;
    "SecurityEventNotification" => SecurityEventNotificationRequest, SecurityEventNotificationResponse;
    "RemoteStartTransaction" => RemoteStartTransactionRequest, RemoteStartTransactionResponse;
    "RemoteStopTransaction" => RemoteStopTransactionRequest, RemoteStopTransactionResponse;
    "ChangeAvailability" => ChangeAvailabilityRequest, ChangeAvailabilityResponse;
    "Reset" => ResetRequest, ResetResponse;
    "UnlockConnector" => UnlockConnectorRequest, UnlockConnectorResponse;
    "GetConfiguration" => GetConfigurationRequest, GetConfigurationResponse;
    "ChangeConfiguration" => ChangeConfigurationRequest, ChangeConfigurationResponse;
    "TriggerMessage" => TriggerMessageRequest, TriggerMessageResponse;
    "ClearCache" => ClearCacheRequest, ClearCacheResponse;
    "ReserveNow" => ReserveNowRequest, ReserveNowResponse;
    "CancelReservation" => CancelReservationRequest, CancelReservationResponse;
};

const V201: &[(&str, RoundTrip, RoundTrip)] = table! { v201:
    "BootNotification" => BootNotificationRequest, BootNotificationResponse;
    "Heartbeat" => HeartbeatRequest, HeartbeatResponse;
    "StatusNotification" => StatusNotificationRequest, StatusNotificationResponse;
    "Authorize" => AuthorizeRequest, AuthorizeResponse;
    "TransactionEvent" => TransactionEventRequest, TransactionEventResponse;
    "MeterValues" => MeterValuesRequest, MeterValuesResponse;
    "NotifyEvent" => NotifyEventRequest, NotifyEventResponse;
    "SecurityEventNotification" => SecurityEventNotificationRequest, SecurityEventNotificationResponse;
    "NotifyReport" => NotifyReportRequest, NotifyReportResponse;
    "DataTransfer" => DataTransferRequest, DataTransferResponse;
    "FirmwareStatusNotification" => FirmwareStatusNotificationRequest, FirmwareStatusNotificationResponse;
    "LogStatusNotification" => LogStatusNotificationRequest, LogStatusNotificationResponse;
    "RequestStartTransaction" => RequestStartTransactionRequest, RequestStartTransactionResponse;
    "RequestStopTransaction" => RequestStopTransactionRequest, RequestStopTransactionResponse;
    "ChangeAvailability" => ChangeAvailabilityRequest, ChangeAvailabilityResponse;
    "Reset" => ResetRequest, ResetResponse;
    "UnlockConnector" => UnlockConnectorRequest, UnlockConnectorResponse;
    "GetVariables" => GetVariablesRequest, GetVariablesResponse;
    "SetVariables" => SetVariablesRequest, SetVariablesResponse;
    "GetBaseReport" => GetBaseReportRequest, GetBaseReportResponse;
    "TriggerMessage" => TriggerMessageRequest, TriggerMessageResponse;
    "ClearCache" => ClearCacheRequest, ClearCacheResponse;
    "ReservationStatusUpdate" => ReservationStatusUpdateRequest, ReservationStatusUpdateResponse;
    "ReserveNow" => ReserveNowRequest, ReserveNowResponse;
    "CancelReservation" => CancelReservationRequest, CancelReservationResponse;
};

/// JSON equality, except that timestamps compare as instants: the types write every
/// timestamp back in UTC, whatever offset it arrived with.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            x == y
                || matches!((parse_timestamp(x), parse_timestamp(y)), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

#[test]
fn examples_round_trip_through_the_types() {
    for (tag, v, table) in [("v16", Version::V16, V16), ("v201", Version::V201, V201)] {
        let messages = data(&format!("{tag}_messages.json"));
        assert_eq!(
            messages.as_object().map(|m| m.len()),
            Some(table.len()),
            "{tag}"
        );
        for (action, request, response) in table {
            let pair = &messages[*action];
            for (d, dir, f) in [
                ("request", Direction::Request, request),
                ("response", Direction::Response, response),
            ] {
                let input = &pair[d];
                assert!(input.is_object(), "{tag} {action} {d}: missing example");
                let output = f(input).unwrap_or_else(|e| panic!("{tag} {action} {d}: {e}"));
                // Key order is not compared: serde_json's maps are sorted either way.
                assert!(
                    same(&output, input),
                    "{tag} {action} {d}:\n  out {output}\n  in  {input}"
                );
                assert_eq!(
                    schema::validate(v, action, dir, &output),
                    Ok(()),
                    "{tag} {action} {d}"
                );
            }
        }
    }
}

#[test]
fn empty_payloads_serialize_to_empty_objects() {
    assert_eq!(
        serde_json::to_string(&v16::HeartbeatRequest {}).ok(),
        Some("{}".into())
    );
    assert_eq!(
        serde_json::to_string(&v16::ClearCacheRequest {}).ok(),
        Some("{}".into())
    );
    assert_eq!(
        serde_json::to_string(&v16::StatusNotificationResponse {}).ok(),
        Some("{}".into())
    );
    let heartbeat = v201::HeartbeatRequest { custom_data: None };
    assert_eq!(serde_json::to_string(&heartbeat).ok(), Some("{}".into()));
    let clear = v201::ClearCacheRequest { custom_data: None };
    assert_eq!(serde_json::to_string(&clear).ok(), Some("{}".into()));
}

#[test]
fn timestamps_read_any_offset_and_none_as_utc() {
    let want = Utc.with_ymd_and_hms(2024, 5, 1, 10, 6, 0).single();
    for ts in [
        "2024-05-01T10:06:00Z",
        "2024-05-01T12:06:00+02:00",
        "2024-05-01T05:06:00-05:00",
        "2024-05-01T10:06:00",
    ] {
        let payload = json!({"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": ts});
        let msg: v16::StatusNotificationRequest =
            from_payload(&payload).unwrap_or_else(|e| panic!("{ts}: {e}"));
        assert_eq!(msg.timestamp, want, "{ts}");
        // Written back in UTC with a Z.
        assert_eq!(to_payload(&msg)["timestamp"], "2024-05-01T10:06:00Z");
    }
    let bad = json!({"currentTime": "tomorrow"});
    assert!(from_payload::<v16::HeartbeatResponse>(&bad).is_err());
}

#[test]
fn typed_reads_expose_enums_and_names() {
    let boot: v201::BootNotificationRequest = from_payload(&json!({
        "chargingStation": {"model": "M", "vendorName": "V"}, "reason": "RemoteReset"
    }))
    .expect("valid");
    assert_eq!(boot.reason, v201::BootReasonEnumType::RemoteReset);
    assert_eq!(boot.charging_station.vendor_name, "V");

    let sv: v201::SampledValueType = from_payload(
        &json!({"value": 1.5, "measurand": "Energy.Active.Import.Register", "phase": "L1-N"}),
    )
    .expect("valid");
    assert_eq!(
        sv.measurand,
        Some(v201::MeasurandEnumType::EnergyActiveImportRegister)
    );
    assert_eq!(sv.phase.map(v201::PhaseEnumType::as_str), Some("L1-N"));

    let token: v201::IdTokenType =
        from_payload(&json!({"idToken": "E1", "type": "eMAID"})).expect("valid");
    assert_eq!(token.r#type, v201::IdTokenEnumType::Emaid);
    assert_eq!(
        to_payload(&token),
        json!({"idToken": "E1", "type": "eMAID"})
    );

    let stop: v16::StopTransactionRequest = from_payload(&json!({
        "meterStop": 5_000_000_000i64, "timestamp": "2024-05-01T10:00:00Z", "transactionId": 7, "reason": "EVDisconnected"
    }))
    .expect("valid");
    assert_eq!(stop.meter_stop, 5_000_000_000);
    assert_eq!(stop.reason, Some(v16::Reason::EVDisconnected));
    assert_eq!(v16::Reason::EVDisconnected.as_str(), "EVDisconnected");
    assert_eq!(
        v16::ChargePointErrorCode::EVCommunicationError.as_str(),
        "EVCommunicationError"
    );
}

#[test]
fn out_of_range_integers_fail_cleanly() {
    // Fits the schema's `integer` (64-bit here) but not OCPP's 32-bit connector id.
    let payload =
        json!({"connectorId": 3_000_000_000i64, "errorCode": "NoError", "status": "Available"});
    assert_eq!(
        schema::validate(
            Version::V16,
            "StatusNotification",
            Direction::Request,
            &payload
        ),
        Ok(())
    );
    let err = from_payload::<v16::StatusNotificationRequest>(&payload).expect_err("out of range");
    assert_eq!(err.code, ErrorCode::PropertyConstraintViolation);
}
