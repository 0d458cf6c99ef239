//! The SQL behind each `Store` method, as plain async functions over a [`Db`]: a pooled
//! connection for reads and single-statement writes (a statement outside a transaction commits
//! on its own), an open transaction for writes of several statements.
//!
//! Where two callers can race (two replays of one start, two tickets taken at one station), the
//! statements that decide take a lock first, so the outcome is the one the SQLite backend's
//! single writer gives.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use chargeops_core::{
    ApiToken, BootInfo, Charger, ConnectorState, ConnectorStatus, IdTag, IdTagStatus, MeterSample,
    NewSession, Protocol, Registration, Role, Session, SessionStop, Station,
};

use super::error::{Violation, sql, violated};
use super::pool::{Db, Exec};
use crate::check;
use crate::{ImportedSession, Result, SessionFilter, SessionSpan, Started, Stopped, StoreError};

// ---------------------------------------------------------------------------------------------
// Column codecs.

/// The value a timestamp has once stored: millisecond precision, as every backend keeps, so
/// what a write returns equals what a read returns and a replay with the same instant matches.
pub(super) fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

pub(super) fn ms_opt(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.map(ms)
}

pub(super) fn get<'r, T: FromSql<'r>>(row: &'r Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(|e| {
        let column = row.columns().get(idx).map_or("?", |c| c.name());
        StoreError::Backend(format!(
            "failed to read column {column}: {}",
            super::error::describe(&e)
        ))
    })
}

/// An unsigned id kept in a `bigint` column.
pub(super) fn uint<T: TryFrom<i64>>(row: &Row, idx: usize) -> Result<T> {
    let v: i64 = get(row, idx)?;
    T::try_from(v).map_err(|_| out_of_range(row, idx, v))
}

pub(super) fn uint_opt<T: TryFrom<i64>>(row: &Row, idx: usize) -> Result<Option<T>> {
    get::<Option<i64>>(row, idx)?
        .map(|v| T::try_from(v).map_err(|_| out_of_range(row, idx, v)))
        .transpose()
}

fn out_of_range(row: &Row, idx: usize, v: i64) -> StoreError {
    let column = row.columns().get(idx).map_or("?", |c| c.name());
    StoreError::Backend(format!("column {column} holds {v}, out of range"))
}

/// An enum stored as its lowercase name.
pub(super) fn named<T>(row: &Row, idx: usize, parse: fn(&str) -> Option<T>) -> Result<T> {
    let s: &str = get(row, idx)?;
    parse(s).ok_or_else(|| StoreError::Backend(format!("unknown value {s:?} in the database")))
}

pub(super) fn collect<T>(rows: Vec<Row>, decode: fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

/// Query parameters built up at run time (the list filters).
pub(super) type Values = Vec<Box<dyn ToSql + Sync + Send>>;

pub(super) fn refs(values: &Values) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Stations.

const STATION_COLS: &str = "id, name, lat, lon, highway, direction";

fn station(row: &Row) -> Result<Station> {
    Ok(Station {
        id: get(row, 0)?,
        name: get(row, 1)?,
        lat: get(row, 2)?,
        lon: get(row, 3)?,
        highway: get(row, 4)?,
        direction: get(row, 5)?,
    })
}

pub(super) async fn upsert_station(db: &Db<'_, impl Exec>, s: &Station) -> Result<()> {
    check::station(s)?;
    db.execute(
        "INSERT INTO stations (id, name, lat, lon, highway, direction)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET
             name = excluded.name, lat = excluded.lat, lon = excluded.lon,
             highway = excluded.highway, direction = excluded.direction",
        &[&s.id, &s.name, &s.lat, &s.lon, &s.highway, &s.direction],
    )
    .await
    .map_err(sql)?;
    Ok(())
}

pub(super) async fn get_station(db: &Db<'_, impl Exec>, id: &str) -> Result<Option<Station>> {
    db.query_opt(
        &format!("SELECT {STATION_COLS} FROM stations WHERE id = $1"),
        &[&id],
    )
    .await
    .map_err(sql)?
    .as_ref()
    .map(station)
    .transpose()
}

pub(super) async fn list_stations(db: &Db<'_, impl Exec>) -> Result<Vec<Station>> {
    let rows = db
        .query(
            &format!("SELECT {STATION_COLS} FROM stations ORDER BY id"),
            &[],
        )
        .await
        .map_err(sql)?;
    collect(rows, station)
}

// ---------------------------------------------------------------------------------------------
// Chargers.

const CHARGER_COLS: &str = "id, station_id, protocol, vendor, model, serial_number, \
     firmware_version, registration, password_hash, created_at, last_boot_at";

fn charger(row: &Row) -> Result<Charger> {
    Ok(Charger {
        id: get(row, 0)?,
        station_id: get(row, 1)?,
        protocol: get::<Option<&str>>(row, 2)?
            .map(|p| {
                Protocol::parse(p).ok_or_else(|| {
                    StoreError::Backend(format!("unknown protocol {p:?} in the database"))
                })
            })
            .transpose()?,
        vendor: get(row, 3)?,
        model: get(row, 4)?,
        serial_number: get(row, 5)?,
        firmware_version: get(row, 6)?,
        registration: named(row, 7, Registration::parse)?,
        password_hash: get(row, 8)?,
        created_at: get(row, 9)?,
        last_boot_at: get(row, 10)?,
    })
}

/// In a transaction: the station must exist first (as on SQLite, a missing station is reported
/// even when the charger id is taken too).
pub(super) async fn insert_charger(db: &Db<'_, impl Exec>, c: &Charger) -> Result<()> {
    let station = db
        .query_opt(
            "SELECT 1 FROM stations WHERE id = $1 FOR KEY SHARE",
            &[&c.station_id],
        )
        .await
        .map_err(sql)?;
    if station.is_none() {
        return Err(StoreError::NotFound(format!("station {}", c.station_id)));
    }
    db.execute(
        &format!(
            "INSERT INTO chargers ({CHARGER_COLS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        &[
            &c.id,
            &c.station_id,
            &c.protocol.map(Protocol::as_str),
            &c.vendor,
            &c.model,
            &c.serial_number,
            &c.firmware_version,
            &c.registration.as_str(),
            &c.password_hash,
            &ms(c.created_at),
            &ms_opt(c.last_boot_at),
        ],
    )
    .await
    .map_err(|e| match violated(&e) {
        Some(Violation::Unique(_)) => StoreError::Conflict(format!("charger {}", c.id)),
        Some(Violation::ForeignKey(_)) => StoreError::NotFound(format!("station {}", c.station_id)),
        None => sql(e),
    })?;
    Ok(())
}

pub(super) async fn get_charger(db: &Db<'_, impl Exec>, id: &str) -> Result<Option<Charger>> {
    db.query_opt(
        &format!("SELECT {CHARGER_COLS} FROM chargers WHERE id = $1"),
        &[&id],
    )
    .await
    .map_err(sql)?
    .as_ref()
    .map(charger)
    .transpose()
}

pub(super) async fn list_chargers(db: &Db<'_, impl Exec>) -> Result<Vec<Charger>> {
    let rows = db
        .query(
            &format!("SELECT {CHARGER_COLS} FROM chargers ORDER BY id"),
            &[],
        )
        .await
        .map_err(sql)?;
    collect(rows, charger)
}

/// Runs an UPDATE of one charger (`$1` is its id); `NotFound` when there is no such charger.
async fn update_charger(
    db: &Db<'_, impl Exec>,
    id: &str,
    sql_text: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<()> {
    let changed = db.execute(sql_text, params).await.map_err(sql)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("charger {id}")));
    }
    Ok(())
}

pub(super) async fn record_boot(
    db: &Db<'_, impl Exec>,
    id: &str,
    protocol: Protocol,
    info: &BootInfo,
    at: DateTime<Utc>,
) -> Result<()> {
    // What the charger says at boot replaces what it said before, absent fields included.
    update_charger(
        db,
        id,
        "UPDATE chargers SET protocol = $2, vendor = $3, model = $4, serial_number = $5,
             firmware_version = $6, last_boot_at = $7
         WHERE id = $1",
        &[
            &id,
            &protocol.as_str(),
            &info.vendor,
            &info.model,
            &info.serial_number,
            &info.firmware_version,
            &ms(at),
        ],
    )
    .await
}

pub(super) async fn set_registration(
    db: &Db<'_, impl Exec>,
    id: &str,
    r: Registration,
) -> Result<()> {
    update_charger(
        db,
        id,
        "UPDATE chargers SET registration = $2 WHERE id = $1",
        &[&id, &r.as_str()],
    )
    .await
}

pub(super) async fn set_charger_password(
    db: &Db<'_, impl Exec>,
    id: &str,
    hash: Option<&str>,
) -> Result<()> {
    update_charger(
        db,
        id,
        "UPDATE chargers SET password_hash = $2 WHERE id = $1",
        &[&id, &hash],
    )
    .await
}

pub(super) async fn set_charger_ykc_key(
    db: &Db<'_, impl Exec>,
    id: &str,
    key: Option<&str>,
) -> Result<()> {
    update_charger(
        db,
        id,
        "UPDATE chargers SET ykc_key = $2 WHERE id = $1",
        &[&id, &key],
    )
    .await
}

pub(super) async fn charger_ykc_key(db: &Db<'_, impl Exec>, id: &str) -> Result<Option<String>> {
    let row = db
        .query_opt("SELECT ykc_key FROM chargers WHERE id = $1", &[&id])
        .await
        .map_err(sql)?;
    Ok(row
        .map(|r| get::<Option<String>>(&r, 0))
        .transpose()?
        .flatten())
}

// ---------------------------------------------------------------------------------------------
// Connector status.

/// One statement, so it commits on its own: the history row and the current value together.
pub(super) async fn record_status(
    db: &Db<'_, impl Exec>,
    charger_id: &str,
    s: &ConnectorState,
) -> Result<()> {
    // A report older than the one we hold (a replay after reconnect) goes to history only.
    db.execute(
        "WITH history AS (
             INSERT INTO status_history
                 (charger_id, evse_id, connector_id, status, raw_status, error_code, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING
         )
         INSERT INTO connector_status
             (charger_id, evse_id, connector_id, status, raw_status, error_code, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (charger_id, evse_id, connector_id) DO UPDATE SET
             status = excluded.status, raw_status = excluded.raw_status,
             error_code = excluded.error_code, updated_at = excluded.updated_at
         WHERE excluded.updated_at >= connector_status.updated_at",
        &[
            &charger_id,
            &i64::from(s.evse_id),
            &i64::from(s.connector_id),
            &s.status.as_str(),
            &s.raw_status,
            &s.error_code,
            &ms(s.updated_at),
        ],
    )
    .await
    .map_err(|e| match violated(&e) {
        Some(Violation::ForeignKey(_)) => StoreError::NotFound(format!("charger {charger_id}")),
        _ => sql(e),
    })?;
    Ok(())
}

fn connector_state(row: &Row, first: usize) -> Result<ConnectorState> {
    Ok(ConnectorState {
        evse_id: uint(row, first)?,
        connector_id: uint(row, first + 1)?,
        status: named(row, first + 2, ConnectorStatus::parse)?,
        raw_status: get(row, first + 3)?,
        error_code: get(row, first + 4)?,
        updated_at: get(row, first + 5)?,
    })
}

pub(super) async fn list_connectors(
    db: &Db<'_, impl Exec>,
) -> Result<Vec<(String, ConnectorState)>> {
    let rows = db
        .query(
            "SELECT charger_id, evse_id, connector_id, status, raw_status, error_code, updated_at
             FROM connector_status ORDER BY charger_id, evse_id, connector_id",
            &[],
        )
        .await
        .map_err(sql)?;
    rows.iter()
        .map(|row| Ok((get(row, 0)?, connector_state(row, 1)?)))
        .collect()
}

pub(super) async fn status_history(
    db: &Db<'_, impl Exec>,
    charger_id: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<ConnectorState>> {
    const COLS: &str = "evse_id, connector_id, status, raw_status, error_code, at";
    let rows = match since {
        Some(since) => {
            db.query(
                &format!(
                    "SELECT {COLS} FROM status_history WHERE charger_id = $1 AND at >= $2
                     ORDER BY at, id"
                ),
                &[&charger_id, &ms(since)],
            )
            .await
        }
        None => {
            db.query(
                &format!("SELECT {COLS} FROM status_history WHERE charger_id = $1 ORDER BY at, id"),
                &[&charger_id],
            )
            .await
        }
    }
    .map_err(sql)?;
    rows.iter().map(|row| connector_state(row, 0)).collect()
}

// ---------------------------------------------------------------------------------------------
// Sessions.

const SESSION_COLS: &str = "id, charger_id, evse_id, connector_id, transaction_ref, id_tag, \
     started_at, stopped_at, meter_start_wh, meter_stop_wh, energy_wh, stop_reason, last_seq_no";

fn session(row: &Row) -> Result<Session> {
    Ok(Session {
        id: get(row, 0)?,
        charger_id: get(row, 1)?,
        evse_id: uint(row, 2)?,
        connector_id: uint(row, 3)?,
        transaction_ref: get(row, 4)?,
        id_tag: get(row, 5)?,
        started_at: get(row, 6)?,
        stopped_at: get(row, 7)?,
        meter_start_wh: get(row, 8)?,
        meter_stop_wh: get(row, 9)?,
        energy_wh: get(row, 10)?,
        stop_reason: get(row, 11)?,
        last_seq_no: get(row, 12)?,
    })
}

/// In a transaction. Starts of one charger take turns (a transaction-scoped advisory lock on
/// the schema and the charger id), so two replays of one start racing each other find one
/// session, not two: the second looks only after the first has committed.
pub(super) async fn start_session(db: &Db<'_, impl Exec>, new: &NewSession) -> Result<Started> {
    db.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext($1))",
        &[&new.charger_id],
    )
    .await
    .map_err(sql)?;
    let started_at = ms(new.started_at);
    let (evse_id, connector_id) = (i64::from(new.evse_id), i64::from(new.connector_id));
    let existing = match &new.transaction_ref {
        Some(r) => find_session(db, &new.charger_id, r).await?,
        None => db
            .query_opt(
                &format!(
                    "SELECT {SESSION_COLS} FROM sessions
                     WHERE charger_id = $1 AND started_at = $2 AND evse_id = $3
                       AND connector_id = $4 AND id_tag IS NOT DISTINCT FROM $5
                       AND meter_start_wh IS NOT DISTINCT FROM $6
                     ORDER BY id LIMIT 1"
                ),
                &[
                    &new.charger_id,
                    &started_at,
                    &evse_id,
                    &connector_id,
                    &new.id_tag,
                    &new.meter_start_wh,
                ],
            )
            .await
            .map_err(sql)?
            .as_ref()
            .map(session)
            .transpose()?,
    };
    if let Some(session) = existing {
        return Ok(Started {
            session,
            created: false,
        });
    }

    // An OCPP 1.6 session is named by its id: take the id first and write both in one row.
    let row = db
        .query_one(
            "INSERT INTO sessions (id, charger_id, evse_id, connector_id, transaction_ref,
                 id_tag, started_at, meter_start_wh, last_seq_no)
             SELECT next.id, $1::text, $2::bigint, $3::bigint, coalesce($4::text, next.id::text),
                 $5::text, $6::timestamptz, $7::bigint, $8::bigint
             FROM (SELECT nextval(pg_get_serial_sequence('sessions', 'id')) AS id) AS next
             RETURNING id, transaction_ref",
            &[
                &new.charger_id,
                &evse_id,
                &connector_id,
                &new.transaction_ref,
                &new.id_tag,
                &started_at,
                &new.meter_start_wh,
                &new.seq_no,
            ],
        )
        .await
        .map_err(|e| match violated(&e) {
            Some(Violation::ForeignKey(_)) => {
                StoreError::NotFound(format!("charger {}", new.charger_id))
            }
            _ => sql(e),
        })?;
    let id: i64 = get(&row, 0)?;
    // An OCPP 1.6 transactionId is a 32-bit integer; failing here rolls the insert back.
    if new.transaction_ref.is_none() {
        check::ocpp16_transaction_id(id)?;
    }
    Ok(Started {
        session: Session {
            id,
            charger_id: new.charger_id.clone(),
            evse_id: new.evse_id,
            connector_id: new.connector_id,
            transaction_ref: get(&row, 1)?,
            id_tag: new.id_tag.clone(),
            started_at,
            stopped_at: None,
            meter_start_wh: new.meter_start_wh,
            meter_stop_wh: None,
            energy_wh: None,
            stop_reason: None,
            last_seq_no: new.seq_no,
        },
        created: true,
    })
}

pub(super) async fn get_session(db: &Db<'_, impl Exec>, id: i64) -> Result<Option<Session>> {
    db.query_opt(
        &format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1"),
        &[&id],
    )
    .await
    .map_err(sql)?
    .as_ref()
    .map(session)
    .transpose()
}

pub(super) async fn find_session(
    db: &Db<'_, impl Exec>,
    charger_id: &str,
    transaction_ref: &str,
) -> Result<Option<Session>> {
    db.query_opt(
        &format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE charger_id = $1 AND transaction_ref = $2"
        ),
        &[&charger_id, &transaction_ref],
    )
    .await
    .map_err(sql)?
    .as_ref()
    .map(session)
    .transpose()
}

fn max_seq(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// In a transaction: the row is locked while it is read and changed, so of two stops racing
/// each other exactly one applies. (`NO KEY UPDATE`: meter samples being written for the
/// session, whose foreign key check shares the row, need not wait.)
pub(super) async fn stop_session(
    db: &Db<'_, impl Exec>,
    id: i64,
    stop: &SessionStop,
) -> Result<Stopped> {
    let row = db
        .query_opt(
            &format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1 FOR NO KEY UPDATE"),
            &[&id],
        )
        .await
        .map_err(sql)?;
    let Some(mut s) = row.as_ref().map(session).transpose()? else {
        return Err(StoreError::NotFound(format!("session {id}")));
    };
    if s.stopped_at.is_some() {
        return Ok(Stopped {
            session: s,
            applied: false,
        });
    }
    let from_registers = match (s.meter_start_wh, stop.meter_stop_wh) {
        (Some(start), Some(stop)) => stop.checked_sub(start),
        _ => None,
    };
    s.stopped_at = Some(ms(stop.stopped_at));
    s.meter_stop_wh = stop.meter_stop_wh;
    // Reported energy wins, then the registers, then the last running value we were told.
    s.energy_wh = stop.energy_wh.or(from_registers).or(s.energy_wh);
    s.stop_reason = stop.reason.clone();
    s.last_seq_no = max_seq(s.last_seq_no, stop.seq_no);
    db.execute(
        "UPDATE sessions SET stopped_at = $2, meter_stop_wh = $3, energy_wh = $4,
             stop_reason = $5, last_seq_no = $6
         WHERE id = $1",
        &[
            &id,
            &s.stopped_at,
            &s.meter_stop_wh,
            &s.energy_wh,
            &s.stop_reason,
            &s.last_seq_no,
        ],
    )
    .await
    .map_err(sql)?;
    Ok(Stopped {
        session: s,
        applied: true,
    })
}

/// One conditional UPDATE, so it commits on its own and a concurrent stop or newer event is
/// seen: PostgreSQL re-checks the condition on the row it waited for.
pub(super) async fn update_session_energy(
    db: &Db<'_, impl Exec>,
    id: i64,
    energy_wh: Option<i64>,
    seq_no: Option<i64>,
) -> Result<()> {
    // An event older than one already applied arrived late; it must not move energy back.
    let changed = db
        .execute(
            "UPDATE sessions SET energy_wh = coalesce($2, energy_wh),
                 last_seq_no = coalesce($3, last_seq_no)
             WHERE id = $1 AND stopped_at IS NULL
               AND ($3::bigint IS NULL OR last_seq_no IS NULL OR $3::bigint >= last_seq_no)",
            &[&id, &energy_wh, &seq_no],
        )
        .await
        .map_err(sql)?;
    if changed == 0 {
        let exists = db
            .query_opt("SELECT 1 FROM sessions WHERE id = $1", &[&id])
            .await
            .map_err(sql)?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("session {id}")));
        }
    }
    Ok(())
}

pub(super) async fn list_sessions(
    db: &Db<'_, impl Exec>,
    f: &SessionFilter,
) -> Result<Vec<Session>> {
    let mut text = format!("SELECT {SESSION_COLS} FROM sessions WHERE true");
    let mut values: Values = Vec::new();
    if let Some(charger_id) = &f.charger_id {
        values.push(Box::new(charger_id.clone()));
        text.push_str(&format!(" AND charger_id = ${}", values.len()));
    }
    if let Some(station_id) = &f.station_id {
        values.push(Box::new(station_id.clone()));
        text.push_str(&format!(
            " AND charger_id IN (SELECT id FROM chargers WHERE station_id = ${})",
            values.len()
        ));
    }
    match f.open {
        Some(true) => text.push_str(" AND stopped_at IS NULL"),
        Some(false) => text.push_str(" AND stopped_at IS NOT NULL"),
        None => {}
    }
    if let Some(since) = f.since {
        values.push(Box::new(ms(since)));
        text.push_str(&format!(" AND started_at >= ${}", values.len()));
    }
    text.push_str(" ORDER BY started_at DESC, id DESC");
    if let Some(limit) = f.limit {
        values.push(Box::new(i64::from(limit)));
        text.push_str(&format!(" LIMIT ${}", values.len()));
    }
    let rows = db.query(&text, &refs(&values)).await.map_err(sql)?;
    collect(rows, session)
}

/// One INSERT over arrays of every column: atomic on its own (all or nothing), and one round
/// trip however many sessions the call brings.
pub(super) async fn import_sessions(
    db: &Db<'_, impl Exec>,
    sessions: &[ImportedSession],
) -> Result<u64> {
    sessions.iter().try_for_each(check::imported_session)?;
    let chargers: Vec<&str> = sessions.iter().map(|s| s.charger_id.as_str()).collect();
    let evses: Vec<i64> = sessions.iter().map(|s| i64::from(s.evse_id)).collect();
    let connectors: Vec<i64> = sessions.iter().map(|s| i64::from(s.connector_id)).collect();
    let refs_: Vec<&str> = sessions
        .iter()
        .map(|s| s.transaction_ref.as_str())
        .collect();
    let tags: Vec<Option<&str>> = sessions.iter().map(|s| s.id_tag.as_deref()).collect();
    let starts: Vec<DateTime<Utc>> = sessions.iter().map(|s| ms(s.started_at)).collect();
    let stops: Vec<Option<DateTime<Utc>>> = sessions.iter().map(|s| ms_opt(s.stopped_at)).collect();
    let energy: Vec<Option<i64>> = sessions.iter().map(|s| s.energy_wh).collect();
    let reasons: Vec<Option<&str>> = sessions.iter().map(|s| s.stop_reason.as_deref()).collect();
    let added = db
        .execute(
            "INSERT INTO sessions (charger_id, evse_id, connector_id, transaction_ref, id_tag,
                 started_at, stopped_at, energy_wh, stop_reason)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                 $6::timestamptz[], $7::timestamptz[], $8::bigint[], $9::text[])
             ON CONFLICT (charger_id, transaction_ref) DO NOTHING",
            &[
                &chargers,
                &evses,
                &connectors,
                &refs_,
                &tags,
                &starts,
                &stops,
                &energy,
                &reasons,
            ],
        )
        .await;
    match added {
        Ok(n) => Ok(n),
        Err(e) if matches!(violated(&e), Some(Violation::ForeignKey(_))) => {
            // Nothing was written; name the charger as the SQLite backend does.
            let missing: Option<String> = db
                .query_opt(
                    "SELECT wanted.id FROM unnest($1::text[]) AS wanted (id)
                     WHERE NOT EXISTS (SELECT 1 FROM chargers c WHERE c.id = wanted.id) LIMIT 1",
                    &[&chargers],
                )
                .await
                .map_err(sql)?
                .map(|row| get(&row, 0))
                .transpose()?;
            Err(StoreError::NotFound(format!(
                "charger {}",
                missing.as_deref().unwrap_or("(unknown)")
            )))
        }
        Err(e) => Err(sql(e)),
    }
}

pub(super) async fn session_spans(
    db: &Db<'_, impl Exec>,
    station_id: Option<&str>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<SessionSpan>> {
    let (since, until) = (ms(since), ms(until));
    // One station: its chargers' (charger, started_at) index ranges; all: the started_at index.
    let rows = match station_id {
        Some(station_id) => {
            db.query(
                "SELECT c.station_id, s.charger_id, s.evse_id, s.connector_id, s.started_at,
                     s.stopped_at
                 FROM chargers c JOIN sessions s ON s.charger_id = c.id
                 WHERE c.station_id = $3 AND s.started_at >= $1 AND s.started_at < $2
                 ORDER BY s.started_at, s.id",
                &[&since, &until, &station_id],
            )
            .await
        }
        None => {
            db.query(
                "SELECT c.station_id, s.charger_id, s.evse_id, s.connector_id, s.started_at,
                     s.stopped_at
                 FROM sessions s JOIN chargers c ON c.id = s.charger_id
                 WHERE s.started_at >= $1 AND s.started_at < $2
                 ORDER BY s.started_at, s.id",
                &[&since, &until],
            )
            .await
        }
    }
    .map_err(sql)?;
    rows.iter()
        .map(|row| {
            Ok(SessionSpan {
                station_id: get(row, 0)?,
                charger_id: get(row, 1)?,
                evse_id: uint(row, 2)?,
                connector_id: uint(row, 3)?,
                started_at: get(row, 4)?,
                stopped_at: get(row, 5)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Meter samples.

/// One INSERT over arrays, like [`import_sessions`]: all samples or none, one round trip.
pub(super) async fn record_meter_samples(
    db: &Db<'_, impl Exec>,
    samples: &[MeterSample],
) -> Result<()> {
    samples.iter().try_for_each(check::meter_sample)?;
    let chargers: Vec<&str> = samples.iter().map(|s| s.charger_id.as_str()).collect();
    let evses: Vec<i64> = samples.iter().map(|s| i64::from(s.evse_id)).collect();
    let connectors: Vec<i64> = samples.iter().map(|s| i64::from(s.connector_id)).collect();
    let sessions: Vec<Option<i64>> = samples.iter().map(|s| s.session_id).collect();
    let ats: Vec<DateTime<Utc>> = samples.iter().map(|s| ms(s.at)).collect();
    let measurands: Vec<&str> = samples.iter().map(|s| s.measurand.as_str()).collect();
    let phases: Vec<Option<&str>> = samples.iter().map(|s| s.phase.as_deref()).collect();
    let units: Vec<Option<&str>> = samples.iter().map(|s| s.unit.as_deref()).collect();
    let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let written = db
        .execute(
            "INSERT INTO meter_samples (charger_id, evse_id, connector_id, session_id, at,
                 measurand, phase, unit, value)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                 $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::float8[])
             ON CONFLICT DO NOTHING",
            &[
                &chargers,
                &evses,
                &connectors,
                &sessions,
                &ats,
                &measurands,
                &phases,
                &units,
                &values,
            ],
        )
        .await;
    match written {
        Ok(_) => Ok(()),
        Err(e) if matches!(violated(&e), Some(Violation::ForeignKey(_))) => {
            let missing: Option<i64> = db
                .query_opt(
                    "SELECT wanted.id FROM unnest($1::bigint[]) AS wanted (id)
                     WHERE wanted.id IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = wanted.id)
                     LIMIT 1",
                    &[&sessions],
                )
                .await
                .map_err(sql)?
                .map(|row| get(&row, 0))
                .transpose()?;
            Err(StoreError::NotFound(match missing {
                Some(id) => format!("session {id}"),
                None => "session".to_owned(),
            }))
        }
        Err(e) => Err(sql(e)),
    }
}

pub(super) async fn meter_samples(
    db: &Db<'_, impl Exec>,
    session_id: i64,
) -> Result<Vec<MeterSample>> {
    let rows = db
        .query(
            "SELECT charger_id, evse_id, connector_id, session_id, at, measurand, phase, unit, value
             FROM meter_samples WHERE session_id = $1 ORDER BY at, id",
            &[&session_id],
        )
        .await
        .map_err(sql)?;
    rows.iter()
        .map(|row| {
            Ok(MeterSample {
                charger_id: get(row, 0)?,
                evse_id: uint(row, 1)?,
                connector_id: uint(row, 2)?,
                session_id: get(row, 3)?,
                at: get(row, 4)?,
                measurand: get(row, 5)?,
                phase: get(row, 6)?,
                unit: get(row, 7)?,
                value: get(row, 8)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Authorization list.

const ID_TAG_COLS: &str = "id_tag, status, expiry, parent_id_tag";

fn id_tag(row: &Row) -> Result<IdTag> {
    Ok(IdTag {
        id_tag: get(row, 0)?,
        status: named(row, 1, IdTagStatus::parse)?,
        expiry: get(row, 2)?,
        parent_id_tag: get(row, 3)?,
    })
}

pub(super) async fn upsert_id_tag(db: &Db<'_, impl Exec>, t: &IdTag) -> Result<()> {
    db.execute(
        "INSERT INTO id_tags (id_tag, status, expiry, parent_id_tag) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id_tag) DO UPDATE SET
             status = excluded.status, expiry = excluded.expiry,
             parent_id_tag = excluded.parent_id_tag",
        &[
            &t.id_tag,
            &t.status.as_str(),
            &ms_opt(t.expiry),
            &t.parent_id_tag,
        ],
    )
    .await
    .map_err(sql)?;
    Ok(())
}

pub(super) async fn get_id_tag(db: &Db<'_, impl Exec>, tag: &str) -> Result<Option<IdTag>> {
    db.query_opt(
        &format!("SELECT {ID_TAG_COLS} FROM id_tags WHERE id_tag = $1"),
        &[&tag],
    )
    .await
    .map_err(sql)?
    .as_ref()
    .map(id_tag)
    .transpose()
}

pub(super) async fn list_id_tags(db: &Db<'_, impl Exec>) -> Result<Vec<IdTag>> {
    let rows = db
        .query(
            &format!("SELECT {ID_TAG_COLS} FROM id_tags ORDER BY id_tag"),
            &[],
        )
        .await
        .map_err(sql)?;
    collect(rows, id_tag)
}

pub(super) async fn delete_id_tag(db: &Db<'_, impl Exec>, tag: &str) -> Result<()> {
    let deleted = db
        .execute("DELETE FROM id_tags WHERE id_tag = $1", &[&tag])
        .await
        .map_err(sql)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("id tag {tag}")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// API tokens.

fn api_token(row: &Row) -> Result<ApiToken> {
    Ok(ApiToken {
        id: get(row, 0)?,
        name: get(row, 1)?,
        role: named(row, 2, Role::parse)?,
        token_hash: get(row, 3)?,
        created_at: get(row, 4)?,
        crew_id: get(row, 5)?,
    })
}

pub(super) async fn insert_token(
    db: &Db<'_, impl Exec>,
    name: &str,
    role: Role,
    digest: &str,
    now: DateTime<Utc>,
    crew_id: Option<&str>,
) -> Result<ApiToken> {
    let now = ms(now);
    let row = db
        .query_one(
            "INSERT INTO api_tokens (name, role, token_hash, created_at, crew_id)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&name, &role.as_str(), &digest, &now, &crew_id],
        )
        .await
        .map_err(|e| match violated(&e) {
            // Never echo the digest.
            Some(Violation::Unique(_)) => StoreError::Conflict("api token".into()),
            _ => sql(e),
        })?;
    Ok(ApiToken {
        id: get(&row, 0)?,
        name: name.to_owned(),
        role,
        token_hash: digest.to_owned(),
        created_at: now,
        crew_id: crew_id.map(str::to_owned),
    })
}

pub(super) async fn find_token(db: &Db<'_, impl Exec>, digest: &str) -> Result<Option<ApiToken>> {
    db.query_opt(
        "SELECT id, name, role, token_hash, created_at, crew_id FROM api_tokens
         WHERE token_hash = $1",
        &[&digest],
    )
    .await
    .map_err(sql)?
    .as_ref()
    .map(api_token)
    .transpose()
}

pub(super) async fn count_tokens(db: &Db<'_, impl Exec>) -> Result<u64> {
    let row = db
        .query_one("SELECT count(*) FROM api_tokens", &[])
        .await
        .map_err(sql)?;
    uint(&row, 0)
}

// The operations loop's tables.
pub(super) mod documents;
pub(super) mod ops;
pub(super) mod queue;
