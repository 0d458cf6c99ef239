//! OCPP-J for OCPP 1.6J and 2.0.1: frames, schema validation and typed messages. No IO.
//!
//! The gateway reads a WebSocket text frame and hands it to [`decode`]; a [`Call`] then
//! goes through [`schema::validate`] before its payload is read into a typed message from
//! [`v16`] or [`v201`]. Every failure carries the OCPP error code to answer with, so a
//! malformed message becomes a CALLERROR, never a dropped socket. Nothing here panics on
//! outside input, which is why the whole crate can be fed to a fuzzer (see `fuzz/`).
//!
//! ```
//! use chargeops_ocpp::schema::{self, Direction};
//! use chargeops_ocpp::{Frame, Version, decode, encode_error, encode_result, from_payload, v16};
//! use serde_json::json;
//!
//! let text = r#"[2,"19223201","Authorize",{"idTag":"04A2B3C4D5E680"}]"#;
//! let answer = match decode(text, Version::V16) {
//!     Ok(Frame::Call(call)) => match schema::validate(Version::V16, &call.action, Direction::Request, &call.payload) {
//!         Ok(()) => {
//!             let req: v16::AuthorizeRequest = from_payload(&call.payload).expect("validated");
//!             assert_eq!(req.id_tag, "04A2B3C4D5E680");
//!             Some(encode_result(&call.id, &json!({"idTagInfo": {"status": "Accepted"}})))
//!         }
//!         Err(e) => Some(encode_error(&call.id, e.code, Version::V16, &e.to_string(), &json!({}))),
//!     },
//!     Ok(_) => None, // responses go to whoever waits for them
//!     Err(e) => e.answer(Version::V16),
//! };
//! assert_eq!(answer.as_deref(), Some(r#"[3,"19223201",{"idTagInfo":{"status":"Accepted"}}]"#));
//! ```
//!
//! Module map:
//! - [`frame`](crate::decode): the `[2, id, action, payload]` array codec.
//! - [`schema`]: a small JSON-schema validator over the OCA schemas, compiled once.
//! - [`v16`], [`v201`]: serde types generated from the same schemas by `tools/gen.py`.

mod frame;
pub mod schema;
mod time;
pub mod v16;
pub mod v201;

pub use frame::{
    Call, CallError, CallResult, Frame, FrameError, MAX_MESSAGE_ID_LEN, decode, encode_call,
    encode_error, encode_result,
};
pub use time::parse as parse_timestamp;

/// The OCPP version a connection speaks, chosen by WebSocket subprotocol negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V16,
    V201,
}

impl Version {
    /// The WebSocket subprotocol name (OCPP-J 1.6 section 3.1.2, 2.0.1 section 3.1.2).
    pub fn subprotocol(self) -> &'static str {
        match self {
            Version::V16 => "ocpp1.6",
            Version::V201 => "ocpp2.0.1",
        }
    }

    /// The version for a subprotocol name; `None` for one this crate does not speak.
    pub fn from_subprotocol(s: &str) -> Option<Version> {
        match s {
            "ocpp1.6" => Some(Version::V16),
            "ocpp2.0.1" => Some(Version::V201),
            _ => None,
        }
    }
}

/// CALLERROR error codes (OCPP-J 1.6 section 4.2.3, 2.0.1 section 4.3).
///
/// The variants use the 2.0.1 names; [`ErrorCode::as_str`] spells each one as the
/// connection's version does on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    FormatViolation,
    GenericError,
    InternalError,
    MessageTypeNotSupported,
    NotImplemented,
    NotSupported,
    OccurrenceConstraintViolation,
    PropertyConstraintViolation,
    ProtocolError,
    RpcFrameworkError,
    SecurityError,
    TypeConstraintViolation,
}

impl ErrorCode {
    /// The code as the given version spells it on the wire.
    ///
    /// OCPP-J 1.6 misspells two codes and its errata sheet (section 5, "known issues that
    /// will not be fixed") keeps them: `FormationViolation` and `OccurenceConstraintViolation`.
    /// OCPP 2.0.1 fixed the first (`FormatViolation`) but still spells
    /// `OccurenceConstraintViolation`; the correct spelling arrives only with 2.1. Two
    /// independent implementations agree (the Python `ocpp` package and ocpp-go), and
    /// [`ErrorCode::parse`] accepts either spelling from peers.
    /// 1.6 also lacks two 2.0.1 codes, mapped to the nearest 1.6 one:
    /// - `RpcFrameworkError` ("not a valid RPC request, e.g. the message id could not be
    ///   read") becomes `FormationViolation`, which 1.6 defines as "syntactically incorrect
    ///   or not conform the PDU structure": an unreadable frame is exactly that.
    /// - `MessageTypeNotSupported` becomes `GenericError`, 1.6's code for "any other error
    ///   not covered by the previous ones"; `NotSupported` and `NotImplemented` are about an
    ///   Action, which a frame of unknown type does not have. (1.6 says to ignore such a
    ///   frame anyway; see [`FrameError::answer`].)
    pub fn as_str(self, v: Version) -> &'static str {
        match (self, v) {
            (ErrorCode::FormatViolation, Version::V16) => "FormationViolation",
            (ErrorCode::FormatViolation, Version::V201) => "FormatViolation",
            (ErrorCode::OccurrenceConstraintViolation, _) => "OccurenceConstraintViolation",
            (ErrorCode::RpcFrameworkError, Version::V16) => "FormationViolation",
            (ErrorCode::RpcFrameworkError, Version::V201) => "RpcFrameworkError",
            (ErrorCode::MessageTypeNotSupported, Version::V16) => "GenericError",
            (ErrorCode::MessageTypeNotSupported, Version::V201) => "MessageTypeNotSupported",
            (ErrorCode::GenericError, _) => "GenericError",
            (ErrorCode::InternalError, _) => "InternalError",
            (ErrorCode::NotImplemented, _) => "NotImplemented",
            (ErrorCode::NotSupported, _) => "NotSupported",
            (ErrorCode::PropertyConstraintViolation, _) => "PropertyConstraintViolation",
            (ErrorCode::ProtocolError, _) => "ProtocolError",
            (ErrorCode::SecurityError, _) => "SecurityError",
            (ErrorCode::TypeConstraintViolation, _) => "TypeConstraintViolation",
        }
    }

    /// Reads a code from a received CALLERROR, accepting every spelling of either version
    /// (peers mix them up, and what matters to us is the meaning).
    pub fn parse(s: &str) -> Option<ErrorCode> {
        Some(match s {
            "FormatViolation" | "FormationViolation" => ErrorCode::FormatViolation,
            "GenericError" => ErrorCode::GenericError,
            "InternalError" => ErrorCode::InternalError,
            "MessageTypeNotSupported" => ErrorCode::MessageTypeNotSupported,
            "NotImplemented" => ErrorCode::NotImplemented,
            "NotSupported" => ErrorCode::NotSupported,
            "OccurrenceConstraintViolation" | "OccurenceConstraintViolation" => {
                ErrorCode::OccurrenceConstraintViolation
            }
            "PropertyConstraintViolation" => ErrorCode::PropertyConstraintViolation,
            "ProtocolError" => ErrorCode::ProtocolError,
            "RpcFrameworkError" => ErrorCode::RpcFrameworkError,
            "SecurityError" => ErrorCode::SecurityError,
            "TypeConstraintViolation" => ErrorCode::TypeConstraintViolation,
            _ => return None,
        })
    }
}

/// The `status` string of a response payload, so the gateway can log and count outcomes
/// without knowing each response type. `None` when there is no string `status` at the top
/// level (1.6 `GetConfiguration`, `Heartbeat`, and `Authorize` whose status sits in
/// `idTagInfo`).
pub fn status_of(payload: &serde_json::Value) -> Option<String> {
    payload.get("status")?.as_str().map(str::to_owned)
}

/// Reads a payload into a typed message, after [`schema::validate`] accepted it.
///
/// The schemas cannot say everything the Rust types do: an OCPP integer is 32-bit
/// (OCPP 2.0.1 part 2, primitive datatypes) but the schemas only say `integer`. What the
/// schema let through and the type refuses is a value out of range, hence
/// `PropertyConstraintViolation`.
pub fn from_payload<T: serde::de::DeserializeOwned>(
    payload: &serde_json::Value,
) -> Result<T, schema::SchemaError> {
    T::deserialize(payload).map_err(|e| schema::SchemaError {
        code: ErrorCode::PropertyConstraintViolation,
        path: String::new(),
        description: e.to_string(),
    })
}

/// Writes a typed message as a payload.
pub fn to_payload<T: serde::Serialize>(message: &T) -> serde_json::Value {
    // The generated types serialize only strings, numbers, booleans, maps with string
    // keys and finite-by-construction floats, none of which serde_json refuses; a NaN
    // limit would become `null` and be caught by validation of outgoing messages.
    serde_json::to_value(message).unwrap_or(serde_json::Value::Null)
}
