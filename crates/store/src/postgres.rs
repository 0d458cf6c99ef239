//! The PostgreSQL backend: one database (or one schema of it) shared by every node of a
//! province.
//!
//! It owns the schema (`schema`: the same numbered migrations as the SQLite backend, in
//! PostgreSQL's types, applied at open under an advisory lock so nodes starting together do not
//! race), a small pool of connections with a statement cache each (`pool`), the SQL of each
//! `Store` method (`queries`) and the mapping of server errors onto `StoreError` (`error`).
//!
//! Durability: every connection runs with `synchronous_commit = on`, and a write call returns
//! only after its COMMIT (or, for a write of one statement, the statement's own commit) has
//! returned, so an acknowledged write is in the server's WAL on disk. Writes of several
//! statements run in one transaction; where two callers can race, the deciding statements take
//! a row or advisory lock first, so concurrent replays meet the same idempotent outcomes as on
//! SQLite's single writer.
//!
//! Timestamps are `timestamptz` at millisecond precision: sub-millisecond precision is dropped
//! on write, and what a write returns is already truncated the same way, as on SQLite.
//!
//! Text must not contain NUL characters (PostgreSQL refuses them in `text`); such a write fails
//! with `Invalid`, where SQLite would store it.

mod error;
mod pool;
mod queries;
mod schema;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use chargeops_core::{
    ApiToken, BootInfo, Charger, ConnectorState, IdTag, MeterSample, NewSession, Protocol,
    Registration, Role, Session, SessionStop, Station,
};
use chargeops_ops::{AuditEntry, Case, Crew, TimelineEntry};
use chargeops_queue::Ticket;

use crate::{
    CaseFilter, ImportedSession, Result, SessionFilter, SessionSpan, Started, Stopped, Store,
    StoreError, TicketFilter,
};

use self::error::{backend, describe};
use self::pool::{Db, Pool};

pub use self::error::redact_url;

/// Connections the pool opens at most: enough to keep a server's few cores busy and to let a
/// slow query not hold up the rest, few enough for many nodes on one server's
/// `max_connections`.
pub const POOL_SIZE: usize = 8;
/// How long opening a connection may take when the connection string does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `Store` on a PostgreSQL database, optionally confined to one schema.
pub struct PostgresStore {
    pool: Pool,
    schema: Option<String>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.pool.target())
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Runs `$body`, an expression of a future over `$db` (a [`Db`] on a fresh transaction), then
/// commits; returns the body's value once COMMIT has returned. An error drops the transaction,
/// which rolls it back.
macro_rules! transaction {
    ($store:expr, |$db:ident| $body:expr) => {{
        let mut conn = $store.pool.get().await?;
        let conn = &mut *conn;
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(|e| backend("begin a transaction", &e))?;
        let out = {
            let $db = Db::new(&tx, &conn.statements);
            $body.await?
        };
        tx.commit().await.map_err(|e| backend("commit", &e))?;
        Ok(out)
    }};
}

/// Runs `$body` over `$db`, a [`Db`] on a pooled connection outside any transaction: for reads,
/// and for writes of one statement, which commits on its own before it returns.
macro_rules! connection {
    ($store:expr, |$db:ident| $body:expr) => {{
        let conn = $store.pool.get().await?;
        let $db = Db::new(&conn.client, &conn.statements);
        $body.await
    }};
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/db`, or
    /// key/value `host=... dbname=...`), brings its schema up to date and keeps a pool of up to
    /// [`POOL_SIZE`] connections. Tables live in the connection's default schema (`public`,
    /// unless the URL's `options` set another `search_path`).
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        Self::open(url, None).await
    }

    /// Like [`connect`](Self::connect), with every table in `schema` (letters, digits and `_`),
    /// which is created if missing: several stores, each with its own data, can then share one
    /// database.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<PostgresStore> {
        Self::open(url, Some(schema)).await
    }

    async fn open(url: &str, schema: Option<&str>) -> Result<PostgresStore> {
        let target = redact_url(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Invalid(format!(
                "invalid PostgreSQL connection string {target}: {}",
                describe(&e)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("chargeops");
        }
        let mut setup = "SET synchronous_commit = on".to_owned();
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            setup.push_str(&format!("; SET search_path TO \"{schema}\""));
        }
        let pool = Pool::new(config, target, setup, POOL_SIZE);
        {
            let mut conn = pool.get().await?;
            if let Some(schema) = schema {
                create_schema(&mut conn.client, schema).await?;
            }
            schema::migrate(&mut conn.client).await?;
        }
        tracing::debug!(
            target = pool.target(),
            schema,
            schema_version = schema::latest_version(),
            "opened postgres store"
        );
        Ok(PostgresStore {
            pool,
            schema: schema.map(str::to_owned),
        })
    }

    /// The connection string without its password, for logs.
    pub fn target(&self) -> &str {
        self.pool.target()
    }

    /// The schema given to [`connect_with_schema`](Self::connect_with_schema).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

/// A schema name that needs no quoting rules beyond the double quotes it is written in.
fn check_schema_name(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && schema.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid schema name {schema:?}: use at most 63 letters, digits and _, \
             not starting with a digit"
        )))
    }
}

/// Creates `schema` unless it exists, one process at a time (`IF NOT EXISTS` alone can still
/// fail when two create it at the same instant).
async fn create_schema(client: &mut tokio_postgres::Client, schema: &str) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("begin creating the schema", &e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('chargeops schema'), hashtext($1))",
        &[&schema],
    )
    .await
    .map_err(|e| backend("take the schema lock", &e))?;
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await
        .map_err(|e| backend(&format!("create schema {schema}"), &e))?;
    tx.commit()
        .await
        .map_err(|e| backend(&format!("create schema {schema}"), &e))
}

#[async_trait]
impl Store for PostgresStore {
    async fn upsert_station(&self, station: &Station) -> Result<()> {
        connection!(self, |db| queries::upsert_station(&db, station))
    }

    async fn get_station(&self, id: &str) -> Result<Option<Station>> {
        connection!(self, |db| queries::get_station(&db, id))
    }

    async fn list_stations(&self) -> Result<Vec<Station>> {
        connection!(self, |db| queries::list_stations(&db))
    }

    async fn insert_charger(&self, charger: &Charger) -> Result<()> {
        transaction!(self, |db| queries::insert_charger(&db, charger))
    }

    async fn get_charger(&self, id: &str) -> Result<Option<Charger>> {
        connection!(self, |db| queries::get_charger(&db, id))
    }

    async fn list_chargers(&self) -> Result<Vec<Charger>> {
        connection!(self, |db| queries::list_chargers(&db))
    }

    async fn record_boot(
        &self,
        id: &str,
        protocol: Protocol,
        info: &BootInfo,
        at: DateTime<Utc>,
    ) -> Result<()> {
        connection!(self, |db| queries::record_boot(&db, id, protocol, info, at))
    }

    async fn set_registration(&self, id: &str, registration: Registration) -> Result<()> {
        connection!(self, |db| queries::set_registration(&db, id, registration))
    }

    async fn set_charger_password(&self, id: &str, password_hash: Option<&str>) -> Result<()> {
        connection!(self, |db| queries::set_charger_password(
            &db,
            id,
            password_hash
        ))
    }

    async fn set_charger_ykc_key(&self, id: &str, key_hex: Option<&str>) -> Result<()> {
        connection!(self, |db| queries::set_charger_ykc_key(&db, id, key_hex))
    }

    async fn charger_ykc_key(&self, id: &str) -> Result<Option<String>> {
        connection!(self, |db| queries::charger_ykc_key(&db, id))
    }

    async fn record_status(&self, charger_id: &str, state: &ConnectorState) -> Result<()> {
        connection!(self, |db| queries::record_status(&db, charger_id, state))
    }

    async fn list_connectors(&self) -> Result<Vec<(String, ConnectorState)>> {
        connection!(self, |db| queries::list_connectors(&db))
    }

    async fn status_history(
        &self,
        charger_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ConnectorState>> {
        connection!(self, |db| queries::status_history(&db, charger_id, since))
    }

    async fn start_session(&self, new: &NewSession) -> Result<Started> {
        transaction!(self, |db| queries::start_session(&db, new))
    }

    async fn get_session(&self, id: i64) -> Result<Option<Session>> {
        connection!(self, |db| queries::get_session(&db, id))
    }

    async fn find_session(
        &self,
        charger_id: &str,
        transaction_ref: &str,
    ) -> Result<Option<Session>> {
        connection!(self, |db| queries::find_session(
            &db,
            charger_id,
            transaction_ref
        ))
    }

    async fn stop_session(&self, id: i64, stop: &SessionStop) -> Result<Stopped> {
        transaction!(self, |db| queries::stop_session(&db, id, stop))
    }

    async fn update_session_energy(
        &self,
        id: i64,
        energy_wh: Option<i64>,
        seq_no: Option<i64>,
    ) -> Result<()> {
        connection!(self, |db| queries::update_session_energy(
            &db, id, energy_wh, seq_no
        ))
    }

    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>> {
        connection!(self, |db| queries::list_sessions(&db, filter))
    }

    async fn import_sessions(&self, sessions: &[ImportedSession]) -> Result<u64> {
        if sessions.is_empty() {
            return Ok(0);
        }
        connection!(self, |db| queries::import_sessions(&db, sessions))
    }

    async fn session_spans(
        &self,
        station_id: Option<&str>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<SessionSpan>> {
        connection!(self, |db| queries::session_spans(
            &db, station_id, since, until
        ))
    }

    async fn record_meter_samples(&self, samples: &[MeterSample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        connection!(self, |db| queries::record_meter_samples(&db, samples))
    }

    async fn meter_samples(&self, session_id: i64) -> Result<Vec<MeterSample>> {
        connection!(self, |db| queries::meter_samples(&db, session_id))
    }

    async fn upsert_id_tag(&self, tag: &IdTag) -> Result<()> {
        connection!(self, |db| queries::upsert_id_tag(&db, tag))
    }

    async fn get_id_tag(&self, id_tag: &str) -> Result<Option<IdTag>> {
        connection!(self, |db| queries::get_id_tag(&db, id_tag))
    }

    async fn list_id_tags(&self) -> Result<Vec<IdTag>> {
        connection!(self, |db| queries::list_id_tags(&db))
    }

    async fn delete_id_tag(&self, id_tag: &str) -> Result<()> {
        connection!(self, |db| queries::delete_id_tag(&db, id_tag))
    }

    async fn insert_token(&self, name: &str, role: Role, token_digest: &str) -> Result<ApiToken> {
        self.insert_crew_token(name, role, token_digest, None).await
    }

    async fn find_token(&self, token_digest: &str) -> Result<Option<ApiToken>> {
        connection!(self, |db| queries::find_token(&db, token_digest))
    }

    async fn count_tokens(&self) -> Result<u64> {
        connection!(self, |db| queries::count_tokens(&db))
    }

    async fn insert_crew_token(
        &self,
        name: &str,
        role: Role,
        token_digest: &str,
        crew_id: Option<&str>,
    ) -> Result<ApiToken> {
        let now = Utc::now();
        connection!(self, |db| queries::insert_token(
            &db,
            name,
            role,
            token_digest,
            now,
            crew_id
        ))
    }

    async fn insert_case(&self, case: &Case, timeline: &[TimelineEntry]) -> Result<Case> {
        transaction!(self, |db| queries::ops::insert_case(&db, case, timeline))
    }

    async fn update_case(&self, case: &Case, timeline: &[TimelineEntry]) -> Result<()> {
        transaction!(self, |db| queries::ops::update_case(&db, case, timeline))
    }

    async fn get_case(&self, id: i64) -> Result<Option<Case>> {
        connection!(self, |db| queries::ops::get_case(&db, id))
    }

    async fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<Case>> {
        connection!(self, |db| queries::ops::list_cases(&db, filter))
    }

    async fn case_timeline(&self, id: i64) -> Result<Vec<TimelineEntry>> {
        connection!(self, |db| queries::ops::case_timeline(&db, id))
    }

    async fn upsert_crew(&self, crew: &Crew) -> Result<()> {
        connection!(self, |db| queries::ops::upsert_crew(&db, crew))
    }

    async fn get_crew(&self, id: &str) -> Result<Option<Crew>> {
        connection!(self, |db| queries::ops::get_crew(&db, id))
    }

    async fn list_crews(&self) -> Result<Vec<Crew>> {
        connection!(self, |db| queries::ops::list_crews(&db))
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<i64> {
        connection!(self, |db| queries::ops::record_audit(&db, entry))
    }

    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        connection!(self, |db| queries::ops::list_audit(&db, limit))
    }

    async fn put_document(&self, kind: &str, id: &str, body: &str) -> Result<()> {
        let now = Utc::now();
        connection!(self, |db| queries::documents::put_document(
            &db, kind, id, body, now
        ))
    }

    async fn delete_document(&self, kind: &str, id: &str) -> Result<bool> {
        connection!(self, |db| queries::documents::delete_document(
            &db, kind, id
        ))
    }

    async fn list_documents(&self, kind: &str) -> Result<Vec<(String, String)>> {
        connection!(self, |db| queries::documents::list_documents(&db, kind))
    }

    async fn insert_ticket(&self, ticket: &Ticket) -> Result<Ticket> {
        transaction!(self, |db| queries::queue::insert_ticket(&db, ticket))
    }

    async fn update_ticket(&self, ticket: &Ticket) -> Result<()> {
        connection!(self, |db| queries::queue::update_ticket(&db, ticket))
    }

    async fn get_ticket(&self, id: &str) -> Result<Option<Ticket>> {
        connection!(self, |db| queries::queue::get_ticket(&db, id))
    }

    async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        connection!(self, |db| queries::queue::list_tickets(&db, filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pooled connection commits durably and works in its store's schema. (The server for
    /// this is the one `tests/postgres.rs` uses.)
    #[tokio::test]
    async fn connections_are_durable_and_confined_to_the_schema() {
        let url = std::env::var("CHARGEOPS_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!("t_{}_{}_unit", Utc::now().timestamp(), std::process::id());
        let store = PostgresStore::connect_with_schema(&url, &schema)
            .await
            .unwrap_or_else(|e| panic!("the PostgreSQL test server is not reachable: {e}"));
        let show = |setting: &'static str| {
            let store = &store;
            async move {
                connection!(store, |db| async move {
                    let row = db
                        .query_one(&format!("SHOW {setting}"), &[])
                        .await
                        .map_err(error::sql)?;
                    queries::get::<String>(&row, 0)
                })
            }
        };
        assert_eq!(show("synchronous_commit").await.expect("show"), "on");
        // Shown without quotes: the name is a plain identifier.
        assert_eq!(show("search_path").await.expect("show"), schema);
        drop(store);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .expect("drop schema");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["chargeops", "t_123_4", "_x", "Node2"] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in ["", "1abc", "a-b", "a\"b", "a b", "täst", long.as_str()] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }
}
