//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in importing, forecasting or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    #[error("failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("line {line}: {message}")]
    Csv { line: usize, message: String },
    #[error("invalid horizon {0}: must be between 1 and {max} hours", max = crate::model::MAX_HORIZON_HOURS)]
    InvalidHorizon(usize),
    #[error("site has no connectors")]
    NoConnectors,
    #[error("no sessions to work on{0}")]
    NoSessions(String),
    #[error("not enough history: {0}")]
    NotEnoughHistory(String),
    #[error("invalid calendar line {line}: {message}")]
    Calendar { line: usize, message: String },
    #[error(
        "invalid time zone {0:?}: expected an IANA zone name (Europe/London, Asia/Shanghai, America/New_York, ...), utc or +HH:MM"
    )]
    TimeZone(String),
    #[error("failed to encode json: {0}")]
    Json(#[from] serde_json::Error),
}
