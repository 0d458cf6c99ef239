//! The OCPP gateway: accepts chargers on `/ocpp/{chargerId}`, runs one task per connection that
//! is the only writer of its charger's live state, and routes commands from the API to the
//! connection that holds the charger.
//!
//! Architecture invariant: this crate is the only one that knows OCPP. Everything it hands on
//! (live state, events, store records) is in the protocol-neutral model of `chargeops-core`.

mod auth;
mod connection;
pub mod metrics;
mod v16;
mod v201;
mod ykc;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::sync::{mpsc, oneshot};

use chargeops_core::{Command, CommandError, CommandReply, Live};
use chargeops_store::Store;

pub use auth::{charger_credentials_ok, valid_charger_id};
pub use metrics::Metrics;
pub use ykc::{Tariff, TariffSpec, YkcConfig, serve as serve_ykc};

/// What to do with a charger that connects without being registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    /// Registered automatically into the station `unassigned` and accepted.
    Open,
    /// Registered, but BootNotification is answered Pending until an operator accepts it.
    #[default]
    Pending,
    /// Refused at the WebSocket upgrade.
    Closed,
}

impl std::str::FromStr for RegistrationPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(RegistrationPolicy::Open),
            "pending" => Ok(RegistrationPolicy::Pending),
            "closed" => Ok(RegistrationPolicy::Closed),
            other => Err(format!(
                "unknown registration policy {other:?} (expected open, pending or closed)"
            )),
        }
    }
}

/// The station unknown chargers are registered into under the open and pending policies.
pub const UNASSIGNED_STATION: &str = "unassigned";

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub registration: RegistrationPolicy,
    /// How long a charger has to answer a command.
    pub command_timeout: Duration,
    /// Heartbeat interval given to chargers in the BootNotification answer.
    pub heartbeat_interval: Duration,
    /// Largest frame accepted from a charger; larger ones close the connection (1009).
    pub max_frame_bytes: usize,
    /// Server WebSocket ping interval; a connection silent for three intervals is dropped.
    pub ping_interval: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            registration: RegistrationPolicy::Pending,
            command_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(300),
            max_frame_bytes: 64 * 1024,
            ping_interval: Duration::from_secs(120),
        }
    }
}

/// A request from the API side to a connection task.
pub(crate) enum Control {
    Command {
        command: Command,
        reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    },
    /// A newer connection claimed the same charger id: close this one.
    Superseded,
}

#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Control>,
}

const SHARDS: usize = 64;

/// Which connection holds which charger, split in shards so connects and commands for
/// different chargers do not contend.
pub(crate) struct Connections {
    shards: Box<[Mutex<HashMap<String, ConnHandle>>]>,
}

impl Connections {
    fn new() -> Self {
        Connections {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, HashMap<String, ConnHandle>> {
        // FNV-1a: cheap, and charger ids are not attacker-chosen keys of a shared table
        // (each is authenticated before it is inserted).
        let h = id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        self.shards[(h as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Installs a connection, returning the one it replaces.
    pub fn insert(&self, id: &str, handle: ConnHandle) -> Option<ConnHandle> {
        self.shard(id).insert(id.to_owned(), handle)
    }

    /// Removes the connection only if it is still the current one for the charger.
    pub fn remove_if_current(&self, id: &str, conn_id: u64) -> bool {
        let mut shard = self.shard(id);
        if shard.get(id).is_some_and(|h| h.conn_id == conn_id) {
            shard.remove(id);
            true
        } else {
            false
        }
    }

    pub fn get(&self, id: &str) -> Option<ConnHandle> {
        self.shard(id).get(id).cloned()
    }
}

/// The gateway's shared state.
pub struct Gateway {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) live: Arc<Live>,
    pub(crate) config: GatewayConfig,
    pub(crate) connections: Connections,
    pub(crate) next_conn_id: AtomicU64,
    pub metrics: Metrics,
}

impl Gateway {
    pub fn new(store: Arc<dyn Store>, live: Arc<Live>, config: GatewayConfig) -> Arc<Self> {
        Arc::new(Gateway {
            store,
            live,
            config,
            connections: Connections::new(),
            next_conn_id: AtomicU64::new(1),
            metrics: Metrics::default(),
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The `/ocpp/{chargerId}` route.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/ocpp/{charger_id}", get(auth::upgrade))
            .route("/ocpp/", get(auth::missing_id))
            .route("/ocpp/{charger_id}/{*rest}", get(auth::bad_path))
            .with_state(self.clone())
    }

    pub fn is_connected(&self, charger_id: &str) -> bool {
        self.connections.get(charger_id).is_some()
    }

    /// Sends a command to the charger through the connection that holds it and waits for the
    /// charger's answer (or the command timeout).
    pub async fn command(
        &self,
        charger_id: &str,
        command: Command,
    ) -> Result<CommandReply, CommandError> {
        let name = command.name();
        let result = self.send_command(charger_id, command).await;
        // Rejections, errors and silences are what fault detection counts; a charger that is
        // simply not connected is the offline rule's business.
        let failure = match &result {
            Ok(reply) if reply.status == "Rejected" => Some("Rejected".to_owned()),
            Ok(_)
            | Err(
                CommandError::Offline(_)
                | CommandError::Unsupported { .. }
                | CommandError::Invalid(_),
            ) => None,
            Err(e) => Some(e.to_string()),
        };
        if let (Some(reason), Some(station_id)) = (failure, self.live.station_of(charger_id)) {
            self.live.publish(chargeops_core::Event::CommandFailed {
                charger_id: charger_id.to_owned(),
                station_id,
                command: name.to_owned(),
                reason,
                at: self.live.now(),
            });
        }
        result
    }

    async fn send_command(
        &self,
        charger_id: &str,
        command: Command,
    ) -> Result<CommandReply, CommandError> {
        let handle = self
            .connections
            .get(charger_id)
            .ok_or_else(|| CommandError::Offline(charger_id.to_owned()))?;
        Metrics::inc(&self.metrics.commands_total);
        let (reply, rx) = oneshot::channel();
        // Commands queue behind the one outstanding CALL; the queue wait counts against the
        // same timeout so an API caller never waits longer than twice the configured time.
        let timeout = self.config.command_timeout;
        let send = handle.tx.send(Control::Command { command, reply });
        match tokio::time::timeout(timeout, send).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(CommandError::Offline(charger_id.to_owned())),
            Err(_) => return Err(CommandError::Timeout(timeout.as_secs())),
        }
        match tokio::time::timeout(timeout * 2, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CommandError::Closed),
            Err(_) => Err(CommandError::Timeout(timeout.as_secs())),
        }
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }
}
