//! Commands the platform sends to a charger, in protocol-neutral terms. The gateway maps each
//! to the charger's own OCPP version (RemoteStartTransaction or RequestStartTransaction, ...).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    RemoteStart {
        /// OCPP 2.0.1 EVSE; for OCPP 1.6 the connector is used.
        evse_id: Option<u32>,
        connector_id: Option<u32>,
        id_tag: String,
    },
    RemoteStop {
        /// The charger's transaction id (the session's `transaction_ref`).
        transaction_ref: String,
    },
    ChangeAvailability {
        evse_id: Option<u32>,
        connector_id: Option<u32>,
        available: bool,
    },
    Reset {
        hard: bool,
    },
    UnlockConnector {
        evse_id: Option<u32>,
        connector_id: u32,
    },
    Trigger {
        message: String,
        evse_id: Option<u32>,
        connector_id: Option<u32>,
    },
    GetConfiguration {
        keys: Vec<String>,
    },
    SetConfiguration {
        key: String,
        value: String,
    },
    ClearCache,
    GetBaseReport {
        report_base: String,
    },
    /// Holds a connector (or, with neither id or id 0, the charger as a whole) for `id_tag`
    /// until `expiry`: the charger lets only that tag start there meanwhile.
    ReserveNow {
        /// OCPP 2.0.1 EVSE; for OCPP 1.6 the connector is used.
        evse_id: Option<u32>,
        connector_id: Option<u32>,
        id_tag: String,
        expiry: DateTime<Utc>,
        /// Chosen by the platform; names the reservation in `CancelReservation` and in the
        /// charger's later messages.
        reservation_id: i32,
    },
    CancelReservation {
        reservation_id: i32,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::RemoteStart { .. } => "remote-start",
            Command::RemoteStop { .. } => "remote-stop",
            Command::ChangeAvailability { .. } => "change-availability",
            Command::Reset { .. } => "reset",
            Command::UnlockConnector { .. } => "unlock-connector",
            Command::Trigger { .. } => "trigger",
            Command::GetConfiguration { .. } => "get-configuration",
            Command::SetConfiguration { .. } => "set-configuration",
            Command::ClearCache => "clear-cache",
            Command::GetBaseReport { .. } => "get-base-report",
            Command::ReserveNow { .. } => "reserve-now",
            Command::CancelReservation { .. } => "cancel-reservation",
        }
    }
}

/// The charger's answer to a command: `status` is the charger's own status field when its reply
/// has one ("Accepted", "Rejected", ...), `response` the whole reply payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandReply {
    pub status: String,
    pub response: serde_json::Value,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CommandError {
    #[error("charger {0} is not connected")]
    Offline(String),
    #[error("charger did not answer within {0} s")]
    Timeout(u64),
    #[error("charger answered with error {code}: {description}")]
    CallError { code: String, description: String },
    #[error("command {command} is not supported by {protocol}")]
    Unsupported {
        command: &'static str,
        protocol: &'static str,
    },
    #[error("invalid command: {0}")]
    Invalid(String),
    #[error("charger connection closed before it answered")]
    Closed,
}

/// A reservation id for a ReserveNow that names none: positive, 31 bits, random. OCPP scopes it
/// to one charger, so clashes are as unlikely as two equal draws at one charger.
pub fn new_reservation_id() -> i32 {
    let n = u32::from_str_radix(&crate::secret::random_hex(4), 16).unwrap_or(1) & 0x7fff_ffff;
    i32::try_from(n.max(1)).unwrap_or(1)
}
