//! Rolling-origin evaluation, exactly as the protocol says:
//! - a forecast origin at every local midnight of the last 28 days of the data (the days up to
//!   and including the local date of the last session start);
//! - the model sees only sessions that started before the origin, known only up to it;
//! - horizons 1 to 24 hours; the target is the site's hourly occupancy rate;
//! - sites with fewer than 8 weeks of history (first session to first origin) are left out
//!   and counted;
//! - errors are averaged over sites and origins per horizon: MAE is the mean absolute error,
//!   RMSE the root of the mean squared error; the "mean" row averages the 24 per-horizon values.
//!
//! Baselines are computed from the same hourly series: last value, seasonal naive 24 h and
//! 168 h, the mean of the same hour of the week over the last 4 weeks, the mean of the same
//! hour of the day over the last 28 days, and an all-zero forecast.

use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Days, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::ForecastError;
use crate::calendar::Calendar;
use crate::history::{SiteHistory, by_site, hour_instant, minute_of};
use crate::model::{ModelConfig, forecast_with};
use crate::session::Session;

/// The methods compared, in output order. `model` is ours.
pub const METHODS: [&str; 7] = [
    "model",
    "seasonal_naive_24h",
    "seasonal_naive_168h",
    "last_value",
    "mean_same_hour_4w",
    "mean_same_hour_28d",
    "zero",
];

/// Protocol parameters; `Default` is the protocol.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub calendar: Calendar,
    pub days: usize,
    pub horizon: usize,
    pub min_history_days: i64,
    pub model: ModelConfig,
    pub progress: bool,
    /// Target hours on this calendar's holidays are also scored apart (`EvalReport::holidays`),
    /// whatever calendar the model is given, so runs with and without one compare.
    pub holidays: Option<Calendar>,
}

impl EvalOptions {
    pub fn new(calendar: Calendar) -> Self {
        Self {
            calendar,
            days: 28,
            horizon: 24,
            min_history_days: 56,
            model: ModelConfig::default(),
            progress: false,
            holidays: None,
        }
    }
}

/// Errors of one method at one horizon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    pub mae: f64,
    pub rmse: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    abs: f64,
    sq: f64,
    n: usize,
}

impl Acc {
    fn add(&mut self, forecast: f64, actual: f64) {
        let e = forecast - actual;
        self.abs += e.abs();
        self.sq += e * e;
        self.n += 1;
    }
    fn score(&self) -> Score {
        if self.n == 0 {
            return Score::default();
        }
        Score {
            mae: self.abs / self.n as f64,
            rmse: (self.sq / self.n as f64).sqrt(),
        }
    }
}

/// The evaluation's result.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// `scores[h-1][m]` for method `METHODS[m]`.
    pub scores: Vec<Vec<Score>>,
    /// P90 coverage of the model per horizon.
    pub coverage: Vec<f64>,
    pub sites: usize,
    pub site_names: Vec<String>,
    pub excluded_short_history: Vec<String>,
    /// Included sites with no session in the evaluation window (all-zero targets).
    pub sites_all_zero: usize,
    pub origins: Vec<DateTime<Utc>>,
    /// Time spent fitting and forecasting, all sites and origins.
    pub fit_time: Duration,
    /// Share of target hours with occupancy exactly 0.
    pub zero_share: f64,
    /// Scores over the target hours on holidays of `EvalOptions::holidays` (all horizons
    /// together), per method, and how many site-hour targets that is; `None` without any.
    pub holidays: Option<(Vec<Score>, usize)>,
}

/// The series and origins of an evaluation, for an outside tool to score the same targets.
#[derive(Debug, Clone, Serialize)]
pub struct EvalDump {
    /// First hour of every series (UTC).
    pub start: DateTime<Utc>,
    /// Origins as offsets in hours from `start`.
    pub origins: Vec<usize>,
    pub horizon: usize,
    /// Hours of history before an origin that outside models are fitted on (8 weeks).
    pub train_hours: usize,
    pub sites: Vec<DumpSite>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DumpSite {
    pub site: String,
    pub connectors: u32,
    pub occupancy: Vec<f64>,
}

impl EvalReport {
    /// Mean over horizons of each method's per-horizon MAE and RMSE.
    pub fn mean(&self) -> Vec<Score> {
        let n = self.scores.len().max(1) as f64;
        (0..METHODS.len())
            .map(|m| Score {
                mae: self.scores.iter().map(|s| s[m].mae).sum::<f64>() / n,
                rmse: self.scores.iter().map(|s| s[m].rmse).sum::<f64>() / n,
            })
            .collect()
    }

    /// The JSON shape, with extra fields: `mean`, `p90_coverage`, `excluded_sites`,
    /// `fit_seconds`, `methods`.
    pub fn to_json(&self) -> Value {
        let methods = |scores: &[Score]| {
            let mut m = Map::new();
            for (name, s) in METHODS.iter().zip(scores) {
                m.insert((*name).into(), json!({"mae": s.mae, "rmse": s.rmse}));
            }
            m
        };
        let horizons: Vec<Value> = self
            .scores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut m = Map::new();
                m.insert("h".into(), json!(i + 1));
                m.extend(methods(s));
                m.insert("p90_coverage".into(), json!(self.coverage[i]));
                Value::Object(m)
            })
            .collect();
        let coverage = self.coverage.iter().sum::<f64>() / self.coverage.len().max(1) as f64;
        json!({
            "horizons": horizons,
            "sites": self.sites,
            "origins": self.origins.len(),
            "mean": Value::Object(methods(&self.mean())),
            "p90_coverage": coverage,
            "excluded_sites": {
                "short_history": self.excluded_short_history.len(),
                "names": self.excluded_short_history,
            },
            "sites_all_zero": self.sites_all_zero,
            "zero_share": self.zero_share,
            "first_origin": self.origins.first(),
            "last_origin": self.origins.last(),
            "holidays": self.holidays.as_ref().map(|(scores, hours)| json!({
                "site_hour_targets": hours,
                "scores": Value::Object(methods(scores)),
            })),
            "fit_seconds": self.fit_time.as_secs_f64(),
            "fit_seconds_per_origin": self.fit_time.as_secs_f64() / self.origins.len().max(1) as f64,
            "methods": METHODS,
        })
    }

    /// A plain-text table: MAE and RMSE per method for horizons 1, 3, 6, 12, 24 and the mean.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "sites {} (excluded, < 8 weeks of history: {}; all-zero in the window: {}), origins {} ({} .. {}), target hours with zero occupancy {:.0}%\n",
            self.sites,
            self.excluded_short_history.len(),
            self.sites_all_zero,
            self.origins.len(),
            self.origins
                .first()
                .map(|o| o.to_rfc3339())
                .unwrap_or_default(),
            self.origins
                .last()
                .map(|o| o.to_rfc3339())
                .unwrap_or_default(),
            100.0 * self.zero_share,
        );
        let means = self.mean();
        for (metric, pick) in [("MAE", 0), ("RMSE", 1)] {
            out.push_str(&format!("\n{metric:<6}"));
            for m in METHODS {
                out.push_str(&format!(" {:>20}", m));
            }
            out.push('\n');
            let mut row = |label: String, s: &[Score]| {
                out.push_str(&format!("{label:<6}"));
                for v in s {
                    let v = if pick == 0 { v.mae } else { v.rmse };
                    out.push_str(&format!(" {v:>20.4}"));
                }
                out.push('\n');
            };
            for h in [1usize, 3, 6, 12, 24] {
                if let Some(s) = self.scores.get(h - 1) {
                    row(format!("h={h}"), s);
                }
            }
            row("1-24".into(), &means);
        }
        if let Some((scores, hours)) = &self.holidays {
            out.push_str(&format!(
                "\non holidays ({hours} site-hour targets, all horizons):\n"
            ));
            for (metric, pick) in [("MAE", 0), ("RMSE", 1)] {
                out.push_str(&format!("{metric:<6}"));
                for v in scores {
                    let v = if pick == 0 { v.mae } else { v.rmse };
                    out.push_str(&format!(" {v:>20.4}"));
                }
                out.push('\n');
            }
        }
        let coverage = self.coverage.iter().sum::<f64>() / self.coverage.len().max(1) as f64;
        out.push_str(&format!(
            "\nmodel P90 coverage {:.1}% (h=1 {:.1}%, h=24 {:.1}%)\n",
            100.0 * coverage,
            100.0 * self.coverage.first().copied().unwrap_or(0.0),
            100.0 * self.coverage.last().copied().unwrap_or(0.0),
        ));
        out.push_str(&format!(
            "fit + forecast: {:.3} s in all, {:.1} ms per origin for {} sites\n",
            self.fit_time.as_secs_f64(),
            1e3 * self.fit_time.as_secs_f64() / self.origins.len().max(1) as f64,
            self.sites
        ));
        out
    }
}

/// Runs the protocol on a session log.
pub fn evaluate(
    sessions: &[Session],
    opts: &EvalOptions,
) -> Result<(EvalReport, EvalDump), ForecastError> {
    let zone = opts.calendar.zone();
    let last_start = sessions
        .iter()
        .map(|s| s.start.with_timezone(&Utc))
        .max()
        .ok_or_else(|| ForecastError::NoSessions(" in the session log".into()))?;
    let last_day = zone.to_local(last_start).date();
    let origins: Vec<DateTime<Utc>> = (0..opts.days as i64)
        .rev()
        .map(|back| zone.midnight(last_day - Days::days(back)))
        .collect();
    let first_origin = origins[0];
    let first_origin_min = minute_of(&first_origin);
    let sites = by_site(sessions);
    let (included, excluded): (Vec<&SiteHistory>, Vec<&SiteHistory>) =
        sites.iter().partition(|s| {
            s.first_start()
                .is_some_and(|f| first_origin_min - f >= opts.min_history_days * 24 * 60)
        });
    if included.is_empty() {
        return Err(ForecastError::NotEnoughHistory(format!(
            "no site has {} days of history before the first origin {} ({} sites excluded)",
            opts.min_history_days,
            first_origin.to_rfc3339(),
            excluded.len()
        )));
    }
    let h_max = opts.horizon;
    let origin_hours: Vec<i64> = origins
        .iter()
        .map(|o| minute_of(o).div_euclid(60))
        .collect();
    let train_hours = 8 * 7 * 24;
    let back = (train_hours as i64).max(24 * 28 + 24 * 4 * 7) + 24;
    let start_hour = origin_hours[0] - back;
    let end_hour = origin_hours[origin_hours.len() - 1] + h_max as i64;

    let bar = if opts.progress {
        let bar = indicatif::ProgressBar::new((included.len() * origins.len()) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} evaluating {pos}/{len} site-origins {wide_bar} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let mut acc = vec![vec![Acc::default(); METHODS.len()]; h_max];
    let mut on_holidays = vec![Acc::default(); METHODS.len()];
    let holiday_hour = |hour: i64| {
        opts.holidays.as_ref().is_some_and(|cal| {
            let date = cal.zone().to_local(hour_instant(hour)).date();
            cal.kind(date) == Some(crate::calendar::DayKind::Holiday)
        })
    };
    let mut covered = vec![0usize; h_max];
    let mut counted = vec![0usize; h_max];
    let mut fit_time = Duration::ZERO;
    let mut dump_sites = Vec::with_capacity(included.len());
    let mut all_zero = 0;
    let (mut zeros, mut targets) = (0usize, 0usize);
    for site in &included {
        let series = site.occupancy(start_hour, end_hour, i64::MAX);
        let at = |hour: i64| series[(hour - start_hour) as usize];
        let window = &series[(origin_hours[0] - start_hour) as usize..];
        if window.iter().all(|&v| v == 0.0) {
            all_zero += 1;
        }
        for (&origin, &oh) in origins.iter().zip(&origin_hours) {
            let t0 = Instant::now();
            let fc = forecast_with(site, origin, h_max, &opts.calendar, &opts.model)?;
            fit_time += t0.elapsed();
            for h in 1..=h_max {
                let t = oh + h as i64 - 1;
                let y = at(t);
                targets += 1;
                if y == 0.0 {
                    zeros += 1;
                }
                let hf = &fc.hours[h - 1];
                let sn24 = at(t - 24);
                let sn168 = at(t - 168);
                let last = at(oh - 1);
                let week4 = (1..=4).map(|k| at(t - 168 * k)).sum::<f64>() / 4.0;
                let day28 = (1..=28).map(|k| at(t - 24 * k)).sum::<f64>() / 28.0;
                let preds = [hf.occupancy.p50, sn24, sn168, last, week4, day28, 0.0];
                for (a, p) in acc[h - 1].iter_mut().zip(preds) {
                    a.add(p, y);
                }
                if holiday_hour(t) {
                    for (a, p) in on_holidays.iter_mut().zip(preds) {
                        a.add(p, y);
                    }
                }
                counted[h - 1] += 1;
                if y <= hf.occupancy.p90 + 1e-12 {
                    covered[h - 1] += 1;
                }
            }
            bar.inc(1);
        }
        let dump_from = (origin_hours[0] - train_hours as i64 - start_hour) as usize;
        dump_sites.push(DumpSite {
            site: site.site.clone(),
            connectors: site.connectors,
            occupancy: series[dump_from..]
                .iter()
                .map(|v| (v * 1e6).round() / 1e6)
                .collect(),
        });
    }
    bar.finish_and_clear();
    let dump_start = origin_hours[0] - train_hours as i64;
    let report = EvalReport {
        scores: acc
            .iter()
            .map(|row| row.iter().map(Acc::score).collect())
            .collect(),
        coverage: covered
            .iter()
            .zip(&counted)
            .map(|(&c, &n)| if n == 0 { 0.0 } else { c as f64 / n as f64 })
            .collect(),
        sites: included.len(),
        site_names: included.iter().map(|s| s.site.clone()).collect(),
        excluded_short_history: excluded.iter().map(|s| s.site.clone()).collect(),
        sites_all_zero: all_zero,
        origins: origins.clone(),
        fit_time,
        zero_share: if targets == 0 {
            0.0
        } else {
            zeros as f64 / targets as f64
        },
        holidays: (on_holidays[0].n > 0).then(|| {
            (
                on_holidays.iter().map(Acc::score).collect(),
                on_holidays[0].n,
            )
        }),
    };
    let dump = EvalDump {
        start: hour_instant(dump_start),
        origins: origin_hours
            .iter()
            .map(|&o| (o - dump_start) as usize)
            .collect(),
        horizon: h_max,
        train_hours,
        sites: dump_sites,
    };
    Ok((report, dump))
}
