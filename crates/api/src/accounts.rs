//! Staff sign-in: named accounts with a password and a role, and the short-lived session
//! tokens a sign-in gives. Long-lived API tokens (`/tokens`) stay for machines and scripts;
//! people at the hotline, the dispatch desk or in a crew van sign in with their own account.
//!
//! - Accounts are store documents (kind `account`), the password kept only as a salted
//!   PBKDF2-HMAC-SHA256 hash (`pbkdf2-sha256$ROUNDS$SALT$HASH`, hex).
//! - A sign-in gives a random bearer token valid for [`SESSION_HOURS`] of wall time; sessions
//!   live in memory only, so a restart signs everyone out (the pages send them back to
//!   `/login`). Deleting an account or resetting its password ends its sessions.
//! - Five wrong passwords for a login within [`LOCK_WINDOW`] lock that login for the rest of
//!   the window (429), whatever is tried next; every sign-in, good or bad, is in the audit log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use chargeops_core::Role;
use chargeops_core::secret::{hash_password, random_hex, token_digest, verify_password};
use chargeops_ops::AuditEntry;

use crate::error::{ApiResult, body};
use crate::{ApiError, AppState, Caller};

const KIND: &str = "account";
/// How long a sign-in lasts: a long shift.
pub const SESSION_HOURS: u64 = 12;
/// Wrong passwords allowed within [`LOCK_WINDOW`] before the login is locked.
const MAX_FAILURES: u32 = 5;
const LOCK_WINDOW: Duration = Duration::from_secs(15 * 60);
const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 200;

/// A stored account.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    login: String,
    name: String,
    role: String,
    crew_id: Option<String>,
    password: String,
    created_at: DateTime<Utc>,
}

impl Account {
    fn view(&self) -> Value {
        json!({
            "login": self.login,
            "name": self.name,
            "role": self.role,
            "crew_id": self.crew_id,
            "created_at": self.created_at,
        })
    }
}

struct Session {
    login: String,
    caller: Caller,
    expires: Instant,
}

/// Sessions and failed attempts, in memory (inside the token cache of [`AppState`]).
#[derive(Default)]
pub(crate) struct Sessions {
    by_digest: std::sync::Mutex<HashMap<String, Session>>,
    failures: std::sync::Mutex<HashMap<String, (u32, Instant)>>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sessions {
    /// The caller a session token stands for, if it is one and has not expired.
    pub(crate) fn caller(&self, digest: &str) -> Option<Caller> {
        let mut sessions = lock(&self.by_digest);
        match sessions.get(digest) {
            Some(s) if s.expires > Instant::now() => Some(s.caller.clone()),
            Some(_) => {
                sessions.remove(digest);
                None
            }
            None => None,
        }
    }

    fn end_all_of(&self, login: &str) -> usize {
        let mut sessions = lock(&self.by_digest);
        let before = sessions.len();
        sessions.retain(|_, s| s.login != login);
        before - sessions.len()
    }

    /// `Err(seconds left)` while the login is locked.
    fn check_lock(&self, login: &str) -> Result<(), u64> {
        let failures = lock(&self.failures);
        match failures.get(login) {
            Some(&(n, since)) if n >= MAX_FAILURES && since.elapsed() < LOCK_WINDOW => {
                Err((LOCK_WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    fn failed(&self, login: &str) {
        let mut failures = lock(&self.failures);
        // Forget stale entries so that guessing many logins cannot grow this without bound.
        failures.retain(|_, (_, since)| since.elapsed() < LOCK_WINDOW);
        let e = failures
            .entry(login.to_owned())
            .or_insert((0, Instant::now()));
        e.0 += 1;
    }

    fn succeeded(&self, login: &str) {
        lock(&self.failures).remove(login);
    }
}

/// Logins are short, lower-case and safe in a URL path.
fn check_login(login: &str) -> ApiResult<()> {
    let ok = (2..=40).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "login must be 2-40 characters of a-z, 0-9, '.', '_' or '-'",
        ))
    }
}

fn check_password(password: &str) -> ApiResult<()> {
    let n = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters"
        )))
    }
}

async fn load(state: &AppState, login: &str) -> ApiResult<Option<Account>> {
    let docs = state.store.list_documents(KIND).await?;
    Ok(docs
        .into_iter()
        .find(|(id, _)| id == login)
        .and_then(|(_, body)| serde_json::from_str(&body).ok()))
}

async fn save(state: &AppState, account: &Account) -> ApiResult<()> {
    let text = serde_json::to_string(account)
        .map_err(|_| ApiError::internal("could not encode the account"))?;
    state
        .store
        .put_document(KIND, &account.login, &text)
        .await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    login: String,
    name: Option<String>,
    role: String,
    password: String,
    crew_id: Option<String>,
}

/// `POST /api/v1/accounts` (admin).
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_role(&[Role::Admin])?;
    let new: NewAccount = body(&bytes)?;
    check_login(&new.login)?;
    check_password(&new.password)?;
    let role = Role::parse(&new.role).ok_or_else(|| {
        ApiError::bad_request("role must be admin, operator, viewer, agent, dispatcher or crew")
    })?;
    let name = new.name.as_deref().unwrap_or(&new.login).trim().to_owned();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 bytes"));
    }
    match (role, &new.crew_id) {
        (Role::Crew, None) => {
            return Err(ApiError::bad_request("a crew account needs `crew_id`"));
        }
        (Role::Crew, Some(crew)) => {
            if state.store.get_crew(crew).await?.is_none() {
                return Err(ApiError::not_found(format!("crew {crew:?} not found")));
            }
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "only a crew account names a `crew_id`",
            ));
        }
        (_, None) => {}
    }
    if load(&state, &new.login).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("account {:?} exists", new.login),
        ));
    }
    let password = new.password;
    let hashed = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::internal("password hashing failed"))?;
    let account = Account {
        login: new.login,
        name,
        role: role.as_str().to_owned(),
        crew_id: new.crew_id,
        password: hashed,
        created_at: state.live.now(),
    };
    save(&state, &account).await?;
    tracing::info!(login = %account.login, role = %account.role, by = %caller.name, "account created");
    Ok((StatusCode::CREATED, Json(account.view())))
}

/// `GET /api/v1/accounts` (admin): never the password hashes.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.require_role(&[Role::Admin])?;
    let accounts: Vec<Value> = state
        .store
        .list_documents(KIND)
        .await?
        .into_iter()
        .filter_map(|(_, body)| serde_json::from_str::<Account>(&body).ok())
        .map(|a| a.view())
        .collect();
    Ok(Json(Value::Array(accounts)))
}

/// `DELETE /api/v1/accounts/{login}` (admin): the account and its sessions end.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(login): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_role(&[Role::Admin])?;
    if !state.store.delete_document(KIND, &login).await? {
        return Err(ApiError::not_found(format!("account {login:?} not found")));
    }
    let ended = state.tokens.sessions.end_all_of(&login);
    tracing::info!(%login, ended, by = %caller.name, "account deleted");
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
) -> ApiResult<Json<Value>> {
    caller.require_role(&[Role::Admin])?;
    let new: NewPassword = body(&bytes)?;
    check_password(&new.password)?;
    let mut account = load(&state, &login)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("account {login:?} not found")))?;
    let password = new.password;
    account.password = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::internal("password hashing failed"))?;
    save(&state, &account).await?;
    let ended = state.tokens.sessions.end_all_of(&login);
    state.tokens.sessions.succeeded(&login);
    tracing::info!(%login, ended, by = %caller.name, "account password set");
    Ok(Json(account.view()))
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
) -> ApiResult<Json<Value>> {
    let s: SignIn = body(&bytes)?;
    let login = s.login.trim().to_ascii_lowercase();
    // A malformed login or an over-long password cannot match: the same answer as a wrong
    // one, after the same checks, so the answer says nothing about which logins exist.
    let sessions = &state.tokens.sessions;
    if let Err(secs) = sessions.check_lock(&login) {
        audit(&state, &login, 429, "too_many_attempts").await;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many wrong passwords for this login; try again in {secs} s"),
        ));
    }
    let account = if check_login(&login).is_ok() && s.password.len() <= 4 * MAX_PASSWORD {
        load(&state, &login).await?
    } else {
        None
    };
    let stored = account.as_ref().map(|a| a.password.clone());
    let password = s.password;
    // Hash even for an unknown login, so the time taken does not tell logins apart.
    let ok = tokio::task::spawn_blocking(move || match stored {
        Some(h) => verify_password(&password, &h),
        None => {
            let _ = hash_password(&password);
            false
        }
    })
    .await
    .map_err(|_| ApiError::internal("password check failed"))?;
    let Some(account) = account.filter(|_| ok) else {
        sessions.failed(&login);
        audit(&state, &login, 401, "wrong login or password").await;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong login or password",
        ));
    };
    let role = Role::parse(&account.role)
        .ok_or_else(|| ApiError::internal("the account's role is not known"))?;
    sessions.succeeded(&login);
    let token = format!("cs_{}", random_hex(24));
    let valid = Duration::from_secs(SESSION_HOURS * 3600);
    let caller = Caller {
        name: account.name.clone(),
        role,
        crew_id: account.crew_id.clone(),
    };
    lock(&sessions.by_digest).insert(
        token_digest(&token),
        Session {
            login: login.clone(),
            caller,
            expires: Instant::now() + valid,
        },
    );
    audit(&state, &login, 200, "signed in").await;
    tracing::info!(%login, role = %account.role, "signed in");
    let expires_at = Utc::now() + chrono::Duration::hours(SESSION_HOURS as i64);
    Ok(Json(json!({
        "token": token,
        "login": account.login,
        "name": account.name,
        "role": account.role,
        "crew_id": account.crew_id,
        "expires_at": expires_at,
    })))
}

/// `POST /api/v1/logout`: ends the caller's session (an API token is not affected).
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> StatusCode {
    if let Some(token) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        lock(&state.tokens.sessions.by_digest).remove(&token_digest(token.trim()));
    }
    StatusCode::NO_CONTENT
}

/// Sign-ins are outside the token layer, so they are audited here, under the login tried.
async fn audit(state: &AppState, login: &str, status: u16, detail: &str) {
    let entry = AuditEntry {
        id: 0,
        at: state.live.now(),
        actor: login.chars().take(40).collect(),
        role: "none".to_owned(),
        action: "POST /api/v1/login".to_owned(),
        status,
        detail: detail.to_owned(),
    };
    if let Err(e) = state.store.record_audit(&entry).await {
        tracing::error!(error = %e, "could not write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_checked() {
        assert!(check_login("li.na").is_ok());
        for bad in ["a", "Li", "li na", "li/na", &"x".repeat(41), "ü-name"] {
            assert!(check_login(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn five_failures_lock_a_login_and_a_success_clears_the_count() {
        let s = Sessions::default();
        for _ in 0..4 {
            s.failed("li.na");
        }
        assert!(s.check_lock("li.na").is_ok());
        s.succeeded("li.na");
        for _ in 0..5 {
            s.failed("li.na");
        }
        assert!(s.check_lock("li.na").is_err());
        assert!(
            s.check_lock("zhang.wei").is_ok(),
            "other logins are not locked"
        );
    }
}
