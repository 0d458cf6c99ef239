//! One simulated YKC (云快充) charger over a real TCP connection, built on the `chargeops-ykc`
//! codec: logs in, heartbeats, reports real-time data and transaction records, and answers the
//! platform's commands as a charger does (remote start 0x34 -> 0x33, remote stop 0x36 -> 0x35,
//! reboot 0x92 -> 0x91, work parameters 0x52 -> 0x51, time sync 0x56 -> 0x55).

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use chargeops_ykc::frame::{self, CrcOrder, Decoder, Encryption, Frame};
use chargeops_ykc::msg::{self, Message, types};
use chargeops_ykc::{ChargerId, Serial};

#[derive(Debug, Error)]
pub enum YkcClientError {
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer {0:#04x} in time")]
    Timeout(u8),
    #[error("connection closed by the platform")]
    Closed,
    #[error("could not encode a frame: {0}")]
    Encode(#[from] frame::FrameError),
}

/// A frame the platform sent, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub seq: u16,
    pub message: Message,
}

pub struct YkcCharger {
    pub id: ChargerId,
    stream: TcpStream,
    decoder: Decoder,
    next_seq: u16,
    crc_order: CrcOrder,
    /// Serials of remote starts this charger accepted, oldest first.
    pub started: Vec<Serial>,
    /// Every message the platform sent, in order.
    pub received: Vec<Received>,
}

impl YkcCharger {
    pub async fn connect(addr: &str, id: ChargerId) -> Result<Self, YkcClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(YkcCharger {
            id,
            stream,
            decoder: Decoder::new(),
            next_seq: 0,
            crc_order: CrcOrder::LowFirst,
            started: Vec::new(),
            received: Vec::new(),
        })
    }

    /// Sends with the CRC in `order` from now on (real devices differ).
    pub fn with_crc_order(mut self, order: CrcOrder) -> Self {
        self.crc_order = order;
        self
    }

    async fn send_seq(&mut self, seq: u16, m: &Message) -> Result<(), YkcClientError> {
        let f = Frame {
            seq,
            encryption: Encryption::Plain,
            frame_type: m.frame_type(),
            body: m.encode_body(),
        };
        let bytes = frame::encode(&f, self.crc_order)?;
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    /// Sends a message under a new sequence number and returns that number.
    pub async fn send(&mut self, m: &Message) -> Result<u16, YkcClientError> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.send_seq(seq, m).await?;
        Ok(seq)
    }

    /// The next platform message, after answering it if it is a command.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Received, YkcClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(next) = self.decoder.next_frame() {
                let Ok(d) = next else { continue };
                let Ok(message) = Message::decode(d.frame.frame_type, &d.frame.body) else {
                    continue;
                };
                let got = Received {
                    seq: d.frame.seq,
                    message,
                };
                self.answer(&got).await?;
                self.received.push(got.clone());
                return Ok(got);
            }
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return Err(YkcClientError::Timeout(0)),
                Ok(r) => r?,
            };
            if n == 0 {
                return Err(YkcClientError::Closed);
            }
            self.decoder.push(&buf[..n]);
        }
    }

    /// Reads once from the connection into the decoder. Cancel-safe (nothing read is lost if
    /// the future is dropped), so a charger can wait on it beside other work; [`drain`](Self::drain)
    /// then handles what arrived.
    pub async fn fill(&mut self) -> Result<(), YkcClientError> {
        let mut buf = [0u8; 1024];
        let n = self.stream.read(&mut buf).await?;
        if n == 0 {
            return Err(YkcClientError::Closed);
        }
        self.decoder.push(&buf[..n]);
        Ok(())
    }

    /// Handles every complete frame read so far, answering commands, and returns them.
    pub async fn drain(&mut self) -> Result<Vec<Received>, YkcClientError> {
        let mut out = Vec::new();
        while let Some(next) = self.decoder.next_frame() {
            let Ok(d) = next else { continue };
            let Ok(message) = Message::decode(d.frame.frame_type, &d.frame.body) else {
                continue;
            };
            let got = Received {
                seq: d.frame.seq,
                message,
            };
            self.answer(&got).await?;
            out.push(got);
        }
        Ok(out)
    }

    /// Waits for a message of `frame_type` (answering commands meanwhile), with `seq` when given.
    pub async fn expect(
        &mut self,
        frame_type: u8,
        seq: Option<u16>,
        timeout: Duration,
    ) -> Result<Received, YkcClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let got = match self.recv(left).await {
                Err(YkcClientError::Timeout(_)) => return Err(YkcClientError::Timeout(frame_type)),
                other => other?,
            };
            if got.message.frame_type() == frame_type && seq.is_none_or(|s| s == got.seq) {
                return Ok(got);
            }
        }
    }

    async fn answer(&mut self, got: &Received) -> Result<(), YkcClientError> {
        let me = self.id;
        let reply = match &got.message {
            Message::RemoteStart(s) => {
                self.started.push(s.serial);
                Message::RemoteStartReply(msg::RemoteStartReply {
                    serial: s.serial,
                    charger: me,
                    gun: s.gun,
                    result: 1,
                    reason: 0,
                })
            }
            Message::RemoteStop { gun, .. } => Message::RemoteStopReply(msg::RemoteStopReply {
                charger: me,
                gun: *gun,
                result: 1,
                reason: 0,
            }),
            Message::Reboot { .. } => Message::RebootReply {
                charger: me,
                result: 1,
            },
            Message::WorkParams { .. } => Message::WorkParamsReply {
                charger: me,
                result: 1,
            },
            Message::TimeSync { time, .. } => Message::TimeSyncReply {
                charger: me,
                time: *time,
            },
            _ => return Ok(()),
        };
        self.send_seq(got.seq, &reply).await
    }

    /// Logs in; true when the platform accepted.
    pub async fn login(&mut self, guns: u8, timeout: Duration) -> Result<bool, YkcClientError> {
        let seq = self
            .send(&Message::Login(msg::Login {
                charger: self.id,
                kind: 0,
                guns,
                protocol_version: 0x10,
                software_version: *b"sim-1.0\0",
                network: 1,
                sim: [0; 10],
                carrier: 4,
            }))
            .await?;
        let got = self.expect(types::LOGIN_REPLY, Some(seq), timeout).await?;
        Ok(matches!(got.message, Message::LoginReply { result: 0, .. }))
    }

    pub async fn heartbeat(&mut self, gun: u8, timeout: Duration) -> Result<(), YkcClientError> {
        let seq = self
            .send(&Message::Heartbeat {
                charger: self.id,
                gun,
                gun_status: 0,
            })
            .await?;
        self.expect(types::HEARTBEAT_REPLY, Some(seq), timeout)
            .await
            .map(|_| ())
    }

    /// Reports a gun's state: status 0 offline, 1 fault, 2 idle, 3 charging.
    pub async fn realtime(
        &mut self,
        gun: u8,
        status: u8,
        plugged: bool,
        serial: Serial,
        energy: u32,
    ) -> Result<(), YkcClientError> {
        let m = Message::Realtime(msg::Realtime {
            serial,
            charger: self.id,
            gun,
            status,
            homed: u8::from(!plugged),
            plugged: u8::from(plugged),
            voltage: if status == 3 { 3800 } else { 0 },
            current: if status == 3 { 1250 } else { 0 },
            gun_temp: 75,
            gun_code: [0; 8],
            soc: 50,
            battery_temp: 70,
            charged_minutes: 0,
            remaining_minutes: 0,
            energy,
            lossy_energy: energy,
            amount: 0,
            faults: 0,
        });
        self.send(&m).await.map(|_| ())
    }

    /// Sends a transaction record and returns the acknowledgement's result (0 received).
    pub async fn record(
        &mut self,
        record: msg::TransactionRecord,
        timeout: Duration,
    ) -> Result<u8, YkcClientError> {
        let seq = self
            .send(&Message::TransactionRecord(Box::new(record)))
            .await?;
        let got = self
            .expect(types::TRANSACTION_ACK, Some(seq), timeout)
            .await?;
        match got.message {
            Message::TransactionAck { result, .. } => Ok(result),
            _ => Err(YkcClientError::Timeout(types::TRANSACTION_ACK)),
        }
    }
}
