//! The SQLite schema as an ordered list of migrations, and the code that brings a file up to date.
//!
//! Timestamps are stored as INTEGER milliseconds since the Unix epoch, UTC: compact, sortable and
//! cheap to decode on the hot read paths (the whole network's connector status). Sub-millisecond
//! precision is dropped on write.

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Result, StoreError};

use super::error::backend;

/// One schema step. Versions are dense and increasing; a released migration is never edited,
/// a change is a new entry.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: r#"
CREATE TABLE stations (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    lat       REAL,
    lon       REAL,
    highway   TEXT,
    direction TEXT
) STRICT;

CREATE TABLE chargers (
    id               TEXT PRIMARY KEY,
    station_id       TEXT NOT NULL REFERENCES stations (id),
    protocol         TEXT,
    vendor           TEXT,
    model            TEXT,
    serial_number    TEXT,
    firmware_version TEXT,
    registration     TEXT NOT NULL,
    password_hash    TEXT,
    created_at       INTEGER NOT NULL,
    last_boot_at     INTEGER
) STRICT;
CREATE INDEX chargers_station ON chargers (station_id);

-- The last known status of each connector; an older report never replaces a newer one.
CREATE TABLE connector_status (
    charger_id   TEXT NOT NULL REFERENCES chargers (id),
    evse_id      INTEGER NOT NULL,
    connector_id INTEGER NOT NULL,
    status       TEXT NOT NULL,
    raw_status   TEXT,
    error_code   TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (charger_id, evse_id, connector_id)
) STRICT, WITHOUT ROWID;

-- Every status change, for forecasting. The unique index doubles as the (charger, time) index
-- and drops a replayed report of the same status at the same instant.
CREATE TABLE status_history (
    id           INTEGER PRIMARY KEY,
    charger_id   TEXT NOT NULL,
    evse_id      INTEGER NOT NULL,
    connector_id INTEGER NOT NULL,
    status       TEXT NOT NULL,
    raw_status   TEXT,
    error_code   TEXT,
    at           INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX status_history_charger_at
    ON status_history (charger_id, at, evse_id, connector_id, status);

-- AUTOINCREMENT: ids are never reused, since OCPP 1.6 chargers know a session by its id.
-- transaction_ref is NULL only inside the job that creates an OCPP 1.6 session.
CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    charger_id      TEXT NOT NULL REFERENCES chargers (id),
    evse_id         INTEGER NOT NULL,
    connector_id    INTEGER NOT NULL,
    transaction_ref TEXT,
    id_tag          TEXT,
    started_at      INTEGER NOT NULL,
    stopped_at      INTEGER,
    meter_start_wh  INTEGER,
    meter_stop_wh   INTEGER,
    energy_wh       INTEGER,
    stop_reason     TEXT,
    last_seq_no     INTEGER
) STRICT;
CREATE UNIQUE INDEX sessions_charger_ref ON sessions (charger_id, transaction_ref);
CREATE INDEX sessions_charger_started ON sessions (charger_id, started_at);
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_open ON sessions (started_at) WHERE stopped_at IS NULL;

-- The unique index drops a replayed MeterValues message (an exact repeat: same reading, same
-- instant) and serves per-charger time ranges.
CREATE TABLE meter_samples (
    id           INTEGER PRIMARY KEY,
    charger_id   TEXT NOT NULL,
    evse_id      INTEGER NOT NULL,
    connector_id INTEGER NOT NULL,
    session_id   INTEGER REFERENCES sessions (id),
    at           INTEGER NOT NULL,
    measurand    TEXT NOT NULL,
    phase        TEXT,
    unit         TEXT,
    value        REAL NOT NULL
) STRICT;
CREATE UNIQUE INDEX meter_samples_charger_at
    ON meter_samples (charger_id, at, evse_id, connector_id, measurand, ifnull(phase, ''), value);
CREATE INDEX meter_samples_session ON meter_samples (session_id, at) WHERE session_id IS NOT NULL;

CREATE TABLE id_tags (
    id_tag        TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    expiry        INTEGER,
    parent_id_tag TEXT
) STRICT;

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;
"#,
    },
    Migration {
        version: 2,
        name: "operations loop: cases, timeline, crews, audit log",
        sql: r#"
CREATE TABLE crews (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    skills           TEXT NOT NULL,
    lat              REAL NOT NULL,
    lon              REAL NOT NULL,
    shift_start_hour INTEGER NOT NULL,
    shift_end_hour   INTEGER NOT NULL,
    speed_kmh        REAL NOT NULL,
    phone            TEXT,
    simulated        INTEGER NOT NULL
) STRICT;

CREATE TABLE cases (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    source          TEXT NOT NULL,
    category        TEXT NOT NULL,
    priority        TEXT NOT NULL,
    station_id      TEXT NOT NULL REFERENCES stations (id),
    charger_id      TEXT REFERENCES chargers (id),
    connector_id    INTEGER,
    title           TEXT NOT NULL,
    description     TEXT,
    error_code      TEXT,
    caller_phone    TEXT,
    crew_id         TEXT REFERENCES crews (id),
    opened_at       INTEGER NOT NULL,
    state_since     INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    sla_due_at      INTEGER NOT NULL,
    sla_breached    INTEGER NOT NULL,
    resolved_at     INTEGER,
    closed_at       INTEGER,
    reopened        INTEGER NOT NULL,
    resolution_note TEXT,
    parts_used      TEXT NOT NULL
) STRICT;
-- Open cases are few and read on every tick; closed ones pile up.
CREATE INDEX cases_open ON cases (opened_at) WHERE state <> 'closed';
CREATE INDEX cases_charger ON cases (charger_id, opened_at);
CREATE INDEX cases_station ON cases (station_id, opened_at);
CREATE INDEX cases_crew ON cases (crew_id, opened_at) WHERE crew_id IS NOT NULL;

CREATE TABLE case_timeline (
    id      INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases (id),
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    state   TEXT NOT NULL,
    detail  TEXT NOT NULL
) STRICT;
CREATE INDEX case_timeline_case ON case_timeline (case_id, id);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    role   TEXT NOT NULL,
    action TEXT NOT NULL,
    status INTEGER NOT NULL,
    detail TEXT NOT NULL
) STRICT;

-- A crew member's token names the crew whose orders it works.
ALTER TABLE api_tokens ADD COLUMN crew_id TEXT;
"#,
    },
    Migration {
        version: 3,
        name: "queue tickets",
        sql: r#"
-- Queue numbers. `id` is an unguessable token (a driver follows the ticket by it); `number` is
-- per station. A contact holds one active number per station.
CREATE TABLE queue_tickets (
    id                 TEXT PRIMARY KEY,
    number             INTEGER NOT NULL,
    station_id         TEXT NOT NULL REFERENCES stations (id),
    contact            TEXT,
    state              TEXT NOT NULL,
    order_key          INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    called_at          INTEGER,
    charger_id         TEXT,
    evse_id            INTEGER,
    connector_id       INTEGER,
    plug_by            INTEGER,
    charging_at        INTEGER,
    ended_at           INTEGER,
    initial_estimate_s INTEGER,
    source             TEXT NOT NULL,
    passes             INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX queue_tickets_number ON queue_tickets (station_id, number);
CREATE UNIQUE INDEX queue_tickets_active_contact ON queue_tickets (station_id, contact)
    WHERE contact IS NOT NULL AND state IN ('waiting', 'called', 'charging');
-- Active tickets are few and read at start and on every change; ended ones pile up.
CREATE INDEX queue_tickets_active ON queue_tickets (station_id, order_key)
    WHERE state IN ('waiting', 'called', 'charging');
CREATE INDEX queue_tickets_created ON queue_tickets (created_at);
"#,
    },
    Migration {
        version: 4,
        name: "per-charger YKC 3DES keys",
        sql: r#"
-- A YKC charger's 3DES key for bodies with the encryption flag, as 32 or 48 hex digits. Kept
-- as is (the platform must decrypt with it); never returned by the API.
ALTER TABLE chargers ADD COLUMN ykc_key TEXT;
"#,
    },
    Migration {
        version: 5,
        name: "documents: robot lots, mobile units and other small keyed JSON",
        sql: r#"
-- Small configuration and state records that are read whole and written whole (a robot lot's
-- layout, a mobile unit's last report). `kind` names the record type, `id` the record.
CREATE TABLE documents (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
"#,
    },
];

/// The schema version this build writes.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies every migration the file lacks, each in its own transaction. Refuses a file that has a
/// migration this build does not know: it was written by a newer chargeops, and writing to it
/// with an older schema in mind could corrupt it.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        ) STRICT",
    )
    .map_err(|e| backend("create schema_migrations", e))?;

    let applied: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| backend("read schema version", e))?
        .flatten();
    let applied = applied.unwrap_or(0);
    let latest = latest_version();
    if applied > latest {
        return Err(StoreError::Invalid(format!(
            "database schema version {applied} is newer than this build supports \
             (version {latest}); use a newer chargeops or restore a backup"
        )));
    }

    for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
        let tx = conn
            .transaction()
            .map_err(|e| backend("begin migration", e))?;
        tx.execute_batch(migration.sql).map_err(|e| {
            StoreError::Backend(format!(
                "migration {} ({}) failed: {e}",
                migration.version, migration.name
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![
                migration.version,
                migration.name,
                Utc::now().timestamp_millis()
            ],
        )
        .map_err(|e| backend("record migration", e))?;
        tx.commit().map_err(|e| backend("commit migration", e))?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied store migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_are_dense_and_increasing() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration {}", m.name);
        }
    }
}
