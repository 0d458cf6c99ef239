//! Occupancy, arrivals and queue forecasting for charging sites, over session history.
//!
//! The crate owns:
//! - [`import`]: the council session exports (Dundee, Perth & Kinross) and their traps, into
//!   canonical sessions ([`session`]: `site,charger,connector,start,end,kwh`);
//! - [`history`]: per-site sessions on a minute clock and the hourly series (occupancy rate,
//!   arrivals) as seen from an origin;
//! - [`model`]: the forecaster, [`model::forecast`] for the platform: per hour P50/P90 of
//!   occupancy, busy connectors and arrivals, with a queue estimate ([`queue`], Erlang C);
//! - [`plan`]: a station's plan for a peak period (capacity gap, mobile units, robot hours,
//!   advice) from its forecast;
//! - [`calendar`]: holiday calendars as known regressors (Scotland; China 2024-2026);
//! - [`eval`]: the rolling-origin evaluation protocol and the baselines;
//! - [`cli`]: the `forecast eval` and `forecast import` subcommands.
//!
//! Everything but [`cli`] is pure: no IO, no clocks, no threads. Fitting is closed-form and
//! takes well under a millisecond a site, so a caller on an async runtime can still move a
//! whole-province run to a blocking thread.
//!
//! ```
//! use chargeops_forecast::{Calendar, SiteHistory, Span, forecast};
//! use chrono::{TimeZone, Utc};
//!
//! // One connector, busy 18:00-19:00 every day for ten weeks.
//! let day0 = Utc.with_ymd_and_hms(2018, 1, 1, 0, 0, 0).unwrap().timestamp() / 60;
//! let spans = (0..70).map(|d| Span { connector: 0, start: day0 + d * 1440 + 18 * 60, end: day0 + d * 1440 + 19 * 60 }).collect();
//! let site = SiteHistory::new("Dock Street", 1, spans);
//! let origin = Utc.with_ymd_and_hms(2018, 3, 12, 0, 0, 0).unwrap();
//! let fc = forecast(&site, origin, 24, &Calendar::scotland()).unwrap();
//! assert!(fc.hours[18].occupancy.p50 > 0.9);
//! assert!(fc.hours[3].occupancy.p50 < 0.05);
//! ```

pub mod calendar;
pub mod cli;
pub mod csv;
mod error;
pub mod eval;
pub mod history;
pub mod import;
pub mod model;
pub mod plan;
pub mod queue;
pub mod session;
pub mod tz;

pub use calendar::{Calendar, DayKind};
pub use error::ForecastError;
pub use history::{SiteHistory, Span, by_site};
pub use model::{HourForecast, ModelConfig, Quantiles, SiteForecast, forecast, forecast_with};
pub use queue::QueueEstimate;
pub use session::{ImportReport, Session};
pub use tz::Zone;
