//! How a called driver hears about it: the [`Notifier`] interface. The log sink is here; the
//! webhook adapter lives with the HTTP code (`chargeops-api`); SMS and app push plug in the same way.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::contact::mask;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Your turn: go to the connector.
    Called,
    /// You did not plug in in time; the number passed on.
    Expired,
    /// Staff put you back in the queue.
    Requeued,
}

/// One message to a driver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub kind: NotificationKind,
    pub ticket_id: String,
    pub number: i64,
    pub station_id: String,
    /// The full contact: the adapter needs it to reach the driver.
    pub contact: Option<String>,
    pub charger_id: Option<String>,
    pub connector_id: Option<u32>,
    pub plug_by: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// Delivers notifications. Must not block: an adapter that does IO hands the work to a task.
pub trait Notifier: Send + Sync + 'static {
    fn notify(&self, n: &Notification);
}

/// Writes every notification to the log, the contact masked.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, n: &Notification) {
        tracing::info!(
            kind = ?n.kind,
            ticket = %n.ticket_id,
            number = n.number,
            station = %n.station_id,
            contact = %n.contact.as_deref().map(mask).unwrap_or_default(),
            charger = n.charger_id.as_deref().unwrap_or(""),
            connector = n.connector_id.unwrap_or(0),
            "queue notification"
        );
    }
}

/// Sends to several notifiers in turn.
pub struct Fanout(pub Vec<Box<dyn Notifier>>);

impl Notifier for Fanout {
    fn notify(&self, n: &Notification) {
        for x in &self.0 {
            x.notify(n);
        }
    }
}
