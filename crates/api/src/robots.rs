//! Robot lots over HTTP: the staff API (layout, view, override, release), the public car
//! routes (a driver takes a place in a bay, like taking a queue number) and the robot interface
//! (a robot reports where it is and hears its task). The lots themselves are the lots service
//! (`chargeops_services::lots`).
//!
//! Who may call what:
//! - Any token reads a lot; `admin` and `operator` set it up, `admin` removes it; `admin`,
//!   `operator` and `dispatcher` override and release.
//! - Anyone adds a car (the answer's id is unguessable: knowing it is the capability to follow
//!   and cancel that car).
//! - A robot reports with HTTP Basic and its charger's OCPP credentials, checked by the gateway's
//!   own check.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chargeops_core::Role;
use chargeops_gateway::{charger_credentials_ok, valid_charger_id};
use chargeops_services::lots::{CarRequest, CarView, LotSetup, LotView, RobotAnswer, RobotReport};

use crate::error::ErrorBody;
use crate::error::{ApiResult, basic_unauthorized, body};
use crate::{ApiError, AppState, Caller};

/// Roles that run a lot's robots by hand.
const STAFF: &[Role] = &[Role::Admin, Role::Operator, Role::Dispatcher];

// ---------------------------------------------------------------------------------------------
// Routes: staff (nested under `/api/v1`, behind the token and audit layers).

/// The stations that have a robot lot, so the station panel can link a lot page without asking
/// every station it opens for a lot it most likely does not have.
#[utoipa::path(
    get,
    path = "/api/v1/lots",
    tag = "robot lots",
    summary = "Stations that have a robot lot",
    description = r#"Any token. `{"stations": [station id, ...]}`: every station whose robot lot is set up (the station panel links their lot page, `/lot?station=ID`)."#,
    responses(
        (status = 200, description = "the stations with a robot lot", body = LotStations),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn list_lots(State(state): State<Arc<AppState>>) -> ApiResult<Json<LotStations>> {
    let stations = state.services.lots.stations().await?;
    Ok(Json(LotStations { stations }))
}

/// The stations with a robot lot.
#[derive(Serialize, ToSchema)]
pub(crate) struct LotStations {
    stations: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/stations/{id}/lot",
    tag = "robot lots",
    summary = "A station's robot lot",
    description = "Any token. The lot view: `station_id`, `now`, `bays` ([{x, y}], index = bay number, from 0), `dock` {x, y}, `fleet`, `max_car_kwh`, `robot_timeout_s`, `robots` (each: `id` (its charger id), `x`, `y`, `battery_kwh`, `battery_pct`, `state` idle|to_car|charging|to_dock|docked|offline, `reported_state`, `last_report_at`, `task` ({kind: car, car, bay, x, y, energy_kwh} | {kind: dock, x, y} | {kind: stay}), `override`, `online`, `fault`), `cars` (active ones in arrival order, then the last 50 ended ones), `stats` {waiting, assigned, charging, served, mean_wait_s, robots_online}.",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "the lot view", body = LotView),
        (status = 401, description = "no token", body = ErrorBody),
        (status = 404, description = "unknown station or no lot", body = ErrorBody),
    ),
)]
pub(crate) async fn get_lot(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<LotView>> {
    Ok(Json(state.services.lots.lot(&id).await?))
}

#[utoipa::path(
    put,
    path = "/stations/{id}/lot",
    tag = "robot lots",
    summary = "Set up a robot lot",
    description = "Admin, operator. Replaces the layout and keeps the state of the robots and cars that remain (a robot that leaves gives its car back to waiting; a car whose bay is gone is cancelled). `bays`: a number (a typical service-area layout; `dock` then defaults to its dock at (-15, 0)) or a list of points (`dock` required). `fleet` keys are optional (robot_kwh, robot_kw, speed_mps, dock_kw, plug_s, drive_kwh_per_km); `fleet.robots` is ignored: the robots are `robots`, charger ids of this station. Stored; reloaded at start. Answers the lot view.",
    params(("id" = String, Path)),
    request_body = LotSetup,
    responses(
        (status = 200, description = "the lot view", body = LotView),
        (status = 400, description = "bad layout or fleet, or a robot that is not a charger of this station", body = ErrorBody),
        (status = 403, description = "role may not", body = ErrorBody),
        (status = 404, description = "unknown station", body = ErrorBody),
    ),
)]
pub(crate) async fn put_lot(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<LotView>> {
    caller.require_write()?;
    let setup: LotSetup = body(&bytes)?;
    Ok(Json(state.services.lots.set_up(&id, setup, &caller).await?))
}

#[utoipa::path(
    delete,
    path = "/stations/{id}/lot",
    tag = "robot lots",
    summary = "Remove a robot lot",
    description = "Admin.",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "removed"),
        (status = 403, description = "role may not", body = ErrorBody),
        (status = 404, description = "no lot", body = ErrorBody),
    ),
)]
pub(crate) async fn delete_lot(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_role(&[Role::Admin])?;
    state.services.lots.remove(&id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    robot: String,
    car: String,
}

#[utoipa::path(
    post,
    path = "/stations/{id}/lot/assign",
    tag = "robot lots",
    summary = "Send a robot to a car by hand",
    description = r#"Admin, operator, dispatcher. Body `{"robot": ID, "car": ID}`. Checked like the dispatcher's own decisions: the robot available, the car waiting (or on its way from another robot, which is then freed), and the battery rule (drive there, give the car what it is owed, drive back to the dock). The pair is pinned: the dispatcher leaves it alone until the car is served or the robot released. Answers the lot view."#,
    params(("id" = String, Path)),
    request_body = AssignBody,
    responses(
        (status = 200, description = "the lot view", body = LotView),
        (status = 403, description = "role may not", body = ErrorBody),
        (status = 404, description = "no lot, or robot or car not in it", body = ErrorBody),
        (status = 409, description = "`conflict`: robot not available, car not waiting, or `battery too low: holds .. kWh, needs .. kWh ...`", body = ErrorBody),
    ),
)]
pub(crate) async fn assign(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<LotView>> {
    caller.require_role(STAFF)?;
    let b: AssignBody = body(&bytes)?;
    let lots = &state.services.lots;
    Ok(Json(lots.assign(&id, &b.robot, &b.car, &caller).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    robot: String,
}

#[utoipa::path(
    post,
    path = "/stations/{id}/lot/release",
    tag = "robot lots",
    summary = "End a robot's car task",
    description = r#"Admin, operator, dispatcher. Body `{"robot": ID}`. The car goes back to waiting with its arrival time and the energy still owed; the dispatcher does not give it back to the same robot. Answers the lot view."#,
    params(("id" = String, Path)),
    request_body = ReleaseBody,
    responses(
        (status = 200, description = "the lot view", body = LotView),
        (status = 403, description = "role may not", body = ErrorBody),
        (status = 404, description = "no lot, or robot not in it", body = ErrorBody),
    ),
)]
pub(crate) async fn release(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<LotView>> {
    caller.require_role(STAFF)?;
    let b: ReleaseBody = body(&bytes)?;
    Ok(Json(
        state.services.lots.release(&id, &b.robot, &caller).await?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Routes: public (cars) and robots.

/// Routes outside the bearer-token layer: cars and the robot interface.
pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(add_car))
        .routes(routes!(get_car, cancel_car))
        .routes(routes!(report))
}

#[utoipa::path(
    post,
    path = "/api/v1/stations/{id}/lot/cars",
    tag = "robot lots",
    summary = "A car takes a place in the robot lot",
    description = r#"Public. Body `{"bay": N, "energy_kwh": 30, "max_power_kw": 120, "plate": "湘A12345", "patience_s": 3600}` (`max_power_kw` defaults to the robots' power; `plate` and `patience_s` optional). Answers 201 with the car; its `id` is unguessable: keep it, it follows and cancels the car. A car: `id`, `station_id`, `bay`, `x`, `y`, `plate`, `energy_kwh` (asked), `remaining_kwh` (still owed), `max_power_kw`, `patience_s`, `arrived_at`, `state` (waiting, assigned, charging, served, left, cancelled), `robot`, `wait_s` (arrival until charging began, or until now), `served_at`, `ended_at`."#,
    params(("id" = String, Path)),
    request_body = CarRequest,
    responses(
        (status = 201, description = "the car", body = CarView),
        (status = 400, description = "no such bay, energy_kwh not above 0 or above what a full robot can give (`max_car_kwh`), max_power_kw not in (0, 1000], bad body", body = ErrorBody),
        (status = 404, description = "unknown station or no lot", body = ErrorBody),
        (status = 409, description = "that bay already holds an active car", body = ErrorBody),
    ),
    security(()),
)]
async fn add_car(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<CarView>)> {
    let car: CarRequest = body(&bytes)?;
    let view = state.services.lots.add_car(&id, car).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/api/v1/lot-cars/{car}",
    tag = "robot lots",
    summary = "A car in a robot lot",
    description = "Public: the id is the capability. A car: `id`, `station_id`, `bay`, `x`, `y`, `plate`, `energy_kwh` (asked), `remaining_kwh` (still owed), `max_power_kw`, `patience_s`, `arrived_at`, `state` (waiting, assigned, charging, served, left, cancelled), `robot`, `wait_s` (arrival until charging began, or until now), `served_at`, `ended_at`.",
    params(("car" = String, Path)),
    responses(
        (status = 200, description = "the car", body = CarView),
        (status = 404, description = "unknown car", body = ErrorBody),
    ),
    security(()),
)]
async fn get_car(
    State(state): State<Arc<AppState>>,
    Path(car): Path<String>,
) -> ApiResult<Json<CarView>> {
    Ok(Json(state.services.lots.car(&car).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/lot-cars/{car}",
    tag = "robot lots",
    summary = "The driver leaves",
    description = "Public. The car is `cancelled`; a robot on its way is freed. Answers the car.",
    params(("car" = String, Path)),
    responses(
        (status = 200, description = "the car", body = CarView),
        (status = 404, description = "unknown car", body = ErrorBody),
        (status = 409, description = "the car has been served", body = ErrorBody),
    ),
    security(()),
)]
async fn cancel_car(
    State(state): State<Arc<AppState>>,
    Path(car): Path<String>,
) -> ApiResult<Json<CarView>> {
    Ok(Json(state.services.lots.cancel_car(&car).await?))
}

/// 401 for a robot.
fn robot_unauthorized() -> Response {
    basic_unauthorized(
        "missing or wrong robot credentials: HTTP Basic with the robot's charger id and OCPP password",
    )
}

#[utoipa::path(
    post,
    operation_id = "robot_report",
    path = "/api/v1/robots/{id}/report",
    tag = "robot lots",
    summary = "A robot reports and hears its task",
    description = r#"The robot itself, with HTTP Basic: its charger id and OCPP password (the OCPP connection's own check). Body `{"x", "y", "battery_kwh", "state": idle|driving|charging|docked|fault, "car"?}`. Answers `{"task": ..., "report_every_s": 5, "station_id", "state", "override"}`; the task as in the lot view. A battery that no longer covers the car it was sent to (from where it is) frees the car and sends the robot to the dock. A robot silent for `robot_timeout_s` is offline and its car goes back to waiting. At a car the robot starts an OCPP transaction on its connector 1 with idTag = the car id's first 20 characters and stops it when it has given `energy_kwh`."#,
    params(("id" = String, Path, description = "the robot's charger id")),
    request_body = RobotReport,
    responses(
        (status = 200, description = "the robot's task", body = RobotAnswer),
        (status = 400, description = "non-finite or negative battery, battery above 105 % of capacity, unknown state, a position more than 500 m from every bay and the dock", body = ErrorBody),
        (status = 401, description = "wrong or missing Basic credentials", body = ErrorBody),
        (status = 404, description = "the robot is in no lot", body = ErrorBody),
    ),
    security(("robot" = [])),
)]
async fn report(
    State(state): State<Arc<AppState>>,
    Path(robot): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    if !valid_charger_id(&robot) {
        return Ok(robot_unauthorized());
    }
    let Some(charger) = state.store.get_charger(&robot).await? else {
        return Ok(robot_unauthorized());
    };
    if !charger_credentials_ok(&headers, &charger) {
        tracing::warn!(robot = %robot, "robot report refused: wrong or missing credentials");
        return Ok(robot_unauthorized());
    }
    let report: RobotReport = body(&bytes)?;
    let lots = &state.services.lots;
    let answer: RobotAnswer = lots.report(&robot, &charger.station_id, report).await?;
    Ok(Json(answer).into_response())
}
