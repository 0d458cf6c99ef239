//! Cases, timeline entries, crews and audit entries. The names of kinds, states and categories
//! are part of the API contract (`GET /api/v1/cases`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// What a case is about: a problem the platform detected, or a hotline call.
    CaseKind {
        /// A connector reported Faulted.
        Faulted = "faulted",
        /// A charger stayed disconnected beyond the threshold.
        Offline = "offline",
        /// A session in charging state delivered no energy for too long.
        StuckSession = "stuck_session",
        /// Energy going backwards, or power above what the charger can deliver.
        MeterAnomaly = "meter_anomaly",
        /// The charger rejected or did not answer commands repeatedly.
        CommandFailures = "command_failures",
        /// Several boots within a short window.
        RebootLoop = "reboot_loop",
        /// Opened from a call and not (yet) matched to a detected problem.
        Hotline = "hotline",
    }
}

named_enum! {
    /// Where a case is in its life. Only `closed` is not open.
    CaseState {
        New = "new",
        Assigned = "assigned",
        EnRoute = "en_route",
        OnSite = "on_site",
        Resolved = "resolved",
        Verified = "verified",
        Closed = "closed",
    }
}

impl CaseState {
    pub fn is_open(self) -> bool {
        self != CaseState::Closed
    }
}

named_enum! {
    /// What a hotline caller is calling about. Detected cases are always `fault`.
    Category {
        Fault = "fault",
        StationQuestion = "station_question",
        BusinessQuestion = "business_question",
    }
}

named_enum! {
    /// How a case came in.
    Source {
        Detected = "detected",
        Hotline = "hotline",
    }
}

named_enum! {
    /// How urgent a case is; sets its SLA.
    Priority {
        High = "high",
        Medium = "medium",
        Low = "low",
    }
}

impl CaseKind {
    /// The detected kinds (every kind but `hotline`).
    pub fn is_detected(self) -> bool {
        self != CaseKind::Hotline
    }

    pub fn priority(self) -> Priority {
        match self {
            CaseKind::Faulted | CaseKind::Offline => Priority::High,
            CaseKind::StuckSession | CaseKind::RebootLoop | CaseKind::MeterAnomaly => {
                Priority::Medium
            }
            CaseKind::CommandFailures => Priority::Low,
            CaseKind::Hotline => Priority::High,
        }
    }

    /// The crew skill this kind of problem needs.
    pub fn skill(self) -> &'static str {
        match self {
            CaseKind::Faulted | CaseKind::StuckSession => "electrical",
            CaseKind::Offline | CaseKind::CommandFailures | CaseKind::RebootLoop => "network",
            CaseKind::MeterAnomaly => "metering",
            CaseKind::Hotline => "general",
        }
    }
}

/// One case: a problem with a charger (or a station, or a question) from the moment it is
/// known until it is closed. `connector_id` is the charger's outlet number as a caller or a
/// crew sees it: the OCPP 1.6 connectorId, the OCPP 2.0.1 EVSE id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Case {
    pub id: i64,
    pub kind: CaseKind,
    pub state: CaseState,
    pub source: Source,
    pub category: Category,
    pub priority: Priority,
    pub station_id: String,
    pub charger_id: Option<String>,
    pub connector_id: Option<u32>,
    /// One line for lists: "connector 1 faulted (GroundFailure)".
    pub title: String,
    pub description: Option<String>,
    pub error_code: Option<String>,
    pub caller_phone: Option<String>,
    pub crew_id: Option<String>,
    pub opened_at: DateTime<Utc>,
    /// When the state last changed.
    pub state_since: DateTime<Utc>,
    /// When the problem was last seen by detection (or reported): a session counts as proof
    /// of repair only if it started after this.
    pub last_seen_at: DateTime<Utc>,
    pub sla_due_at: DateTime<Utc>,
    pub sla_breached: bool,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub reopened: u32,
    pub resolution_note: Option<String>,
    pub parts_used: Vec<String>,
}

/// One line of a case's history: who did what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// A person's token name ("Li Wei (dispatcher)") or "platform".
    pub actor: String,
    /// What happened: `opened`, `assigned`, `accepted`, `en_route`, `on_site`, `resolved`,
    /// `verified`, `closed`, `reopened`, `merged`, `detected_again`, `cleared`, `note`,
    /// `sla_breached`, `remote_command`.
    pub action: String,
    /// The state after this entry.
    pub state: CaseState,
    pub detail: String,
}

impl TimelineEntry {
    pub fn new(
        at: DateTime<Utc>,
        actor: impl Into<String>,
        action: impl Into<String>,
        state: CaseState,
        detail: impl Into<String>,
    ) -> Self {
        TimelineEntry {
            at,
            actor: actor.into(),
            action: action.into(),
            state,
            detail: detail.into(),
        }
    }
}

/// The actor name for what the platform does by itself.
pub const PLATFORM: &str = "platform";

/// A field crew: who they are, what they can fix, when they work and where they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Crew {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub skills: Vec<String>,
    /// Current position (the depot, or the last site visited).
    pub lat: f64,
    pub lon: f64,
    /// Shift in local hours (China Standard Time, UTC+8): `start..end`, overnight when
    /// `start > end`, always on duty when equal.
    #[serde(default)]
    pub shift_start_hour: u8,
    #[serde(default = "default_shift_end")]
    pub shift_end_hour: u8,
    /// Average road speed, for travel time.
    #[serde(default = "default_speed")]
    pub speed_kmh: f64,
    #[serde(default)]
    pub phone: Option<String>,
    /// Driven by the demo's simulation rather than by people.
    #[serde(default)]
    pub simulated: bool,
}

fn default_shift_end() -> u8 {
    24
}

fn default_speed() -> f64 {
    70.0
}

/// One audited request: who asked for what, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: String,
    /// "POST /api/v1/cases/12/actions/resolve".
    pub action: String,
    pub status: u16,
    /// The error code for a refusal, or what changed.
    pub detail: String,
}
