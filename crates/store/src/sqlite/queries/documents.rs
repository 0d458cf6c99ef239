//! Keyed JSON documents.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::sqlite::error::sql;
use crate::{Result, StoreError};

/// Longest accepted document body, bytes: these are records, not files.
const MAX_BODY: usize = 1 << 20;

pub(in crate::sqlite) fn put_document(
    conn: &Connection,
    kind: &str,
    id: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    if kind.is_empty() || id.is_empty() {
        return Err(StoreError::Invalid(
            "a document needs a kind and an id".into(),
        ));
    }
    if body.len() > MAX_BODY {
        return Err(StoreError::Invalid(format!(
            "document {kind}/{id} is {} bytes, more than {MAX_BODY}",
            body.len()
        )));
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(body).is_err() {
        return Err(StoreError::Invalid(format!(
            "document {kind}/{id} is not JSON"
        )));
    }
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
