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

use crate::error::{ApiResult, body};
use crate::{AppState, Caller};

/// `POST /api/v1/accounts` (admin).
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
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<AccountView>>> {
    caller.require_role(&[Role::Admin])?;
    Ok(Json(state.services.accounts.list().await?))
}

/// `DELETE /api/v1/accounts/{login}` (admin): the account and its sessions end.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(login): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_role(&[Role::Admin])?;
    state.services.accounts.delete(&caller, &login).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

/// `POST /api/v1/accounts/{login}/password` (admin): sets a new password; the account's
/// sessions end.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    login: String,
    password: String,
}

/// `POST /api/v1/login` (public): a session token for a login and password.
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
pub(crate) async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> StatusCode {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        state.services.accounts.logout(token.trim());
    }
    StatusCode::NO_CONTENT
}
