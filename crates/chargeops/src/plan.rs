//! `chargeops plan`: a station's plan for a peak period, read straight from a data directory
//! (the platform need not run). The forecasting and sizing are the forecasts service's; this only wires and
//! prints.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};

use chargeops_services::forecasts::{Forecasts, PlanRequest, hour_of, plan_params};
use chargeops_store::{SessionFilter, SqliteStore, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Station id
    #[arg(long)]
    pub station: String,
    /// First day of the period (local date, YYYY-MM-DD)
    #[arg(long, value_name = "DATE")]
    pub from: NaiveDate,
    /// Last day of the period (local date, YYYY-MM-DD)
    #[arg(long, value_name = "DATE")]
    pub to: NaiveDate,
    /// Data directory of the platform
    #[arg(
        long,
        value_name = "DIR",
        env = "CHARGEOPS_DATA_DIR",
        default_value = "./chargeops-data"
    )]
    pub data_dir: PathBuf,
    /// Mean wait in a queue to plan for, minutes
    #[arg(long, default_value_t = 15.0)]
    pub target_wait_minutes: f64,
    /// Plan every hour for its P90 demand (a bad but plausible hour) instead of its P50
    #[arg(long)]
    pub p90: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// When the plan is made (RFC 3339) [default: now; or, when the data directory's latest
    /// session is later than now (a demo on simulated time), that session's time]
    #[arg(long, value_name = "TIME")]
    pub now: Option<DateTime<Utc>>,
}

pub async fn run(args: PlanArgs) -> Result<()> {
    let file = args.data_dir.join(chargeops_store::sqlite::FILE_NAME);
    if !file.exists() {
        bail!("no chargeops database in {}", args.data_dir.display());
    }
    let store = SqliteStore::open(&file)
        .with_context(|| format!("failed to open the database in {}", args.data_dir.display()))?;
    let station = store.get_station(&args.station).await?.ok_or_else(|| {
        anyhow!(
            "station {} not found in {}",
            args.station,
            args.data_dir.display()
        )
    })?;
    let stations = store.list_stations().await?;
    let now = match args.now {
        Some(t) => t,
        None => {
            let latest = store
                .list_sessions(&SessionFilter {
                    limit: Some(1),
                    ..Default::default()
                })
                .await?
                .first()
                .map(|s| s.started_at);
            latest.filter(|t| *t > Utc::now()).unwrap_or_else(Utc::now)
        }
    };
    // Connectors per station: those reported, else one a charger.
    let chargers = store.list_chargers().await?;
    let station_of: HashMap<&str, &str> = chargers
        .iter()
        .map(|c| (c.id.as_str(), c.station_id.as_str()))
        .collect();
    let mut connectors: HashMap<String, u32> = HashMap::new();
    for (charger, _) in store.list_connectors().await? {
        if let Some(s) = station_of.get(charger.as_str()) {
            *connectors.entry((*s).to_owned()).or_default() += 1;
        }
    }
    let mut per_station: HashMap<String, u32> = HashMap::new();
    for c in &chargers {
        *per_station.entry(c.station_id.clone()).or_default() += 1;
    }
    for (s, n) in per_station {
        let e = connectors.entry(s).or_default();
        *e = (*e).max(n);
    }

    let forecasts = Forecasts::default();
    let kw = forecasts
        .network
        .station(&station.id)
        .map(|s| f64::from(s.power_kw));
    let params = plan_params(Some(args.target_wait_minutes), kw, args.p90)
        .map_err(|e| anyhow!(e.message))?;
    let plan = forecasts
        .plan(
            &store,
            now,
            &PlanRequest {
                station: &station,
                stations: &stations,
                connectors: &connectors,
                from: args.from,
                to: args.to,
                params: &params,
            },
        )
        .await
        .map_err(|e| anyhow!(e.message))?;
    let history = forecasts
        .histories(&store, now)
        .await
        .map_err(|e| anyhow!(e.message))?
        .site(&station.id, plan.connectors)
        .spans()
        .len();
    let zone = forecasts.calendar.zone();
    let local = |t: DateTime<Utc>| zone.to_local(t).format("%a %Y-%m-%d %H:%M").to_string();
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let mut v = serde_json::to_value(&plan)?;
            if let Some(m) = v.as_object_mut() {
                m.insert("name".into(), station.name.clone().into());
                m.insert("from".into(), args.from.to_string().into());
                m.insert("to".into(), args.to.to_string().into());
                m.insert("origin".into(), hour_of(now).to_rfc3339().into());
                m.insert("history_sessions".into(), history.into());
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Format::Text => {
            writeln!(
                out,
                "Plan for {} [{}]{}, {} connectors, {} to {}",
                station.name,
                station.id,
                match (&station.highway, &station.direction) {
                    (Some(h), Some(d)) => format!(", {h} {d}"),
                    _ => String::new(),
                },
                plan.connectors,
                args.from,
                args.to
            )?;
            writeln!(
                out,
                "made at {} from {} sessions of history; target wait {:.0} min; mean session {:.0} min; planned for the {} demand (M/M/c)\n",
                local(hour_of(now)),
                history,
                params.target_wait_minutes,
                plan.mean_service_minutes,
                if params.p90 { "P90" } else { "P50" }
            )?;
            writeln!(
                out,
                "{:<20} {:>12} {:>12} {:>8} {:>9} {:>10} {:>6} {:>6} {:>8}",
                "hour (local)",
                "arrivals",
                "busy",
                "P(queue)",
                "wait",
                "gap car/h",
                "+conn",
                "units",
                "robot h"
            )?;
            for h in &plan.hours {
                writeln!(
                    out,
                    "{:<20} {:>5.1} /{:>5.1} {:>5.1} /{:>5.1} {:>7.0}% {:>5.0} min {:>10.1} {:>6} {:>6} {:>8.1}",
                    local(h.at),
                    h.arrivals_p50,
                    h.arrivals_p90,
                    h.busy_connectors_p50,
                    h.busy_connectors_p90,
                    100.0 * h.probability_of_queue,
                    h.expected_wait_minutes.min(999.0),
                    h.capacity_gap_cars_per_hour,
                    h.extra_connectors,
                    h.mobile_units,
                    h.robot_hours
                )?;
            }
            writeln!(
                out,
                "\n{} of {} hours short of capacity{}; expected arrivals {:.0}",
                plan.short_hours,
                plan.hours.len(),
                plan.peak_at
                    .map(|p| format!(
                        ", worst at {} (+{} connectors)",
                        local(p),
                        plan.peak_extra_connectors
                    ))
                    .unwrap_or_default(),
                plan.expected_arrivals
            )?;
            writeln!(
                out,
                "bring {} mobile units ({} x {:.0} kW each), or plan {:.1} robot hours ({:.0} kWh an hour each)",
                plan.mobile_units,
                params.unit_guns,
                params.unit_gun_kw,
                plan.robot_hours,
                params.robot_kwh_per_hour
            )?;
            if !plan.neighbours.is_empty() {
                writeln!(out, "\ndivert to:")?;
                for n in &plan.neighbours {
                    writeln!(
                        out,
                        "  {} [{}] ({}, {:.0} km): P(queue) {:.0}%, {:.1} connectors spare{}",
                        n.name,
                        n.station_id,
                        n.relation.replace('_', " "),
                        n.distance_km,
                        100.0 * n.probability_of_queue,
                        n.spare_connectors,
                        if n.recommended {
                            "  <- recommended"
                        } else {
                            ""
                        }
                    )?;
                }
            }
            writeln!(out, "\nadvice for drivers:")?;
            for a in &plan.advice {
                writeln!(out, "  - {a}")?;
            }
        }
    }
    Ok(())
}
