//! The simulated charge point against a small scripted WebSocket server on a real loopback
//! socket: correlation of answers by message id, answers to server CALLs, round-trip times,
//! timeouts, credentials and the source address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http::HeaderValue;

use chargeops_ocpp::{ErrorCode, Frame, Version};
use chargeops_sim::{CallOutcome, ChargePoint, ClientError, ConnectOptions, Endpoint, RttSink};

/// What the server saw at the upgrade.
#[derive(Debug)]
struct Upgrade {
    path: String,
    authorization: Option<String>,
    peer: SocketAddr,
}

type PathAndAuth = (String, Option<String>);

/// The upgrade callback: checks the offered subprotocol and notes path and credentials.
struct Check {
    agree: bool,
    /// The request path and Authorization header.
    seen: Arc<Mutex<Option<PathAndAuth>>>,
}

impl Callback for Check {
    fn on_request(self, req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("sec-websocket-protocol").as_deref(), Some("ocpp1.6"));
        if self.agree {
            resp.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("ocpp1.6"),
            );
        }
        *self.seen.lock().expect("lock") =
            Some((req.uri().path().to_owned(), header("authorization")));
        Ok(resp)
    }
}

/// Accepts one connection, agreeing to `ocpp1.6` when `agree` says so, and hands the stream
/// to the test.
async fn server(
    agree: bool,
) -> (
    Endpoint,
    oneshot::Receiver<(Upgrade, WebSocketStream<TcpStream>)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.expect("accept");
        let seen = Arc::new(Mutex::new(None));
        let seen_in_callback = seen.clone();
        let callback = Check {
            agree,
            seen: seen_in_callback,
        };
        let ws = tokio_tungstenite::accept_hdr_async(stream, callback)
            .await
            .expect("handshake");
        let (path, authorization) = seen.lock().expect("lock").take().expect("callback ran");
        let _ = tx.send((
            Upgrade {
                path,
                authorization,
                peer,
            },
            ws,
        ));
    });
    let endpoint = Endpoint::resolve(&format!("ws://{addr}/ocpp"))
        .await
        .expect("endpoint");
    (endpoint, rx)
}

async fn recv(ws: &mut WebSocketStream<TcpStream>) -> Frame {
    loop {
        match ws.next().await.expect("stream open").expect("frame") {
            Message::Text(t) => {
                return chargeops_ocpp::decode(t.as_str(), Version::V16).expect("valid OCPP-J");
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

async fn recv_call(ws: &mut WebSocketStream<TcpStream>, action: &str) -> (String, Value) {
    match recv(ws).await {
        Frame::Call(c) if c.action == action => (c.id, c.payload),
        other => panic!("expected a {action} CALL, got {other:?}"),
    }
}

async fn send(ws: &mut WebSocketStream<TcpStream>, text: String) {
    ws.send(Message::text(text)).await.expect("send");
}

#[derive(Default)]
struct Log(Mutex<Vec<(String, Duration, CallOutcome)>>);

impl RttSink for Log {
    fn record(&self, action: &str, rtt: Duration, outcome: CallOutcome) {
        self.0
            .lock()
            .expect("lock")
            .push((action.to_owned(), rtt, outcome));
    }
}

#[tokio::test]
async fn correlates_answers_serves_commands_and_times_round_trips() {
    let (endpoint, accepted) = server(true).await;
    let server = tokio::spawn(async move {
        let (upgrade, mut ws) = accepted.await.expect("accepted");
        assert_eq!(upgrade.path, "/ocpp/CP-1");
        assert_eq!(upgrade.authorization, None);

        // While the charger waits for its BootNotification answer: an answer to someone
        // else's CALL, then a command of our own, which must be answered first.
        let (boot_id, boot) = recv_call(&mut ws, "BootNotification").await;
        assert_eq!(boot["chargePointVendor"], "Acme");
        send(
            &mut ws,
            chargeops_ocpp::encode_result("not-yours", &json!({})),
        )
        .await;
        send(
            &mut ws,
            chargeops_ocpp::encode_call("srv-1", "Reset", &json!({ "type": "Soft" })),
        )
        .await;
        match recv(&mut ws).await {
            Frame::CallResult(r) => {
                assert_eq!(r.id, "srv-1");
                assert_eq!(r.payload, json!({ "status": "Accepted" }));
            }
            other => panic!("expected the Reset answer, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        let answer =
            json!({ "status": "Accepted", "currentTime": "2025-01-01T00:00:00Z", "interval": 300 });
        send(&mut ws, chargeops_ocpp::encode_result(&boot_id, &answer)).await;

        // A CALLERROR for the status notification.
        let (id, status) = recv_call(&mut ws, "StatusNotification").await;
        assert_eq!(status["connectorId"], 1);
        assert_eq!(status["status"], "Available");
        let error = chargeops_ocpp::encode_error(
            &id,
            ErrorCode::NotSupported,
            Version::V16,
            "no",
            &json!({}),
        );
        send(&mut ws, error).await;

        let (id, start) = recv_call(&mut ws, "StartTransaction").await;
        assert_eq!(start["idTag"], "TAG1");
        assert_eq!(start["meterStart"], 1000);
        let answer = json!({ "transactionId": 42, "idTagInfo": { "status": "Accepted" } });
        send(&mut ws, chargeops_ocpp::encode_result(&id, &answer)).await;

        // Commands while the charger idles.
        let get = json!({ "key": ["HeartbeatInterval", "Foo"] });
        send(
            &mut ws,
            chargeops_ocpp::encode_call("srv-2", "GetConfiguration", &get),
        )
        .await;
        match recv(&mut ws).await {
            Frame::CallResult(r) => {
                assert_eq!(r.id, "srv-2");
                assert_eq!(r.payload["configurationKey"][0]["key"], "HeartbeatInterval");
                assert_eq!(r.payload["unknownKey"], json!(["Foo"]));
            }
            other => panic!("expected the GetConfiguration answer, got {other:?}"),
        }
        send(
            &mut ws,
            chargeops_ocpp::encode_call("srv-3", "Bogus", &json!({})),
        )
        .await;
        match recv(&mut ws).await {
            Frame::CallError(e) => {
                assert_eq!(e.id, "srv-3");
                assert_eq!(e.code, "NotImplemented");
            }
            other => panic!("expected a CALLERROR for Bogus, got {other:?}"),
        }
        send(&mut ws, "[2, \"srv-4\", \"Reset\"]".to_owned()).await;
        match recv(&mut ws).await {
            Frame::CallError(e) => assert_eq!(e.id, "srv-4"),
            other => panic!("expected a CALLERROR for a malformed CALL, got {other:?}"),
        }

        // A heartbeat left unanswered until after the charger gave up, then one answered.
        let (late_id, _) = recv_call(&mut ws, "Heartbeat").await;
        let (id, _) = recv_call(&mut ws, "Heartbeat").await;
        assert_ne!(late_id, id);
        send(
            &mut ws,
            chargeops_ocpp::encode_result(&late_id, &json!({ "currentTime": "x" })),
        )
        .await;
        send(
            &mut ws,
            chargeops_ocpp::encode_result(&id, &json!({ "currentTime": "y" })),
        )
        .await;

        // Then the server goes away.
        let _ = recv_call(&mut ws, "Heartbeat").await;
        drop(ws);
    });

    let log = Arc::new(Log::default());
    let mut cp = ChargePoint::connect(&endpoint, "CP-1", &ConnectOptions::default())
        .await
        .expect("connect")
        .with_rtt_sink(log.clone());
    let boot = cp
        .boot_notification(&chargeops_sim::BootInfo {
            vendor: "Acme".into(),
            model: "M1".into(),
            serial_number: None,
            firmware_version: None,
        })
        .await
        .expect("boot");
    assert_eq!(boot.status, "Accepted");
    assert_eq!(boot.interval, 300);
    let stats = cp.stats();
    assert_eq!(
        (
            stats.calls,
            stats.results,
            stats.server_calls,
            stats.stray_frames
        ),
        (1, 1, 1, 1)
    );
    assert!(
        stats.last_rtt >= Duration::from_millis(40),
        "rtt {:?}",
        stats.last_rtt
    );

    let err = cp
        .status_notification(1, "Available", "NoError")
        .await
        .expect_err("CALLERROR");
    assert!(
        matches!(&err, ClientError::CallError { code, .. } if code == "NotSupported"),
        "{err}"
    );
    assert!(!err.is_fatal());

    let tx = cp.start_transaction(1, "TAG1", 1000).await.expect("start");
    assert_eq!(tx, 42);

    cp.idle_until(Instant::now() + Duration::from_millis(300))
        .await
        .expect("idle");
    assert_eq!(cp.stats().server_calls, 3, "Reset, GetConfiguration, Bogus");

    cp.set_call_timeout(Duration::from_millis(100));
    let err = cp.heartbeat().await.expect_err("timeout");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(!err.is_fatal());
    cp.set_call_timeout(Duration::from_secs(5));
    cp.heartbeat()
        .await
        .expect("the next heartbeat is answered, the late answer skipped");
    let stats = cp.stats();
    assert_eq!(stats.timeouts, 1);
    assert_eq!(
        stats.stray_frames, 3,
        "the wrong id, the malformed CALL and the late answer"
    );

    let err = cp.heartbeat().await.expect_err("closed");
    assert!(err.is_fatal(), "{err}");
    server.await.expect("server script");

    let log = log.0.lock().expect("lock");
    let seen: Vec<(&str, CallOutcome)> = log.iter().map(|(a, _, o)| (a.as_str(), *o)).collect();
    assert_eq!(
        seen,
        [
            ("BootNotification", CallOutcome::Result),
            ("StatusNotification", CallOutcome::CallError),
            ("StartTransaction", CallOutcome::Result),
            ("Heartbeat", CallOutcome::Timeout),
            ("Heartbeat", CallOutcome::Result),
        ]
    );
    assert!(log[0].1 >= Duration::from_millis(40));
    assert!(log[3].1 >= Duration::from_millis(100));
}

#[tokio::test]
async fn sends_credentials_from_the_chosen_source_address() {
    let (endpoint, accepted) = server(true).await;
    let options = ConnectOptions {
        password: Some("s3cret".into()),
        bind: Some("127.0.0.2".parse().expect("ip")),
        ..ConnectOptions::default()
    };
    let cp = ChargePoint::connect(&endpoint, "CP-2", &options)
        .await
        .expect("connect");
    let (upgrade, _ws) = accepted.await.expect("accepted");
    // base64("CP-2:s3cret")
    assert_eq!(
        upgrade.authorization.as_deref(),
        Some("Basic Q1AtMjpzM2NyZXQ=")
    );
    assert_eq!(upgrade.peer.ip().to_string(), "127.0.0.2");
    assert_eq!(cp.id(), "CP-2");
}

#[tokio::test]
async fn refuses_a_server_without_the_subprotocol() {
    let (endpoint, _accepted) = server(false).await;
    let err = ChargePoint::connect(&endpoint, "CP-3", &ConnectOptions::default())
        .await
        .expect_err("no subprotocol");
    assert!(matches!(err, ClientError::Subprotocol), "{err}");
}

#[tokio::test]
async fn refuses_urls_it_cannot_use() {
    for url in [
        "wss://example.com/ocpp",
        "http://127.0.0.1/ocpp",
        "not a url",
    ] {
        let err = Endpoint::resolve(url).await.expect_err(url);
        assert!(
            matches!(err, ClientError::InvalidUrl { .. }),
            "{url}: {err}"
        );
    }
}
