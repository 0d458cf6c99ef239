//! Charging sessions and the canonical session CSV (`site,charger,connector,start,end,kwh`,
//! RFC 3339 times with offset, one row a session, `kwh` may be empty).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::{ForecastError, csv};

/// The canonical header, in order.
pub const CANONICAL_HEADER: [&str; 6] = ["site", "charger", "connector", "start", "end", "kwh"];

/// One charging session on one connector.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub site: String,
    pub charger: String,
    pub connector: String,
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
    pub kwh: Option<f64>,
}

/// Why an input row did not become a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Fewer fields than the header names.
    ShortRow,
    MissingSite,
    MissingCharger,
    MissingConnector,
    MissingStart,
    /// No end time: typically a session still running when the file was exported.
    MissingEnd,
    /// A date or time in a format the reader does not know.
    BadDateFormat,
    EndBeforeStart,
    /// Rows of a site named as a test site (`***TEST SITE***`).
    TestSite,
    /// The same connector, start and end as an earlier row.
    Duplicate,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DropReason::ShortRow => "row has fewer fields than the header",
            DropReason::MissingSite => "empty site",
            DropReason::MissingCharger => "empty charge point id",
            DropReason::MissingConnector => "empty connector",
            DropReason::MissingStart => "empty start date or time",
            DropReason::MissingEnd => "empty end date or time (session still running at export?)",
            DropReason::BadDateFormat => "unknown date or time format",
            DropReason::EndBeforeStart => "end before start",
            DropReason::TestSite => "test site",
            DropReason::Duplicate => "duplicate of an earlier row",
        };
        f.write_str(s)
    }
}

/// What a reader or importer did with its input: never silent about dropped rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub rows_read: usize,
    pub sessions: usize,
    pub dropped: BTreeMap<DropReason, usize>,
    /// The first input location (`file:line`) of each drop reason, to look at.
    pub first_dropped_at: BTreeMap<DropReason, String>,
    /// Things kept but worth knowing (overlaps, long sessions, renamed sites, date order).
    pub notes: Vec<String>,
}

impl ImportReport {
    pub fn drop_row(&mut self, reason: DropReason, at: impl FnOnce() -> String) {
        *self.dropped.entry(reason).or_default() += 1;
        self.first_dropped_at.entry(reason).or_insert_with(at);
    }

    pub fn dropped_total(&self) -> usize {
        self.dropped.values().sum()
    }

    /// Adds the notes about the kept sessions: overlaps on one connector and very long sessions.
    pub fn note_session_oddities(&mut self, sessions: &[Session]) {
        type Connector<'a> = (&'a str, &'a str, &'a str);
        let mut by_connector: BTreeMap<Connector<'_>, Vec<(i64, i64)>> = BTreeMap::new();
        let mut long = 0;
        for s in sessions {
            let (a, b) = (s.start.timestamp(), s.end.timestamp());
            if b - a > 24 * 3600 {
                long += 1;
            }
            by_connector
                .entry((&s.site, &s.charger, &s.connector))
                .or_default()
                .push((a, b));
        }
        let mut overlaps = 0;
        for spans in by_connector.values_mut() {
            spans.sort_unstable();
            let mut reach = i64::MIN;
            for &(a, b) in spans.iter() {
                if a < reach {
                    overlaps += 1;
                }
                reach = reach.max(b);
            }
        }
        if overlaps > 0 {
            self.notes.push(format!(
                "{overlaps} sessions overlap an earlier session on the same connector: kept; occupancy counts a connector busy once (union of the intervals)"
            ));
        }
        if long > 0 {
            self.notes.push(format!(
                "{long} sessions last longer than 24 hours: kept as recorded"
            ));
        }
    }

    /// A human-readable summary for stderr.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "read {} rows: {} sessions kept, {} dropped\n",
            self.rows_read,
            self.sessions,
            self.dropped_total()
        );
        for (reason, n) in &self.dropped {
            let at = self
                .first_dropped_at
                .get(reason)
                .map(|s| format!(" (first at {s})"))
                .unwrap_or_default();
            out.push_str(&format!("  dropped {n:>6}: {reason}{at}\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        out
    }
}

/// Writes sessions as canonical CSV.
pub fn write_canonical(sessions: &[Session]) -> String {
    let rows = sessions.iter().map(|s| {
        [
            s.site.clone(),
            s.charger.clone(),
            s.connector.clone(),
            s.start.to_rfc3339(),
            s.end.to_rfc3339(),
            s.kwh.map(|k| format!("{k}")).unwrap_or_default(),
        ]
    });
    csv::write(std::iter::once(CANONICAL_HEADER.map(String::from)).chain(rows))
}

/// Reads a canonical session CSV. Columns are found by header name (extra columns are ignored);
/// rows that cannot be sessions are dropped and counted in the report, never silently.
/// `source` names the input in the report.
pub fn read_canonical(
    text: &str,
    source: &str,
) -> Result<(Vec<Session>, ImportReport), ForecastError> {
    let records = csv::parse(text)?;
    let mut report = ImportReport::default();
    let Some((header, rows)) = records.split_first() else {
        return Err(ForecastError::BadFile {
            path: source.into(),
            message: "empty file: expected header site,charger,connector,start,end,kwh".into(),
        });
    };
    let col = |name: &str| {
        header
            .fields
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let mut idx = [0usize; 6];
    for (i, name) in CANONICAL_HEADER.iter().enumerate() {
        idx[i] = col(name).ok_or_else(|| ForecastError::BadFile {
            path: source.into(),
            message: format!(
                "header has no `{name}` column: expected site,charger,connector,start,end,kwh"
            ),
        })?;
    }
    let mut sessions = Vec::with_capacity(rows.len());
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        report.rows_read += 1;
        let at = || format!("{source}:{}", r.line);
        let get = |i: usize| r.fields.get(idx[i]).map(|s| s.trim());
        let (Some(site), Some(charger), Some(connector), Some(start), Some(end)) =
            (get(0), get(1), get(2), get(3), get(4))
        else {
            report.drop_row(DropReason::ShortRow, at);
            continue;
        };
        let kwh = get(5)
            .and_then(|k| k.parse::<f64>().ok())
            .filter(|k| k.is_finite());
        let reason = if site.is_empty() {
            Some(DropReason::MissingSite)
        } else if charger.is_empty() {
            Some(DropReason::MissingCharger)
        } else if connector.is_empty() {
            Some(DropReason::MissingConnector)
        } else if start.is_empty() {
            Some(DropReason::MissingStart)
        } else if end.is_empty() {
            Some(DropReason::MissingEnd)
        } else if is_test_site(site) {
            Some(DropReason::TestSite)
        } else {
            None
        };
        if let Some(reason) = reason {
            report.drop_row(reason, at);
            continue;
        }
        let (Ok(start), Ok(end)) = (
            DateTime::parse_from_rfc3339(start),
            DateTime::parse_from_rfc3339(end),
        ) else {
            report.drop_row(DropReason::BadDateFormat, at);
            continue;
        };
        if end < start {
            report.drop_row(DropReason::EndBeforeStart, at);
            continue;
        }
        if !seen.insert((
            site.to_owned(),
            charger.to_owned(),
            connector.to_owned(),
            start.timestamp(),
            end.timestamp(),
        )) {
            report.drop_row(DropReason::Duplicate, at);
            continue;
        }
        sessions.push(Session {
            site: site.to_owned(),
            charger: charger.to_owned(),
            connector: connector.to_owned(),
            start,
            end,
            kwh,
        });
    }
    report.sessions = sessions.len();
    report.note_session_oddities(&sessions);
    Ok((sessions, report))
}

/// Whether a site name marks a test installation.
pub fn is_test_site(site: &str) -> bool {
    site.to_ascii_uppercase().contains("TEST SITE")
}
