//! Storage: one trait every backend implements, and the conformance suite they all must pass.
//!
//! Architecture invariant: a write method returns only after the data is durably committed, so a
//! caller that acknowledges something to a charger after `.await` has it on disk first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use thiserror::Error;

use chargeops_core::{
    ApiToken, BootInfo, Charger, ConnectorState, IdTag, MeterSample, NewSession, Protocol,
    Registration, Role, Session, SessionStop, Station,
};

use chargeops_ops::{AuditEntry, Case, CaseKind, Crew, TimelineEntry};
use chargeops_queue::Ticket;

mod check;
pub mod postgres;
pub mod sqlite;
pub mod suite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// What a caller can act on; anything else is `Backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    Invalid,
    Backend,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::Invalid(_) => ErrorKind::Invalid,
            StoreError::Backend(_) => ErrorKind::Backend,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Filter for listing sessions; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFilter {
    pub charger_id: Option<String>,
    pub station_id: Option<String>,
    /// Only sessions still running (`Some(true)`) or only finished ones (`Some(false)`).
    pub open: Option<bool>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

/// Result of starting a session: `created` is false when the same start was seen before
/// (a charger retrying after a reconnect) and the existing session is returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub session: Session,
    pub created: bool,
}

/// Result of stopping a session: `applied` is false when it had already been stopped
/// (a replayed stop) and nothing changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopped {
    pub session: Session,
    pub applied: bool,
}

/// A session brought in from elsewhere in bulk (a history import, the demo's simulated past),
/// not told by a connected charger. `transaction_ref` names it within its charger, so importing
/// the same sessions again adds nothing; it must not be all digits (those are OCPP 1.6
/// transaction ids, which the store assigns itself).
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedSession {
    pub charger_id: String,
    pub evse_id: u32,
    pub connector_id: u32,
    pub transaction_ref: String,
    pub id_tag: Option<String>,
    pub started_at: DateTime<Utc>,
    /// `None` for a session still running.
    pub stopped_at: Option<DateTime<Utc>>,
    pub energy_wh: Option<i64>,
    pub stop_reason: Option<String>,
}

/// A session reduced to what forecasting reads: where and when.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpan {
    pub station_id: String,
    pub charger_id: String,
    pub evse_id: u32,
    pub connector_id: u32,
    pub started_at: DateTime<Utc>,
    /// `None` while the session runs.
    pub stopped_at: Option<DateTime<Utc>>,
}

/// Filter for listing cases; `None` fields do not filter. Newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseFilter {
    pub charger_id: Option<String>,
    pub station_id: Option<String>,
    pub crew_id: Option<String>,
    pub kind: Option<CaseKind>,
    /// Only open cases (`Some(true)`: any state but closed) or only closed ones.
    pub open: Option<bool>,
    /// Opened at or after.
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

/// Filter for listing queue tickets; `None` fields do not filter. Active tickets
/// (`active: Some(true)`) come in call order per station, others newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketFilter {
    pub station_id: Option<String>,
    /// Only waiting, called and charging tickets (`Some(true)`), or only ended ones.
    pub active: Option<bool>,
    /// Taken at or after.
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

/// One status change kept as history.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRecord {
    pub charger_id: String,
    pub state: ConnectorState,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Stations.
    async fn upsert_station(&self, station: &Station) -> Result<()>;
    async fn get_station(&self, id: &str) -> Result<Option<Station>>;
    async fn list_stations(&self) -> Result<Vec<Station>>;

    // Chargers.
    /// Registers a new charger; `Conflict` when the id exists, `NotFound` when the station does not.
    async fn insert_charger(&self, charger: &Charger) -> Result<()>;
    async fn get_charger(&self, id: &str) -> Result<Option<Charger>>;
    async fn list_chargers(&self) -> Result<Vec<Charger>>;
    /// Records what the charger said of itself at boot, and when.
    async fn record_boot(
        &self,
        id: &str,
        protocol: Protocol,
        info: &BootInfo,
        at: DateTime<Utc>,
    ) -> Result<()>;
    async fn set_registration(&self, id: &str, registration: Registration) -> Result<()>;
    async fn set_charger_password(&self, id: &str, password_hash: Option<&str>) -> Result<()>;
    /// A YKC charger's 3DES key (32 or 48 hex digits; `None` clears it). `NotFound` for an
    /// unknown charger.
    async fn set_charger_ykc_key(&self, id: &str, key_hex: Option<&str>) -> Result<()>;
    /// The key set with [`set_charger_ykc_key`](Store::set_charger_ykc_key); `None` for an
    /// unknown charger or one without a key.
    async fn charger_ykc_key(&self, id: &str) -> Result<Option<String>>;

    // Connector status: the current value per connector plus every change as history.
    /// A report older than the connector's current one goes to history only; an exact replay
    /// (same connector, status and time) adds nothing. `NotFound` for an unknown charger.
    async fn record_status(&self, charger_id: &str, state: &ConnectorState) -> Result<()>;
    /// Last known status of every connector of every charger.
    async fn list_connectors(&self) -> Result<Vec<(String, ConnectorState)>>;
    async fn status_history(
        &self,
        charger_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ConnectorState>>;

    // Sessions.
    /// Starts a session exactly once. OCPP 1.6 (no `transaction_ref`): a start with the same
    /// charger, connector, id tag, start time and meter start returns the existing session.
    /// OCPP 2.0.1: the same charger and `transaction_ref` returns the existing session.
    async fn start_session(&self, new: &NewSession) -> Result<Started>;
    async fn get_session(&self, id: i64) -> Result<Option<Session>>;
    async fn find_session(
        &self,
        charger_id: &str,
        transaction_ref: &str,
    ) -> Result<Option<Session>>;
    /// Stops a session exactly once; `NotFound` for an unknown session.
    async fn stop_session(&self, id: i64, stop: &SessionStop) -> Result<Stopped>;
    /// Updates a running session's energy so far (and last applied seqNo); ignored once stopped,
    /// and ignored when `seq_no` is older than the last applied one. `NotFound` for an unknown id.
    async fn update_session_energy(
        &self,
        id: i64,
        energy_wh: Option<i64>,
        seq_no: Option<i64>,
    ) -> Result<()>;
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>>;
    /// Imports sessions in bulk: one call is one transaction, all or nothing, so callers send a
    /// large import in chunks (tens of thousands) and other writes are not held up for long.
    /// Returns how many were new: a session whose charger and `transaction_ref` exist already is
    /// skipped. `NotFound` for an unknown charger, `Invalid` for a stop before the start or an
    /// all-digit `transaction_ref`.
    async fn import_sessions(&self, sessions: &[ImportedSession]) -> Result<u64>;
    /// Sessions that started in `[since, until)`, of one station or of all, oldest first, as
    /// spans: the one query forecasting needs, without the columns it does not.
    async fn session_spans(
        &self,
        station_id: Option<&str>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<SessionSpan>>;

    // Meter values history.
    /// Stores all samples or none; an exact replay adds nothing. `NotFound` for a sample whose
    /// session does not exist.
    async fn record_meter_samples(&self, samples: &[MeterSample]) -> Result<()>;
    async fn meter_samples(&self, session_id: i64) -> Result<Vec<MeterSample>>;

    // Authorization list.
    async fn upsert_id_tag(&self, tag: &IdTag) -> Result<()>;
    async fn get_id_tag(&self, id_tag: &str) -> Result<Option<IdTag>>;
    async fn list_id_tags(&self) -> Result<Vec<IdTag>>;
    /// `NotFound` when there was no such tag.
    async fn delete_id_tag(&self, id_tag: &str) -> Result<()>;

    // API tokens (stored as digests).
    async fn insert_token(&self, name: &str, role: Role, token_digest: &str) -> Result<ApiToken>;
    async fn find_token(&self, token_digest: &str) -> Result<Option<ApiToken>>;
    async fn count_tokens(&self) -> Result<u64>;
    /// A token that acts for a field crew (`crew_id`), or any token with `crew_id` `None`.
    async fn insert_crew_token(
        &self,
        name: &str,
        role: Role,
        token_digest: &str,
        crew_id: Option<&str>,
    ) -> Result<ApiToken>;

    // The operations loop: cases with their timeline, crews, the audit log.
    /// Stores a new case (its `id` is assigned) with its first timeline entries, in one commit.
    /// `NotFound` for an unknown station, charger or crew.
    async fn insert_case(&self, case: &Case, timeline: &[TimelineEntry]) -> Result<Case>;
    /// Saves a changed case and appends to its timeline, in one commit. `NotFound` for an
    /// unknown case (or station, charger, crew).
    async fn update_case(&self, case: &Case, timeline: &[TimelineEntry]) -> Result<()>;
    async fn get_case(&self, id: i64) -> Result<Option<Case>>;
    async fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<Case>>;
    /// A case's timeline, oldest first.
    async fn case_timeline(&self, id: i64) -> Result<Vec<TimelineEntry>>;
    async fn upsert_crew(&self, crew: &Crew) -> Result<()>;
    async fn get_crew(&self, id: &str) -> Result<Option<Crew>>;
    async fn list_crews(&self) -> Result<Vec<Crew>>;
    /// Appends to the audit log; returns the entry's id.
    async fn record_audit(&self, entry: &AuditEntry) -> Result<i64>;
    /// The newest `limit` audit entries, newest first.
    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>>;

    // Queue tickets.
    /// Stores a new ticket and returns it with its `number` (the station's largest plus one).
    /// `NotFound` for an unknown station; `Conflict` when its contact already holds an active
    /// (waiting, called or charging) ticket at the station, or the id exists.
    async fn insert_ticket(&self, ticket: &Ticket) -> Result<Ticket>;
    /// Saves a changed ticket (not its id, number, station or creation). `NotFound` for an
    /// unknown ticket; `Conflict` when it would give its contact a second active ticket.
    async fn update_ticket(&self, ticket: &Ticket) -> Result<()>;
    async fn get_ticket(&self, id: &str) -> Result<Option<Ticket>>;
    async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>>;

    // Documents: small keyed JSON records (a robot lot's layout, a mobile unit's state) that are
    // read and written whole.
    /// Creates or replaces the document `kind`/`id`. `Invalid` when the body is not JSON, is
    /// over 1 MiB, or the kind or id is empty.
    async fn put_document(&self, kind: &str, id: &str, body: &str) -> Result<()>;
    /// Deletes a document; `true` when it existed.
    async fn delete_document(&self, kind: &str, id: &str) -> Result<bool>;
    /// Every document of `kind` as `(id, body)`, in id order.
    async fn list_documents(&self, kind: &str) -> Result<Vec<(String, String)>>;
}
