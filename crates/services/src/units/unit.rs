//! A mobile unit as the platform keeps it (a store document), what staff ask for when they add
//! one or report on it, and the checks of those values.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use chargeops_core::Station;
use chargeops_core::secret::hash_secret;

use crate::{Error, Result};

/// Mainland China with Hainan: positions outside are a unit's GPS gone wrong.
const LAT_RANGE: std::ops::RangeInclusive<f64> = 18.0..=54.0;
const LON_RANGE: std::ops::RangeInclusive<f64> = 73.0..=135.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A charging vehicle: drives itself, a few guns from its battery.
    Vehicle,
    /// A charging container: trucked to a site and connected there.
    Container,
}

impl UnitKind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "vehicle" => Some(UnitKind::Vehicle),
            "container" => Some(UnitKind::Container),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// At a station (or depot), not serving.
    Ready,
    /// On the road to `station_id`.
    Driving,
    /// Charging cars at `station_id`.
    Serving,
    /// Out of service: left out of every plan until it reports `ready` again.
    Broken,
}

impl UnitStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ready" => Some(UnitStatus::Ready),
            "driving" => Some(UnitStatus::Driving),
            "serving" => Some(UnitStatus::Serving),
            "broken" => Some(UnitStatus::Broken),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Ready => "ready",
            UnitStatus::Driving => "driving",
            UnitStatus::Serving => "serving",
            UnitStatus::Broken => "broken",
        }
    }
}

/// A status as a report names it, refused with the message a reporter sees.
impl FromStr for UnitStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        UnitStatus::parse(s).ok_or_else(|| {
            Error::invalid(format!(
                "status must be ready, driving, serving or broken, got {s:?}"
            ))
        })
    }
}

/// A mobile unit as stored (document kind [`super::DOC_KIND`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MobileUnit {
    pub id: String,
    pub name: String,
    pub kind: UnitKind,
    pub guns: u32,
    pub gun_kw: f64,
    pub cars_per_hour: f64,
    pub lat: f64,
    pub lon: f64,
    pub status: UnitStatus,
    /// Where it is (ready, serving, broken; none when off every station) or where it is driving.
    pub station_id: Option<String>,
    /// The station it left, while driving: its route is the road from there.
    #[serde(default)]
    pub left_from: Option<String>,
    pub reported_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Salted digest of the tracker's password (`core::secret::hash_secret`); no tracker
    /// credentials when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker_secret: Option<String>,
}

/// Cars a unit serves an hour when not told: one 30 kWh car per gun at 80% of the gun's power,
/// plus six minutes to plug in and out.
pub fn default_cars_per_hour(guns: u32, gun_kw: f64) -> f64 {
    f64::from(guns) / (0.1 + 30.0 / (0.8 * gun_kw))
}

/// A unit as staff ask to add it, every field as given: [`super::Units::create`] checks them
/// in this order and names the first that is wrong. Also the body of `POST /mobile-units`.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUnit {
    pub id: String,
    /// The id when not given.
    pub name: Option<String>,
    /// `vehicle` or `container`.
    pub kind: String,
    pub guns: i64,
    pub gun_kw: f64,
    /// [`default_cars_per_hour`] when not given.
    pub cars_per_hour: Option<f64>,
    /// The station it stands at.
    pub station_id: String,
    /// Credentials for the unit's own tracker.
    pub tracker_password: Option<String>,
}

/// A [`NewUnit`] whose fields passed their checks; its station is still to be looked up.
pub(super) struct CheckedUnit {
    pub id: String,
    pub name: String,
    pub kind: UnitKind,
    pub guns: u32,
    pub gun_kw: f64,
    pub cars_per_hour: f64,
    pub station_id: String,
    pub tracker_secret: Option<String>,
}

impl NewUnit {
    pub(super) fn check(self) -> Result<CheckedUnit> {
        if !valid_id(&self.id) || self.id == "plan" {
            return Err(Error::invalid(
                "unit id must be 1-48 characters of letters, digits, '-', '_', '.', ':' (and not \"plan\")",
            ));
        }
        let name = self.name.unwrap_or_else(|| self.id.clone());
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("name must be 1 to 100 characters"));
        }
        let kind = UnitKind::parse(&self.kind).ok_or_else(|| {
            Error::invalid(format!(
                "kind must be vehicle or container, got {:?}",
                self.kind
            ))
        })?;
        if !(1..=16).contains(&self.guns) {
            return Err(Error::invalid(format!(
                "guns must be 1 to 16, got {}",
                self.guns
            )));
        }
        if !(self.gun_kw.is_finite() && (3.0..=600.0).contains(&self.gun_kw)) {
            return Err(Error::invalid(format!(
                "gun_kw must be 3 to 600, got {}",
                self.gun_kw
            )));
        }
        let guns = self.guns as u32;
        let tracker_secret = self
            .tracker_password
            .as_deref()
            .map(tracker_secret)
            .transpose()?;
        let cars_per_hour = match self.cars_per_hour {
            Some(c) if !(c.is_finite() && c > 0.0 && c <= 50.0) => {
                return Err(Error::invalid(format!(
                    "cars_per_hour must be above 0 and at most 50, got {c}"
                )));
            }
            Some(c) => c,
            None => (default_cars_per_hour(guns, self.gun_kw) * 100.0).round() / 100.0,
        };
        Ok(CheckedUnit {
            id: self.id,
            name,
            kind,
            guns,
            gun_kw: self.gun_kw,
            cars_per_hour,
            station_id: self.station_id,
            tracker_secret,
        })
    }
}

impl CheckedUnit {
    /// The new unit, ready at `station` (at `at`, the station's position) since `now`.
    pub(super) fn at(self, station: &Station, at: (f64, f64), now: DateTime<Utc>) -> MobileUnit {
        MobileUnit {
            id: self.id,
            name: self.name,
            kind: self.kind,
            guns: self.guns,
            gun_kw: self.gun_kw,
            cars_per_hour: self.cars_per_hour,
            lat: at.0,
            lon: at.1,
            status: UnitStatus::Ready,
            station_id: Some(station.id.clone()),
            left_from: None,
            reported_at: now,
            created_at: now,
            tracker_secret: self.tracker_secret,
        }
    }
}

/// A unit's report: where it is and what it does.
#[derive(Debug, Clone)]
pub struct Report {
    pub lat: f64,
    pub lon: f64,
    pub status: UnitStatus,
    /// Where it is (ready, serving, broken) or where it is driving. When left out: the station
    /// within 2 km, or for a driving unit the destination of its planned move.
    pub station_id: Option<String>,
}

/// Who reports on a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    /// Staff (admin, operator, dispatcher): may declare a breakdown and a repair.
    Staff,
    /// The unit's own tracker (and the demo's simulated units): never reports a breakdown and
    /// is ignored while the unit is broken, so that staff reporting a breakdown always win.
    Tracker,
}

pub(super) fn check_position(lat: f64, lon: f64) -> Result<()> {
    if !(lat.is_finite() && lon.is_finite()) {
        return Err(Error::invalid("lat and lon must be numbers"));
    }
    if !(LAT_RANGE.contains(&lat) && LON_RANGE.contains(&lon)) {
        return Err(Error::invalid(format!(
            "position {lat}, {lon} is outside China (lat {}..{}, lon {}..{})",
            LAT_RANGE.start(),
            LAT_RANGE.end(),
            LON_RANGE.start(),
            LON_RANGE.end()
        )));
    }
    Ok(())
}

/// A tracker password as given by staff: 12 to 128 printable characters.
pub(super) fn tracker_secret(password: &str) -> Result<String> {
    let n = password.chars().count();
    if !(12..=128).contains(&n) || password.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "tracker_password must be 12 to 128 characters without control characters, got {n}"
        )));
    }
    Ok(hash_secret(password))
}

pub(super) fn valid_id(id: &str) -> bool {
    (1..=48).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_capacity_grows_with_guns_and_power() {
        let slow = default_cars_per_hour(2, 60.0);
        let fast = default_cars_per_hour(2, 120.0);
        assert!(slow > 2.5 && slow < 3.0, "{slow}");
        assert!(fast > slow && fast < 2.0 * slow);
        assert!((default_cars_per_hour(4, 60.0) - 2.0 * slow).abs() < 1e-9);
    }

    #[test]
    fn statuses_and_positions_are_checked() {
        assert_eq!(UnitStatus::parse("broken"), Some(UnitStatus::Broken));
        assert_eq!(UnitStatus::parse("exploded"), None);
        assert!(check_position(28.2, 112.9).is_ok());
        assert!(check_position(f64::NAN, 112.9).is_err());
        assert!(
            check_position(51.5, -0.1).is_err(),
            "London is not in China"
        );
        assert!(check_position(0.0, 0.0).is_err());
        assert!(valid_id("vehicle-01") && !valid_id("") && !valid_id("a b"));
    }
}
