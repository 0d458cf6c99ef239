//! What happened in the network, as every consumer downstream of the gateway sees it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::ConnectorStatus;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ChargerOnline {
        charger_id: String,
        station_id: String,
        protocol: String,
        at: DateTime<Utc>,
    },
    ChargerOffline {
        charger_id: String,
        station_id: String,
        at: DateTime<Utc>,
    },
    StatusChanged {
        charger_id: String,
        station_id: String,
        evse_id: u32,
        connector_id: u32,
        status: ConnectorStatus,
        previous: Option<ConnectorStatus>,
        error_code: Option<String>,
        at: DateTime<Utc>,
    },
    SessionStarted {
        session_id: i64,
        charger_id: String,
        station_id: String,
        evse_id: u32,
        connector_id: u32,
        id_tag: Option<String>,
        at: DateTime<Utc>,
    },
    /// The number of cars waiting for a charger at a station changed.
    QueueChanged {
        station_id: String,
        waiting: u64,
        at: DateTime<Utc>,
    },
    SessionStopped {
        session_id: i64,
        charger_id: String,
        station_id: String,
        evse_id: u32,
        connector_id: u32,
        energy_wh: Option<i64>,
        reason: Option<String>,
        /// What the session cost, in the network's currency, when the charger's protocol
        /// bills (YKC transaction records carry time-of-use amounts); absent otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        cost: Option<f64>,
        at: DateTime<Utc>,
    },
    /// A charger's meter reading of one EVSE: the energy register and the power, when the
    /// message carried them. High volume; the SSE feed leaves it out.
    MeterReading {
        charger_id: String,
        station_id: String,
        evse_id: u32,
        session_id: Option<i64>,
        energy_wh: Option<i64>,
        power_w: Option<f64>,
        at: DateTime<Utc>,
    },
    /// A charger booted (BootNotification), whatever its registration.
    ChargerBooted {
        charger_id: String,
        station_id: String,
        at: DateTime<Utc>,
    },
    /// A command to a charger was rejected, errored or not answered in time.
    CommandFailed {
        charger_id: String,
        station_id: String,
        command: String,
        reason: String,
        at: DateTime<Utc>,
    },
    /// An operations case was opened or changed state (`kind` and `state` as the cases API
    /// names them).
    CaseChanged {
        case_id: i64,
        station_id: String,
        charger_id: Option<String>,
        kind: String,
        state: String,
        crew_id: Option<String>,
        at: DateTime<Utc>,
    },
    /// Something in a station's robot lot changed: a robot's report, task or state, a car
    /// arriving, served or leaving, a staff override. Pages refetch the lot.
    LotChanged {
        station_id: String,
        /// What happened, in a word the lot view can show (`report`, `assigned`, `override`,
        /// `car_added`, `car_served`, `robot_offline`, ...).
        reason: String,
        at: DateTime<Utc>,
    },
    /// The mobile units' relocation plan was made again (`version` counts plans since start).
    UnitsPlanned {
        version: u64,
        /// Why it was re-planned: `start`, `forecast`, `capacity`, `hourly`, `unit_report`,
        /// `unit_added`, `unit_removed` or `request`.
        reason: String,
        at: DateTime<Utc>,
    },
    /// A mobile unit reported where it is and what it does (its tracker or staff), so maps move
    /// it without asking.
    UnitMoved {
        unit_id: String,
        lat: f64,
        lon: f64,
        /// `ready`, `driving`, `serving` or `broken`.
        status: String,
        /// Where it is, or where it is driving.
        station_id: Option<String>,
        at: DateTime<Utc>,
    },
}

impl Event {
    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ChargerOnline { .. } => "charger_online",
            Event::ChargerOffline { .. } => "charger_offline",
            Event::StatusChanged { .. } => "status_changed",
            Event::SessionStarted { .. } => "session_started",
            Event::SessionStopped { .. } => "session_stopped",
            Event::QueueChanged { .. } => "queue_changed",
            Event::MeterReading { .. } => "meter_reading",
            Event::ChargerBooted { .. } => "charger_booted",
            Event::CommandFailed { .. } => "command_failed",
            Event::CaseChanged { .. } => "case_changed",
            Event::LotChanged { .. } => "lot_changed",
            Event::UnitsPlanned { .. } => "units_planned",
            Event::UnitMoved { .. } => "unit_moved",
        }
    }
}
