//! The HTTP side of chargeops: the REST API under `/api/v1`, the Server-Sent Events live feed,
//! health, Prometheus metrics and the OpenAPI document.
//!
//! Architecture invariant: this crate speaks HTTP and JSON only; it reaches chargers through
//! `Gateway::command` with protocol-neutral commands and never sees an OCPP frame.

mod auth;
mod error;
mod routes;
mod web;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, post};

use chargeops_core::Live;
use chargeops_gateway::Gateway;
use chargeops_store::Store;

pub use auth::{Caller, bootstrap_admin_token};
pub use error::ApiError;

/// The OpenAPI 3 description of this API, kept beside the routes it documents.
pub const OPENAPI: &str = include_str!("openapi.json");

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub live: Arc<Live>,
    pub gateway: Arc<Gateway>,
    pub started: Instant,
    pub(crate) tokens: auth::TokenCache,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, live: Arc<Live>, gateway: Arc<Gateway>) -> Arc<Self> {
        Arc::new(AppState {
            store,
            live,
            gateway,
            started: Instant::now(),
            tokens: auth::TokenCache::default(),
        })
    }
}

/// Every HTTP route; the gateway's `/ocpp/{id}` router is merged beside it by the binary.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(
            "/stations",
            get(routes::list_stations).post(routes::create_station),
        )
        .route("/stations/{id}", get(routes::get_station))
        .route(
            "/chargers",
            get(routes::list_chargers).post(routes::create_charger),
        )
        .route("/chargers/{id}", get(routes::get_charger))
        .route("/chargers/{id}/accept", post(routes::accept_charger))
        .route("/chargers/{id}/reject", post(routes::reject_charger))
        .route("/chargers/{id}/commands/{command}", post(routes::command))
        .route("/sessions", get(routes::list_sessions))
        .route("/sessions/{id}", get(routes::get_session))
        .route(
            "/id-tags",
            get(routes::list_id_tags).post(routes::upsert_id_tag),
        )
        .route("/id-tags/{tag}", delete(routes::delete_id_tag))
        .route("/events", get(routes::events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .route("/openapi.json", get(routes::openapi));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .merge(web::router(state.clone()))
        .fallback(routes::not_found)
        .with_state(state)
}

/// Every `/api/v1` path the router serves, for checking the OpenAPI document against it.
pub const API_PATHS: &[&str] = &[
    "/api/v1/stations",
    "/api/v1/stations/{id}",
    "/api/v1/chargers",
    "/api/v1/chargers/{id}",
    "/api/v1/chargers/{id}/accept",
    "/api/v1/chargers/{id}/reject",
    "/api/v1/chargers/{id}/commands/{command}",
    "/api/v1/sessions",
    "/api/v1/sessions/{id}",
    "/api/v1/id-tags",
    "/api/v1/id-tags/{tag}",
    "/api/v1/events",
    "/api/v1/openapi.json",
    // Served by `web`: what the operations map and the driver page need.
    "/api/v1/map/config",
    "/api/v1/network/summary",
    "/api/v1/stations/{id}/history",
    "/api/v1/public/stations",
    "/healthz",
    "/metrics",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_path() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(
            doc["openapi"].as_str().map(|v| v.starts_with("3.")),
            Some(true)
        );
        let paths = doc["paths"].as_object().expect("paths object");
        for p in API_PATHS {
            assert!(paths.contains_key(*p), "openapi.json lacks {p}");
        }
        assert_eq!(
            paths.len(),
            API_PATHS.len(),
            "openapi.json documents a path the router lacks"
        );
    }
}
