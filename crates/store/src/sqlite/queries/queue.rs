//! The SQL of queue tickets.

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use chargeops_queue::{Ticket, TicketState};

use super::{Named, collect, ms, ms_opt, named, truncate_ms, ts, ts_opt};
use crate::check;
use crate::sqlite::error::{is_foreign_key, is_unique, sql};
use crate::{Result, StoreError, TicketFilter};

impl Named for TicketState {
    fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}

const COLS: &str = "id, number, station_id, contact, state, order_key, created_at, called_at,
    charger_id, evse_id, connector_id, plug_by, charging_at, ended_at, initial_estimate_s, source,
    passes";

const ACTIVE: &str = "state IN ('waiting', 'called', 'charging')";

fn ticket(row: &Row<'_>) -> rusqlite::Result<Ticket> {
    Ok(Ticket {
        id: row.get(0)?,
        number: row.get(1)?,
        station_id: row.get(2)?,
        contact: row.get(3)?,
        state: named(row, 4)?,
        order_key: row.get(5)?,
        created_at: ts(row, 6)?,
        called_at: ts_opt(row, 7)?,
        charger_id: row.get(8)?,
        evse_id: row.get(9)?,
        connector_id: row.get(10)?,
        plug_by: ts_opt(row, 11)?,
        charging_at: ts_opt(row, 12)?,
        ended_at: ts_opt(row, 13)?,
        initial_estimate_s: row.get(14)?,
        source: row.get(15)?,
        passes: row.get(16)?,
    })
}

fn truncated(t: &Ticket) -> Ticket {
    Ticket {
        created_at: truncate_ms(t.created_at),
        called_at: t.called_at.map(truncate_ms),
        plug_by: t.plug_by.map(truncate_ms),
        charging_at: t.charging_at.map(truncate_ms),
        ended_at: t.ended_at.map(truncate_ms),
        ..t.clone()
    }
}

fn conflict(t: &Ticket) -> StoreError {
    StoreError::Conflict(format!(
        "an active ticket for this contact at station {}",
        t.station_id
    ))
}

pub(in crate::sqlite) fn insert_ticket(conn: &Connection, t: &Ticket) -> Result<Ticket> {
    check::ticket(t)?;
    let number: i64 = conn
        .query_row(
            "SELECT ifnull(max(number), 0) + 1 FROM queue_tickets WHERE station_id = ?1",
            [&t.station_id],
            |r| r.get(0),
        )
        .map_err(sql)?;
    conn.prepare_cached(
        "INSERT INTO queue_tickets (id, number, station_id, contact, state, order_key, created_at,
             called_at, charger_id, evse_id, connector_id, plug_by, charging_at, ended_at,
             initial_estimate_s, source, passes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )
    .and_then(|mut st| {
        st.execute(params![
            t.id,
            number,
            t.station_id,
            t.contact,
            t.state.as_str(),
            t.order_key,
            ms(t.created_at),
            ms_opt(t.called_at),
            t.charger_id,
            t.evse_id,
            t.connector_id,
            ms_opt(t.plug_by),
            ms_opt(t.charging_at),
            ms_opt(t.ended_at),
            t.initial_estimate_s,
            t.source,
            t.passes,
        ])
    })
    .map_err(|e| {
        if is_foreign_key(&e) {
            StoreError::NotFound(format!("station {}", t.station_id))
        } else if is_unique(&e) {
            let same_id = conn
                .query_row("SELECT 1 FROM queue_tickets WHERE id = ?1", [&t.id], |_| {
                    Ok(())
                })
                .optional()
                .ok()
                .flatten()
                .is_some();
            if same_id {
                StoreError::Conflict(format!("ticket {}", t.id))
            } else {
                conflict(t)
            }
        } else {
            sql(e)
        }
    })?;
    Ok(Ticket {
        number,
        ..truncated(t)
    })
}

pub(in crate::sqlite) fn update_ticket(conn: &Connection, t: &Ticket) -> Result<()> {
    check::ticket(t)?;
    let n = conn
        .prepare_cached(
            "UPDATE queue_tickets SET contact = ?2, state = ?3, order_key = ?4, called_at = ?5,
                 charger_id = ?6, evse_id = ?7, connector_id = ?8, plug_by = ?9, charging_at = ?10,
                 ended_at = ?11, initial_estimate_s = ?12, passes = ?13
             WHERE id = ?1 AND station_id = ?14 AND number = ?15",
        )
        .and_then(|mut st| {
            st.execute(params![
                t.id,
                t.contact,
                t.state.as_str(),
                t.order_key,
                ms_opt(t.called_at),
                t.charger_id,
                t.evse_id,
                t.connector_id,
                ms_opt(t.plug_by),
                ms_opt(t.charging_at),
                ms_opt(t.ended_at),
                t.initial_estimate_s,
                t.passes,
                t.station_id,
                t.number,
            ])
        })
        .map_err(|e| if is_unique(&e) { conflict(t) } else { sql(e) })?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("ticket {}", t.id)));
    }
    Ok(())
}

pub(in crate::sqlite) fn get_ticket(conn: &Connection, id: &str) -> Result<Option<Ticket>> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM queue_tickets WHERE id = ?1"))
        .and_then(|mut st| st.query_row([id], ticket).optional())
        .map_err(sql)
}

pub(in crate::sqlite) fn list_tickets(conn: &Connection, f: &TicketFilter) -> Result<Vec<Ticket>> {
    use rusqlite::types::Value as V;
    let mut wheres: Vec<String> = Vec::new();
    let mut values: Vec<V> = Vec::new();
    if let Some(s) = &f.station_id {
        values.push(V::Text(s.clone()));
        wheres.push(format!("station_id = ?{}", values.len()));
    }
    match f.active {
        Some(true) => wheres.push(ACTIVE.into()),
        Some(false) => wheres.push(format!("NOT ({ACTIVE})")),
        None => {}
    }
    if let Some(since) = f.since {
        values.push(V::Integer(ms(since)));
        wheres.push(format!("created_at >= ?{}", values.len()));
    }
    let filter = if wheres.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wheres.join(" AND "))
    };
    let order = if f.active == Some(true) {
        "station_id, order_key, number"
    } else {
        "created_at DESC, number DESC"
    };
    values.push(V::Integer(i64::from(
        f.limit.unwrap_or(10_000).min(1_000_000),
    )));
    let q = format!(
        "SELECT {COLS} FROM queue_tickets {filter} ORDER BY {order} LIMIT ?{}",
        values.len()
    );
    let mut st = conn.prepare_cached(&q).map_err(sql)?;
    let rows = st
        .query_map(params_from_iter(values), ticket)
        .map_err(sql)?;
    collect(rows)
}
