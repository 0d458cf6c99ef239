//! Route handlers of the network registry (stations, chargers, commands, sessions, id tags),
//! health, metrics and the live feed. Each turns HTTP into a call on a service.

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
use futures_util::stream::{self, Stream};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use chargeops_core::{IdTag, Registration, Session, StatusCounts};
use chargeops_services::network::{
    ChargerView, CommandAnswer, CommandBody, NewCharger, NewIdTag, NewStation, SessionQuery,
    StationView,
};

use crate::{ApiError, AppState, Caller, OPENAPI};

use crate::error::{ApiResult, body, query};

pub(crate) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    // Healthy means the store answers; a wedged database must show here.
    match state.store.count_tokens().await {
        Ok(_) => Json(json!({
            "status": "ok",
            "uptime_s": state.started.elapsed().as_secs(),
            "chargers_online": state.gateway.metrics.connections_open.get(),
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "store_unavailable" })),
            )
                .into_response()
        }
    }
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    // A registry a scrape: the gateway's metrics are shared into it, the platform's are read now.
    let mut registry = Registry::default();
    state.gateway.metrics.register(&mut registry);
    registry.register(
        "chargeops_chargers",
        "Chargers known to the platform",
        ConstGauge::new(state.live.charger_count() as u64),
    );
    let mut totals = [0u64; 7];
    for (_, (_, counts)) in state.live.all_station_counts() {
        for (i, s) in chargeops_core::ConnectorStatus::ALL.into_iter().enumerate() {
            totals[i] += count_of(&counts, s);
        }
    }
    registry.register(
        "chargeops_connectors",
        "Connectors by status",
        ConnectorsByStatus(totals),
    );
    registry.register(
        "chargeops_uptime_seconds",
        "Seconds since start",
        ConstGauge::new(state.started.elapsed().as_secs()),
    );
    let mut out = String::with_capacity(4096);
    if let Err(e) = prometheus_text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "metrics: encoding failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Connectors by status, one sample a status in the model's order (a `Family` would list them
/// in hash order, different at every scrape).
#[derive(Debug)]
struct ConnectorsByStatus([u64; 7]);

impl EncodeMetric for ConnectorsByStatus {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (s, n) in chargeops_core::ConnectorStatus::ALL
            .into_iter()
            .zip(&self.0)
        {
            encoder
                .encode_family(&[("status", s.as_str())])?
                .encode_gauge(n)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
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

pub(crate) async fn list_stations(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<StationView>>> {
    Ok(Json(state.services.network.stations().await?))
}

pub(crate) async fn get_station(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<StationView>> {
    Ok(Json(state.services.network.station(&id).await?))
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
    Ok(Json(
        state.services.network.set_waiting(&id, w.waiting).await?,
    ))
}

pub(crate) async fn create_station(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<StationView>)> {
    caller.require_write()?;
    let new: NewStation = body(&bytes)?;
    let saved = state.services.network.save_station(new, &caller).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

// Chargers.

#[derive(Deserialize)]
pub(crate) struct ChargerQuery {
    station: Option<String>,
}

pub(crate) async fn list_chargers(
    State(state): State<Arc<AppState>>,
    q: Result<Query<ChargerQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<ChargerView>>> {
    let q = query(q)?;
    Ok(Json(
        state
            .services
            .network
            .chargers(q.station.as_deref())
            .await?,
    ))
}

pub(crate) async fn get_charger(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChargerView>> {
    Ok(Json(state.services.network.charger(&id).await?))
}

pub(crate) async fn create_charger(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<ChargerView>)> {
    caller.require_write()?;
    let new: NewCharger = body(&bytes)?;
    let charger = state
        .services
        .network
        .register_charger(new, &caller)
        .await?;
    Ok((StatusCode::CREATED, Json(charger)))
}

async fn set_registration(
    state: &AppState,
    caller: &Caller,
    id: &str,
    registration: Registration,
) -> ApiResult<Json<ChargerView>> {
    caller.require_write()?;
    let network = &state.services.network;
    Ok(Json(
        network.set_registration(id, registration, caller).await?,
    ))
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

pub(crate) async fn command(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<Json<CommandAnswer>> {
    caller.require_write()?;
    let b: CommandBody = body(&bytes)?;
    let network = &state.services.network;
    Ok(Json(network.command(&id, &name, b, &caller).await?))
}

// Sessions.

pub(crate) async fn list_sessions(
    State(state): State<Arc<AppState>>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<Session>>> {
    let q = query(q)?;
    Ok(Json(state.services.network.sessions(q).await?))
}

pub(crate) async fn get_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Session>> {
    Ok(Json(state.services.network.session(&id).await?))
}

// Id tags.

pub(crate) async fn list_id_tags(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<IdTag>>> {
    Ok(Json(state.services.network.id_tags().await?))
}

pub(crate) async fn upsert_id_tag(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<IdTag>)> {
    caller.require_write()?;
    let new: NewIdTag = body(&bytes)?;
    let tag = state.services.network.save_id_tag(new).await?;
    Ok((StatusCode::CREATED, Json(tag)))
}

pub(crate) async fn delete_id_tag(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(tag): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    state.services.network.delete_id_tag(&tag).await?;
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
