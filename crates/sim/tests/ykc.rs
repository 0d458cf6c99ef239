//! The simulated YKC charger against a small scripted platform on a real loopback socket: login,
//! heartbeat with the sequence number echoed, and the charger's answer to a remote start.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use chargeops_sim::ykc::YkcCharger;
use chargeops_ykc::frame::{self, CrcOrder, Decoder, Encryption, Frame};
use chargeops_ykc::msg::{self, Message};
use chargeops_ykc::{ChargerId, Serial};

const WAIT: Duration = Duration::from_secs(10);

fn encode(seq: u16, m: &Message) -> Vec<u8> {
    let f = Frame {
        seq,
        encryption: Encryption::Plain,
        frame_type: m.frame_type(),
        body: m.encode_body(),
    };
    frame::encode(&f, CrcOrder::HighFirst).expect("encode")
}

#[tokio::test]
async fn login_heartbeat_and_remote_start() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let id = ChargerId::parse("32010200000001").expect("id");
    let serial = Serial::issue(id, 1, [24, 5, 1, 10, 0, 0], 7);

    let platform = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut d = Decoder::new();
        let mut buf = [0u8; 512];
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "charger closed early");
            d.push(&buf[..n]);
            while let Some(Ok(got)) = d.next_frame() {
                let f = got.frame;
                let m = Message::decode(f.frame_type, &f.body).expect("body");
                let out = match &m {
                    Message::Login(l) => Some(encode(
                        f.seq,
                        &Message::LoginReply {
                            charger: l.charger,
                            result: 0,
                        },
                    )),
                    Message::Heartbeat { charger, gun, .. } => {
                        // Then a command of the platform's own.
                        let mut out = encode(
                            f.seq,
                            &Message::HeartbeatReply {
                                charger: *charger,
                                gun: *gun,
                                ack: 0,
                            },
                        );
                        out.extend(encode(
                            900,
                            &Message::RemoteStart(msg::RemoteStart {
                                serial,
                                charger: *charger,
                                gun: 1,
                                logical_card: [0; 8],
                                physical_card: [0; 8],
                                balance: 0,
                            }),
                        ));
                        Some(out)
                    }
                    _ => None,
                };
                seen.push((f.seq, m));
                if let Some(out) = out {
                    s.write_all(&out).await.expect("write");
                }
            }
        }
        seen
    });

    let mut cp = YkcCharger::connect(&addr, id).await.expect("connect");
    assert!(cp.login(2, WAIT).await.expect("login"));
    cp.heartbeat(1, WAIT).await.expect("heartbeat");
    let start = cp.expect(0x34, None, WAIT).await.expect("remote start");
    assert_eq!(start.seq, 900);
    assert_eq!(cp.started, vec![serial]);

    let seen = platform.await.expect("platform");
    let (seq, reply) = &seen[2];
    assert_eq!(*seq, 900, "the answer echoes the command's sequence number");
    assert!(matches!(reply, Message::RemoteStartReply(r) if r.serial == serial && r.result == 1));
}
