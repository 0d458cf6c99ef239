//! The SQLite backend: one file in WAL mode, for a single node.
//!
//! It owns the schema (`schema`: an ordered list of migrations), the one writer thread that
//! batches every write into a shared commit (`writer`), the reader threads (`readers`), and the
//! SQL of each `Store` method (`queries`).
//!
//! Durability: the file runs with `synchronous=FULL`, and a write call returns only after the
//! COMMIT of its batch has returned, so an acknowledged write survives kill -9 and power loss.
//! The fsync this costs is shared by every write queued while the previous batch was committing.
//!
//! Timestamps are INTEGER milliseconds since the Unix epoch, UTC; sub-millisecond precision is
//! dropped on write, and what a write returns is already truncated the same way.

mod error;
mod queries;
mod readers;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use chargeops_core::{
    ApiToken, BootInfo, Charger, ConnectorState, IdTag, MeterSample, NewSession, Protocol,
    Registration, Role, Session, SessionStop, Station,
};

use crate::CaseFilter;
use crate::TicketFilter;
use crate::{
    ImportedSession, Result, SessionFilter, SessionSpan, Started, Stopped, Store, StoreError,
};
use chargeops_ops::{AuditEntry, Case, Crew, TimelineEntry};
use chargeops_queue::Ticket;

use self::error::backend;
use self::readers::Readers;
use self::writer::Writer;

/// The file `open_dir` uses inside the data directory.
pub const FILE_NAME: &str = "chargeops.sqlite3";

/// How long a connection waits for a lock held by another process (a backup, the sqlite3 shell).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache of the write connection, in KiB: keeps the hot index pages of the write path.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
const READER_CACHE_KIB: i64 = 16 * 1024;
/// Size the WAL is truncated back to after a checkpoint.
const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// A `Store` on one SQLite file. Dropping it finishes the queued writes and closes the file.
pub struct SqliteStore {
    // Readers close first, so the writer's close is the last and checkpoints the WAL.
    readers: Readers,
    writer: Writer,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) and migrates the file at `path`.
    /// Refuses a file written by a newer chargeops.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| backend(&format!("create {}", parent.display()), e))?;
        }
        let mut conn =
            Connection::open(path).map_err(|e| backend(&format!("open {}", path.display()), e))?;
        configure(&conn, WRITER_CACHE_KIB)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| backend("enable foreign keys", e))?;
        schema::migrate(&mut conn)?;

        let readers = (0..reader_count())
            .map(|_| {
                let conn = Connection::open(path)
                    .map_err(|e| backend(&format!("open {}", path.display()), e))?;
                configure(&conn, READER_CACHE_KIB)?;
                conn.pragma_update(None, "query_only", "ON")
                    .map_err(|e| backend("make reader query-only", e))?;
                Ok(conn)
            })
            .collect::<Result<Vec<_>>>()?;

        tracing::debug!(
            path = %path.display(),
            schema_version = schema::latest_version(),
            readers = readers.len(),
            "opened sqlite store"
        );
        Ok(SqliteStore {
            readers: Readers::spawn(readers)?,
            writer: Writer::spawn(conn)?,
            path: path.to_owned(),
        })
    }

    /// Opens `dir/chargeops.sqlite3`.
    pub fn open_dir(dir: &Path) -> Result<SqliteStore> {
        Self::open(&dir.join(FILE_NAME))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.write(move |tx| work(tx)).await
    }

    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.readers.read(work).await
    }
}

/// Readers never wait for the writer in WAL mode, so a few cover the two cores of the budget
/// machine with room for a reader that waits on the disk.
fn reader_count() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4)
}

fn configure(conn: &Connection, cache_kib: i64) -> Result<()> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| backend("set journal_mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "sqlite refused WAL mode (journal_mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .and_then(|()| conn.pragma_update(None, "cache_size", -cache_kib))
        .and_then(|()| conn.pragma_update(None, "journal_size_limit", WAL_LIMIT_BYTES))
        .and_then(|()| conn.busy_timeout(BUSY_TIMEOUT))
        .map_err(|e| backend("configure connection", e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_station(&self, station: &Station) -> Result<()> {
        let station = station.clone();
        self.write(move |c| queries::upsert_station(c, &station))
            .await
    }

    async fn get_station(&self, id: &str) -> Result<Option<Station>> {
        let id = id.to_owned();
        self.read(move |c| queries::get_station(c, &id)).await
    }

    async fn list_stations(&self) -> Result<Vec<Station>> {
        self.read(queries::list_stations).await
    }

    async fn insert_charger(&self, charger: &Charger) -> Result<()> {
        let charger = charger.clone();
        self.write(move |c| queries::insert_charger(c, &charger))
            .await
    }

    async fn get_charger(&self, id: &str) -> Result<Option<Charger>> {
        let id = id.to_owned();
        self.read(move |c| queries::get_charger(c, &id)).await
    }

    async fn list_chargers(&self) -> Result<Vec<Charger>> {
        self.read(queries::list_chargers).await
    }

    async fn record_boot(
        &self,
        id: &str,
        protocol: Protocol,
        info: &BootInfo,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (id, info) = (id.to_owned(), info.clone());
        self.write(move |c| queries::record_boot(c, &id, protocol, &info, at))
            .await
    }

    async fn set_registration(&self, id: &str, registration: Registration) -> Result<()> {
        let id = id.to_owned();
        self.write(move |c| queries::set_registration(c, &id, registration))
            .await
    }

    async fn set_charger_password(&self, id: &str, password_hash: Option<&str>) -> Result<()> {
        let (id, hash) = (id.to_owned(), password_hash.map(str::to_owned));
        self.write(move |c| queries::set_charger_password(c, &id, hash.as_deref()))
            .await
    }

    async fn set_charger_ykc_key(&self, id: &str, key_hex: Option<&str>) -> Result<()> {
        let (id, key) = (id.to_owned(), key_hex.map(str::to_owned));
        self.write(move |c| queries::set_charger_ykc_key(c, &id, key.as_deref()))
            .await
    }

    async fn charger_ykc_key(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_owned();
        self.read(move |c| queries::charger_ykc_key(c, &id)).await
    }

    async fn record_status(&self, charger_id: &str, state: &ConnectorState) -> Result<()> {
        let (charger_id, state) = (charger_id.to_owned(), state.clone());
        self.write(move |c| queries::record_status(c, &charger_id, &state))
            .await
    }

    async fn list_connectors(&self) -> Result<Vec<(String, ConnectorState)>> {
        self.read(queries::list_connectors).await
    }

    async fn status_history(
        &self,
        charger_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ConnectorState>> {
        let charger_id = charger_id.to_owned();
        self.read(move |c| queries::status_history(c, &charger_id, since))
            .await
    }

    async fn start_session(&self, new: &NewSession) -> Result<Started> {
        let new = new.clone();
        self.write(move |c| queries::start_session(c, &new)).await
    }

    async fn get_session(&self, id: i64) -> Result<Option<Session>> {
        self.read(move |c| queries::get_session(c, id)).await
    }

    async fn find_session(
        &self,
        charger_id: &str,
        transaction_ref: &str,
    ) -> Result<Option<Session>> {
        let (charger_id, transaction_ref) = (charger_id.to_owned(), transaction_ref.to_owned());
        self.read(move |c| queries::find_session(c, &charger_id, &transaction_ref))
            .await
    }

    async fn stop_session(&self, id: i64, stop: &SessionStop) -> Result<Stopped> {
        let stop = stop.clone();
        self.write(move |c| queries::stop_session(c, id, &stop))
            .await
    }

    async fn update_session_energy(
        &self,
        id: i64,
        energy_wh: Option<i64>,
        seq_no: Option<i64>,
    ) -> Result<()> {
        self.write(move |c| queries::update_session_energy(c, id, energy_wh, seq_no))
            .await
    }

    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>> {
        let filter = filter.clone();
        self.read(move |c| queries::list_sessions(c, &filter)).await
    }

    async fn import_sessions(&self, sessions: &[ImportedSession]) -> Result<u64> {
        if sessions.is_empty() {
            return Ok(0);
        }
        let sessions = sessions.to_vec();
        self.write(move |c| queries::import_sessions(c, &sessions))
            .await
    }

    async fn session_spans(
        &self,
        station_id: Option<&str>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<SessionSpan>> {
        let station_id = station_id.map(str::to_owned);
        self.read(move |c| queries::session_spans(c, station_id.as_deref(), since, until))
            .await
    }

    async fn record_meter_samples(&self, samples: &[MeterSample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let samples = samples.to_vec();
        self.write(move |c| queries::record_meter_samples(c, &samples))
            .await
    }

    async fn meter_samples(&self, session_id: i64) -> Result<Vec<MeterSample>> {
        self.read(move |c| queries::meter_samples(c, session_id))
            .await
    }

    async fn upsert_id_tag(&self, tag: &IdTag) -> Result<()> {
        let tag = tag.clone();
        self.write(move |c| queries::upsert_id_tag(c, &tag)).await
    }

    async fn get_id_tag(&self, id_tag: &str) -> Result<Option<IdTag>> {
        let id_tag = id_tag.to_owned();
        self.read(move |c| queries::get_id_tag(c, &id_tag)).await
    }

    async fn list_id_tags(&self) -> Result<Vec<IdTag>> {
        self.read(queries::list_id_tags).await
    }

    async fn delete_id_tag(&self, id_tag: &str) -> Result<()> {
        let id_tag = id_tag.to_owned();
        self.write(move |c| queries::delete_id_tag(c, &id_tag))
            .await
    }

    async fn insert_token(&self, name: &str, role: Role, token_digest: &str) -> Result<ApiToken> {
        self.insert_crew_token(name, role, token_digest, None).await
    }

    async fn find_token(&self, token_digest: &str) -> Result<Option<ApiToken>> {
        let digest = token_digest.to_owned();
        self.read(move |c| queries::find_token(c, &digest)).await
    }

    async fn count_tokens(&self) -> Result<u64> {
        self.read(queries::count_tokens).await
    }

    async fn insert_crew_token(
        &self,
        name: &str,
        role: Role,
        token_digest: &str,
        crew_id: Option<&str>,
    ) -> Result<ApiToken> {
        let (name, digest, now) = (name.to_owned(), token_digest.to_owned(), Utc::now());
        let crew_id = crew_id.map(str::to_owned);
        self.write(move |c| queries::insert_token(c, &name, role, &digest, now, crew_id.as_deref()))
            .await
    }

    async fn insert_case(&self, case: &Case, timeline: &[TimelineEntry]) -> Result<Case> {
        let (case, timeline) = (case.clone(), timeline.to_vec());
        self.write(move |c| queries::ops::insert_case(c, &case, &timeline))
            .await
    }

    async fn update_case(&self, case: &Case, timeline: &[TimelineEntry]) -> Result<()> {
        let (case, timeline) = (case.clone(), timeline.to_vec());
        self.write(move |c| queries::ops::update_case(c, &case, &timeline))
            .await
    }

    async fn get_case(&self, id: i64) -> Result<Option<Case>> {
        self.read(move |c| queries::ops::get_case(c, id)).await
    }

    async fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<Case>> {
        let filter = filter.clone();
        self.read(move |c| queries::ops::list_cases(c, &filter))
            .await
    }

    async fn case_timeline(&self, id: i64) -> Result<Vec<TimelineEntry>> {
        self.read(move |c| queries::ops::case_timeline(c, id)).await
    }

    async fn upsert_crew(&self, crew: &Crew) -> Result<()> {
        let crew = crew.clone();
        self.write(move |c| queries::ops::upsert_crew(c, &crew))
            .await
    }

    async fn get_crew(&self, id: &str) -> Result<Option<Crew>> {
        let id = id.to_owned();
        self.read(move |c| queries::ops::get_crew(c, &id)).await
    }

    async fn list_crews(&self) -> Result<Vec<Crew>> {
        self.read(queries::ops::list_crews).await
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let entry = entry.clone();
        self.write(move |c| queries::ops::record_audit(c, &entry))
            .await
    }

    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        self.read(move |c| queries::ops::list_audit(c, limit)).await
    }

    async fn put_document(&self, kind: &str, id: &str, body: &str) -> Result<()> {
        let (kind, id, body, now) = (kind.to_owned(), id.to_owned(), body.to_owned(), Utc::now());
        self.write(move |c| queries::documents::put_document(c, &kind, &id, &body, now))
            .await
    }

    async fn delete_document(&self, kind: &str, id: &str) -> Result<bool> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.write(move |c| queries::documents::delete_document(c, &kind, &id))
            .await
    }

    async fn list_documents(&self, kind: &str) -> Result<Vec<(String, String)>> {
        let kind = kind.to_owned();
        self.read(move |c| queries::documents::list_documents(c, &kind))
            .await
    }

    async fn insert_ticket(&self, ticket: &Ticket) -> Result<Ticket> {
        let ticket = ticket.clone();
        self.write(move |c| queries::queue::insert_ticket(c, &ticket))
            .await
    }

    async fn update_ticket(&self, ticket: &Ticket) -> Result<()> {
        let ticket = ticket.clone();
        self.write(move |c| queries::queue::update_ticket(c, &ticket))
            .await
    }

    async fn get_ticket(&self, id: &str) -> Result<Option<Ticket>> {
        let id = id.to_owned();
        self.read(move |c| queries::queue::get_ticket(c, &id)).await
    }

    async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        let filter = filter.clone();
        self.read(move |c| queries::queue::list_tickets(c, &filter))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_durable_and_checked() {
        let dir = std::env::temp_dir()
            .join("chargeops-store-tests")
            .join(format!("pragmas-{}", std::process::id()));
        let store = SqliteStore::open_dir(&dir).expect("open");
        let pragma = |name: &'static str| {
            move |c: &Connection| {
                let value = c
                    .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                    .map_err(error::sql)?;
                Ok(match value {
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(s) => s,
                    other => format!("{other:?}"),
                })
            }
        };
        let writer = (
            store
                .write(pragma("journal_mode"))
                .await
                .expect("journal_mode"),
            store
                .write(pragma("synchronous"))
                .await
                .expect("synchronous"),
            store
                .write(pragma("foreign_keys"))
                .await
                .expect("foreign_keys"),
        );
        // synchronous: 2 is FULL.
        assert_eq!(writer, ("wal".into(), "2".into(), "1".into()));
        let reader = (
            store
                .read(pragma("journal_mode"))
                .await
                .expect("journal_mode"),
            store.read(pragma("query_only")).await.expect("query_only"),
        );
        assert_eq!(reader, ("wal".into(), "1".into()));
        let write_on_reader = store
            .read(|c| c.execute("DELETE FROM stations", []).map_err(error::sql))
            .await;
        assert!(write_on_reader.is_err());
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
