//! Framing: `0x68 | len | seq(2) | enc | type | body | crc(2)`, and a streaming decoder for a
//! TCP byte stream.

use thiserror::Error;

use crate::crc::crc16_modbus;

/// Start of every frame.
pub const START: u8 = 0x68;
/// Bytes the length field counts besides the body: sequence number (2), encryption flag (1),
/// frame type (1).
pub const HEADER_COUNTED: usize = 4;
/// The largest body a one-byte length allows. The protocol text says a data field is at most
/// 200 bytes; longer ones are still framed correctly, so they are accepted.
pub const MAX_BODY: usize = 255 - HEADER_COUNTED;
/// The largest frame on the wire: start, length, 255 counted bytes, CRC.
pub const MAX_FRAME: usize = 2 + 255 + 2;
/// Bytes the streaming decoder keeps at most; what a peer sends beyond that without a frame
/// boundary is dropped (a frame never needs more than [`MAX_FRAME`]).
pub const MAX_BUFFERED: usize = 16 * 1024;

/// Which CRC byte comes first on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrcOrder {
    /// As the protocol text says (and as the published samples that verify are written).
    #[default]
    LowFirst,
    HighFirst,
}

impl std::str::FromStr for CrcOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low-first" | "low" => Ok(CrcOrder::LowFirst),
            "high-first" | "high" => Ok(CrcOrder::HighFirst),
            other => Err(format!(
                "unknown CRC byte order {other:?} (expected low-first or high-first)"
            )),
        }
    }
}

/// The encryption flag: it covers the body only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    #[default]
    Plain,
    /// 3DES with the charger's key; see [`crate::crypto`].
    TripleDes,
}

impl Encryption {
    pub fn flag(self) -> u8 {
        match self {
            Encryption::Plain => 0x00,
            Encryption::TripleDes => 0x01,
        }
    }

    pub fn from_flag(b: u8) -> Option<Self> {
        match b {
            0x00 => Some(Encryption::Plain),
            0x01 => Some(Encryption::TripleDes),
            _ => None,
        }
    }
}

/// One frame. `body` is what is on the wire: ciphertext when `encryption` is not `Plain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Sequence number, little-endian on the wire; an answer echoes the request's.
    pub seq: u16,
    pub encryption: Encryption,
    pub frame_type: u8,
    pub body: Vec<u8>,
}

/// A decoded frame and the CRC byte order the peer used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub frame: Frame,
    pub crc_order: CrcOrder,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("{skipped} bytes before a start byte (0x68) skipped")]
    Garbage { skipped: usize },
    #[error("length field {0} is shorter than the 4 bytes it must count")]
    BadLength(u8),
    #[error("CRC mismatch: computed {computed:04X}, frame carries {received:02X?}")]
    BadCrc { computed: u16, received: [u8; 2] },
    #[error("unknown encryption flag {0:#04x}")]
    UnknownEncryption(u8),
    #[error("frame incomplete: {have} of {need} bytes")]
    Incomplete { have: usize, need: usize },
    #[error("body of {0} bytes is longer than a frame can carry ({MAX_BODY})")]
    BodyTooLong(usize),
}

/// Encodes a frame, CRC in `order`.
pub fn encode(frame: &Frame, order: CrcOrder) -> Result<Vec<u8>, FrameError> {
    if frame.body.len() > MAX_BODY {
        return Err(FrameError::BodyTooLong(frame.body.len()));
    }
    let mut out = Vec::with_capacity(frame.body.len() + 8);
    out.push(START);
    out.push((frame.body.len() + HEADER_COUNTED) as u8);
    out.extend_from_slice(&frame.seq.to_le_bytes());
    out.push(frame.encryption.flag());
    out.push(frame.frame_type);
    out.extend_from_slice(&frame.body);
    let crc = crc16_modbus(&out[2..]);
    match order {
        CrcOrder::LowFirst => out.extend_from_slice(&crc.to_le_bytes()),
        CrcOrder::HighFirst => out.extend_from_slice(&crc.to_be_bytes()),
    }
    Ok(out)
}

/// Decodes the one frame `bytes` starts with; returns it and the bytes it took.
pub fn decode(bytes: &[u8]) -> Result<(Decoded, usize), FrameError> {
    let Some(&first) = bytes.first() else {
        return Err(FrameError::Incomplete { have: 0, need: 2 });
    };
    if first != START {
        let skipped = bytes
            .iter()
            .position(|&b| b == START)
            .unwrap_or(bytes.len());
        return Err(FrameError::Garbage { skipped });
    }
    let Some(&len) = bytes.get(1) else {
        return Err(FrameError::Incomplete { have: 1, need: 2 });
    };
    if usize::from(len) < HEADER_COUNTED {
        return Err(FrameError::BadLength(len));
    }
    let need = 2 + usize::from(len) + 2;
    if bytes.len() < need {
        return Err(FrameError::Incomplete {
            have: bytes.len(),
            need,
        });
    }
    let counted = &bytes[2..2 + usize::from(len)];
    let received = [bytes[need - 2], bytes[need - 1]];
    let computed = crc16_modbus(counted);
    let crc_order = if received == computed.to_le_bytes() {
        CrcOrder::LowFirst
    } else if received == computed.to_be_bytes() {
        CrcOrder::HighFirst
    } else {
        return Err(FrameError::BadCrc { computed, received });
    };
    let encryption =
        Encryption::from_flag(counted[2]).ok_or(FrameError::UnknownEncryption(counted[2]))?;
    let frame = Frame {
        seq: u16::from_le_bytes([counted[0], counted[1]]),
        encryption,
        frame_type: counted[3],
        body: counted[4..].to_vec(),
    };
    Ok((Decoded { frame, crc_order }, need))
}

/// Turns a TCP byte stream into frames: frames split across reads are joined, many frames in
/// one read are split, and garbage or a damaged frame costs only the bytes up to the next
/// start byte. Feed it with [`Decoder::push`] and drain it with [`Decoder::next_frame`]
/// until that returns `None`.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the peer; returns how many old bytes were dropped to keep the
    /// buffer within [`MAX_BUFFERED`] (0 unless the caller stopped draining).
    pub fn push(&mut self, data: &[u8]) -> usize {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
        let over = self.buf.len().saturating_sub(MAX_BUFFERED);
        if over > 0 {
            self.buf.drain(..over);
        }
        over
    }

    /// Bytes held that are not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next frame, an error for bytes that were skipped, or `None` when more input is
    /// needed.
    pub fn next_frame(&mut self) -> Option<Result<Decoded, FrameError>> {
        let rest = &self.buf[self.start..];
        if rest.is_empty() {
            return None;
        }
        match decode(rest) {
            Ok((decoded, used)) => {
                self.start += used;
                Some(Ok(decoded))
            }
            Err(FrameError::Incomplete { .. }) => None,
            Err(FrameError::Garbage { skipped }) => {
                self.start += skipped;
                Some(Err(FrameError::Garbage { skipped }))
            }
            // A damaged frame: its start byte was not a frame boundary after all (or the
            // frame was corrupted). Skip that byte; the search for the next 0x68 resyncs.
            Err(e) => {
                self.start += 1;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Published sample frames of the protocol text whose CRC verifies: facts, kept as data.
    const LOGIN_REPLY: &str = "68 0C 0000 00 02 55031412782305 00 DA4C";
    const BILLING_CHECK_REPLY: &str = "68 0E CE04 00 06 55031412782305 0000 00 8E2F";

    #[test]
    fn published_samples_verify_low_byte_first() {
        for sample in [LOGIN_REPLY, BILLING_CHECK_REPLY] {
            let bytes = unhex(sample);
            let (d, used) = decode(&bytes).unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(d.crc_order, CrcOrder::LowFirst);
            assert_eq!(encode(&d.frame, CrcOrder::LowFirst).unwrap(), bytes);
        }
        let (d, _) = decode(&unhex(BILLING_CHECK_REPLY)).unwrap();
        assert_eq!(d.frame.seq, 0x04CE);
        assert_eq!(d.frame.frame_type, 0x06);
    }

    #[test]
    fn both_crc_orders_are_accepted() {
        let mut bytes = unhex(LOGIN_REPLY);
        let n = bytes.len();
        bytes.swap(n - 2, n - 1);
        let (d, _) = decode(&bytes).unwrap();
        assert_eq!(d.crc_order, CrcOrder::HighFirst);
        assert_eq!(encode(&d.frame, CrcOrder::HighFirst).unwrap(), bytes);
    }

    #[test]
    fn bad_frames() {
        let mut bytes = unhex(LOGIN_REPLY);
        let n = bytes.len();
        bytes[n - 1] ^= 0xFF;
        assert!(matches!(decode(&bytes), Err(FrameError::BadCrc { .. })));
        assert_eq!(decode(&[0x68, 0x02]), Err(FrameError::BadLength(2)));
        assert_eq!(
            decode(&[1, 2, 0x68]),
            Err(FrameError::Garbage { skipped: 2 })
        );
        assert!(matches!(
            decode(&[0x68, 0x20, 0, 0]),
            Err(FrameError::Incomplete { .. })
        ));
        let f = Frame {
            seq: 0,
            encryption: Encryption::Plain,
            frame_type: 1,
            body: vec![0; 300],
        };
        assert_eq!(
            encode(&f, CrcOrder::LowFirst),
            Err(FrameError::BodyTooLong(300))
        );
    }

    #[test]
    fn stream_split_coalesced_and_garbage() {
        let one = unhex(LOGIN_REPLY);
        let two = unhex(BILLING_CHECK_REPLY);
        let mut stream = vec![0x00, 0x11, 0x68, 0x01];
        stream.extend_from_slice(&one);
        stream.extend_from_slice(&two);
        stream.extend_from_slice(&one);
        // Byte by byte.
        let mut d = Decoder::new();
        let mut frames = Vec::new();
        let mut errors = 0;
        for b in &stream {
            d.push(std::slice::from_ref(b));
            while let Some(r) = d.next_frame() {
                match r {
                    Ok(f) => frames.push(f.frame.frame_type),
                    Err(_) => errors += 1,
                }
            }
        }
        assert_eq!(frames, vec![0x02, 0x06, 0x02]);
        assert!(errors >= 1);
        // All at once.
        let mut d = Decoder::new();
        d.push(&stream);
        let got: Vec<_> = std::iter::from_fn(|| d.next_frame())
            .filter_map(Result::ok)
            .map(|f| f.frame.frame_type)
            .collect();
        assert_eq!(got, vec![0x02, 0x06, 0x02]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn length_larger_than_the_frame_resyncs_on_the_next_frame() {
        // A frame claiming 0x30 counted bytes but carrying 0x0C, then good frames: once enough
        // bytes arrived, the bogus one fails its CRC and the decoder finds the real frames.
        let mut bogus = unhex(LOGIN_REPLY);
        bogus[1] = 0x30;
        let good = unhex(LOGIN_REPLY);
        let mut d = Decoder::new();
        d.push(&bogus);
        assert!(d.next_frame().is_none());
        for _ in 0..4 {
            d.push(&good);
        }
        let results: Vec<_> = std::iter::from_fn(|| d.next_frame()).collect();
        assert!(results.iter().any(|r| r.is_err()));
        assert!(results.iter().filter(|r| r.is_ok()).count() >= 3);
    }

    #[test]
    fn buffer_is_bounded() {
        let mut d = Decoder::new();
        let junk = vec![0x68u8; MAX_BUFFERED * 2];
        let dropped = d.push(&junk);
        assert_eq!(dropped, MAX_BUFFERED);
        assert!(d.buffered() <= MAX_BUFFERED);
    }
}
