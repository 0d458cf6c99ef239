//! Route handlers. Each turns HTTP into calls on the store, the live state or the gateway.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use chargeops_core::secret::hash_secret;
use chargeops_core::{
    Charger, Command, ConnectorState, IdTag, IdTagStatus, Registration, Session, Station,
    StatusCounts,
};
use chargeops_gateway::valid_charger_id;
use chargeops_store::SessionFilter;

use crate::{ApiError, AppState, Caller, OPENAPI};

use crate::error::{ApiResult, body, query};

pub(crate) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    // Healthy means the store answers; a wedged database must show here.
    match state.store.count_tokens().await {
        Ok(_) => Json(json!({
            "status": "ok",
            "uptime_s": state.started.elapsed().as_secs(),
            "chargers_online": state.gateway.metrics.connections_open.load(std::sync::atomic::Ordering::Relaxed),
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "store_unavailable" }))).into_response()
        }
    }
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::with_capacity(4096);
    state.gateway.metrics.render(&mut out);
    let chargers = state.live.charger_count();
    out.push_str(&format!(
        "# HELP chargeops_chargers Chargers known to the platform\n# TYPE chargeops_chargers gauge\nchargeops_chargers {chargers}\n"
    ));
    out.push_str(
        "# HELP chargeops_connectors Connectors by status\n# TYPE chargeops_connectors gauge\n",
    );
    let mut totals = [0u64; 7];
    for (_, (_, counts)) in state.live.all_station_counts() {
        for (i, s) in chargeops_core::ConnectorStatus::ALL.into_iter().enumerate() {
            totals[i] += count_of(&counts, s);
        }
    }
    for (i, s) in chargeops_core::ConnectorStatus::ALL.into_iter().enumerate() {
        out.push_str(&format!(
            "chargeops_connectors{{status=\"{}\"}} {}\n",
            s.as_str(),
            totals[i]
        ));
    }
    out.push_str(&format!(
        "# HELP chargeops_uptime_seconds Seconds since start\n# TYPE chargeops_uptime_seconds gauge\nchargeops_uptime_seconds {}\n",
        state.started.elapsed().as_secs()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn count_of(c: &StatusCounts, s: chargeops_core::ConnectorStatus) -> u64 {
    use chargeops_core::ConnectorStatus as S;
    match s {
        S::Available => c.available,
        S::Occupied => c.occupied,
        S::Charging => c.charging,
        S::Reserved => c.reserved,
        S::Unavailable => c.unavailable,
        S::Faulted => c.faulted,
        S::Offline => c.offline,
    }
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

// Stations.

#[derive(Serialize)]
pub(crate) struct StationView {
    #[serde(flatten)]
    station: Station,
    chargers: u64,
    connectors: StatusCounts,
    /// Cars waiting for a charger, as last observed.
    waiting: u64,
}

fn station_view(state: &AppState, station: Station) -> StationView {
    let connectors = state.live.station_counts(&station.id).unwrap_or_default();
    let chargers = state.live.station_chargers(&station.id);
    let waiting = state.live.station_waiting(&station.id);
    StationView {
        station,
        chargers,
        connectors,
        waiting,
    }
}

pub(crate) async fn list_stations(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<StationView>>> {
    let stations = state.store.list_stations().await?;
    Ok(Json(
        stations
            .into_iter()
            .map(|s| station_view(&state, s))
            .collect(),
    ))
}

pub(crate) async fn get_station(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<StationView>> {
    let station = state
        .store
        .get_station(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("station {id} not found")))?;
    Ok(Json(station_view(&state, station)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Waiting {
    waiting: u64,
}

/// Cars seen waiting at a station, from a queue sensor at the entrance or staff counting.
pub(crate) async fn set_waiting(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<StationView>> {
    caller.require_write()?;
    let w: Waiting = body(&bytes)?;
    if w.waiting > 10_000 {
        return Err(ApiError::bad_request("waiting must be at most 10000"));
    }
    let station = state
        .store
        .get_station(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("station {id} not found")))?;
    state.live.add_station(&id);
    state.live.set_waiting(&id, w.waiting);
    Ok(Json(station_view(&state, station)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStation {
    id: String,
    name: String,
    lat: Option<f64>,
    lon: Option<f64>,
    highway: Option<String>,
    direction: Option<String>,
}

pub(crate) async fn create_station(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<StationView>)> {
    caller.require_write()?;
    let new: NewStation = body(&bytes)?;
    if !valid_charger_id(&new.id) {
        return Err(ApiError::bad_request(
            "station id must be 1-48 characters of letters, digits, '-', '_', '.', ':'",
        ));
    }
    if new.name.trim().is_empty() {
        return Err(ApiError::bad_request("station name must not be empty"));
    }
    match (new.lat, new.lon) {
        (Some(lat), Some(lon))
            if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) =>
        {
            return Err(ApiError::bad_request(
                "lat must be within -90..90 and lon within -180..180",
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::bad_request("give both lat and lon, or neither"));
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
    state.store.upsert_station(&station).await?;
    state.live.add_station(&station.id);
    tracing::info!(station_id = %station.id, by = %caller.name, "station saved");
    Ok((StatusCode::CREATED, Json(station_view(&state, station))))
}

// Chargers.

#[derive(Serialize)]
pub(crate) struct ChargerView {
    id: String,
    station_id: String,
    protocol: Option<&'static str>,
    online: bool,
    vendor: Option<String>,
    model: Option<String>,
    serial_number: Option<String>,
    firmware_version: Option<String>,
    registration: Registration,
    last_boot_at: Option<DateTime<Utc>>,
    connectors: Vec<ConnectorState>,
}

fn charger_view(state: &AppState, c: Charger) -> ChargerView {
    let snapshot = state.live.snapshot(&c.id);
    let (online, connectors, live_protocol) = match snapshot {
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

#[derive(Deserialize)]
pub(crate) struct ChargerQuery {
    station: Option<String>,
}

pub(crate) async fn list_chargers(
    State(state): State<Arc<AppState>>,
    q: Result<Query<ChargerQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<ChargerView>>> {
    let q = query(q)?;
    let chargers = state.store.list_chargers().await?;
    Ok(Json(
        chargers
            .into_iter()
            .filter(|c| q.station.as_ref().is_none_or(|s| *s == c.station_id))
            .map(|c| charger_view(&state, c))
            .collect(),
    ))
}

async fn charger(state: &AppState, id: &str) -> ApiResult<Charger> {
    state
        .store
        .get_charger(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("charger {id} not found")))
}

pub(crate) async fn get_charger(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChargerView>> {
    let c = charger(&state, &id).await?;
    Ok(Json(charger_view(&state, c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCharger {
    id: String,
    station_id: String,
    password: Option<String>,
    /// A YKC charger's 3DES key, 32 or 48 hex digits; stored, never returned.
    ykc_key: Option<String>,
}

pub(crate) async fn create_charger(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<ChargerView>)> {
    caller.require_write()?;
    let new: NewCharger = body(&bytes)?;
    if !valid_charger_id(&new.id) {
        return Err(ApiError::bad_request(
            "charger id must be 1-48 characters of letters, digits, '-', '_', '.', ':', '*'",
        ));
    }
    if let Some(p) = &new.password
        && !(8..=40).contains(&p.len())
    {
        return Err(ApiError::bad_request(
            "password must be 8 to 40 characters (OCPP security profile 1 recommends 16 to 40)",
        ));
    }
    if let Some(k) = &new.ykc_key
        && !(matches!(k.len(), 32 | 48) && k.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::bad_request(
            "ykc_key must be 32 or 48 hex digits (a two- or three-key 3DES key)",
        ));
    }
    if state.store.get_station(&new.station_id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "station {} not found",
            new.station_id
        )));
    }
    let charger = Charger::registered(
        new.id,
        new.station_id,
        new.password.as_deref().map(hash_secret),
        state.live.now(),
    );
    state.store.insert_charger(&charger).await?;
    if let Some(k) = &new.ykc_key {
        state
            .store
            .set_charger_ykc_key(&charger.id, Some(&k.to_ascii_lowercase()))
            .await?;
    }
    state
        .live
        .upsert_charger(&charger.id, &charger.station_id, None, Vec::new());
    tracing::info!(charger_id = %charger.id, station_id = %charger.station_id, by = %caller.name, "charger registered");
    Ok((StatusCode::CREATED, Json(charger_view(&state, charger))))
}

async fn set_registration(
    state: &AppState,
    caller: &Caller,
    id: &str,
    registration: Registration,
) -> ApiResult<Json<ChargerView>> {
    caller.require_write()?;
    charger(state, id).await?;
    state.store.set_registration(id, registration).await?;
    tracing::info!(charger_id = %id, registration = registration.as_str(), by = %caller.name, "charger registration changed");
    Ok(Json(charger_view(state, charger(state, id).await?)))
}

pub(crate) async fn accept_charger(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChargerView>> {
    set_registration(&state, &caller, &id, Registration::Accepted).await
}

pub(crate) async fn reject_charger(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChargerView>> {
    set_registration(&state, &caller, &id, Registration::Rejected).await
}

// Commands.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    connector_id: Option<u32>,
    evse_id: Option<u32>,
    id_tag: Option<String>,
    session_id: Option<i64>,
    available: Option<bool>,
    hard: Option<bool>,
    message: Option<String>,
    keys: Option<Vec<String>>,
    key: Option<String>,
    value: Option<String>,
    report_base: Option<String>,
    /// reserve-now: how long the reservation lasts, or until when.
    expires_in_s: Option<i64>,
    expiry: Option<DateTime<Utc>>,
    reservation_id: Option<i64>,
}

/// The longest reservation the API makes: a queue's plug-in window is minutes.
const MAX_RESERVATION_S: i64 = 24 * 3600;

fn reservation_id(v: Option<i64>, command: &str) -> ApiResult<i32> {
    let id = required(v, "reservation_id", command)?;
    i32::try_from(id)
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| ApiError::bad_request("reservation_id must be 0 to 2147483647"))
}

/// reserve-now's command from its body: the tag, the connector or EVSE (0: the charger as a
/// whole), an expiry in the future, and an id (one is chosen when not given).
fn reserve_now(state: &AppState, b: CommandBody) -> ApiResult<Command> {
    let n = "reserve-now";
    let id_tag = required(b.id_tag, "id_tag", n)?;
    if id_tag.trim().is_empty() || id_tag.len() > 36 {
        return Err(ApiError::bad_request("id_tag must be 1 to 36 characters"));
    }
    if b.connector_id.is_none() && b.evse_id.is_none() {
        return Err(ApiError::bad_request(
            "reserve-now needs `connector_id` or `evse_id` (0: the charger as a whole)",
        ));
    }
    let now = state.live.now();
    let expiry = match (b.expires_in_s, b.expiry) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `expires_in_s` or `expiry`, not both",
            ));
        }
        (Some(s), None) if (1..=MAX_RESERVATION_S).contains(&s) => {
            now + chrono::Duration::seconds(s)
        }
        (Some(_), None) => {
            return Err(ApiError::bad_request(format!(
                "expires_in_s must be 1 to {MAX_RESERVATION_S}"
            )));
        }
        (None, Some(at))
            if at > now && at <= now + chrono::Duration::seconds(MAX_RESERVATION_S) =>
        {
            at
        }
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "expiry must be in the future, within a day",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "reserve-now needs `expires_in_s` or `expiry`",
            ));
        }
    };
    let reservation_id = match b.reservation_id {
        Some(_) => reservation_id(b.reservation_id, n)?,
        None => chargeops_services::queue::new_reservation_id(),
    };
    Ok(Command::ReserveNow {
        evse_id: b.evse_id,
        connector_id: b.connector_id,
        id_tag,
        expiry,
        reservation_id,
    })
}

/// A connector or EVSE the charger has never reported is refused here rather than sent (while
/// the charger has reported none at all, it is asked anyway).
fn known_connector(state: &AppState, id: &str, cmd: &Command) -> ApiResult<()> {
    let Command::ReserveNow {
        evse_id,
        connector_id,
        ..
    } = cmd
    else {
        return Ok(());
    };
    let Some(snap) = state.live.snapshot(id).filter(|s| !s.connectors.is_empty()) else {
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
        Err(ApiError::bad_request(format!(
            "charger {id} has no such connector or EVSE"
        )))
    }
}

fn required<T>(v: Option<T>, field: &str, command: &str) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::bad_request(format!("{command} needs `{field}`")))
}

pub(crate) async fn command(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require_write()?;
    let b: CommandBody = body(&bytes)?;
    let n = name.as_str();
    let cmd = match n {
        "remote-start" => Command::RemoteStart {
            evse_id: b.evse_id,
            connector_id: b.connector_id,
            id_tag: required(b.id_tag, "id_tag", n)?,
        },
        "remote-stop" => {
            let session_id = required(b.session_id, "session_id", n)?;
            let session = state
                .store
                .get_session(session_id)
                .await?
                .filter(|s| s.charger_id == id)
                .ok_or_else(|| {
                    ApiError::not_found(format!("session {session_id} not found on charger {id}"))
                })?;
            if session.stopped_at.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
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
        "reserve-now" => reserve_now(&state, b)?,
        "cancel-reservation" => Command::CancelReservation {
            reservation_id: reservation_id(b.reservation_id, n)?,
        },
        other => {
            return Err(ApiError::not_found(format!(
                "unknown command {other:?}; known: remote-start, remote-stop, change-availability, reset, unlock-connector, trigger, get-configuration, set-configuration, clear-cache, get-base-report, reserve-now, cancel-reservation"
            )));
        }
    };
    charger(&state, &id).await?;
    known_connector(&state, &id, &cmd)?;
    let reservation = match &cmd {
        Command::ReserveNow { reservation_id, .. } => Some(*reservation_id),
        _ => None,
    };
    tracing::info!(charger_id = %id, command = n, by = %caller.name, "command requested");
    let reply = state.gateway.command(&id, cmd).await?;
    let mut out = json!({ "status": reply.status, "response": reply.response });
    if let Some(r) = reservation {
        // The id to cancel it by, when the platform chose it.
        out["reservation_id"] = json!(r);
    }
    Ok(Json(out))
}

// Sessions.

#[derive(Deserialize)]
pub(crate) struct SessionQuery {
    charger: Option<String>,
    station: Option<String>,
    open: Option<bool>,
    since: Option<DateTime<Utc>>,
    limit: Option<u32>,
}

pub(crate) async fn list_sessions(
    State(state): State<Arc<AppState>>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<Session>>> {
    let q = query(q)?;
    let filter = SessionFilter {
        charger_id: q.charger,
        station_id: q.station,
        open: q.open,
        since: q.since,
        limit: Some(q.limit.unwrap_or(100).min(10_000)),
    };
    Ok(Json(state.store.list_sessions(&filter).await?))
}

pub(crate) async fn get_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Session>> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("session id must be an integer"))?;
    state
        .store
        .get_session(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("session {id} not found")))
}

// Id tags.

pub(crate) async fn list_id_tags(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<IdTag>>> {
    Ok(Json(state.store.list_id_tags().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewIdTag {
    id_tag: String,
    status: Option<IdTagStatus>,
    expiry: Option<DateTime<Utc>>,
    parent_id_tag: Option<String>,
}

pub(crate) async fn upsert_id_tag(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<IdTag>)> {
    caller.require_write()?;
    let new: NewIdTag = body(&bytes)?;
    // 20 is OCPP 1.6's IdToken length; 2.0.1 allows 36. Longer tags could never be presented.
    if new.id_tag.is_empty() || new.id_tag.len() > 36 {
        return Err(ApiError::bad_request("id_tag must be 1 to 36 characters"));
    }
    let tag = IdTag {
        id_tag: new.id_tag,
        status: new.status.unwrap_or(IdTagStatus::Accepted),
        expiry: new.expiry,
        parent_id_tag: new.parent_id_tag,
    };
    state.store.upsert_id_tag(&tag).await?;
    Ok((StatusCode::CREATED, Json(tag)))
}

pub(crate) async fn delete_id_tag(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(tag): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    state.store.delete_id_tag(&tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

// Live feed.

pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = state.live.subscribe();
    let stream = stream::unfold(rx, |mut rx| async move {
        let sse = loop {
            break match rx.recv().await {
                // Meter readings are for fault detection inside the platform; at a network's
                // volume they would drown the feed.
                Ok(chargeops_core::Event::MeterReading { .. }) => continue,
                Ok(event) => {
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    SseEvent::default().event(event.kind()).data(data)
                }
                // A slow reader missed events: tell it, so it can re-read the full state.
                Err(RecvError::Lagged(n)) => SseEvent::default()
                    .event("lagged")
                    .data(json!({ "missed": n }).to_string()),
                Err(RecvError::Closed) => return None,
            };
        };
        Some((Ok(sse), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
