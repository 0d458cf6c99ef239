//! A simulated OCPP 1.6J charge point over a real WebSocket.
//!
//! [`ChargePoint`] owns one connection and does everything on the caller's task: there is no
//! background reader, no channel and no lock per charger, so a fleet of thousands costs little
//! more than their sockets. The price is that frames from the server are only read while the
//! caller is inside a method: [`ChargePoint::call`] answers server CALLs that arrive while it
//! waits for its own answer, and an idle simulator parks in [`ChargePoint::idle_until`] or
//! [`ChargePoint::serve_until`], which do the same until a deadline or a signal.
//!
//! OCPP-J allows one outstanding CALL per direction, which is exactly what a `&mut self`
//! method that waits for its answer gives.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use chargeops_core::Clock;
use chargeops_ocpp::{ErrorCode, Frame, Version};

/// Why a charge point operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("failed to resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("websocket handshake failed: {0}")]
    Handshake(#[source] tungstenite::Error),
    #[error("the server did not accept the OCPP subprotocol offered")]
    Subprotocol,
    #[error("websocket error: {0}")]
    WebSocket(#[from] tungstenite::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("no answer to {action} within {timeout:?}")]
    Timeout { action: String, timeout: Duration },
    #[error("{action} was answered with {code}: {description}")]
    CallError {
        action: String,
        code: String,
        description: String,
    },
    #[error("unexpected answer to {action}: {reason}")]
    BadAnswer { action: String, reason: String },
}

impl ClientError {
    /// Whether the connection is still usable after this error. A CALLERROR, a timeout or an
    /// odd answer leave it open; OCPP-J lets the charger carry on with its next message.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            ClientError::CallError { .. }
                | ClientError::Timeout { .. }
                | ClientError::BadAnswer { .. }
        )
    }
}

/// Where chargers connect: the server's `ws://host:port/path` and its resolved address.
#[derive(Debug, Clone)]
pub struct Endpoint {
    base: String,
    addr: SocketAddr,
}

impl Endpoint {
    /// Parses and resolves `ws://host:port/ocpp`; a charger's URL is that plus `/{id}`.
    /// Only `ws://` is supported: the simulator has no TLS.
    pub async fn resolve(url: &str) -> Result<Endpoint, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: tungstenite::http::uri::InvalidUri| invalid(&e.to_string()))?;
        if uri.scheme_str() != Some("ws") {
            return Err(invalid("only ws:// is supported"));
        }
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let host_port = format!(
            "{}:{port}",
            host.trim_start_matches('[').trim_end_matches(']')
        );
        let addr = tokio::net::lookup_host(host_port.as_str())
            .await
            .map_err(|source| ClientError::Resolve {
                host: host_port.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| ClientError::Resolve {
                host: host_port.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            })?;
        Ok(Endpoint {
            base: url.trim_end_matches('/').to_owned(),
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL a charger with this id connects to.
    pub fn url_for(&self, charger_id: &str) -> String {
        format!("{}/{charger_id}", self.base)
    }
}

/// How a charge point connects.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Password for HTTP Basic authentication (OCPP security profile 1); the user is the id.
    pub password: Option<String>,
    /// Local address to connect from, so a load test can use more than one 127.0.0.x
    /// source address and so more than one ephemeral port range.
    pub bind: Option<IpAddr>,
    /// How long to wait for the answer to a CALL.
    pub call_timeout: Duration,
    /// How long the TCP connect plus WebSocket handshake may take.
    pub connect_timeout: Duration,
    /// The OCPP version to speak (the subprotocol offered).
    pub version: Version,
    /// The clock message timestamps come from (the demo's simulated time).
    pub clock: Clock,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            password: None,
            bind: None,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            version: Version::V16,
            clock: Clock::real(),
        }
    }
}

/// What a server CALL is answered with: a payload, or a CALLERROR code and description.
pub type Answer = Result<Value, (ErrorCode, String)>;

/// Answers CALLs the server sends to the charger (remote start, reset, configuration...).
///
/// A fleet simulator implements this to react to commands (and to remember, say, that a
/// remote start was asked for, which its main loop then acts on).
pub trait Responder: Send {
    fn respond(&mut self, action: &str, payload: &Value) -> Answer;
}

/// Accepts every command, as a healthy charger would; knows a few configuration keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

/// The configuration keys [`AcceptAll`] reports to GetConfiguration.
const CONFIGURATION: &[(&str, &str, bool)] = &[
    ("HeartbeatInterval", "300", false),
    ("MeterValueSampleInterval", "60", false),
    ("NumberOfConnectors", "2", true),
    ("AuthorizeRemoteTxRequests", "false", false),
    ("ConnectionTimeOut", "60", false),
];

impl Responder for AcceptAll {
    fn respond(&mut self, action: &str, payload: &Value) -> Answer {
        Ok(match action {
            "RemoteStartTransaction"
            | "RemoteStopTransaction"
            | "ChangeAvailability"
            | "Reset"
            | "TriggerMessage"
            | "ChangeConfiguration"
            | "ClearCache" => json!({ "status": "Accepted" }),
            "UnlockConnector" => json!({ "status": "Unlocked" }),
            "DataTransfer" => json!({ "status": "UnknownVendorId" }),
            "GetConfiguration" => {
                let wanted: Option<Vec<&str>> = payload
                    .get("key")
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(Value::as_str).collect());
                let known = |k: &str| CONFIGURATION.iter().find(|(name, ..)| *name == k);
                let entry = |&(key, value, readonly): &(&str, &str, bool)| json!({ "key": key, "readonly": readonly, "value": value });
                match wanted {
                    Some(keys) if !keys.is_empty() => {
                        let found: Vec<Value> =
                            keys.iter().filter_map(|k| known(k)).map(entry).collect();
                        let unknown: Vec<&str> = keys
                            .iter()
                            .copied()
                            .filter(|k| known(k).is_none())
                            .collect();
                        let mut answer = json!({ "configurationKey": found });
                        if !unknown.is_empty() {
                            answer["unknownKey"] = json!(unknown);
                        }
                        answer
                    }
                    _ => {
                        json!({ "configurationKey": CONFIGURATION.iter().map(entry).collect::<Vec<_>>() })
                    }
                }
            }
            other => {
                return Err((
                    ErrorCode::NotImplemented,
                    format!("{other} is not implemented by the simulator"),
                ));
            }
        })
    }
}

/// How a CALL ended, for a [`RttSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Result,
    CallError,
    Timeout,
}

/// Receives the round-trip time of every CALL a charge point makes; shared by a fleet.
pub trait RttSink: Send + Sync {
    /// `rtt` is the time from sending the CALL to reading its answer (or the timeout).
    fn record(&self, action: &str, rtt: Duration, outcome: CallOutcome);
}

/// Counters of one charge point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// CALLs sent.
    pub calls: u64,
    /// CALLRESULTs received for them.
    pub results: u64,
    /// CALLERRORs received for them.
    pub call_errors: u64,
    /// CALLs that were not answered in time.
    pub timeouts: u64,
    /// Server CALLs answered (with a result or a CALLERROR).
    pub server_calls: u64,
    /// Frames that were not for us: answers to a CALL that had timed out, undecodable text.
    pub stray_frames: u64,
    pub last_rtt: Duration,
    pub max_rtt: Duration,
}

/// What the BootNotification answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReply {
    /// "Accepted", "Pending" or "Rejected".
    pub status: String,
    /// Heartbeat interval (Accepted) or retry interval (otherwise), seconds.
    pub interval: u64,
}

/// What the charger reports at boot.
#[derive(Debug, Clone)]
pub struct BootInfo {
    pub vendor: String,
    pub model: String,
    pub serial_number: Option<String>,
    pub firmware_version: Option<String>,
}

/// One frame read from the server, after any CALL in it was answered.
enum Incoming {
    Result {
        id: Box<str>,
        payload: Value,
    },
    Error {
        id: Box<str>,
        code: String,
        description: String,
    },
    Other,
}

/// A simulated OCPP 1.6J charge point on one WebSocket connection.
pub struct ChargePoint<R = AcceptAll> {
    id: Box<str>,
    ws: WebSocketStream<TcpStream>,
    next_message_id: u64,
    call_timeout: Duration,
    responder: R,
    sink: Option<Arc<dyn RttSink>>,
    stats: Stats,
    version: Version,
    clock: Clock,
}

impl<R> std::fmt::Debug for ChargePoint<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChargePoint")
            .field("id", &self.id)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Small buffers: a simulator holds thousands of connections and OCPP frames are small.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1024 * 1024))
        .max_frame_size(Some(1024 * 1024))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl ChargePoint<AcceptAll> {
    /// Opens the WebSocket to `endpoint` as charger `id`, offering the subprotocol of
    /// `options.version`.
    pub async fn connect(
        endpoint: &Endpoint,
        id: &str,
        options: &ConnectOptions,
    ) -> Result<ChargePoint<AcceptAll>, ClientError> {
        let timeout = options.connect_timeout;
        match tokio::time::timeout(timeout, Self::connect_inner(endpoint, id, options)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                action: "connect".to_owned(),
                timeout,
            }),
        }
    }

    async fn connect_inner(
        endpoint: &Endpoint,
        id: &str,
        options: &ConnectOptions,
    ) -> Result<ChargePoint<AcceptAll>, ClientError> {
        let url = endpoint.url_for(id);
        let mut request =
            url.as_str()
                .into_client_request()
                .map_err(|e| ClientError::InvalidUrl {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        let headers = request.headers_mut();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(options.version.subprotocol()),
        );
        if let Some(password) = &options.password {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{password}"));
            let value = HeaderValue::from_str(&format!("Basic {token}")).map_err(|e| {
                ClientError::InvalidUrl {
                    url: url.clone(),
                    reason: format!("credentials do not fit a header: {e}"),
                }
            })?;
            headers.insert(header::AUTHORIZATION, value);
        }

        let addr = endpoint.addr();
        let connect_err = |source| ClientError::Connect { addr, source };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(connect_err)?;
        if let Some(ip) = options.bind {
            socket.bind(SocketAddr::new(ip, 0)).map_err(connect_err)?;
        }
        let stream = socket.connect(addr).await.map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;

        let (ws, response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
                .await
                .map_err(|e| match e {
                    tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
                    ) => ClientError::Subprotocol,
                    e => ClientError::Handshake(e),
                })?;
        if response
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .map(HeaderValue::as_bytes)
            != Some(options.version.subprotocol().as_bytes())
        {
            return Err(ClientError::Subprotocol);
        }
        Ok(ChargePoint {
            id: id.into(),
            ws,
            next_message_id: 1,
            call_timeout: options.call_timeout,
            responder: AcceptAll,
            sink: None,
            stats: Stats::default(),
            version: options.version,
            clock: options.clock,
        })
    }
}

impl<R: Responder> ChargePoint<R> {
    /// Replaces what answers server CALLs.
    pub fn with_responder<R2: Responder>(self, responder: R2) -> ChargePoint<R2> {
        ChargePoint {
            id: self.id,
            ws: self.ws,
            next_message_id: self.next_message_id,
            call_timeout: self.call_timeout,
            responder,
            sink: self.sink,
            stats: self.stats,
            version: self.version,
            clock: self.clock,
        }
    }

    /// Reports every round trip to `sink` from now on.
    pub fn with_rtt_sink(mut self, sink: Arc<dyn RttSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Now, as this charger's clock reads it, formatted for a message timestamp.
    pub fn now(&self) -> String {
        rfc3339(self.clock.now())
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn responder(&self) -> &R {
        &self.responder
    }

    pub fn responder_mut(&mut self) -> &mut R {
        &mut self.responder
    }

    pub fn set_call_timeout(&mut self, timeout: Duration) {
        self.call_timeout = timeout;
    }

    /// Sends a CALL and waits for its CALLRESULT, answering server CALLs meanwhile.
    ///
    /// A CALLERROR becomes [`ClientError::CallError`]; both that and a timeout leave the
    /// connection usable (see [`ClientError::is_fatal`]).
    pub async fn call(&mut self, action: &str, payload: &Value) -> Result<Value, ClientError> {
        let message_id = self.next_message_id.to_string();
        self.next_message_id += 1;
        let text = chargeops_ocpp::encode_call(&message_id, action, payload);
        self.ws.send(Message::text(text)).await?;
        self.stats.calls += 1;
        let sent = Instant::now();
        let deadline = sent + self.call_timeout;
        loop {
            let incoming = match tokio::time::timeout_at(deadline, self.read_one()).await {
                Ok(r) => r?,
                Err(_) => {
                    self.stats.timeouts += 1;
                    self.observe(action, sent.elapsed(), CallOutcome::Timeout);
                    return Err(ClientError::Timeout {
                        action: action.to_owned(),
                        timeout: self.call_timeout,
                    });
                }
            };
            match incoming {
                Incoming::Result { id, payload } if *id == *message_id => {
                    self.stats.results += 1;
                    self.observe(action, sent.elapsed(), CallOutcome::Result);
                    return Ok(payload);
                }
                Incoming::Error {
                    id,
                    code,
                    description,
                } if *id == *message_id => {
                    self.stats.call_errors += 1;
                    self.observe(action, sent.elapsed(), CallOutcome::CallError);
                    return Err(ClientError::CallError {
                        action: action.to_owned(),
                        code,
                        description,
                    });
                }
                Incoming::Result { .. } | Incoming::Error { .. } => self.stats.stray_frames += 1,
                Incoming::Other => {}
            }
        }
    }

    /// Answers server CALLs until `until` completes, and returns its output.
    pub async fn serve_until<F: Future>(&mut self, until: F) -> Result<F::Output, ClientError> {
        let mut until = std::pin::pin!(until);
        loop {
            tokio::select! {
                biased;
                out = &mut until => return Ok(out),
                // Only the read races the signal; answering a CALL is never cut short.
                message = self.ws.next() => {
                    let message = received(message)?;
                    if let Incoming::Result { .. } | Incoming::Error { .. } = self.handle(message).await? {
                        self.stats.stray_frames += 1;
                    }
                }
            }
        }
    }

    /// Answers server CALLs until `deadline`.
    pub async fn idle_until(&mut self, deadline: Instant) -> Result<(), ClientError> {
        self.serve_until(tokio::time::sleep_until(deadline)).await
    }

    /// Sends a close frame and waits briefly for the server's.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.ws.close(None).await?;
        let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        Ok(())
    }

    fn observe(&mut self, action: &str, rtt: Duration, outcome: CallOutcome) {
        self.stats.last_rtt = rtt;
        self.stats.max_rtt = self.stats.max_rtt.max(rtt);
        if let Some(sink) = &self.sink {
            sink.record(action, rtt, outcome);
        }
    }

    /// Reads one message; answers it first when it is a server CALL.
    async fn read_one(&mut self) -> Result<Incoming, ClientError> {
        let message = received(self.ws.next().await)?;
        self.handle(message).await
    }

    async fn handle(&mut self, message: Message) -> Result<Incoming, ClientError> {
        let text = match message {
            Message::Text(t) => t,
            Message::Close(_) => return Err(ClientError::Closed),
            Message::Ping(_) => {
                // tungstenite queued the pong; make sure it leaves now, not with our next CALL.
                self.ws.flush().await?;
                return Ok(Incoming::Other);
            }
            Message::Binary(_) | Message::Pong(_) | Message::Frame(_) => {
                return Ok(Incoming::Other);
            }
        };
        match chargeops_ocpp::decode(text.as_str(), self.version) {
            Ok(Frame::Call(call)) => {
                let answer = match self.responder.respond(&call.action, &call.payload) {
                    Ok(payload) => chargeops_ocpp::encode_result(&call.id, &payload),
                    Err((code, description)) => chargeops_ocpp::encode_error(
                        &call.id,
                        code,
                        self.version,
                        &description,
                        &json!({}),
                    ),
                };
                self.stats.server_calls += 1;
                self.ws.send(Message::text(answer)).await?;
                Ok(Incoming::Other)
            }
            Ok(Frame::CallResult(r)) => Ok(Incoming::Result {
                id: r.id.into(),
                payload: r.payload,
            }),
            Ok(Frame::CallError(e)) => Ok(Incoming::Error {
                id: e.id.into(),
                code: e.code,
                description: e.description,
            }),
            Err(e) => {
                tracing::debug!(charger_id = %self.id, error = %e, "undecodable frame from the server");
                self.stats.stray_frames += 1;
                if let Some(answer) = e.answer(self.version) {
                    self.ws.send(Message::text(answer)).await?;
                }
                Ok(Incoming::Other)
            }
        }
    }

    // Typed OCPP 1.6 messages. Payloads are built as JSON directly: the simulator must be able
    // to send what a real charger sends, including what the typed messages would refuse.

    pub async fn boot_notification(&mut self, info: &BootInfo) -> Result<BootReply, ClientError> {
        let mut payload =
            json!({ "chargePointVendor": info.vendor, "chargePointModel": info.model });
        if let Some(s) = &info.serial_number {
            payload["chargePointSerialNumber"] = json!(s);
        }
        if let Some(f) = &info.firmware_version {
            payload["firmwareVersion"] = json!(f);
        }
        let answer = self.call("BootNotification", &payload).await?;
        let bad = |reason: &str| ClientError::BadAnswer {
            action: "BootNotification".to_owned(),
            reason: reason.to_owned(),
        };
        let status = answer
            .get("status")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no status"))?
            .to_owned();
        let interval = answer
            .get("interval")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no interval"))?;
        Ok(BootReply { status, interval })
    }

    pub async fn heartbeat(&mut self) -> Result<(), ClientError> {
        self.call("Heartbeat", &json!({})).await.map(drop)
    }

    /// `status` and `error_code` as OCPP 1.6 spells them ("Available", "NoError").
    pub async fn status_notification(
        &mut self,
        connector_id: u32,
        status: &str,
        error_code: &str,
    ) -> Result<(), ClientError> {
        let payload = json!({
            "connectorId": connector_id,
            "status": status,
            "errorCode": error_code,
            "timestamp": self.now(),
        });
        self.call("StatusNotification", &payload).await.map(drop)
    }

    /// Returns the `idTagInfo.status`.
    pub async fn authorize(&mut self, id_tag: &str) -> Result<String, ClientError> {
        let answer = self.call("Authorize", &json!({ "idTag": id_tag })).await?;
        id_tag_status("Authorize", &answer)
    }

    /// Returns the transaction id the server assigned.
    pub async fn start_transaction(
        &mut self,
        connector_id: u32,
        id_tag: &str,
        meter_start_wh: i64,
    ) -> Result<i64, ClientError> {
        let payload = json!({
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start_wh,
            "timestamp": self.now(),
        });
        let answer = self.call("StartTransaction", &payload).await?;
        answer
            .get("transactionId")
            .and_then(Value::as_i64)
            .ok_or_else(|| ClientError::BadAnswer {
                action: "StartTransaction".to_owned(),
                reason: "no integer transactionId".to_owned(),
            })
    }

    /// One sample of the energy register (Wh) and the power (W).
    pub async fn meter_values(
        &mut self,
        connector_id: u32,
        transaction_id: Option<i64>,
        energy_wh: i64,
        power_w: u32,
    ) -> Result<(), ClientError> {
        let mut payload = json!({
            "connectorId": connector_id,
            "meterValue": [{
                "timestamp": self.now(),
                "sampledValue": [
                    { "value": energy_wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Periodic" },
                    { "value": power_w.to_string(), "measurand": "Power.Active.Import", "unit": "W", "context": "Sample.Periodic" },
                ],
            }],
        });
        if let Some(tx) = transaction_id {
            payload["transactionId"] = json!(tx);
        }
        self.call("MeterValues", &payload).await.map(drop)
    }

    /// `reason` as OCPP 1.6 spells it ("Local", "EVDisconnected", ...).
    pub async fn stop_transaction(
        &mut self,
        transaction_id: i64,
        id_tag: Option<&str>,
        meter_stop_wh: i64,
        reason: &str,
    ) -> Result<(), ClientError> {
        let mut payload = json!({
            "transactionId": transaction_id,
            "meterStop": meter_stop_wh,
            "timestamp": self.now(),
            "reason": reason,
        });
        if let Some(tag) = id_tag {
            payload["idTag"] = json!(tag);
        }
        self.call("StopTransaction", &payload).await.map(drop)
    }
}

fn received(message: Option<Result<Message, tungstenite::Error>>) -> Result<Message, ClientError> {
    match message {
        None
        | Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
            Err(ClientError::Closed)
        }
        Some(Err(e)) => Err(e.into()),
        Some(Ok(m)) => Ok(m),
    }
}

fn id_tag_status(action: &str, answer: &Value) -> Result<String, ClientError> {
    answer
        .get("idTagInfo")
        .and_then(|i| i.get("status"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::BadAnswer {
            action: action.to_owned(),
            reason: "no idTagInfo.status".to_owned(),
        })
}
