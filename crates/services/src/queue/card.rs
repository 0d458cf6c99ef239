//! The station card of the public driver page: a station's live counts and amenities, and the
//! stations near it (downstream on its highway, the opposite side, or within a radius).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::Serialize;

use chargeops_core::Station;
use chargeops_core::network_file::{StationKind, StationSpec};

use crate::forecasts::haversine_km;
use crate::{Error, Result};

use super::{Queue, network, round1};

/// A station and the stations near it, nearest first (at most 12).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StationCard {
    pub station: CardStation,
    pub nearby: Vec<CardStation>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CardStation {
    pub id: String,
    pub name: String,
    pub highway: Option<String>,
    pub direction: Option<String>,
    /// `here`, `downstream`, `opposite_direction` or `nearby`.
    pub relation: &'static str,
    pub distance_km: Option<f64>,
    pub available: u64,
    pub total: u64,
    pub busy: u64,
    pub waiting: u64,
    pub power_kw: Option<u32>,
    pub amenities: Vec<String>,
}

/// Amenities of a service area (by its `pair` key, or its id), from `data/network/amenities.csv`.
fn amenities(spec: &StationSpec) -> Vec<String> {
    static TABLE: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        include_str!("../../../../data/network/amenities.csv")
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (key, list) = l.split_once(',')?;
                Some((
                    key.trim().to_owned(),
                    list.split(';')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                ))
            })
            .collect()
    });
    let key = spec.pair.clone().unwrap_or_else(|| spec.id.clone());
    if let Some(v) = table.get(&key).or_else(|| table.get(&spec.id)) {
        return v.clone();
    }
    let default = match spec.kind {
        StationKind::ServiceArea => "*service_area",
        StationKind::ParkingArea => "*parking_area",
        StationKind::Urban => "*urban",
    };
    table.get(default).cloned().unwrap_or_default()
}

impl Queue {
    /// The card of station `id`, with the stations within `km` (80 unless given).
    pub async fn card(&self, id: &str, km: Option<f64>) -> Result<StationCard> {
        let radius = km.unwrap_or(80.0);
        if !(radius.is_finite() && (1.0..=300.0).contains(&radius)) {
            return Err(Error::invalid("km must be 1 to 300"));
        }
        let me = self.station_exists(id).await?;
        let net = network();
        let stations = self.platform.store.list_stations().await?;
        let live = &self.platform.live;
        // The store's position, else the network file's.
        let pos = |s: &Station| {
            s.lat
                .zip(s.lon)
                .or_else(|| net.station(&s.id).map(|x| (x.lat, x.lon)))
        };
        let here = pos(&me);
        let card = |s: &Station, km: Option<f64>, relation: &'static str| {
            let c = live.station_counts(&s.id).unwrap_or_default();
            let spec = net.station(&s.id);
            CardStation {
                id: s.id.clone(),
                name: s.name.clone(),
                highway: s.highway.clone(),
                direction: s.direction.clone(),
                relation,
                distance_km: km.map(round1),
                available: c.available,
                total: c.total(),
                busy: c.occupied + c.charging,
                waiting: live.station_waiting(&s.id),
                power_kw: spec.map(|x| x.power_kw),
                amenities: spec.map(amenities).unwrap_or_default(),
            }
        };
        let mut nearby: Vec<(f64, CardStation)> = Vec::new();
        let downstream: HashSet<&str> = net.downstream(id).iter().map(|s| s.id.as_str()).collect();
        let twin = net.twin(id).map(|t| t.id.clone());
        for s in stations.iter().filter(|s| s.id != id) {
            let km = match (
                net.station(id).and_then(|a| a.km),
                net.station(&s.id).and_then(|b| b.km),
            ) {
                (Some(a), Some(b)) if downstream.contains(s.id.as_str()) => Some((a - b).abs()),
                _ => here.zip(pos(s)).map(|(a, b)| haversine_km(a, b)),
            };
            let Some(km) = km.filter(|k| *k <= radius) else {
                continue;
            };
            let relation = if Some(&s.id) == twin.as_ref() {
                "opposite_direction"
            } else if downstream.contains(s.id.as_str()) {
                "downstream"
            } else {
                "nearby"
            };
            nearby.push((km, card(s, Some(km), relation)));
        }
        nearby.sort_by(|a, b| a.0.total_cmp(&b.0));
        nearby.truncate(12);
        Ok(StationCard {
            station: card(&me, None, "here"),
            nearby: nearby.into_iter().map(|(_, v)| v).collect(),
            at: self.platform.now(),
        })
    }
}
