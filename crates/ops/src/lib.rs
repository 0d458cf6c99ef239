//! The operations loop ("the hotline takes it, the platform dispatches, the crew resolves") as
//! pure logic: no IO, no clock of its own, no async.
//!
//! - [`model`]: cases, their timeline, crews, audit entries; the kinds, states and categories
//!   the API contract names.
//! - [`state`]: the case state machine (`new` → `assigned` → `en_route` → `on_site` →
//!   `resolved` → `verified` → `closed`, with reassignment and reopening).
//! - [`detect`]: fault detection over the network's events and the passing of time: faulted
//!   connectors, chargers offline too long, stuck sessions, implausible meter values, repeated
//!   command failures, reboot loops. It emits rising edges only, so one problem is one signal.
//! - [`cases`]: what a detected problem does to the cases already there (dedup, merge with a
//!   hotline report, reopen) and when a case counts as verified working again.
//! - [`dispatch`]: which crew to propose (skills, shift, position, travel time, load) and SLAs.
//! - [`stats`]: counts and mean time to repair per station and per kind, and their CSV.
//! - [`faq`]: the hotline's searchable answers.
//!
//! The operations service (in `chargeops-services`) feeds events and ticks in from its
//! detection duty, stores what comes out, and the API crate serves it.

pub mod cases;
pub mod config;
pub mod detect;
pub mod dispatch;
pub mod faq;
pub mod model;
pub mod state;
pub mod stats;

pub use config::OpsConfig;
pub use detect::{Detector, Problem, Signal};
pub use model::*;
pub use state::{Action, TransitionError};
