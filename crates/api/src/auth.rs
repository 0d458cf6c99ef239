//! Bearer tokens: API tokens looked up by digest and cached in memory, and the sign-in
//! sessions of staff accounts; each stands for a name and a role.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use chargeops_core::secret::{random_hex, token_digest};
use chargeops_core::{ApiToken, Role};
use chargeops_store::{Store, StoreError};

use crate::{ApiError, AppState, Caller};

#[derive(Default)]
pub(crate) struct TokenCache {
    by_digest: RwLock<HashMap<String, ApiToken>>,
    /// Sign-in sessions of staff accounts (`accounts`).
    pub(crate) sessions: crate::accounts::Sessions,
}

pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    // A refused request's body is never read, so the server closes the connection after the
    // answer. Saying so keeps the client from sending its next request down a closing socket.
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    match check_token(state, req, next).await {
        Ok(response) => response,
        Err(e) => {
            let mut response = e.into_response();
            if has_body {
                response.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
            }
            response
        }
    }
}

async fn check_token(
    state: Arc<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // Browsers' EventSource cannot set headers, so a GET may carry the token as
    // `?access_token=` instead (RFC 6750 section 2.3).
    let from_query = || {
        (req.method() == axum::http::Method::GET)
            .then(|| req.uri().query())
            .flatten()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")))
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(from_query)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let digest = token_digest(token);
    if let Some(caller) = state.tokens.sessions.caller(&digest) {
        req.extensions_mut().insert(caller);
        return Ok(next.run(req).await);
    }
    let cached = state
        .tokens
        .by_digest
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&digest)
        .cloned();
    let found = match cached {
        Some(t) => t,
        None => {
            let t = state
                .store
                .find_token(&digest)
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            state
                .tokens
                .by_digest
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(digest, t.clone());
            t
        }
    };
    req.extensions_mut().insert(Caller {
        name: found.name,
        role: found.role,
        crew_id: found.crew_id,
    });
    Ok(next.run(req).await)
}

/// Makes sure an admin token exists: the one given (from `CHARGEOPS_ADMIN_TOKEN`), or, when
/// there is none and no token was ever made, a new one. Returns a newly generated token so the
/// caller can print it once; it is stored only as a digest.
pub async fn bootstrap_admin_token(
    store: &dyn Store,
    given: Option<&str>,
) -> Result<Option<String>, StoreError> {
    if let Some(token) = given {
        let digest = token_digest(token);
        if store.find_token(&digest).await?.is_none() {
            store
                .insert_token("admin (CHARGEOPS_ADMIN_TOKEN)", Role::Admin, &digest)
                .await?;
        }
        return Ok(None);
    }
    if store.count_tokens().await? > 0 {
        return Ok(None);
    }
    let token = format!("co_{}", random_hex(24));
    store
        .insert_token("admin (generated)", Role::Admin, &token_digest(&token))
        .await?;
    Ok(Some(token))
}
