//! Charger fleet simulator and load generator.
//!
//! - [`client`]: one simulated OCPP 1.6J charge point over a real WebSocket.
//! - [`hist`]: a lock-free latency histogram with bounded memory.
//! - [`bench`]: `chargeops bench ocpp`, thousands of charge points against a server.
//! - [`traffic`]: the seeded traffic model (arrivals, surges, queues, faults, disconnects).

pub mod bench;
pub mod client;
pub mod fleet;
pub mod hist;
pub mod traffic;

pub use client::{
    AcceptAll, BootInfo, BootReply, CallOutcome, ChargePoint, ClientError, ConnectOptions,
    Endpoint, Responder, RttSink, Stats,
};
pub use hist::{Histogram, Summary};
