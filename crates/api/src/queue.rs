//! Queue numbers, wait estimates, diversion and the station card over HTTP. The queue service
//! (`chargeops_services::queue`) keeps the tickets, calls them and decides what each audience
//! sees; this module reads the optional bearer token, checks that staff-only routes have staff,
//! and maps requests and answers to JSON.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chargeops_core::secret::token_digest;
use chargeops_services::queue::{
    Audience, CallRequest, Diversion, DiversionRequest, DiversionStats, STAFF, Started,
    StationCard, StationQueue, TakeRequest, TicketView, WaitEstimate, WaitRequest,
};

use crate::error::ErrorBody;
use crate::{ApiError, AppState, Caller};

use crate::error::{ApiResult, body, query};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(station_queue, take_number))
        .routes(routes!(station_wait))
        .routes(routes!(get_ticket, cancel_ticket))
        .routes(routes!(call_ticket))
        .routes(routes!(start_ticket))
        .routes(routes!(skip_ticket))
        .routes(routes!(requeue_ticket))
        .routes(routes!(diversion))
        .routes(routes!(diversion_stats))
        .routes(routes!(station_card))
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

#[utoipa::path(
    get,
    path = "/api/v1/stations/{id}/queue",
    tag = "queue",
    summary = "A station's queue",
    description = "Public: numbers, states and positions, never ids or contacts. With a token: ids, and contacts (full for staff, masked otherwise). Also `waiting`, `called`, `charging`, `max_waiting`, `plug_in_secs` and `estimated_wait_s` for a new number.",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "OK", body = StationQueue),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
    security(()),
)]
async fn station_queue(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<StationQueue>> {
    let who = audience(&state, &headers).await?;
    Ok(Json(state.services.queue.station_queue(&id, who).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TakeBody {
    contact: Option<String>,
    /// The station the driver was at when a diversion sent them here.
    diverted_from: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/stations/{id}/queue",
    tag = "queue",
    summary = "Take a number",
    description = r#"Public. Body `{"contact": "..."}`: a phone number (11-digit mainland mobile, or +country number) or a plate (湘A12345). Staff may leave `contact` out to hand out a paper number. Optional `diverted_from`: the station a diversion sent the driver from. Answers 201 with the ticket, including its `id` (keep it: it follows and cancels the ticket). A ticket: `id`, `number`, `station_id`, `position` (1 is next; null unless waiting), `state` (waiting, called, charging, done, cancelled, expired), `estimated_wait_s`, `called_at`, `plug_by`, `charger_id`, `connector_id` (when called), `created_at`, `ended_at`, `source`. `reservation`: null, or the called ticket's reservation on an OCPP charger: `status` (the charger's answer to ReserveNow in lower case: accepted, faulted, occupied, rejected, unavailable; or pending, offline, timeout, error), `reservation_id`, `charger_id`, `evse_id`, `connector_id`, `expiry` (the ticket's `plug_by`), `holding` (the platform accepts its tag there), `ended` (charging, cancelled, no_show, returned), `cancel_status` (the answer to CancelReservation, when sent), and for the holder and staff `id_tag`: the tag the charger lets start on the reserved connector. The queue holds the connector whatever the charger answers."#,
    params(("id" = String, Path)),
    request_body = TakeBody,
    responses(
        (status = 201, description = "the ticket", body = TicketView),
        (status = 400, description = "`invalid_contact` or bad body", body = ErrorBody),
        (status = 404, description = "unknown station", body = ErrorBody),
        (status = 409, description = "`already_queued` (this contact holds a number here) or `queue_full`", body = ErrorBody),
    ),
    security(()),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/queue/{ticket}",
    tag = "queue",
    summary = "Follow a ticket",
    description = "Public by its id. A ticket: `id`, `number`, `station_id`, `position` (1 is next; null unless waiting), `state` (waiting, called, charging, done, cancelled, expired), `estimated_wait_s`, `called_at`, `plug_by`, `charger_id`, `connector_id` (when called), `created_at`, `ended_at`, `source`. `reservation`: null, or the called ticket's reservation on an OCPP charger: `status` (the charger's answer to ReserveNow in lower case: accepted, faulted, occupied, rejected, unavailable; or pending, offline, timeout, error), `reservation_id`, `charger_id`, `evse_id`, `connector_id`, `expiry` (the ticket's `plug_by`), `holding` (the platform accepts its tag there), `ended` (charging, cancelled, no_show, returned), `cancel_status` (the answer to CancelReservation, when sent), and for the holder and staff `id_tag`: the tag the charger lets start on the reserved connector. The queue holds the connector whatever the charger answers.",
    params(("ticket" = String, Path, description = "the ticket's unguessable id")),
    responses(
        (status = 200, description = "OK", body = TicketView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
    security(()),
)]
async fn get_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<TicketView>> {
    let who = audience(&state, &headers).await?;
    Ok(Json(state.services.queue.ticket(&id, who).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/queue/{ticket}",
    tag = "queue",
    summary = "Cancel a ticket",
    description = "Public by its id. A waiting or called ticket becomes cancelled and is never called; 409 `invalid_state` otherwise.",
    params(("ticket" = String, Path, description = "the ticket's unguessable id")),
    responses(
        (status = 200, description = "the cancelled ticket", body = TicketView),
        (status = 404, description = "unknown ticket", body = ErrorBody),
        (status = 409, description = "`invalid_state`", body = ErrorBody),
    ),
    security(()),
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/queue/{ticket}/start",
    tag = "queue",
    summary = "The driver of a called ticket starts charging at the connector the charger reserved for it, without a card: a remote start with the ticket's own tag (no token: the ticket id is the capability)",
    params(("ticket" = String, Path, description = "the ticket's unguessable id")),
    responses(
        (status = 200, description = "the charger's answer, `{status, response, charger_id, connector_id}` (status Accepted or Rejected)", body = Started),
        (status = 404, description = "unknown ticket", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the ticket is not called; `no_reservation`: the charger holds no reservation for it (a YKC charger, or one that refused); `charger_offline`", body = ErrorBody),
        (status = 504, description = "the charger did not answer in time", body = ErrorBody),
    ),
    security(()),
)]
async fn start_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Started>> {
    Ok(Json(state.services.queue.start_charging(&id).await?))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CallBody {
    /// A connector to reserve; otherwise a free one when there is one.
    charger_id: Option<String>,
    connector_id: Option<u32>,
}

#[utoipa::path(
    post,
    path = "/api/v1/queue/{ticket}/call",
    tag = "queue",
    summary = "Call a number (staff)",
    description = "Calls a waiting ticket now, reserving `charger_id` + `connector_id` when given, else a free connector when there is one, else none.",
    params(("ticket" = String, Path, description = "the ticket's unguessable id")),
    request_body = CallBody,
    responses(
        (status = 200, description = "the ticket", body = TicketView),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "not a staff role (admin, operator, dispatcher)", body = ErrorBody),
        (status = 404, description = "unknown ticket", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the ticket cannot do that now", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/queue/{ticket}/skip",
    tag = "queue",
    summary = "Skip a number (staff)",
    description = "A waiting or called ticket goes behind the next waiting one; its connector passes on.",
    params(("ticket" = String, Path, description = "the ticket's unguessable id")),
    responses(
        (status = 200, description = "the ticket", body = TicketView),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "not a staff role (admin, operator, dispatcher)", body = ErrorBody),
        (status = 404, description = "unknown ticket", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the ticket cannot do that now", body = ErrorBody),
    ),
)]
async fn skip_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<TicketView>> {
    staff(&state, &headers).await?;
    Ok(Json(state.services.queue.skip(&id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/queue/{ticket}/requeue",
    tag = "queue",
    summary = "Re-queue a number (staff)",
    description = "A waiting, called or expired ticket goes back to the end of the queue.",
    params(("ticket" = String, Path, description = "the ticket's unguessable id")),
    responses(
        (status = 200, description = "the ticket", body = TicketView),
        (status = 401, description = "no or unknown token", body = ErrorBody),
        (status = 403, description = "not a staff role (admin, operator, dispatcher)", body = ErrorBody),
        (status = 404, description = "unknown ticket", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the ticket cannot do that now", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/stations/{id}/wait",
    tag = "queue",
    summary = "A station's wait",
    description = "Public. Expected wait for a car joining now, from the connectors in use (session age and energy), connectors promised to called numbers, the queue and the station's session history. With `arrive_in_min` the queue is projected to the car's arrival, with `arrivals_per_hour` when given, else with the station's fitted arrival forecast for those minutes; the answer says which (`arrivals_source`: `caller` or `forecast`) and the rate used (`arrivals_per_hour`).",
    params(
        ("id" = String, Path),
        ("arrive_in_min" = Option<f64>, Query),
        ("arrivals_per_hour" = Option<f64>, Query),
    ),
    responses(
        (status = 200, description = "OK", body = WaitEstimate),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
    security(()),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/diversion",
    tag = "queue",
    summary = "Where to charge instead",
    description = "Public. For a car at or approaching `station` travelling `direction` (N, S, E, W; the station's own side by default) with `range_km` left (0-1500) and wanting `energy_kwh` (default 40): the station, downstream service areas within range and the opposite-direction twin (when its detour is within range), ranked by total time (driving off the route + waiting + charging). `suggestion` is the best option saving at least 10 minutes, with `saves_s`.",
    params(
        ("station" = String, Query),
        ("direction" = Option<String>, Query),
        ("range_km" = f64, Query),
        ("energy_kwh" = Option<f64>, Query),
    ),
    responses(
        (status = 200, description = "ranked options", body = Diversion),
        (status = 400, description = "bad range or direction", body = ErrorBody),
        (status = 404, description = "unknown station", body = ErrorBody),
        (status = 422, description = "`not_on_highway`: not a service area of the network file", body = ErrorBody),
    ),
    security(()),
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/diversion/stats",
    tag = "queue",
    summary = "Diversion counter",
    description = "Public. Suggestions given since start, tickets taken through a diversion in the last `hours` (default 24), numbered queues per station, most suggested routes.",
    params(("hours" = Option<i64>, Query)),
    responses(
        (status = 200, description = "OK", body = DiversionStats),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
    security(()),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/public/stations/{id}/card",
    tag = "queue",
    summary = "Station card",
    description = "Public. The station and up to 12 stations within `km` (default 80): live availability, waiting cars, distance, relation (downstream, opposite_direction, nearby), rated power and amenities.",
    params(("id" = String, Path), ("km" = Option<f64>, Query)),
    responses(
        (status = 200, description = "OK", body = StationCard),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
    security(()),
)]
async fn station_card(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<CardQuery>, QueryRejection>,
) -> ApiResult<Json<StationCard>> {
    let q = query(q)?;
    Ok(Json(state.services.queue.card(&id, q.km).await?))
}
