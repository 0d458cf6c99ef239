//! The response envelope and status codes of OCPI 2.2.1, and the token header.
//!
//! A request that reaches the OCPI layer is answered with an envelope whose `status_code` says
//! how it went (1xxx success, 2xxx the client's fault, 3xxx ours); the HTTP status stays 200
//! for those, except where the standard names one: 401 for a token it does not know, 404 for a
//! GET of an object that does not exist, 400 for a body that is not JSON.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// An OCPI status code (four digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StatusCode(pub u16);

impl StatusCode {
    pub const SUCCESS: StatusCode = StatusCode(1000);
    pub const CLIENT_ERROR: StatusCode = StatusCode(2000);
    pub const INVALID_PARAMETERS: StatusCode = StatusCode(2001);
    pub const NOT_ENOUGH_INFORMATION: StatusCode = StatusCode(2002);
    pub const UNKNOWN_LOCATION: StatusCode = StatusCode(2003);
    pub const UNKNOWN_TOKEN: StatusCode = StatusCode(2004);
    pub const SERVER_ERROR: StatusCode = StatusCode(3000);
    pub const UNABLE_TO_USE_CLIENT_API: StatusCode = StatusCode(3001);
    pub const UNSUPPORTED_VERSION: StatusCode = StatusCode(3002);
    pub const NO_MATCHING_ENDPOINTS: StatusCode = StatusCode(3003);

    pub fn is_success(self) -> bool {
        (1000..2000).contains(&self.0)
    }
}

/// An answer in the OCPI envelope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope<T: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    pub status_code: StatusCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// RFC 3339 in UTC, as the standard's DateTime type.
    pub timestamp: String,
}

/// The standard's DateTime: UTC, seconds (fractions allowed), a `Z`.
pub fn datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl<T: Serialize> Envelope<T> {
    pub fn ok(data: T, now: DateTime<Utc>) -> Envelope<T> {
        Envelope {
            data: Some(data),
            status_code: StatusCode::SUCCESS,
            status_message: Some("Success".to_owned()),
            timestamp: datetime(now),
        }
    }
}

impl Envelope<()> {
    /// An answer carrying no data: an error, or a success with nothing to return.
    pub fn status(code: StatusCode, message: impl Into<String>, now: DateTime<Utc>) -> Self {
        Envelope {
            data: None,
            status_code: code,
            status_message: Some(message.into()),
            timestamp: datetime(now),
        }
    }
}

/// The credentials token of an `Authorization` header: `Token <base64 of the token>` as 2.2.1
/// has it, or the token itself as 2.1.1 peers send it. `None` when there is none.
pub fn token_of(authorization: Option<&str>) -> Option<String> {
    let rest = authorization?.trim().strip_prefix("Token ")?.trim();
    if rest.is_empty() {
        return None;
    }
    let decoded = B64
        .decode(rest.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
    Some(decoded.unwrap_or_else(|| rest.to_owned()))
}

/// The header value that carries `token` to a 2.2.1 peer.
pub fn authorization(token: &str) -> String {
    format!("Token {}", B64.encode(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn envelopes_are_spelled_as_the_standard() {
        let now = Utc.with_ymd_and_hms(2027, 2, 1, 8, 0, 0).unwrap();
        let ok = serde_json::to_value(Envelope::ok(vec![1, 2], now)).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"data": [1, 2], "status_code": 1000, "status_message": "Success",
                               "timestamp": "2027-02-01T08:00:00Z"})
        );
        let e = serde_json::to_value(Envelope::status(
            StatusCode::UNKNOWN_LOCATION,
            "no such location",
            now,
        ))
        .unwrap();
        assert_eq!(e["status_code"], 2003);
        assert!(e.get("data").is_none());
        assert!(!StatusCode::INVALID_PARAMETERS.is_success());
    }

    #[test]
    fn tokens_in_both_spellings() {
        let header = authorization("a-token-123");
        assert_eq!(header, "Token YS10b2tlbi0xMjM=");
        assert_eq!(token_of(Some(&header)).as_deref(), Some("a-token-123"));
        // A 2.1.1 peer sends the token as it is; "plain" is not base64 of printable text.
        assert_eq!(
            token_of(Some("Token plain-token")).as_deref(),
            Some("plain-token")
        );
        assert_eq!(token_of(Some("Bearer x")), None);
        assert_eq!(token_of(Some("Token ")), None);
        assert_eq!(token_of(None), None);
    }
}
