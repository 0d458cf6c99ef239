//! The chargeops network model. It knows stations, chargers, connectors, sessions and their
//! one internal status, and nothing of OCPP, YKC, HTTP or SQL.

pub mod clock;
pub mod command;
pub mod env;
pub mod error;
pub mod event;
pub mod live;
pub mod model;
pub mod network_file;
pub mod secret;

pub use clock::Clock;
pub use command::{Command, CommandError, CommandReply};
pub use event::Event;
pub use live::{ChargerSnapshot, Live, StatusCounts};
pub use model::*;
