//! Queue numbers, wait estimates, diversion and the station card over HTTP. The queue service
//! (`chargeops_services::queue`) keeps the tickets, calls them and decides what each audience
//! sees; this module reads the optional bearer token, checks that staff-only routes have staff,
//! and maps requests and answers to JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use chargeops_core::secret::token_digest;
use chargeops_services::queue::{
    Audience, CallRequest, Diversion, DiversionRequest, DiversionStats, STAFF, Started,
    StationCard, StationQueue, TakeRequest, TicketView, WaitEstimate, WaitRequest,
};

use crate::{ApiError, AppState, Caller};

use crate::error::{ApiResult, body, query};

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/v1/stations/{id}/queue",
            get(station_queue).post(take_number),
        )
        .route("/api/v1/stations/{id}/wait", get(station_wait))
        .route(
            "/api/v1/queue/{ticket}",
            get(get_ticket).delete(cancel_ticket),
        )
        .route("/api/v1/queue/{ticket}/call", post(call_ticket))
        .route("/api/v1/queue/{ticket}/start", post(start_ticket))
        .route("/api/v1/queue/{ticket}/skip", post(skip_ticket))
        .route("/api/v1/queue/{ticket}/requeue", post(requeue_ticket))
        .route("/api/v1/diversion", get(diversion))
        .route("/api/v1/diversion/stats", get(diversion_stats))
        .route("/api/v1/public/stations/{id}/card", get(station_card))
}

// ---------------------------------------------------------------------------------------------
// Callers.

/// The caller when a bearer token is given; `None` without one. A token that is given but
/// unknown is refused rather than treated as public.
async fn caller(state: &AppState, headers: &HeaderMap) -> ApiResult<Option<Caller>> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = v
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let found = state
        .store
        .find_token(&token_digest(token))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Some(Caller {
        name: found.name,
        role: found.role,
        crew_id: found.crew_id,
    }))
}

async fn audience(state: &AppState, headers: &HeaderMap) -> ApiResult<Audience> {
    Ok(Audience::of(caller(state, headers).await?.as_ref()))
}

/// A staff token, or 401/403.
async fn staff(state: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    let c = caller(state, headers)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    c.require_role(STAFF)?;
    Ok(c)
}

// ---------------------------------------------------------------------------------------------
// Tickets.

async fn station_queue(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<StationQueue>> {
    let who = audience(&state, &headers).await?;
    Ok(Json(state.services.queue.station_queue(&id, who).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TakeBody {
    contact: Option<String>,
    /// The station the driver was at when a diversion sent them here.
    diverted_from: Option<String>,
}

async fn take_number(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    let who = audience(&state, &headers).await?;
    let b: TakeBody = body(&bytes)?;
    let req = TakeRequest {
        contact: b.contact,
        diverted_from: b.diverted_from,
    };
    let t = state.services.queue.take_number(&id, req, who).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

async fn get_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<TicketView>> {
    let who = audience(&state, &headers).await?;
    Ok(Json(state.services.queue.ticket(&id, who).await?))
}

async fn cancel_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<TicketView>> {
    let who = audience(&state, &headers).await?;
    Ok(Json(state.services.queue.cancel(&id, who).await?))
}

/// `POST /api/v1/queue/{ticket}/start`: the driver of a called ticket starts charging at the
/// connector the charger reserved for it, without a card. Answers like a charger command,
/// `{status, response}` with the charger's reply.
async fn start_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Started>> {
    Ok(Json(state.services.queue.start_charging(&id).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CallBody {
    /// A connector to reserve; otherwise a free one when there is one.
    charger_id: Option<String>,
    connector_id: Option<u32>,
}

async fn call_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<TicketView>> {
    staff(&state, &headers).await?;
    let b: CallBody = body(&bytes)?;
    let req = CallRequest {
        charger_id: b.charger_id,
        connector_id: b.connector_id,
    };
    Ok(Json(state.services.queue.call(&id, req).await?))
}

async fn skip_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<TicketView>> {
    staff(&state, &headers).await?;
    Ok(Json(state.services.queue.skip(&id).await?))
}

async fn requeue_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<TicketView>> {
    staff(&state, &headers).await?;
    Ok(Json(state.services.queue.requeue(&id).await?))
}

// ---------------------------------------------------------------------------------------------
// Waits, diversion, the station card.

#[derive(Deserialize)]
struct WaitQuery {
    /// Minutes until the car gets there; the arrival forecast fills the queue meanwhile.
    arrive_in_min: Option<f64>,
    /// Arrivals per hour while the car is on the way, when the caller has its own figure;
    /// otherwise the platform's fitted forecast for those hours is used.
    arrivals_per_hour: Option<f64>,
}

async fn station_wait(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> ApiResult<Json<WaitEstimate>> {
    let q = query(q)?;
    let req = WaitRequest {
        arrive_in_min: q.arrive_in_min,
        arrivals_per_hour: q.arrivals_per_hour,
    };
    Ok(Json(state.services.queue.wait(&id, req).await?))
}

#[derive(Deserialize)]
struct DiversionQuery {
    station: Option<String>,
    direction: Option<String>,
    range_km: Option<f64>,
    energy_kwh: Option<f64>,
}

async fn diversion(
    State(state): State<Arc<AppState>>,
    q: Result<Query<DiversionQuery>, QueryRejection>,
) -> ApiResult<Json<Diversion>> {
    let q = query(q)?;
    let station = q
        .station
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("station is required"))?;
    let range_km = q
        .range_km
        .ok_or_else(|| ApiError::bad_request("range_km is required"))?;
    let req = DiversionRequest {
        station,
        direction: q.direction,
        range_km,
        energy_kwh: q.energy_kwh,
    };
    Ok(Json(state.services.queue.diversion(req).await?))
}

#[derive(Deserialize)]
struct StatsQuery {
    hours: Option<u32>,
}

/// For the operations map: queues per station, diversion suggestions given since start, and
/// how many cars took one (tickets taken through a diversion).
async fn diversion_stats(
    State(state): State<Arc<AppState>>,
    q: Result<Query<StatsQuery>, QueryRejection>,
) -> ApiResult<Json<DiversionStats>> {
    let q = query(q)?;
    Ok(Json(state.services.queue.diversion_stats(q.hours).await?))
}

#[derive(Deserialize)]
struct CardQuery {
    km: Option<f64>,
}

async fn station_card(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<CardQuery>, QueryRejection>,
) -> ApiResult<Json<StationCard>> {
    let q = query(q)?;
    Ok(Json(state.services.queue.card(&id, q.km).await?))
}
