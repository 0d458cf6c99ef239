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
use crate::error::{ApiResult, query};

/// `GET /api/v1/stations/{id}/forecast?hours=24` or `?date=YYYY-MM-DD`.
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

/// `GET /api/v1/stations/{id}/plan?from=YYYY-MM-DD&to=YYYY-MM-DD`
pub(crate) async fn station_plan(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<PlanQuery>, QueryRejection>,
) -> ApiResult<Json<PlanView>> {
    let q = query(q)?;
    let s = &state.services;
    Ok(Json(s.forecasts.station_plan(&s.platform, &id, q).await?))
}
