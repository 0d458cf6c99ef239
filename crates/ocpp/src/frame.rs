//! The OCPP-J RPC frame: `[2, id, action, payload]`, `[3, id, payload]`,
//! `[4, id, errorCode, errorDescription, errorDetails]` (OCPP-J 1.6 and 2.0.1 section 4).
//!
//! Error codes for a frame that cannot be decoded, with the reasoning (2.0.1 section 4.3
//! defines the codes; 1.6 spells some differently, see [`ErrorCode::as_str`]):
//!
//! | what is wrong                                   | code                      | id        |
//! |-------------------------------------------------|---------------------------|-----------|
//! | not JSON, not an array, empty array             | `RpcFrameworkError`       | none      |
//! | first element not a number                      | `RpcFrameworkError`       | none      |
//! | message id missing, not a string, over 36 chars | `RpcFrameworkError`       | none      |
//! | message type number not 2, 3 or 4              | `MessageTypeNotSupported` | if valid  |
//! | wrong element count for the type                | `RpcFrameworkError`       | yes       |
//! | action, errorCode or description not a string   | `RpcFrameworkError`       | yes       |
//! | payload or errorDetails not an object           | `FormatViolation`         | yes       |
//!
//! `RpcFrameworkError` is 2.0.1's "content of the call is not a valid RPC request, for
//! example: MessageId could not be read": everything wrong with the array around the
//! payload. `FormatViolation` ("payload for Action is syntactically incorrect") is kept for
//! the payload itself, which OCPP-J requires to be a JSON object, matching what schema
//! validation reports for the same fault. `MessageTypeNotSupported` is 2.0.1's own code for
//! an unknown type number. An id that is too long is not echoed: it is not a valid
//! message id, so the answer uses "-1" as for an unreadable one (the 2.0.1 rule).

use serde_json::{Map, Value};

use crate::{ErrorCode, Version};

/// Longest message id OCPP-J allows ("maximum of 36 characters", 1.6 and 2.0.1 alike).
pub const MAX_MESSAGE_ID_LEN: usize = 36;

/// Longest CALLERROR description we send. 2.0.1 does not bound it, but descriptions built
/// from outside input (property names, serde messages) must not grow a frame unboundedly,
/// and 255 is the length OCPP uses for free text elsewhere.
const MAX_DESCRIPTION_LEN: usize = 255;

/// One decoded OCPP-J message.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Call(Call),
    CallResult(CallResult),
    CallError(CallError),
}

impl Frame {
    /// The message id, to correlate a response with its request.
    pub fn id(&self) -> &str {
        match self {
            Frame::Call(c) => &c.id,
            Frame::CallResult(r) => &r.id,
            Frame::CallError(e) => &e.id,
        }
    }
}

/// A request: `[2, id, action, payload]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: String,
    pub action: String,
    pub payload: Value,
}

/// A successful response: `[3, id, payload]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    pub id: String,
    pub payload: Value,
}

/// An error response: `[4, id, errorCode, errorDescription, errorDetails]`.
///
/// `code` stays a string: a peer may send a code neither version defines, and that must
/// not make its answer unreadable. [`ErrorCode::parse`] reads the known ones.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    pub id: String,
    pub code: String,
    pub description: String,
    pub details: Value,
}

/// Why a text frame could not be decoded.
///
/// `id` is the message id when it could be read, and the answer must carry it; otherwise
/// the answer uses "-1" (the OCPP-J 2.0.1 rule for CALLERROR; done the same for 1.6, which says
/// nothing). [`FrameError::answer`] builds that answer, or says to stay silent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid frame: {description}")]
pub struct FrameError {
    pub id: Option<String>,
    pub code: ErrorCode,
    pub description: String,
    /// The message type number when it was one of 2, 3 or 4.
    pub message_type: Option<u8>,
}

impl FrameError {
    fn new(
        id: Option<&str>,
        code: ErrorCode,
        message_type: Option<u8>,
        description: String,
    ) -> Self {
        FrameError {
            id: id.map(str::to_owned),
            code,
            description,
            message_type,
        }
    }

    /// The CALLERROR frame to send back, or `None` when the specification says to send
    /// nothing:
    /// - the frame was a CALLRESULT or CALLERROR: a CALLERROR only ever answers a CALL,
    ///   and a peer would take it for an error about one of its own requests (2.0.1 has
    ///   no CALLRESULTERROR; that arrives with 2.1);
    /// - an unknown message type on 1.6: OCPP-J 1.6 section 4.1.3 says the receiver "SHALL
    ///   ignore" it, while 2.0.1 answers `MessageTypeNotSupported`.
    pub fn answer(&self, version: Version) -> Option<String> {
        if matches!(self.message_type, Some(3 | 4)) {
            return None;
        }
        if self.code == ErrorCode::MessageTypeNotSupported && version == Version::V16 {
            return None;
        }
        let id = self.id.as_deref().unwrap_or("-1");
        Some(encode_error(
            id,
            self.code,
            version,
            &self.description,
            &Value::Object(Map::new()),
        ))
    }
}

/// Decodes one WebSocket text frame.
///
/// The frame layout is the same in 1.6 and 2.0.1, so today `version` changes nothing
/// here: codes are spelled per version only when encoded, and [`FrameError::answer`]
/// applies the rules that differ. It is taken so 2.1's extra message types (SEND,
/// CALLRESULTERROR) can be added without changing every caller.
///
/// Numbers keep their exact value (the crate enables serde_json's `float_roundtrip`);
/// integers beyond 64 bits become floats and fail schema validation.
pub fn decode(text: &str, version: Version) -> Result<Frame, FrameError> {
    let _ = version;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        FrameError::new(
            None,
            ErrorCode::RpcFrameworkError,
            None,
            format!("not valid JSON: {e}"),
        )
    })?;
    let Value::Array(items) = value else {
        return Err(FrameError::new(
            None,
            ErrorCode::RpcFrameworkError,
            None,
            "message is not a JSON array".into(),
        ));
    };
    let message_type = match items.first() {
        None => {
            return Err(FrameError::new(
                None,
                ErrorCode::RpcFrameworkError,
                None,
                "message is an empty array".into(),
            ));
        }
        // `as_u64` is `None` for negative numbers and floats (2.0 included), which
        // are then unknown type numbers like 5 or 1e30.
        Some(Value::Number(n)) => n.as_u64(),
        Some(_) => {
            return Err(FrameError::new(
                None,
                ErrorCode::RpcFrameworkError,
                None,
                "message type is not a number".into(),
            ));
        }
    };
    let id = read_id(items.get(1));
    let known = match message_type {
        Some(2) => 2u8,
        Some(3) => 3,
        Some(4) => 4,
        _ => {
            let shown = items.first().map(Value::to_string).unwrap_or_default();
            return Err(FrameError::new(
                id.ok(),
                ErrorCode::MessageTypeNotSupported,
                None,
                format!("message type {shown} is not supported"),
            ));
        }
    };
    let id = match id {
        Ok(id) => id.to_owned(),
        Err(why) => {
            return Err(FrameError::new(
                None,
                ErrorCode::RpcFrameworkError,
                Some(known),
                why,
            ));
        }
    };
    let expected = match known {
        2 => 4,
        3 => 3,
        _ => 5,
    };
    if items.len() != expected {
        return Err(FrameError::new(
            Some(&id),
            ErrorCode::RpcFrameworkError,
            Some(known),
            format!(
                "message type {known} needs {expected} elements, got {}",
                items.len()
            ),
        ));
    }
    let mut items = items.into_iter().skip(2);
    let mut next = || items.next().unwrap_or(Value::Null);
    let err = |code, what: &str| FrameError::new(Some(&id), code, Some(known), what.to_owned());
    match known {
        2 => {
            let Value::String(action) = next() else {
                return Err(err(ErrorCode::RpcFrameworkError, "action is not a string"));
            };
            let payload = next();
            if !payload.is_object() {
                return Err(err(
                    ErrorCode::FormatViolation,
                    "payload is not a JSON object",
                ));
            }
            Ok(Frame::Call(Call {
                id,
                action,
                payload,
            }))
        }
        3 => {
            let payload = next();
            if !payload.is_object() {
                return Err(err(
                    ErrorCode::FormatViolation,
                    "payload is not a JSON object",
                ));
            }
            Ok(Frame::CallResult(CallResult { id, payload }))
        }
        _ => {
            let Value::String(code) = next() else {
                return Err(err(
                    ErrorCode::RpcFrameworkError,
                    "error code is not a string",
                ));
            };
            let Value::String(description) = next() else {
                return Err(err(
                    ErrorCode::RpcFrameworkError,
                    "error description is not a string",
                ));
            };
            let details = next();
            if !details.is_object() {
                return Err(err(
                    ErrorCode::FormatViolation,
                    "error details is not a JSON object",
                ));
            }
            Ok(Frame::CallError(CallError {
                id,
                code,
                description,
                details,
            }))
        }
    }
}

fn read_id(v: Option<&Value>) -> Result<&str, String> {
    match v {
        None => Err("message id is missing".into()),
        Some(Value::String(s)) => {
            // Byte length bounds the character count from above, so most ids skip counting.
            if s.len() > MAX_MESSAGE_ID_LEN && s.chars().count() > MAX_MESSAGE_ID_LEN {
                Err(format!(
                    "message id is longer than {MAX_MESSAGE_ID_LEN} characters"
                ))
            } else {
                Ok(s)
            }
        }
        Some(_) => Err("message id is not a string".into()),
    }
}

/// `[2, id, action, payload]`.
pub fn encode_call(id: &str, action: &str, payload: &Value) -> String {
    to_json(&(2u8, id, action, payload))
}

/// `[3, id, payload]`.
pub fn encode_result(id: &str, payload: &Value) -> String {
    to_json(&(3u8, id, payload))
}

/// `[4, id, errorCode, errorDescription, errorDetails]`, with the code spelled as
/// `version` does and the description cut to 255 characters.
pub fn encode_error(
    id: &str,
    code: ErrorCode,
    version: Version,
    description: &str,
    details: &Value,
) -> String {
    let description = match description.char_indices().nth(MAX_DESCRIPTION_LEN) {
        Some((cut, _)) => &description[..cut],
        None => description,
    };
    to_json(&(4u8, id, code.as_str(version), description, details))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serializing strings, small integers and `Value`s cannot fail: `Value` maps have
    // string keys and its numbers are always finite. The fallback only keeps this free
    // of panics.
    serde_json::to_string(v).unwrap_or_default()
}
