//! Holiday calendars: the days a region does not behave like an ordinary day of its weekday.
//! They are known in advance, so the model uses them as known regressors: a holiday draws its
//! seasonal analogs from earlier holidays (or from Sundays when there are none in the history),
//! and a make-up working day (China's 调休上班, a weekend day worked) from working days.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::ForecastError;
use crate::tz::Zone;

/// What kind of exceptional day a date is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

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
        }
    }

    /// Scottish bank holidays 2016-2027 (the reference data's region), UK time.
    pub fn scotland() -> Self {
        Self::parse(
            include_str!("../data/holidays/scotland.txt"),
            Zone::UkLondon,
        )
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
        Ok(Self { zone, days })
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
    fn bad_lines_are_errors() {
        assert!(Calendar::parse("2024-13-01 holiday X", Zone::UkLondon).is_err());
        assert!(Calendar::parse("2024-01-01 party X", Zone::UkLondon).is_err());
        assert!(
            Calendar::parse("# only a comment\n\n", Zone::UkLondon)
                .expect("ok")
                .is_empty()
        );
    }
}
