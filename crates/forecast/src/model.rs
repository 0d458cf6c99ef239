//! The forecaster: hourly occupancy (and arrivals) of one site for the hours after an origin.
//!
//! Occupancy in an hour after the origin is split into two parts that behave differently:
//! - **continuation** of the sessions running at the origin. Their elapsed time is known, their
//!   end is not; the site's recent session durations give the conditional survival
//!   `P(still running at t | running for e)`, integrated over each hour. This is what makes the
//!   night after a midnight origin and the first hours of any origin nearly exact.
//! - **fresh** occupancy from sessions that will start after the origin, estimated from
//!   analog days: what sessions started after the same time of day produced on the last few
//!   days of the same class (same weekday, or holiday; see [`crate::calendar`]) and on the
//!   last seven days of any class. A calendar-relative day (a day of a long holiday block or
//!   shortly before or after one, see [`Calendar::earlier_occurrences`]) whose same relative day
//!   of earlier years is in the history takes both analogs from those days instead, scaled by the
//!   site's change in level on ordinary days since then.
//!
//! The forecast is `b_r * continuation + b_w * fresh(same class) + b_d * fresh(last week)`,
//! with the three weights fitted per site by ridge regression (shrunk towards `1, 0.5, 0.5`) on
//! the site's own past origins, one a day over the training window: a 3x3 linear solve, no
//! iterative optimisation. The P90 adds the 90% quantile of the fit's residuals scaled by
//! `sqrt(forecast + delta)` (residual spread grows with the level on zero-heavy series).
//! Arrivals use the same machinery without the continuation term.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::ForecastError;
use crate::calendar::{Calendar, DayClass, HOLIDAY_CLASS, SUNDAY_CLASS, YEARS_BACK};
use crate::history::{SiteHistory, hour_instant, minute_of};
use crate::queue::{self, QueueEstimate};

/// The longest horizon accepted (a leap year of hours). Beyond the first day the forecast is the
/// analog-day estimate alone, which is as good as it gets for a chosen future day.
pub const MAX_HORIZON_HOURS: usize = 8784;

/// Tuning of the forecaster; `Default` is what the evaluation uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    /// Past daily origins the weights are fitted on.
    pub train_days: usize,
    /// How far back analog days are searched.
    pub lookback_days: usize,
    /// Analog days of the same class averaged.
    pub class_analogs: usize,
    /// Recent days of any class averaged.
    pub recent_analogs: usize,
    /// Ridge strength relative to each feature's energy.
    pub ridge: f64,
    /// Prior weights (continuation, same class, recent days).
    pub prior: [f64; 3],
    /// Added to the forecast under the square root that scales residuals (occupancy).
    pub spread_floor: f64,
    /// The same for arrivals (counts).
    pub arrivals_spread_floor: f64,
    /// Quantile of the scaled residuals used for the P90.
    pub upper_quantile: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            train_days: 28,
            lookback_days: 28,
            class_analogs: 4,
            recent_analogs: 7,
            ridge: 0.2,
            prior: [1.0, 0.5, 0.5],
            spread_floor: 0.01,
            arrivals_spread_floor: 0.1,
            upper_quantile: 0.9,
        }
    }
}

/// A median and a 90th percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p90: f64,
}

/// The forecast of one hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourForecast {
    /// Start of the hour.
    pub at: DateTime<Utc>,
    /// Occupancy rate in [0, 1]: busy connector-minutes over 60 x connectors.
    pub occupancy: Quantiles,
    /// The same as busy connectors (occupancy x connectors).
    pub busy_connectors: Quantiles,
    /// Sessions starting in the hour.
    pub arrivals: Quantiles,
    /// Erlang C estimate from the median busy connectors.
    pub queue: QueueEstimate,
    /// Erlang C estimate from the P90 busy connectors (a bad but plausible hour).
    pub queue_p90: QueueEstimate,
}

/// What the fit found, for diagnostics and the plan pages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitSummary {
    /// Fitted weights (continuation, same class, recent days) for occupancy, one set per
    /// horizon group ([`HORIZON_GROUPS`]).
    pub occupancy_weights: Vec<[f64; 3]>,
    pub arrivals_weights: Vec<[f64; 3]>,
    /// Training rows used (0 when the history was too short and the prior was used).
    pub rows: usize,
    /// Mean session duration in hours over the survival window.
    pub mean_service_hours: f64,
    /// Sessions running at the origin.
    pub running_at_origin: usize,
}

/// A site's forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteForecast {
    pub site: String,
    pub connectors: u32,
    pub origin: DateTime<Utc>,
    pub hours: Vec<HourForecast>,
    pub fit: FitSummary,
}

/// Forecasts the `horizon_hours` hours after `origin` (floored to the hour) for one site with
/// the default configuration. The model sees only sessions that started before the origin, each
/// known only up to the origin. Horizon must be 1..=[`MAX_HORIZON_HOURS`]. A site with no
/// sessions in its history forecasts zero occupancy and arrivals.
pub fn forecast(
    history: &SiteHistory,
    origin: DateTime<Utc>,
    horizon_hours: usize,
    calendar: &Calendar,
) -> Result<SiteForecast, ForecastError> {
    forecast_with(
        history,
        origin,
        horizon_hours,
        calendar,
        &ModelConfig::default(),
    )
}

/// [`forecast`] with an explicit configuration.
pub fn forecast_with(
    history: &SiteHistory,
    origin: DateTime<Utc>,
    horizon_hours: usize,
    calendar: &Calendar,
    cfg: &ModelConfig,
) -> Result<SiteForecast, ForecastError> {
    if horizon_hours == 0 || horizon_hours > MAX_HORIZON_HOURS {
        return Err(ForecastError::InvalidHorizon(horizon_hours));
    }
    if history.connectors == 0 {
        return Err(ForecastError::NoConnectors);
    }
    let origin_hour = minute_of(&origin).div_euclid(60);
    let prep = Prepared::new(history, origin_hour, horizon_hours, calendar, cfg);
    let occ_fit: Vec<_> = HORIZON_GROUPS
        .iter()
        .map(|&g| prep.fit(Target::Occupancy, g, cfg))
        .collect();
    let arr_fit: Vec<_> = HORIZON_GROUPS
        .iter()
        .map(|&g| prep.fit(Target::Arrivals, g, cfg))
        .collect();
    let rows = occ_fit.iter().map(|f| f.2).sum();
    let c = f64::from(history.connectors);
    let service = prep.survival.mean_hours();
    let mut hours = Vec::with_capacity(horizon_hours);
    for h in 1..=horizon_hours {
        let x = prep.features(Target::Occupancy, 0, h);
        let (occ_w, occ_q, _) = occ_fit[group_of(h)];
        let (arr_w, arr_q, _) = arr_fit[group_of(h)];
        let occ = predict(&occ_w, &x).clamp(0.0, 1.0);
        let occ90 = upper(occ, occ_q, cfg.spread_floor).min(1.0);
        let xa = prep.features(Target::Arrivals, 0, h);
        let arr = predict(&arr_w, &xa).max(0.0);
        let arr90 = upper(arr, arr_q, cfg.arrivals_spread_floor);
        hours.push(HourForecast {
            at: hour_instant(origin_hour + h as i64 - 1),
            occupancy: Quantiles {
                p50: occ,
                p90: occ90,
            },
            busy_connectors: Quantiles {
                p50: occ * c,
                p90: occ90 * c,
            },
            arrivals: Quantiles {
                p50: arr,
                p90: arr90,
            },
            queue: queue::estimate(history.connectors, occ * c, service),
            queue_p90: queue::estimate(history.connectors, occ90 * c, service),
        });
    }
    Ok(SiteForecast {
        site: history.site.clone(),
        connectors: history.connectors,
        origin: hour_instant(origin_hour),
        hours,
        fit: FitSummary {
            occupancy_weights: occ_fit.iter().map(|f| f.0).collect(),
            arrivals_weights: arr_fit.iter().map(|f| f.0).collect(),
            rows,
            mean_service_hours: service,
            running_at_origin: prep.running_at_origin,
        },
    })
}

/// Horizons sharing one set of weights and one residual quantile (inclusive ranges); horizons
/// past the last group use the last group's.
pub const HORIZON_GROUPS: [(usize, usize); 4] = [(1, 3), (4, 8), (9, 16), (17, 24)];

fn group_of(h: usize) -> usize {
    HORIZON_GROUPS
        .iter()
        .position(|&(a, b)| (a..=b).contains(&h))
        .unwrap_or(HORIZON_GROUPS.len() - 1)
}

fn predict(w: &[f64; 3], x: &[f64; 3]) -> f64 {
    let y = w[0] * x[0] + w[1] * x[1] + w[2] * x[2];
    if y.is_finite() { y } else { 0.0 }
}

fn upper(p50: f64, q: f64, floor: f64) -> f64 {
    let v = p50 + q * (p50 + floor).sqrt();
    if v.is_finite() { v.max(p50) } else { p50 }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Occupancy,
    Arrivals,
}

/// Everything the fit and the forecast need, computed once per site and origin.
struct Prepared {
    origin: i64,
    /// First hour of `occ`/`arr` and of the class table.
    base: i64,
    occ: Vec<f64>,
    arr: Vec<f64>,
    /// `fresh_occ[j-1][h-1]`: occupancy at hour h after `origin - 24j` from sessions started
    /// after `origin - 24j`.
    fresh_occ: Vec<[f64; 24]>,
    fresh_arr: Vec<[f64; 24]>,
    /// `continuation[k][h-1]` for origins `origin - 24k`, k = 0..=train_days, h = 1..=24.
    continuation: Vec<[f64; 24]>,
    /// Continuation beyond 24 hours at the real origin (decays to nothing).
    continuation_far: Vec<f64>,
    /// Day class of each hour from `base` to the end of the horizon.
    class: Vec<DayClass>,
    /// Whether each of those hours is on a calendar day (holiday or make-up working day).
    special: Vec<bool>,
    /// For each hour from `origin - 24 * train_days` to the end of the horizon on a
    /// calendar-relative day: the shifts in days to the same relative day of the same holiday
    /// in earlier years whose history is on record, with the year index (0 = last year).
    earlier: Vec<Vec<(usize, i64)>>,
    /// First hour of `earlier`.
    earlier_base: i64,
    /// Fresh occupancy and arrivals of the day blocks `origin - 24j` the earlier occurrences
    /// need, by `j`.
    far_fresh: HashMap<usize, ([f64; 24], [f64; 24])>,
    /// Plain occupancy and arrivals of far hours (analogs beyond the first day), by hour.
    far_plain: HashMap<i64, (f64, f64)>,
    /// Level now over level a year (two years) earlier on ordinary days, (occupancy, arrivals).
    level_ratio: [(f64, f64); YEARS_BACK],
    survival: Durations,
    running_at_origin: usize,
    train_days: usize,
    class_analogs: usize,
    recent_analogs: usize,
}

impl Prepared {
    fn new(
        history: &SiteHistory,
        origin: i64,
        horizon: usize,
        calendar: &Calendar,
        cfg: &ModelConfig,
    ) -> Self {
        let blocks = cfg.train_days + cfg.lookback_days;
        let base = origin - 24 * blocks as i64;
        let cut = origin * 60;
        let occ = history.occupancy(base, origin, cut);
        let arr = history.arrivals(base, origin, cut);
        let mut fresh_occ = Vec::with_capacity(blocks);
        let mut fresh_arr = Vec::with_capacity(blocks);
        for j in 1..=blocks {
            let b = origin - 24 * j as i64;
            let o = history.occupancy_from(b, b + 24, (b * 60, (b + 24) * 60), cut);
            let a = history.arrivals(b, b + 24, cut);
            fresh_occ.push(to_day(&o));
            fresh_arr.push(to_day(&a));
        }
        let local_offset = i64::from(
            calendar
                .zone()
                .offset_at(hour_instant(origin))
                .local_minus_utc(),
        ) / 60;
        let survival = Durations::new(history.completed(base * 60, cut), local_offset);
        let c = f64::from(history.connectors.max(1));
        let mut continuation = Vec::with_capacity(cfg.train_days + 1);
        let mut running_at_origin = 0;
        for k in 0..=cfg.train_days {
            let b = (origin - 24 * k as i64) * 60;
            let running = history.running_at(b);
            if k == 0 {
                running_at_origin = running.len();
            }
            let mut day = [0.0; 24];
            for (h, v) in day.iter_mut().enumerate() {
                let s: f64 = running
                    .iter()
                    .map(|&e| {
                        survival.busy_minutes(b - e, e, 60.0 * h as f64, 60.0 * (h + 1) as f64)
                    })
                    .sum();
                *v = (s / (60.0 * c)).min(1.0);
            }
            continuation.push(day);
        }
        let running = history.running_at(cut);
        let continuation_far = (24..horizon.min(24 * 14))
            .map(|h| {
                let s: f64 = running
                    .iter()
                    .map(|&e| {
                        survival.busy_minutes(cut - e, e, 60.0 * h as f64, 60.0 * (h + 1) as f64)
                    })
                    .sum();
                (s / (60.0 * c)).min(1.0)
            })
            .collect();
        let zone = calendar.zone();
        let dates: Vec<_> = (base..origin + horizon as i64)
            .map(|hr| zone.to_local(hour_instant(hr)).date())
            .collect();
        let class = dates.iter().map(|&d| calendar.class(d)).collect();
        let special = dates.iter().map(|&d| calendar.kind(d).is_some()).collect();
        let earlier_base = origin - 24 * cfg.train_days as i64;
        let first_hour = history
            .first_start()
            .map_or(i64::MAX, |m| m.div_euclid(60) + 24);
        let mut memo: HashMap<NaiveDate, Vec<i64>> = HashMap::new();
        let mut earlier = Vec::new();
        let mut far_fresh = HashMap::new();
        let mut far_plain = HashMap::new();
        if !calendar.is_empty() {
            for (i, &date) in dates
                .iter()
                .enumerate()
                .skip((earlier_base - base) as usize)
            {
                let hour = base + i as i64;
                let shifts = memo.entry(date).or_insert_with(|| {
                    calendar
                        .earlier_occurrences(date)
                        .into_iter()
                        .map(|d| (date - d).num_days())
                        .collect()
                });
                let mut row = Vec::new();
                for (y, &s) in shifts.iter().enumerate() {
                    let analog = hour - 24 * s;
                    if analog < first_hour || analog >= origin {
                        continue;
                    }
                    if hour < origin + 24 {
                        // The target of origin `k` days back at horizon h <= 24: the block
                        // `origin - 24 (k + s)`, any origin k that reaches this hour.
                        let k_min = (origin - hour).div_euclid(24).max(0);
                        for k in [k_min, k_min + 1] {
                            let j = (k + s) as usize;
                            let b = origin - 24 * j as i64;
                            far_fresh.entry(j).or_insert_with(|| {
                                let o =
                                    history.occupancy_from(b, b + 24, (b * 60, (b + 24) * 60), cut);
                                let a = history.arrivals(b, b + 24, cut);
                                (to_day(&o), to_day(&a))
                            });
                        }
                    }
                    if hour >= origin + 24 {
                        far_plain.entry(analog).or_insert_with(|| {
                            let o = history.occupancy(analog, analog + 1, cut);
                            let a = history.arrivals(analog, analog + 1, cut);
                            (
                                o.first().copied().unwrap_or(0.0),
                                a.first().copied().unwrap_or(0.0),
                            )
                        });
                    }
                    row.push((y, s));
                }
                earlier.push(row);
            }
        }
        let mut level_ratio = [(1.0, 1.0); YEARS_BACK];
        if earlier.iter().any(|r| !r.is_empty()) {
            let ordinary = |d: NaiveDate| calendar.kind(d).is_none() && !calendar.is_relative(d);
            let level = |occ: &[f64], arr: &[f64], from: i64| {
                let (mut so, mut sa, mut n) = (0.0, 0.0, 0usize);
                for (i, (o, a)) in occ.iter().zip(arr).enumerate() {
                    if ordinary(zone.to_local(hour_instant(from + i as i64)).date()) {
                        so += o;
                        sa += a;
                        n += 1;
                    }
                }
                (n > 0).then(|| (so / n as f64, sa / n as f64))
            };
            let now = level(&occ, &arr, base);
            for (y, r) in level_ratio.iter_mut().enumerate() {
                let from = base - 24 * 364 * (y as i64 + 1);
                if from < first_hour {
                    continue;
                }
                let to = origin - 24 * 364 * (y as i64 + 1);
                let then = level(
                    &history.occupancy(from, to, cut),
                    &history.arrivals(from, to, cut),
                    from,
                );
                if let (Some(n), Some(t)) = (now, then) {
                    let ratio = |a: f64, b: f64| {
                        if b > 1e-9 {
                            (a / b).clamp(0.5, 2.0)
                        } else {
                            1.0
                        }
                    };
                    *r = (ratio(n.0, t.0), ratio(n.1, t.1));
                }
            }
        }
        Self {
            origin,
            base,
            occ,
            arr,
            fresh_occ,
            fresh_arr,
            continuation,
            continuation_far,
            class,
            special,
            earlier,
            earlier_base,
            far_fresh,
            far_plain,
            level_ratio,
            survival,
            running_at_origin,
            train_days: cfg.train_days,
            class_analogs: cfg.class_analogs,
            recent_analogs: cfg.recent_analogs,
        }
    }

    fn exceptional(&self, hour: i64) -> bool {
        self.special
            .get((hour - self.base) as usize)
            .copied()
            .unwrap_or(false)
    }

    fn class_of(&self, hour: i64) -> DayClass {
        self.class
            .get((hour - self.base) as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The analog value at shift `s` days for the origin `k` days back and horizon `h`:
    /// fresh occupancy for the first day, plain occupancy beyond.
    fn analog(&self, target: Target, k: usize, s: usize, h: usize) -> Option<f64> {
        let j = k + s;
        if h <= 24 {
            let day = match target {
                Target::Occupancy => self.fresh_occ.get(j.checked_sub(1)?)?,
                Target::Arrivals => self.fresh_arr.get(j.checked_sub(1)?)?,
            };
            Some(day[h - 1])
        } else {
            let hour = self.origin - 24 * j as i64 + h as i64 - 1;
            if hour >= self.origin || hour < self.base {
                return None;
            }
            let i = (hour - self.base) as usize;
            match target {
                Target::Occupancy => self.occ.get(i).copied(),
                Target::Arrivals => self.arr.get(i).copied(),
            }
        }
    }

    /// For a calendar-relative target hour with earlier occurrences on record: the mean of the
    /// same relative hour in earlier years, each scaled by the level ratio of its year.
    fn earlier_mean(&self, target: Target, k: usize, h: usize) -> Option<f64> {
        let hour = self.origin - 24 * k as i64 + h as i64 - 1;
        let row = self
            .earlier
            .get(usize::try_from(hour - self.earlier_base).ok()?)?;
        let mut sum = 0.0;
        let mut n = 0;
        for &(y, s) in row {
            let v = if h <= 24 {
                let (o, a) = self.far_fresh.get(&(k + s as usize))?;
                match target {
                    Target::Occupancy => o[h - 1],
                    Target::Arrivals => a[h - 1],
                }
            } else {
                let (o, a) = self.far_plain.get(&(hour - 24 * s))?;
                match target {
                    Target::Occupancy => *o,
                    Target::Arrivals => *a,
                }
            };
            let (ro, ra) = self.level_ratio[y];
            sum += v * match target {
                Target::Occupancy => ro,
                Target::Arrivals => ra,
            };
            n += 1;
        }
        (n > 0).then(|| sum / n as f64)
    }

    /// Mean of up to `n` most recent analogs whose day matches.
    fn analog_mean(
        &self,
        target: Target,
        k: usize,
        h: usize,
        matches: Match,
        n: usize,
    ) -> Option<f64> {
        let target_hour = self.origin - 24 * k as i64 + h as i64 - 1;
        let first = h.div_ceil(24).max(1);
        let mut sum = 0.0;
        let mut count = 0;
        let mut s = first;
        while count < n {
            let hour = target_hour - 24 * s as i64;
            if hour < self.base {
                break;
            }
            let class = self.class_of(hour);
            let ok = match matches {
                Match::Class(c) => class == c,
                Match::RestDay(rest) => is_rest_day(class) == rest,
                Match::Any => true,
            };
            if ok {
                match self.analog(target, k, s, h) {
                    Some(v) => {
                        sum += v;
                        count += 1;
                    }
                    None => break,
                }
            }
            s += 1;
        }
        (count > 0).then(|| sum / count as f64)
    }

    /// Features (continuation, same-class fresh mean, recent fresh mean) for the origin `k`
    /// days back and horizon `h`.
    fn features(&self, target: Target, k: usize, h: usize) -> [f64; 3] {
        let cont = match target {
            Target::Arrivals => 0.0,
            Target::Occupancy if h <= 24 => self.continuation.get(k).map_or(0.0, |d| d[h - 1]),
            Target::Occupancy => self.continuation_far.get(h - 25).copied().unwrap_or(0.0),
        };
        // A calendar-relative day (a holiday or a day around a long holiday block) with the same
        // relative day of earlier years on record takes both analogs from those years.
        if let Some(v) = self.earlier_mean(target, k, h) {
            return [cont, v, v];
        }
        let target_hour = self.origin - 24 * k as i64 + h as i64 - 1;
        let class = self.class_of(target_hour);
        // Recent days of any kind, except for exceptional days (holidays, make-up working
        // days), whose recent analogs are days of the same kind (rest or working).
        let recent_match = if class == HOLIDAY_CLASS || self.exceptional(target_hour) {
            Match::RestDay(is_rest_day(class))
        } else {
            Match::Any
        };
        let recent = self
            .analog_mean(target, k, h, recent_match, self.recent_analogs)
            .unwrap_or(0.0);
        let same = self
            .analog_mean(target, k, h, Match::Class(class), self.class_analogs)
            .or_else(|| {
                (class == HOLIDAY_CLASS)
                    .then(|| {
                        self.analog_mean(
                            target,
                            k,
                            h,
                            Match::Class(SUNDAY_CLASS),
                            self.class_analogs,
                        )
                    })
                    .flatten()
            })
            .unwrap_or(recent);
        [cont, same, recent]
    }

    fn observed(&self, target: Target, k: usize, h: usize) -> Option<f64> {
        let hour = self.origin - 24 * k as i64 + h as i64 - 1;
        if hour >= self.origin || hour < self.base {
            return None;
        }
        let i = (hour - self.base) as usize;
        match target {
            Target::Occupancy => self.occ.get(i).copied(),
            Target::Arrivals => self.arr.get(i).copied(),
        }
    }

    /// Fits the weights on past daily origins; returns weights, the residual quantile for the
    /// P90 and the number of rows.
    fn fit(
        &self,
        target: Target,
        (h_from, h_to): (usize, usize),
        cfg: &ModelConfig,
    ) -> ([f64; 3], f64, usize) {
        let mut xs = Vec::with_capacity(self.train_days * 24);
        let mut ys = Vec::with_capacity(self.train_days * 24);
        for k in 1..=self.train_days {
            for h in h_from..=h_to {
                if let Some(y) = self.observed(target, k, h) {
                    xs.push(self.features(target, k, h));
                    ys.push(y);
                }
            }
        }
        let mut prior = cfg.prior;
        if target == Target::Arrivals {
            prior[0] = 0.0;
        }
        let floor = match target {
            Target::Occupancy => cfg.spread_floor,
            Target::Arrivals => cfg.arrivals_spread_floor,
        };
        let w = if xs.len() >= 2 * (h_to - h_from + 1) {
            ridge(&xs, &ys, prior, cfg.ridge)
        } else {
            prior
        };
        let mut scaled: Vec<f64> = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| {
                let f = predict(&w, x).max(0.0);
                (y - f) / (f + floor).sqrt()
            })
            .collect();
        let q = quantile(&mut scaled, cfg.upper_quantile).max(0.0);
        let q = if ys.iter().all(|&y| y == 0.0) { 0.0 } else { q };
        (w, q, xs.len())
    }
}

/// Which analog days count.
#[derive(Debug, Clone, Copy)]
enum Match {
    /// The same class (weekday, or holiday).
    Class(DayClass),
    /// The same kind of day: rest days (Saturday, Sunday, holidays) or working days.
    RestDay(bool),
    Any,
}

fn is_rest_day(class: DayClass) -> bool {
    class >= 5
}

fn to_day(v: &[f64]) -> [f64; 24] {
    let mut d = [0.0; 24];
    for (a, b) in d.iter_mut().zip(v) {
        *a = *b;
    }
    d
}

/// The `q` quantile (nearest rank, linear) of `v`; 0 for an empty slice.
fn quantile(v: &mut Vec<f64>, q: f64) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Ridge regression towards `prior`: minimises `|y - Xw|^2 + sum_i lambda_i (w_i - prior_i)^2`
/// with `lambda_i = ridge * sum(x_i^2) + 1e-9`; negative weights are clipped to zero.
fn ridge(xs: &[[f64; 3]], ys: &[f64], prior: [f64; 3], ridge: f64) -> [f64; 3] {
    let mut a = [[0.0; 3]; 3];
    let mut b = [0.0; 3];
    for (x, &y) in xs.iter().zip(ys) {
        for i in 0..3 {
            b[i] += x[i] * y;
            for j in 0..3 {
                a[i][j] += x[i] * x[j];
            }
        }
    }
    for i in 0..3 {
        let lambda = ridge * a[i][i] + 1e-9;
        a[i][i] += lambda;
        b[i] += lambda * prior[i];
    }
    match solve3(a, b) {
        Some(w) => w.map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 }),
        None => prior,
    }
}

/// Gaussian elimination with partial pivoting.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-15 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for row in col + 1..3 {
            let f = a[row][col] / pivot_row[col];
            for (cell, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *cell -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// Session durations by local time of day of the start: a car plugged in at 23:00 stays longer
/// than one plugged in at noon. Buckets of three hours, falling back to all sessions when a
/// bucket has fewer than [`Durations::MIN_BUCKET`] sessions.
struct Durations {
    all: Survival,
    buckets: Vec<Survival>,
    local_offset: i64,
}

impl Durations {
    const MIN_BUCKET: usize = 30;
    const BUCKET_MINUTES: i64 = 180;

    fn new(sessions: Vec<(i64, i64)>, local_offset: i64) -> Self {
        let n = (1440 / Self::BUCKET_MINUTES) as usize;
        let mut by: Vec<Vec<i64>> = vec![Vec::new(); n];
        for &(start, d) in &sessions {
            by[Self::bucket(start, local_offset)].push(d);
        }
        Self {
            all: Survival::new(sessions.into_iter().map(|(_, d)| d).collect()),
            buckets: by.into_iter().map(Survival::new).collect(),
            local_offset,
        }
    }

    fn bucket(start: i64, offset: i64) -> usize {
        ((start + offset).rem_euclid(1440) / Self::BUCKET_MINUTES) as usize
    }

    fn mean_hours(&self) -> f64 {
        self.all.mean_hours()
    }

    /// Expected busy minutes in `[a, b)` after now of a session that started at `start`
    /// (minutes since the epoch) and has run for `e` minutes.
    fn busy_minutes(&self, start: i64, e: i64, a: f64, b: f64) -> f64 {
        let bucket = &self.buckets[Self::bucket(start, self.local_offset)];
        let s = if bucket.d.len() >= Self::MIN_BUCKET {
            bucket
        } else {
            &self.all
        };
        s.busy_minutes(e as f64, a, b)
    }
}

/// Empirical session-duration distribution, for the conditional survival of running sessions.
struct Survival {
    /// Sorted durations in minutes.
    d: Vec<f64>,
    /// prefix[i] = sum of d[..i].
    prefix: Vec<f64>,
}

impl Survival {
    fn new(durations: Vec<i64>) -> Self {
        let mut d: Vec<f64> = durations.into_iter().map(|m| m.max(0) as f64).collect();
        d.sort_by(f64::total_cmp);
        let mut prefix = Vec::with_capacity(d.len() + 1);
        prefix.push(0.0);
        for v in &d {
            prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
        }
        Self { d, prefix }
    }

    fn mean_hours(&self) -> f64 {
        if self.d.is_empty() {
            1.0
        } else {
            self.prefix[self.d.len()] / self.d.len() as f64 / 60.0
        }
    }

    /// Expected busy minutes in `[a, b)` minutes after now, for a session running for `e`
    /// minutes: `E[clamp(D - e - a, 0, b - a) | D > e]`. With too few longer sessions on
    /// record, the remaining time is taken as exponential with mean `max(e, 60)`.
    fn busy_minutes(&self, e: f64, a: f64, b: f64) -> f64 {
        let n = self.d.len();
        let above = |x: f64| self.d.partition_point(|&v| v <= x);
        let i0 = above(e);
        let alive = n - i0;
        if alive < 5 {
            let m = e.max(60.0);
            return m * ((-a / m).exp() - (-b / m).exp());
        }
        let lo = e + a;
        let len = b - a;
        let i1 = above(lo);
        let i2 = self.d.partition_point(|&v| v < lo + len);
        let partial = (self.prefix[i2] - self.prefix[i1]) - (i2 - i1) as f64 * lo;
        let full = (n - i2) as f64 * len;
        (partial + full) / alive as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_recovers_weights_and_survives_degenerate_input() {
        let xs: Vec<[f64; 3]> = (0..50)
            .map(|i| {
                let i = f64::from(i);
                [i.sin().abs(), (i * 0.3).cos().abs(), (i * 0.7).sin().abs()]
            })
            .collect();
        let ys: Vec<f64> = xs
            .iter()
            .map(|x| 0.8 * x[0] + 0.3 * x[1] + 0.1 * x[2])
            .collect();
        let w = ridge(&xs, &ys, [1.0, 0.5, 0.5], 1e-9);
        assert!(
            (w[0] - 0.8).abs() < 1e-4 && (w[1] - 0.3).abs() < 1e-4,
            "{w:?}"
        );
        // All-zero features: the prior wins, no NaN.
        let zeros = vec![[0.0; 3]; 30];
        let w = ridge(&zeros, &[0.0; 30], [1.0, 0.5, 0.5], 0.05);
        assert!(w.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn survival_integrates_remaining_time() {
        // Every session lasts exactly 90 minutes: one running for 30 has 60 left.
        let s = Survival::new(vec![90; 20]);
        assert!((s.busy_minutes(30.0, 0.0, 60.0) - 60.0).abs() < 1e-9);
        assert!((s.busy_minutes(30.0, 60.0, 120.0) - 0.0).abs() < 1e-9);
        // Half last 60, half 120: running for 30 -> all alive; second hour busy 60 for half.
        let s = Survival::new([vec![60; 10], vec![120; 10]].concat());
        assert!((s.busy_minutes(30.0, 0.0, 60.0) - 45.0).abs() < 1e-9);
        assert!((s.busy_minutes(30.0, 60.0, 120.0) - 15.0).abs() < 1e-9);
    }
}
