//! Diversion: where a car facing a queue would charge soonest (here, downstream service areas
//! within its range, or the opposite side), and how often the platform suggested one and cars
//! took it.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use chargeops_core::ConnectorStatus;
use chargeops_queue::TicketState;
use chargeops_queue::diversion::{self, OptionKind, StationNow, Trip};
use chargeops_queue::estimate::{self, History};
use chargeops_queue::ticket;
use chargeops_store::TicketFilter;

use crate::{Error, ErrorKind, Result};

use super::{Book, Queue, lock, network, round1};

/// A diversion is suggested only when it saves at least this much.
const MIN_SAVING_S: f64 = 10.0 * 60.0;

/// A car at (or coming to) `station` with `range_km` left.
#[derive(Debug, Clone, Default)]
pub struct DiversionRequest {
    pub station: String,
    /// `N`, `S`, `E` or `W`: the side of the service area the car is on.
    pub direction: Option<String>,
    pub range_km: f64,
    /// Energy the car needs; the configured default otherwise.
    pub energy_kwh: Option<f64>,
}

/// The ranked options, best first, and the suggestion when one saves enough.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Diversion {
    /// The side of the service area the ranking starts from.
    pub station_id: String,
    /// The station asked about.
    pub asked: String,
    pub direction: Option<&'static str>,
    pub range_km: f64,
    pub energy_kwh: f64,
    pub options: Vec<DiversionOption>,
    pub suggestion: Option<Suggestion>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiversionOption {
    pub station_id: String,
    pub name: Option<String>,
    pub kind: OptionKind,
    pub distance_km: f64,
    pub detour_km: f64,
    pub drive_s: f64,
    pub wait_s: f64,
    pub charge_s: f64,
    pub total_s: f64,
    pub available: u64,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub station_id: String,
    pub kind: OptionKind,
    /// Against charging here.
    pub saves_s: Option<f64>,
}

/// For the operations map: queues per station, diversion suggestions given since start, and
/// how many cars took one (tickets taken through a diversion).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiversionStats {
    pub suggested: u64,
    pub taken: usize,
    pub hours: u32,
    pub queues: Vec<QueueCount>,
    pub routes: Vec<Route>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueCount {
    pub station_id: String,
    pub waiting: usize,
    pub called: usize,
}

/// Suggestions given from one station to another.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Route {
    pub from: String,
    pub to: String,
    pub suggested: u64,
}

impl Queue {
    /// What the platform knows of a station for the ranking: its wait from live counts and the
    /// queue, and its rated power.
    fn station_now(&self, book: &Book, id: &str, power_kw: f64, typical: f64) -> StationNow {
        let live = &self.platform.live;
        let c = live.station_counts(id).unwrap_or_default();
        let tickets = book.tickets(id);
        let waiting = ticket::waiting_in_order(tickets).len();
        // A called ticket takes one of the available connectors, unless its charger reserved
        // the connector (then the live counts have it as reserved already).
        let called_free = tickets
            .iter()
            .filter(|t| t.state == TicketState::Called)
            .filter(|t| match (&t.charger_id, t.connector_id) {
                (Some(ch), Some(cn)) => live
                    .connector(ch, t.evse_id.unwrap_or(cn), cn)
                    .is_none_or(|c| c.status == ConnectorStatus::Available),
                _ => true,
            })
            .count() as u64;
        let observed = live.station_waiting(id) as usize;
        let free = c.available.saturating_sub(called_free) as usize;
        let busy = (c.occupied + c.charging + c.reserved + c.available.min(called_free)) as usize;
        let h = History::fallback(typical);
        StationNow {
            wait_s: estimate::wait_from_counts(free, busy, waiting.max(observed), &h)
                .map(|e| e.wait_s),
            power_kw,
        }
    }

    /// Ranks charging here against the stations a car could reach instead, and counts the
    /// suggestion when one saves enough.
    pub async fn diversion(&self, req: DiversionRequest) -> Result<Diversion> {
        let DiversionRequest {
            station,
            direction,
            range_km,
            energy_kwh,
        } = req;
        if !(range_km.is_finite() && (0.0..=1500.0).contains(&range_km)) {
            return Err(Error::invalid(
                "range_km must be a number of km between 0 and 1500",
            ));
        }
        let config = self.config();
        let energy_kwh = energy_kwh.unwrap_or(config.energy_kwh);
        if !(energy_kwh.is_finite() && (1.0..=200.0).contains(&energy_kwh)) {
            return Err(Error::invalid("energy_kwh must be 1 to 200"));
        }
        let direction = match direction.as_deref().filter(|d| !d.is_empty()) {
            None => None,
            Some(d) => Some(
                diversion::parse_direction(d)
                    .ok_or_else(|| Error::invalid("direction must be N, S, E or W"))?,
            ),
        };
        self.station_exists(&station).await?;
        let net = network();
        let origin = diversion::origin(net, &station, direction).map_err(|e| match e {
            diversion::DiversionError::UnknownStation(_)
            | diversion::DiversionError::NotOnHighway(_) => Error::new(
                ErrorKind::Unprocessable,
                "not_on_highway",
                format!("{e}: diversion needs a highway service area of the network file"),
            ),
            other => Error::invalid(other.to_string()),
        })?;
        let trip = Trip {
            range_km,
            energy_kwh,
            speed_kmh: config.speed_kmh,
            twin_detour_km: config.twin_detour_km,
        };
        let known: HashSet<String> = self
            .platform
            .store
            .list_stations()
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let candidates: Vec<_> = diversion::candidates(net, origin, &trip)
            .into_iter()
            .filter(|c| known.contains(&c.0.id))
            .collect();
        let mut book = self.book.lock().await;
        self.ensure_loaded(&mut book).await?;
        let typical = config.typical_session_mins as f64 * 60.0;
        let ranked = diversion::rank(&candidates, &trip, |s, _| {
            self.station_now(&book, &s.id, f64::from(s.power_kw), typical)
        });
        drop(book);
        let best = diversion::best_alternative(&ranked, MIN_SAVING_S).cloned();
        let here_total = ranked
            .iter()
            .find(|c| c.kind == OptionKind::Here)
            .map(|c| c.total_s);
        if let Some(b) = &best {
            *lock(&self.suggestions)
                .entry((origin.id.clone(), b.station_id.clone()))
                .or_default() += 1;
        }
        let options = ranked
            .iter()
            .map(|c| {
                let spec = net.station(&c.station_id);
                let counts = self
                    .platform
                    .live
                    .station_counts(&c.station_id)
                    .unwrap_or_default();
                DiversionOption {
                    station_id: c.station_id.clone(),
                    name: spec.map(|s| format!("{} ({})", s.name_zh, s.name_pinyin)),
                    kind: c.kind,
                    distance_km: round1(c.distance_km),
                    detour_km: round1(c.detour_km),
                    drive_s: c.drive_s.round(),
                    wait_s: c.wait_s.round(),
                    charge_s: c.charge_s.round(),
                    total_s: c.total_s.round(),
                    available: counts.available,
                    lat: spec.map(|s| s.lat),
                    lon: spec.map(|s| s.lon),
                }
            })
            .collect();
        Ok(Diversion {
            station_id: origin.id.clone(),
            asked: station,
            direction: origin.direction.map(|d| d.as_str()),
            range_km,
            energy_kwh,
            options,
            suggestion: best.as_ref().map(|b| Suggestion {
                station_id: b.station_id.clone(),
                kind: b.kind,
                saves_s: here_total.map(|h| (h - b.total_s).round()),
            }),
            at: self.platform.now(),
        })
    }

    /// Queues per station, and diversions suggested since start and taken over the last
    /// `hours` (24 unless given).
    pub async fn diversion_stats(&self, hours: Option<u32>) -> Result<DiversionStats> {
        let hours = hours.unwrap_or(24);
        if !(1..=24 * 14).contains(&hours) {
            return Err(Error::invalid("hours must be 1 to 336"));
        }
        let since = self.platform.now() - Duration::hours(i64::from(hours));
        let taken = self
            .platform
            .store
            .list_tickets(&TicketFilter {
                since: Some(since),
                limit: Some(100_000),
                ..TicketFilter::default()
            })
            .await?
            .into_iter()
            .filter(|t| t.source == "diversion")
            .count();
        let mut book = self.book.lock().await;
        self.ensure_loaded(&mut book).await?;
        let mut queues: Vec<QueueCount> = book
            .active
            .iter()
            .map(|(s, v)| QueueCount {
                station_id: s.clone(),
                waiting: v.iter().filter(|t| t.state == TicketState::Waiting).count(),
                called: v.iter().filter(|t| t.state == TicketState::Called).count(),
            })
            .filter(|q| q.waiting + q.called > 0)
            .collect();
        drop(book);
        queues.sort_by_key(|q| std::cmp::Reverse(q.waiting));
        let (mut routes, suggested) = {
            let suggestions = lock(&self.suggestions);
            let routes: Vec<Route> = suggestions
                .iter()
                .map(|((from, to), n)| Route {
                    from: from.clone(),
                    to: to.clone(),
                    suggested: *n,
                })
                .collect();
            (routes, suggestions.values().sum::<u64>())
        };
        routes.sort_by_key(|r| std::cmp::Reverse(r.suggested));
        routes.truncate(50);
        Ok(DiversionStats {
            suggested,
            taken,
            hours,
            queues,
            routes,
            at: self.platform.now(),
        })
    }
}
