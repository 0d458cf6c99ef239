//! What every service reads the platform through: the store, the live network model (with its
//! clock and event bus) and the gateway that reaches chargers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use chargeops_core::{Clock, Event, Live};
use chargeops_gateway::Gateway;
use chargeops_store::Store;

/// The platform's shared parts, cheap to clone: one per process, handed to every service.
#[derive(Clone)]
pub struct Platform {
    pub store: Arc<dyn Store>,
    pub live: Arc<Live>,
    pub gateway: Arc<Gateway>,
}

impl Platform {
    pub fn new(store: Arc<dyn Store>, live: Arc<Live>, gateway: Arc<Gateway>) -> Self {
        Platform {
            store,
            live,
            gateway,
        }
    }

    /// The platform clock: every server-side timestamp comes from here (simulated time in
    /// the demo).
    pub fn now(&self) -> DateTime<Utc> {
        self.live.now()
    }

    pub fn clock(&self) -> Clock {
        self.live.clock()
    }

    /// A receiver of every event from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// Announces an event on the bus (and, in a cluster, to the other nodes).
    pub fn publish(&self, event: Event) {
        self.live.publish(event);
    }
}
