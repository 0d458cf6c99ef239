//! A queue ticket and its state machine, and the order waiting tickets are called in.
//!
//! ```text
//! waiting --call--> called --plugged--> charging --finished--> done
//!    |  ^             |  |
//!    |  +--skip/requeue--+ +--no-show--> expired --requeue--> waiting
//!    +--cancel--> cancelled <--cancel--+
//! ```
//!
//! Order: waiting tickets are called by ascending `order_key`. A new ticket goes to the end
//! (the largest key plus [`ORDER_STEP`]); a skipped ticket goes just behind the next waiting one;
//! a re-queued ticket goes to the end again.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Gap between the keys of consecutive new tickets, so a skip can slot in between.
pub const ORDER_STEP: i64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    Waiting,
    Called,
    Charging,
    Done,
    Cancelled,
    Expired,
}

impl TicketState {
    pub const ALL: [TicketState; 6] = [
        TicketState::Waiting,
        TicketState::Called,
        TicketState::Charging,
        TicketState::Done,
        TicketState::Cancelled,
        TicketState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Waiting => "waiting",
            TicketState::Called => "called",
            TicketState::Charging => "charging",
            TicketState::Done => "done",
            TicketState::Cancelled => "cancelled",
            TicketState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Still in the queue or at a charger: holds the contact's one number at the station.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TicketState::Waiting | TicketState::Called | TicketState::Charging
        )
    }
}

/// One queue number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Unguessable: knowing it is what lets a driver follow and cancel the ticket without a token.
    pub id: String,
    /// The number shown and called out; per station, assigned by the store.
    pub number: i64,
    pub station_id: String,
    /// Normalised phone or plate; `None` for a number staff handed out on paper.
    pub contact: Option<String>,
    pub state: TicketState,
    pub order_key: i64,
    pub created_at: DateTime<Utc>,
    pub called_at: Option<DateTime<Utc>>,
    /// The connector reserved for the ticket while called, and used while charging.
    pub charger_id: Option<String>,
    pub evse_id: Option<u32>,
    pub connector_id: Option<u32>,
    /// A called ticket expires when nobody plugs in by then.
    pub plug_by: Option<DateTime<Utc>>,
    pub charging_at: Option<DateTime<Utc>>,
    /// When it became done, cancelled or expired.
    pub ended_at: Option<DateTime<Utc>>,
    /// The wait estimated when the ticket was taken, kept to measure the estimator.
    pub initial_estimate_s: Option<i64>,
    /// Who took it: `driver`, `staff`, `partner`.
    pub source: String,
    /// Times its turn was passed (skips and no-shows).
    pub passes: u32,
}

/// Something that happens to a ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketAction {
    /// Its turn: a connector is reserved for it (or none, when staff call it by hand).
    Call {
        connector: Option<(String, u32, u32)>,
        plug_within: Duration,
    },
    /// The car plugged into the reserved connector.
    Plugged,
    /// The car left the connector.
    Finished,
    Cancel,
    /// Nobody plugged in within the window.
    NoShow,
    /// Staff pass its turn: behind the next waiting ticket (`next_key`, if any).
    Skip {
        next_key: Option<(i64, Option<i64>)>,
    },
    /// Staff put it back at the end of the queue (`last_key`: the largest key at the station).
    Requeue {
        last_key: i64,
    },
    /// The reserved connector became unusable before the car came: back to the front.
    Release,
}

impl TicketAction {
    pub fn name(&self) -> &'static str {
        match self {
            TicketAction::Call { .. } => "call",
            TicketAction::Plugged => "plugged",
            TicketAction::Finished => "finished",
            TicketAction::Cancel => "cancel",
            TicketAction::NoShow => "no_show",
            TicketAction::Skip { .. } => "skip",
            TicketAction::Requeue { .. } => "requeue",
            TicketAction::Release => "release",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {state} ticket cannot {action}")]
pub struct TransitionError {
    pub state: &'static str,
    pub action: &'static str,
}

impl Ticket {
    /// A new waiting ticket; the store assigns `number`.
    pub fn new(
        id: String,
        station_id: &str,
        contact: Option<String>,
        order_key: i64,
        now: DateTime<Utc>,
        source: &str,
    ) -> Ticket {
        Ticket {
            id,
            number: 0,
            station_id: station_id.to_owned(),
            contact,
            state: TicketState::Waiting,
            order_key,
            created_at: now,
            called_at: None,
            charger_id: None,
            evse_id: None,
            connector_id: None,
            plug_by: None,
            charging_at: None,
            ended_at: None,
            initial_estimate_s: None,
            source: source.to_owned(),
            passes: 0,
        }
    }

    /// Whether this ticket holds the connector.
    pub fn holds(&self, charger_id: &str, evse_id: u32, connector_id: u32) -> bool {
        self.charger_id.as_deref() == Some(charger_id)
            && self.connector_id == Some(connector_id)
            && self.evse_id.is_none_or(|e| e == evse_id)
    }

    fn clear_connector(&mut self) {
        self.charger_id = None;
        self.evse_id = None;
        self.connector_id = None;
        self.plug_by = None;
    }

    /// The ticket after `action` at `now`, or why it cannot happen. Never changes `self`.
    pub fn apply(
        &self,
        action: &TicketAction,
        now: DateTime<Utc>,
    ) -> Result<Ticket, TransitionError> {
        use TicketState as S;
        let refuse = || TransitionError {
            state: self.state.as_str(),
            action: action.name(),
        };
        let mut t = self.clone();
        match (self.state, action) {
            (
                S::Waiting,
                TicketAction::Call {
                    connector,
                    plug_within,
                },
            ) => {
                t.state = S::Called;
                t.called_at = Some(now);
                t.plug_by = Some(now + *plug_within);
                match connector {
                    Some((charger, evse, conn)) => {
                        t.charger_id = Some(charger.clone());
                        t.evse_id = Some(*evse);
                        t.connector_id = Some(*conn);
                    }
                    None => {
                        t.charger_id = None;
                        t.evse_id = None;
                        t.connector_id = None;
                    }
                }
            }
            (S::Called, TicketAction::Plugged) => {
                t.state = S::Charging;
                t.charging_at = Some(now);
                t.plug_by = None;
            }
            (S::Charging, TicketAction::Finished) => {
                t.state = S::Done;
                t.ended_at = Some(now);
            }
            (S::Waiting | S::Called, TicketAction::Cancel) => {
                t.state = S::Cancelled;
                t.ended_at = Some(now);
                t.plug_by = None;
            }
            (S::Called, TicketAction::NoShow) => {
                t.state = S::Expired;
                t.ended_at = Some(now);
                t.passes += 1;
                t.plug_by = None;
            }
            (S::Waiting | S::Called, TicketAction::Skip { next_key }) => {
                t.state = S::Waiting;
                t.called_at = None;
                t.clear_connector();
                t.passes += 1;
                if let Some((next, after)) = next_key {
                    t.order_key = match after {
                        Some(after) if after - next > 1 => next + (after - next) / 2,
                        Some(_) => next + 1,
                        None => next + ORDER_STEP,
                    };
                }
            }
            (S::Waiting | S::Called | S::Expired, TicketAction::Requeue { last_key }) => {
                t.state = S::Waiting;
                t.called_at = None;
                t.ended_at = None;
                t.clear_connector();
                t.order_key = t.order_key.max(last_key + ORDER_STEP);
            }
            (S::Called, TicketAction::Release) => {
                t.state = S::Waiting;
                t.called_at = None;
                t.clear_connector();
            }
            _ => return Err(refuse()),
        }
        Ok(t)
    }
}

/// The waiting ticket to call next: the smallest order key (then the smallest number).
pub fn next_waiting<'a>(tickets: impl IntoIterator<Item = &'a Ticket>) -> Option<&'a Ticket> {
    tickets
        .into_iter()
        .filter(|t| t.state == TicketState::Waiting)
        .min_by_key(|t| (t.order_key, t.number))
}

/// Waiting tickets in call order.
pub fn waiting_in_order<'a>(tickets: impl IntoIterator<Item = &'a Ticket>) -> Vec<&'a Ticket> {
    let mut v: Vec<&Ticket> = tickets
        .into_iter()
        .filter(|t| t.state == TicketState::Waiting)
        .collect();
    v.sort_by_key(|t| (t.order_key, t.number));
    v
}

/// A ticket's place in the queue: 1 is next; `None` when it is not waiting.
pub fn position<'a>(tickets: impl IntoIterator<Item = &'a Ticket>, id: &str) -> Option<usize> {
    waiting_in_order(tickets)
        .iter()
        .position(|t| t.id == id)
        .map(|i| i + 1)
}

/// Where a skipped ticket goes: the key of the waiting ticket after it, and of the one after that.
pub fn skip_keys<'a>(
    tickets: impl IntoIterator<Item = &'a Ticket>,
    id: &str,
) -> Option<(i64, Option<i64>)> {
    let order = waiting_in_order(tickets);
    let me = order.iter().find(|t| t.id == id).map(|t| t.order_key);
    let mut after = order
        .iter()
        .filter(|t| t.id != id && me.is_none_or(|k| t.order_key >= k));
    let next = after.next()?.order_key;
    Some((next, after.next().map(|t| t.order_key)))
}

/// The largest order key among `tickets` (0 when none).
pub fn last_key<'a>(tickets: impl IntoIterator<Item = &'a Ticket>) -> i64 {
    tickets.into_iter().map(|t| t.order_key).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    fn ticket(n: i64) -> Ticket {
        let mut t = Ticket::new(format!("t{n}"), "S1", None, n * ORDER_STEP, at(n), "driver");
        t.number = n;
        t
    }

    fn call(c: u32) -> TicketAction {
        TicketAction::Call {
            connector: Some(("CP1".into(), c, c)),
            plug_within: Duration::seconds(60),
        }
    }

    #[test]
    fn happy_path_and_refusals() {
        let t = ticket(1);
        let called = t.apply(&call(2), at(10)).expect("call");
        assert_eq!(called.state, TicketState::Called);
        assert_eq!(called.plug_by, Some(at(70)));
        assert!(called.holds("CP1", 2, 2));
        let charging = called.apply(&TicketAction::Plugged, at(20)).expect("plug");
        let done = charging
            .apply(&TicketAction::Finished, at(99))
            .expect("done");
        assert_eq!(
            (done.state, done.ended_at),
            (TicketState::Done, Some(at(99)))
        );
        assert!(done.apply(&TicketAction::Cancel, at(100)).is_err());
        assert!(charging.apply(&TicketAction::Cancel, at(100)).is_err());
        let err = t
            .apply(&TicketAction::Plugged, at(5))
            .expect_err("not called");
        assert_eq!(err.to_string(), "a waiting ticket cannot plugged");
        let cancelled = t.apply(&TicketAction::Cancel, at(3)).expect("cancel");
        assert!(
            cancelled.apply(&call(1), at(4)).is_err(),
            "a cancelled ticket is never called"
        );
    }

    #[test]
    fn no_show_skip_and_requeue_order() {
        let tickets: Vec<Ticket> = (1..=3).map(ticket).collect();
        assert_eq!(next_waiting(&tickets).map(|t| t.number), Some(1));
        // Skip 1: it goes between 2 and 3.
        let keys = skip_keys(&tickets, "t1");
        let skipped = tickets[0]
            .apply(&TicketAction::Skip { next_key: keys }, at(5))
            .expect("skip");
        let mut now = vec![skipped, tickets[1].clone(), tickets[2].clone()];
        let order: Vec<i64> = waiting_in_order(&now).iter().map(|t| t.number).collect();
        assert_eq!(order, vec![2, 1, 3]);
        assert_eq!(position(&now, "t1"), Some(2));
        // 2 is called and does not come: expired, then re-queued at the end.
        let expired = now[1]
            .apply(&call(1), at(6))
            .and_then(|t| t.apply(&TicketAction::NoShow, at(70)))
            .expect("no-show");
        assert_eq!((expired.state, expired.passes), (TicketState::Expired, 1));
        let back = expired
            .apply(
                &TicketAction::Requeue {
                    last_key: last_key(&now),
                },
                at(80),
            )
            .expect("requeue");
        now[1] = back;
        let order: Vec<i64> = waiting_in_order(&now).iter().map(|t| t.number).collect();
        assert_eq!(order, vec![1, 3, 2]);
    }

    proptest! {
        /// However tickets are called, skipped, cancelled and re-queued, no two tickets ever hold
        /// one connector and a ticket is never called while not waiting.
        #[test]
        fn one_connector_one_ticket(ops in proptest::collection::vec((0u8..5, 0usize..6, 1u32..3), 1..80)) {
            let mut tickets: Vec<Ticket> = (1..=6).map(ticket).collect();
            let mut clock = 100;
            for (op, i, conn) in ops {
                clock += 1;
                let free = !tickets.iter().any(|t| t.state == TicketState::Called && t.connector_id == Some(conn));
                let action = match op {
                    0 if free => {
                        // The queue's rule: the connector goes to the next waiting ticket.
                        let Some(next) = next_waiting(&tickets).map(|t| t.id.clone()) else { continue };
                        let j = tickets.iter().position(|t| t.id == next).expect("present");
                        let called = tickets[j].apply(&call(conn), at(clock)).expect("waiting can be called");
                        tickets[j] = called;
                        continue;
                    }
                    0 => continue,
                    1 => TicketAction::Cancel,
                    2 => TicketAction::Skip { next_key: skip_keys(&tickets, &tickets[i].id) },
                    3 => TicketAction::Requeue { last_key: last_key(&tickets) },
                    _ => TicketAction::NoShow,
                };
                if let Ok(t) = tickets[i].apply(&action, at(clock)) {
                    tickets[i] = t;
                }
                for c in 1..3 {
                    let holders = tickets.iter().filter(|t| t.state == TicketState::Called && t.connector_id == Some(c)).count();
                    prop_assert!(holders <= 1);
                }
                let keys: std::collections::HashSet<i64> = tickets.iter().filter(|t| t.state == TicketState::Waiting).map(|t| t.order_key).collect();
                prop_assert_eq!(keys.len(), tickets.iter().filter(|t| t.state == TicketState::Waiting).count());
            }
        }
    }
}
