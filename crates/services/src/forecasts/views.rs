//! The forecasts as the platform answers for them: a station's next hours or a chosen day, the
//! congestion warnings over the network, the map's forecast layer, the best time to charge
//! (and where else), and a station's plan for a peak period.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use chargeops_core::Station;
use chargeops_forecast::plan::StationPlan;
use chargeops_forecast::{Calendar, SiteForecast};

use super::{Forecasts, MAX_HOURS, PlanRequest, connectors_of, forecasts_of, hour_of, plan_params};
use crate::{Error, Platform, Result};

fn parse_date(name: &str, v: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
        .map_err(|_| Error::invalid(format!("{name} must be a date as YYYY-MM-DD, got {v:?}")))
}

fn check_hours(hours: Option<u32>) -> Result<usize> {
    let h = hours.unwrap_or(24);
    if !(1..=MAX_HOURS).contains(&h) {
        return Err(Error::invalid(format!(
            "hours must be 1 to {MAX_HOURS}, got {h}"
        )));
    }
    Ok(h as usize)
}

async fn station(p: &Platform, id: &str) -> Result<Station> {
    p.store
        .get_station(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("station {id} not found")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Band {
    p50: f64,
    p90: f64,
}

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn band(q: chargeops_forecast::Quantiles) -> Band {
    Band {
        p50: r3(q.p50),
        p90: r3(q.p90.max(q.p50)),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HourView {
    at: DateTime<Utc>,
    /// Local wall-clock time of the hour's start.
    local: String,
    busy_connectors: Band,
    occupancy: Band,
    arrivals: Band,
    /// Mean cars waiting (P50 load, and the P90 load's).
    expected_queue: Band,
    /// Probability that an arriving car waits (P50 load, and the P90 load's).
    probability_of_queue: Band,
    expected_wait_minutes: Band,
    /// Holiday or make-up working day, when the calendar says so.
    day_kind: Option<chargeops_forecast::DayKind>,
}

fn hour_view(cal: &Calendar, h: &chargeops_forecast::HourForecast) -> HourView {
    let local = cal.zone().to_local(h.at);
    HourView {
        at: h.at,
        local: local.format("%Y-%m-%dT%H:%M").to_string(),
        busy_connectors: band(h.busy_connectors),
        occupancy: band(h.occupancy),
        arrivals: band(h.arrivals),
        expected_queue: band(chargeops_forecast::Quantiles {
            p50: h.queue.expected_queue,
            p90: h.queue_p90.expected_queue,
        }),
        probability_of_queue: band(chargeops_forecast::Quantiles {
            p50: h.queue.probability_of_queue,
            p90: h.queue_p90.probability_of_queue,
        }),
        expected_wait_minutes: band(chargeops_forecast::Quantiles {
            p50: h.queue.expected_wait_minutes.min(24.0 * 60.0),
            p90: h.queue_p90.expected_wait_minutes.min(24.0 * 60.0),
        }),
        day_kind: cal.kind(local.date()),
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ForecastQuery {
    pub hours: Option<u32>,
    pub date: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastView {
    station_id: String,
    name: String,
    connectors: u32,
    /// The forecast's origin: the start of the current hour, platform time.
    origin: DateTime<Utc>,
    generated_at: DateTime<Utc>,
    time_zone: String,
    mean_service_minutes: f64,
    /// Days of session history the fit saw.
    history_sessions: usize,
    hours: Vec<HourView>,
}

impl Forecasts {
    /// `GET /api/v1/stations/{id}/forecast?hours=24` or `?date=YYYY-MM-DD`.
    pub async fn station_forecast(
        &self,
        p: &Platform,
        id: &str,
        q: ForecastQuery,
    ) -> Result<ForecastView> {
        let id = id.to_owned();
        let st = station(p, &id).await?;
        let now = p.live.now();
        let f = self;
        let (start, end, horizon) = match (&q.date, q.hours) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("give hours or date, not both"));
            }
            (Some(d), None) => {
                let d = parse_date("date", d)?;
                f.window(now, d, d)?
            }
            (None, h) => {
                let h = check_hours(h)?;
                let origin = hour_of(now);
                (origin, origin + Duration::hours(h as i64), h)
            }
        };
        let c = connectors_of(p, &id);
        let fc = f
            .forecast_many(p.store.as_ref(), now, vec![(id.clone(), c)], horizon)
            .await?;
        let fc = fc.first().ok_or_else(|| Error::internal("no forecast"))?;
        let history_sessions = f
            .histories(p.store.as_ref(), now)
            .await?
            .site(&id, c)
            .spans()
            .len();
        Ok(ForecastView {
            station_id: id,
            name: st.name,
            connectors: fc.connectors,
            origin: fc.origin,
            generated_at: now,
            time_zone: zone_name(&f.calendar),
            mean_service_minutes: r3(60.0 * fc.fit.mean_service_hours),
            history_sessions,
            hours: fc
                .hours
                .iter()
                .filter(|h| h.at >= start && h.at < end)
                .map(|h| hour_view(&f.calendar, h))
                .collect(),
        })
    }
}

fn zone_name(cal: &Calendar) -> String {
    let off = cal.zone().offset_at(Utc::now());
    format!("{off}")
}

impl Forecasts {
    /// Every station's forecast for `hours` from now, with its store record.
    async fn all_forecasts(
        &self,
        p: &Platform,
        hours: usize,
    ) -> Result<(DateTime<Utc>, Vec<(Station, Arc<SiteForecast>)>)> {
        let now = p.live.now();
        let stations = p.store.list_stations().await?;
        let fcs = forecasts_of(p, self, now, &stations, hours).await?;
        Ok((now, stations.into_iter().zip(fcs).collect()))
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct WarningsQuery {
    pub hours: Option<u32>,
    pub min_probability: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WarningHour {
    at: DateTime<Utc>,
    local: String,
    probability_of_queue: f64,
    expected_queue: f64,
    expected_wait_minutes: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Warning {
    station_id: String,
    name: String,
    highway: Option<String>,
    direction: Option<String>,
    connectors: u32,
    /// Expected hours with a queue over the horizon (the sum of the hourly probabilities);
    /// the list is sorted by it, highest first.
    severity: f64,
    peak_probability: f64,
    peak_at: DateTime<Utc>,
    peak_expected_queue: f64,
    /// The hours whose probability of a queue reaches `min_probability`.
    hours: Vec<WarningHour>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Warnings {
    origin: DateTime<Utc>,
    generated_at: DateTime<Utc>,
    hours: usize,
    min_probability: f64,
    stations_forecast: usize,
    /// Wall time of the last fit of every station, milliseconds.
    fit_ms: Option<f64>,
    warnings: Vec<Warning>,
}

impl Forecasts {
    /// `GET /api/v1/forecast/warnings?hours=24&min_probability=0.5`
    pub async fn warnings(&self, p: &Platform, q: WarningsQuery) -> Result<Warnings> {
        let hours = check_hours(q.hours)?;
        let min_p = q.min_probability.unwrap_or(0.5);
        if !(min_p.is_finite() && (0.0..=1.0).contains(&min_p)) {
            return Err(Error::invalid("min_probability must be 0 to 1"));
        }
        let (now, all) = self.all_forecasts(p, hours).await?;
        let cal = &self.calendar;
        let mut out: Vec<Warning> = all
            .iter()
            .filter_map(|(s, f)| {
                let flagged: Vec<WarningHour> = f
                    .hours
                    .iter()
                    .filter(|h| {
                        h.queue.probability_of_queue >= min_p && h.queue.probability_of_queue > 0.0
                    })
                    .map(|h| WarningHour {
                        at: h.at,
                        local: cal
                            .zone()
                            .to_local(h.at)
                            .format("%Y-%m-%dT%H:%M")
                            .to_string(),
                        probability_of_queue: r3(h.queue.probability_of_queue),
                        expected_queue: r3(h.queue.expected_queue),
                        expected_wait_minutes: r3(h.queue.expected_wait_minutes.min(1440.0)),
                    })
                    .collect();
                if flagged.is_empty() {
                    return None;
                }
                let peak = f.hours.iter().max_by(|a, b| {
                    a.queue
                        .probability_of_queue
                        .total_cmp(&b.queue.probability_of_queue)
                })?;
                Some(Warning {
                    station_id: s.id.clone(),
                    name: s.name.clone(),
                    highway: s.highway.clone(),
                    direction: s.direction.clone(),
                    connectors: f.connectors,
                    severity: r3(f.hours.iter().map(|h| h.queue.probability_of_queue).sum()),
                    peak_probability: r3(peak.queue.probability_of_queue),
                    peak_at: peak.at,
                    peak_expected_queue: r3(peak.queue.expected_queue),
                    hours: flagged,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.severity
                .total_cmp(&a.severity)
                .then(b.peak_probability.total_cmp(&a.peak_probability))
                .then(a.station_id.cmp(&b.station_id))
        });
        Ok(Warnings {
            origin: hour_of(now),
            generated_at: now,
            hours,
            min_probability: min_p,
            stations_forecast: all.len(),
            fit_ms: self
                .last_all()
                .map(|(_, d)| (d.as_secs_f64() * 1e4).round() / 10.0),
            warnings: out,
        })
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MapQuery {
    pub hours: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MapStation {
    id: String,
    /// Probability of a queue per hour.
    p: Vec<f64>,
    /// Expected cars waiting per hour.
    q: Vec<f64>,
    /// Busy connectors per hour (P50).
    busy: Vec<f64>,
    connectors: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MapForecast {
    origin: DateTime<Utc>,
    generated_at: DateTime<Utc>,
    /// Start of each hour.
    hours: Vec<DateTime<Utc>>,
    stations: Vec<MapStation>,
}

impl Forecasts {
    /// `GET /api/v1/forecast/map?hours=24`: every station's hourly probability of a queue, compact,
    /// for the map's forecast layer.
    pub async fn map(&self, p: &Platform, q: MapQuery) -> Result<MapForecast> {
        let hours = check_hours(q.hours)?;
        let (now, all) = self.all_forecasts(p, hours).await?;
        let origin = hour_of(now);
        Ok(MapForecast {
            origin,
            generated_at: now,
            hours: (0..hours as i64)
                .map(|h| origin + Duration::hours(h))
                .collect(),
            stations: all
                .iter()
                .map(|(s, f)| MapStation {
                    id: s.id.clone(),
                    p: f.hours
                        .iter()
                        .map(|h| r3(h.queue.probability_of_queue))
                        .collect(),
                    q: f.hours.iter().map(|h| r3(h.queue.expected_queue)).collect(),
                    busy: f.hours.iter().map(|h| r3(h.busy_connectors.p50)).collect(),
                    connectors: f.connectors,
                })
                .collect(),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotView {
    at: DateTime<Utc>,
    local: String,
    probability_of_queue: f64,
    expected_wait_minutes: f64,
    free_connectors: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Alternative {
    station_id: String,
    name: String,
    relation: String,
    distance_km: f64,
    /// Mean over the next two hours, when a driver could get there.
    probability_of_queue: f64,
    free_connectors: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BestTime {
    station_id: String,
    name: String,
    origin: DateTime<Utc>,
    hours: usize,
    connectors: u32,
    now: SlotView,
    /// The three hours with the shortest expected wait, in time order.
    best: Vec<SlotView>,
    /// The three hours to avoid, in time order.
    avoid: Vec<SlotView>,
    /// A nearby station with a shorter wait soon, if there is one.
    alternative: Option<Alternative>,
    advice: String,
}

fn slot(cal: &Calendar, f: &SiteForecast, h: &chargeops_forecast::HourForecast) -> SlotView {
    SlotView {
        at: h.at,
        local: cal
            .zone()
            .to_local(h.at)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
        probability_of_queue: r3(h.queue.probability_of_queue),
        expected_wait_minutes: r3(h.queue.expected_wait_minutes.min(1440.0)),
        free_connectors: r3((f64::from(f.connectors) - h.busy_connectors.p50).max(0.0)),
    }
}

impl Forecasts {
    /// `GET /api/v1/stations/{id}/best-time?hours=24` (and the same without a token under
    /// `/api/v1/public/`): when to charge here, and where else.
    pub async fn best_time(&self, p: &Platform, id: &str, q: MapQuery) -> Result<BestTime> {
        let id = id.to_owned();
        let hours = check_hours(q.hours)?;
        let st = station(p, &id).await?;
        let now = p.live.now();
        let stations = p.store.list_stations().await?;
        let f = self;
        let neighbours = f.neighbours(&id, &stations);
        let mut ids = vec![(id.clone(), connectors_of(p, &id))];
        ids.extend(
            neighbours
                .iter()
                .map(|(s, _, _)| (s.id.clone(), connectors_of(p, &s.id))),
        );
        let fcs = f.forecast_many(p.store.as_ref(), now, ids, hours).await?;
        let mine = fcs.first().ok_or_else(|| Error::internal("no forecast"))?;
        let cal = &f.calendar;
        let key = |h: &&chargeops_forecast::HourForecast| {
            (
                (h.queue.expected_wait_minutes * 10.0).round() as i64,
                (h.busy_connectors.p50 * 100.0).round() as i64,
            )
        };
        let mut order: Vec<&chargeops_forecast::HourForecast> = mine.hours.iter().collect();
        order.sort_by_key(key);
        let mut best: Vec<_> = order.iter().take(3).copied().collect();
        best.sort_by_key(|h| h.at);
        let mut avoid: Vec<_> = order.iter().rev().take(3).copied().collect();
        avoid.sort_by_key(|h| h.at);
        let soon = |f: &SiteForecast| {
            let n = f.hours.len().clamp(1, 2);
            let p = f
                .hours
                .iter()
                .take(n)
                .map(|h| h.queue.probability_of_queue)
                .sum::<f64>()
                / n as f64;
            let free = f
                .hours
                .iter()
                .take(n)
                .map(|h| (f64::from(f.connectors) - h.busy_connectors.p50).max(0.0))
                .sum::<f64>()
                / n as f64;
            (p, free)
        };
        let (p_here, _) = soon(mine);
        let alternative = neighbours
            .iter()
            .zip(fcs.iter().skip(1))
            .map(|((s, relation, km), fc)| {
                let (p, free) = soon(fc);
                Alternative {
                    station_id: s.id.clone(),
                    name: s.name.clone(),
                    relation: (*relation).to_owned(),
                    distance_km: if km.is_finite() {
                        (km * 10.0).round() / 10.0
                    } else {
                        0.0
                    },
                    probability_of_queue: r3(p),
                    free_connectors: r3(free),
                }
            })
            .filter(|a| a.probability_of_queue < p_here)
            .min_by(|a, b| a.probability_of_queue.total_cmp(&b.probability_of_queue));
        let first = mine
            .hours
            .first()
            .ok_or_else(|| Error::internal("empty forecast"))?;
        let local = |t: DateTime<Utc>| cal.zone().to_local(t);
        let best_when: Vec<String> = best
            .iter()
            .map(|h| format!("{:02}:00", local(h.at).hour()))
            .collect();
        let mut advice = if first.queue.probability_of_queue < 0.2 {
            format!(
                "Now is a good time: a queue is unlikely ({:.0}%).",
                100.0 * first.queue.probability_of_queue
            )
        } else {
            format!(
                "A queue is likely now ({:.0}%); the quietest hours ahead start at {}.",
                100.0 * first.queue.probability_of_queue,
                best_when.join(", ")
            )
        };
        if let Some(a) = &alternative {
            if p_here >= 0.2 {
                advice.push_str(&format!(
                " Or charge at {} ({}, {:.0} km): a queue there is {:.0}% likely in the next two hours.",
                a.name,
                a.relation.replace('_', " "),
                a.distance_km,
                100.0 * a.probability_of_queue
            ));
            }
        }
        let body = BestTime {
            station_id: id,
            name: st.name,
            origin: mine.origin,
            hours,
            connectors: mine.connectors,
            now: slot(cal, mine, first),
            best: best.iter().map(|h| slot(cal, mine, h)).collect(),
            avoid: avoid.iter().map(|h| slot(cal, mine, h)).collect(),
            alternative,
            advice,
        };
        Ok(body)
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PlanQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub target_wait_minutes: Option<f64>,
    /// `p50` (default) or `p90`: which demand each hour is planned for.
    pub load: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StationPlanView)]
pub struct PlanView {
    name: String,
    highway: Option<String>,
    direction: Option<String>,
    from: NaiveDate,
    to: NaiveDate,
    origin: DateTime<Utc>,
    time_zone: String,
    #[serde(flatten)]
    plan: StationPlan,
}

impl Forecasts {
    /// `GET /api/v1/stations/{id}/plan?from=YYYY-MM-DD&to=YYYY-MM-DD`
    pub async fn station_plan(&self, p: &Platform, id: &str, q: PlanQuery) -> Result<PlanView> {
        let id = id.to_owned();
        let (Some(from), Some(to)) = (&q.from, &q.to) else {
            return Err(Error::invalid("from and to are required (YYYY-MM-DD)"));
        };
        let (from, to) = (parse_date("from", from)?, parse_date("to", to)?);
        let st = station(p, &id).await?;
        let now = p.live.now();
        let stations = p.store.list_stations().await?;
        let connectors: HashMap<String, u32> = stations
            .iter()
            .map(|s| (s.id.clone(), connectors_of(p, &s.id)))
            .collect();
        let f = self;
        let kw = f.network.station(&id).map(|s| f64::from(s.power_kw));
        let p90 = match q.load.as_deref() {
            None | Some("p50") => false,
            Some("p90") => true,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "load must be p50 or p90, got {other:?}"
                )));
            }
        };
        let params = plan_params(q.target_wait_minutes, kw, p90)?;
        let plan = f
            .plan(
                p.store.as_ref(),
                now,
                &PlanRequest {
                    station: &st,
                    stations: &stations,
                    connectors: &connectors,
                    from,
                    to,
                    params: &params,
                },
            )
            .await?;
        Ok(PlanView {
            name: st.name,
            highway: st.highway,
            direction: st.direction,
            from,
            to,
            origin: hour_of(now),
            time_zone: zone_name(&f.calendar),
            plan,
        })
    }
}
