//! Payload validation against the OCA JSON schemas, and the list of actions each version
//! defines.
//!
//! The schemas in `schemas/` are copied verbatim from the OCA release (via the Python
//! `ocpp` package) and embedded. Each is compiled once, on first use, into the small
//! node graph of the `compile` module; validating a payload then walks the payload and that graph
//! without allocating unless it fails.
//!
//! Violations map to OCPP error codes like this (OCPP-J 2.0.1 section 4.3 definitions):
//! - payload not an object, unknown property under `additionalProperties: false`:
//!   `FormatViolation` (the payload is not "syntactically correct" for the Action);
//! - missing required property, too few or too many array items:
//!   `OccurrenceConstraintViolation`;
//! - wrong JSON type, an integer that does not fit 64 bits: `TypeConstraintViolation`;
//! - enum, length, minimum/maximum, multipleOf, date-time format:
//!   `PropertyConstraintViolation` ("at least one field contains an invalid value");
//! - unknown action: `NotImplemented`; an action the version defines but this crate has
//!   no schema for: `NotSupported`.
//!
//! Where a payload has several faults the first one found is reported, checking at each
//! object: type, unknown properties, missing properties, then each property in schema
//! order. One precise error is what a charger's log needs; listing all of them would cost
//! on the hot path for no one's benefit.

mod compile;
mod table;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::{ErrorCode, Version};
use compile::Compiled;

/// Which of an action's two schemas applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The initiator's message (a CALL payload).
    Request,
    /// The answer (a CALLRESULT payload).
    Response,
}

/// Why a payload does not satisfy its schema.
///
/// `path` is a JSON pointer to the offending value ("" for the payload itself) and
/// `description` says what is wrong there ("longer than 20 characters"). `Display` joins
/// them into the text for a CALLERROR: "/idTag: longer than 20 characters", with
/// "payload" standing for the empty path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", shown_path(&self.path), self.description)]
pub struct SchemaError {
    pub code: ErrorCode,
    pub path: String,
    pub description: String,
}

fn shown_path(path: &str) -> &str {
    if path.is_empty() { "payload" } else { path }
}

struct Entry {
    request: Result<Compiled, String>,
    response: Result<Compiled, String>,
}

fn registry(version: Version) -> &'static HashMap<&'static str, Entry> {
    static V16: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    static V201: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    let (cell, sources) = match version {
        Version::V16 => (&V16, table::V16_SCHEMAS),
        Version::V201 => (&V201, table::V201_SCHEMAS),
    };
    cell.get_or_init(|| {
        sources
            .iter()
            .map(|&(action, request, response)| {
                let entry = Entry {
                    request: Compiled::from_text(request),
                    response: Compiled::from_text(response),
                };
                (action, entry)
            })
            .collect()
    })
}

fn all_actions(version: Version) -> &'static [&'static str] {
    match version {
        Version::V16 => table::V16_ACTIONS,
        Version::V201 => table::V201_ACTIONS,
    }
}

/// Whether the version's specification defines `action` (every action the OCA publishes a
/// schema for, including those this crate does not validate). The gateway answers
/// `NotSupported` for these and `NotImplemented` for anything else.
pub fn is_known_action(version: Version, action: &str) -> bool {
    all_actions(version).binary_search(&action).is_ok()
}

/// Whether this crate has the schema (and typed messages) for `action`.
pub fn has_schema(version: Version, action: &str) -> bool {
    registry(version).contains_key(action)
}

/// The actions this crate validates, in no particular order.
pub fn supported_actions(version: Version) -> impl Iterator<Item = &'static str> {
    registry(version).keys().copied()
}

/// Checks `payload` against the schema of `action` in direction `dir`.
pub fn validate(
    version: Version,
    action: &str,
    dir: Direction,
    payload: &Value,
) -> Result<(), SchemaError> {
    let Some(entry) = registry(version).get(action) else {
        let (code, why) = if is_known_action(version, action) {
            (ErrorCode::NotSupported, "is not supported")
        } else {
            (ErrorCode::NotImplemented, "is not a known action")
        };
        return Err(SchemaError {
            code,
            path: String::new(),
            description: format!("{action:?} {why} in {}", version.subprotocol()),
        });
    };
    let compiled = match dir {
        Direction::Request => &entry.request,
        Direction::Response => &entry.response,
    };
    let compiled = compiled.as_ref().map_err(|e| SchemaError {
        code: ErrorCode::InternalError,
        path: String::new(),
        description: format!("schema for {action} does not compile: {e}"),
    })?;
    // The root is checked here, not by the schema's `type`, because a payload that is not
    // an object is a format fault of the whole message, not a wrongly typed field.
    if !payload.is_object() {
        return Err(SchemaError {
            code: ErrorCode::FormatViolation,
            path: String::new(),
            description: "not a JSON object".into(),
        });
    }
    compiled.validate(payload)
}
