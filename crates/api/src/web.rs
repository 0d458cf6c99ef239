//! The operator and driver pages, shipped inside the binary.

use std::sync::Arc;

use axum::Router;

use crate::AppState;

pub(crate) fn router(_state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
}
