//! The SQL of queue tickets.

use tokio_postgres::Row;

use chargeops_queue::{Ticket, TicketState};

use super::{Values, collect, get, ms, ms_opt, named, refs, uint, uint_opt};
use crate::check;
use crate::postgres::error::{Violation, sql, violated};
use crate::postgres::pool::{Db, Exec};
use crate::{Result, StoreError, TicketFilter};

const COLS: &str = "id, number, station_id, contact, state, order_key, created_at, called_at,
    charger_id, evse_id, connector_id, plug_by, charging_at, ended_at, initial_estimate_s, source,
    passes";

const ACTIVE: &str = "state IN ('waiting', 'called', 'charging')";

fn ticket(row: &Row) -> Result<Ticket> {
    Ok(Ticket {
        id: get(row, 0)?,
        number: get(row, 1)?,
        station_id: get(row, 2)?,
        contact: get(row, 3)?,
        state: named(row, 4, TicketState::parse)?,
        order_key: get(row, 5)?,
        created_at: get(row, 6)?,
        called_at: get(row, 7)?,
        charger_id: get(row, 8)?,
        evse_id: uint_opt(row, 9)?,
        connector_id: uint_opt(row, 10)?,
        plug_by: get(row, 11)?,
        charging_at: get(row, 12)?,
        ended_at: get(row, 13)?,
        initial_estimate_s: get(row, 14)?,
        source: get(row, 15)?,
        passes: uint(row, 16)?,
    })
}

fn truncated(t: &Ticket) -> Ticket {
    Ticket {
        created_at: ms(t.created_at),
        called_at: ms_opt(t.called_at),
        plug_by: ms_opt(t.plug_by),
        charging_at: ms_opt(t.charging_at),
        ended_at: ms_opt(t.ended_at),
        ..t.clone()
    }
}

fn conflict(t: &Ticket) -> StoreError {
    StoreError::Conflict(format!(
        "an active ticket for this contact at station {}",
        t.station_id
    ))
}

/// In a transaction. Tickets of one station are numbered one at a time: the station's row is
/// locked (against other ticket inserts only, not against sessions or chargers that refer to
/// it) while the next number is read and taken.
pub(in crate::postgres) async fn insert_ticket(
    db: &Db<'_, impl Exec>,
    t: &Ticket,
) -> Result<Ticket> {
    check::ticket(t)?;
    let station = db
        .query_opt(
            "SELECT 1 FROM stations WHERE id = $1 FOR NO KEY UPDATE",
            &[&t.station_id],
        )
        .await
        .map_err(sql)?;
    if station.is_none() {
        return Err(StoreError::NotFound(format!("station {}", t.station_id)));
    }
    let row = db
        .query_one(
            "SELECT coalesce(max(number), 0) + 1 FROM queue_tickets WHERE station_id = $1",
            &[&t.station_id],
        )
        .await
        .map_err(sql)?;
    let number: i64 = get(&row, 0)?;
    db.execute(
        &format!(
            "INSERT INTO queue_tickets ({COLS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ),
        &[
            &t.id,
            &number,
            &t.station_id,
            &t.contact,
            &t.state.as_str(),
            &t.order_key,
            &ms(t.created_at),
            &ms_opt(t.called_at),
            &t.charger_id,
            &t.evse_id.map(i64::from),
            &t.connector_id.map(i64::from),
            &ms_opt(t.plug_by),
            &ms_opt(t.charging_at),
            &ms_opt(t.ended_at),
            &t.initial_estimate_s,
            &t.source,
            &i64::from(t.passes),
        ],
    )
    .await
    .map_err(|e| match violated(&e) {
        Some(Violation::ForeignKey(_)) => StoreError::NotFound(format!("station {}", t.station_id)),
        Some(Violation::Unique("queue_tickets_pkey")) => {
            StoreError::Conflict(format!("ticket {}", t.id))
        }
        Some(Violation::Unique(_)) => conflict(t),
        None => sql(e),
    })?;
    Ok(Ticket {
        number,
        ..truncated(t)
    })
}

pub(in crate::postgres) async fn update_ticket(db: &Db<'_, impl Exec>, t: &Ticket) -> Result<()> {
    check::ticket(t)?;
    let n = db
        .execute(
            "UPDATE queue_tickets SET contact = $2, state = $3, order_key = $4, called_at = $5,
                 charger_id = $6, evse_id = $7, connector_id = $8, plug_by = $9,
                 charging_at = $10, ended_at = $11, initial_estimate_s = $12, passes = $13
             WHERE id = $1 AND station_id = $14 AND number = $15",
            &[
                &t.id,
                &t.contact,
                &t.state.as_str(),
                &t.order_key,
                &ms_opt(t.called_at),
                &t.charger_id,
                &t.evse_id.map(i64::from),
                &t.connector_id.map(i64::from),
                &ms_opt(t.plug_by),
                &ms_opt(t.charging_at),
                &ms_opt(t.ended_at),
                &t.initial_estimate_s,
                &i64::from(t.passes),
                &t.station_id,
                &t.number,
            ],
        )
        .await
        .map_err(|e| match violated(&e) {
            Some(Violation::Unique(_)) => conflict(t),
            _ => sql(e),
        })?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("ticket {}", t.id)));
    }
    Ok(())
}

pub(in crate::postgres) async fn get_ticket(
    db: &Db<'_, impl Exec>,
    id: &str,
) -> Result<Option<Ticket>> {
    db.query_opt(
        &format!("SELECT {COLS} FROM queue_tickets WHERE id = $1"),
        &[&id],
    )
    .await
    .map_err(sql)?
    .as_ref()
    .map(ticket)
    .transpose()
}

pub(in crate::postgres) async fn list_tickets(
    db: &Db<'_, impl Exec>,
    f: &TicketFilter,
) -> Result<Vec<Ticket>> {
    let mut wheres: Vec<String> = Vec::new();
    let mut values: Values = Vec::new();
    if let Some(s) = &f.station_id {
        values.push(Box::new(s.clone()));
        wheres.push(format!("station_id = ${}", values.len()));
    }
    match f.active {
        Some(true) => wheres.push(ACTIVE.into()),
        Some(false) => wheres.push(format!("NOT ({ACTIVE})")),
        None => {}
    }
    if let Some(since) = f.since {
        values.push(Box::new(ms(since)));
        wheres.push(format!("created_at >= ${}", values.len()));
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
    values.push(Box::new(i64::from(
        f.limit.unwrap_or(10_000).min(1_000_000),
    )));
    let q = format!(
        "SELECT {COLS} FROM queue_tickets {filter} ORDER BY {order} LIMIT ${}",
        values.len()
    );
    let rows = db.query(&q, &refs(&values)).await.map_err(sql)?;
    collect(rows, ticket)
}
