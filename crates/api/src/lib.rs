//! The HTTP side of chargeops: the REST API under `/api/v1`, the Server-Sent Events live feed,
//! health, Prometheus metrics and the OpenAPI document.
//!
//! Architecture invariant: this crate speaks HTTP and JSON only; it reaches chargers through
//! `Gateway::command` with protocol-neutral commands and never sees an OCPP frame.

mod accounts;
mod auth;
mod error;
pub mod forecast;
mod forward;
mod ocpi;
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
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chargeops_core::Live;
use chargeops_gateway::Gateway;
use chargeops_services::Services;
use chargeops_store::Store;

pub use chargeops_services::Caller;
pub use chargeops_services::accounts::bootstrap_admin_token;
pub use error::ApiError;

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
    let (router, mut doc) = app(state.clone()).split_for_parts();
    routes::add_common_responses(&mut doc);
    let doc = routes::OpenApiJson::new(&doc);
    router
        .merge(ocpi::router().with_state(state.clone()))
        .layer(axum::Extension(doc))
        .fallback(routes::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            forward::to_duties_node,
        ))
        .with_state(state)
}

/// The OpenAPI 3.1 document of every route [`router`] serves, generated from the handlers'
/// own request and response types.
pub fn openapi(state: Arc<AppState>) -> utoipa::openapi::OpenApi {
    let mut doc = app(state).into_openapi();
    routes::add_common_responses(&mut doc);
    doc
}

/// The routes and their documentation, from one table.
fn app(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let api = OpenApiRouter::new()
        .routes(routes!(routes::list_stations, routes::create_station))
        .routes(routes!(routes::get_station))
        .routes(routes!(routes::set_waiting))
        .routes(routes!(routes::list_chargers, routes::create_charger))
        .routes(routes!(routes::get_charger))
        .routes(routes!(routes::accept_charger))
        .routes(routes!(routes::reject_charger))
        .routes(routes!(routes::command))
        .routes(routes!(routes::list_sessions))
        .routes(routes!(routes::get_session))
        .routes(routes!(routes::list_id_tags, routes::upsert_id_tag))
        .routes(routes!(routes::delete_id_tag))
        .routes(routes!(routes::events))
        .routes(routes!(routes::cluster))
        .routes(routes!(ocpi::create_partner))
        .routes(routes!(ocpi::list_partners))
        .routes(routes!(forecast::station_forecast))
        .routes(routes!(forecast::best_time))
        .routes(routes!(forecast::station_plan))
        .routes(routes!(forecast::warnings))
        .routes(routes!(forecast::map_forecast))
        .routes(routes!(ops::list_cases, ops::create_case))
        .routes(routes!(ops::case_stats))
        .routes(routes!(ops::case_stats_csv))
        .routes(routes!(ops::get_case))
        .routes(routes!(ops::case_action))
        .routes(routes!(ops::proposals))
        .routes(routes!(ops::remote))
        .routes(routes!(ops::list_crews, ops::upsert_crew))
        .routes(routes!(ops::faq))
        .routes(routes!(ops::create_token))
        .routes(routes!(ops::me))
        .routes(routes!(ops::list_audit))
        .routes(routes!(
            robots::get_lot,
            robots::put_lot,
            robots::delete_lot
        ))
        .routes(routes!(robots::assign))
        .routes(routes!(robots::release))
        .routes(routes!(units::list_units, units::create_unit))
        .routes(routes!(units::get_plan, units::post_plan))
        .routes(routes!(units::delete_unit))
        .routes(routes!(units::report_unit))
        .routes(routes!(units::set_tracker))
        .routes(routes!(accounts::list, accounts::create))
        .routes(routes!(accounts::delete))
        .routes(routes!(accounts::set_password))
        .routes(routes!(accounts::logout))
        // Inside the token check, so every change is audited with who asked for it.
        .route_layer(middleware::from_fn_with_state(state.clone(), ops::audit))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .routes(routes!(routes::openapi))
        .routes(routes!(accounts::login))
        .routes(routes!(forecast::public_best_time));
    OpenApiRouter::with_openapi(routes::ApiDoc::openapi())
        .nest("/api/v1", api)
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::metrics))
        .merge(web::router(state))
        .merge(queue::router())
        .merge(robots::router())
        .routes(routes!(units::track_unit))
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
    "/api/v1/cluster",
    "/api/v1/partners/ocpi",
    "/api/v1/partners",
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

    fn state() -> (Arc<AppState>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "chargeops-openapi-{}",
            chargeops_core::secret::random_hex(6)
        ));
        let store: Arc<dyn Store> =
            Arc::new(chargeops_store::SqliteStore::open_dir(&dir).expect("store"));
        let live = Arc::new(Live::new());
        let gateway = Gateway::new(store.clone(), live.clone(), Default::default());
        let platform = chargeops_services::Platform::new(store, live, gateway);
        (AppState::new(Services::new(platform)), dir)
    }

    /// The document is generated from the same table as the router: every path is there, each
    /// operation answers with a body schema, and every schema it names is in the document.
    #[tokio::test]
    async fn openapi_documents_every_route_with_its_bodies() {
        let (state, dir) = state();
        let doc = serde_json::to_value(openapi(state)).expect("document");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths object");
        for p in API_PATHS {
            assert!(paths.contains_key(*p), "the document lacks {p}");
        }
        assert_eq!(
            paths.len(),
            API_PATHS.len(),
            "a documented path is missing from API_PATHS: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let text = doc.to_string();
        for name in text
            .split("\"#/components/schemas/")
            .skip(1)
            .filter_map(|s| s.split('"').next())
        {
            assert!(
                schemas.contains_key(name),
                "{name} is referenced, not defined"
            );
        }
        let mut ids = std::collections::HashSet::new();
        for (path, ops) in paths {
            for (method, op) in ops.as_object().expect("operations") {
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                let ok = op["responses"]
                    .as_object()
                    .expect("responses")
                    .iter()
                    .find(|(status, _)| status.starts_with('2'))
                    .unwrap_or_else(|| panic!("{method} {path} documents no success"));
                if ok.0 != "204" {
                    assert!(
                        ok.1["content"].as_object().is_some_and(|c| !c.is_empty()),
                        "{method} {path} documents no response body"
                    );
                }
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
