//! Mobile charging units across the province over HTTP: the units, their reports and the
//! relocation plan, served from the units service (`chargeops_services::units`), which keeps
//! the units, plans them and re-plans.
//!
//! Who may do what:
//! - `admin` and `operator` add units and set their trackers' passwords; `admin` removes them.
//! - `admin`, `operator` and `dispatcher` report a unit's position and status and ask for a
//!   re-plan.
//! - A unit's own tracker reports with HTTP Basic credentials of its own (the unit id and the
//!   `tracker_password` staff gave it) on `POST /mobile-units/{id}/track`, outside the
//!   bearer-token layer: it may move its unit and nothing else, and cannot declare a breakdown
//!   (staff do).
//! - Every token reads the units and the plan.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use chargeops_core::Role;
use chargeops_gateway::basic_password_of;
use chargeops_services::units::{self as service, PlanView, Reporter, UnitView};

use crate::error::ErrorBody;
use crate::error::{ApiResult, basic_unauthorized, body, query};
use crate::{AppState, Caller};

/// Roles that move units and ask for plans.
const FIELD: &[Role] = &[Role::Admin, Role::Operator, Role::Dispatcher];

// The bodies keep the names they always had: serde names a body's type in the message of a
// body that is not an object ("expected struct Report").

/// The body of a report, from staff or a tracker.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Report {
    lat: f64,
    lon: f64,
    status: String,
    station_id: Option<String>,
}

impl TryFrom<Report> for service::Report {
    type Error = chargeops_services::Error;

    fn try_from(b: Report) -> Result<Self, Self::Error> {
        Ok(service::Report {
            status: b.status.parse()?,
            lat: b.lat,
            lon: b.lon,
            station_id: b.station_id,
        })
    }
}

fn report_of(bytes: &Bytes) -> ApiResult<service::Report> {
    let r: Report = body(bytes)?;
    Ok(r.try_into()?)
}

/// `GET /api/v1/mobile-units`
#[utoipa::path(
    get,
    path = "/mobile-units",
    tag = "mobile units",
    summary = "Every mobile unit (any token): kind, guns, position, status (ready, driving, serving, broken), the station it is at or driving to, and its next move in the current plan",
    responses(
        (status = 200, description = "units in id order", body = Vec<UnitView>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn list_units(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<UnitView>>> {
    Ok(Json(state.services.units.views().await?))
}

/// `POST /api/v1/mobile-units`
#[utoipa::path(
    post,
    path = "/mobile-units",
    tag = "mobile units",
    summary = "Add a mobile unit at a station (admin, operator); re-plans",
    request_body = service::NewUnit,
    responses(
        (status = 201, description = "the unit", body = UnitView),
        (status = 400, description = "bad request: unknown kind or status, guns out of range, a position outside China, bad JSON", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "the station does not exist", body = ErrorBody),
        (status = 409, description = "a unit with this id exists", body = ErrorBody),
    ),
)]
pub(crate) async fn create_unit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<UnitView>)> {
    caller.require_write()?;
    let new: service::NewUnit = body(&bytes)?;
    let unit = state.services.units.create(new, &caller).await?;
    Ok((StatusCode::CREATED, Json(unit)))
}

/// `POST /api/v1/mobile-units/{id}/report`
#[utoipa::path(
    post,
    path = "/mobile-units/{id}/report",
    tag = "mobile units",
    summary = "A unit's position and status (admin, operator, dispatcher; a unit's own tracker uses `/track`). `broken` leaves it out of the plan (re-planned at once, its stays go to the others) until it reports `ready`; a broken unit may report only `broken` or `ready`",
    params(("id" = String, Path)),
    request_body = Report,
    responses(
        (status = 200, description = "the unit", body = UnitView),
        (status = 400, description = "bad request: unknown kind or status, guns out of range, a position outside China, bad JSON", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "no such unit or station", body = ErrorBody),
        (status = 409, description = "the unit is broken: report ready or broken", body = ErrorBody),
    ),
)]
pub(crate) async fn report_unit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<UnitView>> {
    caller.require_role(FIELD)?;
    let r = report_of(&bytes)?;
    let units = &state.services.units;
    let u = units.report(&id, &r, Reporter::Staff).await?;
    Ok(Json(units.view(u).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TrackerBody {
    password: String,
}

/// `PUT /api/v1/mobile-units/{id}/tracker`: gives the unit's tracker a new password (the old
/// one stops working at once).
#[utoipa::path(
    put,
    path = "/mobile-units/{id}/tracker",
    tag = "mobile units",
    summary = "Sets or rotates the password of the unit's own tracker (admin, operator); the old one stops working at once",
    params(("id" = String, Path)),
    request_body = TrackerBody,
    responses(
        (status = 204, description = "set"),
        (status = 400, description = "a password shorter than 12 or longer than 128 characters, or with control characters", body = ErrorBody),
        (status = 404, description = "unknown unit", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn set_tracker(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    let b: TrackerBody = body(&bytes)?;
    state
        .services
        .units
        .set_tracker(&id, &b.password, &caller)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/mobile-units/{id}/track`: the unit's own tracker reports, with HTTP Basic
/// (unit id, tracker password). The answer is the unit as the plan sees it, its next move
/// included.
#[utoipa::path(
    post,
    path = "/api/v1/mobile-units/{id}/track",
    tag = "mobile units",
    summary = "The unit's own tracker reports its position and status, with HTTP Basic (unit id, tracker password) instead of a bearer token. Same body as `/report`, but a tracker cannot report `broken`, and its reports are ignored while staff have the unit broken. The answer is the unit with its next planned move",
    params(("id" = String, Path)),
    request_body = Report,
    responses(
        (status = 200, description = "the unit", body = UnitView),
        (status = 400, description = "bad request: unknown kind or status, guns out of range, a position outside China, bad JSON", body = ErrorBody),
        (status = 401, description = "missing or wrong tracker credentials (asks for Basic)", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "no such unit or station", body = ErrorBody),
        (status = 409, description = "the unit is broken: report ready or broken", body = ErrorBody),
    ),
    security(("unit_tracker" = [])),
)]
pub(crate) async fn track_unit(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let units = &state.services.units;
    let ok = match basic_password_of(&headers, &id) {
        Some(password) => units.tracker_ok(&id, &password).await?,
        None => false,
    };
    if !ok {
        tracing::warn!(unit_id = %id.chars().take(48).collect::<String>(), "unit tracker report refused: wrong or missing credentials");
        return Ok(basic_unauthorized(
            "missing or wrong tracker credentials: HTTP Basic with the unit id and its tracker password",
        ));
    }
    let r = report_of(&bytes)?;
    let u = units.report(&id, &r, Reporter::Tracker).await?;
    Ok(Json(units.view(u).await?).into_response())
}

/// `DELETE /api/v1/mobile-units/{id}`
#[utoipa::path(
    delete,
    path = "/mobile-units/{id}",
    tag = "mobile units",
    summary = "Remove a mobile unit (admin); re-plans",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "no such unit", body = ErrorBody),
    ),
)]
pub(crate) async fn delete_unit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_role(&[Role::Admin])?;
    state.services.units.delete(&id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct PlanQuery {
    hours: Option<usize>,
}

/// `GET /api/v1/mobile-units/plan?hours=24`: the current plan, its first `hours` hours. The
/// first call after a start plans at once when there are units.
#[utoipa::path(
    get,
    path = "/mobile-units/plan",
    tag = "mobile units",
    summary = "The current relocation plan (any token), its first `hours` hours (1-48, default 24; the totals are those of the whole plan). Re-made when forecasts are refitted and change, when a unit is added, removed or reported broken, and at least every platform hour; each plan is announced by a `units_planned` event",
    params(("hours" = Option<i64>, Query, minimum = 1, maximum = 48)),
    responses(
        (status = 200, description = "the plan", body = PlanView),
        (status = 400, description = "bad request: unknown kind or status, guns out of range, a position outside China, bad JSON", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn get_plan(
    State(state): State<Arc<AppState>>,
    q: Result<Query<PlanQuery>, QueryRejection>,
) -> ApiResult<Json<PlanView>> {
    let q = query(q)?;
    Ok(Json(state.services.units.plan(q.hours).await?))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PlanRequest {
    hours: Option<usize>,
}

/// `POST /api/v1/mobile-units/plan` (`{"hours": N}` optional, and kept for later plans):
/// re-plans now and answers the new plan.
#[utoipa::path(
    post,
    path = "/mobile-units/plan",
    tag = "mobile units",
    summary = "Re-plan now (admin, operator, dispatcher); `hours` (1-48) sets the horizon of this and later plans",
    request_body = PlanRequest,
    responses(
        (status = 200, description = "the new plan", body = PlanView),
        (status = 400, description = "bad request: unknown kind or status, guns out of range, a position outside China, bad JSON", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn post_plan(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<Json<PlanView>> {
    caller.require_role(FIELD)?;
    let req: PlanRequest = body(&bytes)?;
    Ok(Json(
        state
            .services
            .units
            .request_plan(req.hours, &caller)
            .await?,
    ))
}
