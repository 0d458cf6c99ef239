//! CP56Time2a (IEC 60870-5-4), the 7-byte time YKC uses in transaction records and time sync:
//! milliseconds of the minute (u16 LE), minute (bits 0-5; bit 7 invalid), hour (bits 0-4; bit 7
//! summer time), day of month (bits 0-4; bits 5-7 day of week), month (bits 0-3), year - 2000
//! (bits 0-6). The time is the charger's local wall clock (Beijing time on Chinese networks).

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

/// The seven bytes as sent, kept verbatim so that decoding and encoding are exact inverses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cp56Time(pub [u8; 7]);

impl Cp56Time {
    /// A local wall-clock time as CP56Time2a (years 2000-2127 hold; others are clamped).
    pub fn from_naive(t: NaiveDateTime) -> Self {
        let ms = (t.second() * 1000 + t.nanosecond() / 1_000_000).min(59_999) as u16;
        let year = (t.year() - 2000).clamp(0, 127) as u8;
        let [lo, hi] = ms.to_le_bytes();
        Cp56Time([
            lo,
            hi,
            t.minute() as u8,
            t.hour() as u8,
            t.day() as u8,
            t.month() as u8,
            year,
        ])
    }

    /// The wall-clock time, or `None` for a time that does not exist (month 13, minute 61, ...)
    /// or one flagged invalid.
    pub fn to_naive(self) -> Option<NaiveDateTime> {
        let b = self.0;
        if b[2] & 0x80 != 0 {
            return None;
        }
        let ms = u16::from_le_bytes([b[0], b[1]]);
        if ms > 59_999 {
            return None;
        }
        let minute = u32::from(b[2] & 0x3F);
        let hour = u32::from(b[3] & 0x1F);
        let day = u32::from(b[4] & 0x1F);
        let month = u32::from(b[5] & 0x0F);
        let year = 2000 + i32::from(b[6] & 0x7F);
        NaiveDate::from_ymd_opt(year, month, day)?.and_hms_milli_opt(
            hour,
            minute,
            u32::from(ms / 1000),
            u32::from(ms % 1000),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_sample() {
        // 98B70E11100314: 2020-03-16 17:14:47 (the protocol's own example).
        let t = Cp56Time([0x98, 0xB7, 0x0E, 0x11, 0x10, 0x03, 0x14]);
        let n = t.to_naive().unwrap();
        assert_eq!(n.to_string(), "2020-03-16 17:14:47");
        assert_eq!(Cp56Time::from_naive(n), t);
    }

    #[test]
    fn invalid_times() {
        assert_eq!(Cp56Time([0, 0, 0, 0, 0, 13, 20]).to_naive(), None);
        assert_eq!(Cp56Time([0xFF, 0xFF, 0, 0, 1, 1, 20]).to_naive(), None);
        assert_eq!(Cp56Time([0, 0, 0x80, 0, 1, 1, 20]).to_naive(), None);
    }
}
