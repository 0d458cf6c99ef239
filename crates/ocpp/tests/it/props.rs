//! Property tests: the codec is an identity on valid frames, and no input panics.

use chargeops_ocpp::schema::{self, Direction};
use chargeops_ocpp::{
    Call, CallError, CallResult, ErrorCode, Frame, Version, decode, encode_call, encode_error,
    encode_result,
};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Property names that occur in the schemas, so generated objects reach past the first
/// `additionalProperties: false` and exercise nested schemas.
const KEYS: &[&str] = &[
    "idTag",
    "idToken",
    "type",
    "status",
    "connectorId",
    "evseId",
    "evse",
    "id",
    "meterValue",
    "sampledValue",
    "value",
    "timestamp",
    "transactionId",
    "transactionInfo",
    "customData",
    "vendorId",
    "chargingProfile",
    "chargingSchedule",
    "chargingSchedulePeriod",
    "limit",
    "idTagInfo",
    "idTokenInfo",
    "unitOfMeasure",
    "component",
    "variable",
    "getVariableData",
    "reportData",
    "variableAttribute",
    "eventData",
    "seqNo",
    "eventType",
    "triggerReason",
    "chargingStation",
    "reason",
    "currentTime",
    "interval",
    "data",
    "key",
    "configurationKey",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        (-1000i64..1000).prop_map(Number::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        "\\PC{0,40}".prop_map(Value::String),
        Just(Value::String("2024-05-01T10:00:00Z".into())),
        Just(Value::String("Accepted".into())),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), json()), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

fn id() -> impl Strategy<Value = String> {
    "\\PC{0,36}"
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V16), Just(Version::V201)]
}

fn code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(vec![
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
    ])
}

fn any_action() -> impl Strategy<Value = (Version, &'static str)> {
    let v16: Vec<&'static str> = schema::supported_actions(Version::V16).collect();
    let v201: Vec<&'static str> = schema::supported_actions(Version::V201).collect();
    prop_oneof![
        proptest::sample::select(v16).prop_map(|a| (Version::V16, a)),
        proptest::sample::select(v201).prop_map(|a| (Version::V201, a)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn call_round_trips(id in id(), action in "\\PC{0,40}", payload in object(), v in version()) {
        let text = encode_call(&id, &action, &payload);
        prop_assert_eq!(decode(&text, v), Ok(Frame::Call(Call { id, action, payload })));
    }

    #[test]
    fn result_round_trips(id in id(), payload in object(), v in version()) {
        let text = encode_result(&id, &payload);
        prop_assert_eq!(decode(&text, v), Ok(Frame::CallResult(CallResult { id, payload })));
    }

    #[test]
    fn error_round_trips(id in id(), code in code(), description in "\\PC{0,255}", details in object(), v in version()) {
        let text = encode_error(&id, code, v, &description, &details);
        let want = CallError { id, code: code.as_str(v).to_owned(), description, details };
        prop_assert_eq!(decode(&text, v), Ok(Frame::CallError(want)));
    }

    #[test]
    fn decode_never_panics_on_text(text in "\\PC{0,200}", v in version()) {
        let _ = decode(&text, v);
    }

    #[test]
    fn decode_never_panics_on_json(items in prop::collection::vec(json(), 0..7), head in -3i64..8, v in version()) {
        // Mostly arrays that start like a frame, so the checks after the type are reached.
        let mut frame = vec![Value::from(head)];
        frame.extend(items);
        let text = Value::Array(frame).to_string();
        if let Err(e) = decode(&text, v) {
            let _ = e.answer(v);
        }
        let half = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
        let _ = decode(&text[..half], v);
    }

    #[test]
    fn validate_never_panics((v, action) in any_action(), payload in json(), response in any::<bool>()) {
        let dir = if response { Direction::Response } else { Direction::Request };
        if let Err(e) = schema::validate(v, action, dir, &payload) {
            prop_assert!(!e.description.is_empty());
            prop_assert_ne!(e.code, ErrorCode::InternalError);
        }
    }

    #[test]
    fn validate_never_panics_on_objects((v, action) in any_action(), payload in object()) {
        let _ = schema::validate(v, action, Direction::Request, &payload);
        let _ = schema::validate(v, action, Direction::Response, &payload);
    }
}
