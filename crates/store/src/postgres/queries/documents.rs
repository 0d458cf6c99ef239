//! Keyed JSON documents.

use chrono::{DateTime, Utc};

use super::{get, ms};
use crate::postgres::error::sql;
use crate::postgres::pool::{Db, Exec};
use crate::{Result, StoreError};

/// Longest accepted document body, bytes: these are records, not files.
const MAX_BODY: usize = 1 << 20;

pub(in crate::postgres) async fn put_document(
    db: &Db<'_, impl Exec>,
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
    db.execute(
        "INSERT INTO documents (kind, id, body, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        &[&kind, &id, &body, &ms(now)],
    )
    .await
    .map_err(sql)?;
    Ok(())
}

/// Deletes a document; `true` when there was one.
pub(in crate::postgres) async fn delete_document(
    db: &Db<'_, impl Exec>,
    kind: &str,
    id: &str,
) -> Result<bool> {
    let n = db
        .execute(
            "DELETE FROM documents WHERE kind = $1 AND id = $2",
            &[&kind, &id],
        )
        .await
        .map_err(sql)?;
    Ok(n > 0)
}

/// Every document of a kind, `(id, body)` in id order.
pub(in crate::postgres) async fn list_documents(
    db: &Db<'_, impl Exec>,
    kind: &str,
) -> Result<Vec<(String, String)>> {
    let rows = db
        .query(
            "SELECT id, body FROM documents WHERE kind = $1 ORDER BY id",
            &[&kind],
        )
        .await
        .map_err(sql)?;
    rows.iter().map(|r| Ok((get(r, 0)?, get(r, 1)?))).collect()
}
