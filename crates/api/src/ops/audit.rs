//! Every change requested through the API, allowed or refused, goes to the audit log: who
//! (the token's name and role), what (method and path, never the body: it may hold passwords),
//! when (the platform clock) and what came of it (the status, and the error code of a refusal).
//! This layer reads that off the HTTP exchange; the operations service writes the line.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::{AppState, Caller};

/// Error bodies are small `{code, message}` documents; anything larger is not read.
const MAX_ERROR_BODY: usize = 16 * 1024;

pub(crate) async fn audit(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let caller = req.extensions().get::<Caller>().cloned();
    // This layer sits on the router nested at `/api/v1`, which strips the prefix.
    let action = format!("{} /api/v1{}", req.method(), req.uri().path());
    let response = next.run(req).await;
    let status = response.status();
    let (response, detail) = if status.is_success() {
        (response, "ok".to_owned())
    } else {
        let (parts, body) = response.into_parts();
        match to_bytes(body, MAX_ERROR_BODY).await {
            Ok(bytes) => {
                let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .map(|v| {
                        format!(
                            "{}: {}",
                            v["code"].as_str().unwrap_or("error"),
                            v["message"].as_str().unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| "error".to_owned());
                (Response::from_parts(parts, Body::from(bytes)), detail)
            }
            Err(_) => (
                Response::from_parts(parts, Body::empty()),
                "error".to_owned(),
            ),
        }
    };
    state
        .services
        .ops
        .record_audit(caller.as_ref(), action, status.as_u16(), &detail)
        .await;
    response
}
