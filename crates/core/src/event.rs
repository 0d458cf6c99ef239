//! What happened in the network, as every consumer downstream of the gateway sees it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::ConnectorStatus;

#[derive(Debug, Clone, PartialEq, Serialize)]
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
        }
    }
}
