//! The network registry: stations, chargers, sessions and id tags as the store keeps them, with
//! the live state of each beside it, and the commands staff send to chargers. Checks what is
//! asked before anything is written or sent; the gateway carries the commands.

mod availability;
mod history;

pub use availability::{PublicQuery, PublicStation, Summary, wait_estimate_s};
pub use history::{Change, History, HistoryPoint, HistoryQuery, bucket_busy};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use chargeops_core::secret::hash_secret;
use chargeops_core::{
    Charger, Command, ConnectorState, IdTag, IdTagStatus, Registration, Session, Station,
    StatusCounts,
};
use chargeops_gateway::valid_charger_id;
use chargeops_store::SessionFilter;

use crate::{Caller, Error, Platform, Result};

/// The longest reservation the platform makes: a queue's plug-in window is minutes.
const MAX_RESERVATION_S: i64 = 24 * 3600;

/// A station with its live counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StationView {
    #[serde(flatten)]
    pub station: Station,
    pub chargers: u64,
    pub connectors: StatusCounts,
    /// Cars waiting for a charger, as last observed.
    pub waiting: u64,
}

/// A new station, or new details of one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStation {
    pub id: String,
    pub name: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub highway: Option<String>,
    pub direction: Option<String>,
}

/// A charger as the API shows it: what the store knows and its live connectors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChargerView {
    pub id: String,
    pub station_id: String,
    /// `ocpp1.6`, `ocpp2.0.1` or `ykc`; none before it first connected.
    pub protocol: Option<&'static str>,
    pub online: bool,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub firmware_version: Option<String>,
    pub registration: Registration,
    pub last_boot_at: Option<DateTime<Utc>>,
    pub connectors: Vec<ConnectorState>,
}

/// A charger to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCharger {
    pub id: String,
    pub station_id: String,
    /// HTTP Basic password (OCPP security profiles 1 and 2), 8 to 40 characters; stored hashed.
    pub password: Option<String>,
    /// A YKC charger's 3DES key, 32 or 48 hex digits; stored, never returned.
    pub ykc_key: Option<String>,
}

/// The fields of a command; which ones a command needs depends on the command.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    pub connector_id: Option<u32>,
    pub evse_id: Option<u32>,
    pub id_tag: Option<String>,
    pub session_id: Option<i64>,
    pub available: Option<bool>,
    pub hard: Option<bool>,
    pub message: Option<String>,
    pub keys: Option<Vec<String>>,
    pub key: Option<String>,
    pub value: Option<String>,
    pub report_base: Option<String>,
    /// reserve-now: how long the reservation lasts, or until when.
    pub expires_in_s: Option<i64>,
    pub expiry: Option<DateTime<Utc>>,
    pub reservation_id: Option<i64>,
}

/// A charger's answer to a command.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandAnswer {
    /// The charger's status word (`Accepted`, `Rejected`, ...).
    pub status: String,
    /// The charger's whole answer.
    pub response: Value,
    /// reserve-now: the id to cancel the reservation by (chosen by the platform when not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<i32>,
}

/// Which sessions to list.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SessionQuery {
    pub charger: Option<String>,
    pub station: Option<String>,
    pub open: Option<bool>,
    pub since: Option<DateTime<Utc>>,
    /// At most this many, newest first (default 100, at most 10,000).
    pub limit: Option<u32>,
}

/// An id tag to add or change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIdTag {
    pub id_tag: String,
    pub status: Option<IdTagStatus>,
    pub expiry: Option<DateTime<Utc>>,
    pub parent_id_tag: Option<String>,
}

/// The network registry service.
pub struct Network {
    platform: Platform,
}

impl Network {
    pub fn new(platform: Platform) -> Self {
        Network { platform }
    }

    fn station_view(&self, station: Station) -> StationView {
        let live = &self.platform.live;
        StationView {
            connectors: live.station_counts(&station.id).unwrap_or_default(),
            chargers: live.station_chargers(&station.id),
            waiting: live.station_waiting(&station.id),
            station,
        }
    }

    async fn load_station(&self, id: &str) -> Result<Station> {
        self.platform
            .store
            .get_station(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("station {id} not found")))
    }

    pub async fn stations(&self) -> Result<Vec<StationView>> {
        let stations = self.platform.store.list_stations().await?;
        Ok(stations.into_iter().map(|s| self.station_view(s)).collect())
    }

    pub async fn station(&self, id: &str) -> Result<StationView> {
        Ok(self.station_view(self.load_station(id).await?))
    }

    /// Cars seen waiting at a station, from a queue sensor at the entrance or staff counting.
    pub async fn set_waiting(&self, id: &str, waiting: u64) -> Result<StationView> {
        if waiting > 10_000 {
            return Err(Error::invalid("waiting must be at most 10000"));
        }
        let station = self.load_station(id).await?;
        self.platform.live.add_station(id);
        self.platform.live.set_waiting(id, waiting);
        Ok(self.station_view(station))
    }

    pub async fn save_station(&self, new: NewStation, by: &Caller) -> Result<StationView> {
        if !valid_charger_id(&new.id) {
            return Err(Error::invalid(
                "station id must be 1-48 characters of letters, digits, '-', '_', '.', ':'",
            ));
        }
        if new.name.trim().is_empty() {
            return Err(Error::invalid("station name must not be empty"));
        }
        match (new.lat, new.lon) {
            (Some(lat), Some(lon))
                if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) =>
            {
                return Err(Error::invalid(
                    "lat must be within -90..90 and lon within -180..180",
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::invalid("give both lat and lon, or neither"));
            }
            _ => {}
        }
        let station = Station {
            id: new.id,
            name: new.name,
            lat: new.lat,
            lon: new.lon,
            highway: new.highway,
            direction: new.direction,
        };
        self.platform.store.upsert_station(&station).await?;
        self.platform.live.add_station(&station.id);
        tracing::info!(station_id = %station.id, by = %by.name, "station saved");
        Ok(self.station_view(station))
    }

    fn charger_view(&self, c: Charger) -> ChargerView {
        let (online, connectors, live_protocol) = match self.platform.live.snapshot(&c.id) {
            Some(s) => (s.online, s.connectors, s.protocol),
            None => (false, Vec::new(), None),
        };
        ChargerView {
            protocol: c.protocol.or(live_protocol).map(|p| p.as_str()),
            id: c.id,
            station_id: c.station_id,
            online,
            vendor: c.vendor,
            model: c.model,
            serial_number: c.serial_number,
            firmware_version: c.firmware_version,
            registration: c.registration,
            last_boot_at: c.last_boot_at,
            connectors,
        }
    }

    async fn load_charger(&self, id: &str) -> Result<Charger> {
        self.platform
            .store
            .get_charger(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("charger {id} not found")))
    }

    /// Every charger, or those of one station.
    pub async fn chargers(&self, station: Option<&str>) -> Result<Vec<ChargerView>> {
        let chargers = self.platform.store.list_chargers().await?;
        Ok(chargers
            .into_iter()
            .filter(|c| station.is_none_or(|s| s == c.station_id))
            .map(|c| self.charger_view(c))
            .collect())
    }

    pub async fn charger(&self, id: &str) -> Result<ChargerView> {
        Ok(self.charger_view(self.load_charger(id).await?))
    }

    pub async fn register_charger(&self, new: NewCharger, by: &Caller) -> Result<ChargerView> {
        if !valid_charger_id(&new.id) {
            return Err(Error::invalid(
                "charger id must be 1-48 characters of letters, digits, '-', '_', '.', ':', '*'",
            ));
        }
        if let Some(p) = &new.password
            && !(8..=40).contains(&p.len())
        {
            return Err(Error::invalid(
                "password must be 8 to 40 characters (OCPP security profile 1 recommends 16 to 40)",
            ));
        }
        if let Some(k) = &new.ykc_key
            && !(matches!(k.len(), 32 | 48) && k.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Error::invalid(
                "ykc_key must be 32 or 48 hex digits (a two- or three-key 3DES key)",
            ));
        }
        let store = &self.platform.store;
        if store.get_station(&new.station_id).await?.is_none() {
            return Err(Error::not_found(format!(
                "station {} not found",
                new.station_id
            )));
        }
        let charger = Charger::registered(
            new.id,
            new.station_id,
            new.password.as_deref().map(hash_secret),
            self.platform.now(),
        );
        store.insert_charger(&charger).await?;
        if let Some(k) = &new.ykc_key {
            store
                .set_charger_ykc_key(&charger.id, Some(&k.to_ascii_lowercase()))
                .await?;
        }
        self.platform
            .live
            .upsert_charger(&charger.id, &charger.station_id, None, Vec::new());
        tracing::info!(charger_id = %charger.id, station_id = %charger.station_id, by = %by.name, "charger registered");
        Ok(self.charger_view(charger))
    }

    /// Accepts or rejects a charger.
    pub async fn set_registration(
        &self,
        id: &str,
        registration: Registration,
        by: &Caller,
    ) -> Result<ChargerView> {
        self.load_charger(id).await?;
        self.platform
            .store
            .set_registration(id, registration)
            .await?;
        tracing::info!(charger_id = %id, registration = registration.as_str(), by = %by.name, "charger registration changed");
        self.charger(id).await
    }

    /// Sends the command `name` with the fields of `b` to charger `id` and answers the
    /// charger's reply.
    pub async fn command(
        &self,
        id: &str,
        name: &str,
        b: CommandBody,
        by: &Caller,
    ) -> Result<CommandAnswer> {
        let n = name;
        let cmd = match n {
            "remote-start" => Command::RemoteStart {
                evse_id: b.evse_id,
                connector_id: b.connector_id,
                id_tag: required(b.id_tag, "id_tag", n)?,
            },
            "remote-stop" => {
                let session_id = required(b.session_id, "session_id", n)?;
                let session = self
                    .platform
                    .store
                    .get_session(session_id)
                    .await?
                    .filter(|s| s.charger_id == id)
                    .ok_or_else(|| {
                        Error::not_found(format!("session {session_id} not found on charger {id}"))
                    })?;
                if session.stopped_at.is_some() {
                    return Err(Error::conflict(
                        "session_stopped",
                        format!("session {session_id} has already stopped"),
                    ));
                }
                Command::RemoteStop {
                    transaction_ref: session.transaction_ref,
                }
            }
            "change-availability" => Command::ChangeAvailability {
                evse_id: b.evse_id,
                connector_id: b.connector_id,
                available: required(b.available, "available", n)?,
            },
            "reset" => Command::Reset {
                hard: b.hard.unwrap_or(false),
            },
            "unlock-connector" => Command::UnlockConnector {
                evse_id: b.evse_id,
                connector_id: required(b.connector_id, "connector_id", n)?,
            },
            "trigger" => Command::Trigger {
                message: required(b.message, "message", n)?,
                evse_id: b.evse_id,
                connector_id: b.connector_id,
            },
            "get-configuration" => Command::GetConfiguration {
                keys: b.keys.unwrap_or_default(),
            },
            "set-configuration" => Command::SetConfiguration {
                key: required(b.key, "key", n)?,
                value: required(b.value, "value", n)?,
            },
            "clear-cache" => Command::ClearCache,
            "get-base-report" => Command::GetBaseReport {
                report_base: b.report_base.unwrap_or_else(|| "FullInventory".to_owned()),
            },
            "reserve-now" => self.reserve_now(b)?,
            "cancel-reservation" => Command::CancelReservation {
                reservation_id: reservation_id(b.reservation_id, n)?,
            },
            other => {
                return Err(Error::not_found(format!(
                    "unknown command {other:?}; known: remote-start, remote-stop, change-availability, reset, unlock-connector, trigger, get-configuration, set-configuration, clear-cache, get-base-report, reserve-now, cancel-reservation"
                )));
            }
        };
        self.load_charger(id).await?;
        self.known_connector(id, &cmd)?;
        let reservation = match &cmd {
            Command::ReserveNow { reservation_id, .. } => Some(*reservation_id),
            _ => None,
        };
        tracing::info!(charger_id = %id, command = n, by = %by.name, "command requested");
        let reply = self.platform.gateway.command(id, cmd).await?;
        Ok(CommandAnswer {
            status: reply.status,
            response: reply.response,
            reservation_id: reservation,
        })
    }

    /// reserve-now's command from its body: the tag, the connector or EVSE (0: the charger as
    /// a whole), an expiry in the future, and an id (one is chosen when not given).
    fn reserve_now(&self, b: CommandBody) -> Result<Command> {
        let n = "reserve-now";
        let id_tag = required(b.id_tag, "id_tag", n)?;
        if id_tag.trim().is_empty() || id_tag.len() > 36 {
            return Err(Error::invalid("id_tag must be 1 to 36 characters"));
        }
        if b.connector_id.is_none() && b.evse_id.is_none() {
            return Err(Error::invalid(
                "reserve-now needs `connector_id` or `evse_id` (0: the charger as a whole)",
            ));
        }
        let now = self.platform.now();
        let expiry = match (b.expires_in_s, b.expiry) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("give `expires_in_s` or `expiry`, not both"));
            }
            (Some(s), None) if (1..=MAX_RESERVATION_S).contains(&s) => {
                now + chrono::Duration::seconds(s)
            }
            (Some(_), None) => {
                return Err(Error::invalid(format!(
                    "expires_in_s must be 1 to {MAX_RESERVATION_S}"
                )));
            }
            (None, Some(at))
                if at > now && at <= now + chrono::Duration::seconds(MAX_RESERVATION_S) =>
            {
                at
            }
            (None, Some(_)) => {
                return Err(Error::invalid("expiry must be in the future, within a day"));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "reserve-now needs `expires_in_s` or `expiry`",
                ));
            }
        };
        let reservation_id = match b.reservation_id {
            Some(_) => reservation_id(b.reservation_id, n)?,
            None => chargeops_core::command::new_reservation_id(),
        };
        Ok(Command::ReserveNow {
            evse_id: b.evse_id,
            connector_id: b.connector_id,
            id_tag,
            expiry,
            reservation_id,
        })
    }

    /// A connector or EVSE the charger has never reported is refused here rather than sent
    /// (while the charger has reported none at all, it is asked anyway).
    fn known_connector(&self, id: &str, cmd: &Command) -> Result<()> {
        let Command::ReserveNow {
            evse_id,
            connector_id,
            ..
        } = cmd
        else {
            return Ok(());
        };
        let Some(snap) = self
            .platform
            .live
            .snapshot(id)
            .filter(|s| !s.connectors.is_empty())
        else {
            return Ok(());
        };
        let known = match (*evse_id, *connector_id) {
            (Some(0) | None, Some(0) | None) => true,
            (Some(e), Some(c)) => snap
                .connectors
                .iter()
                .any(|x| x.evse_id == e && x.connector_id == c),
            (Some(e), None) => snap.connectors.iter().any(|x| x.evse_id == e),
            (None, Some(c)) => snap
                .connectors
                .iter()
                .any(|x| x.connector_id == c || x.evse_id == c),
        };
        if known {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "charger {id} has no such connector or EVSE"
            )))
        }
    }

    pub async fn sessions(&self, q: SessionQuery) -> Result<Vec<Session>> {
        let filter = SessionFilter {
            charger_id: q.charger,
            station_id: q.station,
            open: q.open,
            since: q.since,
            limit: Some(q.limit.unwrap_or(100).min(10_000)),
        };
        Ok(self.platform.store.list_sessions(&filter).await?)
    }

    /// One session by its id as given in a path (an integer).
    pub async fn session(&self, id: &str) -> Result<Session> {
        let id: i64 = id
            .parse()
            .map_err(|_| Error::invalid("session id must be an integer"))?;
        self.platform
            .store
            .get_session(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("session {id} not found")))
    }

    pub async fn id_tags(&self) -> Result<Vec<IdTag>> {
        Ok(self.platform.store.list_id_tags().await?)
    }

    pub async fn save_id_tag(&self, new: NewIdTag) -> Result<IdTag> {
        // 20 is OCPP 1.6's IdToken length; 2.0.1 allows 36. Longer tags could never be
        // presented.
        if new.id_tag.is_empty() || new.id_tag.len() > 36 {
            return Err(Error::invalid("id_tag must be 1 to 36 characters"));
        }
        let tag = IdTag {
            id_tag: new.id_tag,
            status: new.status.unwrap_or(IdTagStatus::Accepted),
            expiry: new.expiry,
            parent_id_tag: new.parent_id_tag,
        };
        self.platform.store.upsert_id_tag(&tag).await?;
        Ok(tag)
    }

    pub async fn delete_id_tag(&self, tag: &str) -> Result<()> {
        Ok(self.platform.store.delete_id_tag(tag).await?)
    }
}

fn reservation_id(v: Option<i64>, command: &str) -> Result<i32> {
    let id = required(v, "reservation_id", command)?;
    i32::try_from(id)
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| Error::invalid("reservation_id must be 0 to 2147483647"))
}

fn required<T>(v: Option<T>, field: &str, command: &str) -> Result<T> {
    v.ok_or_else(|| Error::invalid(format!("{command} needs `{field}`")))
}
