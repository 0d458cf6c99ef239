//! The forecasts service: per station, hourly busy connectors, arrivals and expected queue with
//! P50 and P90, fitted from the store's session history with `chargeops-forecast` on the
//! platform clock (simulated time in the demo), and a station's plan for a peak period.
//!
//! The history of every station (the last eight weeks and a day of sessions) is read once and
//! kept: after that only the sessions of the last hours are read again on each refresh. Fitted
//! forecasts are cached per station, origin hour and horizon for a few minutes; fitting runs
//! on a blocking thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use chargeops_core::Station;
use chargeops_core::network_file::{HUNAN, NetworkSpec, parse_network};
use chargeops_forecast::plan::{Neighbour, PlanParams, StationPlan};
use chargeops_forecast::{Calendar, SiteForecast, SiteHistory, Span, forecast};
use chargeops_store::{SessionSpan, Store};

mod views;

pub use views::{
    Alternative, Band, BestTime, ForecastQuery, ForecastView, HourView, MapForecast, MapQuery,
    MapStation, PlanQuery, PlanView, SlotView, Warning, WarningHour, Warnings, WarningsQuery,
};

use crate::{Error, Platform, Result};

/// History the model reads before an origin: 28 training days on 28 days of analogs, and a day
/// for sessions running across the start.
pub const LOOKBACK: Duration = Duration::days(57);
/// Sessions that started within this before the last full read are read again on every
/// refresh: they may have ended since.
const TAIL: Duration = Duration::hours(6);
/// A full read of the history at most this often (platform time).
const REBASE: Duration = Duration::days(1);
/// How long a read of the history or a fitted forecast is reused (wall clock).
const REFRESH: StdDuration = StdDuration::from_secs(60);
const FIT_TTL: StdDuration = StdDuration::from_secs(300);
/// A session with no end is taken to have run at most this long (a lost stop).
const MAX_OPEN: Duration = Duration::hours(24);
/// Longest horizon, hours, a forecast is asked for.
pub const MAX_HOURS: u32 = 168;
/// Furthest day ahead a forecast or plan may be asked for.
pub const MAX_DAYS_AHEAD: i64 = 366;

/// The sessions of one station as the model wants them, with its connector numbering.
#[derive(Default, Clone)]
struct StationSpans {
    keys: HashMap<(String, u32, u32), u32>,
    spans: Vec<Span>,
}

impl StationSpans {
    fn push(&mut self, s: &SessionSpan, now: DateTime<Utc>) {
        let next = self.keys.len() as u32;
        let connector = *self
            .keys
            .entry((s.charger_id.clone(), s.evse_id, s.connector_id))
            .or_insert(next);
        let end = s
            .stopped_at
            .unwrap_or(now)
            .min(s.started_at + MAX_OPEN)
            .max(s.started_at);
        self.spans.push(Span {
            connector,
            start: s.started_at.timestamp().div_euclid(60),
            end: end.timestamp().div_euclid(60),
        });
    }
}

/// Every station's sessions at one moment.
pub struct Histories {
    pub at: DateTime<Utc>,
    base: Arc<HashMap<String, StationSpans>>,
    tail: HashMap<String, StationSpans>,
}

impl Histories {
    /// Groups spans read from a store (oldest first) by station.
    pub fn from_spans(spans: &[SessionSpan], at: DateTime<Utc>) -> Histories {
        let mut base: HashMap<String, StationSpans> = HashMap::new();
        for s in spans {
            base.entry(s.station_id.clone()).or_default().push(s, at);
        }
        Histories {
            at,
            base: Arc::new(base),
            tail: HashMap::new(),
        }
    }

    /// The history of one station with at least `connectors` connectors (more when its
    /// sessions name more).
    pub fn site(&self, id: &str, connectors: u32) -> SiteHistory {
        let mut acc = self.base.get(id).cloned().unwrap_or_default();
        if let Some(t) = self.tail.get(id) {
            // Re-number the tail's connectors into the base's numbering.
            let mut map: Vec<u32> = vec![0; t.keys.len()];
            let mut keys: Vec<_> = t.keys.iter().collect();
            keys.sort_by_key(|(_, v)| **v);
            for (k, v) in keys {
                let next = acc.keys.len() as u32;
                map[*v as usize] = *acc.keys.entry(k.clone()).or_insert(next);
            }
            acc.spans.extend(t.spans.iter().map(|s| Span {
                connector: map[s.connector as usize],
                ..*s
            }));
        }
        let n = connectors.max(acc.keys.len() as u32).max(1);
        SiteHistory::new(id, n, acc.spans)
    }
}

/// Every station's sessions of the full read, by station id.
type Grouped = Arc<HashMap<String, StationSpans>>;

#[derive(Default)]
struct HistoryCache {
    base: Option<(DateTime<Utc>, Grouped)>,
    built: Option<(Instant, DateTime<Utc>, Arc<Histories>)>,
}

type FitKey = (String, i64, usize);

/// What a plan is asked for: the station, every station (for its neighbours), connector
/// counts by station id, the period (whole local days) and the sizing.
#[derive(Clone, Copy)]
pub struct PlanRequest<'a> {
    pub station: &'a Station,
    pub stations: &'a [Station],
    pub connectors: &'a HashMap<String, u32>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub params: &'a PlanParams,
}

/// The forecasting state of the platform.
pub struct Forecasts {
    pub calendar: Calendar,
    pub network: NetworkSpec,
    history: tokio::sync::Mutex<HistoryCache>,
    fits: Mutex<HashMap<FitKey, (Instant, Arc<SiteForecast>)>>,
    /// Wall time of the last fit of every station, for the warnings answer and the logs.
    last_all: Mutex<Option<(usize, StdDuration)>>,
}

impl Default for Forecasts {
    fn default() -> Self {
        Self::new(Calendar::china(), parse_network(HUNAN).unwrap_or_default())
    }
}

/// Floors an instant to its hour.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(3600) * 3600, 0).unwrap_or(t)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Forecasts {
    /// With the holiday calendar of the region and the network file that names each station's
    /// neighbours (stations it does not know get their nearest stations instead).
    pub fn new(calendar: Calendar, network: NetworkSpec) -> Self {
        Forecasts {
            calendar,
            network,
            history: tokio::sync::Mutex::new(HistoryCache::default()),
            fits: Mutex::new(HashMap::new()),
            last_all: Mutex::new(None),
        }
    }

    /// Every station's history as of `now`: a full read at most once a day, the recent tail
    /// on each refresh.
    pub async fn histories(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<Arc<Histories>> {
        let mut cache = self.history.lock().await;
        if let Some((t, at, h)) = &cache.built {
            if hour_of(*at) == hour_of(now) && t.elapsed() < REFRESH && *at <= now {
                return Ok(h.clone());
            }
        }
        let base = match &cache.base {
            Some((until, b)) if *until <= now && now - *until < REBASE => (*until, b.clone()),
            _ => {
                let until = now - TAIL;
                let t0 = Instant::now();
                let spans = store.session_spans(None, now - LOOKBACK, until).await?;
                let n = spans.len();
                let grouped =
                    tokio::task::spawn_blocking(move || Histories::from_spans(&spans, until).base)
                        .await
                        .map_err(|_| Error::internal("history grouping failed"))?;
                tracing::info!(
                    sessions = n,
                    stations = grouped.len(),
                    elapsed_ms = t0.elapsed().as_millis() as u64,
                    "forecast history read"
                );
                cache.base = Some((until, grouped.clone()));
                (until, grouped)
            }
        };
        let tail_spans = store
            .session_spans(None, base.0, now + Duration::seconds(1))
            .await?;
        let mut tail: HashMap<String, StationSpans> = HashMap::new();
        for s in &tail_spans {
            tail.entry(s.station_id.clone()).or_default().push(s, now);
        }
        let h = Arc::new(Histories {
            at: now,
            base: base.1,
            tail,
        });
        cache.built = Some((Instant::now(), now, h.clone()));
        Ok(h)
    }

    /// Forecasts of `stations` (id, connectors) for `horizon` hours from `now`, from the cache
    /// where fresh, the rest fitted on a blocking thread.
    pub async fn forecast_many(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        stations: Vec<(String, u32)>,
        horizon: usize,
    ) -> Result<Vec<Arc<SiteForecast>>> {
        let origin = hour_of(now).timestamp() / 3600;
        let mut out: Vec<Option<Arc<SiteForecast>>> = vec![None; stations.len()];
        let mut missing = Vec::new();
        {
            let fits = lock(&self.fits);
            for (i, (id, _)) in stations.iter().enumerate() {
                match fits.get(&(id.clone(), origin, horizon)) {
                    Some((t, f)) if t.elapsed() < FIT_TTL => out[i] = Some(f.clone()),
                    _ => missing.push(i),
                }
            }
        }
        if !missing.is_empty() {
            let histories = self.histories(store, now).await?;
            let todo: Vec<(usize, String, u32)> = missing
                .iter()
                .map(|&i| (i, stations[i].0.clone(), stations[i].1))
                .collect();
            let calendar = self.calendar.clone();
            let t0 = Instant::now();
            let fitted = tokio::task::spawn_blocking(move || {
                todo.into_iter()
                    .map(|(i, id, c)| {
                        let site = histories.site(&id, c);
                        (i, id, forecast(&site, now, horizon, &calendar))
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|_| Error::internal("forecast fitting failed"))?;
            let elapsed = t0.elapsed();
            let n = fitted.len();
            let mut fits = lock(&self.fits);
            fits.retain(|k, (t, _)| k.1 == origin && t.elapsed() < FIT_TTL);
            for (i, id, f) in fitted {
                let f = Arc::new(f.map_err(|e| Error::invalid(e.to_string()))?);
                fits.insert((id, origin, horizon), (Instant::now(), f.clone()));
                out[i] = Some(f);
            }
            if n > 1 {
                tracing::info!(
                    stations = n,
                    horizon,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "fitted forecasts"
                );
                *lock(&self.last_all) = Some((n, elapsed));
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The neighbouring stations of `id`: from the network file, the next two stations
    /// downstream (within 150 km) and the opposite side; otherwise the two nearest stations.
    pub fn neighbours<'a>(
        &self,
        id: &str,
        stations: &'a [Station],
    ) -> Vec<(&'a Station, &'static str, f64)> {
        let by_id: HashMap<&str, &Station> = stations.iter().map(|s| (s.id.as_str(), s)).collect();
        let me = by_id.get(id).copied();
        let dist = |a: &Station, b: &Station| match (a.lat, a.lon, b.lat, b.lon) {
            (Some(la), Some(lo), Some(lb), Some(lob)) => haversine_km((la, lo), (lb, lob)),
            _ => f64::NAN,
        };
        let mut out = Vec::new();
        if let (Some(spec), Some(me)) = (self.network.station(id), me) {
            for d in self.network.downstream(id).into_iter().take(2) {
                let km = match (spec.km, d.km) {
                    (Some(a), Some(b)) => (a - b).abs(),
                    _ => f64::NAN,
                };
                if let Some(s) = by_id.get(d.id.as_str()) {
                    let km = if km.is_finite() { km } else { dist(me, s) };
                    if km <= 150.0 || !km.is_finite() {
                        out.push((*s, "downstream", km));
                    }
                }
            }
            if let Some(t) = self.network.twin(id).and_then(|t| by_id.get(t.id.as_str())) {
                out.push((*t, "opposite_direction", dist(me, t)));
            }
            return out;
        }
        let Some(me) = me else {
            return out;
        };
        let mut near: Vec<(&Station, f64)> = stations
            .iter()
            .filter(|s| s.id != me.id)
            .map(|s| (s, dist(me, s)))
            .filter(|(_, d)| d.is_finite())
            .collect();
        near.sort_by(|a, b| a.1.total_cmp(&b.1));
        near.into_iter()
            .take(2)
            .map(|(s, d)| (s, "nearby", d))
            .collect()
    }

    /// A station's plan for `[from, to)` (whole local days), fitted at `now`. `connectors`
    /// maps station ids to their connector counts.
    pub async fn plan(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        req: &PlanRequest<'_>,
    ) -> Result<StationPlan> {
        let PlanRequest {
            station,
            stations,
            connectors,
            from,
            to,
            params,
        } = *req;
        let (start, end, horizon) = self.window(now, from, to)?;
        let neighbours = self.neighbours(&station.id, stations);
        let mut ids = vec![(
            station.id.clone(),
            connectors.get(&station.id).copied().unwrap_or(0),
        )];
        for (s, _, _) in &neighbours {
            ids.push((s.id.clone(), connectors.get(&s.id).copied().unwrap_or(0)));
        }
        let fcs = self.forecast_many(store, now, ids, horizon).await?;
        let Some(mine) = fcs.first() else {
            return Err(Error::internal("no forecast"));
        };
        let in_window = |h: &&chargeops_forecast::HourForecast| h.at >= start && h.at < end;
        // The hours this station is short, to judge its neighbours by.
        let short: Vec<DateTime<Utc>> = mine
            .hours
            .iter()
            .filter(in_window)
            .filter(|h| {
                chargeops_forecast::plan::plan_hour(
                    h,
                    mine.connectors,
                    mine.fit.mean_service_hours,
                    params,
                )
                .extra_connectors
                    > 0
            })
            .map(|h| h.at)
            .collect();
        let summaries = neighbours
            .iter()
            .zip(fcs.iter().skip(1))
            .map(|((s, relation, km), f)| {
                let hours: Vec<_> = f
                    .hours
                    .iter()
                    .filter(in_window)
                    .filter(|h| short.is_empty() || short.contains(&h.at))
                    .collect();
                let n = hours.len().max(1) as f64;
                let p = hours
                    .iter()
                    .map(|h| h.queue.probability_of_queue)
                    .sum::<f64>()
                    / n;
                let spare = hours
                    .iter()
                    .map(|h| (f64::from(f.connectors) - h.busy_connectors.p50).max(0.0))
                    .sum::<f64>()
                    / n;
                Neighbour {
                    station_id: s.id.clone(),
                    name: s.name.clone(),
                    relation: (*relation).to_owned(),
                    distance_km: if km.is_finite() {
                        (km * 10.0).round() / 10.0
                    } else {
                        0.0
                    },
                    probability_of_queue: p,
                    spare_connectors: spare,
                    recommended: p < 1.0 / 3.0 && spare >= 1.0,
                }
            })
            .collect();
        let zone = self.calendar.zone();
        let mut plan = chargeops_forecast::plan::plan(mine, start, end, params, summaries, |t| {
            zone.to_local(t).format("%a %d %b %H:%M").to_string()
        });
        plan.station_id = station.id.clone();
        Ok(plan)
    }

    /// The instants and horizon of whole local days `from..=to` seen from `now`.
    pub fn window(
        &self,
        now: DateTime<Utc>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>, usize)> {
        let zone = self.calendar.zone();
        let today = zone.to_local(now).date();
        if from > to {
            return Err(Error::invalid(format!("from ({from}) is after to ({to})")));
        }
        if to < today {
            return Err(Error::invalid(format!(
                "the period ends before today ({today}): forecasts are for today and later"
            )));
        }
        if (to - today).num_days() > MAX_DAYS_AHEAD {
            return Err(Error::invalid(format!(
                "to must be within {MAX_DAYS_AHEAD} days of today ({today})"
            )));
        }
        if (to - from).num_days() > 31 {
            return Err(Error::invalid("a period is at most 31 days"));
        }
        let origin = hour_of(now);
        let start = zone.midnight(from).max(origin);
        let end = zone.midnight(to + Duration::days(1));
        let horizon = ((end - origin).num_hours()).max(1) as usize;
        Ok((start, end, horizon))
    }

    pub fn last_all(&self) -> Option<(usize, StdDuration)> {
        *lock(&self.last_all)
    }
}

/// Great-circle distance, km, between two (lat, lon) points.
pub use chargeops_dispatch::province::great_circle_km as haversine_km;

/// The fitted forecast's arrivals per hour at station `id`, averaged over the next `minutes`
/// (each forecast hour weighted by how much of it the window covers): what fills the queue
/// while a driver is on the way. `None` for a window of zero length.
pub async fn arrivals_per_hour(
    p: &Platform,
    forecasts: &Forecasts,
    id: &str,
    minutes: f64,
) -> Result<Option<f64>> {
    if !(minutes.is_finite() && minutes > 0.0) {
        return Ok(None);
    }
    let now = p.live.now();
    let c = connectors_of(p, id);
    // The horizon of the station's default forecast, so its cached fit serves here too (a
    // window past it is averaged over the hours it covers; waits beyond a day are not asked).
    let fc = forecasts
        .forecast_many(p.store.as_ref(), now, vec![(id.to_owned(), c)], 24)
        .await?;
    let Some(fc) = fc.first() else {
        return Ok(None);
    };
    let end = now + Duration::milliseconds((minutes * 60_000.0) as i64);
    let (mut cars, mut secs) = (0.0, 0.0);
    for h in &fc.hours {
        let from = h.at.max(now);
        let to = (h.at + Duration::hours(1)).min(end);
        let overlap = (to - from).num_milliseconds() as f64 / 1000.0;
        if overlap > 0.0 {
            cars += h.arrivals.p50 * overlap / 3600.0;
            secs += overlap;
        }
    }
    Ok((secs > 0.0).then(|| cars / secs * 3600.0))
}

/// Connectors of a station as the forecasts count them.
pub fn connectors_of(p: &Platform, id: &str) -> u32 {
    let known = p.live.station_counts(id).map_or(0, |c| c.total());
    let chargers = p.live.station_chargers(id);
    u32::try_from(known.max(chargers)).unwrap_or(u32::MAX)
}

/// The forecasts of `stations` for `hours` from `now`, in their order.
pub async fn forecasts_of(
    p: &Platform,
    forecasts: &Forecasts,
    now: DateTime<Utc>,
    stations: &[Station],
    hours: usize,
) -> Result<Vec<Arc<SiteForecast>>> {
    let ids = stations
        .iter()
        .map(|s| (s.id.clone(), connectors_of(p, &s.id)))
        .collect();
    forecasts
        .forecast_many(p.store.as_ref(), now, ids, hours)
        .await
}

/// Plan parameters from a request, checked: the target wait, the station's connector power,
/// whether to plan for the P90 demand.
pub fn plan_params(
    target_wait_minutes: Option<f64>,
    connector_kw: Option<f64>,
    p90: bool,
) -> Result<PlanParams> {
    let mut p = PlanParams {
        p90,
        ..PlanParams::default()
    };
    if let Some(t) = target_wait_minutes {
        if !(t.is_finite() && (1.0..=240.0).contains(&t)) {
            return Err(Error::invalid("target_wait_minutes must be 1 to 240"));
        }
        p.target_wait_minutes = t;
    }
    if let Some(kw) = connector_kw.filter(|k| k.is_finite() && *k > 0.0) {
        p.connector_kw = kw;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(station: &str, charger: &str, start_min: i64, end_min: Option<i64>) -> SessionSpan {
        let t = |m: i64| DateTime::from_timestamp(1_800_000_000 + m * 60, 0).expect("t");
        SessionSpan {
            station_id: station.into(),
            charger_id: charger.into(),
            evse_id: 1,
            connector_id: 1,
            started_at: t(start_min),
            stopped_at: end_min.map(t),
        }
    }

    #[test]
    fn histories_number_connectors_per_station_and_merge_the_tail() {
        let now = DateTime::from_timestamp(1_800_000_000 + 600 * 60, 0).expect("t");
        let mut h = Histories::from_spans(
            &[
                span("A", "A-01", 0, Some(30)),
                span("A", "A-02", 10, Some(50)),
                span("B", "B-01", 5, None),
            ],
            now,
        );
        let mut tail = StationSpans::default();
        tail.push(&span("A", "A-03", 500, None), now);
        tail.push(&span("A", "A-01", 520, Some(540)), now);
        h.tail.insert("A".into(), tail);
        let a = h.site("A", 2);
        assert_eq!(a.connectors, 3, "a connector seen only in the tail counts");
        assert_eq!(a.spans().len(), 4);
        // The tail's A-01 has the base's number for A-01.
        let a01: Vec<_> = a.spans().iter().filter(|s| s.connector == 0).collect();
        assert_eq!(a01.len(), 2);
        // An open session runs until now, at most a day.
        let b = h.site("B", 4);
        assert_eq!(b.connectors, 4);
        assert_eq!(b.spans()[0].end - b.spans()[0].start, 595);
        assert!(h.site("C", 0).spans().is_empty());
    }

    #[test]
    fn neighbours_come_from_the_network_file() {
        let f = Forecasts::default();
        let stations: Vec<Station> = f
            .network
            .stations
            .iter()
            .map(|s| Station {
                id: s.id.clone(),
                name: s.name_pinyin.clone(),
                lat: Some(s.lat),
                lon: Some(s.lon),
                highway: s.highway.clone(),
                direction: s.direction.map(|d| d.as_str().to_owned()),
            })
            .collect();
        let n = f.neighbours("g4-changsha-s", &stations);
        assert!(
            n.iter().any(|(_, r, _)| *r == "downstream"),
            "{:?}",
            n.iter().map(|x| (&x.0.id, x.1)).collect::<Vec<_>>()
        );
        assert!(
            n.iter()
                .any(|(s, r, _)| *r == "opposite_direction" && s.id == "g4-changsha-n")
        );
        assert!(
            n.iter()
                .all(|(s, _, km)| s.id != "g4-changsha-s" && *km < 150.0)
        );
    }

    #[test]
    fn windows_check_their_dates() {
        let f = Forecasts::default();
        let now = DateTime::from_timestamp(1_801_000_000, 0).expect("t");
        let today = f.calendar.zone().to_local(now).date();
        let (start, end, h) = f.window(now, today, today).expect("today");
        assert_eq!(start, hour_of(now));
        assert!(end > start && (1..=24).contains(&h));
        let tomorrow = today + Duration::days(1);
        let (s2, e2, _) = f.window(now, tomorrow, tomorrow).expect("tomorrow");
        assert_eq!((e2 - s2).num_hours(), 24);
        assert!(f.window(now, tomorrow, today).is_err());
        assert!(
            f.window(now, today - Duration::days(3), today - Duration::days(1))
                .is_err()
        );
        assert!(f.window(now, today, today + Duration::days(400)).is_err());
    }
}
