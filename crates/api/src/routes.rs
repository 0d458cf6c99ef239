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

use crate::error::ErrorBody;
use crate::{ApiError, AppState, Caller};

use crate::error::{ApiResult, body, query};

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "platform",
    summary = "Health",
    responses(
        (status = 200, description = "healthy", body = Health),
        (status = 503, description = "store unavailable", body = Health),
    ),
    security(()),
)]
pub(crate) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    // Healthy means the store answers; a wedged database must show here.
    match state.store.count_tokens().await {
        Ok(_) => Json(Health {
            status: "ok",
            uptime_s: Some(state.started.elapsed().as_secs()),
            chargers_online: Some(state.gateway.metrics.connections_open.get()),
        })
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "store_unavailable",
                    uptime_s: None,
                    chargers_online: None,
                }),
            )
                .into_response()
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "platform",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "text exposition format", content_type = "text/plain", body = String),
    ),
    security(()),
)]
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
    let pushes = state.services.partners.push_stats();
    if !pushes.is_empty() {
        registry.register(
            "chargeops_partner_pushes",
            "Pushes to partner platforms, by partner and result (delivered, failed)",
            PartnerPushes(pushes.clone()),
        );
    }
    if let Some(cluster) = state.gateway.cluster() {
        registry.register(
            "chargeops_cluster_connected",
            "1 while this node's link to NATS is up",
            ConstGauge::new(u64::from(cluster.is_connected())),
        );
        registry.register(
            "chargeops_cluster_duties_held",
            "1 while this node holds the duties lease (runs detection, queue calling, dispatch, planning)",
            ConstGauge::new(u64::from(cluster.duties_lease().holds())),
        );
        registry.register(
            "chargeops_cluster_nodes",
            "Other nodes heard from in the last 6 s",
            ConstGauge::new(cluster.nodes().len() as u64),
        );
    }
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

/// Pushes to partners by partner and result, and what waits for each.
#[derive(Debug)]
struct PartnerPushes(Vec<(String, chargeops_services::partners::PushStats)>);

impl EncodeMetric for PartnerPushes {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (partner, s) in &self.0 {
            for (result, n) in [("delivered", s.delivered), ("failed", s.failed)] {
                let labels = [("partner", partner.as_str()), ("result", result)];
                encoder
                    .encode_family(&labels)?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&n, None)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
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

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "platform",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3 document", body = Object)),
    security(()),
)]
pub(crate) async fn openapi(Extension(doc): Extension<OpenApiJson>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.to_string(),
    )
        .into_response()
}

/// The document's frame: what the generated paths and schemas are put in.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "chargeops API",
        version = "1",
        description = "One platform for a whole EV charging network. OCPP chargers connect at ws://HOST:PORT/ocpp/{chargerId} (subprotocols ocpp1.6, ocpp2.0.1; HTTP Basic auth, security profile 1); YKC chargers on the YKC port. Errors answer `{code, message}`."
    ),
    security(("bearer" = [])),
    modifiers(&SecuritySchemes),
    components(schemas(crate::error::ErrorBody))
)]
pub(crate) struct ApiDoc;

/// The ways a caller proves who it is: a bearer token (staff, partners), HTTP Basic for a
/// robot (its charger's OCPP credentials) and for a mobile unit's tracker.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        let basic = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(what))
                    .build(),
            )
        };
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "robot",
            basic("A charging robot: its charger id and OCPP password."),
        );
        components.add_security_scheme(
            "unit_tracker",
            basic("A mobile unit's own tracker: the unit id and its tracker password."),
        );
    }
}

/// What every operation may answer besides its own responses: 400 for a bad parameter or body,
/// 401 for missing or wrong credentials (except where none are ever read), 500 and 503 from our
/// side. Added once here rather than repeated on each handler.
pub(crate) fn add_common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    /// Paths that never read credentials.
    const OPEN: &[&str] = &[
        "/healthz",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/public/stations",
        "/api/v1/public/stations/{id}/best-time",
        "/api/v1/public/stations/{id}/card",
    ];
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let takes_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let answers = &mut op.responses.responses;
            let mut add = |status: &str, what: &str| {
                answers
                    .entry(status.to_owned())
                    .or_insert_with(|| error(what).into());
            };
            if takes_input {
                add("400", "a bad parameter or body");
            }
            if !OPEN.contains(&path.as_str()) {
                add("401", "missing or wrong credentials");
            }
            add("500", "something failed on our side");
            add("503", "the store is unavailable; try again");
        }
    }
}

/// The generated document, serialised once when the router is built.
#[derive(Clone)]
pub(crate) struct OpenApiJson(Arc<str>);

impl OpenApiJson {
    pub(crate) fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        let text = doc
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        OpenApiJson(text.into())
    }
}

/// `/healthz`: whether the store answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok`, or `store_unavailable` (with 503).
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime_s: Option<u64>,
    /// Open charger connections on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    chargers_online: Option<u64>,
}

/// This node's place in the cluster.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ClusterView {
    /// Whether this node is part of a cluster (`--nats-url`); the rest is absent when not.
    clustered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    /// Whether the link to NATS is up.
    #[serde(skip_serializing_if = "Option::is_none")]
    connected: Option<bool>,
    /// The node that runs the background duties (fault detection, queue calling, robot
    /// dispatch, unit planning), as this node last read the lease; null while it moves.
    #[serde(skip_serializing_if = "Option::is_none")]
    duties_holder: Option<String>,
    /// Whether this node holds the duties lease now.
    holds_duties: bool,
    /// The duties running on this node.
    duties_running: Vec<&'static str>,
    /// The other nodes heard from in the last 6 s.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nodes: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/cluster",
    tag = "platform",
    summary = "This node's place in the cluster: the duties' holder, the nodes heard from",
    responses(
        (status = 200, description = "the cluster as this node sees it", body = ClusterView),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn cluster(State(state): State<Arc<AppState>>) -> Json<ClusterView> {
    let running = state.services.duties.running();
    Json(match state.gateway.cluster() {
        None => ClusterView {
            clustered: false,
            cluster: None,
            node: None,
            connected: None,
            duties_holder: None,
            holds_duties: !running.is_empty(),
            duties_running: running,
            nodes: Vec::new(),
        },
        Some(c) => ClusterView {
            clustered: true,
            cluster: Some(c.name().to_owned()),
            node: Some(c.node_id().to_owned()),
            connected: Some(c.is_connected()),
            duties_holder: c.duties_lease().holder(),
            holds_duties: c.duties_lease().holds(),
            duties_running: running,
            nodes: c.nodes(),
        },
    })
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

// Stations.

#[utoipa::path(
    get,
    path = "/stations",
    tag = "network",
    summary = "List stations with connector counts by status",
    responses(
        (status = 200, description = "stations", body = Vec<StationView>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn list_stations(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<StationView>>> {
    Ok(Json(state.services.network.stations().await?))
}

#[utoipa::path(
    get,
    path = "/stations/{id}",
    tag = "network",
    summary = "One station",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "station", body = StationView),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
)]
pub(crate) async fn get_station(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<StationView>> {
    Ok(Json(state.services.network.station(&id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Waiting {
    waiting: u64,
}

/// Cars seen waiting at a station, from a queue sensor at the entrance or staff counting.
#[utoipa::path(
    put,
    path = "/stations/{id}/waiting",
    tag = "network",
    summary = "Set the number of cars seen waiting at a station (a queue sensor, or staff counting); published as a queue_changed event",
    params(("id" = String, Path)),
    request_body = Waiting,
    responses(
        (status = 200, description = "the station", body = StationView),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "role may not do this", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    post,
    path = "/stations",
    tag = "network",
    summary = "Create or update a station",
    request_body = NewStation,
    responses(
        (status = 201, description = "saved", body = StationView),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "role may not do this", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/chargers",
    tag = "network",
    summary = "List chargers",
    params(("station" = Option<String>, Query)),
    responses(
        (status = 200, description = "chargers", body = Vec<ChargerView>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/chargers/{id}",
    tag = "network",
    summary = "One charger with its connectors",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "charger", body = ChargerView),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
)]
pub(crate) async fn get_charger(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChargerView>> {
    Ok(Json(state.services.network.charger(&id).await?))
}

#[utoipa::path(
    post,
    path = "/chargers",
    tag = "network",
    summary = "Register a charger",
    request_body = NewCharger,
    responses(
        (status = 201, description = "registered", body = ChargerView),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "role may not do this", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 409, description = "conflict (exists, or charger offline)", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    post,
    path = "/chargers/{id}/accept",
    tag = "network",
    summary = "Accept a pending charger",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "charger", body = ChargerView),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "role may not do this", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
)]
pub(crate) async fn accept_charger(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChargerView>> {
    set_registration(&state, &caller, &id, Registration::Accepted).await
}

#[utoipa::path(
    post,
    path = "/chargers/{id}/reject",
    tag = "network",
    summary = "Reject a charger (its boots are answered Rejected)",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "charger", body = ChargerView),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "role may not do this", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
)]
pub(crate) async fn reject_charger(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChargerView>> {
    set_registration(&state, &caller, &id, Registration::Rejected).await
}

// Commands.

#[utoipa::path(
    post,
    path = "/chargers/{id}/commands/{command}",
    tag = "network",
    summary = "Send a command to a charger and return its answer",
    description = "Commands: remote-start (connector_id, id_tag, evse_id), remote-stop (session_id), change-availability (connector_id, available), reset (hard), unlock-connector (connector_id), trigger (message, connector_id), get-configuration (keys), set-configuration (key, value), clear-cache, get-base-report (report_base; OCPP 2.0.1), reserve-now (connector_id or evse_id, 0 for the charger as a whole; id_tag; expires_in_s or expiry, within a day; optional reservation_id, chosen when left out and returned as `reservation_id`), cancel-reservation (reservation_id). reserve-now answers the charger's status: Accepted, Faulted, Occupied, Rejected or Unavailable; 400 for a connector the charger has never reported, `not_supported` for YKC chargers. Mapped to the charger's OCPP version.",
    params(
        ("id" = String, Path),
        ("command" = String, Path, description = "One of `remote-start`, `remote-stop`, `change-availability`, `reset`, `unlock-connector`, `trigger`, `get-configuration`, `set-configuration`, `clear-cache`, `get-base-report`, `reserve-now`, `cancel-reservation`."),
    ),
    request_body = CommandBody,
    responses(
        (status = 200, description = "the charger's answer", body = CommandAnswer),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "role may not do this", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 409, description = "conflict (exists, or charger offline)", body = ErrorBody),
        (status = 502, description = "charger answered with an error", body = ErrorBody),
        (status = 504, description = "charger did not answer in time", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/sessions",
    tag = "network",
    summary = "List sessions, newest first",
    params(
        ("charger" = Option<String>, Query),
        ("station" = Option<String>, Query),
        ("open" = Option<bool>, Query),
        ("since" = Option<String>, Query, format = DateTime),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 10000),
    ),
    responses(
        (status = 200, description = "sessions", body = Vec<Session>),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn list_sessions(
    State(state): State<Arc<AppState>>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<Session>>> {
    let q = query(q)?;
    Ok(Json(state.services.network.sessions(q).await?))
}

#[utoipa::path(
    get,
    path = "/sessions/{id}",
    tag = "network",
    summary = "One session",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "session", body = Session),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
)]
pub(crate) async fn get_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Session>> {
    Ok(Json(state.services.network.session(&id).await?))
}

// Id tags.

#[utoipa::path(
    get,
    path = "/id-tags",
    tag = "network",
    summary = "The authorization list",
    responses(
        (status = 200, description = "id tags", body = Vec<IdTag>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn list_id_tags(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<IdTag>>> {
    Ok(Json(state.services.network.id_tags().await?))
}

#[utoipa::path(
    post,
    path = "/id-tags",
    tag = "network",
    summary = "Add or change an id tag",
    request_body = NewIdTag,
    responses(
        (status = 201, description = "saved", body = IdTag),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "role may not do this", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    delete,
    path = "/id-tags/{tag}",
    tag = "network",
    summary = "Remove an id tag",
    params(("tag" = String, Path)),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "role may not do this", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/events",
    tag = "network",
    summary = "Live feed (Server-Sent Events): status_changed, session_started, session_stopped, charger_online, charger_offline",
    responses(
        (status = 200, description = "event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
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
