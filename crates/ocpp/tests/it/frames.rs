//! Frames in, frames (or error codes and answers) out.

use chargeops_ocpp::{
    Call, CallError, CallResult, ErrorCode, Frame, MAX_MESSAGE_ID_LEN, Version, decode,
    encode_call, encode_error, encode_result,
};
use serde_json::{Value, json};

use crate::{VERSIONS, data};

fn expected_frame(ok: &Value) -> Frame {
    let s = |i: usize| ok[i].as_str().expect("string in test data").to_owned();
    match ok[0].as_str() {
        Some("call") => Frame::Call(Call {
            id: s(1),
            action: s(2),
            payload: ok[3].clone(),
        }),
        Some("result") => Frame::CallResult(CallResult {
            id: s(1),
            payload: ok[2].clone(),
        }),
        Some("error") => Frame::CallError(CallError {
            id: s(1),
            code: s(2),
            description: s(3),
            details: ok[4].clone(),
        }),
        other => panic!("unknown frame kind {other:?}"),
    }
}

#[test]
fn frame_cases() {
    let cases = data("frames.json");
    let cases = cases.as_array().expect("array of cases");
    assert!(cases.len() >= 30);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let text = case["text"].as_str().expect("text");
        for (tag, v) in VERSIONS {
            let got = decode(text, v);
            if let Some(ok) = case.get("ok") {
                assert_eq!(got, Ok(expected_frame(ok)), "{name} ({tag})");
                continue;
            }
            let err = got.expect_err(name);
            assert_eq!(err.code.as_str(v), case["err"][tag], "{name} ({tag}): code");
            assert_eq!(err.id.as_deref(), case["id"].as_str(), "{name} ({tag}): id");
            assert!(!err.description.is_empty(), "{name}: description");
            let answered = match &case["answered"] {
                Value::Bool(b) => *b,
                per_version => per_version[tag].as_bool().expect("answered flag"),
            };
            match err.answer(v) {
                None => assert!(!answered, "{name} ({tag}): expected an answer"),
                Some(answer) => {
                    assert!(answered, "{name} ({tag}): expected silence, got {answer}");
                    let Ok(Frame::CallError(e)) = decode(&answer, v) else {
                        panic!("{name} ({tag}): answer {answer} is not a CALLERROR");
                    };
                    assert_eq!(
                        e.id,
                        err.id.clone().unwrap_or_else(|| "-1".into()),
                        "{name}"
                    );
                    assert_eq!(e.code, err.code.as_str(v), "{name}");
                    assert_eq!(e.details, json!({}), "{name}");
                }
            }
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = decode(&text, Version::V201).expect_err("too deep");
    assert_eq!(err.code, ErrorCode::RpcFrameworkError);
    let payload = format!(
        "[2,\"a\",\"Heartbeat\",{}{}]",
        "{\"a\":".repeat(5_000),
        "}".repeat(5_000)
    );
    let err = decode(&payload, Version::V16).expect_err("too deep");
    assert_eq!(err.code.as_str(Version::V16), "FormationViolation");
}

#[test]
fn numbers_come_out_as_they_went_in() {
    for text in [
        r#"[3,"n",{"a":0.1,"b":18446744073709551615,"c":-9223372036854775808,"d":1.7976931348623157e+308,"e":5e-324,"f":12345.678901234567}]"#,
        r#"[2,"n","MeterValues",{"v":0.30000000000000004,"w":-0.0,"x":1234.5}]"#,
    ] {
        let frame = decode(text, Version::V201).expect("valid frame");
        let again = match &frame {
            Frame::Call(c) => encode_call(&c.id, &c.action, &c.payload),
            Frame::CallResult(r) => encode_result(&r.id, &r.payload),
            Frame::CallError(_) => unreachable!(),
        };
        assert_eq!(again, text);
    }
}

#[test]
fn encode_spells_codes_per_version() {
    let cases = [
        (
            ErrorCode::FormatViolation,
            "FormationViolation",
            "FormatViolation",
        ),
        (
            ErrorCode::OccurrenceConstraintViolation,
            "OccurenceConstraintViolation",
            "OccurenceConstraintViolation",
        ),
        (
            ErrorCode::RpcFrameworkError,
            "FormationViolation",
            "RpcFrameworkError",
        ),
        (
            ErrorCode::MessageTypeNotSupported,
            "GenericError",
            "MessageTypeNotSupported",
        ),
        (
            ErrorCode::NotImplemented,
            "NotImplemented",
            "NotImplemented",
        ),
        (ErrorCode::SecurityError, "SecurityError", "SecurityError"),
    ];
    for (code, v16, v201) in cases {
        assert_eq!(code.as_str(Version::V16), v16);
        assert_eq!(code.as_str(Version::V201), v201);
        assert_eq!(
            encode_error("m1", code, Version::V16, "why", &json!({"k": 1})),
            format!(r#"[4,"m1","{v16}","why",{{"k":1}}]"#)
        );
        assert_eq!(
            encode_error("m1", code, Version::V201, "", &json!({})),
            format!(r#"[4,"m1","{v201}","",{{}}]"#)
        );
    }
}

#[test]
fn error_codes_parse_in_every_spelling() {
    let all = [
        ErrorCode::FormatViolation,
        ErrorCode::GenericError,
        ErrorCode::InternalError,
        ErrorCode::MessageTypeNotSupported,
        ErrorCode::NotImplemented,
        ErrorCode::NotSupported,
        ErrorCode::OccurrenceConstraintViolation,
        ErrorCode::PropertyConstraintViolation,
        ErrorCode::ProtocolError,
        ErrorCode::RpcFrameworkError,
        ErrorCode::SecurityError,
        ErrorCode::TypeConstraintViolation,
    ];
    for code in all {
        assert_eq!(ErrorCode::parse(code.as_str(Version::V201)), Some(code));
    }
    assert_eq!(
        ErrorCode::parse("FormationViolation"),
        Some(ErrorCode::FormatViolation)
    );
    assert_eq!(
        ErrorCode::parse("OccurenceConstraintViolation"),
        Some(ErrorCode::OccurrenceConstraintViolation)
    );
    assert_eq!(ErrorCode::parse("formatviolation"), None);
    assert_eq!(ErrorCode::parse(""), None);
}

#[test]
fn long_descriptions_are_cut_on_a_character_boundary() {
    let description = "é".repeat(400);
    let text = encode_error(
        "x",
        ErrorCode::GenericError,
        Version::V201,
        &description,
        &json!({}),
    );
    let Ok(Frame::CallError(e)) = decode(&text, Version::V201) else {
        panic!("not a CALLERROR")
    };
    assert_eq!(e.description.chars().count(), 255);
}

#[test]
fn subprotocols() {
    for v in [Version::V16, Version::V201] {
        assert_eq!(Version::from_subprotocol(v.subprotocol()), Some(v));
    }
    assert_eq!(Version::V16.subprotocol(), "ocpp1.6");
    assert_eq!(Version::V201.subprotocol(), "ocpp2.0.1");
    assert_eq!(Version::from_subprotocol("ocpp2.0"), None);
    assert_eq!(Version::from_subprotocol("OCPP1.6"), None);
    assert_eq!(MAX_MESSAGE_ID_LEN, 36);
}
