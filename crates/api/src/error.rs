//! API errors: a small set of HTTP statuses with a JSON body `{code, message}` that never
//! leaks internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use chargeops_core::CommandError;
use chargeops_store::{ErrorKind, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Something on our side failed; the message says what, never how.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token's role may not do that",
        )
    }
}

/// 401 for a device that authenticates with HTTP Basic (a robot, a mobile unit's tracker),
/// asking for Basic credentials where the API's usual 401 asks for a bearer token.
pub fn basic_unauthorized(message: &'static str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    resp.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Basic realm=\"chargeops\""),
    );
    resp
}

/// Every error's body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// Stable, for programs: `bad_request`, `not_found`, `conflict`, `queue_full`, ...
    code: &'static str,
    /// For people.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            code: self.code,
            message: self.message,
        });
        let mut resp = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.kind() {
            ErrorKind::NotFound => ApiError::not_found(e.to_string()),
            ErrorKind::Conflict => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            ErrorKind::Invalid => ApiError::bad_request(e.to_string()),
            ErrorKind::Backend => {
                tracing::error!(error = %e, "storage failed while serving the API");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "storage is unavailable, try again",
                )
            }
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        let (status, code) = match &e {
            CommandError::Offline(_) => (StatusCode::CONFLICT, "charger_offline"),
            CommandError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "charger_timeout"),
            CommandError::CallError { .. } => (StatusCode::BAD_GATEWAY, "charger_error"),
            CommandError::Closed => (StatusCode::BAD_GATEWAY, "charger_disconnected"),
            CommandError::Unsupported { .. } => (StatusCode::BAD_REQUEST, "not_supported"),
            CommandError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<chargeops_services::Error> for ApiError {
    fn from(e: chargeops_services::Error) -> Self {
        use chargeops_services::ErrorKind as K;
        let status = match e.kind {
            K::Invalid => StatusCode::BAD_REQUEST,
            K::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            K::Unauthorized => StatusCode::UNAUTHORIZED,
            K::Forbidden => StatusCode::FORBIDDEN,
            K::NotFound => StatusCode::NOT_FOUND,
            K::Conflict => StatusCode::CONFLICT,
            K::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            K::Upstream => StatusCode::BAD_GATEWAY,
            K::Timeout => StatusCode::GATEWAY_TIMEOUT,
            K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            K::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code, e.message)
    }
}

/// JSON body rejections in the same `{code, message}` shape.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON body into `T`; an empty body reads as `{}` so body-less commands work.
pub(crate) fn body<T: serde::de::DeserializeOwned>(bytes: &axum::body::Bytes) -> ApiResult<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A query string's value, or the rejection in the `{code, message}` shape.
pub(crate) fn query<T>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<T> {
    q.map(|axum::extract::Query(v)| v).map_err(ApiError::from)
}
