//! Bearer tokens over HTTP: the token is read from the `Authorization` header (or, for a GET,
//! the `access_token` query parameter) and the accounts service says who it stands for.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

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
    let caller = state
        .services
        .accounts
        .caller_for_token(token)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}
