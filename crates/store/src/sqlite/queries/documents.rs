//! Keyed JSON documents.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::Result;
use crate::check;
use crate::sqlite::error::sql;

pub(in crate::sqlite) fn put_document(
    conn: &Connection,
    kind: &str,
    id: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    check::document(kind, id, body)?;
    conn.prepare_cached(
        "INSERT INTO documents (kind, id, body, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
    )
    .and_then(|mut st| st.execute(params![kind, id, body, now.timestamp_millis()]))
    .map_err(sql)?;
    Ok(())
}

/// Deletes a document; `true` when there was one.
pub(in crate::sqlite) fn delete_document(conn: &Connection, kind: &str, id: &str) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM documents WHERE kind = ?1 AND id = ?2")
        .and_then(|mut st| st.execute(params![kind, id]))
        .map_err(sql)?;
    Ok(n > 0)
}

/// Every document of a kind, `(id, body)` in id order.
pub(in crate::sqlite) fn list_documents(
    conn: &Connection,
    kind: &str,
) -> Result<Vec<(String, String)>> {
    let mut st = conn
        .prepare_cached("SELECT id, body FROM documents WHERE kind = ?1 ORDER BY id")
        .map_err(sql)?;
    let rows = st
        .query_map(params![kind], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
}
