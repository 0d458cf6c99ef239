//! BCD-coded identifiers: the 7-byte charger id (14 digits), the 16-byte transaction serial
//! (32 digits: charger id, gun, yyMMddHHmmss, a 4-digit counter), gun numbers and card numbers.

use std::fmt;

/// A charger's id as the platform assigned it: 7 BCD bytes, 14 decimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChargerId(pub [u8; 7]);

impl ChargerId {
    /// Parses 14 decimal digits.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes = digits_to_bcd::<7>(s)?;
        Some(ChargerId(bytes))
    }

    /// True when every nibble is a decimal digit (a charger id as the platform issues them).
    pub fn is_decimal(&self) -> bool {
        self.0.iter().all(|&b| b >> 4 <= 9 && b & 0x0F <= 9)
    }
}

impl fmt::Display for ChargerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(&self.0, f)
    }
}

/// A transaction serial (交易流水号): 16 BCD bytes shown as 32 hex digits, the platform's
/// `transaction_ref` for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Serial(pub [u8; 16]);

impl Serial {
    pub const ZERO: Serial = Serial([0; 16]);

    /// Builds a serial the way the platform issues them: charger id, gun, time, counter.
    pub fn issue(charger: ChargerId, gun: u8, yymmddhhmmss: [u8; 6], counter: u16) -> Serial {
        let mut s = [0u8; 16];
        s[..7].copy_from_slice(&charger.0);
        s[7] = to_bcd(gun);
        for (i, v) in yymmddhhmmss.iter().enumerate() {
            s[8 + i] = to_bcd(*v);
        }
        let c = counter % 10_000;
        s[14] = to_bcd((c / 100) as u8);
        s[15] = to_bcd((c % 100) as u8);
        Serial(s)
    }

    /// Parses 32 hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16)?;
            let lo = (chunk[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Serial(out))
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(&self.0, f)
    }
}

fn hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02X}")?;
    }
    Ok(())
}

/// `n` (0..=99) as one BCD byte; larger values saturate at 99.
pub fn to_bcd(n: u8) -> u8 {
    let n = n.min(99);
    ((n / 10) << 4) | (n % 10)
}

/// One BCD byte as a number, `None` when a nibble is not a decimal digit.
pub fn from_bcd(b: u8) -> Option<u8> {
    let (hi, lo) = (b >> 4, b & 0x0F);
    (hi <= 9 && lo <= 9).then_some(hi * 10 + lo)
}

/// A gun number as chargers send it: BCD ("01" is gun 1, "10" is gun 10). Bytes that are not
/// valid BCD are taken as binary, which some firmware sends.
pub fn gun_number(b: u8) -> u8 {
    from_bcd(b).unwrap_or(b)
}

/// Decimal digits, left-padded with zeros, as `N` BCD bytes.
pub fn digits_to_bcd<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.is_empty() || s.len() > N * 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{s:0>width$}", width = N * 2);
    let mut out = [0u8; N];
    for (i, chunk) in padded.as_bytes().chunks(2).enumerate() {
        out[i] = ((chunk[0] - b'0') << 4) | (chunk[1] - b'0');
    }
    Some(out)
}

/// Bytes as uppercase hex (card numbers, VINs in logs).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charger_ids() {
        let id = ChargerId::parse("55031412782305").unwrap();
        assert_eq!(id.0, [0x55, 0x03, 0x14, 0x12, 0x78, 0x23, 0x05]);
        assert_eq!(id.to_string(), "55031412782305");
        assert!(id.is_decimal());
        assert_eq!(ChargerId::parse("1").unwrap().to_string(), "00000000000001");
        assert!(ChargerId::parse("5503141278230x").is_none());
        assert!(ChargerId::parse("550314127823051").is_none());
        assert!(!ChargerId([0xAB, 0, 0, 0, 0, 0, 0]).is_decimal());
    }

    #[test]
    fn serials() {
        let id = ChargerId::parse("32010200000001").unwrap();
        let s = Serial::issue(id, 1, [18, 6, 12, 19, 59, 57], 85);
        assert_eq!(s.to_string(), "32010200000001011806121959570085");
        assert_eq!(Serial::parse(&s.to_string()), Some(s));
        assert!(Serial::parse("00").is_none());
        assert!(Serial::ZERO.is_zero());
    }

    #[test]
    fn bcd() {
        assert_eq!(to_bcd(42), 0x42);
        assert_eq!(from_bcd(0x42), Some(42));
        assert_eq!(from_bcd(0x4A), None);
        assert_eq!(gun_number(0x01), 1);
        assert_eq!(gun_number(0x10), 10);
        assert_eq!(gun_number(0x0A), 0x0A);
        assert_eq!(
            digits_to_bcd::<8>("1000000573"),
            Some([0, 0, 0, 0x10, 0, 0, 0x05, 0x73])
        );
    }
}
