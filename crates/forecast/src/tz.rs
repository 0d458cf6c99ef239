//! Local time for the regions the platform serves, without a time-zone database:
//! the UK rule (GMT, BST from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
//! Sunday of October, in force since 1996) and fixed offsets (China is UTC+8 all year).

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday,
};

use crate::ForecastError;

/// A region's civil time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Europe/London: GMT in winter, BST (UTC+1) in summer.
    UkLondon,
    /// A fixed offset from UTC in seconds (Asia/Shanghai is `Fixed(8 * 3600)`).
    Fixed(i32),
}

impl Zone {
    /// China Standard Time.
    pub const CHINA: Zone = Zone::Fixed(8 * 3600);

    /// Parses `europe/london`, `asia/shanghai`, `utc` or an offset such as `+08:00`.
    pub fn parse(s: &str) -> Result<Zone, ForecastError> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "europe/london" | "uk" | "gb" => return Ok(Zone::UkLondon),
            "asia/shanghai" | "prc" | "cn" => return Ok(Zone::CHINA),
            "utc" | "z" | "gmt" => return Ok(Zone::Fixed(0)),
            _ => {}
        }
        parse_offset(&lower)
            .map(Zone::Fixed)
            .ok_or_else(|| ForecastError::TimeZone(s.to_owned()))
    }

    /// The offset in force at a UTC instant.
    pub fn offset_at(self, at: DateTime<Utc>) -> FixedOffset {
        let secs = match self {
            Zone::Fixed(s) => s,
            Zone::UkLondon => {
                let (on, off) = bst_bounds_utc(at.year());
                if at >= on && at < off { 3600 } else { 0 }
            }
        };
        FixedOffset::east_opt(secs).unwrap_or(FixedOffset::east_opt(0).expect("zero offset"))
    }

    /// The local wall-clock time of a UTC instant.
    pub fn to_local(self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.offset_at(at)).naive_local()
    }

    /// The instant of a local wall-clock time. Documented choices for the UK's two transition
    /// hours: a time in the spring gap (01:00-02:00 on the last Sunday of March does not exist)
    /// is read as GMT, i.e. shifted forward by the gap; a time in the repeated autumn hour is read
    /// as its first occurrence (BST).
    pub fn from_local(self, local: NaiveDateTime) -> DateTime<FixedOffset> {
        let secs = match self {
            Zone::Fixed(s) => s,
            Zone::UkLondon => {
                if uk_local_is_bst(local) {
                    3600
                } else {
                    0
                }
            }
        };
        let off = FixedOffset::east_opt(secs).unwrap_or(FixedOffset::east_opt(0).expect("zero"));
        // `from_local_datetime` with a fixed offset is never ambiguous.
        off.from_local_datetime(&local)
            .single()
            .unwrap_or_else(|| off.from_utc_datetime(&local))
    }

    /// The instant of local midnight starting `date`.
    pub fn midnight(self, date: NaiveDate) -> DateTime<Utc> {
        self.from_local(date.and_hms_opt(0, 0, 0).expect("midnight exists"))
            .with_timezone(&Utc)
    }

    /// Guesses the zone of a set of offsets seen in a file: the UK rule when every offset agrees
    /// with it (and it is not all +00:00 in summer), else the most common fixed offset.
    pub fn infer(samples: impl IntoIterator<Item = DateTime<FixedOffset>>) -> Zone {
        let mut uk_ok = true;
        let mut saw_bst = false;
        let mut counts: std::collections::BTreeMap<i32, usize> = Default::default();
        for s in samples {
            let secs = s.offset().local_minus_utc();
            *counts.entry(secs).or_default() += 1;
            let want = Zone::UkLondon
                .offset_at(s.with_timezone(&Utc))
                .local_minus_utc();
            if want != secs {
                uk_ok = false;
            }
            if secs == 3600 {
                saw_bst = true;
            }
        }
        if uk_ok && saw_bst {
            return Zone::UkLondon;
        }
        let best = counts
            .into_iter()
            .max_by_key(|&(_, n)| n)
            .map(|(s, _)| s)
            .unwrap_or(0);
        Zone::Fixed(best)
    }
}

fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .expect("valid month");
    let mut d = next - Duration::days(1);
    while d.weekday() != Weekday::Sun {
        d -= Duration::days(1);
    }
    d
}

/// BST start and end instants of a year (both at 01:00 UTC).
fn bst_bounds_utc(year: i32) -> (DateTime<Utc>, DateTime<Utc>) {
    let at1 = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(1, 0, 0).expect("01:00"));
    (at1(last_sunday(year, 3)), at1(last_sunday(year, 10)))
}

fn uk_local_is_bst(local: NaiveDateTime) -> bool {
    let year = local.year();
    let on = last_sunday(year, 3);
    let off = last_sunday(year, 10);
    let d = local.date();
    let hour = local.time().hour_of_day();
    if d < on || d > off {
        false
    } else if d == on {
        hour >= 2
    } else if d == off {
        hour < 2
    } else {
        true
    }
}

trait HourOfDay {
    fn hour_of_day(&self) -> u32;
}

impl HourOfDay for chrono::NaiveTime {
    fn hour_of_day(&self) -> u32 {
        chrono::Timelike::hour(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("valid")
    }

    #[test]
    fn uk_rule_in_winter_summer_and_at_the_transitions() {
        let z = Zone::UkLondon;
        assert_eq!(
            z.from_local(local("2018-01-15 12:00")).to_rfc3339(),
            "2018-01-15T12:00:00+00:00"
        );
        assert_eq!(
            z.from_local(local("2018-07-15 12:00")).to_rfc3339(),
            "2018-07-15T12:00:00+01:00"
        );
        // 2018-03-25: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist and reads as GMT.
        assert_eq!(
            z.from_local(local("2018-03-25 00:59")).to_rfc3339(),
            "2018-03-25T00:59:00+00:00"
        );
        assert_eq!(
            z.from_local(local("2018-03-25 01:30")).to_rfc3339(),
            "2018-03-25T01:30:00+00:00"
        );
        assert_eq!(
            z.from_local(local("2018-03-25 02:00")).to_rfc3339(),
            "2018-03-25T02:00:00+01:00"
        );
        // 2018-10-28: 02:00 BST falls back to 01:00 GMT; the repeated hour reads as BST.
        assert_eq!(
            z.from_local(local("2018-10-28 01:30")).to_rfc3339(),
            "2018-10-28T01:30:00+01:00"
        );
        assert_eq!(
            z.from_local(local("2018-10-28 02:00")).to_rfc3339(),
            "2018-10-28T02:00:00+00:00"
        );
    }

    #[test]
    fn round_trip_through_utc() {
        let z = Zone::UkLondon;
        for s in ["2017-06-01 08:15", "2017-12-24 23:59", "2019-10-27 03:00"] {
            let at = z.from_local(local(s)).with_timezone(&Utc);
            assert_eq!(z.to_local(at), local(s));
        }
    }

    #[test]
    fn parse_and_infer() {
        assert_eq!(
            Zone::parse("Asia/Shanghai").expect("zone"),
            Zone::Fixed(28800)
        );
        assert_eq!(Zone::parse("-05:30").expect("zone"), Zone::Fixed(-19800));
        assert!(Zone::parse("mars/olympus").is_err());
        let uk = [
            Zone::UkLondon.from_local(local("2018-01-15 12:00")),
            Zone::UkLondon.from_local(local("2018-07-15 12:00")),
        ];
        assert_eq!(Zone::infer(uk), Zone::UkLondon);
        let cn = [Zone::CHINA.from_local(local("2025-10-01 08:00"))];
        assert_eq!(Zone::infer(cn), Zone::CHINA);
    }
}
