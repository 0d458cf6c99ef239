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

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use chargeops_core::Role;
use chargeops_gateway::{charger_credentials_ok, valid_charger_id};
use chargeops_services::lots::{CarRequest, LotSetup, RobotReport};

use crate::error::{ApiResult, basic_unauthorized, body};
use crate::{ApiError, AppState, Caller};

/// Roles that run a lot's robots by hand.
const STAFF: &[Role] = &[Role::Admin, Role::Operator, Role::Dispatcher];

// ---------------------------------------------------------------------------------------------
// Routes: staff (nested under `/api/v1`, behind the token and audit layers).

/// The stations that have a robot lot, so the station panel can link a lot page without asking
/// every station it opens for a lot it most likely does not have.
pub(crate) async fn list_lots(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let stations = state.services.lots.stations().await?;
    Ok(Json(json!({ "stations": stations })))
}

pub(crate) async fn get_lot(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.services.lots.lot(&id).await?))
}

pub(crate) async fn put_lot(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require_write()?;
    let setup: LotSetup = body(&bytes)?;
    Ok(Json(state.services.lots.set_up(&id, setup, &caller).await?))
}

pub(crate) async fn delete_lot(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_role(&[Role::Admin])?;
    state.services.lots.remove(&id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    robot: String,
    car: String,
}

pub(crate) async fn assign(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require_role(STAFF)?;
    let b: AssignBody = body(&bytes)?;
    let lots = &state.services.lots;
    Ok(Json(lots.assign(&id, &b.robot, &b.car, &caller).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    robot: String,
}

pub(crate) async fn release(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require_role(STAFF)?;
    let b: ReleaseBody = body(&bytes)?;
    Ok(Json(
        state.services.lots.release(&id, &b.robot, &caller).await?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Routes: public (cars) and robots.

/// Routes outside the bearer-token layer: cars and the robot interface.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/stations/{id}/lot/cars", post(add_car))
        .route("/api/v1/lot-cars/{car}", get(get_car).delete(cancel_car))
        .route("/api/v1/robots/{id}/report", post(report))
}

async fn add_car(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let car: CarRequest = body(&bytes)?;
    let view = state.services.lots.add_car(&id, car).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn get_car(
    State(state): State<Arc<AppState>>,
    Path(car): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.services.lots.car(&car).await?))
}

async fn cancel_car(
    State(state): State<Arc<AppState>>,
    Path(car): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.services.lots.cancel_car(&car).await?))
}

/// 401 for a robot.
fn robot_unauthorized() -> Response {
    basic_unauthorized(
        "missing or wrong robot credentials: HTTP Basic with the robot's charger id and OCPP password",
    )
}

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
    let answer = lots.report(&robot, &charger.station_id, report).await?;
    Ok(Json(answer).into_response())
}
