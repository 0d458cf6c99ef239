//! The SQL behind each `Store` method, as plain functions over a connection: the writer calls
//! them inside a batch transaction, the readers on their own connections.

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use chargeops_core::{
    ApiToken, BootInfo, Charger, ConnectorState, ConnectorStatus, IdTag, IdTagStatus, MeterSample,
    NewSession, Protocol, Registration, Role, Session, SessionStop, Station,
};

use super::error::{is_foreign_key, is_unique, sql};
use crate::check;
use crate::{ImportedSession, Result, SessionFilter, SessionSpan, Started, Stopped, StoreError};

// ---------------------------------------------------------------------------------------------
// Column codecs.

/// A timestamp column: milliseconds since the Unix epoch, UTC.
struct Millis(DateTime<Utc>);

impl FromSql for Millis {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let ms = i64::column_result(value)?;
        DateTime::from_timestamp_millis(ms)
            .map(Millis)
            .ok_or(FromSqlError::OutOfRange(ms))
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn ms_opt(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(ms)
}

/// An enum stored as its lowercase name.
trait Named: Sized {
    fn from_name(s: &str) -> Option<Self>;
}

impl Named for ConnectorStatus {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}
impl Named for Registration {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}
impl Named for Protocol {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}
impl Named for IdTagStatus {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}
impl Named for Role {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}

struct Name<T>(T);

impl<T: Named> FromSql for Name<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        T::from_name(s)
            .map(Name)
            .ok_or_else(|| FromSqlError::Other(format!("unknown value {s:?}").into()))
    }
}

fn ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    row.get::<_, Millis>(idx).map(|m| m.0)
}

fn ts_opt(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<Millis>>(idx).map(|m| m.map(|m| m.0))
}

fn named<T: Named>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    row.get::<_, Name<T>>(idx).map(|n| n.0)
}

fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>> {
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(sql)
}

// ---------------------------------------------------------------------------------------------
// Stations.

const STATION_COLS: &str = "id, name, lat, lon, highway, direction";

fn station(row: &Row<'_>) -> rusqlite::Result<Station> {
    Ok(Station {
        id: row.get(0)?,
        name: row.get(1)?,
        lat: row.get(2)?,
        lon: row.get(3)?,
        highway: row.get(4)?,
        direction: row.get(5)?,
    })
}

pub(super) fn upsert_station(conn: &Connection, s: &Station) -> Result<()> {
    check::station(s)?;
    conn.prepare_cached(
        "INSERT INTO stations (id, name, lat, lon, highway, direction)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET
             name = excluded.name, lat = excluded.lat, lon = excluded.lon,
             highway = excluded.highway, direction = excluded.direction",
    )
    .and_then(|mut st| st.execute(params![s.id, s.name, s.lat, s.lon, s.highway, s.direction]))
    .map_err(sql)?;
    Ok(())
}

pub(super) fn get_station(conn: &Connection, id: &str) -> Result<Option<Station>> {
    conn.prepare_cached(&format!(
        "SELECT {STATION_COLS} FROM stations WHERE id = ?1"
    ))
    .and_then(|mut st| st.query_row([id], station).optional())
    .map_err(sql)
}

pub(super) fn list_stations(conn: &Connection) -> Result<Vec<Station>> {
    let mut st = conn
        .prepare_cached(&format!("SELECT {STATION_COLS} FROM stations ORDER BY id"))
        .map_err(sql)?;
    collect(st.query_map([], station).map_err(sql)?)
}

// ---------------------------------------------------------------------------------------------
// Chargers.

const CHARGER_COLS: &str = "id, station_id, protocol, vendor, model, serial_number, \
     firmware_version, registration, password_hash, created_at, last_boot_at";

fn charger(row: &Row<'_>) -> rusqlite::Result<Charger> {
    Ok(Charger {
        id: row.get(0)?,
        station_id: row.get(1)?,
        protocol: row.get::<_, Option<Name<Protocol>>>(2)?.map(|n| n.0),
        vendor: row.get(3)?,
        model: row.get(4)?,
        serial_number: row.get(5)?,
        firmware_version: row.get(6)?,
        registration: named(row, 7)?,
        password_hash: row.get(8)?,
        created_at: ts(row, 9)?,
        last_boot_at: ts_opt(row, 10)?,
    })
}

pub(super) fn insert_charger(conn: &Connection, c: &Charger) -> Result<()> {
    let station_exists = conn
        .prepare_cached("SELECT 1 FROM stations WHERE id = ?1")
        .and_then(|mut st| st.exists([&c.station_id]))
        .map_err(sql)?;
    if !station_exists {
        return Err(StoreError::NotFound(format!("station {}", c.station_id)));
    }
    conn.prepare_cached(&format!(
        "INSERT INTO chargers ({CHARGER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))
    .and_then(|mut st| {
        st.execute(params![
            c.id,
            c.station_id,
            c.protocol.map(Protocol::as_str),
            c.vendor,
            c.model,
            c.serial_number,
            c.firmware_version,
            c.registration.as_str(),
            c.password_hash,
            ms(c.created_at),
            ms_opt(c.last_boot_at),
        ])
    })
    .map_err(|e| {
        if is_unique(&e) {
            StoreError::Conflict(format!("charger {}", c.id))
        } else {
            sql(e)
        }
    })?;
    Ok(())
}

pub(super) fn get_charger(conn: &Connection, id: &str) -> Result<Option<Charger>> {
    conn.prepare_cached(&format!(
        "SELECT {CHARGER_COLS} FROM chargers WHERE id = ?1"
    ))
    .and_then(|mut st| st.query_row([id], charger).optional())
    .map_err(sql)
}

pub(super) fn list_chargers(conn: &Connection) -> Result<Vec<Charger>> {
    let mut st = conn
        .prepare_cached(&format!("SELECT {CHARGER_COLS} FROM chargers ORDER BY id"))
        .map_err(sql)?;
    collect(st.query_map([], charger).map_err(sql)?)
}

/// Runs an UPDATE of one charger; `NotFound` when there is no such charger.
fn update_charger(
    conn: &Connection,
    id: &str,
    sql_text: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<()> {
    let changed = conn
        .prepare_cached(sql_text)
        .and_then(|mut st| st.execute(params))
        .map_err(sql)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("charger {id}")));
    }
    Ok(())
}

pub(super) fn record_boot(
    conn: &Connection,
    id: &str,
    protocol: Protocol,
    info: &BootInfo,
    at: DateTime<Utc>,
) -> Result<()> {
    // What the charger says at boot replaces what it said before, absent fields included.
    update_charger(
        conn,
        id,
        "UPDATE chargers SET protocol = ?2, vendor = ?3, model = ?4, serial_number = ?5,
             firmware_version = ?6, last_boot_at = ?7
         WHERE id = ?1",
        params![
            id,
            protocol.as_str(),
            info.vendor,
            info.model,
            info.serial_number,
            info.firmware_version,
            ms(at),
        ],
    )
}

pub(super) fn set_registration(conn: &Connection, id: &str, r: Registration) -> Result<()> {
    update_charger(
        conn,
        id,
        "UPDATE chargers SET registration = ?2 WHERE id = ?1",
        params![id, r.as_str()],
    )
}

pub(super) fn set_charger_password(conn: &Connection, id: &str, hash: Option<&str>) -> Result<()> {
    update_charger(
        conn,
        id,
        "UPDATE chargers SET password_hash = ?2 WHERE id = ?1",
        params![id, hash],
    )
}

pub(super) fn set_charger_ykc_key(conn: &Connection, id: &str, key: Option<&str>) -> Result<()> {
    update_charger(
        conn,
        id,
        "UPDATE chargers SET ykc_key = ?2 WHERE id = ?1",
        params![id, key],
    )
}

pub(super) fn charger_ykc_key(conn: &Connection, id: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT ykc_key FROM chargers WHERE id = ?1",
            params![id],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()
        .map_err(sql)?
        .flatten())
}

// ---------------------------------------------------------------------------------------------
// Connector status.

pub(super) fn record_status(conn: &Connection, charger_id: &str, s: &ConnectorState) -> Result<()> {
    let at = ms(s.updated_at);
    let values = params![
        charger_id,
        s.evse_id,
        s.connector_id,
        s.status.as_str(),
        s.raw_status,
        s.error_code,
        at,
    ];
    // A report older than the one we hold (a replay after reconnect) goes to history only.
    conn.prepare_cached(
        "INSERT INTO connector_status
             (charger_id, evse_id, connector_id, status, raw_status, error_code, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (charger_id, evse_id, connector_id) DO UPDATE SET
             status = excluded.status, raw_status = excluded.raw_status,
             error_code = excluded.error_code, updated_at = excluded.updated_at
         WHERE excluded.updated_at >= connector_status.updated_at",
    )
    .and_then(|mut st| st.execute(values))
    .map_err(|e| {
        if is_foreign_key(&e) {
            StoreError::NotFound(format!("charger {charger_id}"))
        } else {
            sql(e)
        }
    })?;
    conn.prepare_cached(
        "INSERT INTO status_history
             (charger_id, evse_id, connector_id, status, raw_status, error_code, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT DO NOTHING",
    )
    .and_then(|mut st| st.execute(values))
    .map_err(sql)?;
    Ok(())
}

fn connector_state(row: &Row<'_>, first: usize) -> rusqlite::Result<ConnectorState> {
    Ok(ConnectorState {
        evse_id: row.get(first)?,
        connector_id: row.get(first + 1)?,
        status: named(row, first + 2)?,
        raw_status: row.get(first + 3)?,
        error_code: row.get(first + 4)?,
        updated_at: ts(row, first + 5)?,
    })
}

pub(super) fn list_connectors(conn: &Connection) -> Result<Vec<(String, ConnectorState)>> {
    let mut st = conn
        .prepare_cached(
            "SELECT charger_id, evse_id, connector_id, status, raw_status, error_code, updated_at
             FROM connector_status ORDER BY charger_id, evse_id, connector_id",
        )
        .map_err(sql)?;
    collect(
        st.query_map([], |row| Ok((row.get(0)?, connector_state(row, 1)?)))
            .map_err(sql)?,
    )
}

pub(super) fn status_history(
    conn: &Connection,
    charger_id: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<ConnectorState>> {
    let mut st = conn
        .prepare_cached(
            "SELECT evse_id, connector_id, status, raw_status, error_code, at
             FROM status_history WHERE charger_id = ?1 AND at >= ?2 ORDER BY at, id",
        )
        .map_err(sql)?;
    let since = since.map_or(i64::MIN, ms);
    collect(
        st.query_map(params![charger_id, since], |row| connector_state(row, 0))
            .map_err(sql)?,
    )
}

// ---------------------------------------------------------------------------------------------
// Sessions.

const SESSION_COLS: &str = "id, charger_id, evse_id, connector_id, transaction_ref, id_tag, \
     started_at, stopped_at, meter_start_wh, meter_stop_wh, energy_wh, stop_reason, last_seq_no";

fn session(row: &Row<'_>) -> rusqlite::Result<Session> {
    let id: i64 = row.get(0)?;
    Ok(Session {
        id,
        charger_id: row.get(1)?,
        evse_id: row.get(2)?,
        connector_id: row.get(3)?,
        transaction_ref: row
            .get::<_, Option<String>>(4)?
            .unwrap_or_else(|| id.to_string()),
        id_tag: row.get(5)?,
        started_at: ts(row, 6)?,
        stopped_at: ts_opt(row, 7)?,
        meter_start_wh: row.get(8)?,
        meter_stop_wh: row.get(9)?,
        energy_wh: row.get(10)?,
        stop_reason: row.get(11)?,
        last_seq_no: row.get(12)?,
    })
}

pub(super) fn start_session(conn: &Connection, new: &NewSession) -> Result<Started> {
    let existing = match &new.transaction_ref {
        Some(r) => find_session(conn, &new.charger_id, r)?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {SESSION_COLS} FROM sessions
                 WHERE charger_id = ?1 AND started_at = ?2 AND evse_id = ?3
                   AND connector_id = ?4 AND id_tag IS ?5 AND meter_start_wh IS ?6
                 ORDER BY id LIMIT 1"
            ))
            .and_then(|mut st| {
                st.query_row(
                    params![
                        new.charger_id,
                        ms(new.started_at),
                        new.evse_id,
                        new.connector_id,
                        new.id_tag,
                        new.meter_start_wh,
                    ],
                    session,
                )
                .optional()
            })
            .map_err(sql)?,
    };
    if let Some(session) = existing {
        return Ok(Started {
            session,
            created: false,
        });
    }

    conn.prepare_cached(
        "INSERT INTO sessions (charger_id, evse_id, connector_id, transaction_ref, id_tag,
             started_at, meter_start_wh, last_seq_no)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut st| {
        st.execute(params![
            new.charger_id,
            new.evse_id,
            new.connector_id,
            new.transaction_ref,
            new.id_tag,
            ms(new.started_at),
            new.meter_start_wh,
            new.seq_no,
        ])
    })
    .map_err(|e| {
        if is_foreign_key(&e) {
            StoreError::NotFound(format!("charger {}", new.charger_id))
        } else {
            sql(e)
        }
    })?;
    let id = conn.last_insert_rowid();

    let transaction_ref = match &new.transaction_ref {
        Some(r) => r.clone(),
        None => {
            // An OCPP 1.6 transactionId is a 32-bit integer; failing here rolls the insert back.
            check::ocpp16_transaction_id(id)?;
            let r = id.to_string();
            conn.prepare_cached("UPDATE sessions SET transaction_ref = ?2 WHERE id = ?1")
                .and_then(|mut st| st.execute(params![id, r]))
                .map_err(sql)?;
            r
        }
    };

    Ok(Started {
        session: Session {
            id,
            charger_id: new.charger_id.clone(),
            evse_id: new.evse_id,
            connector_id: new.connector_id,
            transaction_ref,
            id_tag: new.id_tag.clone(),
            started_at: truncate_ms(new.started_at),
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

/// The value a timestamp has once stored, so what a write returns equals what a read returns.
fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

pub(super) fn get_session(conn: &Connection, id: i64) -> Result<Option<Session>> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE id = ?1"
    ))
    .and_then(|mut st| st.query_row([id], session).optional())
    .map_err(sql)
}

pub(super) fn find_session(
    conn: &Connection,
    charger_id: &str,
    transaction_ref: &str,
) -> Result<Option<Session>> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE charger_id = ?1 AND transaction_ref = ?2"
    ))
    .and_then(|mut st| {
        st.query_row([charger_id, transaction_ref], session)
            .optional()
    })
    .map_err(sql)
}

fn max_seq(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

pub(super) fn stop_session(conn: &Connection, id: i64, stop: &SessionStop) -> Result<Stopped> {
    let Some(mut s) = get_session(conn, id)? else {
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
    s.stopped_at = Some(truncate_ms(stop.stopped_at));
    s.meter_stop_wh = stop.meter_stop_wh;
    // Reported energy wins, then the registers, then the last running value we were told.
    s.energy_wh = stop.energy_wh.or(from_registers).or(s.energy_wh);
    s.stop_reason = stop.reason.clone();
    s.last_seq_no = max_seq(s.last_seq_no, stop.seq_no);
    conn.prepare_cached(
        "UPDATE sessions SET stopped_at = ?2, meter_stop_wh = ?3, energy_wh = ?4,
             stop_reason = ?5, last_seq_no = ?6
         WHERE id = ?1",
    )
    .and_then(|mut st| {
        st.execute(params![
            id,
            ms(stop.stopped_at),
            s.meter_stop_wh,
            s.energy_wh,
            s.stop_reason,
            s.last_seq_no,
        ])
    })
    .map_err(sql)?;
    Ok(Stopped {
        session: s,
        applied: true,
    })
}

pub(super) fn update_session_energy(
    conn: &Connection,
    id: i64,
    energy_wh: Option<i64>,
    seq_no: Option<i64>,
) -> Result<()> {
    let current: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached("SELECT stopped_at, last_seq_no FROM sessions WHERE id = ?1")
        .and_then(|mut st| {
            st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql)?;
    let Some((stopped_at, last_seq_no)) = current else {
        return Err(StoreError::NotFound(format!("session {id}")));
    };
    if stopped_at.is_some() {
        return Ok(());
    }
    // An event older than one already applied arrived late; it must not move energy back.
    if let (Some(seq), Some(last)) = (seq_no, last_seq_no) {
        if seq < last {
            return Ok(());
        }
    }
    conn.prepare_cached(
        "UPDATE sessions SET energy_wh = coalesce(?2, energy_wh),
             last_seq_no = coalesce(?3, last_seq_no)
         WHERE id = ?1",
    )
    .and_then(|mut st| st.execute(params![id, energy_wh, seq_no]))
    .map_err(sql)?;
    Ok(())
}

pub(super) fn list_sessions(conn: &Connection, f: &SessionFilter) -> Result<Vec<Session>> {
    let mut text = format!("SELECT {SESSION_COLS} FROM sessions WHERE 1 = 1");
    let mut values: Vec<Value> = Vec::new();
    if let Some(charger_id) = &f.charger_id {
        values.push(Value::Text(charger_id.clone()));
        text.push_str(&format!(" AND charger_id = ?{}", values.len()));
    }
    if let Some(station_id) = &f.station_id {
        values.push(Value::Text(station_id.clone()));
        text.push_str(&format!(
            " AND charger_id IN (SELECT id FROM chargers WHERE station_id = ?{})",
            values.len()
        ));
    }
    match f.open {
        Some(true) => text.push_str(" AND stopped_at IS NULL"),
        Some(false) => text.push_str(" AND stopped_at IS NOT NULL"),
        None => {}
    }
    if let Some(since) = f.since {
        values.push(Value::Integer(ms(since)));
        text.push_str(&format!(" AND started_at >= ?{}", values.len()));
    }
    text.push_str(" ORDER BY started_at DESC, id DESC");
    if let Some(limit) = f.limit {
        values.push(Value::Integer(i64::from(limit)));
        text.push_str(&format!(" LIMIT ?{}", values.len()));
    }
    let mut st = conn.prepare_cached(&text).map_err(sql)?;
    collect(
        st.query_map(params_from_iter(values), session)
            .map_err(sql)?,
    )
}

pub(super) fn import_sessions(conn: &Connection, sessions: &[ImportedSession]) -> Result<u64> {
    let mut st = conn
        .prepare_cached(
            "INSERT INTO sessions (charger_id, evse_id, connector_id, transaction_ref, id_tag,
                 started_at, stopped_at, energy_wh, stop_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (charger_id, transaction_ref) DO NOTHING",
        )
        .map_err(sql)?;
    let mut added = 0u64;
    for s in sessions {
        check::imported_session(s)?;
        let n = st
            .execute(params![
                s.charger_id,
                s.evse_id,
                s.connector_id,
                s.transaction_ref,
                s.id_tag,
                ms(s.started_at),
                ms_opt(s.stopped_at),
                s.energy_wh,
                s.stop_reason,
            ])
            .map_err(|e| {
                if is_foreign_key(&e) {
                    StoreError::NotFound(format!("charger {}", s.charger_id))
                } else {
                    sql(e)
                }
            })?;
        added += n as u64;
    }
    Ok(added)
}

pub(super) fn session_spans(
    conn: &Connection,
    station_id: Option<&str>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<SessionSpan>> {
    // One station: its chargers' (charger, started_at) index ranges; all: the started_at index.
    let text = if station_id.is_some() {
        "SELECT c.station_id, s.charger_id, s.evse_id, s.connector_id, s.started_at, s.stopped_at
         FROM chargers c JOIN sessions s ON s.charger_id = c.id
         WHERE c.station_id = ?3 AND s.started_at >= ?1 AND s.started_at < ?2
         ORDER BY s.started_at, s.id"
    } else {
        "SELECT c.station_id, s.charger_id, s.evse_id, s.connector_id, s.started_at, s.stopped_at
         FROM sessions s JOIN chargers c ON c.id = s.charger_id
         WHERE s.started_at >= ?1 AND s.started_at < ?2 AND ?3 IS NULL
         ORDER BY s.started_at, s.id"
    };
    let mut st = conn.prepare_cached(text).map_err(sql)?;
    collect(
        st.query_map(params![ms(since), ms(until), station_id], |row| {
            Ok(SessionSpan {
                station_id: row.get(0)?,
                charger_id: row.get(1)?,
                evse_id: row.get(2)?,
                connector_id: row.get(3)?,
                started_at: ts(row, 4)?,
                stopped_at: ts_opt(row, 5)?,
            })
        })
        .map_err(sql)?,
    )
}

// ---------------------------------------------------------------------------------------------
// Meter samples.

pub(super) fn record_meter_samples(conn: &Connection, samples: &[MeterSample]) -> Result<()> {
    let mut st = conn
        .prepare_cached(
            "INSERT INTO meter_samples (charger_id, evse_id, connector_id, session_id, at,
                 measurand, phase, unit, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT DO NOTHING",
        )
        .map_err(sql)?;
    for s in samples {
        check::meter_sample(s)?;
        st.execute(params![
            s.charger_id,
            s.evse_id,
            s.connector_id,
            s.session_id,
            ms(s.at),
            s.measurand,
            s.phase,
            s.unit,
            s.value,
        ])
        .map_err(|e| match (is_foreign_key(&e), s.session_id) {
            (true, Some(id)) => StoreError::NotFound(format!("session {id}")),
            _ => sql(e),
        })?;
    }
    Ok(())
}

pub(super) fn meter_samples(conn: &Connection, session_id: i64) -> Result<Vec<MeterSample>> {
    let mut st = conn
        .prepare_cached(
            "SELECT charger_id, evse_id, connector_id, session_id, at, measurand, phase, unit, value
             FROM meter_samples WHERE session_id = ?1 ORDER BY at, id",
        )
        .map_err(sql)?;
    collect(
        st.query_map([session_id], |row| {
            Ok(MeterSample {
                charger_id: row.get(0)?,
                evse_id: row.get(1)?,
                connector_id: row.get(2)?,
                session_id: row.get(3)?,
                at: ts(row, 4)?,
                measurand: row.get(5)?,
                phase: row.get(6)?,
                unit: row.get(7)?,
                value: row.get(8)?,
            })
        })
        .map_err(sql)?,
    )
}

// ---------------------------------------------------------------------------------------------
// Authorization list.

const ID_TAG_COLS: &str = "id_tag, status, expiry, parent_id_tag";

fn id_tag(row: &Row<'_>) -> rusqlite::Result<IdTag> {
    Ok(IdTag {
        id_tag: row.get(0)?,
        status: named(row, 1)?,
        expiry: ts_opt(row, 2)?,
        parent_id_tag: row.get(3)?,
    })
}

pub(super) fn upsert_id_tag(conn: &Connection, t: &IdTag) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO id_tags (id_tag, status, expiry, parent_id_tag) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id_tag) DO UPDATE SET
             status = excluded.status, expiry = excluded.expiry,
             parent_id_tag = excluded.parent_id_tag",
    )
    .and_then(|mut st| {
        st.execute(params![
            t.id_tag,
            t.status.as_str(),
            ms_opt(t.expiry),
            t.parent_id_tag
        ])
    })
    .map_err(sql)?;
    Ok(())
}

pub(super) fn get_id_tag(conn: &Connection, tag: &str) -> Result<Option<IdTag>> {
    conn.prepare_cached(&format!(
        "SELECT {ID_TAG_COLS} FROM id_tags WHERE id_tag = ?1"
    ))
    .and_then(|mut st| st.query_row([tag], id_tag).optional())
    .map_err(sql)
}

pub(super) fn list_id_tags(conn: &Connection) -> Result<Vec<IdTag>> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {ID_TAG_COLS} FROM id_tags ORDER BY id_tag"
        ))
        .map_err(sql)?;
    collect(st.query_map([], id_tag).map_err(sql)?)
}

pub(super) fn delete_id_tag(conn: &Connection, tag: &str) -> Result<()> {
    let deleted = conn
        .prepare_cached("DELETE FROM id_tags WHERE id_tag = ?1")
        .and_then(|mut st| st.execute([tag]))
        .map_err(sql)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("id tag {tag}")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// API tokens.

fn api_token(row: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: row.get(0)?,
        name: row.get(1)?,
        role: named(row, 2)?,
        token_hash: row.get(3)?,
        created_at: ts(row, 4)?,
        crew_id: row.get(5)?,
    })
}

pub(super) fn insert_token(
    conn: &Connection,
    name: &str,
    role: Role,
    digest: &str,
    now: DateTime<Utc>,
    crew_id: Option<&str>,
) -> Result<ApiToken> {
    conn.prepare_cached(
        "INSERT INTO api_tokens (name, role, token_hash, created_at, crew_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut st| st.execute(params![name, role.as_str(), digest, ms(now), crew_id]))
    .map_err(|e| {
        if is_unique(&e) {
            // Never echo the digest.
            StoreError::Conflict("api token".into())
        } else {
            sql(e)
        }
    })?;
    Ok(ApiToken {
        id: conn.last_insert_rowid(),
        name: name.to_owned(),
        role,
        token_hash: digest.to_owned(),
        created_at: truncate_ms(now),
        crew_id: crew_id.map(str::to_owned),
    })
}

pub(super) fn find_token(conn: &Connection, digest: &str) -> Result<Option<ApiToken>> {
    conn.prepare_cached(
        "SELECT id, name, role, token_hash, created_at, crew_id FROM api_tokens WHERE token_hash = ?1",
    )
    .and_then(|mut st| st.query_row([digest], api_token).optional())
    .map_err(sql)
}

pub(super) fn count_tokens(conn: &Connection) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM api_tokens")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(sql)?;
    u64::try_from(n).map_err(|e| StoreError::Backend(format!("token count {n}: {e}")))
}

// The operations loop's tables.
pub(super) mod documents;
pub(super) mod ops;
pub(super) mod queue;
