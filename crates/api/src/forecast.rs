//! Forecasts over HTTP: per station, hourly busy connectors, arrivals and expected queue with
//! P50 and P90 for the next hours or a chosen day; the congestion warnings; the best time to
//! charge; a station's plan for a peak period. What they say is the forecasts service's
//! (`chargeops_services::forecasts`).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use chargeops_services::forecasts::{
    ForecastQuery, ForecastView, MapForecast, MapQuery, PlanQuery, PlanView, Warnings,
    WarningsQuery,
};

use crate::AppState;
use crate::error::ErrorBody;
use crate::error::{ApiResult, query};

/// `GET /api/v1/stations/{id}/forecast?hours=24` or `?date=YYYY-MM-DD`.
#[utoipa::path(
    get,
    path = "/stations/{id}/forecast",
    tag = "forecasts",
    summary = "Hourly forecast of a station (busy connectors, arrivals, expected queue, probability of a queue; P50 and P90) for the next hours or for one local day, fitted on its session history with the holiday calendar",
    params(
        ("id" = String, Path),
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "1 to 168, default 24"),
        ("date" = Option<String>, Query, format = Date, description = "a local day, YYYY-MM-DD, today to 366 days ahead; instead of hours"),
    ),
    responses(
        (status = 200, description = "forecast", body = ForecastView),
        (status = 400, description = "bad hours or date", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such station", body = ErrorBody),
    ),
)]
pub(crate) async fn station_forecast(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<ForecastQuery>, QueryRejection>,
) -> ApiResult<Json<ForecastView>> {
    let q = query(q)?;
    let s = &state.services;
    Ok(Json(
        s.forecasts.station_forecast(&s.platform, &id, q).await?,
    ))
}

/// `GET /api/v1/forecast/warnings?hours=24&min_probability=0.5`
#[utoipa::path(
    get,
    path = "/forecast/warnings",
    tag = "forecasts",
    summary = "Congestion warnings: stations with hours whose probability of a queue reaches min_probability, sorted by severity",
    params(
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "1 to 168, default 24"),
        ("min_probability" = Option<f64>, Query, minimum = 0, maximum = 1, description = "0 to 1, default 0.5"),
    ),
    responses(
        (status = 200, description = "warnings", body = Warnings),
        (status = 400, description = "bad hours or min_probability", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn warnings(
    State(state): State<Arc<AppState>>,
    q: Result<Query<WarningsQuery>, QueryRejection>,
) -> ApiResult<Json<Warnings>> {
    let q = query(q)?;
    let s = &state.services;
    Ok(Json(s.forecasts.warnings(&s.platform, q).await?))
}

/// `GET /api/v1/forecast/map?hours=24`: every station's hourly probability of a queue, compact,
/// for the map's forecast layer.
#[utoipa::path(
    get,
    path = "/forecast/map",
    tag = "forecasts",
    summary = "Every station's hourly probability of a queue, expected queue and busy connectors, compact, for the map's forecast layer",
    params(
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "1 to 168, default 24"),
    ),
    responses(
        (status = 200, description = "map forecast", body = MapForecast),
        (status = 400, description = "bad hours", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn map_forecast(
    State(state): State<Arc<AppState>>,
    q: Result<Query<MapQuery>, QueryRejection>,
) -> ApiResult<Json<MapForecast>> {
    let q = query(q)?;
    let s = &state.services;
    Ok(Json(s.forecasts.map(&s.platform, q).await?))
}

/// `GET /api/v1/stations/{id}/best-time?hours=24` (and the same without a token under
/// `/api/v1/public/`): when to charge here, and where else. Proxies may keep it 30 s.
#[utoipa::path(
    get,
    path = "/stations/{id}/best-time",
    tag = "forecasts",
    summary = "For drivers: the best hours to charge at this station within the horizon, the hours to avoid, and a nearby station with a shorter wait soon",
    params(
        ("id" = String, Path),
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "1 to 168, default 24"),
    ),
    responses(
        (status = 200, description = "best time", body = chargeops_services::forecasts::BestTime),
        (status = 400, description = "bad hours", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such station", body = ErrorBody),
    ),
)]
pub(crate) async fn best_time(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<MapQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let s = &state.services;
    let body = s.forecasts.best_time(&s.platform, &id, q).await?;
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=30"),
    );
    Ok(resp)
}

/// The driver page's best time, without a token.
#[utoipa::path(
    get,
    path = "/public/stations/{id}/best-time",
    tag = "forecasts",
    summary = "The same best-time answer without a token, for the driver page. Cacheable for 30 s",
    params(
        ("id" = String, Path),
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "1 to 168, default 24"),
    ),
    responses(
        (status = 200, description = "best time", body = chargeops_services::forecasts::BestTime),
        (status = 400, description = "bad hours", body = ErrorBody),
        (status = 404, description = "no such station", body = ErrorBody),
    ),
    security(()),
)]
pub(crate) async fn public_best_time(
    state: State<Arc<AppState>>,
    id: Path<String>,
    q: Result<Query<MapQuery>, QueryRejection>,
) -> ApiResult<Response> {
    best_time(state, id, q).await
}

/// `GET /api/v1/stations/{id}/plan?from=YYYY-MM-DD&to=YYYY-MM-DD`
#[utoipa::path(
    get,
    path = "/stations/{id}/plan",
    tag = "forecasts",
    summary = "The station's plan for a peak period (whole local days): per hour arrivals and busy connectors, capacity gap, extra connectors, mobile units and robot hours for the target wait; neighbours to divert to; advice for drivers",
    params(
        ("id" = String, Path),
        ("from" = String, Query, format = Date),
        ("to" = String, Query, format = Date),
        ("target_wait_minutes" = Option<f64>, Query, description = "1 to 240, default 15"),
        ("load" = Option<String>, Query, description = "p50 (default) or p90: the demand each hour is planned for One of `p50`, `p90`."),
    ),
    responses(
        (status = 200, description = "plan", body = PlanView),
        (status = 400, description = "missing or malformed dates, from after to, a period in the past, too long or too far ahead", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such station", body = ErrorBody),
    ),
)]
pub(crate) async fn station_plan(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<PlanQuery>, QueryRejection>,
) -> ApiResult<Json<PlanView>> {
    let q = query(q)?;
    let s = &state.services;
    Ok(Json(s.forecasts.station_plan(&s.platform, &id, q).await?))
}
