//! A small client for the core NATS protocol over plain TCP: CONNECT, PUB, SUB, MSG and HMSG
//! (for the "no responders" status only), PING/PONG, and request/reply through an inbox
//! subject of the client's own. One task owns the connection and reconnects after any failure;
//! callers never wait on the socket. No TLS and no authentication: the cluster's NATS is
//! expected on a private network, like the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot, watch};

/// Longest protocol line accepted from the server (INFO is the long one).
const MAX_LINE: u64 = 64 * 1024;
/// Largest payload accepted whatever the server says its limit is.
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// Server PINGs this often; two left unanswered end the connection.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A message delivered on one of the client's subscriptions.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    pub reply: Option<String>,
    pub payload: Vec<u8>,
    /// The status of a header-carrying message (503: no responders to a request).
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("not connected to NATS")]
    NotConnected,
    #[error("no one is subscribed to the subject")]
    NoResponders,
    #[error("no reply in time")]
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid NATS URL {0:?} (expected nats://HOST:PORT)")]
pub struct BadUrl(pub String);

/// `nats://host:port` or `host:port` to `host:port` (port 4222 when left out).
pub fn parse_url(url: &str) -> Result<String, BadUrl> {
    let bad = || BadUrl(url.to_owned());
    let rest = url.strip_prefix("nats://").unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['@', '/', ' ', ',']) {
        return Err(bad());
    }
    // A bracketed IPv6 address keeps its colons.
    let has_port = match rest.rfind(']') {
        Some(end) => rest[end..].contains(':'),
        None => rest.contains(':'),
    };
    if has_port {
        let (_, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        port.parse::<u16>().map_err(|_| bad())?;
        Ok(rest.to_owned())
    } else {
        Ok(format!("{rest}:4222"))
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Message>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The handle callers use; the connection task holds the other ends.
pub struct Client {
    out: mpsc::Sender<Vec<u8>>,
    connected: Arc<AtomicBool>,
    max_payload: Arc<AtomicUsize>,
    inbox: String,
    pending: Pending,
    next_request: AtomicU64,
}

/// What [`Client::start`] hands back besides the client.
pub struct Channels {
    /// Messages on the subscribed subjects (not the replies to requests).
    pub incoming: mpsc::Receiver<Message>,
    /// Whether the client is connected, changed on every connect and disconnect.
    pub connected: watch::Receiver<bool>,
}

impl Client {
    /// Starts the connection task for `addr` (`host:port`), subscribing to `subjects` on every
    /// connection. Returns at once; the task connects, and reconnects, in the background.
    pub fn start(addr: String, name: String, subjects: Vec<String>) -> (Arc<Client>, Channels) {
        let (out, out_rx) = mpsc::channel(8192);
        let (incoming_tx, incoming) = mpsc::channel(1024);
        let (connected_tx, connected) = watch::channel(false);
        let token = random_token();
        let client = Arc::new(Client {
            out,
            connected: Arc::new(AtomicBool::new(false)),
            max_payload: Arc::new(AtomicUsize::new(1024 * 1024)),
            inbox: format!("_INBOX.{token}."),
            pending: Arc::default(),
            next_request: AtomicU64::new(1),
        });
        let task = Task {
            addr,
            name,
            subjects,
            inbox: client.inbox.clone(),
            connected: client.connected.clone(),
            connected_tx,
            max_payload: client.max_payload.clone(),
            pending: client.pending.clone(),
            incoming: incoming_tx,
        };
        tokio::spawn(task.run(out_rx));
        (
            client,
            Channels {
                incoming,
                connected,
            },
        )
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Publishes a message; false when it was dropped (not connected, too large, or the
    /// outgoing queue is full). Core NATS is at most once anyway.
    pub fn publish(&self, subject: &str, reply: Option<&str>, payload: &[u8]) -> bool {
        if !self.is_connected() || payload.len() > self.max_payload.load(Ordering::Relaxed) {
            return false;
        }
        self.out
            .try_send(encode_pub(subject, reply, payload))
            .is_ok()
    }

    /// Publishes a message, waiting for room in the outgoing queue (bulk announcements);
    /// false when it was dropped (not connected or too large).
    pub async fn publish_wait(&self, subject: &str, payload: &[u8]) -> bool {
        if !self.is_connected() || payload.len() > self.max_payload.load(Ordering::Relaxed) {
            return false;
        }
        self.out
            .send(encode_pub(subject, None, payload))
            .await
            .is_ok()
    }

    /// Publishes `payload` to `subject` and waits for the first reply.
    pub async fn request(
        &self,
        subject: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        if !self.is_connected() {
            return Err(RequestError::NotConnected);
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let reply = format!("{}{id}", self.inbox);
        let msg = encode_pub(subject, Some(&reply), payload);
        if self.out.send(msg).await.is_err() {
            lock(&self.pending).remove(&id);
            return Err(RequestError::NotConnected);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(msg)) if msg.status == Some(503) => Err(RequestError::NoResponders),
            Ok(Ok(msg)) => Ok(msg),
            // The connection dropped: pending requests are let go.
            Ok(Err(_)) => Err(RequestError::NotConnected),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(RequestError::TimedOut)
            }
        }
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Unique enough within one process's lifetime; only needs to differ between nodes.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (nanos ^ u64::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_pub(subject: &str, reply: Option<&str>, payload: &[u8]) -> Vec<u8> {
    let head = match reply {
        Some(reply) => format!("PUB {subject} {reply} {}\r\n", payload.len()),
        None => format!("PUB {subject} {}\r\n", payload.len()),
    };
    let mut out = Vec::with_capacity(head.len() + payload.len() + 2);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

struct Task {
    addr: String,
    name: String,
    subjects: Vec<String>,
    inbox: String,
    connected: Arc<AtomicBool>,
    connected_tx: watch::Sender<bool>,
    max_payload: Arc<AtomicUsize>,
    pending: Pending,
    incoming: mpsc::Sender<Message>,
}

fn io_error(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

impl Task {
    async fn run(self, mut out: mpsc::Receiver<Vec<u8>>) {
        let mut backoff = Duration::from_millis(100);
        let mut was_up = true;
        loop {
            let mut up = false;
            let result = self.session(&mut out, &mut up).await;
            self.connected.store(false, Ordering::Relaxed);
            self.connected_tx.send_replace(false);
            // Requests waiting for a reply on the lost connection end now.
            lock(&self.pending).clear();
            // Whatever was queued for the lost connection is stale.
            while out.try_recv().is_ok() {}
            match result {
                Ok(Stop::Dropped) => return,
                // Said once an outage: when a connection is lost, or the first one fails.
                result if up || was_up => {
                    let error = result.err().map(|e| e.to_string());
                    tracing::warn!(
                        addr = self.addr,
                        error,
                        "lost the NATS connection (or could not make it); serving this node's \
                         chargers alone and reconnecting"
                    );
                }
                result => {
                    let error = result.err().map(|e| e.to_string());
                    tracing::debug!(addr = self.addr, error, "NATS reconnect failed");
                }
            }
            if up {
                backoff = Duration::from_millis(100);
            }
            was_up = false;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(
        &self,
        out: &mut mpsc::Receiver<Vec<u8>>,
        up: &mut bool,
    ) -> std::io::Result<Stop> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| io_error("connect timed out"))??;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut write = BufWriter::new(write);
        let mut line = Vec::new();
        tokio::time::timeout(CONNECT_TIMEOUT, read_line(&mut read, &mut line))
            .await
            .map_err(|_| io_error("no INFO from the server"))??;
        let info = line
            .strip_prefix(b"INFO ")
            .ok_or_else(|| io_error("the server did not start with INFO"))?;
        let info: serde_json::Value =
            serde_json::from_slice(info).map_err(|e| io_error(format!("bad INFO: {e}")))?;
        let max_payload = info
            .get("max_payload")
            .and_then(|v| v.as_u64())
            .map_or(1024 * 1024, |v| (v as usize).min(MAX_PAYLOAD));
        self.max_payload.store(max_payload, Ordering::Relaxed);
        let connect = serde_json::json!({
            "verbose": false,
            "pedantic": false,
            "lang": "rust-chargeops",
            "version": env!("CARGO_PKG_VERSION"),
            "name": self.name,
            "protocol": 1,
            "headers": true,
            "no_responders": true,
            // A node never needs its own messages back.
            "echo": false,
        });
        let mut hello = format!("CONNECT {connect}\r\n");
        for (sid, subject) in self.subjects.iter().enumerate() {
            hello.push_str(&format!("SUB {subject} {}\r\n", sid + 1));
        }
        hello.push_str(&format!("SUB {}* 0\r\nPING\r\n", self.inbox));
        write.write_all(hello.as_bytes()).await?;
        write.flush().await?;
        // The PONG to that PING says the server took CONNECT and the subscriptions.
        loop {
            let op =
                tokio::time::timeout(CONNECT_TIMEOUT, read_op(&mut read, &mut line, max_payload))
                    .await
                    .map_err(|_| io_error("no PONG from the server"))??;
            match op {
                Op::Pong => break,
                Op::Ping => {
                    write.write_all(b"PONG\r\n").await?;
                    write.flush().await?;
                }
                Op::Err(e) => return Err(io_error(format!("server refused: {e}"))),
                Op::Ok | Op::Info | Op::Msg(_) => {}
            }
        }
        *up = true;
        self.connected.store(true, Ordering::Relaxed);
        self.connected_tx.send_replace(true);
        tracing::info!(addr = self.addr, "connected to NATS");

        let (ctrl_tx, mut ctrl_rx) = mpsc::channel::<&'static [u8]>(4);
        let outstanding = Arc::new(AtomicUsize::new(0));
        let mut reader = tokio::spawn(read_loop(
            read,
            self.inbox.clone(),
            self.pending.clone(),
            self.incoming.clone(),
            ctrl_tx,
            outstanding.clone(),
            max_payload,
        ));
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let result = loop {
            tokio::select! {
                ended = &mut reader => {
                    break match ended {
                        Ok(Err(e)) => Err(e),
                        _ => Ok(Stop::Closed),
                    };
                }
                Some(ctrl) = ctrl_rx.recv() => {
                    if let Err(e) = write_flush(&mut write, ctrl).await {
                        break Err(e);
                    }
                }
                item = out.recv() => {
                    let Some(first) = item else { break Ok(Stop::Dropped) };
                    if let Err(e) = write.write_all(&first).await {
                        break Err(e);
                    }
                    // Whatever else is queued goes in the same flush.
                    let mut failed = None;
                    for _ in 0..256 {
                        let Ok(next) = out.try_recv() else { break };
                        if let Err(e) = write.write_all(&next).await {
                            failed = Some(e);
                            break;
                        }
                    }
                    if let Some(e) = failed {
                        break Err(e);
                    }
                    if let Err(e) = write.flush().await {
                        break Err(e);
                    }
                }
                _ = ping.tick() => {
                    if outstanding.fetch_add(1, Ordering::Relaxed) >= 2 {
                        break Err(io_error("the server stopped answering PINGs"));
                    }
                    if let Err(e) = write_flush(&mut write, b"PING\r\n").await {
                        break Err(e);
                    }
                }
            }
        };
        reader.abort();
        result
    }
}

enum Stop {
    /// The server closed the connection.
    Closed,
    /// Every client handle is gone: the task ends.
    Dropped,
}

async fn write_flush(
    write: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    bytes: &[u8],
) -> std::io::Result<()> {
    write.write_all(bytes).await?;
    write.flush().await
}

async fn read_loop(
    mut read: BufReader<OwnedReadHalf>,
    inbox: String,
    pending: Pending,
    incoming: mpsc::Sender<Message>,
    ctrl: mpsc::Sender<&'static [u8]>,
    outstanding: Arc<AtomicUsize>,
    max_payload: usize,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        match read_op(&mut read, &mut line, max_payload).await? {
            Op::Ping => {
                if ctrl.send(b"PONG\r\n").await.is_err() {
                    return Ok(());
                }
            }
            Op::Pong => outstanding.store(0, Ordering::Relaxed),
            Op::Err(e) => tracing::warn!(error = e, "NATS server reported an error"),
            Op::Ok | Op::Info => {}
            Op::Msg(msg) => {
                if let Some(id) = msg.subject.strip_prefix(inbox.as_str()) {
                    let waiter = id
                        .parse::<u64>()
                        .ok()
                        .and_then(|id| lock(&pending).remove(&id));
                    // A reply nobody waits for any more (timed out) is dropped.
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(msg);
                    }
                } else if incoming.send(msg).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

enum Op {
    Msg(Message),
    Ping,
    Pong,
    Ok,
    Info,
    Err(String),
}

/// Reads one line without its CRLF into `line`; errors at EOF and on an overlong line.
async fn read_line(read: &mut BufReader<OwnedReadHalf>, line: &mut Vec<u8>) -> std::io::Result<()> {
    line.clear();
    let n = (&mut *read).take(MAX_LINE).read_until(b'\n', line).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if line.last() != Some(&b'\n') {
        return Err(io_error("protocol line too long"));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(())
}

async fn read_op(
    read: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
    max_payload: usize,
) -> std::io::Result<Op> {
    read_line(read, line).await?;
    let text = std::str::from_utf8(line).map_err(|_| io_error("protocol line is not UTF-8"))?;
    let mut words = text.split_ascii_whitespace();
    let verb = words.next().unwrap_or_default().to_ascii_uppercase();
    let args: Vec<&str> = words.collect();
    match verb.as_str() {
        "PING" => Ok(Op::Ping),
        "PONG" => Ok(Op::Pong),
        "+OK" => Ok(Op::Ok),
        "INFO" => Ok(Op::Info),
        "-ERR" => Ok(Op::Err(text.get(5..).unwrap_or_default().trim().to_owned())),
        "MSG" | "HMSG" => {
            let headers = verb == "HMSG";
            let msg = parse_msg_args(&args, headers)
                .ok_or_else(|| io_error(format!("bad {verb} line {text:?}")))?;
            let (subject, reply, header_len, total) = msg;
            if total > max_payload || header_len > total {
                return Err(io_error(format!("{verb} of {total} bytes is too large")));
            }
            let mut body = vec![0u8; total + 2];
            read.read_exact(&mut body).await?;
            body.truncate(total);
            let status = if headers {
                status_of(&body[..header_len])
            } else {
                None
            };
            let payload = body.split_off(header_len);
            Ok(Op::Msg(Message {
                subject,
                reply,
                payload,
                status,
            }))
        }
        _ => Err(io_error(format!("unknown protocol line {text:?}"))),
    }
}

/// `subject sid [reply] bytes` (MSG) or `subject sid [reply] header-bytes total-bytes`
/// (HMSG) to (subject, reply, header bytes, total bytes).
fn parse_msg_args(args: &[&str], headers: bool) -> Option<(String, Option<String>, usize, usize)> {
    let fixed = if headers { 4 } else { 3 };
    let reply = match args.len() {
        n if n == fixed => None,
        n if n == fixed + 1 => Some(args[2].to_owned()),
        _ => return None,
    };
    let subject = args.first()?.to_string();
    let total: usize = args.last()?.parse().ok()?;
    let header_len = if headers {
        args.get(args.len() - 2)?.parse().ok()?
    } else {
        0
    };
    Some((subject, reply, header_len, total))
}

/// The status code on a header block's first line (`NATS/1.0 503`).
fn status_of(headers: &[u8]) -> Option<u16> {
    let first = headers.split(|&b| b == b'\r' || b == b'\n').next()?;
    let first = std::str::from_utf8(first).ok()?;
    first
        .strip_prefix("NATS/1.0")?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("nats://127.0.0.1:4222").as_deref(),
            Ok("127.0.0.1:4222")
        );
        assert_eq!(
            parse_url("nats.internal").as_deref(),
            Ok("nats.internal:4222")
        );
        assert_eq!(parse_url("[::1]").as_deref(), Ok("[::1]:4222"));
        assert!(parse_url("nats://user:pw@h:4222").is_err());
        assert!(parse_url("nats://h:port").is_err());
        assert!(parse_url("").is_err());
    }

    #[test]
    fn message_lines() {
        assert_eq!(
            parse_msg_args(&["a.b", "1", "5"], false),
            Some(("a.b".to_owned(), None, 0, 5))
        );
        assert_eq!(
            parse_msg_args(&["a.b", "1", "_INBOX.x.1", "16", "16"], true),
            Some(("a.b".to_owned(), Some("_INBOX.x.1".to_owned()), 16, 16))
        );
        assert_eq!(parse_msg_args(&["a.b", "1"], false), None);
        assert_eq!(parse_msg_args(&["a.b", "1", "x"], false), None);
        assert_eq!(status_of(b"NATS/1.0 503\r\n\r\n"), Some(503));
        assert_eq!(status_of(b"NATS/1.0\r\nA: b\r\n\r\n"), None);
    }
}
