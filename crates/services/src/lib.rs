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

pub mod accounts;
mod caller;
pub mod duty;
mod error;
pub mod forecasts;
pub mod lots;
pub mod network;
pub mod ops;
pub mod partners;
mod platform;
pub mod queue;
pub mod units;

pub use caller::Caller;
pub use duty::{Duties, Stop};
pub use error::{Error, ErrorKind, Result};
pub use platform::Platform;

use std::sync::Arc;

use tokio::sync::watch;

/// Every service of one process, built once and shared by the edges.
pub struct Services {
    pub platform: Platform,
    pub duties: Arc<Duties>,
    /// Stations, chargers, sessions, id tags and commands.
    pub network: network::Network,
    /// Fitted forecasts and the session history behind them.
    pub forecasts: Arc<forecasts::Forecasts>,
    /// Queue numbers, waits, diversion and the station card.
    pub queue: Arc<queue::Queue>,
    /// The operations loop: cases, crews, detection, the audit log.
    pub ops: Arc<ops::Operations>,
    /// Staff accounts, sign-in sessions and API tokens.
    pub accounts: Arc<accounts::Accounts>,
    /// Mobile units across the province and their relocation plan.
    pub units: Arc<units::Units>,
    /// Robot lots at the service areas: layouts, robots, cars.
    pub lots: Arc<lots::Lots>,
    /// Partner platforms over OCPI: registrations, credentials, the network as Locations.
    pub partners: Arc<partners::Partners>,
}

/// What the background duties are configured with.
#[derive(Debug, Clone, Default)]
pub struct DutiesConfig {
    /// The queue's settings: plug-in window, queue size, webhook, whether the caller runs.
    pub queue: chargeops_queue::QueueConfig,
    /// Fault detection, auto-dispatch and the demo's simulated crews.
    pub ops: chargeops_ops::OpsConfig,
    /// The robot lots: robot timeout and tick.
    pub lots: lots::LotsConfig,
}

impl Services {
    pub fn new(platform: Platform) -> Arc<Self> {
        let forecasts = Arc::new(forecasts::Forecasts::default());
        // Shared: some services start work on demand (the queue's reservation workers).
        let duties = Arc::new(Duties::new());
        let queue = queue::Queue::new(platform.clone(), forecasts.clone(), duties.clone());
        let ops = ops::Operations::new(platform.clone());
        let accounts = accounts::Accounts::new(platform.clone());
        let units = units::Units::new(platform.clone(), forecasts.clone());
        let lots = lots::Lots::new(platform.clone());
        Arc::new(Services {
            network: network::Network::new(platform.clone()),
            partners: Arc::new(partners::Partners::new(platform.clone())),
            platform,
            duties,
            forecasts,
            queue,
            ops,
            accounts,
            units,
            lots,
        })
    }

    /// Starts every service's background duties.
    pub fn start(&self, config: DutiesConfig) {
        let DutiesConfig { ops, queue, lots } = config;
        self.ops.start(&self.duties, ops);
        self.queue.start(&self.duties, queue);
        self.units.start(&self.duties);
        self.lots.start(&self.duties, lots);
        self.partners.start(&self.duties);
    }

    /// Starts every service's background duties under a lease (a cluster node): they run while
    /// `held` is true. Each time it turns, the books read from the store are dropped, so the
    /// next run starts from what the last holder stored.
    pub fn start_under_lease(self: &Arc<Self>, config: DutiesConfig, held: watch::Receiver<bool>) {
        self.duties.set_paused();
        self.start(config);
        let services = self.clone();
        self.duties.follow(held, move || {
            let services = services.clone();
            async move { services.forget().await }
        });
    }

    /// Drops what the services hold of the duties' books; they are read again when next used.
    pub async fn forget(&self) {
        self.queue.forget().await;
        self.ops.forget();
        self.units.forget().await;
        self.lots.forget().await;
    }
}
