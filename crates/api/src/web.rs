//! The operator and driver pages, shipped inside the binary, and the few endpoints only they
//! need: the map's tile configuration, a station's busy-connector history, the network totals,
//! the stations with a robot lot, and the public (no token) station availability the driver
//! page reads.
//!
//! The pages are plain HTML, CSS and JavaScript modules from `web/`, embedded with
//! `include_bytes!` so that `cargo run` alone serves them: no front-end build step, nothing
//! fetched from the internet.

use std::sync::{Arc, OnceLock};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, middleware};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chargeops_services::network::{History, HistoryQuery, PublicQuery, Summary};

use crate::error::ErrorBody;
use crate::{ApiError, AppState, auth};

use crate::error::{ApiResult, query};

// ---------------------------------------------------------------------------------------------
// Embedded files.

struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ct:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            bytes: include_bytes!(concat!("../../../web/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const GEOJSON: &str = "application/geo+json";

/// Everything under `web/` the pages load. `web/geo/` is the bundled geography (its own
/// README names the source and licence).
static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("driver.html", HTML),
    asset!("plan.html", HTML),
    asset!("css/base.css", CSS),
    asset!("css/ops.css", CSS),
    asset!("css/driver.css", CSS),
    asset!("css/plan.css", CSS),
    asset!("js/api.js", JS),
    asset!("js/names.js", JS),
    asset!("js/stations.js", JS),
    asset!("js/map.js", JS),
    asset!("js/ops.js", JS),
    asset!("js/panel.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/driver.js", JS),
    asset!("js/forecast.js", JS),
    asset!("js/plan.js", JS),
    asset!("hotline.html", HTML),
    asset!("board.html", HTML),
    asset!("crew.html", HTML),
    asset!("css/cases.css", CSS),
    asset!("js/cases.js", JS),
    asset!("js/hotline.js", JS),
    asset!("js/board.js", JS),
    asset!("js/crew.js", JS),
    asset!("queue.html", HTML),
    asset!("staff.html", HTML),
    asset!("card.html", HTML),
    asset!("css/queue.css", CSS),
    asset!("js/queue.js", JS),
    asset!("js/staff.js", JS),
    asset!("js/card.js", JS),
    asset!("js/diversion.js", JS),
    asset!("css/diversion.css", CSS),
    asset!("js/units.js", JS),
    asset!("css/units.css", CSS),
    asset!("lot.html", HTML),
    asset!("css/lot.css", CSS),
    asset!("js/lot.js", JS),
    asset!("login.html", HTML),
    asset!("css/login.css", CSS),
    asset!("js/login.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("geo/hunan.geojson", GEOJSON),
    asset!("geo/hunan-prefectures.geojson", GEOJSON),
    asset!("geo/hunan-highways.geojson", GEOJSON),
];

fn asset(path: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, a)| a.path == path)
}

/// A strong ETag per embedded file, computed once: the files change only with the binary.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.bytes);
                let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    &tags[index]
}

/// Serves one embedded file. Pages and assets are revalidated on every load (`no-cache` with
/// an ETag, answered 304 when unchanged) so that a new binary is picked up at once without
/// hashed file names; the large geography may be kept for a day.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some((index, a)) = asset(path) else {
        return ApiError::not_found(format!("no asset {path}")).into_response();
    };
    let tag = etag(index);
    let cache = if path.starts_with("geo/") {
        "public, max-age=86400"
    } else {
        "no-cache"
    };
    let mut resp = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.content_type)], a.bytes).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if a.content_type == HTML {
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        if let Ok(v) = HeaderValue::from_str(&content_security_policy()) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    resp
}

/// Only our own origin, except map tiles from the configured tile server's origin.
fn content_security_policy() -> String {
    let tiles = tile_url().and_then(|u| origin_of(&u)).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: {tiles}; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
}

fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split('/').next()?;
    // A `{s}` subdomain placeholder becomes a wildcard host.
    let host = host.replace("{s}", "*");
    if host.is_empty() || host.contains(['{', '}', ' ', ';', '\'']) {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

/// The optional online tile layer: a `{z}/{x}/{y}` URL template from `CHARGEOPS_MAP_TILE_URL`.
fn tile_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("CHARGEOPS_MAP_TILE_URL")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
    .clone()
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn driver(headers: HeaderMap) -> Response {
    serve("driver.html", &headers)
}

async fn plan_page(headers: HeaderMap) -> Response {
    serve("plan.html", &headers)
}

// The operations loop's pages: hotline console, dispatcher board, crew orders.
async fn hotline_page(headers: HeaderMap) -> Response {
    serve("hotline.html", &headers)
}

async fn board_page(headers: HeaderMap) -> Response {
    serve("board.html", &headers)
}

async fn crew_page(headers: HeaderMap) -> Response {
    serve("crew.html", &headers)
}

// Queue numbers: the driver's number, the staff desk, the station card.
async fn queue_page(headers: HeaderMap) -> Response {
    serve("queue.html", &headers)
}

async fn staff_page(headers: HeaderMap) -> Response {
    serve("staff.html", &headers)
}

async fn card_page(headers: HeaderMap) -> Response {
    serve("card.html", &headers)
}

// A service area's robot lot, live.
async fn lot_page(headers: HeaderMap) -> Response {
    serve("lot.html", &headers)
}

async fn login_page(headers: HeaderMap) -> Response {
    serve("login.html", &headers)
}

async fn favicon(headers: HeaderMap) -> Response {
    serve("favicon.svg", &headers)
}

async fn assets(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

// ---------------------------------------------------------------------------------------------
// Routes.

pub(crate) fn router(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let with_token = OpenApiRouter::new()
        .routes(routes!(map_config))
        .routes(routes!(network_summary))
        .routes(routes!(station_history))
        .routes(routes!(crate::robots::list_lots))
        .route_layer(middleware::from_fn_with_state(state, auth::require_token));
    OpenApiRouter::new()
        .route("/", get(index))
        .route("/driver", get(driver))
        .route("/plan", get(plan_page))
        .route("/hotline", get(hotline_page))
        .route("/board", get(board_page))
        .route("/crew", get(crew_page))
        .route("/queue", get(queue_page))
        .route("/staff", get(staff_page))
        .route("/card", get(card_page))
        .route("/lot", get(lot_page))
        .route("/login", get(login_page))
        .route("/favicon.ico", get(favicon))
        .route("/assets/{*path}", get(assets))
        .routes(routes!(public_stations))
        .merge(with_token)
}

#[utoipa::path(
    get,
    path = "/api/v1/map/config",
    tag = "map",
    summary = "Configuration of the operations map (optional online tile layer)",
    responses(
        (status = 200, description = "map configuration", body = MapConfig),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
async fn map_config() -> Json<MapConfig> {
    Json(MapConfig {
        tile_url: tile_url(),
    })
}

/// What the operations map draws its base layer from.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct MapConfig {
    /// A tile URL template (`{z}/{x}/{y}`), or null for the built-in outline map.
    tile_url: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Network totals, station history, public availability.

#[derive(Deserialize)]
struct SummaryQuery {
    since: Option<DateTime<Utc>>,
}

#[utoipa::path(
    get,
    path = "/api/v1/network/summary",
    tag = "map",
    summary = "Network totals: stations, chargers connected, connectors by status, sessions and energy today",
    params(
        ("since" = Option<String>, Query, format = DateTime, description = "start of today (RFC 3339), e.g. the browser's local midnight; within the last 7 days. Default: the server's local midnight"),
    ),
    responses(
        (status = 200, description = "totals", body = Summary),
        (status = 400, description = "bad since", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
async fn network_summary(
    State(state): State<Arc<AppState>>,
    q: Result<Query<SummaryQuery>, QueryRejection>,
) -> ApiResult<Json<Summary>> {
    let q = query(q)?;
    Ok(Json(state.services.network.summary(q.since).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/stations/{id}/history",
    tag = "map",
    summary = "Busy connectors of a station over the last hours, in buckets, from the status history",
    params(
        ("id" = String, Path),
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 48, description = "1 to 48, default 6"),
        ("bucket_minutes" = Option<i64>, Query, minimum = 1, maximum = 60, description = "1 to 60; default 5 up to 12 hours, else 15"),
    ),
    responses(
        (status = 200, description = "history", body = History),
        (status = 400, description = "bad hours or bucket_minutes", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such station", body = ErrorBody),
    ),
)]
async fn station_history(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<History>> {
    let q = query(q)?;
    Ok(Json(state.services.network.history(&id, q).await?))
}

/// Every station's live availability, for anyone. Cached by proxies for a few seconds, so a
/// crowd of phones polling costs little.
#[utoipa::path(
    get,
    path = "/api/v1/public/stations",
    tag = "map",
    summary = "Live availability of every station, for drivers: no token, nothing but counts and a wait estimate. Cacheable for 3 s",
    params(("highway" = Option<String>, Query), ("direction" = Option<String>, Query)),
    responses(
        (status = 200, description = "stations", body = Vec<chargeops_services::network::PublicStation>),
        (status = 400, description = "bad query", body = ErrorBody),
    ),
    security(()),
)]
async fn public_stations(
    State(state): State<Arc<AppState>>,
    q: Result<Query<PublicQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let out = state.services.network.public_stations(q).await?;
    let mut resp = Json(out).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_origins() {
        assert_eq!(
            origin_of("https://{s}.tile.example.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tile.example.org")
        );
        assert_eq!(
            origin_of("https://tiles.example.com/a/{z}/{x}/{y}.png").as_deref(),
            Some("https://tiles.example.com")
        );
        assert_eq!(origin_of("javascript:alert(1)"), None);
        assert_eq!(origin_of("https://evil'; script-src */x"), None);
    }

    #[test]
    fn every_asset_is_embedded_once() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.bytes.is_empty(), "{} is empty", a.path);
            assert_eq!(
                asset(a.path).map(|(j, _)| j),
                Some(i),
                "{} listed twice",
                a.path
            );
        }
    }
}
