//! What the queue shows, and to whom: a ticket as its holder, the public, a token or staff see
//! it, a station's queue, the wait at a station, a driver's start at a reserved connector.

use chrono::{DateTime, Utc};
use serde::Serialize;

use chargeops_core::Role;
use chargeops_queue::contact::mask;
use chargeops_queue::{Ticket, TicketState};

use crate::Caller;

use super::reserve::Reservation;

/// Roles that run a service area's queue.
pub const STAFF: &[Role] = &[Role::Admin, Role::Operator, Role::Dispatcher];

/// Who is looking, which decides what a ticket shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The ticket's holder (knows the id), or a partner: no contact shown.
    Holder,
    Public,
    /// A token that is not staff: ids, masked contacts.
    Token,
    Staff,
}

impl Audience {
    /// Staff for a [`STAFF`] role, a token for any other, the public without one.
    pub fn of(caller: Option<&Caller>) -> Audience {
        match caller {
            Some(c) if STAFF.contains(&c.role) => Audience::Staff,
            Some(_) => Audience::Token,
            None => Audience::Public,
        }
    }

    /// Who names a ticket by its id: the public becomes its holder (the id is the capability).
    pub fn knowing_the_id(self) -> Audience {
        match self {
            Audience::Public => Audience::Holder,
            w => w,
        }
    }
}

/// A ticket as one audience sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    /// Everyone but the public.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub number: i64,
    pub station_id: String,
    pub position: Option<usize>,
    pub state: &'static str,
    /// The wait left: an estimate while waiting, 0 once called.
    pub estimated_wait_s: Option<i64>,
    pub called_at: Option<DateTime<Utc>>,
    pub plug_by: Option<DateTime<Utc>>,
    pub charger_id: Option<String>,
    pub evse_id: Option<u32>,
    pub connector_id: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub source: String,
    /// In full for staff, masked for tokens and the holder, absent for the public.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Option<String>>,
    /// Staff and tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_estimate_s: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passes: Option<u32>,
    pub reservation: Option<ReservationView>,
}

impl TicketView {
    pub(super) fn new(
        t: &Ticket,
        position: Option<usize>,
        estimate: Option<i64>,
        reservation: Option<&Reservation>,
        who: Audience,
    ) -> TicketView {
        let estimated_wait_s = match t.state {
            TicketState::Waiting => estimate,
            TicketState::Called | TicketState::Charging => Some(0),
            _ => None,
        };
        let contact = match who {
            Audience::Staff => Some(t.contact.clone()),
            Audience::Token | Audience::Holder => Some(t.contact.as_deref().map(mask)),
            Audience::Public => None,
        };
        let inside = matches!(who, Audience::Staff | Audience::Token);
        // The id tag starts a car on the reserved connector: only the holder and staff see it.
        let with_tag = matches!(who, Audience::Staff | Audience::Holder);
        TicketView {
            id: (who != Audience::Public).then(|| t.id.clone()),
            number: t.number,
            station_id: t.station_id.clone(),
            position,
            state: t.state.as_str(),
            estimated_wait_s,
            called_at: t.called_at,
            plug_by: t.plug_by,
            charger_id: t.charger_id.clone(),
            evse_id: t.evse_id,
            connector_id: t.connector_id,
            created_at: t.created_at,
            ended_at: t.ended_at,
            source: t.source.clone(),
            contact,
            initial_estimate_s: inside.then_some(t.initial_estimate_s),
            passes: inside.then_some(t.passes),
            reservation: reservation.map(|r| r.view(with_tag)),
        }
    }
}

/// A ticket's reservation on its charger, as its ticket shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReservationView {
    pub status: String,
    pub reservation_id: i32,
    pub charger_id: String,
    pub evse_id: u32,
    pub connector_id: u32,
    pub expiry: DateTime<Utc>,
    pub holding: bool,
    pub ended: Option<String>,
    pub cancel_status: Option<String>,
    /// Only for those who may start with it: the holder and staff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_tag: Option<String>,
}

/// A station's queue: counts, settings, the wait of a car joining now, and every active
/// ticket (charging and called first, then in call order).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StationQueue {
    pub station_id: String,
    pub waiting: usize,
    pub called: usize,
    pub charging: usize,
    pub max_waiting: u32,
    pub plug_in_secs: u64,
    pub estimated_wait_s: Option<i64>,
    pub tickets: Vec<TicketView>,
    pub at: DateTime<Utc>,
}

/// A remote start at a called ticket's reserved connector, with the charger's reply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Started {
    pub status: String,
    pub response: serde_json::Value,
    pub charger_id: String,
    pub connector_id: u32,
}

/// The wait at a station.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitEstimate {
    pub station_id: String,
    pub estimated_wait_s: Option<i64>,
    /// Waiting tickets.
    pub waiting: usize,
    /// Cars seen waiting (a sensor, staff counting).
    pub observed_waiting: usize,
    /// Cars the estimate puts ahead of this one.
    pub ahead: usize,
    pub connectors: WaitConnectors,
    pub typical_session_s: f64,
    pub history_sessions: usize,
    pub arrivals_per_hour: Option<f64>,
    /// `caller` or `forecast`, when an arrival rate was used.
    pub arrivals_source: Option<&'static str>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitConnectors {
    pub usable: usize,
    pub free: usize,
    pub busy: usize,
    pub reserved: usize,
}
