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
use serde_json::{Value, json};

use chargeops_core::CommandReply;
use chargeops_ops::faq::FaqEntry;
use chargeops_ops::{AuditEntry, Crew, stats};
use chargeops_services::ops::{
    self as service, ActionInput, CaseQuery, CaseView, IssuedToken, NewCall, NewToken, Proposals,
    RemoteInput, case_id, parse_action,
};

pub(crate) use audit::audit;

use crate::{AppState, Caller};

use crate::error::{ApiResult, body, query};

pub(crate) async fn list_cases(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<CaseQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<CaseView>>> {
    let q = query(q)?;
    Ok(Json(state.services.ops.list(&caller, q).await?))
}

pub(crate) async fn get_case(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<CaseView>> {
    let id = case_id(&id)?;
    Ok(Json(state.services.ops.get(&caller, id).await?))
}

/// A call that joins an open case answers 200, a new case 201.
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

pub(crate) async fn case_stats(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<stats::Row>>> {
    Ok(Json(state.services.ops.stats(&caller).await?))
}

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

pub(crate) async fn list_crews(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Crew>>> {
    Ok(Json(state.services.ops.crews().await?))
}

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

pub(crate) async fn faq(
    State(state): State<Arc<AppState>>,
    q: Result<Query<FaqQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<FaqEntry>>> {
    let q = query(q)?;
    let text = q.q.unwrap_or_default();
    Ok(Json(state.services.ops.faq(&text)?))
}

/// An admin makes a token for one person; it is shown once and stored as a digest.
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

pub(crate) async fn me(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({ "name": caller.name, "role": caller.role.as_str(), "crew_id": caller.crew_id }))
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<u32>,
}

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
