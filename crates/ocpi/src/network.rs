//! The platform's network as OCPI Locations.
//!
//! One Location per station (a service-area side), one EVSE per charger EVSE (its `uid` is
//! `<charger id>*<evse id>`), a connector per connector. What kind of connector a charger has
//! is the operator's [`Equipment`] for it (GB/T DC at 120 kW unless told otherwise: the
//! province's highway chargers). Statuses map from the platform's:
//!
//! | platform | OCPI |
//! |---|---|
//! | available | AVAILABLE |
//! | occupied, charging | CHARGING |
//! | reserved | RESERVED |
//! | unavailable | INOPERATIVE |
//! | faulted | OUTOFORDER |
//! | offline | UNKNOWN |
//!
//! An EVSE shows the most telling status of its connectors: one charging makes it CHARGING,
//! then AVAILABLE if any is, then the first connector's.

use chrono::{DateTime, Utc};

use chargeops_core::{ConnectorState, ConnectorStatus, Station};

use crate::envelope::datetime;
use crate::objects::{
    Connector, ConnectorFormat, ConnectorType, Evse, GeoLocation, Location, Operator, PowerType,
    Status,
};

/// Who publishes the locations: the CPO's OCPI identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Party {
    /// ISO 3166-1 alpha-2, e.g. `CN`.
    pub country_code: String,
    /// Three characters, e.g. `CHO`.
    pub party_id: String,
    /// ISO 3166-1 alpha-3 of the locations, e.g. `CHN`.
    pub country: String,
    /// The IANA zone of the locations, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    pub operator: String,
}

impl Default for Party {
    fn default() -> Self {
        Party {
            country_code: "CN".to_owned(),
            party_id: "CHO".to_owned(),
            country: "CHN".to_owned(),
            time_zone: "Asia/Shanghai".to_owned(),
            operator: "chargeops".to_owned(),
        }
    }
}

/// What a charger's connectors are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Equipment {
    pub standard: ConnectorType,
    pub format: ConnectorFormat,
    pub power_type: PowerType,
    pub max_voltage: u32,
    pub max_amperage: u32,
    pub max_power_w: u32,
}

impl Default for Equipment {
    /// A highway DC charger: GB/T, cable, 750 V, 160 A, 120 kW.
    fn default() -> Self {
        Equipment {
            standard: ConnectorType::GbtDc,
            format: ConnectorFormat::Cable,
            power_type: PowerType::Dc,
            max_voltage: 750,
            max_amperage: 160,
            max_power_w: 120_000,
        }
    }
}

/// A charger as the mapping needs it.
#[derive(Debug, Clone)]
pub struct ChargerView<'a> {
    pub id: &'a str,
    pub connectors: &'a [ConnectorState],
    pub equipment: Equipment,
    /// When the charger's record last changed (its registration or last boot).
    pub updated_at: DateTime<Utc>,
}

pub fn status(s: ConnectorStatus) -> Status {
    match s {
        ConnectorStatus::Available => Status::Available,
        ConnectorStatus::Occupied | ConnectorStatus::Charging => Status::Charging,
        ConnectorStatus::Reserved => Status::Reserved,
        ConnectorStatus::Unavailable => Status::Inoperative,
        ConnectorStatus::Faulted => Status::Outoforder,
        ConnectorStatus::Offline => Status::Unknown,
    }
}

/// An EVSE's `uid`: the charger and its EVSE number.
pub fn evse_uid(charger_id: &str, evse_id: u32) -> String {
    format!("{charger_id}*{evse_id}")
}

/// The charger and EVSE number of a `uid` from [`evse_uid`].
pub fn parse_evse_uid(uid: &str) -> Option<(&str, u32)> {
    let (charger, evse) = uid.rsplit_once('*')?;
    Some((charger, evse.parse().ok()?)).filter(|(c, _)| !c.is_empty())
}

/// The EVSEs of one charger, its connectors grouped by EVSE (`None` for a charger that has
/// reported none yet).
pub fn evses(party: &Party, charger: &ChargerView<'_>) -> Vec<Evse> {
    let mut by_evse: std::collections::BTreeMap<u32, Vec<&ConnectorState>> = Default::default();
    for c in charger.connectors {
        by_evse.entry(c.evse_id).or_default().push(c);
    }
    by_evse
        .into_iter()
        .map(|(evse_id, mut connectors)| {
            connectors.sort_by_key(|c| c.connector_id);
            let statuses: Vec<Status> = connectors.iter().map(|c| status(c.status)).collect();
            let evse_status = if statuses.contains(&Status::Charging) {
                Status::Charging
            } else if statuses.contains(&Status::Available) {
                Status::Available
            } else {
                statuses.first().copied().unwrap_or(Status::Unknown)
            };
            let updated = connectors
                .iter()
                .map(|c| c.updated_at)
                .max()
                .unwrap_or(charger.updated_at)
                .max(charger.updated_at);
            let e = charger.equipment;
            Evse {
                uid: evse_uid(charger.id, evse_id),
                evse_id: Some(format!(
                    "{}*{}*E{}*{evse_id}",
                    party.country_code, party.party_id, charger.id
                )),
                status: evse_status,
                connectors: connectors
                    .iter()
                    .map(|c| Connector {
                        id: c.connector_id.to_string(),
                        standard: e.standard,
                        format: e.format,
                        power_type: e.power_type,
                        max_voltage: e.max_voltage,
                        max_amperage: e.max_amperage,
                        max_electric_power: Some(e.max_power_w),
                        last_updated: datetime(c.updated_at.max(charger.updated_at)),
                    })
                    .collect(),
                last_updated: datetime(updated),
            }
        })
        .collect()
}

/// The Location of a station with its chargers; `None` for a station without coordinates
/// (a Location must have them).
pub fn location(
    party: &Party,
    station: &Station,
    chargers: &[ChargerView<'_>],
    station_updated: DateTime<Utc>,
) -> Option<Location> {
    let (lat, lon) = (station.lat?, station.lon?);
    let evses: Vec<Evse> = chargers.iter().flat_map(|c| evses(party, c)).collect();
    let last = chargers
        .iter()
        .flat_map(|c| {
            c.connectors
                .iter()
                .map(|k| k.updated_at)
                .chain([c.updated_at])
        })
        .chain([station_updated])
        .max()
        .unwrap_or(station_updated);
    let address = match (&station.highway, &station.direction) {
        (Some(h), Some(d)) => format!("{h} {d}"),
        (Some(h), None) => h.clone(),
        _ => station.name.clone(),
    };
    Some(Location {
        country_code: party.country_code.clone(),
        party_id: party.party_id.clone(),
        id: station.id.clone(),
        publish: true,
        name: Some(station.name.clone()),
        address,
        city: station.name.clone(),
        country: party.country.clone(),
        coordinates: GeoLocation {
            latitude: format!("{lat:.6}"),
            longitude: format!("{lon:.6}"),
        },
        time_zone: party.time_zone.clone(),
        evses,
        operator: Some(Operator {
            name: party.operator.clone(),
        }),
        last_updated: datetime(last),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 2, 1, 8, min, 0).unwrap()
    }

    fn conn(evse: u32, id: u32, s: ConnectorStatus, min: u32) -> ConnectorState {
        chargeops_core::live::connector_state(evse, id, s, None, None, at(min))
    }

    #[test]
    fn a_station_is_a_location_and_each_evse_shows_its_state() {
        let party = Party::default();
        let station = Station {
            id: "G4-changsha-N".into(),
            name: "长沙服务区 (Changsha Fuwuqu)".into(),
            lat: Some(28.2),
            lon: Some(112.95),
            highway: Some("G4".into()),
            direction: Some("N".into()),
        };
        let a = [
            conn(1, 1, ConnectorStatus::Available, 1),
            conn(2, 1, ConnectorStatus::Faulted, 5),
        ];
        let b = [
            conn(1, 1, ConnectorStatus::Occupied, 2),
            conn(1, 2, ConnectorStatus::Available, 3),
        ];
        let chargers = [
            ChargerView {
                id: "CP-A",
                connectors: &a,
                equipment: Equipment::default(),
                updated_at: at(0),
            },
            ChargerView {
                id: "CP-B",
                connectors: &b,
                equipment: Equipment {
                    standard: ConnectorType::Iec62196T2Combo,
                    ..Equipment::default()
                },
                updated_at: at(0),
            },
        ];
        let l = location(&party, &station, &chargers, at(0)).unwrap();
        assert_eq!(l.id, "G4-changsha-N");
        assert_eq!(l.coordinates.latitude, "28.200000");
        assert_eq!(l.address, "G4 N");
        assert_eq!(l.last_updated, "2027-02-01T08:05:00Z");
        let uids: Vec<_> = l.evses.iter().map(|e| e.uid.as_str()).collect();
        assert_eq!(uids, ["CP-A*1", "CP-A*2", "CP-B*1"]);
        let statuses: Vec<_> = l.evses.iter().map(|e| e.status).collect();
        assert_eq!(
            statuses,
            [Status::Available, Status::Outoforder, Status::Charging]
        );
        assert_eq!(l.evses[2].connectors.len(), 2);
        assert_eq!(
            l.evses[2].connectors[0].standard,
            ConnectorType::Iec62196T2Combo
        );
        assert_eq!(l.evses[0].evse_id.as_deref(), Some("CN*CHO*ECP-A*1"));
        let json = serde_json::to_value(&l).unwrap();
        for field in [
            "country_code",
            "party_id",
            "id",
            "publish",
            "address",
            "city",
            "country",
            "coordinates",
            "time_zone",
            "last_updated",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        let no_place = Station {
            lat: None,
            ..station
        };
        assert!(location(&party, &no_place, &chargers, at(0)).is_none());
    }

    #[test]
    fn evse_uids_round_trip() {
        assert_eq!(parse_evse_uid(&evse_uid("CP*X", 2)), Some(("CP*X", 2)));
        assert_eq!(parse_evse_uid("CP-1"), None);
        assert_eq!(parse_evse_uid("*1"), None);
        assert_eq!(parse_evse_uid("CP-1*x"), None);
    }
}
