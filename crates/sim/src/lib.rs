//! Charger fleet simulator and load generator.
//!
//! - [`client`]: one simulated OCPP 1.6J charge point over a real WebSocket.
//! - [`hist`]: a lock-free latency histogram with bounded memory.
//! - [`history`]: the simulated past of a network, as sessions (`chargeops sim history`).
//! - [`bench`]: `chargeops bench ocpp`, thousands of charge points against a server.
//! - [`traffic`]: the seeded traffic model (arrivals, surges, queues, faults, disconnects).
//! - [`ykc`]: one simulated YKC (云快充) charger over TCP; the fleet's YKC chargers drive it.
//! - [`robots`]: robot lots: charging robots (OCPP charge points that report to the robot
//!   interface and follow its tasks) and the cars that come to them.

pub mod bench;
pub mod client;
mod drive;
pub mod fleet;
pub mod hist;
pub mod history;
pub mod robots;
pub mod traffic;
pub mod ykc;
mod ykc_fleet;

pub use client::{
    AcceptAll, BootInfo, BootReply, CallOutcome, ChargePoint, ClientError, ConnectOptions,
    Endpoint, Responder, RttSink, Stats,
};
pub use hist::{Histogram, Summary};
