//! Mobile charging, two scales.
//!
//! - **Robots in a lot** ([`lot`], [`policy`], [`sim`], [`bounds`]): a service area's charging
//!   robots drive to cars waiting in parking bays. [`policy`] holds the online dispatch policies
//!   (FIFO, nearest-idle, and ours) behind one trait that sees only the lot as it is now;
//!   [`sim`] replays an arrival trace ([`trace`]) through a policy with exact battery
//!   accounting; [`bounds`] says what no policy can beat. [`live`] is the lot as the platform
//!   knows it, and [`replay`] drives it with simulated robots to measure it against [`sim`].
//!   [`robot`] is a robot's physics as a vehicle, shared by [`replay`] and the demo's robots.
//! - **Mobile units across the province** ([`province`]): which unit goes to which service
//!   area and when, from hourly shortfall forecasts.
//!
//! Everything here is pure; only [`cli`] (the `chargeops bench dispatch` command) reads files
//! and prints.

pub mod bounds;
pub mod cli;
mod error;
pub mod live;
pub mod lot;
pub mod policy;
pub mod province;
pub mod replay;
pub mod robot;
pub mod sim;
pub mod trace;

pub use error::DispatchError;
pub use lot::{Car, Fleet, Lot, Point};
pub use policy::{
    Action, CarView, Chargeops, Fifo, NearestIdle, Policy, RobotStatus, RobotView, View,
};
pub use province::{Plan, plan_relocation};
pub use sim::{Metrics, SimOptions, SimResult, simulate};
