//! Mapping PostgreSQL errors onto `StoreError`, and connection strings made safe to show.

use tokio_postgres::error::SqlState;

use crate::StoreError;

/// Maps an error from a statement to the kind a caller can act on, as the SQLite backend does:
/// a uniqueness violation is a `Conflict`, a missing referenced row `NotFound`, any other
/// integrity or data error (a NUL character in text, a number out of range) `Invalid`, the rest
/// `Backend`. Call sites that know which record it was say so with [`violated`].
pub(super) fn sql(e: tokio_postgres::Error) -> StoreError {
    let what = describe(&e);
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict(format!("record ({what})"))
        }
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => {
            StoreError::NotFound(format!("referenced record ({what})"))
        }
        // Class 23: integrity constraint violation; class 22: data exception.
        Some(c) if c.code().starts_with("23") || c.code().starts_with("22") => {
            StoreError::Invalid(what)
        }
        _ => StoreError::Backend(what),
    }
}

/// An error that is the backend's own, with what was being done.
pub(super) fn backend(doing: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("failed to {doing}: {}", describe(e)))
}

/// Which constraint of which kind a statement violated: `Some(name)` for a unique or foreign key
/// violation of the constraint (or unique index) `name`.
pub(super) enum Violation<'a> {
    Unique(&'a str),
    ForeignKey(&'a str),
}

pub(super) fn violated(e: &tokio_postgres::Error) -> Option<Violation<'_>> {
    let db = e.as_db_error()?;
    let name = db.constraint().unwrap_or("");
    match db.code() {
        c if *c == SqlState::UNIQUE_VIOLATION => Some(Violation::Unique(name)),
        c if *c == SqlState::FOREIGN_KEY_VIOLATION => Some(Violation::ForeignKey(name)),
        _ => None,
    }
}

/// The whole chain of an error: tokio-postgres prints only the outermost kind ("db error",
/// "error connecting to server"), the cause says what went wrong. A server error is shown as
/// its message and SQLSTATE, without the DETAIL line, which can quote the row's values (a
/// token digest, say).
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    chargeops_core::error::chain(e)
}

/// A connection string with any password taken out, fit for logs and error messages. Handles
/// URLs (`postgres://user:secret@host/db?password=...`) and key/value strings
/// (`host=... password='...'`).
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            return format!("{scheme}{}", redact_url_rest(rest));
        }
    }
    redact_key_value(url)
}

fn redact_url_rest(rest: &str) -> String {
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{user}@{hosts}")
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_owned(),
    };
    format!("{authority}{tail}")
}

fn redact_key_value(s: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut skipping_quoted = false;
    for word in s.split_whitespace() {
        if skipping_quoted {
            // Inside a quoted password with spaces: skip up to the closing quote.
            let closes = word.ends_with('\'') && !word.ends_with("\\'");
            skipping_quoted = !closes;
            continue;
        }
        let lower = word.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("password") {
            let value = value.trim_start();
            if value.starts_with('=') || value.is_empty() {
                let value = value.trim_start_matches('=');
                skipping_quoted =
                    value.starts_with('\'') && (value.len() < 2 || !value.ends_with('\''));
                continue;
            }
        }
        out.push(word);
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_taken_out() {
        for (url, want) in [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/test",
            ),
            (
                "postgres://ops:s3cr%40t@db.local:5432/chargeops",
                "postgres://ops@db.local:5432/chargeops",
            ),
            (
                "postgresql://ops:pw@h1,h2/db?sslmode=disable&password=pw2&application_name=x",
                "postgresql://ops@h1,h2/db?sslmode=disable&application_name=x",
            ),
            ("postgres://h/db?password=x", "postgres://h/db"),
            ("postgres://u:p@h", "postgres://u@h"),
            (
                "host=127.0.0.1 user=ops password=secret dbname=test",
                "host=127.0.0.1 user=ops dbname=test",
            ),
            (
                "host=h password='two words' dbname=test",
                "host=h dbname=test",
            ),
        ] {
            let got = redact_url(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("secret") && !got.contains("pw") && !got.contains("two"));
        }
    }
}
