//! The live state of every connector in memory, and the event bus.
//!
//! Each charger's entry is written only by the connection that holds the charger (one writer);
//! readers take a snapshot. The map is split into shards so that chargers on different shards
//! never contend, and per-station counters are atomics so the whole network's status is read
//! without walking every connector.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::clock::Clock;
use crate::event::Event;
use crate::model::{ConnectorState, ConnectorStatus, Protocol};

const SHARDS: usize = 64;

/// Counts of connectors by status for one station, indexed by [`ConnectorStatus::index`].
#[derive(Debug, Default)]
pub struct StationCounters {
    counts: [AtomicI64; 7],
    chargers: AtomicI64,
    /// Cars seen waiting for a charger (a queue sensor at the entrance, or staff counting).
    waiting: AtomicI64,
}

impl StationCounters {
    fn add(&self, status: ConnectorStatus, delta: i64) {
        self.counts[status.index()].fetch_add(delta, Ordering::Relaxed);
    }

    pub fn chargers(&self) -> u64 {
        self.chargers.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn snapshot(&self) -> StatusCounts {
        let mut out = StatusCounts::default();
        for status in ConnectorStatus::ALL {
            let n = self.counts[status.index()].load(Ordering::Relaxed).max(0) as u64;
            out.set(status, n);
        }
        out
    }
}

/// Connector counts by status, serialised as `{"available": n, ...}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub available: u64,
    pub occupied: u64,
    pub charging: u64,
    pub reserved: u64,
    pub unavailable: u64,
    pub faulted: u64,
    pub offline: u64,
}

impl StatusCounts {
    pub fn set(&mut self, status: ConnectorStatus, n: u64) {
        *match status {
            ConnectorStatus::Available => &mut self.available,
            ConnectorStatus::Occupied => &mut self.occupied,
            ConnectorStatus::Charging => &mut self.charging,
            ConnectorStatus::Reserved => &mut self.reserved,
            ConnectorStatus::Unavailable => &mut self.unavailable,
            ConnectorStatus::Faulted => &mut self.faulted,
            ConnectorStatus::Offline => &mut self.offline,
        } = n;
    }

    pub fn total(&self) -> u64 {
        self.available
            + self.occupied
            + self.charging
            + self.reserved
            + self.unavailable
            + self.faulted
            + self.offline
    }
}

#[derive(Debug)]
struct ChargerLive {
    station_id: Arc<str>,
    station: Arc<StationCounters>,
    protocol: Option<Protocol>,
    online: bool,
    connectors: Vec<ConnectorState>,
}

impl ChargerLive {
    fn effective(&self, c: &ConnectorState) -> ConnectorStatus {
        if self.online {
            c.status
        } else {
            ConnectorStatus::Offline
        }
    }
}

/// A read-only copy of one charger's live state.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChargerSnapshot {
    pub station_id: String,
    pub protocol: Option<Protocol>,
    pub online: bool,
    /// Connectors with their effective status (`offline` while the charger is not connected).
    pub connectors: Vec<ConnectorState>,
}

/// What [`Live::set_outbound`] installs.
type OutboundHook = Box<dyn Fn(&Event) + Send + Sync>;

/// The in-memory network: every charger's connectors and every station's counters.
pub struct Live {
    hasher: RandomState,
    shards: Box<[RwLock<HashMap<String, ChargerLive>>]>,
    stations: RwLock<HashMap<String, Arc<StationCounters>>>,
    events: broadcast::Sender<Event>,
    /// Sees every event published on this node (not those applied from another node), to
    /// hand them on to the cluster; unset on a single node.
    outbound: OnceLock<OutboundHook>,
    clock: Clock,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

// A poisoned lock only means another thread panicked while holding it; the maps stay
// structurally valid, so keep serving rather than take the whole network down.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Live {
    pub fn new() -> Self {
        Self::with_clock(Clock::real())
    }

    /// A network on `clock` (the demo's simulated time).
    pub fn with_clock(clock: Clock) -> Self {
        let (events, _) = broadcast::channel(4096);
        Live {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            stations: RwLock::new(HashMap::new()),
            events,
            outbound: OnceLock::new(),
            clock,
        }
    }

    /// The platform's current time: what every component stamps and compares with.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn shard(&self, charger_id: &str) -> &RwLock<HashMap<String, ChargerLive>> {
        &self.shards[(self.hasher.hash_one(charger_id) as usize) % SHARDS]
    }

    fn station_counters(&self, station_id: &str) -> Arc<StationCounters> {
        if let Some(c) = read(&self.stations).get(station_id) {
            return c.clone();
        }
        write(&self.stations)
            .entry(station_id.to_owned())
            .or_default()
            .clone()
    }

    /// Makes a station known so that it is listed with zero connectors.
    pub fn add_station(&self, station_id: &str) {
        self.station_counters(station_id);
    }

    /// Loads or re-homes a charger (at startup from the store, or when registered). Keeps the
    /// connectors it had; a charger starts offline.
    pub fn upsert_charger(
        &self,
        charger_id: &str,
        station_id: &str,
        protocol: Option<Protocol>,
        connectors: Vec<ConnectorState>,
    ) {
        let station = self.station_counters(station_id);
        let mut shard = write(self.shard(charger_id));
        if let Some(old) = shard.remove(charger_id) {
            for c in &old.connectors {
                old.station.add(old.effective(c), -1);
            }
            old.station.chargers.fetch_sub(1, Ordering::Relaxed);
        }
        let live = ChargerLive {
            station_id: Arc::from(station_id),
            station,
            protocol,
            online: false,
            connectors,
        };
        for c in &live.connectors {
            live.station.add(live.effective(c), 1);
        }
        live.station.chargers.fetch_add(1, Ordering::Relaxed);
        shard.insert(charger_id.to_owned(), live);
    }

    pub fn station_of(&self, charger_id: &str) -> Option<String> {
        read(self.shard(charger_id))
            .get(charger_id)
            .map(|c| c.station_id.to_string())
    }

    /// Marks a charger connected or not; connector counters move between their last reported
    /// status and `offline`. Returns false when the charger is unknown.
    pub fn set_online(&self, charger_id: &str, online: bool, protocol: Option<Protocol>) -> bool {
        let mut shard = write(self.shard(charger_id));
        let Some(live) = shard.get_mut(charger_id) else {
            return false;
        };
        if protocol.is_some() {
            live.protocol = protocol;
        }
        if live.online != online {
            for c in &live.connectors {
                live.station.add(live.effective(c), -1);
            }
            live.online = online;
            for c in &live.connectors {
                live.station.add(live.effective(c), 1);
            }
        }
        true
    }

    /// Records a connector's status; returns the previous effective status (None for a
    /// connector seen for the first time) or `Err(())` for an unknown charger.
    pub fn set_status(
        &self,
        charger_id: &str,
        state: ConnectorState,
    ) -> Result<Option<ConnectorStatus>, UnknownCharger> {
        let mut shard = write(self.shard(charger_id));
        let live = shard.get_mut(charger_id).ok_or(UnknownCharger)?;
        let online = live.online;
        let eff = |s: ConnectorStatus| if online { s } else { ConnectorStatus::Offline };
        let pos = live
            .connectors
            .iter()
            .position(|c| c.evse_id == state.evse_id && c.connector_id == state.connector_id);
        let previous = match pos {
            Some(i) => {
                let prev = eff(live.connectors[i].status);
                live.station.add(prev, -1);
                live.station.add(eff(state.status), 1);
                live.connectors[i] = state;
                Some(prev)
            }
            None => {
                live.station.add(eff(state.status), 1);
                live.connectors.push(state);
                live.connectors.sort_by_key(|c| (c.evse_id, c.connector_id));
                None
            }
        };
        Ok(previous)
    }

    /// The last reported (not effective) status of one connector.
    pub fn connector(
        &self,
        charger_id: &str,
        evse_id: u32,
        connector_id: u32,
    ) -> Option<ConnectorState> {
        read(self.shard(charger_id)).get(charger_id).and_then(|l| {
            l.connectors
                .iter()
                .find(|c| c.evse_id == evse_id && c.connector_id == connector_id)
                .cloned()
        })
    }

    pub fn snapshot(&self, charger_id: &str) -> Option<ChargerSnapshot> {
        read(self.shard(charger_id))
            .get(charger_id)
            .map(|l| ChargerSnapshot {
                station_id: l.station_id.to_string(),
                protocol: l.protocol,
                online: l.online,
                connectors: l
                    .connectors
                    .iter()
                    .map(|c| ConnectorState {
                        status: l.effective(c),
                        ..c.clone()
                    })
                    .collect(),
            })
    }

    pub fn station_counts(&self, station_id: &str) -> Option<StatusCounts> {
        read(&self.stations).get(station_id).map(|c| c.snapshot())
    }

    /// Records how many cars wait at a station; returns false for an unknown station.
    pub fn set_waiting(&self, station_id: &str, waiting: u64) -> bool {
        let Some(c) = read(&self.stations).get(station_id).cloned() else {
            return false;
        };
        let previous = c.waiting.swap(waiting as i64, Ordering::Relaxed);
        if previous != waiting as i64 {
            self.publish(Event::QueueChanged {
                station_id: station_id.to_owned(),
                waiting,
                at: self.now(),
            });
        }
        true
    }

    /// Takes another node's count of cars waiting at a station: kept, and told to this
    /// node's bus only ([`Live::publish_remote`]).
    pub fn set_waiting_remote(&self, station_id: &str, waiting: u64, at: DateTime<Utc>) -> bool {
        let Some(c) = read(&self.stations).get(station_id).cloned() else {
            return false;
        };
        if c.waiting.swap(waiting as i64, Ordering::Relaxed) != waiting as i64 {
            self.publish_remote(Event::QueueChanged {
                station_id: station_id.to_owned(),
                waiting,
                at,
            });
        }
        true
    }

    /// Cars waiting at a station, as last observed.
    pub fn station_waiting(&self, station_id: &str) -> u64 {
        read(&self.stations)
            .get(station_id)
            .map_or(0, |c| c.waiting())
    }

    /// Number of chargers homed at a station.
    pub fn station_chargers(&self, station_id: &str) -> u64 {
        read(&self.stations)
            .get(station_id)
            .map_or(0, |c| c.chargers())
    }

    /// Every station's charger count and connector counts.
    pub fn all_station_counts(&self) -> HashMap<String, (u64, StatusCounts)> {
        read(&self.stations)
            .iter()
            .map(|(id, c)| (id.clone(), (c.chargers(), c.snapshot())))
            .collect()
    }

    /// Number of chargers connected now.
    pub fn online_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| read(s).values().filter(|c| c.online).count())
            .sum()
    }

    pub fn charger_count(&self) -> usize {
        self.shards.iter().map(|s| read(s).len()).sum()
    }

    pub fn publish(&self, event: Event) {
        if let Some(outbound) = self.outbound.get() {
            outbound(&event);
        }
        // No subscriber is not an error: nobody is watching the feed right now.
        let _ = self.events.send(event);
    }

    /// Publishes on this node's bus an event another node published first (the cluster
    /// applying a remote node's change): the outbound hook does not see it, so it never goes
    /// back out.
    pub fn publish_remote(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Sets the hook that sees every event [`Live::publish`]ed on this node, once; returns
    /// false when one is already set. It runs on the publisher's task, so it must not block.
    pub fn set_outbound(&self, hook: impl Fn(&Event) + Send + Sync + 'static) -> bool {
        self.outbound.set(Box::new(hook)).is_ok()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown charger")]
pub struct UnknownCharger;

/// Convenience for building a connector state stamped now.
pub fn connector_state(
    evse_id: u32,
    connector_id: u32,
    status: ConnectorStatus,
    raw_status: Option<String>,
    error_code: Option<String>,
    at: DateTime<Utc>,
) -> ConnectorState {
    ConnectorState {
        evse_id,
        connector_id,
        status,
        raw_status,
        error_code,
        updated_at: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(e: u32, s: ConnectorStatus) -> ConnectorState {
        connector_state(e, e, s, None, None, Utc::now())
    }

    #[test]
    fn counters_follow_status_and_online() {
        let live = Live::new();
        live.upsert_charger("CP1", "S1", None, vec![]);
        assert_eq!(live.station_counts("S1").map(|c| c.total()), Some(0));
        assert_eq!(
            live.set_status("CP1", st(1, ConnectorStatus::Available)),
            Ok(None)
        );
        assert_eq!(live.station_counts("S1").map(|c| c.offline), Some(1));
        live.set_online("CP1", true, Some(Protocol::Ocpp16));
        let c = live.station_counts("S1").unwrap_or_default();
        assert_eq!((c.available, c.offline), (1, 0));
        assert_eq!(
            live.set_status("CP1", st(1, ConnectorStatus::Charging)),
            Ok(Some(ConnectorStatus::Available))
        );
        live.set_status("CP1", st(2, ConnectorStatus::Faulted)).ok();
        let c = live.station_counts("S1").unwrap_or_default();
        assert_eq!((c.charging, c.faulted, c.total()), (1, 1, 2));
        live.set_online("CP1", false, None);
        let c = live.station_counts("S1").unwrap_or_default();
        assert_eq!((c.offline, c.total()), (2, 2));
        let snap = live.snapshot("CP1").unwrap();
        assert!(
            snap.connectors
                .iter()
                .all(|c| c.status == ConnectorStatus::Offline)
        );
        assert_eq!(
            live.set_status("nope", st(1, ConnectorStatus::Available)),
            Err(UnknownCharger)
        );
    }

    #[test]
    fn rehoming_moves_counts() {
        let live = Live::new();
        live.upsert_charger("CP1", "S1", None, vec![st(1, ConnectorStatus::Available)]);
        live.upsert_charger("CP1", "S2", None, vec![st(1, ConnectorStatus::Available)]);
        assert_eq!(live.station_counts("S1").map(|c| c.total()), Some(0));
        assert_eq!(live.station_counts("S2").map(|c| c.total()), Some(1));
        assert_eq!(
            (live.station_chargers("S1"), live.station_chargers("S2")),
            (0, 1)
        );
    }
}
