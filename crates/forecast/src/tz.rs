//! The civil time of a region: a zone of the IANA time-zone database (`chrono-tz`, compiled in)
//! such as `Europe/London` or `Asia/Shanghai`, or a fixed offset from UTC. It owns the reading
//! of local wall-clock times (with a documented choice for the hours a daylight-saving change
//! skips or repeats) and the guess of a session log's zone from the offsets written in it.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{TZ_VARIANTS, Tz};

use crate::ForecastError;

/// A region's civil time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// A zone of the IANA time-zone database, with its daylight-saving history.
    Named(Tz),
    /// A fixed offset from UTC in seconds.
    Fixed(i32),
}

/// UTC+8, China's offset all year (since 1991).
pub const CHINA_OFFSET: i32 = 8 * 3600;

impl Zone {
    /// Europe/London: GMT in winter, BST (UTC+1) in summer.
    pub const LONDON: Zone = Zone::Named(Tz::Europe__London);
    /// Asia/Shanghai, China Standard Time.
    pub const CHINA: Zone = Zone::Named(Tz::Asia__Shanghai);

    /// Parses an IANA zone name (`Europe/London`, `America/New_York`; any letter case, as the
    /// command line has long taken `europe/london`), `utc` or an offset such as `+08:00`. The
    /// short names `uk`, `gb`, `cn` and `prc` stand for London and Shanghai.
    pub fn parse(s: &str) -> Result<Zone, ForecastError> {
        let name = s.trim();
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "uk" | "gb" => return Ok(Zone::LONDON),
            "cn" | "prc" => return Ok(Zone::CHINA),
            "utc" | "z" | "gmt" => return Ok(Zone::Fixed(0)),
            _ => {}
        }
        if let Some(secs) = parse_offset(&lower) {
            return Ok(Zone::Fixed(secs));
        }
        name.parse::<Tz>()
            .ok()
            .or_else(|| {
                TZ_VARIANTS
                    .iter()
                    .copied()
                    .find(|tz| tz.name().eq_ignore_ascii_case(name))
            })
            .map(Zone::Named)
            .ok_or_else(|| ForecastError::TimeZone(s.to_owned()))
    }

    /// The offset in force at a UTC instant.
    pub fn offset_at(self, at: DateTime<Utc>) -> FixedOffset {
        match self {
            Zone::Named(tz) => tz.offset_from_utc_datetime(&at.naive_utc()).fix(),
            Zone::Fixed(secs) => fixed(secs),
        }
    }

    /// The local wall-clock time of a UTC instant.
    pub fn to_local(self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.offset_at(at)).naive_local()
    }

    /// The instant of a local wall-clock time. Documented choices for the hours a
    /// daylight-saving change makes odd: a time in the spring gap (in the UK, 01:00-02:00 on
    /// the last Sunday of March does not exist) is read with the offset in force before the gap
    /// (GMT), i.e. shifted forward by the gap; a time in the repeated autumn hour is read as its
    /// first occurrence (BST).
    pub fn from_local(self, local: NaiveDateTime) -> DateTime<FixedOffset> {
        let offset = match self {
            Zone::Fixed(secs) => fixed(secs),
            Zone::Named(tz) => match tz.from_local_datetime(&local) {
                chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                    return t.fixed_offset();
                }
                // Daylight-saving changes are months apart, so a day before the gap is still
                // under the offset the gap leaves.
                chrono::LocalResult::None => tz
                    .offset_from_utc_datetime(&(local - Duration::days(1)))
                    .fix(),
            },
        };
        // `from_local_datetime` with a fixed offset is never ambiguous.
        offset
            .from_local_datetime(&local)
            .single()
            .unwrap_or_else(|| offset.from_utc_datetime(&local))
    }

    /// The instant of local midnight starting `date`.
    pub fn midnight(self, date: NaiveDate) -> DateTime<Utc> {
        self.from_local(date.and_hms_opt(0, 0, 0).expect("midnight exists"))
            .with_timezone(&Utc)
    }

    /// Guesses the zone of a set of offsets seen in a file: Europe/London when every offset
    /// agrees with it (and it is not all +00:00 in summer), else the most common offset, named
    /// Asia/Shanghai when it is +08:00 (so a Chinese log gets China's holiday calendar). A log
    /// of another region with daylight saving needs its zone named (`--tz`).
    pub fn infer(samples: impl IntoIterator<Item = DateTime<FixedOffset>>) -> Zone {
        let mut london_ok = true;
        let mut saw_bst = false;
        let mut counts: std::collections::BTreeMap<i32, usize> = Default::default();
        for s in samples {
            let secs = s.offset().local_minus_utc();
            *counts.entry(secs).or_default() += 1;
            let want = Zone::LONDON
                .offset_at(s.with_timezone(&Utc))
                .local_minus_utc();
            if want != secs {
                london_ok = false;
            }
            if secs == 3600 {
                saw_bst = true;
            }
        }
        if london_ok && saw_bst {
            return Zone::LONDON;
        }
        let best = counts
            .into_iter()
            .max_by_key(|&(_, n)| n)
            .map(|(s, _)| s)
            .unwrap_or(0);
        if best == CHINA_OFFSET {
            Zone::CHINA
        } else {
            Zone::Fixed(best)
        }
    }
}

/// A fixed offset of `secs`, UTC when out of range (a day or more).
fn fixed(secs: i32) -> FixedOffset {
    FixedOffset::east_opt(secs).unwrap_or(Utc.fix())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("valid")
    }

    #[test]
    fn uk_rule_in_winter_summer_and_at_the_transitions() {
        let z = Zone::LONDON;
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
        let z = Zone::LONDON;
        for s in ["2017-06-01 08:15", "2017-12-24 23:59", "2019-10-27 03:00"] {
            let at = z.from_local(local(s)).with_timezone(&Utc);
            assert_eq!(z.to_local(at), local(s));
        }
    }

    #[test]
    fn new_york_and_sydney_across_their_daylight_saving_changes() {
        let ny = Zone::parse("America/New_York").expect("zone");
        assert_eq!(ny, Zone::Named(Tz::America__New_York));
        // 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist and reads as EST.
        assert_eq!(
            ny.from_local(local("2024-03-10 01:59")).to_rfc3339(),
            "2024-03-10T01:59:00-05:00"
        );
        assert_eq!(
            ny.from_local(local("2024-03-10 02:30")).to_rfc3339(),
            "2024-03-10T02:30:00-05:00"
        );
        assert_eq!(
            ny.from_local(local("2024-03-10 03:00")).to_rfc3339(),
            "2024-03-10T03:00:00-04:00"
        );
        // 2024-11-03: 02:00 EDT falls back to 01:00 EST; the repeated hour reads as EDT.
        assert_eq!(
            ny.from_local(local("2024-11-03 01:30")).to_rfc3339(),
            "2024-11-03T01:30:00-04:00"
        );
        assert_eq!(
            ny.from_local(local("2024-11-03 02:00")).to_rfc3339(),
            "2024-11-03T02:00:00-05:00"
        );
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        // The day of the spring change has 23 hours, the autumn one 25.
        let hours = |z: Zone, d: &str| {
            let d = date(d);
            (z.midnight(d + Duration::days(1)) - z.midnight(d)).num_hours()
        };
        assert_eq!(hours(ny, "2024-03-10"), 23);
        assert_eq!(hours(ny, "2024-11-03"), 25);
        assert_eq!(hours(ny, "2024-07-01"), 24);
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("instant")
                .with_timezone(&Utc)
        };
        assert_eq!(
            ny.to_local(at("2024-07-01T16:00:00Z")),
            local("2024-07-01 12:00")
        );
        assert_eq!(
            ny.to_local(at("2024-01-15T17:00:00Z")),
            local("2024-01-15 12:00")
        );

        // Sydney's summer is the northern winter: AEDT (UTC+11) ends on 2024-04-07 at 03:00,
        // back to AEST (UTC+10), and starts again on 2024-10-06 at 02:00.
        let syd = Zone::parse("australia/sydney").expect("any letter case");
        assert_eq!(syd, Zone::Named(Tz::Australia__Sydney));
        assert_eq!(syd.midnight(date("2024-04-07")), at("2024-04-06T13:00:00Z"));
        assert_eq!(syd.midnight(date("2024-04-08")), at("2024-04-07T14:00:00Z"));
        assert_eq!(
            syd.from_local(local("2024-04-07 02:30")).to_rfc3339(),
            "2024-04-07T02:30:00+11:00"
        );
        assert_eq!(
            syd.from_local(local("2024-10-06 02:30")).to_rfc3339(),
            "2024-10-06T02:30:00+10:00"
        );
        assert_eq!(hours(syd, "2024-04-07"), 25);
        assert_eq!(hours(syd, "2024-10-06"), 23);
        for s in ["2024-01-15 08:15", "2024-04-07 04:00", "2024-10-06 03:00"] {
            let t = syd.from_local(local(s)).with_timezone(&Utc);
            assert_eq!(syd.to_local(t), local(s));
        }
    }

    #[test]
    fn parse_and_infer() {
        assert_eq!(Zone::parse("Asia/Shanghai").expect("zone"), Zone::CHINA);
        assert_eq!(Zone::parse("europe/london").expect("zone"), Zone::LONDON);
        assert_eq!(Zone::parse("PRC").expect("zone"), Zone::CHINA);
        assert_eq!(Zone::parse("utc").expect("zone"), Zone::Fixed(0));
        // China has been at UTC+8 all year since 1991.
        for s in ["2018-01-15T12:00:00Z", "2025-07-15T12:00:00Z"] {
            let t = DateTime::parse_from_rfc3339(s)
                .expect("t")
                .with_timezone(&Utc);
            assert_eq!(Zone::CHINA.offset_at(t).local_minus_utc(), 28800);
        }
        assert_eq!(Zone::parse("-05:30").expect("zone"), Zone::Fixed(-19800));
        let err = Zone::parse("mars/olympus").expect_err("no such zone");
        assert!(err.to_string().contains("\"mars/olympus\""), "{err}");
        let uk = [
            Zone::LONDON.from_local(local("2018-01-15 12:00")),
            Zone::LONDON.from_local(local("2018-07-15 12:00")),
        ];
        assert_eq!(Zone::infer(uk), Zone::LONDON);
        let cn = [Zone::CHINA.from_local(local("2025-10-01 08:00"))];
        assert_eq!(Zone::infer(cn), Zone::CHINA);
        let utc = [Zone::Fixed(0).from_local(local("2018-07-15 12:00"))];
        assert_eq!(Zone::infer(utc), Zone::Fixed(0));
    }
}
