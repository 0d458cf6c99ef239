//! Feeds arbitrary bytes through everything the gateway does with a charger's text frame:
//! decode, the answer to a bad frame, schema validation in both directions, and the
//! typed read of what validation accepted. Any panic is a bug.
//!
//! Run with `cargo +nightly fuzz run ocpp_frame` from the repository root.

#![no_main]

use chargeops_ocpp::schema::{self, Direction};
use chargeops_ocpp::{Frame, Version, decode, from_payload, v16, v201};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8 by protocol; lossy conversion still lets the fuzzer
    // reach the JSON layer with inputs that are almost valid.
    let text = String::from_utf8_lossy(data);
    for version in [Version::V16, Version::V201] {
        match decode(&text, version) {
            Ok(Frame::Call(call)) => {
                for dir in [Direction::Request, Direction::Response] {
                    if schema::validate(version, &call.action, dir, &call.payload).is_ok() {
                        typed(version, &call.action, dir, &call.payload);
                    }
                }
            }
            Ok(Frame::CallResult(result)) => {
                // A CALLRESULT carries no action; try it against a few response schemas.
                for action in [
                    "BootNotification",
                    "GetConfiguration",
                    "TransactionEvent",
                    "GetVariables",
                ] {
                    let _ = schema::validate(version, action, Direction::Response, &result.payload);
                }
            }
            Ok(Frame::CallError(error)) => {
                let _ = chargeops_ocpp::ErrorCode::parse(&error.code);
            }
            Err(e) => {
                let _ = e.answer(version);
            }
        }
    }
});

/// The typed read the gateway does after validation; it may refuse (32-bit ranges) but
/// must not panic.
fn typed(version: Version, action: &str, dir: Direction, payload: &serde_json::Value) {
    match (version, action, dir) {
        (Version::V16, "BootNotification", Direction::Request) => {
            let _ = from_payload::<v16::BootNotificationRequest>(payload);
        }
        (Version::V16, "StatusNotification", Direction::Request) => {
            let _ = from_payload::<v16::StatusNotificationRequest>(payload);
        }
        (Version::V16, "StartTransaction", Direction::Request) => {
            let _ = from_payload::<v16::StartTransactionRequest>(payload);
        }
        (Version::V16, "StopTransaction", Direction::Request) => {
            let _ = from_payload::<v16::StopTransactionRequest>(payload);
        }
        (Version::V16, "MeterValues", Direction::Request) => {
            let _ = from_payload::<v16::MeterValuesRequest>(payload);
        }
        (Version::V16, "RemoteStartTransaction", Direction::Request) => {
            let _ = from_payload::<v16::RemoteStartTransactionRequest>(payload);
        }
        (Version::V16, "GetConfiguration", Direction::Response) => {
            let _ = from_payload::<v16::GetConfigurationResponse>(payload);
        }
        (Version::V201, "BootNotification", Direction::Request) => {
            let _ = from_payload::<v201::BootNotificationRequest>(payload);
        }
        (Version::V201, "TransactionEvent", Direction::Request) => {
            let _ = from_payload::<v201::TransactionEventRequest>(payload);
        }
        (Version::V201, "MeterValues", Direction::Request) => {
            let _ = from_payload::<v201::MeterValuesRequest>(payload);
        }
        (Version::V201, "NotifyReport", Direction::Request) => {
            let _ = from_payload::<v201::NotifyReportRequest>(payload);
        }
        (Version::V201, "RequestStartTransaction", Direction::Request) => {
            let _ = from_payload::<v201::RequestStartTransactionRequest>(payload);
        }
        (Version::V201, "GetVariables", Direction::Response) => {
            let _ = from_payload::<v201::GetVariablesResponse>(payload);
        }
        _ => {}
    }
}
