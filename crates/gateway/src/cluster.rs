//! Several `chargeops serve` nodes as one platform, over NATS: commands routed to the node that
//! holds the charger, and the live state of every charger shared.
//!
//! Subjects (JSON payloads):
//! - `chargeops.events.<kind>`: `{node, event, state?}`, the events a node's own connections
//!   publish that change live state (`charger_online`, `charger_offline`, `status_changed`)
//!   and the session events. Every other node applies them to its own `Live` through the same
//!   functions a connection uses (`writer`), as the charger's one writer on that node's behalf,
//!   and publishes them on its own bus only (`Live::publish_remote`), which the outbound hook
//!   does not see: nothing goes back out, so there are no loops.
//! - `chargeops.cmd.<node>`: a request `{charger_id, command}` to the node that holds the
//!   charger, answered with [`WireReply`]. Each node learns who holds what from the online
//!   and offline events (the newest online wins; an offline counts only from the holder), so
//!   exactly one node is asked, and a node asked about a charger it no longer holds says
//!   offline.
//! - `chargeops.nodes.heartbeat`: `{node}` every 2 s. A node not heard from for 6 s is gone
//!   (killed, cut off): its chargers are marked offline here.
//! - `chargeops.nodes.hello`: `{node}` on every (re)connect to NATS. Every node answers by
//!   announcing its chargers again (online and each connector's status), so a node that starts
//!   late or comes back after an outage catches up; the newcomer announces its own.
//!
//! Without NATS a node keeps serving its own chargers; commands for chargers elsewhere answer
//! offline until it reconnects.

mod nats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use chargeops_core::{Command, CommandError, CommandReply, ConnectorState, Event, Protocol};

use crate::Gateway;
use crate::writer::{self, Origin};

pub use nats::BadUrl;

const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node silent this long is taken for gone.
pub const NODE_EXPIRY: Duration = Duration::from_secs(6);
const SUBJECT_EVENTS: &str = "chargeops.events";
const SUBJECT_COMMANDS: &str = "chargeops.cmd";
const SUBJECT_HEARTBEAT: &str = "chargeops.nodes.heartbeat";
const SUBJECT_HELLO: &str = "chargeops.nodes.hello";

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `nats://host:port`.
    pub url: String,
    /// This node's name in subjects: letters, digits, `-` and `_`.
    pub node_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Url(#[from] BadUrl),
    #[error("invalid node id {0:?} (letters, digits, '-' and '_', at most 64)")]
    NodeId(String),
    #[error("the cluster is already started")]
    AlreadyStarted,
}

/// Whether `id` can name a node in a subject.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
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
    node: String,
    client: Arc<nats::Client>,
    table: Mutex<Table>,
    /// How long to wait for another node's answer to a command.
    request_timeout: Duration,
    command_timeout: Duration,
}

impl Cluster {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// The node that holds `charger_id`, as far as this node knows (never itself).
    pub fn owner_of(&self, charger_id: &str) -> Option<String> {
        self.table().owners.get(charger_id).cloned()
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
        let subject = format!("{SUBJECT_COMMANDS}.{node}");
        match self
            .client
            .request(&subject, &payload, self.request_timeout)
            .await
        {
            Ok(msg) => match serde_json::from_slice::<WireReply>(&msg.payload) {
                Ok(reply) => reply.into_result(charger_id, name),
                Err(error) => {
                    tracing::warn!(node, %error, "ignoring a malformed command reply");
                    Err(CommandError::Closed)
                }
            },
            Err(nats::RequestError::TimedOut) => {
                Err(CommandError::Timeout(self.command_timeout.as_secs()))
            }
            Err(error) => {
                tracing::info!(charger_id, node, %error, "command could not reach the charger's node");
                Err(offline())
            }
        }
    }

    fn publish(&self, subject: &str, payload: &impl Serialize) {
        match serde_json::to_vec(payload) {
            Ok(bytes) => {
                if !self.client.publish(subject, None, &bytes) {
                    tracing::debug!(subject, "cluster message dropped (NATS not connected)");
                }
            }
            Err(error) => tracing::warn!(subject, %error, "failed to encode a cluster message"),
        }
    }

    /// Publishes one of this node's events, waiting for room in the outgoing queue.
    async fn publish_event(&self, event: Event, state: Option<ConnectorState>) {
        let subject = format!("{SUBJECT_EVENTS}.{}", event.kind());
        let envelope = Envelope {
            node: self.node.clone(),
            event,
            state,
        };
        match serde_json::to_vec(&envelope) {
            Ok(bytes) => {
                if !self.client.publish_wait(&subject, &bytes).await {
                    tracing::debug!(subject, "cluster event dropped (NATS not connected)");
                }
            }
            Err(error) => tracing::warn!(subject, %error, "failed to encode a cluster event"),
        }
    }
}

/// Whether another node needs to hear of this event.
fn shared(event: &Event) -> bool {
    matches!(
        event,
        Event::ChargerOnline { .. }
            | Event::ChargerOffline { .. }
            | Event::StatusChanged { .. }
            | Event::SessionStarted { .. }
            | Event::SessionStopped { .. }
    )
}

/// Joins the cluster at `config.url`: hooks the live bus, and starts the tasks that talk to
/// NATS. Returns at once; the connection is made, and remade, in the background.
pub fn start(gw: &Arc<Gateway>, config: ClusterConfig) -> Result<Arc<Cluster>, ClusterError> {
    let addr = nats::parse_url(&config.url)?;
    if !valid_node_id(&config.node_id) {
        return Err(ClusterError::NodeId(config.node_id));
    }
    let node = config.node_id;
    let subjects = vec![
        format!("{SUBJECT_EVENTS}.>"),
        format!("{SUBJECT_COMMANDS}.{node}"),
        SUBJECT_HEARTBEAT.to_owned(),
        SUBJECT_HELLO.to_owned(),
    ];
    let (client, channels) = nats::Client::start(addr.clone(), node.clone(), subjects);
    let command_timeout = gw.config.command_timeout;
    let cluster = Arc::new(Cluster {
        node: node.clone(),
        client,
        table: Mutex::default(),
        // The holder waits up to the timeout for room in the queue, then twice it for the
        // charger (`Gateway::send_local`); a little more for the trip.
        request_timeout: command_timeout * 3 + Duration::from_secs(2),
        command_timeout,
    });
    if gw.cluster.set(cluster.clone()).is_err() {
        return Err(ClusterError::AlreadyStarted);
    }
    let (outbound_tx, outbound_rx) = mpsc::channel::<Event>(8192);
    let dropped = std::sync::atomic::AtomicU64::new(0);
    let hooked = gw.live.set_outbound(move |event| {
        if shared(event) && outbound_tx.try_send(event.clone()).is_err() {
            // Said at the 1st, 2nd, 4th, 8th... drop, so a long burst does not flood the log.
            let n = dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
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
    tokio::spawn(outbound(gw.clone(), cluster.clone(), outbound_rx));
    tokio::spawn(inbound(gw.clone(), cluster.clone(), channels.incoming));
    tokio::spawn(membership(gw.clone(), cluster.clone(), channels.connected));
    tracing::info!(node, nats = %addr, "cluster mode: sharing live state and routing commands over NATS");
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

/// Applies what the other nodes send.
async fn inbound(
    gw: Arc<Gateway>,
    cluster: Arc<Cluster>,
    mut incoming: mpsc::Receiver<nats::Message>,
) {
    let own_commands = format!("{SUBJECT_COMMANDS}.{}", cluster.node);
    while let Some(msg) = incoming.recv().await {
        let subject = msg.subject.as_str();
        if subject == own_commands {
            answer(&gw, &cluster, msg);
        } else if subject.starts_with(SUBJECT_EVENTS) {
            match serde_json::from_slice::<Envelope>(&msg.payload) {
                Ok(envelope) if envelope.node != cluster.node => {
                    apply(&gw, &cluster, envelope);
                }
                Ok(_) => {}
                Err(error) => malformed(subject, &msg.payload, &error),
            }
        } else if subject == SUBJECT_HEARTBEAT || subject == SUBJECT_HELLO {
            match serde_json::from_slice::<NodeNote>(&msg.payload) {
                Ok(note) if note.node != cluster.node && valid_node_id(&note.node) => {
                    cluster.table().nodes.insert(note.node, Instant::now());
                    if subject == SUBJECT_HELLO {
                        tokio::spawn(announce_all(gw.clone(), cluster.clone()));
                    }
                }
                Ok(_) => {}
                Err(error) => malformed(subject, &msg.payload, &error),
            }
        }
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

/// Answers a command request for a charger this node holds (or says offline).
fn answer(gw: &Arc<Gateway>, cluster: &Arc<Cluster>, msg: nats::Message) {
    let Some(reply_to) = msg.reply else {
        tracing::warn!(
            subject = msg.subject,
            "ignoring a command request with no reply subject"
        );
        return;
    };
    let request = match serde_json::from_slice::<WireRequest>(&msg.payload) {
        Ok(request) => request,
        Err(error) => {
            malformed(&msg.subject, &msg.payload, &error);
            let reply = WireReply::Invalid {
                message: "malformed command request".to_owned(),
            };
            cluster.publish(&reply_to, &reply);
            return;
        }
    };
    let (gw, cluster) = (gw.clone(), cluster.clone());
    tokio::spawn(async move {
        let result = gw.send_local(&request.charger_id, request.command).await;
        cluster.publish(&reply_to, &WireReply::from_result(result));
    });
}

/// Applies another node's event to this node's live state.
fn apply(gw: &Gateway, cluster: &Cluster, envelope: Envelope) {
    let Envelope { node, event, state } = envelope;
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
        event @ (Event::SessionStarted { .. } | Event::SessionStopped { .. }) => {
            live.publish_remote(event);
        }
        other => {
            tracing::debug!(
                node,
                kind = other.kind(),
                "ignoring a cluster event of a kind not shared"
            );
        }
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
async fn membership(
    gw: Arc<Gateway>,
    cluster: Arc<Cluster>,
    mut connected: tokio::sync::watch::Receiver<bool>,
) {
    let note = NodeNote {
        node: cluster.node.clone(),
    };
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                if *connected.borrow_and_update() {
                    cluster.publish(SUBJECT_HELLO, &note);
                    cluster.publish(SUBJECT_HEARTBEAT, &note);
                    tokio::spawn(announce_all(gw.clone(), cluster.clone()));
                }
            }
            _ = tick.tick() => {
                cluster.publish(SUBJECT_HEARTBEAT, &note);
                expire(&gw, &cluster);
            }
        }
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
