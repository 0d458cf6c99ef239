//! Importers for the council exports (Dundee City Council, Perth & Kinross Council) into
//! canonical sessions.
//!
//! The exports' traps, each handled here and reported:
//! - dates come as `2017-01-12T00:00:00` or `06/09/2018`; in the ISO-looking files the exporter
//!   wrote year-day-month whenever the day was 12 or less. Each file is read both ways and the
//!   reading under which its rows are in order (the exports are newest-first) wins;
//! - empty CP IDs, sites or end times (sessions running at export time) are dropped;
//! - test sites are dropped; exact duplicates (the same connector, start and end) are dropped;
//! - sites renamed by gaining a suffix (`Broxden Park & Ride` -> `Broxden Park & Ride, Perth`)
//!   and sharing a charge point with the new name are merged into the new name;
//! - times are UK local time and become RFC 3339 with the GMT/BST offset.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use crate::session::{DropReason, ImportReport, Session, is_test_site};
use crate::tz::Zone;
use crate::{ForecastError, csv};

/// Which exporter wrote the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Dundee City Council (ChargePlace Scotland) session exports.
    Dundee,
    /// Perth & Kinross Council session exports.
    PerthKinross,
    /// The canonical session CSV (`site,charger,connector,start,end,kwh`).
    Canonical,
}

/// How ISO-looking dates of one file are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsoReading {
    /// `YYYY-MM-DD` as the standard says.
    Standard,
    /// The exporter's bug: `YYYY-DD-MM` when the day is 12 or less, else `YYYY-MM-DD`.
    YearDayMonthWhenDayAtMost12,
}

/// Parses a date in one of the exports' formats.
pub fn parse_export_date(s: &str, reading: IsoReading) -> Option<NaiveDate> {
    let s = s.trim();
    if let Some((d, rest)) = s.split_once('/') {
        let (m, y) = rest.split_once('/')?;
        let y = y.split([' ', 'T']).next()?;
        if y.len() != 4 {
            return None;
        }
        return NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    }
    let date = s.split(['T', ' ']).next()?;
    let mut parts = date.split('-');
    let (y, a, b) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || a.len() > 2 || b.len() > 2 {
        return None;
    }
    let (y, a, b): (i32, u32, u32) = (y.parse().ok()?, a.parse().ok()?, b.parse().ok()?);
    match reading {
        IsoReading::Standard => NaiveDate::from_ymd_opt(y, a, b),
        IsoReading::YearDayMonthWhenDayAtMost12 if b > 12 => NaiveDate::from_ymd_opt(y, a, b),
        IsoReading::YearDayMonthWhenDayAtMost12 => NaiveDate::from_ymd_opt(y, b, a),
    }
}

/// Parses `H:MM`, `HH:MM` or `HH:MM:SS`.
pub fn parse_export_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .ok()
}

struct Columns {
    charger: usize,
    connector: usize,
    start_date: usize,
    start_time: usize,
    end_date: usize,
    end_time: usize,
    kwh: Option<usize>,
    site: usize,
}

fn columns(header: &[String], path: &str) -> Result<Columns, ForecastError> {
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let need = |name: &str| {
        find(name).ok_or_else(|| ForecastError::BadFile {
            path: path.into(),
            message: format!("header has no `{name}` column; is this a council session export?"),
        })
    };
    Ok(Columns {
        charger: need("CP ID")?,
        connector: need("Connector")?,
        start_date: need("Start Date")?,
        start_time: need("Start Time")?,
        end_date: need("End Date")?,
        end_time: need("End Time")?,
        kwh: find("Total kWh"),
        site: need("Site")?,
    })
}

/// Chooses how to read the ISO-looking dates of one file: the reading under which the start
/// times are closest to sorted (either direction) wins; ties go to the standard reading.
fn choose_reading(starts: &[(&str, &str)]) -> (IsoReading, usize, usize) {
    let disorder = |reading| {
        let mut prev: Option<NaiveDateTime> = None;
        let (mut up, mut down) = (0, 0);
        for (d, t) in starts {
            let (Some(d), Some(t)) = (parse_export_date(d, reading), parse_export_time(t)) else {
                continue;
            };
            let at = d.and_time(t);
            if let Some(p) = prev {
                if at > p {
                    up += 1;
                } else if at < p {
                    down += 1;
                }
            }
            prev = Some(at);
        }
        up.min(down)
    };
    let standard = disorder(IsoReading::Standard);
    let trap = disorder(IsoReading::YearDayMonthWhenDayAtMost12);
    if trap < standard {
        (IsoReading::YearDayMonthWhenDayAtMost12, trap, standard)
    } else {
        (IsoReading::Standard, standard, trap)
    }
}

/// Reads one council export file into sessions (not yet deduplicated or merged).
fn read_export(
    text: &str,
    path: &str,
    zone: Zone,
    report: &mut ImportReport,
) -> Result<Vec<Session>, ForecastError> {
    let records = csv::parse(text).map_err(|e| ForecastError::BadFile {
        path: path.into(),
        message: e.to_string(),
    })?;
    let Some((header, rows)) = records.split_first() else {
        return Err(ForecastError::BadFile {
            path: path.into(),
            message: "empty file".into(),
        });
    };
    let c = columns(&header.fields, path)?;
    let max_col = [
        c.charger,
        c.connector,
        c.start_date,
        c.start_time,
        c.end_date,
        c.end_time,
        c.site,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let iso_starts: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.fields.len() > max_col)
        .map(|r| {
            (
                r.fields[c.start_date].as_str(),
                r.fields[c.start_time].as_str(),
            )
        })
        .filter(|(d, _)| d.contains('-'))
        .collect();
    let (reading, disorder, other) = choose_reading(&iso_starts);
    if !iso_starts.is_empty() {
        report.notes.push(format!(
            "{path}: ISO-looking dates read as {} ({disorder} rows out of order; {other} the other way)",
            match reading {
                IsoReading::Standard => "year-month-day",
                IsoReading::YearDayMonthWhenDayAtMost12 => "year-day-month when the day is 12 or less",
            }
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        report.rows_read += 1;
        let at = || format!("{path}:{}", r.line);
        if r.fields.len() <= max_col {
            report.drop_row(DropReason::ShortRow, at);
            continue;
        }
        let f = |i: usize| r.fields[i].trim();
        let site = f(c.site);
        let reason = if site.is_empty() {
            Some(DropReason::MissingSite)
        } else if is_test_site(site) {
            Some(DropReason::TestSite)
        } else if f(c.charger).is_empty() {
            Some(DropReason::MissingCharger)
        } else if f(c.connector).is_empty() {
            Some(DropReason::MissingConnector)
        } else if f(c.start_date).is_empty() || f(c.start_time).is_empty() {
            Some(DropReason::MissingStart)
        } else if f(c.end_date).is_empty() || f(c.end_time).is_empty() {
            Some(DropReason::MissingEnd)
        } else {
            None
        };
        if let Some(reason) = reason {
            report.drop_row(reason, at);
            continue;
        }
        let local = |d: usize, t: usize| {
            Some(parse_export_date(f(d), reading)?.and_time(parse_export_time(f(t))?))
        };
        let (Some(start), Some(end)) = (
            local(c.start_date, c.start_time),
            local(c.end_date, c.end_time),
        ) else {
            report.drop_row(DropReason::BadDateFormat, at);
            continue;
        };
        let (start, end) = (zone.from_local(start), zone.from_local(end));
        if end < start {
            report.drop_row(DropReason::EndBeforeStart, at);
            continue;
        }
        let kwh = c
            .kwh
            .and_then(|i| r.fields.get(i))
            .and_then(|k| k.trim().parse::<f64>().ok())
            .filter(|k| k.is_finite());
        out.push(Session {
            site: site.to_owned(),
            charger: f(c.charger).to_owned(),
            connector: f(c.connector).to_owned(),
            start,
            end,
            kwh,
        });
    }
    Ok(out)
}

/// Merges sites renamed by gaining a suffix: `A` is an old name of `B` when `B` starts with `A`
/// and the two share a charge point. Returns old name -> new name.
pub fn detect_renames(sessions: &[Session]) -> BTreeMap<String, String> {
    let mut chargers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in sessions {
        chargers.entry(&s.site).or_default().insert(&s.charger);
    }
    let names: Vec<&str> = chargers.keys().copied().collect();
    let mut map = BTreeMap::new();
    for &a in &names {
        let best = names
            .iter()
            .filter(|&&b| b != a && b.starts_with(a) && !chargers[a].is_disjoint(&chargers[b]))
            .max_by_key(|b| b.len());
        if let Some(b) = best {
            map.insert(a.to_owned(), (*b).to_owned());
        }
    }
    // Follow chains (A -> A 3rd floor -> A 3rd floor, Town).
    let resolved: BTreeMap<String, String> = map
        .keys()
        .map(|a| {
            let mut b = &map[a];
            let mut hops = 0;
            while let Some(next) = map.get(b) {
                b = next;
                hops += 1;
                if hops > names.len() {
                    break;
                }
            }
            (a.clone(), b.clone())
        })
        .collect();
    resolved
}

/// Imports files of one format into canonical sessions, sorted by start, with a report.
/// `files` are `(name, text)` pairs.
pub fn import(
    format: ExportFormat,
    files: &[(String, String)],
    zone: Zone,
) -> Result<(Vec<Session>, ImportReport), ForecastError> {
    let mut report = ImportReport::default();
    let mut sessions = Vec::new();
    for (path, text) in files {
        match format {
            ExportFormat::Canonical => {
                let (mut s, r) = crate::session::read_canonical(text, path)?;
                report.rows_read += r.rows_read;
                for (reason, n) in r.dropped {
                    *report.dropped.entry(reason).or_default() += n;
                }
                for (reason, at) in r.first_dropped_at {
                    report.first_dropped_at.entry(reason).or_insert(at);
                }
                sessions.append(&mut s);
            }
            ExportFormat::Dundee | ExportFormat::PerthKinross => {
                sessions.append(&mut read_export(text, path, zone, &mut report)?);
            }
        }
    }
    if format != ExportFormat::Canonical {
        let renames = detect_renames(&sessions);
        for (old, new) in &renames {
            report
                .notes
                .push(format!("site renamed: {old:?} merged into {new:?}"));
        }
        for s in &mut sessions {
            if let Some(new) = renames.get(&s.site) {
                s.site = new.clone();
            }
        }
    }
    sessions.sort_by(|a, b| {
        (a.start, &a.site, &a.charger, &a.connector, a.end).cmp(&(
            b.start,
            &b.site,
            &b.charger,
            &b.connector,
            b.end,
        ))
    });
    let mut seen = HashSet::new();
    let mut kept = Vec::with_capacity(sessions.len());
    for s in sessions {
        let key = (
            s.site.clone(),
            s.charger.clone(),
            s.connector.clone(),
            s.start,
            s.end,
        );
        if seen.insert(key) {
            kept.push(s);
        } else {
            report.drop_row(DropReason::Duplicate, || {
                format!(
                    "{} {} {} {}",
                    s.site,
                    s.charger,
                    s.connector,
                    s.start.to_rfc3339()
                )
            });
        }
    }
    report.sessions = kept.len();
    report
        .notes
        .retain(|n| !n.contains("overlap") && !n.contains("longer than"));
    report.note_session_oddities(&kept);
    Ok((kept, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_year_day_month_trap() {
        let trap = IsoReading::YearDayMonthWhenDayAtMost12;
        let d = |s| parse_export_date(s, trap);
        assert_eq!(
            d("2017-01-12T00:00:00"),
            NaiveDate::from_ymd_opt(2017, 12, 1)
        );
        assert_eq!(
            d("2017-11-09T00:00:00"),
            NaiveDate::from_ymd_opt(2017, 9, 11)
        );
        assert_eq!(
            d("2017-09-30T00:00:00"),
            NaiveDate::from_ymd_opt(2017, 9, 30)
        );
        assert_eq!(
            parse_export_date("2017-01-12T00:00:00", IsoReading::Standard),
            NaiveDate::from_ymd_opt(2017, 1, 12)
        );
        assert_eq!(d("06/09/2018"), NaiveDate::from_ymd_opt(2018, 9, 6));
        assert_eq!(d("31/02/2018"), None);
        assert_eq!(d("Sept 6th"), None);
        assert_eq!(d("18-09-06"), None);
    }

    #[test]
    fn times() {
        assert_eq!(parse_export_time("9:05"), NaiveTime::from_hms_opt(9, 5, 0));
        assert_eq!(
            parse_export_time("23:59:30"),
            NaiveTime::from_hms_opt(23, 59, 30)
        );
        assert_eq!(parse_export_time("25:00"), None);
    }
}
