//! Typed YKC messages. Each body layout is written down once, field by field in wire order,
//! in the `decode`/`encode` pair of its message; the comments name the frame as the protocol
//! text does. Numbers are little-endian ("BIN"); money and energy are fixed-point integers:
//! prices in 0.00001 yuan/kWh, energy in 0.0001 kWh, amounts in 0.0001 yuan, voltage and
//! current in 0.1 V / 0.1 A, balances in 0.01 yuan.
//!
//! Bodies longer than the layout are accepted (firmware appends vendor fields); shorter ones
//! are a [`BodyError::Short`].

use thiserror::Error;

use crate::codes::{ChargerId, Serial};
use crate::time::Cp56Time;

/// Frame type codes. Charger-sent codes are odd, platform-sent even.
pub mod types {
    /// 充电桩登录认证 (charger login).
    pub const LOGIN: u8 = 0x01;
    /// 登录认证应答.
    pub const LOGIN_REPLY: u8 = 0x02;
    /// 充电桩心跳包 (every 10 s; three missed = link down).
    pub const HEARTBEAT: u8 = 0x03;
    /// 心跳包应答.
    pub const HEARTBEAT_REPLY: u8 = 0x04;
    /// 计费模型验证请求 (is my billing model current?).
    pub const BILLING_CHECK: u8 = 0x05;
    /// 计费模型验证请求应答.
    pub const BILLING_CHECK_REPLY: u8 = 0x06;
    /// 充电桩计费模型请求.
    pub const BILLING_REQUEST: u8 = 0x09;
    /// 计费模型请求应答 (the model).
    pub const BILLING_MODEL: u8 = 0x0A;
    /// 读取实时监测数据 (platform asks for 0x13).
    pub const REALTIME_REQUEST: u8 = 0x12;
    /// 上传实时监测数据 (status on change; every 5 min idle, 15 s charging).
    pub const REALTIME: u8 = 0x13;
    /// 充电桩主动申请启动充电 (card or VIN at the charger).
    pub const START_REQUEST: u8 = 0x31;
    /// 运营平台确认启动充电.
    pub const START_CONFIRM: u8 = 0x32;
    /// 远程启动充电命令回复.
    pub const REMOTE_START_REPLY: u8 = 0x33;
    /// 运营平台远程控制启机.
    pub const REMOTE_START: u8 = 0x34;
    /// 远程停机命令回复.
    pub const REMOTE_STOP_REPLY: u8 = 0x35;
    /// 运营平台远程停机.
    pub const REMOTE_STOP: u8 = 0x36;
    /// 交易记录 (the bill; within 30 s of the end of charging).
    pub const TRANSACTION_RECORD: u8 = 0x3B;
    /// 交易记录确认.
    pub const TRANSACTION_ACK: u8 = 0x40;
    /// 充电桩工作参数设置应答.
    pub const WORK_PARAMS_REPLY: u8 = 0x51;
    /// 充电桩工作参数设置 (enable/disable the charger, power limit).
    pub const WORK_PARAMS: u8 = 0x52;
    /// 对时设置应答.
    pub const TIME_SYNC_REPLY: u8 = 0x55;
    /// 对时设置 (CP56Time2a).
    pub const TIME_SYNC: u8 = 0x56;
    /// 计费模型应答.
    pub const BILLING_SET_REPLY: u8 = 0x57;
    /// 计费模型设置.
    pub const BILLING_SET: u8 = 0x58;
    /// 远程重启应答.
    pub const REBOOT_REPLY: u8 = 0x91;
    /// 远程重启.
    pub const REBOOT: u8 = 0x92;
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BodyError {
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    #[error("frame {frame_type:#04x} body has {got} bytes, needs {need}")]
    Short {
        frame_type: u8,
        need: usize,
        got: usize,
    },
}

/// 0x01 login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub charger: ChargerId,
    /// 0 DC, 1 AC.
    pub kind: u8,
    pub guns: u8,
    /// Protocol version times ten (0x0F is 1.5, 0x10 is 1.6).
    pub protocol_version: u8,
    /// ASCII, zero-padded.
    pub software_version: [u8; 8],
    /// 0 SIM, 1 LAN, 2 WAN, 3 other.
    pub network: u8,
    /// BCD, zero-padded.
    pub sim: [u8; 10],
    /// 0 China Mobile, 2 China Telecom, 3 China Unicom, 4 other.
    pub carrier: u8,
}

impl Login {
    pub fn software_version_text(&self) -> String {
        let end = self
            .software_version
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(8);
        String::from_utf8_lossy(&self.software_version[..end])
            .trim()
            .to_owned()
    }
}

/// A time-of-use tariff line of a billing model: energy and service price, 0.00001 yuan/kWh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate {
    pub energy: u32,
    pub service: u32,
}

/// 0x0A billing model answer and 0x58 billing model setting (same layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingModel {
    pub charger: ChargerId,
    /// Model number, BCD.
    pub model: [u8; 2],
    /// Sharp (尖), peak (峰), flat (平), valley (谷).
    pub rates: [Rate; 4],
    /// Loss ratio (计损比例); the platform sets 0.
    pub loss_ratio: u8,
    /// For each half hour from 00:00, the index into `rates` (0 sharp .. 3 valley).
    pub periods: [u8; 48],
}

/// 0x13 real-time data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realtime {
    pub serial: Serial,
    pub charger: ChargerId,
    pub gun: u8,
    /// 0 offline, 1 fault, 2 idle, 3 charging.
    pub status: u8,
    /// Gun back in its holster: 0 no, 1 yes, 2 unknown.
    pub homed: u8,
    /// 0 no, 1 yes.
    pub plugged: u8,
    /// 0.1 V.
    pub voltage: u16,
    /// 0.1 A.
    pub current: u16,
    /// Gun cable temperature, degrees C + 50.
    pub gun_temp: u8,
    pub gun_code: [u8; 8],
    pub soc: u8,
    /// Battery pack highest temperature, degrees C + 50.
    pub battery_temp: u8,
    /// Minutes.
    pub charged_minutes: u16,
    /// Minutes.
    pub remaining_minutes: u16,
    /// 0.0001 kWh.
    pub energy: u32,
    /// 0.0001 kWh with the loss ratio applied.
    pub lossy_energy: u32,
    /// 0.0001 yuan.
    pub amount: u32,
    /// Hardware fault bits (bit 0 emergency stop, ... bit 12 door open).
    pub faults: u16,
}

/// 0x31 a start asked for at the charger (card, VIN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    pub charger: ChargerId,
    pub gun: u8,
    /// 1 card, 2 account, 3 VIN.
    pub method: u8,
    pub needs_password: u8,
    /// Account or physical card number.
    pub account: [u8; 8],
    /// MD5 of the password, when needed.
    pub password: [u8; 16],
    /// ASCII, reversed, for VIN starts.
    pub vin: [u8; 17],
}

/// 0x32 the platform's answer to 0x31.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartConfirm {
    pub serial: Serial,
    pub charger: ChargerId,
    pub gun: u8,
    /// BCD, shown on the charger's screen.
    pub logical_card: [u8; 8],
    /// 0.01 yuan.
    pub balance: u32,
    /// 1 authorised, 0 refused.
    pub ok: u8,
    /// 1 no such account, 2 frozen, 3 balance too low, 4 unpaid record, 5 charger disabled, ...
    pub reason: u8,
}

/// 0x34 remote start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStart {
    pub serial: Serial,
    pub charger: ChargerId,
    pub gun: u8,
    pub logical_card: [u8; 8],
    pub physical_card: [u8; 8],
    /// 0.01 yuan.
    pub balance: u32,
}

/// 0x33 the charger's answer to a remote start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStartReply {
    pub serial: Serial,
    pub charger: ChargerId,
    pub gun: u8,
    /// 1 started, 0 failed.
    pub result: u8,
    /// 1 id mismatch, 2 gun busy, 3 fault, 4 offline, 5 not plugged.
    pub reason: u8,
}

/// 0x35 the charger's answer to a remote stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStopReply {
    pub charger: ChargerId,
    pub gun: u8,
    /// 1 stopped, 0 failed.
    pub result: u8,
    /// 1 id mismatch, 2 not charging, 3 other.
    pub reason: u8,
}

/// One time-of-use line of a transaction record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TouLine {
    /// Energy plus service price, 0.00001 yuan/kWh.
    pub unit_price: u32,
    /// 0.0001 kWh.
    pub energy: u32,
    /// 0.0001 kWh, loss ratio applied.
    pub lossy_energy: u32,
    /// 0.0001 yuan.
    pub amount: u32,
}

/// 0x3B transaction record (the bill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    pub serial: Serial,
    pub charger: ChargerId,
    pub gun: u8,
    pub started: Cp56Time,
    pub ended: Cp56Time,
    /// Sharp, peak, flat, valley.
    pub tou: [TouLine; 4],
    /// Meter register at start and stop, 0.0001 kWh (5 bytes each on the wire).
    pub meter_start: u64,
    pub meter_stop: u64,
    /// 0.0001 kWh.
    pub energy: u32,
    pub lossy_energy: u32,
    /// Energy plus service, 0.0001 yuan.
    pub amount: u32,
    pub vin: [u8; 17],
    /// 1 app, 2 card, 4 offline card, 5 VIN.
    pub start_kind: u8,
    pub traded_at: Cp56Time,
    /// Stop reason code (0x40 app stop, 0x41 SOC full, 0x45 stop button, ...).
    pub stop_reason: u8,
    pub physical_card: [u8; 8],
}

/// Every message the platform reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Login(Login),
    /// 0x02: result 0 accepted, 1 refused.
    LoginReply {
        charger: ChargerId,
        result: u8,
    },
    /// 0x03: gun status 0 normal, 1 fault.
    Heartbeat {
        charger: ChargerId,
        gun: u8,
        gun_status: u8,
    },
    /// 0x04: `ack` is always 0.
    HeartbeatReply {
        charger: ChargerId,
        gun: u8,
        ack: u8,
    },
    /// 0x05: model 0000 on first contact.
    BillingCheck {
        charger: ChargerId,
        model: [u8; 2],
    },
    /// 0x06: result 0 same model, 1 different (the charger then asks with 0x09).
    BillingCheckReply {
        charger: ChargerId,
        model: [u8; 2],
        result: u8,
    },
    /// 0x09.
    BillingRequest {
        charger: ChargerId,
    },
    /// 0x0A.
    BillingModel(BillingModel),
    /// 0x58.
    BillingSet(BillingModel),
    /// 0x57: result 1 success, 0 failure.
    BillingSetReply {
        charger: ChargerId,
        result: u8,
    },
    /// 0x12.
    RealtimeRequest {
        charger: ChargerId,
        gun: u8,
    },
    /// 0x13.
    Realtime(Realtime),
    /// 0x31.
    StartRequest(StartRequest),
    /// 0x32.
    StartConfirm(StartConfirm),
    /// 0x34.
    RemoteStart(RemoteStart),
    /// 0x33.
    RemoteStartReply(RemoteStartReply),
    /// 0x36.
    RemoteStop {
        charger: ChargerId,
        gun: u8,
    },
    /// 0x35.
    RemoteStopReply(RemoteStopReply),
    /// 0x3B.
    TransactionRecord(Box<TransactionRecord>),
    /// 0x40: result 0 received, 1 invalid bill.
    TransactionAck {
        serial: Serial,
        result: u8,
    },
    /// 0x52: `disable` 0 allowed to work, 1 stopped; `max_power_percent` 30..=100.
    WorkParams {
        charger: ChargerId,
        disable: u8,
        max_power_percent: u8,
    },
    /// 0x51: result 1 success, 0 failure.
    WorkParamsReply {
        charger: ChargerId,
        result: u8,
    },
    /// 0x56.
    TimeSync {
        charger: ChargerId,
        time: Cp56Time,
    },
    /// 0x55.
    TimeSyncReply {
        charger: ChargerId,
        time: Cp56Time,
    },
    /// 0x92: control 1 now, 2 when idle.
    Reboot {
        charger: ChargerId,
        control: u8,
    },
    /// 0x91: result 1 success, 0 failure.
    RebootReply {
        charger: ChargerId,
        result: u8,
    },
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    frame_type: u8,
    need: usize,
}

impl<'a> Reader<'a> {
    fn new(frame_type: u8, b: &'a [u8], need: usize) -> Result<Self, BodyError> {
        if b.len() < need {
            return Err(BodyError::Short {
                frame_type,
                need,
                got: b.len(),
            });
        }
        Ok(Reader {
            b,
            pos: 0,
            frame_type,
            need,
        })
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], BodyError> {
        let end = self.pos + N;
        let slice = self.b.get(self.pos..end).ok_or(BodyError::Short {
            frame_type: self.frame_type,
            need: self.need.max(end),
            got: self.b.len(),
        })?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, BodyError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, BodyError> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, BodyError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u40(&mut self) -> Result<u64, BodyError> {
        let b = self.take::<5>()?;
        let mut w = [0u8; 8];
        w[..5].copy_from_slice(&b);
        Ok(u64::from_le_bytes(w))
    }

    fn id(&mut self) -> Result<ChargerId, BodyError> {
        Ok(ChargerId(self.take()?))
    }

    fn serial(&mut self) -> Result<Serial, BodyError> {
        Ok(Serial(self.take()?))
    }

    fn time(&mut self) -> Result<Cp56Time, BodyError> {
        Ok(Cp56Time(self.take()?))
    }
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u40(&mut self, v: u64) -> &mut Self {
        // Values past 40 bits cannot be sent; they are cut to the field.
        self.bytes(&v.to_le_bytes()[..5])
    }
}

// Body sizes, from the layouts below.
const ID: usize = 7;
const SERIAL: usize = 16;
const BILLING_MODEL_LEN: usize = ID + 2 + 8 * 4 + 1 + 48;
const REALTIME_LEN: usize =
    SERIAL + ID + 1 + 1 + 1 + 1 + 2 + 2 + 1 + 8 + 1 + 1 + 2 + 2 + 4 + 4 + 4 + 2;
const RECORD_LEN: usize = SERIAL + ID + 1 + 7 + 7 + 16 * 4 + 5 + 5 + 4 + 4 + 4 + 17 + 1 + 7 + 1 + 8;

fn read_billing(t: u8, body: &[u8]) -> Result<BillingModel, BodyError> {
    let mut r = Reader::new(t, body, BILLING_MODEL_LEN)?;
    let charger = r.id()?;
    let model = r.take()?;
    let mut rates = [Rate::default(); 4];
    for rate in &mut rates {
        rate.energy = r.u32()?;
        rate.service = r.u32()?;
    }
    let loss_ratio = r.u8()?;
    let periods = r.take()?;
    Ok(BillingModel {
        charger,
        model,
        rates,
        loss_ratio,
        periods,
    })
}

fn write_billing(w: &mut Writer, m: &BillingModel) {
    w.bytes(&m.charger.0).bytes(&m.model);
    for rate in &m.rates {
        w.u32(rate.energy).u32(rate.service);
    }
    w.u8(m.loss_ratio).bytes(&m.periods);
}

impl Message {
    pub fn frame_type(&self) -> u8 {
        use types::*;
        match self {
            Message::Login(_) => LOGIN,
            Message::LoginReply { .. } => LOGIN_REPLY,
            Message::Heartbeat { .. } => HEARTBEAT,
            Message::HeartbeatReply { .. } => HEARTBEAT_REPLY,
            Message::BillingCheck { .. } => BILLING_CHECK,
            Message::BillingCheckReply { .. } => BILLING_CHECK_REPLY,
            Message::BillingRequest { .. } => BILLING_REQUEST,
            Message::BillingModel(_) => BILLING_MODEL,
            Message::BillingSet(_) => BILLING_SET,
            Message::BillingSetReply { .. } => BILLING_SET_REPLY,
            Message::RealtimeRequest { .. } => REALTIME_REQUEST,
            Message::Realtime(_) => REALTIME,
            Message::StartRequest(_) => START_REQUEST,
            Message::StartConfirm(_) => START_CONFIRM,
            Message::RemoteStart(_) => REMOTE_START,
            Message::RemoteStartReply(_) => REMOTE_START_REPLY,
            Message::RemoteStop { .. } => REMOTE_STOP,
            Message::RemoteStopReply(_) => REMOTE_STOP_REPLY,
            Message::TransactionRecord(_) => TRANSACTION_RECORD,
            Message::TransactionAck { .. } => TRANSACTION_ACK,
            Message::WorkParams { .. } => WORK_PARAMS,
            Message::WorkParamsReply { .. } => WORK_PARAMS_REPLY,
            Message::TimeSync { .. } => TIME_SYNC,
            Message::TimeSyncReply { .. } => TIME_SYNC_REPLY,
            Message::Reboot { .. } => REBOOT,
            Message::RebootReply { .. } => REBOOT_REPLY,
        }
    }

    /// Reads a (decrypted) body of the given frame type.
    pub fn decode(frame_type: u8, body: &[u8]) -> Result<Message, BodyError> {
        use types::*;
        let t = frame_type;
        Ok(match t {
            LOGIN => {
                let mut r = Reader::new(t, body, ID + 1 + 1 + 1 + 8 + 1 + 10 + 1)?;
                Message::Login(Login {
                    charger: r.id()?,
                    kind: r.u8()?,
                    guns: r.u8()?,
                    protocol_version: r.u8()?,
                    software_version: r.take()?,
                    network: r.u8()?,
                    sim: r.take()?,
                    carrier: r.u8()?,
                })
            }
            LOGIN_REPLY => {
                let mut r = Reader::new(t, body, ID + 1)?;
                Message::LoginReply {
                    charger: r.id()?,
                    result: r.u8()?,
                }
            }
            HEARTBEAT => {
                let mut r = Reader::new(t, body, ID + 2)?;
                Message::Heartbeat {
                    charger: r.id()?,
                    gun: r.u8()?,
                    gun_status: r.u8()?,
                }
            }
            HEARTBEAT_REPLY => {
                let mut r = Reader::new(t, body, ID + 2)?;
                Message::HeartbeatReply {
                    charger: r.id()?,
                    gun: r.u8()?,
                    ack: r.u8()?,
                }
            }
            BILLING_CHECK => {
                let mut r = Reader::new(t, body, ID + 2)?;
                Message::BillingCheck {
                    charger: r.id()?,
                    model: r.take()?,
                }
            }
            BILLING_CHECK_REPLY => {
                let mut r = Reader::new(t, body, ID + 3)?;
                Message::BillingCheckReply {
                    charger: r.id()?,
                    model: r.take()?,
                    result: r.u8()?,
                }
            }
            BILLING_REQUEST => {
                let mut r = Reader::new(t, body, ID)?;
                Message::BillingRequest { charger: r.id()? }
            }
            BILLING_MODEL => Message::BillingModel(read_billing(t, body)?),
            BILLING_SET => Message::BillingSet(read_billing(t, body)?),
            BILLING_SET_REPLY | WORK_PARAMS_REPLY | REBOOT_REPLY => {
                let mut r = Reader::new(t, body, ID + 1)?;
                let (charger, result) = (r.id()?, r.u8()?);
                match t {
                    BILLING_SET_REPLY => Message::BillingSetReply { charger, result },
                    WORK_PARAMS_REPLY => Message::WorkParamsReply { charger, result },
                    _ => Message::RebootReply { charger, result },
                }
            }
            REALTIME_REQUEST => {
                let mut r = Reader::new(t, body, ID + 1)?;
                Message::RealtimeRequest {
                    charger: r.id()?,
                    gun: r.u8()?,
                }
            }
            REALTIME => {
                let mut r = Reader::new(t, body, REALTIME_LEN)?;
                Message::Realtime(Realtime {
                    serial: r.serial()?,
                    charger: r.id()?,
                    gun: r.u8()?,
                    status: r.u8()?,
                    homed: r.u8()?,
                    plugged: r.u8()?,
                    voltage: r.u16()?,
                    current: r.u16()?,
                    gun_temp: r.u8()?,
                    gun_code: r.take()?,
                    soc: r.u8()?,
                    battery_temp: r.u8()?,
                    charged_minutes: r.u16()?,
                    remaining_minutes: r.u16()?,
                    energy: r.u32()?,
                    lossy_energy: r.u32()?,
                    amount: r.u32()?,
                    faults: r.u16()?,
                })
            }
            START_REQUEST => {
                let mut r = Reader::new(t, body, ID + 1 + 1 + 1 + 8 + 16 + 17)?;
                Message::StartRequest(StartRequest {
                    charger: r.id()?,
                    gun: r.u8()?,
                    method: r.u8()?,
                    needs_password: r.u8()?,
                    account: r.take()?,
                    password: r.take()?,
                    vin: r.take()?,
                })
            }
            START_CONFIRM => {
                let mut r = Reader::new(t, body, SERIAL + ID + 1 + 8 + 4 + 1 + 1)?;
                Message::StartConfirm(StartConfirm {
                    serial: r.serial()?,
                    charger: r.id()?,
                    gun: r.u8()?,
                    logical_card: r.take()?,
                    balance: r.u32()?,
                    ok: r.u8()?,
                    reason: r.u8()?,
                })
            }
            REMOTE_START => {
                let mut r = Reader::new(t, body, SERIAL + ID + 1 + 8 + 8 + 4)?;
                Message::RemoteStart(RemoteStart {
                    serial: r.serial()?,
                    charger: r.id()?,
                    gun: r.u8()?,
                    logical_card: r.take()?,
                    physical_card: r.take()?,
                    balance: r.u32()?,
                })
            }
            REMOTE_START_REPLY => {
                let mut r = Reader::new(t, body, SERIAL + ID + 3)?;
                Message::RemoteStartReply(RemoteStartReply {
                    serial: r.serial()?,
                    charger: r.id()?,
                    gun: r.u8()?,
                    result: r.u8()?,
                    reason: r.u8()?,
                })
            }
            REMOTE_STOP => {
                let mut r = Reader::new(t, body, ID + 1)?;
                Message::RemoteStop {
                    charger: r.id()?,
                    gun: r.u8()?,
                }
            }
            REMOTE_STOP_REPLY => {
                let mut r = Reader::new(t, body, ID + 3)?;
                Message::RemoteStopReply(RemoteStopReply {
                    charger: r.id()?,
                    gun: r.u8()?,
                    result: r.u8()?,
                    reason: r.u8()?,
                })
            }
            TRANSACTION_RECORD => {
                let mut r = Reader::new(t, body, RECORD_LEN)?;
                let serial = r.serial()?;
                let charger = r.id()?;
                let gun = r.u8()?;
                let started = r.time()?;
                let ended = r.time()?;
                let mut tou = [TouLine::default(); 4];
                for line in &mut tou {
                    line.unit_price = r.u32()?;
                    line.energy = r.u32()?;
                    line.lossy_energy = r.u32()?;
                    line.amount = r.u32()?;
                }
                Message::TransactionRecord(Box::new(TransactionRecord {
                    serial,
                    charger,
                    gun,
                    started,
                    ended,
                    tou,
                    meter_start: r.u40()?,
                    meter_stop: r.u40()?,
                    energy: r.u32()?,
                    lossy_energy: r.u32()?,
                    amount: r.u32()?,
                    vin: r.take()?,
                    start_kind: r.u8()?,
                    traded_at: r.time()?,
                    stop_reason: r.u8()?,
                    physical_card: r.take()?,
                }))
            }
            TRANSACTION_ACK => {
                let mut r = Reader::new(t, body, SERIAL + 1)?;
                Message::TransactionAck {
                    serial: r.serial()?,
                    result: r.u8()?,
                }
            }
            WORK_PARAMS => {
                let mut r = Reader::new(t, body, ID + 2)?;
                Message::WorkParams {
                    charger: r.id()?,
                    disable: r.u8()?,
                    max_power_percent: r.u8()?,
                }
            }
            TIME_SYNC | TIME_SYNC_REPLY => {
                let mut r = Reader::new(t, body, ID + 7)?;
                let (charger, time) = (r.id()?, r.time()?);
                if t == TIME_SYNC {
                    Message::TimeSync { charger, time }
                } else {
                    Message::TimeSyncReply { charger, time }
                }
            }
            REBOOT => {
                let mut r = Reader::new(t, body, ID + 1)?;
                Message::Reboot {
                    charger: r.id()?,
                    control: r.u8()?,
                }
            }
            other => return Err(BodyError::UnknownType(other)),
        })
    }

    /// The body of this message, in wire order.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Message::Login(m) => {
                w.bytes(&m.charger.0)
                    .u8(m.kind)
                    .u8(m.guns)
                    .u8(m.protocol_version)
                    .bytes(&m.software_version)
                    .u8(m.network)
                    .bytes(&m.sim)
                    .u8(m.carrier);
            }
            Message::LoginReply { charger, result }
            | Message::BillingSetReply { charger, result }
            | Message::WorkParamsReply { charger, result }
            | Message::RebootReply { charger, result } => {
                w.bytes(&charger.0).u8(*result);
            }
            Message::Heartbeat {
                charger,
                gun,
                gun_status: x,
            }
            | Message::HeartbeatReply {
                charger,
                gun,
                ack: x,
            } => {
                w.bytes(&charger.0).u8(*gun).u8(*x);
            }
            Message::BillingCheck { charger, model } => {
                w.bytes(&charger.0).bytes(model);
            }
            Message::BillingCheckReply {
                charger,
                model,
                result,
            } => {
                w.bytes(&charger.0).bytes(model).u8(*result);
            }
            Message::BillingRequest { charger } => {
                w.bytes(&charger.0);
            }
            Message::BillingModel(m) | Message::BillingSet(m) => write_billing(&mut w, m),
            Message::RealtimeRequest { charger, gun } | Message::RemoteStop { charger, gun } => {
                w.bytes(&charger.0).u8(*gun);
            }
            Message::Realtime(m) => {
                w.bytes(&m.serial.0)
                    .bytes(&m.charger.0)
                    .u8(m.gun)
                    .u8(m.status)
                    .u8(m.homed)
                    .u8(m.plugged)
                    .u16(m.voltage)
                    .u16(m.current)
                    .u8(m.gun_temp)
                    .bytes(&m.gun_code)
                    .u8(m.soc)
                    .u8(m.battery_temp)
                    .u16(m.charged_minutes)
                    .u16(m.remaining_minutes)
                    .u32(m.energy)
                    .u32(m.lossy_energy)
                    .u32(m.amount)
                    .u16(m.faults);
            }
            Message::StartRequest(m) => {
                w.bytes(&m.charger.0)
                    .u8(m.gun)
                    .u8(m.method)
                    .u8(m.needs_password)
                    .bytes(&m.account)
                    .bytes(&m.password)
                    .bytes(&m.vin);
            }
            Message::StartConfirm(m) => {
                w.bytes(&m.serial.0)
                    .bytes(&m.charger.0)
                    .u8(m.gun)
                    .bytes(&m.logical_card)
                    .u32(m.balance)
                    .u8(m.ok)
                    .u8(m.reason);
            }
            Message::RemoteStart(m) => {
                w.bytes(&m.serial.0)
                    .bytes(&m.charger.0)
                    .u8(m.gun)
                    .bytes(&m.logical_card)
                    .bytes(&m.physical_card)
                    .u32(m.balance);
            }
            Message::RemoteStartReply(m) => {
                w.bytes(&m.serial.0)
                    .bytes(&m.charger.0)
                    .u8(m.gun)
                    .u8(m.result)
                    .u8(m.reason);
            }
            Message::RemoteStopReply(m) => {
                w.bytes(&m.charger.0).u8(m.gun).u8(m.result).u8(m.reason);
            }
            Message::TransactionRecord(m) => {
                w.bytes(&m.serial.0)
                    .bytes(&m.charger.0)
                    .u8(m.gun)
                    .bytes(&m.started.0)
                    .bytes(&m.ended.0);
                for line in &m.tou {
                    w.u32(line.unit_price)
                        .u32(line.energy)
                        .u32(line.lossy_energy)
                        .u32(line.amount);
                }
                w.u40(m.meter_start)
                    .u40(m.meter_stop)
                    .u32(m.energy)
                    .u32(m.lossy_energy)
                    .u32(m.amount)
                    .bytes(&m.vin)
                    .u8(m.start_kind)
                    .bytes(&m.traded_at.0)
                    .u8(m.stop_reason)
                    .bytes(&m.physical_card);
            }
            Message::TransactionAck { serial, result } => {
                w.bytes(&serial.0).u8(*result);
            }
            Message::WorkParams {
                charger,
                disable,
                max_power_percent,
            } => {
                w.bytes(&charger.0).u8(*disable).u8(*max_power_percent);
            }
            Message::TimeSync { charger, time } | Message::TimeSyncReply { charger, time } => {
                w.bytes(&charger.0).bytes(&time.0);
            }
            Message::Reboot { charger, control } => {
                w.bytes(&charger.0).u8(*control);
            }
        }
        w.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes_match_the_published_length_fields() {
        // Length fields of the protocol's sample frames, minus the 4 counted header bytes.
        assert_eq!(BILLING_MODEL_LEN, 0x5E - 4);
        assert_eq!(REALTIME_LEN, 0x40 - 4);
        assert_eq!(RECORD_LEN, 0xA2 - 4);
        let id = ChargerId::parse("55031412782305").unwrap();
        let login = Message::Login(Login {
            charger: id,
            kind: 0,
            guns: 2,
            protocol_version: 0x0F,
            software_version: *b"V4.1.50\0",
            network: 1,
            sim: [1; 10],
            carrier: 4,
        });
        assert_eq!(login.encode_body().len(), 0x22 - 4);
    }

    #[test]
    fn short_and_unknown_bodies() {
        assert_eq!(
            Message::decode(types::HEARTBEAT, &[0; 3]),
            Err(BodyError::Short {
                frame_type: 0x03,
                need: 9,
                got: 3
            })
        );
        assert_eq!(
            Message::decode(0x7F, &[]),
            Err(BodyError::UnknownType(0x7F))
        );
        // Longer bodies than the layout are read; the extra bytes are ignored.
        let m = Message::decode(types::HEARTBEAT, &[0x32, 1, 2, 0, 0, 0, 1, 1, 0, 9, 9]).unwrap();
        assert!(matches!(m, Message::Heartbeat { gun: 1, .. }));
    }
}
