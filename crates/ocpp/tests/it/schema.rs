//! Payloads in, verdicts (code, path, description) out.

use std::collections::BTreeSet;

use chargeops_ocpp::schema::{self, Direction};
use chargeops_ocpp::{ErrorCode, Version, status_of};
use serde_json::json;

use crate::{VERSIONS, data, version};

fn dir(tag: &str) -> Direction {
    match tag {
        "request" => Direction::Request,
        "response" => Direction::Response,
        other => panic!("unknown direction {other}"),
    }
}

#[test]
fn every_example_validates() {
    for (tag, v) in VERSIONS {
        let messages = data(&format!("{tag}_messages.json"));
        for (action, pair) in messages.as_object().expect("object") {
            for d in ["request", "response"] {
                let result = schema::validate(v, action, dir(d), &pair[d]);
                assert_eq!(result, Ok(()), "{tag} {action} {d}");
            }
        }
    }
}

#[test]
fn every_supported_action_has_an_example() {
    for (tag, v) in VERSIONS {
        let messages = data(&format!("{tag}_messages.json"));
        let examples: BTreeSet<&str> = messages
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let supported: BTreeSet<&str> = schema::supported_actions(v).collect();
        assert_eq!(examples, supported, "{tag}");
        for action in supported {
            assert!(schema::is_known_action(v, action), "{tag} {action}");
            assert!(schema::has_schema(v, action), "{tag} {action}");
        }
    }
}

#[test]
fn violations_give_the_right_code_and_path() {
    let cases = data("violations.json");
    for case in cases.as_array().expect("array") {
        let v = version(case["v"].as_str().expect("v"));
        let action = case["action"].as_str().expect("action");
        let err = schema::validate(
            v,
            action,
            dir(case["dir"].as_str().expect("dir")),
            &case["payload"],
        )
        .expect_err(&format!("{case} must fail"));
        assert_eq!(err.code.as_str(v), case["code"], "{case}: {err:?}");
        assert_eq!(err.path, case["path"], "{case}: {err:?}");
        if let Some(description) = case.get("description") {
            assert_eq!(err.description, *description, "{case}");
        }
        if let Some(display) = case.get("display") {
            assert_eq!(err.to_string(), *display, "{case}");
        }
        let shown = if err.path.is_empty() {
            "payload"
        } else {
            &err.path
        };
        assert_eq!(err.to_string(), format!("{shown}: {}", err.description));
        assert!(!err.description.is_empty());
    }
}

#[test]
fn schemas_all_compile() {
    // A schema that does not compile surfaces as InternalError; an empty payload must
    // instead meet an ordinary verdict for every action and direction.
    for (tag, v) in VERSIONS {
        for action in schema::supported_actions(v) {
            for d in [Direction::Request, Direction::Response] {
                if let Err(e) = schema::validate(v, action, d, &json!({})) {
                    assert_ne!(e.code, ErrorCode::InternalError, "{tag} {action}: {e}");
                }
            }
        }
    }
}

#[test]
fn known_actions() {
    use Version::{V16, V201};
    for (v, action, known) in [
        (V16, "BootNotification", true),
        (V16, "ReserveNow", true),
        (V16, "SendLocalList", true),
        (V16, "SignedUpdateFirmware", true),
        (V16, "GetCompositeSchedule", true),
        (V16, "TransactionEvent", false),
        (V16, "bootnotification", false),
        (V16, "", false),
        (V201, "TransactionEvent", true),
        (V201, "NotifyEVChargingNeeds", true),
        (V201, "Get15118EVCertificate", true),
        (V201, "StartTransaction", false),
        (V201, "BootNotificationRequest", false),
    ] {
        assert_eq!(schema::is_known_action(v, action), known, "{v:?} {action}");
    }
    assert!(schema::has_schema(V16, "ReserveNow"));
    assert!(!schema::has_schema(V16, "SendLocalList"));
}

#[test]
fn timestamps_are_lenient_about_offsets_only() {
    for (ts, ok) in [
        ("2024-05-01T10:06:00Z", true),
        ("2024-05-01T10:06:00.123456Z", true),
        ("2024-05-01T12:06:00+02:00", true),
        ("2024-05-01T10:06:00-00:00", true),
        ("2024-05-01T10:06:00", true),
        ("2024-05-01T10:06:00.5", true),
        ("2024-05-01 10:06:00Z", true),
        ("2024-05-01", false),
        ("2024-05-01T10:06Z", false),
        ("2024-02-30T10:06:00Z", false),
        ("1714558000", false),
        ("", false),
    ] {
        let payload =
            json!({"timestamp": ts, "connectorStatus": "Available", "evseId": 1, "connectorId": 1});
        let got = schema::validate(
            Version::V201,
            "StatusNotification",
            Direction::Request,
            &payload,
        );
        assert_eq!(got.is_ok(), ok, "{ts}: {got:?}");
    }
}

#[test]
fn open_types_accept_vendor_properties() {
    let payload = json!({"customData": {"vendorId": "com.example", "anything": [1, {"x": null}]}});
    assert_eq!(
        schema::validate(Version::V201, "Heartbeat", Direction::Request, &payload),
        Ok(())
    );
    let payload = json!({"vendorId": "v", "data": {"free": ["form", 1, true, null]}});
    assert_eq!(
        schema::validate(Version::V201, "DataTransfer", Direction::Request, &payload),
        Ok(())
    );
}

#[test]
fn status_is_read_generically() {
    assert_eq!(
        status_of(&json!({"status": "Accepted"})),
        Some("Accepted".into())
    );
    assert_eq!(status_of(&json!({"status": 1})), None);
    assert_eq!(status_of(&json!({"configurationKey": []})), None);
    assert_eq!(status_of(&json!([])), None);
}
