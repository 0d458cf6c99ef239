//! In a cluster, requests for the duties' books go to the node that keeps them.
//!
//! The queue, the robot lots, the mobile units, the cases and the partners' push counters are
//! kept by the node holding the duties lease. On any other node, a request for one of them is carried to that node as it
//! came ([`chargeops_gateway::cluster::Cluster::forward`]) and its answer returned, so every
//! node serves every API. While the lease is moving (a node died), such a request is answered
//! 503 with `Retry-After`, never from a stale copy.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use chargeops_gateway::cluster::{ForwardError, Forwarded};

use crate::{ApiError, AppState};

/// Paths whose answers come from the duties' books.
const DUTY_PATHS: &[&str] = &[
    "/api/v1/queue/",
    "/api/v1/diversion",
    "/api/v1/lots",
    "/api/v1/lot-cars/",
    "/api/v1/robots/",
    "/api/v1/mobile-units",
    "/api/v1/cases",
    "/api/v1/crews",
    // The push counters live with the duty that pushes.
    "/api/v1/partners",
];
/// Station sub-paths kept by the duties' node (`/api/v1/stations/{id}/<this>`).
const DUTY_STATION_PATHS: &[&str] = &[
    "queue",
    "wait",
    "lot",
    "lot/assign",
    "lot/release",
    "lot/cars",
];

/// Whether `path` is answered from the duties' books.
pub(crate) fn duty_owned(path: &str) -> bool {
    if DUTY_PATHS.iter().any(|p| {
        path.strip_prefix(p.trim_end_matches('/'))
            .is_some_and(|rest| rest.starts_with('/') || (rest.is_empty() && !p.ends_with('/')))
    }) {
        return true;
    }
    let station = path
        .strip_prefix("/api/v1/stations/")
        .or_else(|| path.strip_prefix("/api/v1/public/stations/"));
    match station.and_then(|rest| rest.split_once('/')) {
        Some((_, sub)) if path.starts_with("/api/v1/public/") => sub == "card",
        Some((_, sub)) => DUTY_STATION_PATHS.contains(&sub),
        None => false,
    }
}

/// The middleware: serves here, or carries the request to the duties' node.
pub(crate) async fn to_duties_node(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(cluster) = state.gateway.cluster() else {
        return next.run(req).await;
    };
    if !duty_owned(req.uri().path()) {
        return next.run(req).await;
    }
    let lease = cluster.duties_lease();
    if lease.holds() {
        return next.run(req).await;
    }
    // Sent here by a node that took this one for the holder: no longer (or not yet) so, and
    // the books here may be behind the store. The sender answers 503 and its client retries.
    let forwarded = req.extensions().get::<Forwarded>().is_some();
    let result = match lease
        .holder()
        .filter(|h| h != cluster.node_id() && !forwarded)
    {
        Some(holder) => cluster.forward(&holder, req).await,
        None => Err(ForwardError::NoHolder),
    };
    result.unwrap_or_else(|e| {
        let status = match e {
            ForwardError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ForwardError::BadReply => StatusCode::BAD_GATEWAY,
            ForwardError::NoHolder | ForwardError::Unreachable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let mut resp = ApiError::new(status, "duties_moving", e.to_string()).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        resp
    })
}

#[cfg(test)]
mod tests {
    use super::duty_owned;

    #[test]
    fn the_duties_paths() {
        for p in [
            "/api/v1/queue/t_1",
            "/api/v1/queue/t_1/call",
            "/api/v1/diversion",
            "/api/v1/diversion/stats",
            "/api/v1/lots",
            "/api/v1/lot-cars/abc",
            "/api/v1/robots/R1/report",
            "/api/v1/mobile-units",
            "/api/v1/mobile-units/plan",
            "/api/v1/cases",
            "/api/v1/cases/3/actions/assign",
            "/api/v1/crews",
            "/api/v1/partners",
            "/api/v1/partners/ocpi",
            "/api/v1/stations/S1/queue",
            "/api/v1/stations/S1/wait",
            "/api/v1/stations/S1/lot",
            "/api/v1/stations/S1/lot/assign",
            "/api/v1/stations/S1/lot/cars",
            "/api/v1/public/stations/S1/card",
        ] {
            assert!(duty_owned(p), "{p}");
        }
        for p in [
            "/api/v1/stations",
            "/api/v1/stations/S1",
            "/api/v1/stations/S1/forecast",
            "/api/v1/stations/S1/plan",
            "/api/v1/public/stations",
            "/api/v1/public/stations/S1/best-time",
            "/api/v1/chargers",
            "/api/v1/events",
            "/api/v1/casesx",
            "/api/v1/lotsx",
            "/api/v1/queuex",
            "/api/v1/queue",
            "/healthz",
            "/",
        ] {
            assert!(!duty_owned(p), "{p}");
        }
    }
}
