//! The operations loop over HTTP: cases (hotline, board, crew orders), crews, the FAQ, tokens
//! per person, `/me`, the audit log. Who may do what to a case, and everything that is kept,
//! is the operations service (`chargeops_services::ops`); these handlers read the request and
//! shape the answer. Where a role check comes before the request is read, the handler makes
//! it first (the service checks again), so a caller without the role learns nothing from the
//! errors of what they sent.

mod audit;

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use chargeops_core::CommandReply;
use chargeops_ops::faq::FaqEntry;
use chargeops_ops::{AuditEntry, Crew, stats};
use chargeops_services::ops::{
    self as service, ActionInput, CaseQuery, CaseView, IssuedToken, NewCall, NewToken, Proposals,
    RemoteInput, case_id, parse_action,
};

pub(crate) use audit::audit;

use crate::error::ErrorBody;
use crate::{AppState, Caller};

use crate::error::{ApiResult, body, query};

#[utoipa::path(
    get,
    path = "/cases",
    tag = "operations",
    summary = "Cases, newest first. A crew token sees only its crew's orders. Case: `id`, `kind` (faulted, offline, stuck_session, meter_anomaly, command_failures, reboot_loop, hotline), `state` (new, assigned, en_route, on_site, resolved, verified, closed), `source`, `category`, `priority`, `station_id`, `charger_id`, `connector_id`, `title`, `description`, `error_code`, `caller_phone` (masked for crew and viewer), `crew_id`, `opened_at`, `state_since`, `last_seen_at`, `sla_due_at`, `sla_left_min`, `sla_breached`, `resolved_at`, `closed_at`, `reopened`, `resolution_note`, `parts_used`",
    params(
        ("charger" = Option<String>, Query, description = "charger id"),
        ("station" = Option<String>, Query, description = "station id"),
        ("crew" = Option<String>, Query, description = "crew id"),
        ("state" = Option<String>, Query, description = "open, closed or all (default all) One of `open`, `closed`, `all`."),
        ("kind" = Option<String>, Query, description = "case kind"),
        ("limit" = Option<i64>, Query),
    ),
    responses(
        (status = 200, description = "cases", body = Vec<CaseView>),
        (status = 400, description = "bad filter", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn list_cases(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<CaseQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<CaseView>>> {
    let q = query(q)?;
    Ok(Json(state.services.ops.list(&caller, q).await?))
}

#[utoipa::path(
    get,
    path = "/cases/{id}",
    tag = "operations",
    summary = "One case with its `timeline` (`at`, `actor`, `action`, `state`, `detail`)",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "case", body = CaseView),
        (status = 400, description = "bad id", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
)]
pub(crate) async fn get_case(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<CaseView>> {
    let id = case_id(&id)?;
    Ok(Json(state.services.ops.get(&caller, id).await?))
}

/// A call that joins an open case answers 200, a new case 201.
#[utoipa::path(
    post,
    path = "/cases",
    tag = "operations",
    summary = "Open a hotline case (agent, dispatcher, operator, admin): `station_id`, optional `charger_id` and `connector_id`, `category` (fault, station_question, business_question), `caller_phone`, `description` (at most 4096 bytes). A fault call about a charger with an open detected case joins it (200, `merged: true`).",
    request_body = NewCall,
    responses(
        (status = 200, description = "merged into an open case", body = CaseView),
        (status = 201, description = "case opened", body = CaseView),
        (status = 400, description = "bad input (code too_long for an oversized description)", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "unknown station or charger", body = ErrorBody),
    ),
)]
pub(crate) async fn create_case(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<Response> {
    caller.require_role(service::HOTLINE)?;
    let new: NewCall = body(&bytes)?;
    let view = state.services.ops.create_from_call(&caller, new).await?;
    let status = if view.merged == Some(true) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view)).into_response())
}

#[utoipa::path(
    post,
    path = "/cases/{id}/actions/{action}",
    tag = "operations",
    summary = "Change a case: `assign` (`crew_id`; dispatcher, operator, admin), `accept`, `en_route`, `on_site`, `resolve` (`note`, `parts`; the assigned crew or a manager), `close` (`note`; managers, or an agent for a question), `reopen` (managers), `note` (`note`)",
    params(("id" = String, Path), ("action" = String, Path)),
    request_body = ActionInput,
    responses(
        (status = 200, description = "the changed case", body = CaseView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "unknown case, crew or action", body = ErrorBody),
        (status = 409, description = "not allowed in the case's state (invalid_transition)", body = ErrorBody),
    ),
)]
pub(crate) async fn case_action(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<Json<CaseView>> {
    let input: ActionInput = body(&bytes)?;
    let action = parse_action(&name, input)?;
    let id = case_id(&id)?;
    Ok(Json(state.services.ops.act(&caller, id, action).await?))
}

#[utoipa::path(
    get,
    path = "/cases/{id}/proposals",
    tag = "operations",
    summary = "Crews ranked for a case (skills, shift, road travel time, open orders), best first; `proposed` is the first (dispatcher, operator, admin)",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "proposals", body = Proposals),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    ),
)]
pub(crate) async fn proposals(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Proposals>> {
    caller.require_role(service::MANAGERS)?;
    let id = case_id(&id)?;
    Ok(Json(state.services.ops.proposals(&caller, id).await?))
}

/// `POST /cases/{id}/remote/{command}`: reset or unlock on the case's charger.
#[utoipa::path(
    post,
    path = "/cases/{id}/remote/{command}",
    tag = "operations",
    summary = "A remote action on the case's charger through the OCPP command path: `reset` (`hard`) or `unlock-connector` (`connector_id`, default the case's); the assigned crew, operators, admins. Recorded in the timeline.",
    params(("id" = String, Path), ("command" = String, Path)),
    request_body = RemoteInput,
    responses(
        (status = 200, description = "the charger's answer", body = CommandReply),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "unknown case or command", body = ErrorBody),
        (status = 409, description = "charger offline or case closed", body = ErrorBody),
        (status = 502, description = "charger error", body = ErrorBody),
        (status = 504, description = "no answer in time", body = ErrorBody),
    ),
)]
pub(crate) async fn remote(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<Json<CommandReply>> {
    caller.require_role(service::REMOTE)?;
    let input: RemoteInput = body(&bytes)?;
    let id = case_id(&id)?;
    Ok(Json(
        state.services.ops.remote(&caller, id, &name, input).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/cases/stats",
    tag = "operations",
    summary = "Case statistics per station and per kind: cases, open, closed, sla_breached, reopened, mean_time_to_repair_min",
    responses(
        (status = 200, description = "rows", body = Vec<stats::Row>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn case_stats(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<stats::Row>>> {
    Ok(Json(state.services.ops.stats(&caller).await?))
}

#[utoipa::path(
    get,
    path = "/cases/stats.csv",
    tag = "operations",
    summary = "The same statistics as CSV",
    responses(
        (status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn case_stats_csv(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    let csv = state.services.ops.stats_csv(&caller).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"case-stats.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/crews",
    tag = "operations",
    summary = "Field crews: `id`, `name`, `skills`, `lat`, `lon`, `shift_start_hour`, `shift_end_hour` (China Standard Time), `speed_kmh`, `phone`, `simulated`",
    responses(
        (status = 200, description = "crews", body = Vec<Crew>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn list_crews(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Crew>>> {
    Ok(Json(state.services.ops.crews().await?))
}

#[utoipa::path(
    post,
    path = "/crews",
    tag = "operations",
    summary = "Create or update a crew (dispatcher, operator, admin)",
    request_body = Crew,
    responses(
        (status = 201, description = "crew", body = Crew),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn upsert_crew(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Crew>)> {
    caller.require_role(service::MANAGERS)?;
    let crew: Crew = body(&bytes)?;
    let crew = state.services.ops.upsert_crew(&caller, crew).await?;
    Ok((StatusCode::CREATED, Json(crew)))
}

#[derive(Deserialize)]
pub(crate) struct FaqQuery {
    q: Option<String>,
}

#[utoipa::path(
    get,
    path = "/faq",
    tag = "operations",
    summary = "Hotline answers matching every word of `q` (all when empty), best first",
    params(("q" = Option<String>, Query, description = "search words")),
    responses(
        (status = 200, description = "entries", body = Vec<FaqEntry>),
        (status = 400, description = "q too long", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn faq(
    State(state): State<Arc<AppState>>,
    q: Result<Query<FaqQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<FaqEntry>>> {
    let q = query(q)?;
    let text = q.q.unwrap_or_default();
    Ok(Json(state.services.ops.faq(&text)?))
}

/// An admin makes a token for one person; it is shown once and stored as a digest.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "operations",
    summary = "Make a token for one person (admin): `name`, `role` (admin, operator, viewer, agent, dispatcher, crew), `crew_id` for a crew token. The token is in the answer once and stored only as a digest.",
    request_body = NewToken,
    responses(
        (status = 201, description = "token", body = IssuedToken),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "unknown crew", body = ErrorBody),
    ),
)]
pub(crate) async fn create_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    caller.require_role(service::ADMINS)?;
    let new: NewToken = body(&bytes)?;
    let issued = state.services.ops.create_token(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "operations",
    summary = "The calling token's `name`, `role` and `crew_id`",
    responses(
        (status = 200, description = "caller", body = Me),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn me(Extension(caller): Extension<Caller>) -> Json<Me> {
    Json(Me {
        role: caller.role.as_str(),
        name: caller.name,
        crew_id: caller.crew_id,
    })
}

/// Who the caller's token is.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    name: String,
    role: &'static str,
    crew_id: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/audit",
    tag = "operations",
    summary = "The audit log, newest first (admin): every change requested through the API, allowed or refused: `at`, `actor`, `role`, `action` (method and path), `status`, `detail`",
    params(("limit" = Option<i64>, Query)),
    responses(
        (status = 200, description = "entries", body = Vec<AuditEntry>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn list_audit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    caller.require_role(service::ADMINS)?;
    let q = query(q)?;
    Ok(Json(
        state.services.ops.audit_entries(&caller, q.limit).await?,
    ))
}
