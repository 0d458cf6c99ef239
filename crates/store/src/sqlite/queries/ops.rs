//! The SQL of the operations loop: cases with their timeline, crews, the audit log.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use chargeops_ops::{
    AuditEntry, Case, CaseKind, CaseState, Category, Crew, Priority, Source, TimelineEntry,
};

use super::{Named, collect, ms, ms_opt, named, truncate_ms, ts, ts_opt};
use crate::check;
use crate::sqlite::error::{is_foreign_key, sql};
use crate::{CaseFilter, Result, StoreError};

impl Named for CaseKind {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}
impl Named for CaseState {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}
impl Named for Category {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}
impl Named for Priority {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}
impl Named for Source {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}

const CASE_COLS: &str = "id, kind, state, source, category, priority, station_id, charger_id,
    connector_id, title, description, error_code, caller_phone, crew_id, opened_at, state_since,
    last_seen_at, sla_due_at, sla_breached, resolved_at, closed_at, reopened, resolution_note,
    parts_used";

fn case(row: &Row<'_>) -> rusqlite::Result<Case> {
    let parts: String = row.get(23)?;
    Ok(Case {
        id: row.get(0)?,
        kind: named(row, 1)?,
        state: named(row, 2)?,
        source: named(row, 3)?,
        category: named(row, 4)?,
        priority: named(row, 5)?,
        station_id: row.get(6)?,
        charger_id: row.get(7)?,
        connector_id: row.get(8)?,
        title: row.get(9)?,
        description: row.get(10)?,
        error_code: row.get(11)?,
        caller_phone: row.get(12)?,
        crew_id: row.get(13)?,
        opened_at: ts(row, 14)?,
        state_since: ts(row, 15)?,
        last_seen_at: ts(row, 16)?,
        sla_due_at: ts(row, 17)?,
        sla_breached: row.get::<_, i64>(18)? != 0,
        resolved_at: ts_opt(row, 19)?,
        closed_at: ts_opt(row, 20)?,
        reopened: row.get(21)?,
        resolution_note: row.get(22)?,
        parts_used: serde_json::from_str(&parts).unwrap_or_default(),
    })
}

/// The foreign keys of a case, named in the error: which one failed is not reported by SQLite,
/// so look.
fn missing_reference(conn: &Connection, c: &Case) -> StoreError {
    let exists = |table: &str, id: &str| {
        conn.query_row(
            &format!("SELECT 1 FROM {table} WHERE id = ?1"),
            [id],
            |_| Ok(()),
        )
        .optional()
        .ok()
        .flatten()
        .is_some()
    };
    if !exists("stations", &c.station_id) {
        return StoreError::NotFound(format!("station {}", c.station_id));
    }
    if let Some(ch) = c.charger_id.as_deref().filter(|id| !exists("chargers", id)) {
        return StoreError::NotFound(format!("charger {ch}"));
    }
    if let Some(cr) = c.crew_id.as_deref().filter(|id| !exists("crews", id)) {
        return StoreError::NotFound(format!("crew {cr}"));
    }
    StoreError::NotFound("case reference".into())
}

fn case_values(c: &Case) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    let text = |s: &str| V::Text(s.to_owned());
    let opt = |s: &Option<String>| s.as_deref().map_or(V::Null, text);
    let time = |t: DateTime<Utc>| V::Integer(ms(t));
    let opt_time = |t: Option<DateTime<Utc>>| ms_opt(t).map_or(V::Null, V::Integer);
    vec![
        text(c.kind.as_str()),
        text(c.state.as_str()),
        text(c.source.as_str()),
        text(c.category.as_str()),
        text(c.priority.as_str()),
        text(&c.station_id),
        opt(&c.charger_id),
        c.connector_id.map_or(V::Null, |v| V::Integer(i64::from(v))),
        text(&c.title),
        opt(&c.description),
        opt(&c.error_code),
        opt(&c.caller_phone),
        opt(&c.crew_id),
        time(c.opened_at),
        time(c.state_since),
        time(c.last_seen_at),
        time(c.sla_due_at),
        V::Integer(i64::from(c.sla_breached)),
        opt_time(c.resolved_at),
        opt_time(c.closed_at),
        V::Integer(i64::from(c.reopened)),
        opt(&c.resolution_note),
        text(&serde_json::to_string(&c.parts_used).unwrap_or_else(|_| "[]".into())),
    ]
}

fn append_timeline(conn: &Connection, case_id: i64, entries: &[TimelineEntry]) -> Result<()> {
    let mut st = conn
        .prepare_cached(
            "INSERT INTO case_timeline (case_id, at, actor, action, state, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(sql)?;
    for e in entries {
        st.execute(params![
            case_id,
            ms(e.at),
            e.actor,
            e.action,
            e.state.as_str(),
            e.detail
        ])
        .map_err(sql)?;
    }
    Ok(())
}

fn truncated(c: &Case) -> Case {
    Case {
        opened_at: truncate_ms(c.opened_at),
        state_since: truncate_ms(c.state_since),
        last_seen_at: truncate_ms(c.last_seen_at),
        sla_due_at: truncate_ms(c.sla_due_at),
        resolved_at: c.resolved_at.map(truncate_ms),
        closed_at: c.closed_at.map(truncate_ms),
        ..c.clone()
    }
}

pub(in crate::sqlite) fn insert_case(
    conn: &Connection,
    c: &Case,
    entries: &[TimelineEntry],
) -> Result<Case> {
    check::case(c)?;
    conn.prepare_cached(
        "INSERT INTO cases (kind, state, source, category, priority, station_id, charger_id,
             connector_id, title, description, error_code, caller_phone, crew_id, opened_at,
             state_since, last_seen_at, sla_due_at, sla_breached, resolved_at, closed_at, reopened,
             resolution_note, parts_used)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20, ?21, ?22, ?23)",
    )
    .and_then(|mut st| st.execute(params_from_iter(case_values(c))))
    .map_err(|e| {
        if is_foreign_key(&e) {
            missing_reference(conn, c)
        } else {
            sql(e)
        }
    })?;
    let id = conn.last_insert_rowid();
    append_timeline(conn, id, entries)?;
    Ok(Case { id, ..truncated(c) })
}

pub(in crate::sqlite) fn update_case(
    conn: &Connection,
    c: &Case,
    entries: &[TimelineEntry],
) -> Result<()> {
    check::case(c)?;
    let mut values = case_values(c);
    values.push(rusqlite::types::Value::Integer(c.id));
    let n = conn
        .prepare_cached(
            "UPDATE cases SET kind = ?1, state = ?2, source = ?3, category = ?4, priority = ?5,
                 station_id = ?6, charger_id = ?7, connector_id = ?8, title = ?9, description = ?10,
                 error_code = ?11, caller_phone = ?12, crew_id = ?13, opened_at = ?14,
                 state_since = ?15, last_seen_at = ?16, sla_due_at = ?17, sla_breached = ?18,
                 resolved_at = ?19, closed_at = ?20, reopened = ?21, resolution_note = ?22,
                 parts_used = ?23
             WHERE id = ?24",
        )
        .and_then(|mut st| st.execute(params_from_iter(values)))
        .map_err(|e| {
            if is_foreign_key(&e) {
                missing_reference(conn, c)
            } else {
                sql(e)
            }
        })?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("case {}", c.id)));
    }
    append_timeline(conn, c.id, entries)
}

pub(in crate::sqlite) fn get_case(conn: &Connection, id: i64) -> Result<Option<Case>> {
    conn.prepare_cached(&format!("SELECT {CASE_COLS} FROM cases WHERE id = ?1"))
        .and_then(|mut st| st.query_row([id], case).optional())
        .map_err(sql)
}

pub(in crate::sqlite) fn list_cases(conn: &Connection, f: &CaseFilter) -> Result<Vec<Case>> {
    use rusqlite::types::Value as V;
    let mut clauses = Vec::new();
    let mut args: Vec<V> = Vec::new();
    let mut add = |clause: &str, v: V| {
        args.push(v);
        clauses.push(clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(v) = &f.charger_id {
        add("charger_id = ?", V::Text(v.clone()));
    }
    if let Some(v) = &f.station_id {
        add("station_id = ?", V::Text(v.clone()));
    }
    if let Some(v) = &f.crew_id {
        add("crew_id = ?", V::Text(v.clone()));
    }
    if let Some(v) = f.kind {
        add("kind = ?", V::Text(v.as_str().to_owned()));
    }
    if let Some(v) = f.since {
        add("opened_at >= ?", V::Integer(ms(v)));
    }
    match f.open {
        Some(true) => clauses.push("state <> 'closed'".to_owned()),
        Some(false) => clauses.push("state = 'closed'".to_owned()),
        None => {}
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let limit = f.limit.map_or(-1, i64::from);
    let text = format!(
        "SELECT {CASE_COLS} FROM cases {filter} ORDER BY opened_at DESC, id DESC LIMIT {limit}"
    );
    let mut st = conn.prepare(&text).map_err(sql)?;
    collect(st.query_map(params_from_iter(args), case).map_err(sql)?)
}

pub(in crate::sqlite) fn case_timeline(conn: &Connection, id: i64) -> Result<Vec<TimelineEntry>> {
    let mut st = conn
        .prepare_cached(
            "SELECT at, actor, action, state, detail FROM case_timeline WHERE case_id = ?1 ORDER BY id",
        )
        .map_err(sql)?;
    collect(
        st.query_map([id], |row| {
            Ok(TimelineEntry {
                at: ts(row, 0)?,
                actor: row.get(1)?,
                action: row.get(2)?,
                state: named(row, 3)?,
                detail: row.get(4)?,
            })
        })
        .map_err(sql)?,
    )
}

// ---------------------------------------------------------------------------------------------
// Crews.

fn crew(row: &Row<'_>) -> rusqlite::Result<Crew> {
    let skills: String = row.get(2)?;
    Ok(Crew {
        id: row.get(0)?,
        name: row.get(1)?,
        skills: serde_json::from_str(&skills).unwrap_or_default(),
        lat: row.get(3)?,
        lon: row.get(4)?,
        shift_start_hour: row.get(5)?,
        shift_end_hour: row.get(6)?,
        speed_kmh: row.get(7)?,
        phone: row.get(8)?,
        simulated: row.get::<_, i64>(9)? != 0,
    })
}

const CREW_COLS: &str =
    "id, name, skills, lat, lon, shift_start_hour, shift_end_hour, speed_kmh, phone, simulated";

pub(in crate::sqlite) fn upsert_crew(conn: &Connection, c: &Crew) -> Result<()> {
    check::crew(c)?;
    conn.prepare_cached(&format!(
        "INSERT INTO crews ({CREW_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, skills = excluded.skills,
             lat = excluded.lat, lon = excluded.lon, shift_start_hour = excluded.shift_start_hour,
             shift_end_hour = excluded.shift_end_hour, speed_kmh = excluded.speed_kmh,
             phone = excluded.phone, simulated = excluded.simulated"
    ))
    .and_then(|mut st| {
        st.execute(params![
            c.id,
            c.name,
            serde_json::to_string(&c.skills).unwrap_or_else(|_| "[]".into()),
            c.lat,
            c.lon,
            c.shift_start_hour,
            c.shift_end_hour,
            c.speed_kmh,
            c.phone,
            i64::from(c.simulated),
        ])
    })
    .map_err(sql)?;
    Ok(())
}

pub(in crate::sqlite) fn get_crew(conn: &Connection, id: &str) -> Result<Option<Crew>> {
    conn.prepare_cached(&format!("SELECT {CREW_COLS} FROM crews WHERE id = ?1"))
        .and_then(|mut st| st.query_row([id], crew).optional())
        .map_err(sql)
}

pub(in crate::sqlite) fn list_crews(conn: &Connection) -> Result<Vec<Crew>> {
    let mut st = conn
        .prepare_cached(&format!("SELECT {CREW_COLS} FROM crews ORDER BY id"))
        .map_err(sql)?;
    collect(st.query_map([], crew).map_err(sql)?)
}

// ---------------------------------------------------------------------------------------------
// Audit log.

pub(in crate::sqlite) fn record_audit(conn: &Connection, e: &AuditEntry) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, role, action, status, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| st.execute(params![ms(e.at), e.actor, e.role, e.action, e.status, e.detail]))
    .map_err(sql)?;
    Ok(conn.last_insert_rowid())
}

pub(in crate::sqlite) fn list_audit(conn: &Connection, limit: u32) -> Result<Vec<AuditEntry>> {
    let mut st = conn
        .prepare_cached(
            "SELECT id, at, actor, role, action, status, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
        )
        .map_err(sql)?;
    collect(
        st.query_map([limit], |row| {
            Ok(AuditEntry {
                id: row.get(0)?,
                at: ts(row, 1)?,
                actor: row.get(2)?,
                role: row.get(3)?,
                action: row.get(4)?,
                status: row.get(5)?,
                detail: row.get(6)?,
            })
        })
        .map_err(sql)?,
    )
}
