//! The network's totals and the public (no token) availability of every station.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Local, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use chargeops_core::StatusCounts;
use chargeops_store::SessionFilter;

use super::Network;
use crate::{Error, Result};

/// Sessions read to sum today's energy; past this the total is marked `energy_capped`.
const ENERGY_SESSION_CAP: u32 = 200_000;

/// The whole network's totals now and since the start of the day.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub stations: usize,
    pub chargers: usize,
    pub chargers_connected: usize,
    pub connectors: StatusCounts,
    pub connectors_total: u64,
    pub charging_now: u64,
    pub faulted: u64,
    pub offline: u64,
    /// Start of "today": the `since` given (the page sends its local midnight), else the
    /// server's local midnight.
    pub since: DateTime<Utc>,
    pub sessions_today: usize,
    pub energy_today_wh: i64,
    pub energy_capped: bool,
    pub at: DateTime<Utc>,
}

fn local_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&Local);
    local
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|m| Local.from_local_datetime(&m).earliest())
        .map_or(now - Duration::hours(24), |m| m.with_timezone(&Utc))
}

impl Network {
    /// The network's totals: stations, chargers, connectors by status, and the sessions and
    /// energy since `since` (the server's local midnight when not given; at most 7 days back).
    pub async fn summary(&self, since: Option<DateTime<Utc>>) -> Result<Summary> {
        let state = &self.platform;
        let now = Utc::now();
        let since = since.unwrap_or_else(|| local_midnight(now));
        if since > now || now - since > Duration::days(7) {
            return Err(Error::invalid("since must be within the last 7 days"));
        }
        let stations = state.store.list_stations().await?.len();
        let mut connectors = StatusCounts::default();
        for (_, (_, c)) in state.live.all_station_counts() {
            connectors = add_counts(connectors, c);
        }
        let sessions = state
            .store
            .list_sessions(&SessionFilter {
                since: Some(since),
                limit: Some(ENERGY_SESSION_CAP),
                ..Default::default()
            })
            .await?;
        let energy_today_wh = sessions.iter().map(session_energy).sum();
        Ok(Summary {
            stations,
            chargers: state.live.charger_count(),
            chargers_connected: state.live.online_count(),
            connectors_total: connectors.total(),
            charging_now: connectors.charging,
            faulted: connectors.faulted,
            offline: connectors.offline,
            connectors,
            since,
            sessions_today: sessions.len(),
            energy_today_wh,
            energy_capped: sessions.len() >= ENERGY_SESSION_CAP as usize,
            at: now,
        })
    }
}

fn add_counts(a: StatusCounts, b: StatusCounts) -> StatusCounts {
    StatusCounts {
        available: a.available + b.available,
        occupied: a.occupied + b.occupied,
        charging: a.charging + b.charging,
        reserved: a.reserved + b.reserved,
        unavailable: a.unavailable + b.unavailable,
        faulted: a.faulted + b.faulted,
        offline: a.offline + b.offline,
    }
}

/// Energy of a session so far: what the charger reported, else the meter difference.
fn session_energy(s: &chargeops_core::Session) -> i64 {
    s.energy_wh
        .or_else(|| Some(s.meter_stop_wh? - s.meter_start_wh?))
        .unwrap_or(0)
        .max(0)
}

/// A typical DC fast-charging session, for the wait estimate: long enough for ~10-80% on
/// highway chargers.
const TYPICAL_SESSION_S: u64 = 40 * 60;

/// Which stations a driver asks about.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PublicQuery {
    pub highway: Option<String>,
    /// A highway direction as the network file names it.
    pub direction: Option<String>,
}

/// A station's live availability as anyone may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicStation {
    pub id: String,
    pub name: String,
    pub highway: Option<String>,
    pub direction: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub connectors: StatusCounts,
    pub available: u64,
    pub total: u64,
    pub wait_estimate_s: Option<u64>,
}

/// Expected wait for the next free connector: none when one is free; with `n` busy connectors
/// whose sessions end at independent, uniformly spread times within a typical session, the
/// first frees after `typical / (n + 1)` on average. `None` when no connector is in service
/// (all faulted, unavailable or offline): there is nothing to wait for.
pub fn wait_estimate_s(c: &StatusCounts) -> Option<u64> {
    if c.available > 0 {
        return Some(0);
    }
    let busy = c.occupied + c.charging + c.reserved;
    if busy == 0 {
        return None;
    }
    Some(TYPICAL_SESSION_S / (busy + 1))
}

impl Network {
    /// Every station's live availability, for anyone: no charger ids, no id tags, no sessions.
    pub async fn public_stations(&self, q: PublicQuery) -> Result<Vec<PublicStation>> {
        let state = &self.platform;
        let counts: HashMap<String, (u64, StatusCounts)> = state.live.all_station_counts();
        let out: Vec<PublicStation> = state
            .store
            .list_stations()
            .await?
            .into_iter()
            .filter(|s| {
                q.highway
                    .as_ref()
                    .is_none_or(|h| s.highway.as_ref() == Some(h))
            })
            .filter(|s| {
                q.direction
                    .as_ref()
                    .is_none_or(|d| s.direction.as_ref() == Some(d))
            })
            .map(|s| {
                let c = counts.get(&s.id).map(|(_, c)| *c).unwrap_or_default();
                PublicStation {
                    available: c.available,
                    total: c.total(),
                    wait_estimate_s: wait_estimate_s(&c),
                    connectors: c,
                    id: s.id,
                    name: s.name,
                    highway: s.highway,
                    direction: s.direction,
                    lat: s.lat,
                    lon: s.lon,
                }
            })
            .collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_estimates() {
        let mut c = StatusCounts {
            available: 1,
            charging: 5,
            ..Default::default()
        };
        assert_eq!(wait_estimate_s(&c), Some(0));
        c.available = 0;
        assert_eq!(wait_estimate_s(&c), Some(TYPICAL_SESSION_S / 6));
        let broken = StatusCounts {
            faulted: 2,
            offline: 3,
            ..Default::default()
        };
        assert_eq!(wait_estimate_s(&broken), None);
        assert_eq!(wait_estimate_s(&StatusCounts::default()), None);
    }
}
