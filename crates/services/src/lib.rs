//! The application services of chargeops: each platform duty as a service with a small typed
//! interface, between the pure domain crates (core, ops, queue, dispatch, forecast) and the
//! edges (gateway for chargers, api for HTTP).
//!
//! Each service owns its state behind its interface, keeps what must survive in the store, and
//! runs its background duties through [`Duties`]. Services read the platform (store, clock,
//! event bus, gateway) only through [`Platform`], and answer with [`Error`], which each edge
//! maps to its own status codes.
//!
//! Architecture invariant: no service knows HTTP; the edges hold no state and start no task.

mod caller;
pub mod duty;
mod error;
pub mod forecasts;
mod platform;
pub mod units;

pub use caller::Caller;
pub use duty::{Duties, Stop};
pub use error::{Error, ErrorKind, Result};
pub use platform::Platform;

use std::sync::Arc;

/// Every service of one process, built once and shared by the edges.
pub struct Services {
    pub platform: Platform,
    pub duties: Duties,
    /// Fitted forecasts and the session history behind them.
    pub forecasts: Arc<forecasts::Forecasts>,
    /// Mobile units across the province and their relocation plan.
    pub units: Arc<units::Units>,
}

/// What the background duties are configured with.
#[derive(Debug, Clone, Default)]
pub struct DutiesConfig {}

impl Services {
    pub fn new(platform: Platform) -> Arc<Self> {
        let forecasts = Arc::new(forecasts::Forecasts::default());
        let units = units::Units::new(platform.clone(), forecasts.clone());
        Arc::new(Services {
            platform,
            duties: Duties::new(),
            forecasts,
            units,
        })
    }

    /// Starts every service's background duties.
    pub fn start(&self, config: DutiesConfig) {
        let DutiesConfig {} = config;
        self.units.start(&self.duties);
    }
}
