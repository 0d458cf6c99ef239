//! Mapping SQLite errors onto `StoreError`.

use rusqlite::ErrorCode;
use rusqlite::ffi;

use crate::StoreError;

/// Maps an error from a statement to the kind a caller can act on: a uniqueness violation is a
/// `Conflict`, a missing referenced row `NotFound`, any other constraint `Invalid`, the rest
/// `Backend`. Call sites that know which record it was say so with `is_unique`/`is_foreign_key`.
pub(super) fn sql(e: rusqlite::Error) -> StoreError {
    match constraint_code(&e) {
        Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
            StoreError::Conflict(format!("record ({e})"))
        }
        Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
            StoreError::NotFound(format!("referenced record ({e})"))
        }
        Some(_) => StoreError::Invalid(e.to_string()),
        None => StoreError::Backend(e.to_string()),
    }
}

/// An error that is the backend's own, with what was being done.
pub(super) fn backend(doing: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("failed to {doing}: {e}"))
}

pub(super) fn is_unique(e: &rusqlite::Error) -> bool {
    matches!(
        constraint_code(e),
        Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

pub(super) fn is_foreign_key(e: &rusqlite::Error) -> bool {
    constraint_code(e) == Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

fn constraint_code(e: &rusqlite::Error) -> Option<i32> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation => {
            Some(f.extended_code)
        }
        _ => None,
    }
}
