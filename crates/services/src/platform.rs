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

    /// Every readable store document of `kind`, decoded (one this version cannot read is
    /// passed over).
    pub async fn documents<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
    ) -> crate::Result<Vec<T>> {
        Ok(self
            .store
            .list_documents(kind)
            .await?
            .into_iter()
            .filter_map(|(_, body)| serde_json::from_str::<T>(&body).ok())
            .collect())
    }

    /// Whether this node may write the background duties' books (queue tickets, cases, lots,
    /// units): always on a single node; in a cluster only while it holds the duties lease.
    pub fn holds_duties(&self) -> bool {
        self.gateway
            .cluster()
            .is_none_or(|c| c.duties_lease().holds())
    }

    /// [`Platform::holds_duties`] as a result: the fence every write of a duty's book passes.
    pub fn fence(&self) -> crate::Result<()> {
        if self.holds_duties() {
            Ok(())
        } else {
            Err(crate::Error::new(
                crate::ErrorKind::Unavailable,
                "duties_moving",
                "this node no longer runs the platform's duties (another node takes them over); retry shortly",
            ))
        }
    }

    /// Announces an event on the bus (and, in a cluster, to the other nodes).
    pub fn publish(&self, event: Event) {
        self.live.publish(event);
    }
}
