//! What a store refuses as `Invalid` whatever the backend: checks made before any SQL, so
//! SQLite and PostgreSQL refuse the same input with the same message.

use chargeops_core::{MeterSample, Station};
use chargeops_ops::{Case, Crew};
use chargeops_queue::Ticket;

use crate::{ImportedSession, Result, StoreError};

/// Longest accepted document body, bytes: these are records, not files.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

pub(crate) fn station(s: &Station) -> Result<()> {
    if s.lat.is_some_and(|v| !v.is_finite()) || s.lon.is_some_and(|v| !v.is_finite()) {
        return Err(StoreError::Invalid(format!(
            "station {} has a non-finite position",
            s.id
        )));
    }
    Ok(())
}

/// An OCPP 1.6 transactionId is a 32-bit integer, and a 1.6 session's id is its transactionId.
pub(crate) fn ocpp16_transaction_id(id: i64) -> Result<()> {
    if i32::try_from(id).is_err() {
        return Err(StoreError::Invalid(format!(
            "session id {id} does not fit an OCPP 1.6 transactionId"
        )));
    }
    Ok(())
}

pub(crate) fn imported_session(s: &ImportedSession) -> Result<()> {
    if s.stopped_at.is_some_and(|end| end < s.started_at) {
        return Err(StoreError::Invalid(format!(
            "session {} of charger {} stops before it starts",
            s.transaction_ref, s.charger_id
        )));
    }
    if s.transaction_ref.is_empty() || s.transaction_ref.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::Invalid(format!(
            "imported transaction_ref {:?} of charger {} must not be empty or all digits",
            s.transaction_ref, s.charger_id
        )));
    }
    Ok(())
}

pub(crate) fn meter_sample(s: &MeterSample) -> Result<()> {
    if !s.value.is_finite() {
        return Err(StoreError::Invalid(format!(
            "non-finite {} sample from charger {}",
            s.measurand, s.charger_id
        )));
    }
    Ok(())
}

pub(crate) fn document(kind: &str, id: &str, body: &str) -> Result<()> {
    if kind.is_empty() || id.is_empty() {
        return Err(StoreError::Invalid(
            "a document needs a kind and an id".into(),
        ));
    }
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(StoreError::Invalid(format!(
            "document {kind}/{id} is {} bytes, more than {MAX_DOCUMENT_BYTES}",
            body.len()
        )));
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(body).is_err() {
        return Err(StoreError::Invalid(format!(
            "document {kind}/{id} is not JSON"
        )));
    }
    Ok(())
}

pub(crate) fn case(c: &Case) -> Result<()> {
    if c.station_id.is_empty() || c.charger_id.as_deref() == Some("") {
        return Err(StoreError::Invalid("empty charger or station id".into()));
    }
    if c.opened_at > c.sla_due_at {
        return Err(StoreError::Invalid("case due before it opened".into()));
    }
    Ok(())
}

pub(crate) fn crew(c: &Crew) -> Result<()> {
    if !(c.lat.is_finite() && c.lon.is_finite() && c.speed_kmh.is_finite()) {
        return Err(StoreError::Invalid(format!(
            "crew {} has a non-finite number",
            c.id
        )));
    }
    Ok(())
}

pub(crate) fn ticket(t: &Ticket) -> Result<()> {
    if t.id.is_empty() || t.station_id.is_empty() {
        return Err(StoreError::Invalid("empty ticket or station id".into()));
    }
    if t.contact.as_deref().is_some_and(str::is_empty) {
        return Err(StoreError::Invalid("empty contact (use none)".into()));
    }
    Ok(())
}
