//! The operator and driver pages, shipped inside the binary, and the few endpoints only they
//! need: the map's tile configuration, a station's busy-connector history, the network totals,
//! the stations with a robot lot, and the public (no token) station availability the driver
//! page reads.
//!
//! The pages are plain HTML, CSS and JavaScript modules from `web/`, embedded with
//! `include_bytes!` so that `cargo run` alone serves them: no front-end build step, nothing
//! fetched from the internet.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use chrono::{DateTime, Duration, Local, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use chargeops_core::{ConnectorState, ConnectorStatus, StatusCounts};
use chargeops_store::SessionFilter;

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

pub(crate) fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let with_token = Router::new()
        .route("/api/v1/map/config", get(map_config))
        .route("/api/v1/network/summary", get(network_summary))
        .route("/api/v1/stations/{id}/history", get(station_history))
        .route("/api/v1/lots", get(list_lots))
        .route_layer(middleware::from_fn_with_state(state, auth::require_token));
    Router::new()
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
        .route("/api/v1/public/stations", get(public_stations))
        .merge(with_token)
}

async fn map_config() -> Json<serde_json::Value> {
    Json(json!({ "tile_url": tile_url() }))
}

/// The stations that have a robot lot, from the store's `lot` documents (one a lot, written
/// when it is set up, removed with it), so the station panel can link a lot page without
/// asking every station it opens for a lot it most likely does not have.
async fn list_lots(State(state): State<Arc<AppState>>) -> ApiResult<Json<serde_json::Value>> {
    let stations: Vec<String> = state
        .store
        .list_documents("lot")
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    Ok(Json(json!({ "stations": stations })))
}

// ---------------------------------------------------------------------------------------------
// Network totals.

#[derive(Deserialize)]
struct SummaryQuery {
    since: Option<DateTime<Utc>>,
}

/// Sessions read to sum today's energy; past this the total is marked `energy_capped`.
const ENERGY_SESSION_CAP: u32 = 200_000;

#[derive(Serialize)]
struct Summary {
    stations: usize,
    chargers: usize,
    chargers_connected: usize,
    connectors: StatusCounts,
    connectors_total: u64,
    charging_now: u64,
    faulted: u64,
    offline: u64,
    /// Start of "today": the `since` given (the page sends its local midnight), else the
    /// server's local midnight.
    since: DateTime<Utc>,
    sessions_today: usize,
    energy_today_wh: i64,
    energy_capped: bool,
    at: DateTime<Utc>,
}

fn local_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&Local);
    local
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|m| Local.from_local_datetime(&m).earliest())
        .map_or(now - Duration::hours(24), |m| m.with_timezone(&Utc))
}

async fn network_summary(
    State(state): State<Arc<AppState>>,
    q: Result<Query<SummaryQuery>, QueryRejection>,
) -> ApiResult<Json<Summary>> {
    let q = query(q)?;
    let now = Utc::now();
    let since = q.since.unwrap_or_else(|| local_midnight(now));
    if since > now || now - since > Duration::days(7) {
        return Err(ApiError::bad_request(
            "since must be within the last 7 days",
        ));
    }
    let stations = state.store.list_stations().await?.len();
    let mut connectors = StatusCounts::default();
    for (_, (_, c)) in state.live.all_station_counts() {
        connectors = add_counts(connectors, c);
    }
    let sessions = state
        .store
        .list_sessions(&SessionFilter {
            since: Some(since),
            limit: Some(ENERGY_SESSION_CAP),
            ..Default::default()
        })
        .await?;
    let energy_today_wh = sessions.iter().map(session_energy).sum();
    Ok(Json(Summary {
        stations,
        chargers: state.live.charger_count(),
        chargers_connected: state.live.online_count(),
        connectors_total: connectors.total(),
        charging_now: connectors.charging,
        faulted: connectors.faulted,
        offline: connectors.offline,
        connectors,
        since,
        sessions_today: sessions.len(),
        energy_today_wh,
        energy_capped: sessions.len() >= ENERGY_SESSION_CAP as usize,
        at: now,
    }))
}

fn add_counts(a: StatusCounts, b: StatusCounts) -> StatusCounts {
    StatusCounts {
        available: a.available + b.available,
        occupied: a.occupied + b.occupied,
        charging: a.charging + b.charging,
        reserved: a.reserved + b.reserved,
        unavailable: a.unavailable + b.unavailable,
        faulted: a.faulted + b.faulted,
        offline: a.offline + b.offline,
    }
}

/// Energy of a session so far: what the charger reported, else the meter difference.
fn session_energy(s: &chargeops_core::Session) -> i64 {
    s.energy_wh
        .or_else(|| Some(s.meter_stop_wh? - s.meter_start_wh?))
        .unwrap_or(0)
        .max(0)
}

// ---------------------------------------------------------------------------------------------
// Station history.

#[derive(Deserialize)]
struct HistoryQuery {
    hours: Option<u32>,
    bucket_minutes: Option<u32>,
}

/// How far before the window status history is read to know each connector's state when the
/// window opens. A connector with no change in that time is taken to have held its current
/// status all along (nothing was reported, so nothing changed).
const HISTORY_LOOKBACK_HOURS: i64 = 24;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct HistoryPoint {
    /// Start of the bucket.
    pub at: DateTime<Utc>,
    /// Busy (occupied or charging) connectors at the end of the bucket.
    pub busy: u64,
    /// Most connectors busy at once during the bucket.
    pub busy_peak: u64,
    /// Connectors by status at the end of the bucket.
    pub counts: StatusCounts,
}

#[derive(Serialize)]
struct History {
    station_id: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket_s: i64,
    connectors: usize,
    points: Vec<HistoryPoint>,
}

async fn station_history(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<History>> {
    let q = query(q)?;
    let hours = q.hours.unwrap_or(6);
    if !(1..=48).contains(&hours) {
        return Err(ApiError::bad_request("hours must be 1 to 48"));
    }
    let bucket_minutes = q.bucket_minutes.unwrap_or(if hours <= 12 { 5 } else { 15 });
    if !(1..=60).contains(&bucket_minutes) {
        return Err(ApiError::bad_request("bucket_minutes must be 1 to 60"));
    }
    if state.store.get_station(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("station {id} not found")));
    }
    let to = Utc::now();
    let bucket = Duration::minutes(i64::from(bucket_minutes));
    let from = align_down(to - Duration::hours(i64::from(hours)), bucket);
    let lookback = from - Duration::hours(HISTORY_LOOKBACK_HOURS);

    let chargers: Vec<_> = state
        .store
        .list_chargers()
        .await?
        .into_iter()
        .filter(|c| c.station_id == id)
        .collect();
    let mut changes: Vec<Change> = Vec::new();
    let mut keys = 0usize;
    for c in &chargers {
        let history = state.store.status_history(&c.id, Some(lookback)).await?;
        let mut seen: Vec<(u32, u32)> = Vec::new();
        for s in &history {
            let key = (s.evse_id, s.connector_id);
            if !seen.contains(&key) {
                seen.push(key);
            }
        }
        // Connectors with no change since the lookback have held their current status.
        let current: Vec<ConnectorState> = state
            .live
            .snapshot(&c.id)
            .map(|snap| snap.connectors)
            .unwrap_or_default();
        let base = keys;
        for s in &current {
            let key = (s.evse_id, s.connector_id);
            if seen.contains(&key) {
                continue;
            }
            let status = state
                .live
                .connector(&c.id, s.evse_id, s.connector_id)
                .map_or(s.status, |r| r.status);
            seen.push(key);
            changes.push(Change {
                at: lookback,
                key: base + seen.len() - 1,
                status,
            });
        }
        for s in history {
            let Some(i) = seen.iter().position(|k| *k == (s.evse_id, s.connector_id)) else {
                continue;
            };
            changes.push(Change {
                at: s.updated_at,
                key: base + i,
                status: s.status,
            });
        }
        keys += seen.len();
    }
    let points = bucket_busy(&mut changes, keys, from, to, bucket);
    Ok(Json(History {
        station_id: id,
        from,
        to,
        bucket_s: bucket.num_seconds(),
        connectors: keys,
        points,
    }))
}

fn align_down(t: DateTime<Utc>, bucket: Duration) -> DateTime<Utc> {
    let step = bucket.num_milliseconds().max(1);
    let ms = t.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(step)).unwrap_or(t)
}

/// One connector's status change; `key` numbers the connector within the station.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Change {
    pub at: DateTime<Utc>,
    pub key: usize,
    pub status: ConnectorStatus,
}

/// Replays status changes over buckets of `bucket` from `from` to `to`: per bucket, the
/// counts at its end and the peak of busy connectors within it. Changes before `from` set the
/// starting state; a connector counts only from its first known status.
pub(crate) fn bucket_busy(
    changes: &mut [Change],
    keys: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Duration,
) -> Vec<HistoryPoint> {
    changes.sort_by_key(|c| c.at);
    let mut state: Vec<Option<ConnectorStatus>> = vec![None; keys];
    let mut counts = [0u64; 7];
    let mut apply = |c: &Change, counts: &mut [u64; 7]| {
        if c.key >= state.len() {
            return;
        }
        if let Some(old) = state[c.key] {
            counts[old.index()] -= 1;
        }
        counts[c.status.index()] += 1;
        state[c.key] = Some(c.status);
    };
    let busy_of = |counts: &[u64; 7]| {
        counts[ConnectorStatus::Occupied.index()] + counts[ConnectorStatus::Charging.index()]
    };
    let mut i = 0;
    while i < changes.len() && changes[i].at < from {
        apply(&changes[i], &mut counts);
        i += 1;
    }
    let mut points = Vec::new();
    let mut start = from;
    while start < to && bucket > Duration::zero() {
        let end = (start + bucket).min(to);
        let mut peak = busy_of(&counts);
        while i < changes.len() && (changes[i].at < end || (end == to && changes[i].at <= to)) {
            apply(&changes[i], &mut counts);
            peak = peak.max(busy_of(&counts));
            i += 1;
        }
        let mut out = StatusCounts::default();
        for s in ConnectorStatus::ALL {
            out.set(s, counts[s.index()]);
        }
        points.push(HistoryPoint {
            at: start,
            busy: busy_of(&counts),
            busy_peak: peak,
            counts: out,
        });
        start += bucket;
    }
    points
}

// ---------------------------------------------------------------------------------------------
// Public availability for drivers.

/// A typical DC fast-charging session, for the wait estimate: long enough for ~10-80% on
/// highway chargers.
const TYPICAL_SESSION_S: u64 = 40 * 60;

#[derive(Deserialize)]
struct PublicQuery {
    highway: Option<String>,
    direction: Option<String>,
}

#[derive(Serialize)]
struct PublicStation {
    id: String,
    name: String,
    highway: Option<String>,
    direction: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    connectors: StatusCounts,
    available: u64,
    total: u64,
    wait_estimate_s: Option<u64>,
}

/// Expected wait for the next free connector: none when one is free; with `n` busy connectors
/// whose sessions end at independent, uniformly spread times within a typical session, the
/// first frees after `typical / (n + 1)` on average. `None` when no connector is in service
/// (all faulted, unavailable or offline): there is nothing to wait for.
pub(crate) fn wait_estimate_s(c: &StatusCounts) -> Option<u64> {
    if c.available > 0 {
        return Some(0);
    }
    let busy = c.occupied + c.charging + c.reserved;
    if busy == 0 {
        return None;
    }
    Some(TYPICAL_SESSION_S / (busy + 1))
}

/// Every station's live availability, for anyone: no charger ids, no id tags, no sessions.
/// Cached by proxies for a few seconds, so a crowd of phones polling costs little.
async fn public_stations(
    State(state): State<Arc<AppState>>,
    q: Result<Query<PublicQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let counts: HashMap<String, (u64, StatusCounts)> = state.live.all_station_counts();
    let out: Vec<PublicStation> = state
        .store
        .list_stations()
        .await?
        .into_iter()
        .filter(|s| {
            q.highway
                .as_ref()
                .is_none_or(|h| s.highway.as_ref() == Some(h))
        })
        .filter(|s| {
            q.direction
                .as_ref()
                .is_none_or(|d| s.direction.as_ref() == Some(d))
        })
        .map(|s| {
            let c = counts.get(&s.id).map(|(_, c)| *c).unwrap_or_default();
            PublicStation {
                available: c.available,
                total: c.total(),
                wait_estimate_s: wait_estimate_s(&c),
                connectors: c,
                id: s.id,
                name: s.name,
                highway: s.highway,
                direction: s.direction,
                lat: s.lat,
                lon: s.lon,
            }
        })
        .collect();
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
    use ConnectorStatus::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 3600, 0).expect("valid")
            + Duration::minutes(min)
    }

    fn ch(min: i64, key: usize, status: ConnectorStatus) -> Change {
        Change {
            at: t(min),
            key,
            status,
        }
    }

    #[test]
    fn buckets_carry_state_from_before_the_window() {
        let mut changes = vec![ch(-30, 0, Charging), ch(-20, 1, Available)];
        let points = bucket_busy(&mut changes, 2, t(0), t(15), Duration::minutes(5));
        assert_eq!(points.len(), 3);
        for p in &points {
            assert_eq!(
                (p.busy, p.busy_peak, p.counts.available, p.counts.charging),
                (1, 1, 1, 1)
            );
        }
        assert_eq!(points[0].at, t(0));
        assert_eq!(points[2].at, t(10));
    }

    #[test]
    fn peak_catches_a_short_session_inside_a_bucket() {
        // Connector 1 charges from minute 6 to 8: the bucket [5, 10) ends with 1 busy, peaked at 2.
        let mut changes = vec![
            ch(-1, 0, Charging),
            ch(-1, 1, Available),
            ch(6, 1, Charging),
            ch(8, 1, Available),
            ch(12, 0, Available),
        ];
        let points = bucket_busy(&mut changes, 2, t(0), t(15), Duration::minutes(5));
        let summary: Vec<(u64, u64)> = points.iter().map(|p| (p.busy, p.busy_peak)).collect();
        assert_eq!(summary, vec![(1, 1), (1, 2), (0, 1)]);
    }

    #[test]
    fn unknown_connectors_count_from_their_first_status_and_order_does_not_matter() {
        let mut changes = vec![ch(7, 1, Faulted), ch(2, 0, Occupied), ch(-5, 0, Available)];
        let points = bucket_busy(&mut changes, 2, t(0), t(10), Duration::minutes(5));
        assert_eq!(points[0].counts.total(), 1);
        assert_eq!(points[0].busy, 1);
        assert_eq!(points[1].counts.faulted, 1);
        assert_eq!(points[1].counts.total(), 2);
    }

    #[test]
    fn a_change_at_the_window_end_is_counted_and_a_partial_last_bucket_is_kept() {
        let mut changes = vec![ch(0, 0, Available), ch(12, 0, Charging)];
        let points = bucket_busy(&mut changes, 1, t(0), t(12), Duration::minutes(5));
        assert_eq!(points.len(), 3);
        assert_eq!(points[2].busy, 1);
    }

    #[test]
    fn out_of_range_keys_are_ignored() {
        let mut changes = vec![ch(1, 5, Charging)];
        let points = bucket_busy(&mut changes, 1, t(0), t(5), Duration::minutes(5));
        assert_eq!(points[0].counts.total(), 0);
    }

    #[test]
    fn wait_estimates() {
        let mut c = StatusCounts {
            available: 1,
            charging: 5,
            ..Default::default()
        };
        assert_eq!(wait_estimate_s(&c), Some(0));
        c.available = 0;
        assert_eq!(wait_estimate_s(&c), Some(TYPICAL_SESSION_S / 6));
        let broken = StatusCounts {
            faulted: 2,
            offline: 3,
            ..Default::default()
        };
        assert_eq!(wait_estimate_s(&broken), None);
        assert_eq!(wait_estimate_s(&StatusCounts::default()), None);
    }

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
