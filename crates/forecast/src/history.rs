//! Per-site session history on a minute clock, and the hourly series derived from it.
//!
//! Times are minutes since the Unix epoch (UTC); an hour index is minutes / 60. Every series
//! function takes a `cut`: it sees only sessions that started before the cut and knows each one
//! only up to the cut, which is how the evaluation protocol (and a live origin) sees the world.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use crate::session::Session;

/// One session as minutes since the epoch, on a connector numbered within its site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub connector: u32,
    pub start: i64,
    pub end: i64,
}

/// A site's sessions and connector count: the input of every forecast.
#[derive(Debug, Clone)]
pub struct SiteHistory {
    pub site: String,
    /// Connectors at the site: the occupancy denominator.
    pub connectors: u32,
    /// Sorted by start.
    spans: Vec<Span>,
    /// Longest session, to bound searches for sessions overlapping a window.
    max_len: i64,
}

/// Minutes since the epoch of an instant (floored).
pub fn minute_of<Tz: TimeZone>(at: &DateTime<Tz>) -> i64 {
    at.timestamp().div_euclid(60)
}

/// The instant of an hour index.
pub fn hour_instant(hour: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(hour * 3600, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl SiteHistory {
    /// Builds a history; spans with `end < start` are dropped here too (the readers already
    /// drop them), and connector numbers must be below `connectors`.
    pub fn new(site: impl Into<String>, connectors: u32, mut spans: Vec<Span>) -> Self {
        spans.retain(|s| s.end >= s.start && s.connector < connectors.max(1));
        spans.sort_by_key(|s| (s.start, s.end, s.connector));
        let max_len = spans.iter().map(|s| s.end - s.start).max().unwrap_or(0);
        Self {
            site: site.into(),
            connectors,
            spans,
            max_len,
        }
    }

    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// The first session's start, in minutes.
    pub fn first_start(&self) -> Option<i64> {
        self.spans.first().map(|s| s.start)
    }

    /// The last session's start, in minutes.
    pub fn last_start(&self) -> Option<i64> {
        self.spans.last().map(|s| s.start)
    }

    /// Index of the first span starting at or after `minute`.
    fn lower(&self, minute: i64) -> usize {
        self.spans.partition_point(|s| s.start < minute)
    }

    /// Occupancy rate per hour for hours `[from, to)`: busy connector-minutes in the hour over
    /// 60 x connectors, counting only sessions that started in `starts` and before `cut`,
    /// each ending at the latest at `cut`. Overlapping sessions on one connector count once.
    pub fn occupancy_from(&self, from: i64, to: i64, starts: (i64, i64), cut: i64) -> Vec<f64> {
        let n = (to - from).max(0) as usize;
        let mut busy = vec![0.0; n];
        if n == 0 || self.connectors == 0 {
            return busy;
        }
        let (lo_m, hi_m) = (from * 60, to * 60);
        let first = self.lower(starts.0.max(lo_m - self.max_len));
        let last = self.lower(starts.1.min(cut).min(hi_m));
        let mut per_connector: BTreeMap<u32, Vec<(i64, i64)>> = BTreeMap::new();
        for s in &self.spans[first..last] {
            let end = s.end.min(cut).min(hi_m);
            let start = s.start.max(lo_m);
            if end > start {
                per_connector
                    .entry(s.connector)
                    .or_default()
                    .push((start, end));
            }
        }
        for spans in per_connector.values_mut() {
            spans.sort_unstable();
            let mut cur: Option<(i64, i64)> = None;
            for &(a, b) in spans.iter() {
                match cur {
                    Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
                    Some(c) => {
                        add_minutes(&mut busy, from, c);
                        cur = Some((a, b));
                    }
                    None => cur = Some((a, b)),
                }
            }
            if let Some(c) = cur {
                add_minutes(&mut busy, from, c);
            }
        }
        let denom = 60.0 * f64::from(self.connectors);
        for b in &mut busy {
            *b = (*b / denom).clamp(0.0, 1.0);
        }
        busy
    }

    /// Occupancy rate per hour for hours `[from, to)` as seen at `cut` (minutes).
    pub fn occupancy(&self, from: i64, to: i64, cut: i64) -> Vec<f64> {
        self.occupancy_from(from, to, (i64::MIN, i64::MAX), cut)
    }

    /// Sessions started per hour for hours `[from, to)`, counting starts before `cut`.
    pub fn arrivals(&self, from: i64, to: i64, cut: i64) -> Vec<f64> {
        let n = (to - from).max(0) as usize;
        let mut out = vec![0.0; n];
        let (a, b) = (self.lower(from * 60), self.lower((to * 60).min(cut)));
        for s in &self.spans[a..b] {
            let i = (s.start.div_euclid(60) - from) as usize;
            if let Some(v) = out.get_mut(i) {
                *v += 1.0;
            }
        }
        out
    }

    /// Sessions running at `at` (started before it, not ended by it): their elapsed minutes.
    pub fn running_at(&self, at: i64) -> Vec<i64> {
        let a = self.lower(at - self.max_len - 1);
        let b = self.lower(at);
        self.spans[a..b]
            .iter()
            .filter(|s| s.end > at)
            .map(|s| at - s.start)
            .collect()
    }

    /// `(start, duration)` in minutes of sessions that started in `[from, cut)` and ended by
    /// `cut`.
    pub fn completed(&self, from: i64, cut: i64) -> Vec<(i64, i64)> {
        let (a, b) = (self.lower(from), self.lower(cut));
        self.spans[a..b]
            .iter()
            .filter(|s| s.end <= cut)
            .map(|s| (s.start, s.end - s.start))
            .collect()
    }
}

fn add_minutes(busy: &mut [f64], from_hour: i64, (a, b): (i64, i64)) {
    let mut t = a;
    while t < b {
        let hour = t.div_euclid(60);
        let next = ((hour + 1) * 60).min(b);
        if let Some(v) = busy.get_mut((hour - from_hour) as usize) {
            *v += (next - t) as f64;
        }
        t = next;
    }
}

/// Groups sessions by site, numbering each site's `(charger, connector)` pairs. The connector
/// count of a site is the number of distinct pairs seen for it.
pub fn by_site(sessions: &[Session]) -> Vec<SiteHistory> {
    /// A site's connector numbering and its spans.
    type SiteAcc<'a> = (BTreeMap<(&'a str, &'a str), u32>, Vec<Span>);
    let mut sites: BTreeMap<&str, SiteAcc<'_>> = BTreeMap::new();
    for s in sessions {
        let (connectors, spans) = sites.entry(&s.site).or_default();
        let next = connectors.len() as u32;
        let id = *connectors.entry((&s.charger, &s.connector)).or_insert(next);
        spans.push(Span {
            connector: id,
            start: minute_of(&s.start),
            end: minute_of(&s.end),
        });
    }
    sites
        .into_iter()
        .map(|(site, (connectors, spans))| SiteHistory::new(site, connectors.len() as u32, spans))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(connector: u32, start: i64, end: i64) -> Span {
        Span {
            connector,
            start,
            end,
        }
    }

    #[test]
    fn occupancy_splits_minutes_over_hours_and_merges_overlaps() {
        // Two connectors; connector 0 busy 00:30-01:30, and an overlapping duplicate 01:00-01:15;
        // connector 1 busy 00:00-02:00.
        let h = SiteHistory::new(
            "s",
            2,
            vec![span(0, 30, 90), span(0, 60, 75), span(1, 0, 120)],
        );
        assert_eq!(h.occupancy(0, 3, i64::MAX), vec![0.75, 0.75, 0.0]);
        // Cut at 01:00: the sessions are known only up to the cut, the later one not at all.
        assert_eq!(h.occupancy(0, 3, 60), vec![0.75, 0.0, 0.0]);
        assert_eq!(h.arrivals(0, 3, i64::MAX), vec![2.0, 1.0, 0.0]);
        assert_eq!(h.arrivals(0, 3, 60), vec![2.0, 0.0, 0.0]);
        assert_eq!(h.running_at(60), vec![60, 30]);
    }

    #[test]
    fn fresh_occupancy_counts_only_sessions_started_in_the_window() {
        let h = SiteHistory::new("s", 1, vec![span(0, 0, 120), span(0, 150, 170)]);
        assert_eq!(
            h.occupancy_from(1, 3, (60, i64::MAX), i64::MAX),
            vec![0.0, 20.0 / 60.0]
        );
    }
}
