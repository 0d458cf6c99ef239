//! The protocol-neutral network model: stations contain chargers, chargers contain EVSEs and
//! connectors, connectors carry one internal status, and sessions record energy delivered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The protocol a charger speaks: an OCPP version as negotiated on the WebSocket subprotocol,
/// or YKC (云快充, binary over TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Protocol {
    #[serde(rename = "ocpp1.6")]
    Ocpp16,
    #[serde(rename = "ocpp2.0.1")]
    Ocpp201,
    #[serde(rename = "ykc")]
    Ykc,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ocpp16 => "ocpp1.6",
            Protocol::Ocpp201 => "ocpp2.0.1",
            Protocol::Ykc => "ykc",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ocpp1.6" => Some(Protocol::Ocpp16),
            "ocpp2.0.1" => Some(Protocol::Ocpp201),
            "ykc" => Some(Protocol::Ykc),
            _ => None,
        }
    }
}

/// The one internal connector status every protocol maps into at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorStatus {
    Available,
    /// Plugged in or preparing, not delivering energy.
    Occupied,
    Charging,
    Reserved,
    Unavailable,
    Faulted,
    /// The charger is not connected.
    Offline,
}

impl ConnectorStatus {
    pub const ALL: [ConnectorStatus; 7] = [
        ConnectorStatus::Available,
        ConnectorStatus::Occupied,
        ConnectorStatus::Charging,
        ConnectorStatus::Reserved,
        ConnectorStatus::Unavailable,
        ConnectorStatus::Faulted,
        ConnectorStatus::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorStatus::Available => "available",
            ConnectorStatus::Occupied => "occupied",
            ConnectorStatus::Charging => "charging",
            ConnectorStatus::Reserved => "reserved",
            ConnectorStatus::Unavailable => "unavailable",
            ConnectorStatus::Faulted => "faulted",
            ConnectorStatus::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A site: a highway service area, an urban car park, a depot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Station {
    pub id: String,
    pub name: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub highway: Option<String>,
    pub direction: Option<String>,
}

/// Whether the platform lets a charger in once it has authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    Accepted,
    /// Booted but held until an operator accepts it (BootNotification answered Pending).
    Pending,
    Rejected,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Accepted => "accepted",
            Registration::Pending => "pending",
            Registration::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(Registration::Accepted),
            "pending" => Some(Registration::Pending),
            "rejected" => Some(Registration::Rejected),
            _ => None,
        }
    }
}

/// A charger as the platform records it. `password_hash` is never serialised outward by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Charger {
    pub id: String,
    pub station_id: String,
    pub protocol: Option<Protocol>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub firmware_version: Option<String>,
    pub registration: Registration,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_boot_at: Option<DateTime<Utc>>,
}

impl Charger {
    /// A charger registered at `created_at` to a station and accepted, before its first boot:
    /// nothing known yet of what it is.
    pub fn registered(
        id: String,
        station_id: String,
        password_hash: Option<String>,
        created_at: DateTime<Utc>,
    ) -> Charger {
        Charger {
            id,
            station_id,
            protocol: None,
            vendor: None,
            model: None,
            serial_number: None,
            firmware_version: None,
            registration: Registration::Accepted,
            password_hash,
            created_at,
            last_boot_at: None,
        }
    }
}

/// What a charger reports about itself in a boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BootInfo {
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub firmware_version: Option<String>,
}

/// One connector's last known status. OCPP 1.6 has no EVSE level: there `evse_id` equals the
/// OCPP connectorId and `connector_id` is the same number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectorState {
    pub evse_id: u32,
    pub connector_id: u32,
    pub status: ConnectorStatus,
    /// The status the charger reported in its own vocabulary ("SuspendedEV", "Occupied", ...).
    pub raw_status: Option<String>,
    pub error_code: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A charging session. `id` is the platform's id; `transaction_ref` is the charger's own
/// transaction id (OCPP 1.6: the id we assigned, as text; OCPP 2.0.1: the charger's string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Session {
    pub id: i64,
    pub charger_id: String,
    pub evse_id: u32,
    pub connector_id: u32,
    pub transaction_ref: String,
    pub id_tag: Option<String>,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub meter_start_wh: Option<i64>,
    pub meter_stop_wh: Option<i64>,
    pub energy_wh: Option<i64>,
    pub stop_reason: Option<String>,
    /// Highest OCPP 2.0.1 TransactionEvent seqNo applied, for de-duplicating replays.
    pub last_seq_no: Option<i64>,
}

/// A session the charger started; the store makes it exactly once.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    pub charger_id: String,
    pub evse_id: u32,
    pub connector_id: u32,
    /// OCPP 2.0.1 transaction id. For OCPP 1.6 `None`: the store assigns `id` and uses it.
    pub transaction_ref: Option<String>,
    pub id_tag: Option<String>,
    pub started_at: DateTime<Utc>,
    pub meter_start_wh: Option<i64>,
    pub seq_no: Option<i64>,
}

/// The end of a session, as the charger reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStop {
    pub stopped_at: DateTime<Utc>,
    pub meter_stop_wh: Option<i64>,
    /// Energy delivered when the charger reports it directly rather than as a register.
    pub energy_wh: Option<i64>,
    pub reason: Option<String>,
    pub seq_no: Option<i64>,
}

/// One sampled meter reading kept as history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeterSample {
    pub charger_id: String,
    pub evse_id: u32,
    pub connector_id: u32,
    pub session_id: Option<i64>,
    pub at: DateTime<Utc>,
    pub measurand: String,
    pub phase: Option<String>,
    pub unit: Option<String>,
    pub value: f64,
}

/// An entry of the authorization list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdTag {
    pub id_tag: String,
    pub status: IdTagStatus,
    pub expiry: Option<DateTime<Utc>>,
    pub parent_id_tag: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdTagStatus {
    Accepted,
    Blocked,
    Expired,
    Invalid,
}

impl IdTagStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IdTagStatus::Accepted => "accepted",
            IdTagStatus::Blocked => "blocked",
            IdTagStatus::Expired => "expired",
            IdTagStatus::Invalid => "invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(IdTagStatus::Accepted),
            "blocked" => Some(IdTagStatus::Blocked),
            "expired" => Some(IdTagStatus::Expired),
            "invalid" => Some(IdTagStatus::Invalid),
            _ => None,
        }
    }
}

impl IdTag {
    /// The answer to give a charger asking about this tag at `now`.
    pub fn effective_status(&self, now: DateTime<Utc>) -> IdTagStatus {
        match (self.status, self.expiry) {
            (IdTagStatus::Accepted, Some(expiry)) if expiry <= now => IdTagStatus::Expired,
            (status, _) => status,
        }
    }
}

/// An API caller's role; later issues widen what each may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
    /// Hotline agent: looks stations up, opens cases from calls, follows them.
    Agent,
    /// Assigns crews to cases, closes them.
    Dispatcher,
    /// A field crew member: works the orders of their own crew (`ApiToken::crew_id`).
    Crew,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Dispatcher => "dispatcher",
            Role::Crew => "crew",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            "agent" => Some(Role::Agent),
            "dispatcher" => Some(Role::Dispatcher),
            "crew" => Some(Role::Crew),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    /// The field crew a `crew` token acts for.
    #[serde(default)]
    pub crew_id: Option<String>,
}
