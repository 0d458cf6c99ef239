//! One error type for every service: a kind the edges map to their own status codes, a stable
//! machine-readable code, and a message fit to show the caller (never internals).

use chargeops_core::CommandError;
use chargeops_store::StoreError;

/// What went wrong, as the caller acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (a field out of range, a malformed value).
    Invalid,
    /// Well-formed, but cannot be done for the thing it names (HTTP 422).
    Unprocessable,
    /// No credentials, or wrong ones.
    Unauthorized,
    /// The caller may not do this.
    Forbidden,
    NotFound,
    /// The current state forbids it (exists already, wrong state, full).
    Conflict,
    /// Too many attempts; try again later.
    TooManyRequests,
    /// A charger answered with an error or went away.
    Upstream,
    /// A charger did not answer in time.
    Timeout,
    /// The store cannot be reached; try again.
    Unavailable,
    /// Something on our side failed.
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    /// Stable code for clients (`bad_request`, `not_found`, `queue_full`, ...).
    pub code: &'static str,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Error {
            kind,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", message)
    }

    /// A conflict with its own code (`conflict` when nothing more telling fits).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn forbidden() -> Self {
        Self::new(
            ErrorKind::Forbidden,
            "forbidden",
            "this token's role may not do that",
        )
    }

    /// Something on our side failed; the message says what, never how.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        use chargeops_store::ErrorKind as K;
        match e.kind() {
            K::NotFound => Error::not_found(e.to_string()),
            K::Conflict => Error::conflict("conflict", e.to_string()),
            K::Invalid => Error::invalid(e.to_string()),
            K::Backend => {
                tracing::error!(error = %e, "storage failed");
                Error::new(
                    ErrorKind::Unavailable,
                    "storage_unavailable",
                    "storage is unavailable, try again",
                )
            }
        }
    }
}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        let (kind, code) = match &e {
            CommandError::Offline(_) => (ErrorKind::Conflict, "charger_offline"),
            CommandError::Timeout(_) => (ErrorKind::Timeout, "charger_timeout"),
            CommandError::CallError { .. } => (ErrorKind::Upstream, "charger_error"),
            CommandError::Closed => (ErrorKind::Upstream, "charger_disconnected"),
            CommandError::Unsupported { .. } => (ErrorKind::Invalid, "not_supported"),
            CommandError::Invalid(_) => (ErrorKind::Invalid, "bad_request"),
        };
        Error::new(kind, code, e.to_string())
    }
}
