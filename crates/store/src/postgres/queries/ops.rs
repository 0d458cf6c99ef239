//! The SQL of the operations loop: cases with their timeline, crews, the audit log.

use tokio_postgres::Row;

use chargeops_ops::{
    AuditEntry, Case, CaseKind, CaseState, Category, Crew, Priority, Source, TimelineEntry,
};

use super::{Values, collect, get, ms, ms_opt, named, refs, uint, uint_opt};
use crate::check;
use crate::postgres::error::{Violation, sql, violated};
use crate::postgres::pool::{Db, Exec};
use crate::{CaseFilter, Result, StoreError};

const CASE_COLS: &str = "id, kind, state, source, category, priority, station_id, charger_id,
    connector_id, title, description, error_code, caller_phone, crew_id, opened_at, state_since,
    last_seen_at, sla_due_at, sla_breached, resolved_at, closed_at, reopened, resolution_note,
    parts_used";

fn case(row: &Row) -> Result<Case> {
    Ok(Case {
        id: get(row, 0)?,
        kind: named(row, 1, CaseKind::parse)?,
        state: named(row, 2, CaseState::parse)?,
        source: named(row, 3, Source::parse)?,
        category: named(row, 4, Category::parse)?,
        priority: named(row, 5, Priority::parse)?,
        station_id: get(row, 6)?,
        charger_id: get(row, 7)?,
        connector_id: uint_opt(row, 8)?,
        title: get(row, 9)?,
        description: get(row, 10)?,
        error_code: get(row, 11)?,
        caller_phone: get(row, 12)?,
        crew_id: get(row, 13)?,
        opened_at: get(row, 14)?,
        state_since: get(row, 15)?,
        last_seen_at: get(row, 16)?,
        sla_due_at: get(row, 17)?,
        sla_breached: get(row, 18)?,
        resolved_at: get(row, 19)?,
        closed_at: get(row, 20)?,
        reopened: uint(row, 21)?,
        resolution_note: get(row, 22)?,
        parts_used: get(row, 23)?,
    })
}

/// The reference a case's foreign key violation was about, named as the SQLite backend names it.
fn missing_reference(c: &Case, constraint: &str) -> StoreError {
    match constraint {
        "cases_charger_fk" => {
            StoreError::NotFound(format!("charger {}", c.charger_id.as_deref().unwrap_or("")))
        }
        "cases_crew_fk" => {
            StoreError::NotFound(format!("crew {}", c.crew_id.as_deref().unwrap_or("")))
        }
        _ => StoreError::NotFound(format!("station {}", c.station_id)),
    }
}

/// The 23 columns after `id`, in `CASE_COLS` order.
fn case_values(c: &Case) -> Values {
    vec![
        Box::new(c.kind.as_str()),
        Box::new(c.state.as_str()),
        Box::new(c.source.as_str()),
        Box::new(c.category.as_str()),
        Box::new(c.priority.as_str()),
        Box::new(c.station_id.clone()),
        Box::new(c.charger_id.clone()),
        Box::new(c.connector_id.map(i64::from)),
        Box::new(c.title.clone()),
        Box::new(c.description.clone()),
        Box::new(c.error_code.clone()),
        Box::new(c.caller_phone.clone()),
        Box::new(c.crew_id.clone()),
        Box::new(ms(c.opened_at)),
        Box::new(ms(c.state_since)),
        Box::new(ms(c.last_seen_at)),
        Box::new(ms(c.sla_due_at)),
        Box::new(c.sla_breached),
        Box::new(ms_opt(c.resolved_at)),
        Box::new(ms_opt(c.closed_at)),
        Box::new(i64::from(c.reopened)),
        Box::new(c.resolution_note.clone()),
        Box::new(c.parts_used.clone()),
    ]
}

async fn append_timeline(
    db: &Db<'_, impl Exec>,
    case_id: i64,
    entries: &[TimelineEntry],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let ats: Vec<_> = entries.iter().map(|e| ms(e.at)).collect();
    let actors: Vec<&str> = entries.iter().map(|e| e.actor.as_str()).collect();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    let states: Vec<&str> = entries.iter().map(|e| e.state.as_str()).collect();
    let details: Vec<&str> = entries.iter().map(|e| e.detail.as_str()).collect();
    // WITH ORDINALITY keeps the entries' order in their ids, which the timeline is read by.
    db.execute(
        "INSERT INTO case_timeline (case_id, at, actor, action, state, detail)
         SELECT $1::bigint, e.at, e.actor, e.action, e.state, e.detail
         FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[])
             WITH ORDINALITY AS e (at, actor, action, state, detail, n)
         ORDER BY e.n",
        &[&case_id, &ats, &actors, &actions, &states, &details],
    )
    .await
    .map_err(sql)?;
    Ok(())
}

fn truncated(c: &Case) -> Case {
    Case {
        opened_at: ms(c.opened_at),
        state_since: ms(c.state_since),
        last_seen_at: ms(c.last_seen_at),
        sla_due_at: ms(c.sla_due_at),
        resolved_at: ms_opt(c.resolved_at),
        closed_at: ms_opt(c.closed_at),
        ..c.clone()
    }
}

/// In a transaction: the case and its first timeline entries commit together.
pub(in crate::postgres) async fn insert_case(
    db: &Db<'_, impl Exec>,
    c: &Case,
    entries: &[TimelineEntry],
) -> Result<Case> {
    check::case(c)?;
    let values = case_values(c);
    let row = db
        .query_one(
            "INSERT INTO cases (kind, state, source, category, priority, station_id, charger_id,
                 connector_id, title, description, error_code, caller_phone, crew_id, opened_at,
                 state_since, last_seen_at, sla_due_at, sla_breached, resolved_at, closed_at,
                 reopened, resolution_note, parts_used)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22, $23)
             RETURNING id",
            &refs(&values),
        )
        .await
        .map_err(|e| match violated(&e) {
            Some(Violation::ForeignKey(name)) => missing_reference(c, name),
            _ => sql(e),
        })?;
    let id = get(&row, 0)?;
    append_timeline(db, id, entries).await?;
    Ok(Case { id, ..truncated(c) })
}

/// In a transaction: the changed case and its new timeline entries commit together.
pub(in crate::postgres) async fn update_case(
    db: &Db<'_, impl Exec>,
    c: &Case,
    entries: &[TimelineEntry],
) -> Result<()> {
    check::case(c)?;
    let mut values = case_values(c);
    values.push(Box::new(c.id));
    let n = db
        .execute(
            "UPDATE cases SET kind = $1, state = $2, source = $3, category = $4, priority = $5,
                 station_id = $6, charger_id = $7, connector_id = $8, title = $9,
                 description = $10, error_code = $11, caller_phone = $12, crew_id = $13,
                 opened_at = $14, state_since = $15, last_seen_at = $16, sla_due_at = $17,
                 sla_breached = $18, resolved_at = $19, closed_at = $20, reopened = $21,
                 resolution_note = $22, parts_used = $23
             WHERE id = $24",
            &refs(&values),
        )
        .await
        .map_err(|e| match violated(&e) {
            Some(Violation::ForeignKey(name)) => missing_reference(c, name),
            _ => sql(e),
        })?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("case {}", c.id)));
    }
    append_timeline(db, c.id, entries).await
}

pub(in crate::postgres) async fn get_case(db: &Db<'_, impl Exec>, id: i64) -> Result<Option<Case>> {
    db.query_opt(
        &format!("SELECT {CASE_COLS} FROM cases WHERE id = $1"),
        &[&id],
    )
    .await
    .map_err(sql)?
    .as_ref()
    .map(case)
    .transpose()
}

pub(in crate::postgres) async fn list_cases(
    db: &Db<'_, impl Exec>,
    f: &CaseFilter,
) -> Result<Vec<Case>> {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Values = Vec::new();
    let mut add = |column: &str, v: Box<dyn tokio_postgres::types::ToSql + Sync + Send>| {
        values.push(v);
        clauses.push(format!("{column} ${}", values.len()));
    };
    if let Some(v) = &f.charger_id {
        add("charger_id =", Box::new(v.clone()));
    }
    if let Some(v) = &f.station_id {
        add("station_id =", Box::new(v.clone()));
    }
    if let Some(v) = &f.crew_id {
        add("crew_id =", Box::new(v.clone()));
    }
    if let Some(v) = f.kind {
        add("kind =", Box::new(v.as_str()));
    }
    if let Some(v) = f.since {
        add("opened_at >=", Box::new(ms(v)));
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
    let limit = f.limit.map_or("ALL".to_owned(), |n| n.to_string());
    let text = format!(
        "SELECT {CASE_COLS} FROM cases {filter} ORDER BY opened_at DESC, id DESC LIMIT {limit}"
    );
    let rows = db.query(&text, &refs(&values)).await.map_err(sql)?;
    collect(rows, case)
}

pub(in crate::postgres) async fn case_timeline(
    db: &Db<'_, impl Exec>,
    id: i64,
) -> Result<Vec<TimelineEntry>> {
    let rows = db
        .query(
            "SELECT at, actor, action, state, detail FROM case_timeline
             WHERE case_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .map_err(sql)?;
    rows.iter()
        .map(|row| {
            Ok(TimelineEntry {
                at: get(row, 0)?,
                actor: get(row, 1)?,
                action: get(row, 2)?,
                state: named(row, 3, CaseState::parse)?,
                detail: get(row, 4)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Crews.

const CREW_COLS: &str =
    "id, name, skills, lat, lon, shift_start_hour, shift_end_hour, speed_kmh, phone, simulated";

fn crew(row: &Row) -> Result<Crew> {
    Ok(Crew {
        id: get(row, 0)?,
        name: get(row, 1)?,
        skills: get(row, 2)?,
        lat: get(row, 3)?,
        lon: get(row, 4)?,
        shift_start_hour: uint(row, 5)?,
        shift_end_hour: uint(row, 6)?,
        speed_kmh: get(row, 7)?,
        phone: get(row, 8)?,
        simulated: get(row, 9)?,
    })
}

pub(in crate::postgres) async fn upsert_crew(db: &Db<'_, impl Exec>, c: &Crew) -> Result<()> {
    check::crew(c)?;
    db.execute(
        &format!(
            "INSERT INTO crews ({CREW_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, skills = excluded.skills,
                 lat = excluded.lat, lon = excluded.lon,
                 shift_start_hour = excluded.shift_start_hour,
                 shift_end_hour = excluded.shift_end_hour, speed_kmh = excluded.speed_kmh,
                 phone = excluded.phone, simulated = excluded.simulated"
        ),
        &[
            &c.id,
            &c.name,
            &c.skills,
            &c.lat,
            &c.lon,
            &i64::from(c.shift_start_hour),
            &i64::from(c.shift_end_hour),
            &c.speed_kmh,
            &c.phone,
            &c.simulated,
        ],
    )
    .await
    .map_err(sql)?;
    Ok(())
}

pub(in crate::postgres) async fn get_crew(
    db: &Db<'_, impl Exec>,
    id: &str,
) -> Result<Option<Crew>> {
    db.query_opt(
        &format!("SELECT {CREW_COLS} FROM crews WHERE id = $1"),
        &[&id],
    )
    .await
    .map_err(sql)?
    .as_ref()
    .map(crew)
    .transpose()
}

pub(in crate::postgres) async fn list_crews(db: &Db<'_, impl Exec>) -> Result<Vec<Crew>> {
    let rows = db
        .query(&format!("SELECT {CREW_COLS} FROM crews ORDER BY id"), &[])
        .await
        .map_err(sql)?;
    collect(rows, crew)
}

// ---------------------------------------------------------------------------------------------
// Audit log.

pub(in crate::postgres) async fn record_audit(
    db: &Db<'_, impl Exec>,
    e: &AuditEntry,
) -> Result<i64> {
    let row = db
        .query_one(
            "INSERT INTO audit_log (at, actor, role, action, status, detail)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &ms(e.at),
                &e.actor,
                &e.role,
                &e.action,
                &i64::from(e.status),
                &e.detail,
            ],
        )
        .await
        .map_err(sql)?;
    get(&row, 0)
}

pub(in crate::postgres) async fn list_audit(
    db: &Db<'_, impl Exec>,
    limit: u32,
) -> Result<Vec<AuditEntry>> {
    let rows = db
        .query(
            "SELECT id, at, actor, role, action, status, detail FROM audit_log
             ORDER BY id DESC LIMIT $1",
            &[&i64::from(limit)],
        )
        .await
        .map_err(sql)?;
    rows.iter()
        .map(|row| {
            Ok(AuditEntry {
                id: get(row, 0)?,
                at: get(row, 1)?,
                actor: get(row, 2)?,
                role: get(row, 3)?,
                action: get(row, 4)?,
                status: uint(row, 5)?,
                detail: get(row, 6)?,
            })
        })
        .collect()
}
