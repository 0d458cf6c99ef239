//! Staff sign-in over HTTP: accounts (admin), `/login` and `/logout`. The accounts, their
//! password hashes, the sessions and the lockout are the accounts service
//! (`chargeops_services::accounts`).

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use chargeops_core::Role;
use chargeops_services::accounts::{AccountView, NewAccount, SignedIn};

use crate::error::ErrorBody;
use crate::error::{ApiResult, body};
use crate::{AppState, Caller};

/// `POST /api/v1/accounts` (admin).
#[utoipa::path(
    post,
    operation_id = "create_account",
    path = "/accounts",
    tag = "accounts",
    summary = "Create a staff account (admin): `login` (2-40 of a-z 0-9 . _ -), `name`, `role` (admin, operator, viewer, agent, dispatcher, crew), `password` (10-200 characters, stored as a salted PBKDF2-HMAC-SHA256 hash), `crew_id` for a crew account.",
    request_body = NewAccount,
    responses(
        (status = 201, description = "the account", body = AccountView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "unknown crew", body = ErrorBody),
        (status = 409, description = "the login exists", body = ErrorBody),
    ),
)]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    caller.require_role(&[Role::Admin])?;
    let new: NewAccount = body(&bytes)?;
    let account = state.services.accounts.create(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

/// `GET /api/v1/accounts` (admin): never the password hashes.
#[utoipa::path(
    get,
    operation_id = "list_accounts",
    path = "/accounts",
    tag = "accounts",
    summary = "Staff accounts (admin): login, name, role, crew_id, created_at; never passwords.",
    responses(
        (status = 200, description = "accounts", body = Vec<AccountView>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
    ),
)]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<AccountView>>> {
    caller.require_role(&[Role::Admin])?;
    Ok(Json(state.services.accounts.list().await?))
}

/// `DELETE /api/v1/accounts/{login}` (admin): the account and its sessions end.
#[utoipa::path(
    delete,
    operation_id = "delete_account",
    path = "/accounts/{login}",
    tag = "accounts",
    summary = "Delete a staff account (admin); its sessions end at once.",
    params(("login" = String, Path)),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ),
)]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(login): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_role(&[Role::Admin])?;
    state.services.accounts.delete(&caller, &login).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

/// `POST /api/v1/accounts/{login}/password` (admin): sets a new password; the account's
/// sessions end.
#[utoipa::path(
    post,
    path = "/accounts/{login}/password",
    tag = "accounts",
    summary = "Set an account's password (admin): `password`; its sessions end and a lock from wrong passwords is lifted.",
    params(("login" = String, Path)),
    request_body = NewPassword,
    responses(
        (status = 200, description = "the account", body = AccountView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 403, description = "this token's role may not do that", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ),
)]
pub(crate) async fn set_password(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(login): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<AccountView>> {
    caller.require_role(&[Role::Admin])?;
    let new: NewPassword = body(&bytes)?;
    let account = state
        .services
        .accounts
        .set_password(&caller, &login, new.password)
        .await?;
    Ok(Json(account))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SignIn {
    login: String,
    password: String,
}

/// `POST /api/v1/login` (public): a session token for a login and password.
#[utoipa::path(
    post,
    path = "/login",
    tag = "accounts",
    summary = "Sign in (public): `login`, `password` give a bearer `token` for 12 hours (with `name`, `role`, `crew_id`, `expires_at`). A wrong login or password is 401 without saying which; five wrong passwords within 15 minutes lock the login for the rest of that time (429). Every attempt is audited.",
    request_body = SignIn,
    responses(
        (status = 200, description = "a session token", body = SignedIn),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "wrong login or password", body = ErrorBody),
        (status = 429, description = "too many wrong passwords", body = ErrorBody),
    ),
    security(()),
)]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    bytes: Bytes,
) -> ApiResult<Json<SignedIn>> {
    let s: SignIn = body(&bytes)?;
    Ok(Json(
        state.services.accounts.login(&s.login, s.password).await?,
    ))
}

/// `POST /api/v1/logout`: ends the caller's session (an API token is not affected).
#[utoipa::path(
    post,
    path = "/logout",
    tag = "accounts",
    summary = "Sign out: ends the caller's session token (API tokens are not affected).",
    responses(
        (status = 204, description = "signed out"),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ),
)]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        state.services.accounts.logout(token.trim()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
