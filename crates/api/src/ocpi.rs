//! OCPI 2.2.1 over HTTP, the CPO's side: `/ocpi/versions`, `/ocpi/2.2.1`, the credentials
//! handshake and the Locations sender, every answer in the OCPI envelope; and the admin's
//! `POST /api/v1/partners/ocpi` that makes a registration.
//!
//! Tokens come as `Authorization: Token <base64>` (or the token itself, as 2.1.1 peers send
//! it). A missing or unknown token is HTTP 401 with status 2000; an unknown location or EVSE
//! 404 with 2003; bad paging parameters 2001; a body that is not JSON HTTP 400.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use chargeops_ocpi::envelope::{Envelope, StatusCode as Ocpi, token_of};
use chargeops_ocpi::objects::{Credentials, Location};
use chargeops_ocpi::page;
use chargeops_services::partners::{NewRegistration, Partner, PartnerView, Refusal, TokenKind};

use crate::error::{ApiResult, ErrorBody, body};
use crate::{AppState, Caller};

/// The `/ocpi` routes (outside `/api/v1`: partners authenticate with their OCPI tokens).
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ocpi/versions", get(versions))
        .route("/ocpi/2.2.1", get(details))
        .route(
            "/ocpi/2.2.1/credentials",
            get(get_credentials)
                .post(post_credentials)
                .put(put_credentials)
                .delete(delete_credentials),
        )
        .route("/ocpi/2.2.1/locations", get(list_locations))
        .route("/ocpi/2.2.1/locations/{id}", get(get_location))
        .route("/ocpi/2.2.1/locations/{id}/{evse}", get(get_evse))
        .route(
            "/ocpi/2.2.1/locations/{id}/{evse}/{connector}",
            get(get_connector),
        )
}

/// The platform's URL as the partner reached it.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

fn now(state: &AppState) -> chrono::DateTime<chrono::Utc> {
    state.live.now()
}

fn answer<T: Serialize>(state: &AppState, data: T) -> Response {
    Json(Envelope::ok(data, now(state))).into_response()
}

fn refuse(state: &AppState, r: Refusal) -> Response {
    let status = StatusCode::from_u16(r.http).unwrap_or(StatusCode::OK);
    (
        status,
        Json(Envelope::status(r.code, r.message, now(state))),
    )
        .into_response()
}

fn token(headers: &HeaderMap) -> Option<String> {
    token_of(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

/// The partner behind the request's token, or the refusal to answer with.
async fn partner(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Partner, TokenKind, String), Response> {
    let token = token(headers);
    match state.services.partners.authenticate(token.as_deref()).await {
        Ok((p, kind)) => Ok((p, kind, token.unwrap_or_default())),
        Err(r) => Err(refuse(state, r)),
    }
}

/// A registered partner only (a registration token opens the versions and the handshake).
async fn registered(state: &AppState, headers: &HeaderMap) -> Result<Partner, Response> {
    match partner(state, headers).await? {
        (p, TokenKind::Registered, _) => Ok(p),
        _ => Err(refuse(state, Refusal::unauthorized())),
    }
}

async fn versions(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = partner(&state, &headers).await {
        return r;
    }
    answer(
        &state,
        state.services.partners.versions(&base_url(&headers)),
    )
}

async fn details(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = partner(&state, &headers).await {
        return r;
    }
    answer(&state, state.services.partners.details(&base_url(&headers)))
}

async fn get_credentials(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match partner(&state, &headers).await {
        Ok((_, _, token)) => answer(
            &state,
            state
                .services
                .partners
                .credentials(&token, &base_url(&headers)),
        ),
        Err(r) => r,
    }
}

async fn exchange(
    state: Arc<AppState>,
    headers: HeaderMap,
    bytes: Bytes,
    update: bool,
) -> Response {
    let (p, kind, _) = match partner(&state, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let r = Refusal {
                http: 400,
                code: Ocpi::INVALID_PARAMETERS,
                message: format!("the body is not JSON: {e}"),
            };
            return refuse(&state, r);
        }
    };
    let theirs: Credentials = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => {
            let r = Refusal {
                http: 200,
                code: Ocpi::INVALID_PARAMETERS,
                message: format!("not a credentials object: {e}"),
            };
            return refuse(&state, r);
        }
    };
    match state
        .services
        .partners
        .register(p, kind, theirs, update, &base_url(&headers))
        .await
    {
        Ok(ours) => answer(&state, ours),
        Err(r) => refuse(&state, r),
    }
}

async fn post_credentials(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    exchange(state, headers, bytes, false).await
}

async fn put_credentials(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    exchange(state, headers, bytes, true).await
}

async fn delete_credentials(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (p, kind, _) = match partner(&state, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state.services.partners.unregister(p, kind).await {
        Ok(()) => Json(Envelope::status(Ocpi::SUCCESS, "Success", now(&state))).into_response(),
        Err(r) => refuse(&state, r),
    }
}

async fn list_locations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = registered(&state, &headers).await {
        return r;
    }
    let p = |k: &str| params.get(k).map(String::as_str);
    let q = match page::query(p("date_from"), p("date_to"), p("offset"), p("limit")) {
        Ok(q) => q,
        Err((code, message)) => {
            return refuse(
                &state,
                Refusal {
                    http: 200,
                    code,
                    message,
                },
            );
        }
    };
    let all = match state.services.partners.locations().await {
        Ok(l) => l,
        Err(e) => return refuse(&state, e.into()),
    };
    let window: Vec<Location> = all
        .into_iter()
        .filter(|l| {
            chrono::DateTime::parse_from_rfc3339(&l.last_updated)
                .is_ok_and(|t| q.within(t.with_timezone(&chrono::Utc)))
        })
        .collect();
    let base = format!("{}/ocpi/2.2.1/locations", base_url(&headers));
    let cut = page::page(&q, window.len(), &base);
    let data: Vec<&Location> = window[cut.range.clone()].iter().collect();
    let mut resp = answer(&state, data);
    for (name, value) in cut.headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

async fn get_location(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = registered(&state, &headers).await {
        return r;
    }
    match state.services.partners.location(&id).await {
        Ok(l) => answer(&state, l),
        Err(r) => refuse(&state, r),
    }
}

async fn get_evse(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, uid)): Path<(String, String)>,
) -> Response {
    if let Err(r) = registered(&state, &headers).await {
        return r;
    }
    match state.services.partners.evse(&id, &uid).await {
        Ok(e) => answer(&state, e),
        Err(r) => refuse(&state, r),
    }
}

async fn get_connector(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, uid, connector)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = registered(&state, &headers).await {
        return r;
    }
    match state.services.partners.evse(&id, &uid).await {
        Ok(e) => match e.connectors.into_iter().find(|c| c.id == connector) {
            Some(c) => answer(&state, c),
            None => refuse(
                &state,
                Refusal {
                    http: 404,
                    code: Ocpi::UNKNOWN_LOCATION,
                    message: format!("unknown connector {connector:?} of EVSE {uid:?}"),
                },
            ),
        },
        Err(r) => refuse(&state, r),
    }
}

/// What an admin names a new partner.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPartner {
    name: String,
}

/// `POST /api/v1/partners/ocpi`
#[utoipa::path(
    post,
    path = "/partners/ocpi",
    tag = "partners",
    summary = "Make an OCPI registration for a partner (admin): its token A and the versions URL",
    request_body = NewPartner,
    responses(
        (status = 201, description = "the registration; the token is not shown again", body = NewRegistration),
        (status = 400, description = "bad request: a name of 1 to 100 characters, bad JSON", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "only an admin may", body = ErrorBody),
    ),
)]
pub(crate) async fn create_partner(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<NewRegistration>)> {
    let new: NewPartner = body(&bytes)?;
    let made = state
        .services
        .partners
        .create(&caller, &new.name, &base_url(&headers))
        .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// `GET /api/v1/partners`
#[utoipa::path(
    get,
    path = "/partners",
    tag = "partners",
    summary = "Every partner platform with how its pushes go (admin): delivered, failed, queued, the last error",
    responses(
        (status = 200, description = "the partners, oldest first; never a token", body = Vec<PartnerView>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "only an admin may", body = ErrorBody),
    ),
)]
pub(crate) async fn list_partners(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<PartnerView>>> {
    Ok(Json(state.services.partners.list(&caller).await?))
}
