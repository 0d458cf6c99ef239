//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in reading a trace or a fleet, simulating or planning.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A trace row (or the header) that cannot be used; `line` counts from 1, the header is 1.
    #[error("line {line}: {message}")]
    Trace { line: usize, message: String },
    #[error("car {car} (arriving at {arrival_s} s): {message}")]
    Car {
        car: usize,
        arrival_s: f64,
        message: String,
    },
    #[error("invalid fleet: {0}")]
    Fleet(String),
    #[error("invalid lot: {0}")]
    Lot(String),
    /// An assignment that breaks the battery rule or the robot's or car's state.
    #[error("robot {robot} cannot take car {car}: {reason}")]
    Assignment {
        robot: usize,
        car: usize,
        reason: String,
    },
    #[error("invalid relocation input: {0}")]
    Relocation(String),
    #[error("failed to encode json: {0}")]
    Json(#[from] serde_json::Error),
}
