//! Timestamps as OCPP carries them: RFC 3339 strings.
//!
//! The specifications ask for RFC 3339 with an offset, but chargers in the field also send
//! local-looking timestamps without one. Rejecting them would take those chargers offline
//! over a formatting detail, so a timestamp without an offset is read as UTC. The schema
//! validator uses the same [`parse`], so what it accepts the typed layer can read.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Parses an RFC 3339 timestamp with any offset, or without one (read as UTC).
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    // Cheap shape check first: this runs for every timestamp of every message and most
    // invalid strings are short or obviously not dates.
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// Formats as RFC 3339 in UTC with a `Z`, keeping sub-second digits only when present.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// `#[serde(with = "crate::time::utc")]` for a required timestamp.
pub mod utc {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).ok_or_else(|| D::Error::custom(format!("invalid timestamp {s:?}")))
    }
}

/// `#[serde(default, with = "crate::time::utc_opt")]` for an optional timestamp.
pub mod utc_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match <Option<String>>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("invalid timestamp {s:?}"))),
        }
    }
}
