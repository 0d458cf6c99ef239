//! Queue numbers at busy service areas, as pure logic: the ticket state machine and the order
//! tickets are called in (`ticket`), what a driver may give as a contact (`contact`), honest wait
//! estimates from the live state and history (`estimate`), the ranking of other service areas a
//! car could charge at instead (`diversion`), the notification interface (`notify`) and the
//! settings (`config`).
//!
//! No IO: the queue service (`chargeops-services`) stores tickets, reacts to connector events
//! and sends notifications; the simulator runs the same estimator and ranking offline.

pub mod config;
pub mod contact;
pub mod diversion;
pub mod estimate;
pub mod notify;
pub mod ticket;

pub use config::QueueConfig;
pub use contact::{Contact, ContactError};
pub use notify::{LogNotifier, Notification, NotificationKind, Notifier};
pub use ticket::{Ticket, TicketAction, TicketState, TransitionError};
