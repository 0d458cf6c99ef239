//! A station's busy-connector history, replayed from the store's status changes.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use chargeops_core::{ConnectorState, ConnectorStatus, StatusCounts};

use super::Network;
use crate::{Error, Result};

/// Which window of a station's history, in buckets of how long.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct HistoryQuery {
    /// Hours back from now, 1 to 48 (default 6).
    pub hours: Option<u32>,
    /// 1 to 60 (default 5 up to 12 hours, else 15).
    pub bucket_minutes: Option<u32>,
}

/// How far before the window status history is read to know each connector's state when the
/// window opens. A connector with no change in that time is taken to have held its current
/// status all along (nothing was reported, so nothing changed).
const HISTORY_LOOKBACK_HOURS: i64 = 24;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HistoryPoint {
    /// Start of the bucket.
    pub at: DateTime<Utc>,
    /// Busy (occupied or charging) connectors at the end of the bucket.
    pub busy: u64,
    /// Most connectors busy at once during the bucket.
    pub busy_peak: u64,
    /// Connectors by status at the end of the bucket.
    pub counts: StatusCounts,
}

/// A station's busy connectors over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub station_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket_s: i64,
    pub connectors: usize,
    pub points: Vec<HistoryPoint>,
}

impl Network {
    /// Busy connectors of station `id` over the last hours, bucket by bucket.
    pub async fn history(&self, id: &str, q: HistoryQuery) -> Result<History> {
        let state = &self.platform;
        let hours = q.hours.unwrap_or(6);
        if !(1..=48).contains(&hours) {
            return Err(Error::invalid("hours must be 1 to 48"));
        }
        let bucket_minutes = q.bucket_minutes.unwrap_or(if hours <= 12 { 5 } else { 15 });
        if !(1..=60).contains(&bucket_minutes) {
            return Err(Error::invalid("bucket_minutes must be 1 to 60"));
        }
        if state.store.get_station(id).await?.is_none() {
            return Err(Error::not_found(format!("station {id} not found")));
        }
        let to = Utc::now();
        let bucket = Duration::minutes(i64::from(bucket_minutes));
        let from = align_down(to - Duration::hours(i64::from(hours)), bucket);
        let lookback = from - Duration::hours(HISTORY_LOOKBACK_HOURS);

        let chargers: Vec<_> = state
            .store
            .list_chargers()
            .await?
            .into_iter()
            .filter(|c| c.station_id == id)
            .collect();
        let mut changes: Vec<Change> = Vec::new();
        let mut keys = 0usize;
        for c in &chargers {
            let history = state.store.status_history(&c.id, Some(lookback)).await?;
            let mut seen: Vec<(u32, u32)> = Vec::new();
            for s in &history {
                let key = (s.evse_id, s.connector_id);
                if !seen.contains(&key) {
                    seen.push(key);
                }
            }
            // Connectors with no change since the lookback have held their current status.
            let current: Vec<ConnectorState> = state
                .live
                .snapshot(&c.id)
                .map(|snap| snap.connectors)
                .unwrap_or_default();
            let base = keys;
            for s in &current {
                let key = (s.evse_id, s.connector_id);
                if seen.contains(&key) {
                    continue;
                }
                let status = state
                    .live
                    .connector(&c.id, s.evse_id, s.connector_id)
                    .map_or(s.status, |r| r.status);
                seen.push(key);
                changes.push(Change {
                    at: lookback,
                    key: base + seen.len() - 1,
                    status,
                });
            }
            for s in history {
                let Some(i) = seen.iter().position(|k| *k == (s.evse_id, s.connector_id)) else {
                    continue;
                };
                changes.push(Change {
                    at: s.updated_at,
                    key: base + i,
                    status: s.status,
                });
            }
            keys += seen.len();
        }
        let points = bucket_busy(&mut changes, keys, from, to, bucket);
        Ok(History {
            station_id: id.to_owned(),
            from,
            to,
            bucket_s: bucket.num_seconds(),
            connectors: keys,
            points,
        })
    }
}

fn align_down(t: DateTime<Utc>, bucket: Duration) -> DateTime<Utc> {
    let step = bucket.num_milliseconds().max(1);
    let ms = t.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(step)).unwrap_or(t)
}

/// One connector's status change; `key` numbers the connector within the station.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub at: DateTime<Utc>,
    pub key: usize,
    pub status: ConnectorStatus,
}

/// Replays status changes over buckets of `bucket` from `from` to `to`: per bucket, the
/// counts at its end and the peak of busy connectors within it. Changes before `from` set the
/// starting state; a connector counts only from its first known status.
pub fn bucket_busy(
    changes: &mut [Change],
    keys: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Duration,
) -> Vec<HistoryPoint> {
    changes.sort_by_key(|c| c.at);
    let mut state: Vec<Option<ConnectorStatus>> = vec![None; keys];
    let mut counts = [0u64; 7];
    let mut apply = |c: &Change, counts: &mut [u64; 7]| {
        if c.key >= state.len() {
            return;
        }
        if let Some(old) = state[c.key] {
            counts[old.index()] -= 1;
        }
        counts[c.status.index()] += 1;
        state[c.key] = Some(c.status);
    };
    let busy_of = |counts: &[u64; 7]| {
        counts[ConnectorStatus::Occupied.index()] + counts[ConnectorStatus::Charging.index()]
    };
    let mut i = 0;
    while i < changes.len() && changes[i].at < from {
        apply(&changes[i], &mut counts);
        i += 1;
    }
    let mut points = Vec::new();
    let mut start = from;
    while start < to && bucket > Duration::zero() {
        let end = (start + bucket).min(to);
        let mut peak = busy_of(&counts);
        while i < changes.len() && (changes[i].at < end || (end == to && changes[i].at <= to)) {
            apply(&changes[i], &mut counts);
            peak = peak.max(busy_of(&counts));
            i += 1;
        }
        let mut out = StatusCounts::default();
        for s in ConnectorStatus::ALL {
            out.set(s, counts[s.index()]);
        }
        points.push(HistoryPoint {
            at: start,
            busy: busy_of(&counts),
            busy_peak: peak,
            counts: out,
        });
        start += bucket;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectorStatus::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 3600, 0).expect("valid")
            + Duration::minutes(min)
    }

    fn ch(min: i64, key: usize, status: ConnectorStatus) -> Change {
        Change {
            at: t(min),
            key,
            status,
        }
    }

    #[test]
    fn buckets_carry_state_from_before_the_window() {
        let mut changes = vec![ch(-30, 0, Charging), ch(-20, 1, Available)];
        let points = bucket_busy(&mut changes, 2, t(0), t(15), Duration::minutes(5));
        assert_eq!(points.len(), 3);
        for p in &points {
            assert_eq!(
                (p.busy, p.busy_peak, p.counts.available, p.counts.charging),
                (1, 1, 1, 1)
            );
        }
        assert_eq!(points[0].at, t(0));
        assert_eq!(points[2].at, t(10));
    }

    #[test]
    fn peak_catches_a_short_session_inside_a_bucket() {
        // Connector 1 charges from minute 6 to 8: the bucket [5, 10) ends with 1 busy, peaked at 2.
        let mut changes = vec![
            ch(-1, 0, Charging),
            ch(-1, 1, Available),
            ch(6, 1, Charging),
            ch(8, 1, Available),
            ch(12, 0, Available),
        ];
        let points = bucket_busy(&mut changes, 2, t(0), t(15), Duration::minutes(5));
        let summary: Vec<(u64, u64)> = points.iter().map(|p| (p.busy, p.busy_peak)).collect();
        assert_eq!(summary, vec![(1, 1), (1, 2), (0, 1)]);
    }

    #[test]
    fn unknown_connectors_count_from_their_first_status_and_order_does_not_matter() {
        let mut changes = vec![ch(7, 1, Faulted), ch(2, 0, Occupied), ch(-5, 0, Available)];
        let points = bucket_busy(&mut changes, 2, t(0), t(10), Duration::minutes(5));
        assert_eq!(points[0].counts.total(), 1);
        assert_eq!(points[0].busy, 1);
        assert_eq!(points[1].counts.faulted, 1);
        assert_eq!(points[1].counts.total(), 2);
    }

    #[test]
    fn a_change_at_the_window_end_is_counted_and_a_partial_last_bucket_is_kept() {
        let mut changes = vec![ch(0, 0, Available), ch(12, 0, Charging)];
        let points = bucket_busy(&mut changes, 1, t(0), t(12), Duration::minutes(5));
        assert_eq!(points.len(), 3);
        assert_eq!(points[2].busy, 1);
    }

    #[test]
    fn out_of_range_keys_are_ignored() {
        let mut changes = vec![ch(1, 5, Charging)];
        let points = bucket_busy(&mut changes, 1, t(0), t(5), Duration::minutes(5));
        assert_eq!(points[0].counts.total(), 0);
    }
}
