//! Several `chargeops serve` nodes as one platform, over NATS: commands routed to the node that
//! holds the charger, the live state of every charger shared, the background duties run by one
//! node at a time under a lease, and every node answering every API.
//!
//! Subjects (JSON payloads), under the cluster's name (`--cluster-name`, `chargeops` unless
//! set) as their first token:
//! - `<cluster>.events.<kind>`: `{id, node, event, state?}`, every event a node's own
//!   connections and duties publish, on the JetStream stream `<CLUSTER>_EVENTS` (at least
//!   once, deduplicated by `id`; see [`stream`]). Every other node applies them to its own
//!   `Live` through the same functions a connection uses (`writer`), as the charger's one
//!   writer on that node's behalf, and publishes them on its own bus only
//!   (`Live::publish_remote`), which the outbound hook does not see: nothing goes back out.
//! - `<cluster>.cmd.<node>`: a request `{charger_id, command}` to the node that holds the
//!   charger, answered with [`WireReply`]. Each node learns who holds what from the online
//!   and offline events (the newest online wins; an offline counts only from the holder), so
//!   exactly one node is asked, and a node asked about a charger it no longer holds says
//!   offline.
//! - `<cluster>.http.<node>` and `<cluster>.tags.<node>`: requests for the duties' books and
//!   tag checks, to the node holding the duties lease ([`forward`]).
//! - `<cluster>.nodes.heartbeat`: `{node}` every 2 s. A node not heard from for 6 s is gone
//!   (killed, cut off): its chargers are marked offline here.
//! - `<cluster>.nodes.hello`: `{node}` on every (re)connect to NATS. Every node answers by
//!   announcing its chargers again (online and each connector's status), so a node that starts
//!   late or comes back after an outage catches up; the newcomer announces its own.
//!
//! Leases ([`lease`]) live in the key-value bucket `<cluster>_leases`: `duties` (who runs fault
//! detection, queue calling, robot dispatch and unit planning) and `node.<id>` (a node id is
//! one process's at a time).
//!
//! Without NATS a node keeps serving its own chargers; commands for chargers elsewhere answer
//! offline until it reconnects, and no node runs the duties while none can renew the lease.

mod forward;
pub mod lease;
mod link;
mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt as _;

use chargeops_core::{Command, CommandError, CommandReply, ConnectorState, Event, Protocol};

use crate::Gateway;
use crate::writer::{self, Origin};

pub use forward::{ForwardError, Forwarded};
pub use link::{LinkError, NatsConfig, check_url, redact};

const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node silent this long is taken for gone.
pub const NODE_EXPIRY: Duration = Duration::from_secs(6);
/// The cluster's name when none is given: the subjects' first token.
pub const DEFAULT_NAME: &str = "chargeops";

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The NATS server and how to log in.
    pub nats: NatsConfig,
    /// This node's name in subjects: letters, digits, `-` and `_`.
    pub node_id: String,
    /// The cluster's name (several clusters may share one NATS): letters, digits, `-`, `_`.
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("invalid node id {0:?} (letters, digits, '-' and '_', at most 64)")]
    NodeId(String),
    #[error("invalid cluster name {0:?} (letters, digits, '-' and '_', at most 32)")]
    Name(String),
    #[error(
        "node id {node:?} is in use by another running node (started {since}); give each node its own --node-id"
    )]
    NodeIdInUse { node: String, since: String },
    #[error("the cluster is already started")]
    AlreadyStarted,
}

/// Whether `id` can name a node in a subject.
pub fn valid_node_id(id: &str) -> bool {
    valid_token(id, 64)
}

/// Whether `name` can name a cluster (a subject token, a stream and a bucket name).
pub fn valid_name(name: &str) -> bool {
    valid_token(name, 32)
}

fn valid_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `<hostname>-<pid>`, made fit for a subject.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_owned());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let host = if host.is_empty() { "node".into() } else { host };
    format!("{host}-{}", std::process::id())
}

/// An event as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per event (`<node>.<boot>.<seq>`): a repeat of an id is not applied again.
    #[serde(default)]
    pub id: String,
    /// The node whose connection made the change.
    pub node: String,
    pub event: Event,
    /// For `status_changed`: the connector's whole state (the raw status the event leaves out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ConnectorState>,
}

/// A command for the node that holds the charger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireRequest {
    pub charger_id: String,
    pub command: Command,
}

/// The answer to a [`WireRequest`]: the charger's reply or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum WireReply {
    Reply { reply: CommandReply },
    Offline,
    Timeout { secs: u64 },
    CallError { code: String, description: String },
    Unsupported { protocol: String },
    Invalid { message: String },
    Closed,
}

impl WireReply {
    pub fn from_result(result: Result<CommandReply, CommandError>) -> WireReply {
        match result {
            Ok(reply) => WireReply::Reply { reply },
            Err(CommandError::Offline(_)) => WireReply::Offline,
            Err(CommandError::Timeout(secs)) => WireReply::Timeout { secs },
            Err(CommandError::CallError { code, description }) => {
                WireReply::CallError { code, description }
            }
            Err(CommandError::Unsupported { protocol, .. }) => WireReply::Unsupported {
                protocol: protocol.to_owned(),
            },
            Err(CommandError::Invalid(message)) => WireReply::Invalid { message },
            Err(CommandError::Closed) => WireReply::Closed,
        }
    }

    /// Back to the gateway's result, for `command` sent to `charger_id`.
    pub fn into_result(
        self,
        charger_id: &str,
        command: &'static str,
    ) -> Result<CommandReply, CommandError> {
        match self {
            WireReply::Reply { reply } => Ok(reply),
            WireReply::Offline => Err(CommandError::Offline(charger_id.to_owned())),
            WireReply::Timeout { secs } => Err(CommandError::Timeout(secs)),
            WireReply::CallError { code, description } => {
                Err(CommandError::CallError { code, description })
            }
            WireReply::Unsupported { protocol } => Err(CommandError::Unsupported {
                command,
                protocol: static_protocol(&protocol),
            }),
            WireReply::Invalid { message } => Err(CommandError::Invalid(message)),
            WireReply::Closed => Err(CommandError::Closed),
        }
    }
}

/// The protocol names the gateway's `Unsupported` errors use, as the static strings it holds.
fn static_protocol(name: &str) -> &'static str {
    match name {
        "ocpp1.6" => "ocpp1.6",
        "ocpp2.0.1" => "ocpp2.0.1",
        "ykc" => "ykc",
        _ => "the charger's protocol",
    }
}

/// Why a request to another node got no answer.
#[derive(Debug, thiserror::Error)]
enum Unreached {
    #[error("not connected to NATS")]
    Down,
    #[error("no node is listening on the subject")]
    NoResponders,
    #[error("no answer in time")]
    TimedOut,
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct NodeNote {
    node: String,
}

/// Who holds which charger elsewhere, and when each node was last heard from.
#[derive(Default)]
struct Table {
    owners: HashMap<String, String>,
    nodes: HashMap<String, Instant>,
}

/// This node's side of the cluster.
pub struct Cluster {
    name: String,
    node: String,
    /// This process among all that ever had this node id: ids of its events are unique.
    boot: String,
    client: async_nats::Client,
    connected: watch::Receiver<bool>,
    table: Mutex<Table>,
    /// How long to wait for another node's answer to a command.
    request_timeout: Duration,
    command_timeout: Duration,
    /// Who runs the background duties.
    duties: Arc<lease::Lease>,
    /// This process's hold on its node id.
    node_lease: Arc<lease::Lease>,
    /// The lease bucket, once open.
    kv: OnceLock<async_nats::jetstream::kv::Store>,
    /// Set by [`Cluster::leave`]: the leases are no longer renewed.
    left: std::sync::atomic::AtomicBool,
    /// The events on their way to the stream.
    outbox: mpsc::Sender<stream::Out>,
    seq: AtomicU64,
    seen: Mutex<stream::Seen>,
    /// The node's whole HTTP router, for the requests other nodes send here.
    http: OnceLock<axum::Router>,
}

impl Cluster {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// The cluster's name, the first token of its subjects.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.name)
    }

    /// Whether the link to NATS is up.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// The node that holds `charger_id`, as far as this node knows (never itself).
    pub fn owner_of(&self, charger_id: &str) -> Option<String> {
        self.table().owners.get(charger_id).cloned()
    }

    /// The other nodes heard from within [`NODE_EXPIRY`], by name.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .table()
            .nodes
            .iter()
            .filter(|(_, seen)| seen.elapsed() <= NODE_EXPIRY)
            .map(|(n, _)| n.clone())
            .collect();
        nodes.sort();
        nodes
    }

    /// The lease the background duties run under.
    pub fn duties_lease(&self) -> &Arc<lease::Lease> {
        &self.duties
    }

    /// Leaves the cluster on a clean stop: the duties lease and the node id are let go at
    /// once, so another node takes the duties over without waiting for the lease to age out.
    /// Call it after this node's duties have stopped.
    pub async fn leave(&self) {
        self.left.store(true, Ordering::SeqCst);
        if let Some(kv) = self.kv.get() {
            if self.duties.holds() {
                tracing::info!(
                    node = self.node,
                    "leaving the cluster: the duties lease is let go"
                );
            }
            self.duties.release(kv).await;
            self.node_lease.release(kv).await;
        }
        let _ = self.client.flush().await;
    }

    /// Hands the node's HTTP router to the cluster, which serves other nodes' forwarded
    /// requests with it.
    pub fn serve_http(&self, router: axum::Router) {
        let _ = self.http.set(router);
    }

    /// Sends a command for a charger this node does not hold to the node that does.
    pub(crate) async fn command(
        &self,
        charger_id: &str,
        command: Command,
    ) -> Result<CommandReply, CommandError> {
        let offline = || CommandError::Offline(charger_id.to_owned());
        let Some(node) = self.owner_of(charger_id) else {
            return Err(offline());
        };
        let name = command.name();
        let request = WireRequest {
            charger_id: charger_id.to_owned(),
            command,
        };
        let payload =
            serde_json::to_vec(&request).map_err(|e| CommandError::Invalid(e.to_string()))?;
        let subject = self.subject(&format!("cmd.{node}"));
        match self
            .request(subject, payload.into(), self.request_timeout)
            .await
        {
            Ok(msg) => match serde_json::from_slice::<WireReply>(&msg.payload) {
                Ok(reply) => reply.into_result(charger_id, name),
                Err(error) => {
                    tracing::warn!(node, %error, "ignoring a malformed command reply");
                    Err(CommandError::Closed)
                }
            },
            Err(Unreached::TimedOut) => Err(CommandError::Timeout(self.command_timeout.as_secs())),
            Err(error) => {
                tracing::info!(charger_id, node, %error, "command could not reach the charger's node");
                Err(offline())
            }
        }
    }

    async fn request(
        &self,
        subject: String,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<async_nats::Message, Unreached> {
        // While the link is down a request would wait out its timeout in the client's queue:
        // say at once that no one can be reached.
        if !self.is_connected() {
            return Err(Unreached::Down);
        }
        let request = async_nats::client::Request::new()
            .payload(payload)
            .timeout(Some(timeout));
        self.client
            .send_request(subject, request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::client::RequestErrorKind::TimedOut => Unreached::TimedOut,
                async_nats::client::RequestErrorKind::NoResponders => Unreached::NoResponders,
                _ => Unreached::Other(e.to_string()),
            })
    }

    /// The largest HTTP body a message between nodes carries: the server's payload limit less
    /// room for the headers and the base64 growth.
    fn carry_limit(&self) -> usize {
        let max = self.client.server_info().max_payload.max(64 * 1024);
        (max / 4) * 3 - 16 * 1024
    }

    /// Carries an HTTP request for the duties' books to the node that holds them.
    pub async fn forward(
        &self,
        holder: &str,
        req: axum::extract::Request,
    ) -> Result<axum::response::Response, ForwardError> {
        let wire = forward::to_wire(&self.node, req, self.carry_limit()).await?;
        let payload = serde_json::to_vec(&wire).map_err(|_| ForwardError::BadReply)?;
        let subject = self.subject(&format!("http.{holder}"));
        let reply = self
            .request(subject, payload.into(), forward::HTTP_TIMEOUT)
            .await
            .map_err(|e| {
                tracing::info!(holder, error = %e, "forwarded request did not reach the duties' node");
                ForwardError::Unreachable(holder.to_owned())
            })?;
        let wire: forward::WireHttpReply =
            serde_json::from_slice(&reply.payload).map_err(|_| ForwardError::BadReply)?;
        forward::reply_from_wire(wire)
    }

    /// Whether the node holding the duties vouches for `id_tag` at `charger_id` (a queue
    /// ticket's or a robot car's tag). False when it cannot be asked.
    pub(crate) async fn vouch(&self, charger_id: &str, id_tag: &str) -> bool {
        let Some(holder) = self.duties.holder().filter(|h| *h != self.node) else {
            return false;
        };
        let ask = forward::WireTag {
            charger_id: charger_id.to_owned(),
            id_tag: id_tag.to_owned(),
        };
        let Ok(payload) = serde_json::to_vec(&ask) else {
            return false;
        };
        let subject = self.subject(&format!("tags.{holder}"));
        match self
            .request(subject, payload.into(), forward::TAG_TIMEOUT)
            .await
        {
            Ok(msg) => serde_json::from_slice::<forward::WireTagReply>(&msg.payload)
                .is_ok_and(|r| r.accepted),
            Err(error) => {
                tracing::info!(charger_id, holder, %error, "tag check could not reach the duties' node");
                false
            }
        }
    }

    async fn publish(&self, subject: String, payload: &impl Serialize) {
        match serde_json::to_vec(payload) {
            Ok(bytes) => {
                if let Err(error) = self.client.publish(subject.clone(), bytes.into()).await {
                    tracing::debug!(subject, %error, "cluster message dropped");
                }
            }
            Err(error) => tracing::warn!(subject, %error, "failed to encode a cluster message"),
        }
    }

    /// Puts one of this node's events in the outbox for the stream, waiting for room.
    async fn publish_event(&self, event: Event, state: Option<ConnectorState>) {
        let subject = self.subject(&format!("events.{}", event.kind()));
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let envelope = Envelope {
            id: format!("{}.{}.{seq}", self.node, self.boot),
            node: self.node.clone(),
            event,
            state,
        };
        match serde_json::to_vec(&envelope) {
            Ok(bytes) => {
                let out = stream::Out {
                    subject,
                    id: envelope.id,
                    payload: bytes.into(),
                };
                if self.outbox.send(out).await.is_err() {
                    tracing::debug!("cluster event dropped (the publisher has stopped)");
                }
            }
            Err(error) => tracing::warn!(subject, %error, "failed to encode a cluster event"),
        }
    }
}

/// Whether another node needs to hear of this event: all of them (the duties' node feeds fault
/// detection with every kind, the others' live feeds show them).
fn shared(_event: &Event) -> bool {
    true
}

fn random_boot() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Joins the cluster: connects to NATS (a refused login or bad TLS stops here), claims the node
/// id, hooks the live bus, and starts the tasks that talk to NATS. A NATS server that is not up
/// yet is waited for in the background.
pub async fn start(gw: &Arc<Gateway>, config: ClusterConfig) -> Result<Arc<Cluster>, ClusterError> {
    link::check_url(&config.nats.url)?;
    if !valid_node_id(&config.node_id) {
        return Err(ClusterError::NodeId(config.node_id));
    }
    if !valid_name(&config.name) {
        return Err(ClusterError::Name(config.name));
    }
    let node = config.node_id;
    let name = config.name;
    let link = link::connect(&config.nats, &format!("chargeops {name} {node}")).await?;
    let boot = random_boot();
    let js = async_nats::jetstream::new(link.client.clone());
    let node_lease = Arc::new(lease::Lease::new(&format!("node.{node}"), &node, &boot));
    if *link.connected.borrow() {
        match lease::bucket(&js, &name).await {
            Ok(kv) => {
                if let Err(lease::Clash(other)) = lease::claim_node_id(&kv, &node_lease).await {
                    return Err(ClusterError::NodeIdInUse {
                        node,
                        since: other.since.to_rfc3339(),
                    });
                }
            }
            Err(error) => tracing::error!(
                %error,
                "the cluster's lease bucket cannot be opened: is JetStream on (nats-server -js)? \
                 No node runs the duties until it is"
            ),
        }
    }
    let command_timeout = gw.config.command_timeout;
    let (outbox, outbox_rx) = mpsc::channel(8192);
    let duties = Arc::new(lease::Lease::new(lease::DUTIES, &node, &boot));
    let cluster = Arc::new(Cluster {
        name: name.clone(),
        node: node.clone(),
        boot,
        client: link.client.clone(),
        connected: link.connected.clone(),
        table: Mutex::default(),
        // The holder waits up to the timeout for room in the queue, then twice it for the
        // charger (`Gateway::send_local`); a little more for the trip.
        request_timeout: command_timeout * 3 + Duration::from_secs(2),
        command_timeout,
        duties,
        node_lease: node_lease.clone(),
        kv: OnceLock::new(),
        left: std::sync::atomic::AtomicBool::new(false),
        outbox,
        seq: AtomicU64::new(0),
        seen: Mutex::default(),
        http: OnceLock::new(),
    });
    if gw.cluster.set(cluster.clone()).is_err() {
        return Err(ClusterError::AlreadyStarted);
    }
    let (outbound_tx, outbound_rx) = mpsc::channel::<Event>(8192);
    let dropped = AtomicU64::new(0);
    let hooked = gw.live.set_outbound(move |event| {
        if shared(event) && outbound_tx.try_send(event.clone()).is_err() {
            // Said at the 1st, 2nd, 4th, 8th... drop, so a long burst does not flood the log.
            let n = dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    kind = event.kind(),
                    dropped = n,
                    "cluster outbound queue full; events not shared (the next hello resyncs)"
                );
            }
        }
    });
    if !hooked {
        return Err(ClusterError::AlreadyStarted);
    }
    let subscribe = |rest: &str| {
        let client = link.client.clone();
        let subject = cluster.subject(rest);
        async move { client.subscribe(subject).await }
    };
    let commands = subscribe(&format!("cmd.{node}"));
    let heartbeats = subscribe("nodes.heartbeat");
    let hellos = subscribe("nodes.hello");
    let http = subscribe(&format!("http.{node}"));
    let tags = subscribe(&format!("tags.{node}"));
    let subscribed = async {
        Ok::<_, async_nats::SubscribeError>((
            commands.await?,
            heartbeats.await?,
            hellos.await?,
            http.await?,
            tags.await?,
        ))
    }
    .await;
    let (commands, heartbeats, hellos, http, tags) =
        subscribed.map_err(|e| LinkError::Url(format!("{}: {e}", redact(&config.nats.url))))?;
    tokio::spawn(stream::publish(
        js.clone(),
        outbox_rx,
        link.connected.clone(),
    ));
    let applier = {
        let (gw, cluster) = (gw.clone(), cluster.clone());
        Arc::new(move |payload: &[u8]| receive_event(&gw, &cluster, payload))
    };
    tokio::spawn(stream::consume(
        js.clone(),
        name.clone(),
        node.clone(),
        link.connected.clone(),
        applier,
    ));
    tokio::spawn(outbound(gw.clone(), cluster.clone(), outbound_rx));
    tokio::spawn(answer_commands(gw.clone(), cluster.clone(), commands));
    tokio::spawn(hear_nodes(gw.clone(), cluster.clone(), heartbeats, false));
    tokio::spawn(hear_nodes(gw.clone(), cluster.clone(), hellos, true));
    tokio::spawn(answer_http(cluster.clone(), http));
    tokio::spawn(answer_tags(gw.clone(), cluster.clone(), tags));
    tokio::spawn(membership(
        gw.clone(),
        cluster.clone(),
        link.connected.clone(),
    ));
    tokio::spawn(keep_leases(js, cluster.clone(), link.connected.clone()));
    tracing::info!(
        node,
        cluster = name,
        nats = %redact(&config.nats.url),
        "cluster mode: sharing live state and routing commands over NATS"
    );
    Ok(cluster)
}

/// Hands this node's events on to the others.
async fn outbound(gw: Arc<Gateway>, cluster: Arc<Cluster>, mut events: mpsc::Receiver<Event>) {
    while let Some(event) = events.recv().await {
        let mut state = None;
        match &event {
            Event::ChargerOnline { charger_id, .. } => {
                // This node holds it now, whoever did before.
                cluster.table().owners.remove(charger_id);
            }
            // The charger left this node for another one before this connection noticed: it
            // is online there, so it stays online here.
            Event::ChargerOffline {
                charger_id,
                station_id,
                ..
            } if cluster.owner_of(charger_id).is_some() && !gw.is_connected(charger_id) => {
                if let Some(protocol) = gw.live.snapshot(charger_id).and_then(|s| s.protocol) {
                    writer::charger_online(
                        &gw.live,
                        charger_id,
                        station_id,
                        protocol,
                        Origin::Remote,
                    );
                }
            }
            Event::StatusChanged {
                charger_id,
                evse_id,
                connector_id,
                ..
            } => state = gw.live.connector(charger_id, *evse_id, *connector_id),
            _ => {}
        }
        cluster.publish_event(event, state).await;
    }
}

/// One event from the stream: applied unless it is this node's own or a repeat.
fn receive_event(gw: &Arc<Gateway>, cluster: &Arc<Cluster>, payload: &[u8]) {
    match serde_json::from_slice::<Envelope>(payload) {
        Ok(envelope) if envelope.node == cluster.node => {}
        Ok(envelope) => {
            if envelope.id.is_empty() {
                tracing::warn!(node = envelope.node, "ignoring a cluster event with no id");
                return;
            }
            let first = cluster
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first(&envelope.id);
            if first {
                apply(gw, cluster, envelope);
            } else {
                tracing::debug!(
                    id = envelope.id,
                    "cluster event seen before; not applied again"
                );
            }
        }
        Err(error) => malformed("events", payload, &error),
    }
}

fn malformed(subject: &str, payload: &[u8], error: &serde_json::Error) {
    tracing::warn!(
        subject,
        bytes = payload.len(),
        %error,
        "ignoring a malformed cluster message"
    );
}

/// Answers command requests for chargers this node holds (or says offline).
async fn answer_commands(
    gw: Arc<Gateway>,
    cluster: Arc<Cluster>,
    mut requests: async_nats::Subscriber,
) {
    while let Some(msg) = requests.next().await {
        let Some(reply_to) = msg.reply.clone() else {
            tracing::warn!(
                subject = %msg.subject,
                "ignoring a command request with no reply subject"
            );
            continue;
        };
        let request = match serde_json::from_slice::<WireRequest>(&msg.payload) {
            Ok(request) => request,
            Err(error) => {
                malformed(&msg.subject, &msg.payload, &error);
                let reply = WireReply::Invalid {
                    message: "malformed command request".to_owned(),
                };
                cluster.publish(reply_to.to_string(), &reply).await;
                continue;
            }
        };
        let (gw, cluster) = (gw.clone(), cluster.clone());
        tokio::spawn(async move {
            let result = gw.send_local(&request.charger_id, request.command).await;
            cluster
                .publish(reply_to.to_string(), &WireReply::from_result(result))
                .await;
        });
    }
}

/// Serves other nodes' forwarded HTTP requests through this node's router.
async fn answer_http(cluster: Arc<Cluster>, mut requests: async_nats::Subscriber) {
    while let Some(msg) = requests.next().await {
        let Some(reply_to) = msg.reply.clone() else {
            tracing::warn!(subject = %msg.subject, "ignoring a forwarded request with no reply subject");
            continue;
        };
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let reply = match serde_json::from_slice::<forward::WireHttp>(&msg.payload)
                .ok()
                .and_then(forward::from_wire)
            {
                None => {
                    tracing::warn!(
                        subject = %msg.subject,
                        bytes = msg.payload.len(),
                        "ignoring a malformed cluster message"
                    );
                    forward::WireHttpReply {
                        status: 400,
                        headers: vec![("content-type".into(), "application/json".into())],
                        body: base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            r#"{"code":"bad_request","message":"malformed forwarded request"}"#,
                        ),
                    }
                }
                Some(req) => match cluster.http.get() {
                    Some(router) => {
                        let resp = match router.clone().oneshot(req).await {
                            Ok(resp) => resp,
                            Err(never) => match never {},
                        };
                        forward::reply_to_wire(resp, cluster.carry_limit()).await
                    }
                    None => forward::WireHttpReply {
                        status: 503,
                        headers: vec![("retry-after".into(), "2".into())],
                        body: String::new(),
                    },
                },
            };
            cluster.publish(reply_to.to_string(), &reply).await;
        });
    }
}

/// Answers other nodes' tag checks from this node's tag authorities.
async fn answer_tags(
    gw: Arc<Gateway>,
    cluster: Arc<Cluster>,
    mut requests: async_nats::Subscriber,
) {
    while let Some(msg) = requests.next().await {
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        let accepted = match serde_json::from_slice::<forward::WireTag>(&msg.payload) {
            Ok(ask) => gw.vouched_locally(&ask.charger_id, &ask.id_tag),
            Err(error) => {
                malformed(&msg.subject, &msg.payload, &error);
                false
            }
        };
        cluster
            .publish(reply_to.to_string(), &forward::WireTagReply { accepted })
            .await;
    }
}

/// Heartbeats and hellos of the other nodes.
async fn hear_nodes(
    gw: Arc<Gateway>,
    cluster: Arc<Cluster>,
    mut notes: async_nats::Subscriber,
    hello: bool,
) {
    while let Some(msg) = notes.next().await {
        match serde_json::from_slice::<NodeNote>(&msg.payload) {
            Ok(note) if note.node != cluster.node && valid_node_id(&note.node) => {
                cluster.table().nodes.insert(note.node, Instant::now());
                if hello {
                    tokio::spawn(announce_all(gw.clone(), cluster.clone()));
                }
            }
            Ok(_) => {}
            Err(error) => malformed(&msg.subject, &msg.payload, &error),
        }
    }
}

/// Applies another node's event to this node's live state.
fn apply(gw: &Gateway, cluster: &Cluster, envelope: Envelope) {
    let Envelope {
        node, event, state, ..
    } = envelope;
    if !valid_node_id(&node) {
        tracing::warn!(node, "ignoring a cluster event from an invalid node id");
        return;
    }
    cluster.table().nodes.insert(node.clone(), Instant::now());
    let live = &gw.live;
    match event {
        Event::ChargerOnline {
            charger_id,
            station_id,
            protocol,
            ..
        } => {
            // A connection here is newer than the announcement, or the other node's is stale;
            // either way this node's connection writes this charger.
            if gw.is_connected(&charger_id) {
                return;
            }
            let Some(protocol) = Protocol::parse(&protocol) else {
                tracing::warn!(
                    node,
                    charger_id,
                    protocol,
                    "ignoring an online event with an unknown protocol"
                );
                return;
            };
            cluster.table().owners.insert(charger_id.clone(), node);
            writer::charger_online(live, &charger_id, &station_id, protocol, Origin::Remote);
        }
        Event::ChargerOffline {
            charger_id,
            station_id,
            ..
        } => {
            let mut table = cluster.table();
            if table.owners.get(&charger_id) != Some(&node) {
                // Not the holder (any more): a newer connection elsewhere writes the charger.
                return;
            }
            table.owners.remove(&charger_id);
            drop(table);
            if !gw.is_connected(&charger_id) {
                writer::charger_offline(live, &charger_id, &station_id, Origin::Remote);
            }
        }
        Event::StatusChanged {
            charger_id,
            station_id,
            evse_id,
            connector_id,
            status,
            error_code,
            at,
            ..
        } => {
            let owner = cluster.owner_of(&charger_id);
            if gw.is_connected(&charger_id) || owner.is_some_and(|o| o != node) {
                return;
            }
            let state = state
                .filter(|s| {
                    s.evse_id == evse_id && s.connector_id == connector_id && s.status == status
                })
                .unwrap_or_else(|| {
                    chargeops_core::live::connector_state(
                        evse_id,
                        connector_id,
                        status,
                        None,
                        error_code,
                        at,
                    )
                });
            writer::connector_status(live, &charger_id, &station_id, state, Origin::Remote);
        }
        Event::QueueChanged {
            station_id,
            waiting,
            at,
        } => {
            live.set_waiting_remote(&station_id, waiting, at);
        }
        // Everything else is news for this node's bus: its live feed, and the duties when
        // this node runs them.
        event => live.publish_remote(event),
    }
}

/// Announces every charger this node holds: online, and each connector's status.
async fn announce_all(gw: Arc<Gateway>, cluster: Arc<Cluster>) {
    let now = gw.live.now();
    for charger_id in gw.connections.ids() {
        let Some(snapshot) = gw.live.snapshot(&charger_id) else {
            continue;
        };
        let Some(protocol) = snapshot.protocol else {
            continue;
        };
        cluster
            .publish_event(
                Event::ChargerOnline {
                    charger_id: charger_id.clone(),
                    station_id: snapshot.station_id.clone(),
                    protocol: protocol.as_str().to_owned(),
                    at: now,
                },
                None,
            )
            .await;
        for c in snapshot.connectors {
            cluster
                .publish_event(
                    Event::StatusChanged {
                        charger_id: charger_id.clone(),
                        station_id: snapshot.station_id.clone(),
                        evse_id: c.evse_id,
                        connector_id: c.connector_id,
                        status: c.status,
                        previous: None,
                        error_code: c.error_code.clone(),
                        at: c.updated_at,
                    },
                    Some(c),
                )
                .await;
        }
    }
}

/// Says hello on every connect, beats the heart, and lets go of nodes gone silent.
async fn membership(gw: Arc<Gateway>, cluster: Arc<Cluster>, mut connected: watch::Receiver<bool>) {
    let note = NodeNote {
        node: cluster.node.clone(),
    };
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (hello, heartbeat) = (
        cluster.subject("nodes.hello"),
        cluster.subject("nodes.heartbeat"),
    );
    let greet = |cluster: Arc<Cluster>, gw: Arc<Gateway>| {
        let note = NodeNote {
            node: cluster.node.clone(),
        };
        let (hello, heartbeat) = (hello.clone(), heartbeat.clone());
        async move {
            cluster.publish(hello, &note).await;
            cluster.publish(heartbeat, &note).await;
            announce_all(gw, cluster).await;
        }
    };
    if *connected.borrow_and_update() {
        tokio::spawn(greet(cluster.clone(), gw.clone()));
    }
    loop {
        tokio::select! {
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                if *connected.borrow_and_update() {
                    tokio::spawn(greet(cluster.clone(), gw.clone()));
                }
            }
            _ = tick.tick() => {
                if *connected.borrow() {
                    cluster.publish(heartbeat.clone(), &note).await;
                }
                expire(&gw, &cluster);
            }
        }
    }
}

/// Renews this node's id and takes, holds or follows the duties lease, every [`lease::RENEW`].
async fn keep_leases(
    js: async_nats::jetstream::Context,
    cluster: Arc<Cluster>,
    connected: watch::Receiver<bool>,
) {
    let node_lease = cluster.node_lease.clone();
    let mut kv = None;
    let mut warned = false;
    let mut tick = tokio::time::interval(lease::RENEW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if cluster.left.load(Ordering::SeqCst) {
            return;
        }
        // A holder cut off from NATS fences itself here, on the clock alone.
        cluster.duties.tick();
        if !*connected.borrow() {
            continue;
        }
        if kv.is_none() {
            match lease::bucket(&js, &cluster.name).await {
                Ok(store) => {
                    let _ = cluster.kv.set(store.clone());
                    kv = Some(store);
                    if warned {
                        tracing::info!("the cluster's lease bucket is open");
                    }
                }
                Err(error) => {
                    if !warned {
                        tracing::error!(%error, "the cluster's lease bucket cannot be opened; no node runs the duties");
                        warned = true;
                    }
                    continue;
                }
            }
        }
        let Some(store) = &kv else { continue };
        let was = node_lease.holds();
        if !node_lease.round(store).await && was {
            tracing::error!(
                node = cluster.node,
                "another process took this node's id: two nodes share --node-id {}",
                cluster.node
            );
        }
        cluster.duties.round(store).await;
    }
}

/// Marks offline the chargers of nodes not heard from within [`NODE_EXPIRY`].
fn expire(gw: &Gateway, cluster: &Cluster) {
    let mut gone_chargers = Vec::new();
    {
        let mut table = cluster.table();
        let gone: Vec<String> = table
            .nodes
            .iter()
            .filter(|(_, seen)| seen.elapsed() > NODE_EXPIRY)
            .map(|(node, _)| node.clone())
            .collect();
        for node in gone {
            table.nodes.remove(&node);
            let before = gone_chargers.len();
            table.owners.retain(|charger, owner| {
                if *owner == node {
                    gone_chargers.push(charger.clone());
                    false
                } else {
                    true
                }
            });
            tracing::warn!(
                node,
                chargers = gone_chargers.len() - before,
                "cluster node not heard from; its chargers are offline here"
            );
        }
    }
    for charger_id in gone_chargers {
        if gw.is_connected(&charger_id) {
            continue;
        }
        if let Some(station_id) = gw.live.station_of(&charger_id) {
            writer::charger_offline(&gw.live, &charger_id, &station_id, Origin::Remote);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_core::ConnectorStatus;
    use chrono::{TimeZone, Utc};

    #[test]
    fn commands_and_replies_round_trip() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 8, 30, 0).single();
        let commands = [
            Command::RemoteStart {
                evse_id: Some(1),
                connector_id: None,
                id_tag: "TAG1".into(),
            },
            Command::Reset { hard: true },
            Command::ClearCache,
            Command::ReserveNow {
                evse_id: None,
                connector_id: Some(2),
                id_tag: "Q1".into(),
                expiry: at.unwrap_or_default(),
                reservation_id: 7,
            },
        ];
        for command in commands {
            let request = WireRequest {
                charger_id: "CP-1".into(),
                command,
            };
            let text = serde_json::to_string(&request).unwrap();
            assert_eq!(serde_json::from_str::<WireRequest>(&text).unwrap(), request);
        }
        let results = [
            Ok(CommandReply {
                status: "Accepted".into(),
                response: serde_json::json!({"status": "Accepted"}),
            }),
            Err(CommandError::Offline("CP-1".into())),
            Err(CommandError::Timeout(30)),
            Err(CommandError::CallError {
                code: "NotSupported".into(),
                description: "no".into(),
            }),
            Err(CommandError::Unsupported {
                command: "reset",
                protocol: "ykc",
            }),
            Err(CommandError::Invalid("bad".into())),
            Err(CommandError::Closed),
        ];
        for result in results {
            let wire = WireReply::from_result(result.clone());
            let text = serde_json::to_string(&wire).unwrap();
            let back: WireReply = serde_json::from_str(&text).unwrap();
            assert_eq!(back.into_result("CP-1", "reset"), result);
        }
    }

    #[test]
    fn events_round_trip() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 8, 30, 0)
            .single()
            .unwrap_or_default();
        let state = chargeops_core::live::connector_state(
            1,
            1,
            ConnectorStatus::Charging,
            Some("Charging".into()),
            None,
            at,
        );
        let events = [
            Event::ChargerOnline {
                charger_id: "CP-1".into(),
                station_id: "S1".into(),
                protocol: "ocpp1.6".into(),
                at,
            },
            Event::StatusChanged {
                charger_id: "CP-1".into(),
                station_id: "S1".into(),
                evse_id: 1,
                connector_id: 1,
                status: ConnectorStatus::Charging,
                previous: Some(ConnectorStatus::Available),
                error_code: None,
                at,
            },
            Event::SessionStopped {
                session_id: 3,
                charger_id: "CP-1".into(),
                station_id: "S1".into(),
                evse_id: 1,
                connector_id: 1,
                energy_wh: Some(1200),
                reason: None,
                cost: None,
                at,
            },
        ];
        for event in events {
            let envelope = Envelope {
                id: "a-1.x.1".into(),
                node: "a-1".into(),
                event,
                state: Some(state.clone()),
            };
            let text = serde_json::to_string(&envelope).unwrap();
            assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), envelope);
        }
        assert!(
            serde_json::from_str::<Envelope>("{\"node\":\"a\",\"event\":{\"type\":\"nope\"}}")
                .is_err()
        );
    }

    #[test]
    fn node_ids() {
        assert!(valid_node_id("gw-a_1"));
        assert!(!valid_node_id("a.b"));
        assert!(!valid_node_id("a*"));
        assert!(!valid_node_id(""));
        assert!(valid_node_id(&default_node_id()));
    }
}
