//! The YKC (云快充) charger protocol, versions 1.5 and 1.6: the de-facto protocol of Chinese
//! chargers, binary frames over one long-lived TCP connection. No IO here: bytes in, typed
//! messages out, and back.
//!
//! A frame on the wire:
//!
//! ```text
//! 0x68 | len | seq (2) | enc (1) | type (1) | body (len - 4) | crc (2)
//! ```
//!
//! `len` counts the sequence number through the body; the CRC is CRC-16/Modbus over the same
//! bytes. The protocol text says "low byte first", yet devices and published samples disagree,
//! so [`frame::decode`] accepts both orders and [`frame::encode`] writes the order it is told.
//! Multi-byte numbers in bodies ("BIN") are little-endian; ids, gun numbers and transaction
//! serials are BCD; times are IEC 60870-5 CP56Time2a.
//!
//! - [`frame`]: framing, CRC, the streaming [`Decoder`] (split and coalesced reads, resync on
//!   garbage, bounded buffer).
//! - [`msg`]: typed messages for every frame the platform handles, laid out as data.
//! - [`codes`]: BCD charger ids, transaction serials, card numbers; [`time`]: CP56Time2a.
//! - [`crypto`]: 3DES on the body for frames with the encryption flag set.

pub mod codes;
pub mod crc;
pub mod crypto;
pub mod frame;
pub mod msg;
pub mod time;

pub use codes::{ChargerId, Serial};
pub use crc::crc16_modbus;
pub use frame::{CrcOrder, Decoded, Decoder, Encryption, Frame, FrameError};
pub use msg::{BodyError, Message};
pub use time::Cp56Time;
