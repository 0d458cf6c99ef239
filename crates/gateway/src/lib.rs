//! The OCPP gateway: accepts chargers on `/ocpp/{chargerId}`, runs one task per connection that
//! is the only writer of its charger's live state, and routes commands from the API to the
//! connection that holds the charger.
//!
//! Architecture invariant: this crate is the only one that knows OCPP. Everything it hands on
//! (live state, events, store records) is in the protocol-neutral model of `chargeops-core`.

mod auth;
pub mod cluster;
mod connection;
mod ctx;
pub mod metrics;
pub mod tls;
mod v16;
mod v201;
mod writer;
mod ykc;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use chargeops_core::{Command, CommandError, CommandReply, Live};
use chargeops_store::Store;

pub use auth::{basic_password_of, charger_credentials_ok, valid_charger_id};
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
    /// Refuse OCPP on the plain listener: chargers must use TLS (security profile 2 or 3).
    pub require_tls: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            registration: RegistrationPolicy::Pending,
            command_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(300),
            max_frame_bytes: 64 * 1024,
            ping_interval: Duration::from_secs(120),
            require_tls: false,
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

/// A connection's command channel (YKC connections).
#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Control>,
}

/// Commands a connection may have queued before an API caller waits for room.
pub(crate) const COMMAND_QUEUE: usize = 16;

/// The command queue of one OCPP connection. Commands are rare next to charger traffic, so
/// the queue is a lock, a wake-up and a bound: about 150 bytes a connection, where a tokio
/// channel allocates its first block of 32 slots (over 2 KiB for `Control`) up front.
pub(crate) struct Mailbox {
    state: Mutex<MailboxState>,
    ready: Notify,
    room: Semaphore,
}

#[derive(Default)]
struct MailboxState {
    commands: VecDeque<(Command, oneshot::Sender<Result<CommandReply, CommandError>>)>,
    superseded: bool,
    closed: bool,
}

impl Mailbox {
    pub fn new() -> Arc<Mailbox> {
        Arc::new(Mailbox {
            state: Mutex::new(MailboxState::default()),
            ready: Notify::new(),
            room: Semaphore::new(COMMAND_QUEUE),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MailboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a command for the connection, waiting while the queue is full. Gives the
    /// command back when the connection has ended.
    pub async fn send(
        &self,
        command: Command,
        reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    ) -> Result<(), Command> {
        let Ok(permit) = self.room.acquire().await else {
            return Err(command);
        };
        let mut state = self.state();
        if state.closed {
            return Err(command);
        }
        // The connection gives the room back when it takes the command.
        permit.forget();
        state.commands.push_back((command, reply));
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// A newer connection claimed the charger: the connection closes at its next chance,
    /// ahead of any command still queued.
    pub fn supersede(&self) {
        self.state().superseded = true;
        self.ready.notify_one();
    }

    /// The connection's side: the next thing to do. Cancel safe (nothing is taken from the
    /// queue until it is returned).
    pub async fn recv(&self) -> Control {
        loop {
            {
                let mut state = self.state();
                if state.superseded {
                    return Control::Superseded;
                }
                if let Some((command, reply)) = state.commands.pop_front() {
                    drop(state);
                    self.room.add_permits(1);
                    return Control::Command { command, reply };
                }
            }
            // `notify_one` keeps a wake-up for a receiver not yet waiting, so one sent between
            // the look above and this wait is not lost.
            self.ready.notified().await;
        }
    }

    /// The connection ended: later sends fail at once; queued commands are answered
    /// `Closed` (their reply senders are dropped).
    pub fn close(&self) {
        let queued = {
            let mut state = self.state();
            state.closed = true;
            std::mem::take(&mut state.commands)
        };
        self.room.close();
        drop(queued);
    }
}

/// How commands reach the connection that holds a charger.
#[derive(Clone)]
pub(crate) enum Route {
    /// A YKC connection's channel.
    Channel(ConnHandle),
    /// An OCPP connection's mailbox.
    Mailbox { conn_id: u64, mailbox: Arc<Mailbox> },
}

impl Route {
    fn conn_id(&self) -> u64 {
        match self {
            Route::Channel(h) => h.conn_id,
            Route::Mailbox { conn_id, .. } => *conn_id,
        }
    }

    /// Tells the connection a newer one claimed its charger.
    fn supersede(self) {
        match self {
            Route::Channel(old) => {
                if old.tx.try_send(Control::Superseded).is_err() {
                    tokio::spawn(async move {
                        let _ = old.tx.send(Control::Superseded).await;
                    });
                }
            }
            Route::Mailbox { mailbox, .. } => mailbox.supersede(),
        }
    }
}

const SHARDS: usize = 64;

/// Which connection holds which charger, split in shards so connects and commands for
/// different chargers do not contend.
pub(crate) struct Connections {
    shards: Box<[Mutex<HashMap<String, Route>>]>,
}

impl Connections {
    fn new() -> Self {
        Connections {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        // FNV-1a: cheap, and charger ids are not attacker-chosen keys of a shared table
        // (each is authenticated before it is inserted).
        let h = id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        self.shards[(h as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Installs a channel connection, returning the channel it replaces for the caller to
    /// close. A replaced mailbox connection is told here and not returned.
    pub fn insert(&self, id: &str, handle: ConnHandle) -> Option<ConnHandle> {
        match self.shard(id).insert(id.to_owned(), Route::Channel(handle)) {
            Some(Route::Channel(old)) => Some(old),
            Some(old @ Route::Mailbox { .. }) => {
                tracing::warn!(
                    charger_id = id,
                    "a newer connection claimed this charger; closing the older one"
                );
                old.supersede();
                None
            }
            None => None,
        }
    }

    /// Installs a connection and tells the one it replaces, if any, to close. Returns
    /// whether there was one.
    pub fn claim(&self, id: &str, route: Route) -> bool {
        let old = self.shard(id).insert(id.to_owned(), route);
        match old {
            Some(old) => {
                old.supersede();
                true
            }
            None => false,
        }
    }

    /// Removes the connection only if it is still the current one for the charger.
    pub fn remove_if_current(&self, id: &str, conn_id: u64) -> bool {
        let mut shard = self.shard(id);
        if shard.get(id).is_some_and(|r| r.conn_id() == conn_id) {
            shard.remove(id);
            true
        } else {
            false
        }
    }

    pub fn get(&self, id: &str) -> Option<Route> {
        self.shard(id).get(id).cloned()
    }

    /// The ids of every charger held now.
    pub fn ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for shard in self.shards.iter() {
            ids.extend(
                shard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .cloned(),
            );
        }
        ids
    }
}

/// The gateway's shared state.
/// Who else may vouch for an id tag at one charger, beyond the network's id-tag list: a robot
/// lot accepts, at a robot's charge point, the car that robot has been sent to.
pub trait TagAuthority: Send + Sync {
    fn accepts(&self, charger_id: &str, id_tag: &str) -> bool;
}

pub struct Gateway {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) live: Arc<Live>,
    pub(crate) config: GatewayConfig,
    pub(crate) connections: Connections,
    pub(crate) next_conn_id: AtomicU64,
    pub metrics: Metrics,
    pub(crate) tag_authority: std::sync::RwLock<Vec<Arc<dyn TagAuthority>>>,
    /// The other nodes, when this one is part of a cluster (`cluster::start`).
    pub(crate) cluster: OnceLock<Arc<cluster::Cluster>>,
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
            tag_authority: std::sync::RwLock::default(),
            cluster: OnceLock::new(),
        })
    }

    /// Whether one of this node's [`TagAuthority`]s accepts `id_tag` at `charger_id`.
    pub fn vouched_locally(&self, charger_id: &str, id_tag: &str) -> bool {
        let all = self.tag_authority.read().unwrap_or_else(|e| e.into_inner());
        all.iter().any(|a| a.accepts(charger_id, id_tag))
    }

    /// This node's side of the cluster, when it is part of one.
    pub fn cluster(&self) -> Option<&Arc<cluster::Cluster>> {
        self.cluster.get()
    }

    /// Adds a [`TagAuthority`] asked about tags the id-tag list does not know (robot lots,
    /// queue reservations); a tag any of them accepts is accepted.
    pub fn set_tag_authority(&self, authority: Arc<dyn TagAuthority>) {
        let mut all = self
            .tag_authority
            .write()
            .unwrap_or_else(|e| e.into_inner());
        all.push(authority);
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

    /// Through this node's connection to the charger, else through the node that holds it.
    async fn send_command(
        &self,
        charger_id: &str,
        command: Command,
    ) -> Result<CommandReply, CommandError> {
        match self.cluster.get() {
            Some(cluster) if !self.is_connected(charger_id) => {
                cluster.command(charger_id, command).await
            }
            _ => self.send_local(charger_id, command).await,
        }
    }

    /// Through this node's connection to the charger only.
    pub(crate) async fn send_local(
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
        let queued = match handle {
            Route::Channel(h) => {
                let send = h.tx.send(Control::Command { command, reply });
                tokio::time::timeout(timeout, send)
                    .await
                    .map(|sent| sent.is_ok())
            }
            Route::Mailbox { mailbox, .. } => {
                tokio::time::timeout(timeout, mailbox.send(command, reply))
                    .await
                    .map(|sent| sent.is_ok())
            }
        };
        match queued {
            Ok(true) => {}
            Ok(false) => return Err(CommandError::Offline(charger_id.to_owned())),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(mailbox: &Mailbox) -> impl Future<Output = Result<(), Command>> + '_ {
        let (reply, _rx) = oneshot::channel();
        mailbox.send(Command::ClearCache, reply)
    }

    #[tokio::test]
    async fn mailbox_delivers_in_order_and_bounds_the_queue() {
        let mailbox = Mailbox::new();
        for hard in [false, true] {
            let (reply, _rx) = oneshot::channel();
            assert!(mailbox.send(Command::Reset { hard }, reply).await.is_ok());
        }
        for expected in [false, true] {
            match mailbox.recv().await {
                Control::Command {
                    command: Command::Reset { hard },
                    ..
                } => assert_eq!(hard, expected),
                _ => panic!("expected the queued reset"),
            }
        }
        for _ in 0..COMMAND_QUEUE {
            assert!(request(&mailbox).await.is_ok());
        }
        let full = tokio::time::timeout(Duration::from_millis(50), request(&mailbox)).await;
        assert!(full.is_err(), "a 17th command must wait for room");
        assert!(matches!(mailbox.recv().await, Control::Command { .. }));
        let room = tokio::time::timeout(Duration::from_millis(50), request(&mailbox)).await;
        assert!(matches!(room, Ok(Ok(()))));
    }

    #[tokio::test]
    async fn mailbox_wakes_a_waiting_connection() {
        let mailbox = Mailbox::new();
        let waiting = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { matches!(mailbox.recv().await, Control::Command { .. }) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(request(&mailbox).await.is_ok());
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(got, Ok(Ok(true))));
    }

    #[tokio::test]
    async fn superseding_comes_first_and_closing_answers_queued_commands() {
        let mailbox = Mailbox::new();
        let (reply, answer) = oneshot::channel();
        assert!(mailbox.send(Command::ClearCache, reply).await.is_ok());
        mailbox.supersede();
        assert!(matches!(mailbox.recv().await, Control::Superseded));
        mailbox.close();
        // The queued command's caller learns the connection closed.
        assert!(answer.await.is_err());
        assert!(request(&mailbox).await.is_err());
    }

    #[tokio::test]
    async fn a_closed_mailbox_frees_a_waiting_sender() {
        let mailbox = Mailbox::new();
        for _ in 0..COMMAND_QUEUE {
            assert!(request(&mailbox).await.is_ok());
        }
        let blocked = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { request(&mailbox).await.is_err() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        mailbox.close();
        let got = tokio::time::timeout(Duration::from_secs(5), blocked).await;
        assert!(matches!(got, Ok(Ok(true))));
    }

    #[test]
    fn an_ocpp_connection_costs_little_to_route_to() {
        // The mailbox replaces a tokio channel whose first block alone is 32 `Control`s.
        assert!(std::mem::size_of::<Mailbox>() <= 192);
        assert!(std::mem::size_of::<Route>() <= 24);
    }
}
