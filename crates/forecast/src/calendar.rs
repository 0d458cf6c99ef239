//! Holiday calendars: the days a region does not behave like an ordinary day of its weekday.
//! They are known in advance, so the model uses them as known regressors: a holiday draws its
//! seasonal analogs from earlier holidays (or from Sundays when there are none in the history),
//! and a make-up working day (China's 调休上班, a weekend day worked) from working days. The
//! days of a long block and the days around it (the travel before and after a long holiday)
//! draw their analogs from the same relative day of the same holiday in earlier years when the
//! history reaches back that far ([`Calendar::earlier_occurrences`]).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::ForecastError;
use crate::tz::Zone;

/// What kind of exceptional day a date is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// A public holiday (every day of an official days-off block).
    Holiday,
    /// A weekend day declared a working day to make up for a holiday.
    MakeUpWorkday,
}

/// A region's civil time and its exceptional days.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: Zone,
    days: BTreeMap<NaiveDate, (DayKind, String)>,
    /// Runs of consecutive holiday days of one name, in date order.
    blocks: Vec<Block>,
}

/// A run of consecutive holiday days with the same name (one official days-off block).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    name: String,
    start: NaiveDate,
    end: NaiveDate,
}

impl Block {
    fn len(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }

    /// The same holiday in another year: one name contains the other ("National Day" and
    /// "National Day and Mid-Autumn Festival", "Christmas Day (substitute day)").
    fn same_holiday(&self, other: &Block) -> bool {
        self.name.contains(&other.name) || other.name.contains(&self.name)
    }
}

/// Days before a holiday block of [`LONG_BLOCK`] days or more that behave in relation to it
/// (the outbound travel before a long holiday).
pub const DAYS_BEFORE: i64 = 7;
/// Days after such a block that do (the late return).
pub const DAYS_AFTER: i64 = 3;
/// Blocks this long or longer have days before and after; shorter ones only their own days.
pub const LONG_BLOCK: i64 = 3;
/// Earlier occurrences of a holiday looked up (one a year).
pub const YEARS_BACK: usize = 2;

/// A day's class for choosing seasonal analogs: 0-6 for Monday-Sunday, 7 for a holiday.
pub type DayClass = u8;
pub const HOLIDAY_CLASS: DayClass = 7;
pub const SUNDAY_CLASS: DayClass = 6;
/// Make-up working days take the class of an ordinary mid-week working day.
const MAKE_UP_CLASS: DayClass = 2;

impl Calendar {
    /// No exceptional days, in `zone`.
    pub fn empty(zone: Zone) -> Self {
        Self {
            zone,
            days: BTreeMap::new(),
            blocks: Vec::new(),
        }
    }

    /// Scottish bank holidays 2016-2027 (the reference data's region), UK time.
    pub fn scotland() -> Self {
        Self::parse(include_str!("../data/holidays/scotland.txt"), Zone::LONDON)
            .expect("bundled calendar parses")
    }

    /// Chinese public holidays and make-up working days as published by the State Council
    /// (2024-2026; 2027 is not published yet, see the data file), China Standard Time.
    pub fn china() -> Self {
        Self::parse(include_str!("../data/holidays/china.txt"), Zone::CHINA)
            .expect("bundled calendar parses")
    }

    /// The same days in another zone.
    pub fn with_zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// The region's civil time.
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// Parses the data-file format: `YYYY-MM-DD holiday|workday NAME`, `#` comments.
    pub fn parse(text: &str, zone: Zone) -> Result<Self, ForecastError> {
        let mut days = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| ForecastError::Calendar {
                line: i + 1,
                message,
            };
            let mut parts = line.splitn(3, char::is_whitespace);
            let date = parts.next().unwrap_or_default();
            let kind = parts.next().unwrap_or_default();
            let name = parts.next().unwrap_or_default().trim().to_owned();
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| err(format!("bad date {date:?}, expected YYYY-MM-DD")))?;
            let kind = match kind {
                "holiday" => DayKind::Holiday,
                "workday" => DayKind::MakeUpWorkday,
                other => {
                    return Err(err(format!(
                        "unknown kind {other:?}, expected holiday or workday"
                    )));
                }
            };
            days.insert(date, (kind, name));
        }
        let mut blocks: Vec<Block> = Vec::new();
        for (&date, (kind, name)) in &days {
            if *kind != DayKind::Holiday {
                continue;
            }
            match blocks.last_mut() {
                Some(b) if b.name == *name && (date - b.end).num_days() == 1 => b.end = date,
                _ => blocks.push(Block {
                    name: name.clone(),
                    start: date,
                    end: date,
                }),
            }
        }
        Ok(Self { zone, days, blocks })
    }

    /// The block whose calendar-relative days include `date`: the block's own days, and for
    /// a block of [`LONG_BLOCK`] days or more the [`DAYS_BEFORE`] days before it and the
    /// [`DAYS_AFTER`] after it (the nearest block when windows overlap).
    fn block_around<'a>(&'a self, date: NaiveDate) -> Option<&'a Block> {
        let i = self.blocks.partition_point(|b| b.end < date);
        let window = |b: &'a Block| -> Option<(i64, &'a Block)> {
            let (before, after) = if b.len() >= LONG_BLOCK {
                (DAYS_BEFORE, DAYS_AFTER)
            } else {
                (0, 0)
            };
            let dist = if date < b.start {
                (b.start - date).num_days()
            } else if date > b.end {
                (date - b.end).num_days()
            } else {
                0
            };
            let inside = date >= b.start - chrono::Days::new(before as u64)
                && date <= b.end + chrono::Days::new(after as u64);
            inside.then_some((dist, b))
        };
        [i.checked_sub(1), Some(i)]
            .into_iter()
            .flatten()
            .filter_map(|j| self.blocks.get(j))
            .filter_map(window)
            .min_by_key(|(d, _)| *d)
            .map(|(_, b)| b)
    }

    /// Whether `date` is a calendar-relative day (see [`Calendar::earlier_occurrences`]).
    pub fn is_relative(&self, date: NaiveDate) -> bool {
        self.block_around(date).is_some()
    }

    /// For a calendar-relative day (a holiday, or a day shortly before or after a long holiday
    /// block), the same relative day of the same holiday in up to [`YEARS_BACK`] earlier years,
    /// most recent first: days before a block count from the block's first day (the outbound
    /// rush follows the start of the days off), its own days and the days after from its last
    /// day (the return follows the end of the days off, and the end of a lunar holiday is tied
    /// to the festival more closely than its start: the Spring Festival block ends on the 7th
    /// or 8th day of the first month every year, while it starts two days before the festival
    /// in 2026, one in 2025 and on the festival in 2024). Only blocks of [`LONG_BLOCK`] days
    /// or more: a one-day bank holiday keeps the ordinary holiday analogs (a year-old analog
    /// made the Perth & Kinross evaluation worse). Empty for an ordinary day or when the
    /// calendar has no earlier occurrence.
    pub fn earlier_occurrences(&self, date: NaiveDate) -> Vec<NaiveDate> {
        let Some(block) = self.block_around(date).filter(|b| b.len() >= LONG_BLOCK) else {
            return Vec::new();
        };
        let from_start = (date - block.start).num_days();
        let from_end = (date - block.end).num_days();
        let by_start = date < block.start;
        let mut out = Vec::new();
        let mut prev_start = block.start;
        for b in self.blocks.iter().rev() {
            if out.len() >= YEARS_BACK {
                break;
            }
            let gap = (prev_start - b.start).num_days();
            if b.start >= prev_start || !b.same_holiday(block) || !(300..=430).contains(&gap) {
                continue;
            }
            let day = if by_start {
                b.start + chrono::Duration::days(from_start)
            } else {
                b.end + chrono::Duration::days(from_end)
            };
            out.push(day);
            prev_start = b.start;
        }
        out
    }

    /// The kind of a date, if it is exceptional.
    pub fn kind(&self, date: NaiveDate) -> Option<DayKind> {
        self.days.get(&date).map(|(k, _)| *k)
    }

    /// The name of an exceptional date.
    pub fn name(&self, date: NaiveDate) -> Option<&str> {
        self.days.get(&date).map(|(_, n)| n.as_str())
    }

    /// Number of exceptional days.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// The class used to pick seasonal analogs for a date.
    pub fn class(&self, date: NaiveDate) -> DayClass {
        match self.kind(date) {
            Some(DayKind::Holiday) => HOLIDAY_CLASS,
            Some(DayKind::MakeUpWorkday) => MAKE_UP_CLASS,
            None => date.weekday().num_days_from_monday() as DayClass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn bundled_calendars() {
        let sc = Calendar::scotland();
        assert_eq!(sc.kind(d("2018-08-06")), Some(DayKind::Holiday)); // Summer bank holiday
        assert_eq!(sc.kind(d("2018-08-27")), None); // an England-only holiday
        assert_eq!(sc.class(d("2018-08-06")), HOLIDAY_CLASS);
        assert_eq!(sc.class(d("2018-08-07")), 1);
        let cn = Calendar::china();
        assert_eq!(cn.kind(d("2025-01-28")), Some(DayKind::Holiday));
        assert_eq!(cn.kind(d("2025-01-26")), Some(DayKind::MakeUpWorkday));
        assert_eq!(cn.kind(d("2026-02-23")), Some(DayKind::Holiday));
        assert_eq!(cn.kind(d("2026-10-10")), Some(DayKind::MakeUpWorkday));
        assert!(cn.kind(d("2027-02-06")).is_none(), "2027 is not published");
    }

    #[test]
    fn earlier_occurrences_follow_the_block() {
        let cn = Calendar::china();
        // 2026 Spring Festival block 15-23 Feb (9 days), 2025's 28 Jan-4 Feb (8 days), 2024's
        // 10-17 Feb (8 days).
        assert_eq!(
            cn.earlier_occurrences(d("2026-02-15")),
            vec![d("2025-01-27"), d("2024-02-09")]
        );
        // Days before count from the first day, the block and after from the last.
        assert_eq!(cn.earlier_occurrences(d("2026-02-10"))[0], d("2025-01-23"));
        assert_eq!(cn.earlier_occurrences(d("2026-02-22"))[0], d("2025-02-03"));
        assert_eq!(cn.earlier_occurrences(d("2026-02-26"))[0], d("2025-02-07"));
        // Ordinary days, and days too far from a block.
        assert!(cn.earlier_occurrences(d("2026-03-10")).is_empty());
        assert!(cn.earlier_occurrences(d("2026-02-07")).is_empty());
        // 2024 has no earlier Spring Festival in the calendar.
        assert!(cn.earlier_occurrences(d("2024-02-12")).is_empty());
        // A one-day holiday keeps the ordinary holiday analogs.
        let sc = Calendar::scotland();
        assert!(sc.earlier_occurrences(d("2019-08-05")).is_empty());
        assert!(sc.earlier_occurrences(d("2019-08-04")).is_empty());
        assert!(
            Calendar::empty(Zone::CHINA)
                .earlier_occurrences(d("2026-02-15"))
                .is_empty()
        );
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(Calendar::parse("2024-13-01 holiday X", Zone::LONDON).is_err());
        assert!(Calendar::parse("2024-01-01 party X", Zone::LONDON).is_err());
        assert!(
            Calendar::parse("# only a comment\n\n", Zone::LONDON)
                .expect("ok")
                .is_empty()
        );
    }
}
