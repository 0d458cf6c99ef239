//! The WebSocket upgrade: charger identity from the path, HTTP Basic credentials (OCPP security
//! profiles 1 and 2), the client certificate's identity (profile 3), the refusal of plain
//! connections when TLS is required, the registration policy for unknown chargers, and
//! subprotocol negotiation.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use chargeops_core::secret::{hash_secret, verify_secret};
use chargeops_core::{Charger, Registration, Station};
use chargeops_ocpp::Version;
use chargeops_store::ErrorKind;

use crate::connection;
use crate::metrics::Metrics;
use crate::tls::{CertIdentity, TlsPeer};
use crate::{Gateway, RegistrationPolicy, UNASSIGNED_STATION};

/// OCPP 2.0.1 caps the charging station identity at 48 characters; we hold 1.6 chargers to the
/// same. Only characters that need no escaping in a URL path are allowed, so an id can never
/// smuggle a path segment (`..`, `/`) into logs, file names or URLs built from it.
pub fn valid_charger_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 48
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'*'))
        && !id.contains("..")
}

/// `/ocpp/a/b` and friends: a charger id never spans path segments.
pub(crate) async fn bad_path(State(gw): State<Arc<Gateway>>) -> Response {
    refuse(&gw, StatusCode::BAD_REQUEST, "invalid charger id")
}

pub(crate) async fn missing_id() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "charger id missing from the path: use /ocpp/{chargerId}",
    )
        .into_response()
}

fn refuse(gw: &Gateway, status: StatusCode, why: &'static str) -> Response {
    Metrics::inc(&gw.metrics.upgrades_rejected_total);
    let mut resp = (status, why).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"chargeops\""),
        );
    }
    resp
}

/// Credentials from `Authorization: Basic base64(id:password)`; the username must be the id.
fn basic_password(headers: &HeaderMap, charger_id: &str) -> Result<Option<String>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or(())?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (user, password) = decoded.split_once(':').ok_or(())?;
    if user != charger_id {
        return Err(());
    }
    Ok(Some(password.to_owned()))
}

/// The password of well-formed Basic credentials whose user is `id`, for devices of other kinds
/// that authenticate the way chargers do (a mobile unit's tracker); `None` when they are
/// missing, malformed or name another user.
pub fn basic_password_of(headers: &HeaderMap, id: &str) -> Option<String> {
    basic_password(headers, id).ok().flatten()
}

/// The upgrade's credential check for a registered charger, for the other interfaces a
/// charger's own device speaks (a charging robot's position reports): Basic credentials must be
/// present, their user must be the charger id and, when the charger has a password, the password
/// must match it. One check, so a robot is who it says on every channel alike.
pub fn charger_credentials_ok(headers: &HeaderMap, charger: &Charger) -> bool {
    match basic_password(headers, &charger.id) {
        Ok(Some(password)) => charger
            .password_hash
            .as_ref()
            .is_none_or(|hash| verify_secret(&password, hash)),
        Ok(None) | Err(()) => false,
    }
}

/// Where an upgrade request came from: the peer's address and, on the TLS listener, what its
/// client certificate says (`None` on the plain listener).
pub(crate) struct Peer {
    addr: Option<SocketAddr>,
    tls: Option<CertIdentity>,
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Each listener puts its own connect info on its requests (see `tls::TlsPeer`).
        if let Some(ConnectInfo(tls)) = parts.extensions.get::<ConnectInfo<TlsPeer>>() {
            return Ok(Peer {
                addr: Some(tls.addr),
                tls: Some(tls.identity.clone()),
            });
        }
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        Ok(Peer { addr, tls: None })
    }
}

/// What a connection's client certificate decides about a charger id at the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertDecision {
    /// No certificate: Basic credentials decide, as on a plain connection.
    Basic,
    /// The certificate's CommonName is this charger id: authenticated, no password needed.
    Authenticated,
    /// A verified certificate naming another charger, or no one: refused, whatever the
    /// password, since a charger presenting another's certificate is not who it claims.
    Refused,
}

pub(crate) fn cert_decision(identity: &CertIdentity, charger_id: &str) -> CertDecision {
    match identity {
        CertIdentity::None => CertDecision::Basic,
        CertIdentity::Named(name) if **name == *charger_id => CertDecision::Authenticated,
        CertIdentity::Named(_) | CertIdentity::Unnamed => CertDecision::Refused,
    }
}

pub(crate) async fn upgrade(
    State(gw): State<Arc<Gateway>>,
    Path(charger_id): Path<String>,
    peer_info: Peer,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let peer = peer_info.addr.map(|addr| addr.to_string());
    if !valid_charger_id(&charger_id) {
        tracing::warn!(
            peer,
            id_len = charger_id.len(),
            "refused upgrade: invalid charger id"
        );
        return refuse(&gw, StatusCode::BAD_REQUEST, "invalid charger id");
    }
    let by_certificate = match &peer_info.tls {
        None if gw.config.require_tls => {
            tracing::warn!(
                charger_id,
                peer,
                "refused upgrade: OCPP without TLS is not allowed here"
            );
            return refuse(
                &gw,
                StatusCode::FORBIDDEN,
                "OCPP requires TLS on this server: connect with wss:// (security profile 2 or 3)",
            );
        }
        None => false,
        Some(identity) => match cert_decision(identity, &charger_id) {
            CertDecision::Basic => false,
            CertDecision::Authenticated => {
                tracing::debug!(
                    charger_id,
                    peer,
                    "charger authenticated by client certificate"
                );
                true
            }
            CertDecision::Refused => {
                let certificate = match identity {
                    CertIdentity::Named(name) => Some(name.as_ref()),
                    CertIdentity::None | CertIdentity::Unnamed => None,
                };
                tracing::warn!(
                    charger_id,
                    peer,
                    certificate,
                    "refused upgrade: client certificate is not for this charger"
                );
                return refuse(
                    &gw,
                    StatusCode::FORBIDDEN,
                    "client certificate does not match the charger id",
                );
            }
        },
    };
    let password = match basic_password(&headers, &charger_id) {
        Ok(p) => p,
        Err(()) => {
            tracing::warn!(
                charger_id,
                peer,
                "refused upgrade: malformed basic credentials"
            );
            return refuse(&gw, StatusCode::UNAUTHORIZED, "malformed credentials");
        }
    };
    let charger = match gw.store.get_charger(&charger_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(charger_id, error = %e, "charger lookup failed");
            return refuse(&gw, StatusCode::SERVICE_UNAVAILABLE, "storage unavailable");
        }
    };
    let charger = match charger {
        Some(c) => {
            // A charger that proved its identity with a certificate needs no password.
            if let Some(hash) = c.password_hash.as_ref().filter(|_| !by_certificate) {
                match &password {
                    Some(p) if verify_secret(p, hash) => {}
                    _ => {
                        tracing::warn!(
                            charger_id,
                            peer,
                            "refused upgrade: wrong or missing password"
                        );
                        return refuse(&gw, StatusCode::UNAUTHORIZED, "wrong credentials");
                    }
                }
            }
            c
        }
        None => match register_unknown(&gw, &charger_id, password.as_deref()).await {
            Ok(c) => c,
            Err(resp) => return resp,
        },
    };

    // Subprotocol negotiation: pick ours in order of preference. When the charger offers none
    // we support, the OCPP-J spec has the server complete the handshake without a
    // Sec-WebSocket-Protocol header and close the connection at once.
    let ws = ws
        .protocols([Version::V201.subprotocol(), Version::V16.subprotocol()])
        // The buffer each connection reads the socket into, held for the connection's life: OCPP
        // frames are mostly a few hundred bytes (a larger one is read in several chunks), and
        // at 628,700 connections every KiB here is 600 MiB.
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(gw.config.max_frame_bytes * 4)
        .max_message_size(gw.config.max_frame_bytes)
        .max_frame_size(gw.config.max_frame_bytes);
    let version = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Version::from_subprotocol);
    ws.on_upgrade(move |socket| async move {
        match version {
            Some(version) => connection::run(gw, charger, version, socket, peer).await,
            None => connection::refuse_subprotocol(gw, charger.id, socket, peer).await,
        }
    })
}

async fn register_unknown(
    gw: &Gateway,
    charger_id: &str,
    password: Option<&str>,
) -> Result<Charger, Response> {
    let registration = match gw.config.registration {
        RegistrationPolicy::Closed => {
            tracing::warn!(
                charger_id,
                "refused upgrade: unknown charger (registration closed)"
            );
            return Err(refuse(gw, StatusCode::NOT_FOUND, "unknown charger"));
        }
        RegistrationPolicy::Open => Registration::Accepted,
        RegistrationPolicy::Pending => Registration::Pending,
    };
    if let Err(e) = ensure_unassigned_station(gw).await {
        tracing::error!(error = %e, "could not create the unassigned station");
        return Err(refuse(
            gw,
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unavailable",
        ));
    }
    let charger = Charger {
        id: charger_id.to_owned(),
        station_id: UNASSIGNED_STATION.to_owned(),
        protocol: None,
        vendor: None,
        model: None,
        serial_number: None,
        firmware_version: None,
        registration,
        // Trust on first use: the password the charger presents now is the one it must keep.
        password_hash: password.map(hash_secret),
        created_at: gw.live.now(),
        last_boot_at: None,
    };
    match gw.store.insert_charger(&charger).await {
        Ok(()) => {}
        // Two first connections raced; the other registered it.
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return match gw.store.get_charger(charger_id).await {
                Ok(Some(c)) => Ok(c),
                _ => Err(refuse(
                    gw,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable",
                )),
            };
        }
        Err(e) => {
            tracing::error!(charger_id, error = %e, "could not register charger");
            return Err(refuse(
                gw,
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable",
            ));
        }
    }
    gw.live
        .upsert_charger(charger_id, UNASSIGNED_STATION, None, Vec::new());
    tracing::info!(
        charger_id,
        registration = registration.as_str(),
        "registered unknown charger"
    );
    Ok(charger)
}

async fn ensure_unassigned_station(gw: &Gateway) -> Result<(), chargeops_store::StoreError> {
    if gw.store.get_station(UNASSIGNED_STATION).await?.is_none() {
        gw.store
            .upsert_station(&Station {
                id: UNASSIGNED_STATION.to_owned(),
                name: "Unassigned chargers".to_owned(),
                lat: None,
                lon: None,
                highway: None,
                direction: None,
            })
            .await?;
        gw.live.add_station(UNASSIGNED_STATION);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charger_ids() {
        assert!(valid_charger_id("CP-001"));
        assert!(valid_charger_id("G4.changsha:N.07"));
        assert!(!valid_charger_id(""));
        assert!(!valid_charger_id(".."));
        assert!(!valid_charger_id("a/../b"));
        assert!(!valid_charger_id("a..b"));
        assert!(!valid_charger_id("a b"));
        assert!(!valid_charger_id("a%2Fb"));
        assert!(!valid_charger_id(&"x".repeat(49)));
        assert!(valid_charger_id(&"x".repeat(48)));
    }

    #[test]
    fn a_certificate_authenticates_only_its_own_charger() {
        let named = |id: &str| CertIdentity::Named(id.into());
        assert_eq!(
            cert_decision(&named("CP-1"), "CP-1"),
            CertDecision::Authenticated
        );
        // Another charger's certificate is refused, never a fallback to the password.
        assert_eq!(cert_decision(&named("CP-2"), "CP-1"), CertDecision::Refused);
        // Ids are compared exactly: no case folding, no prefixes.
        assert_eq!(cert_decision(&named("cp-1"), "CP-1"), CertDecision::Refused);
        assert_eq!(
            cert_decision(&named("CP-1"), "CP-10"),
            CertDecision::Refused
        );
        assert_eq!(
            cert_decision(&CertIdentity::Unnamed, "CP-1"),
            CertDecision::Refused
        );
        assert_eq!(
            cert_decision(&CertIdentity::None, "CP-1"),
            CertDecision::Basic
        );
    }

    #[test]
    fn basic_credentials() {
        let mut h = HeaderMap::new();
        assert_eq!(basic_password(&h, "CP1"), Ok(None));
        let enc = base64::engine::general_purpose::STANDARD.encode("CP1:pw:with:colons");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {enc}").parse().unwrap(),
        );
        assert_eq!(basic_password(&h, "CP1"), Ok(Some("pw:with:colons".into())));
        assert_eq!(basic_password(&h, "CP2"), Err(()));
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_password(&h, "CP1"), Err(()));
    }
}
