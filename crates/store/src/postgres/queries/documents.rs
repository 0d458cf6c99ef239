//! Keyed JSON documents.

use chrono::{DateTime, Utc};

use super::{get, ms};
use crate::Result;
use crate::check;
use crate::postgres::error::sql;
use crate::postgres::pool::{Db, Exec};

pub(in crate::postgres) async fn put_document(
    db: &Db<'_, impl Exec>,
    kind: &str,
    id: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    check::document(kind, id, body)?;
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
