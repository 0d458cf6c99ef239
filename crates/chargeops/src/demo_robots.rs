//! The demo's robot lots: the three busiest G4 service areas get a car park of 40 bays and six
//! charging robots each. The robots are chargers of those stations with derived passwords, like
//! the rest of the demo's chargers, and `chargeops_sim::robots` drives them and the cars against
//! the platform over real OCPP and HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use chargeops_core::network_file::NetworkSpec;
use chargeops_core::secret::{derive_password, hash_secret};
use chargeops_core::{Charger, Clock};
use chargeops_sim::client::Endpoint;
use chargeops_sim::robots::{self, LotSpec, RobotStats, RobotsConfig};
use chargeops_sim::traffic::Scenario;
use chargeops_store::{ErrorKind, Store};

const LOTS: usize = 3;
const BAYS: usize = 40;
const ROBOTS: usize = 6;
/// The share of a station's drivers who park in its robot lot rather than queue for its fixed
/// chargers: at the holiday peak that keeps six robots busy without drowning them.
const SHARE: f64 = 0.15;
/// Robot reports are at most this often in real time, whatever the demo's speed.
const MIN_REPORT: StdDuration = StdDuration::from_millis(250);
/// A robot is offline after this much real time without a report when the demo runs fast: a
/// busy machine may hold a report up for a second or two, which at 600x is half a simulated hour.
const OFFLINE_AFTER: StdDuration = StdDuration::from_secs(5);

/// The demo's lots under `scenario` from `start`.
pub fn lots(network: &NetworkSpec, scenario: Scenario, start: DateTime<Utc>) -> Vec<LotSpec> {
    robots::demo_lots(network, scenario, start, LOTS, BAYS, ROBOTS, SHARE)
}

/// Platform seconds after which a silent robot is offline: the usual 30 s, or
/// [`OFFLINE_AFTER`] of real time in simulated time when the demo runs fast.
pub fn robot_timeout_secs(speed: f64) -> u64 {
    let real = OFFLINE_AFTER.as_secs_f64() * speed;
    (real.ceil() as u64).clamp(30, 86_400)
}

/// Registers every robot as a charger of its station, with its password derived from the
/// demo's secret; robots already there are left alone.
pub async fn seed(store: &Arc<dyn Store>, lots: &[LotSpec], secret: &str) -> Result<()> {
    let now = Utc::now();
    for lot in lots {
        for id in &lot.robots {
            let charger = Charger::registered(
                id.clone(),
                lot.station_id.clone(),
                Some(hash_secret(&derive_password(secret, id))),
                now,
            );
            match store.insert_charger(&charger).await {
                Err(e) if e.kind() != ErrorKind::Conflict => return Err(e.into()),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Sets the lots up through the API and runs their robots and cars until the returned sender
/// is dropped; prints each lot's page.
pub async fn spawn(
    addr: SocketAddr,
    clock: Clock,
    secret: &str,
    token: &str,
    lots: Vec<LotSpec>,
    seed: u64,
) -> Result<watch::Sender<bool>> {
    for lot in &lots {
        eprintln!(
            "  Robot lot:      http://{addr}/lot?station={}#token={token}",
            lot.station_id
        );
    }
    let secret = secret.to_owned();
    let config = RobotsConfig {
        http: addr,
        endpoint: Endpoint::resolve(&format!("ws://{addr}/ocpp"))
            .await
            .context("no OCPP endpoint for the robots")?,
        clock,
        credentials: Arc::new(move |id: &str| Some(derive_password(&secret, id))),
        admin_token: Some(token.to_owned()),
        seed,
        min_report_interval: MIN_REPORT,
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(robots::run(
        config,
        lots,
        Arc::new(RobotStats::default()),
        stopped,
    ));
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offline_timeout_follows_the_demo_speed() {
        assert_eq!(robot_timeout_secs(1.0), 30);
        assert_eq!(robot_timeout_secs(60.0), 300);
        assert_eq!(robot_timeout_secs(600.0), 3000);
        assert_eq!(robot_timeout_secs(f64::NAN), 30);
    }
}
