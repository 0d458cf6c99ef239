//! The HTTP side of chargeops: the REST API under `/api/v1`, the Server-Sent Events live feed,
//! health, Prometheus metrics and the OpenAPI document.
//!
//! Architecture invariant: this crate speaks HTTP and JSON only; it reaches chargers through
//! `Gateway::command` with protocol-neutral commands and never sees an OCPP frame.

mod accounts;
mod auth;
mod error;
pub mod forecast;
mod ops;
pub mod queue;
mod robots;
mod routes;
mod units;
mod web;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, post, put};

use chargeops_core::Live;
use chargeops_gateway::Gateway;
use chargeops_services::Services;
use chargeops_store::Store;

pub use chargeops_services::Caller;
pub use chargeops_services::accounts::bootstrap_admin_token;
pub use error::ApiError;

/// The OpenAPI 3 description of this API, kept beside the routes it documents.
pub const OPENAPI: &str = include_str!("openapi.json");

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub live: Arc<Live>,
    pub gateway: Arc<Gateway>,
    /// The application services the handlers call.
    pub services: Arc<Services>,
    pub started: Instant,
}

impl AppState {
    pub fn new(services: Arc<Services>) -> Arc<Self> {
        let p = &services.platform;
        Arc::new(AppState {
            store: p.store.clone(),
            live: p.live.clone(),
            gateway: p.gateway.clone(),
            services,
            started: Instant::now(),
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
        .route("/stations/{id}/waiting", put(routes::set_waiting))
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
        .route("/stations/{id}/forecast", get(forecast::station_forecast))
        .route("/stations/{id}/best-time", get(forecast::best_time))
        .route("/stations/{id}/plan", get(forecast::station_plan))
        .route("/forecast/warnings", get(forecast::warnings))
        .route("/forecast/map", get(forecast::map_forecast))
        .route("/cases", get(ops::list_cases).post(ops::create_case))
        .route("/cases/stats", get(ops::case_stats))
        .route("/cases/stats.csv", get(ops::case_stats_csv))
        .route("/cases/{id}", get(ops::get_case))
        .route("/cases/{id}/actions/{action}", post(ops::case_action))
        .route("/cases/{id}/proposals", get(ops::proposals))
        .route("/cases/{id}/remote/{command}", post(ops::remote))
        .route("/crews", get(ops::list_crews).post(ops::upsert_crew))
        .route("/faq", get(ops::faq))
        .route("/tokens", post(ops::create_token))
        .route("/me", get(ops::me))
        .route("/audit", get(ops::list_audit))
        .route(
            "/stations/{id}/lot",
            get(robots::get_lot)
                .put(robots::put_lot)
                .delete(robots::delete_lot),
        )
        .route("/stations/{id}/lot/assign", post(robots::assign))
        .route("/stations/{id}/lot/release", post(robots::release))
        .route(
            "/mobile-units",
            get(units::list_units).post(units::create_unit),
        )
        .route(
            "/mobile-units/plan",
            get(units::get_plan).post(units::post_plan),
        )
        .route("/mobile-units/{id}", delete(units::delete_unit))
        .route("/mobile-units/{id}/report", post(units::report_unit))
        .route("/mobile-units/{id}/tracker", put(units::set_tracker))
        .route("/accounts", get(accounts::list).post(accounts::create))
        .route("/accounts/{login}", delete(accounts::delete))
        .route("/accounts/{login}/password", post(accounts::set_password))
        .route("/logout", post(accounts::logout))
        // Inside the token check, so every change is audited with who asked for it.
        .route_layer(middleware::from_fn_with_state(state.clone(), ops::audit))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .route("/openapi.json", get(routes::openapi))
        .route("/login", post(accounts::login))
        .route("/public/stations/{id}/best-time", get(forecast::best_time));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .merge(web::router(state.clone()))
        .merge(queue::router())
        .merge(robots::router())
        .route("/api/v1/mobile-units/{id}/track", post(units::track_unit))
        .fallback(routes::not_found)
        .with_state(state)
}

/// Every `/api/v1` path the router serves, for checking the OpenAPI document against it.
pub const API_PATHS: &[&str] = &[
    "/api/v1/stations",
    "/api/v1/stations/{id}",
    "/api/v1/stations/{id}/waiting",
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
    "/api/v1/stations/{id}/forecast",
    "/api/v1/stations/{id}/best-time",
    "/api/v1/stations/{id}/plan",
    "/api/v1/forecast/warnings",
    "/api/v1/forecast/map",
    "/api/v1/public/stations/{id}/best-time",
    "/api/v1/cases",
    "/api/v1/cases/stats",
    "/api/v1/cases/stats.csv",
    "/api/v1/cases/{id}",
    "/api/v1/cases/{id}/actions/{action}",
    "/api/v1/cases/{id}/proposals",
    "/api/v1/cases/{id}/remote/{command}",
    "/api/v1/crews",
    "/api/v1/faq",
    "/api/v1/tokens",
    "/api/v1/me",
    "/api/v1/audit",
    "/api/v1/mobile-units",
    "/api/v1/mobile-units/plan",
    "/api/v1/mobile-units/{id}",
    "/api/v1/mobile-units/{id}/report",
    "/api/v1/mobile-units/{id}/tracker",
    "/api/v1/mobile-units/{id}/track",
    "/api/v1/accounts",
    "/api/v1/accounts/{login}",
    "/api/v1/accounts/{login}/password",
    "/api/v1/login",
    "/api/v1/logout",
    // Served by `web`: what the operations map and the driver page need.
    "/api/v1/map/config",
    "/api/v1/network/summary",
    "/api/v1/stations/{id}/history",
    "/api/v1/lots",
    "/api/v1/public/stations",
    // Served by `queue`: numbers, waits, diversion, the station card.
    "/api/v1/stations/{id}/queue",
    "/api/v1/stations/{id}/wait",
    "/api/v1/queue/{ticket}",
    "/api/v1/queue/{ticket}/call",
    "/api/v1/queue/{ticket}/start",
    "/api/v1/queue/{ticket}/skip",
    "/api/v1/queue/{ticket}/requeue",
    "/api/v1/diversion",
    "/api/v1/diversion/stats",
    "/api/v1/public/stations/{id}/card",
    // Served by `robots`: live robot lots (staff), cars (public), the robot interface.
    "/api/v1/stations/{id}/lot",
    "/api/v1/stations/{id}/lot/assign",
    "/api/v1/stations/{id}/lot/release",
    "/api/v1/stations/{id}/lot/cars",
    "/api/v1/lot-cars/{car}",
    "/api/v1/robots/{id}/report",
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
