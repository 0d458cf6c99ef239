//! The node's connection to NATS, through `async-nats`: the URL and its credentials, TLS, and
//! the connected/disconnected state the rest of the cluster follows.
//!
//! Authentication, one of:
//! - `nats://user:password@host:port`: user and password;
//! - `nats://token@host:port`: a token;
//! - a credentials file (`--nats-creds`): a `.creds` file (user JWT and NKey seed, as `nsc`
//!   writes them) or a file holding just an NKey user seed (`SU...`).
//!
//! TLS: a `tls://` URL, or `--nats-tls-ca FILE` (the CA that signed the server's certificate;
//! TLS is then required whatever the URL says).
//!
//! The first connection is tried at start: a refused login, a bad credentials file or a TLS
//! failure stops the start with the reason. A server that is not there yet is retried in the
//! background, as is every connection lost later.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, ServerAddr};
use tokio::sync::watch;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PING_INTERVAL: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where the cluster's NATS is and how to log in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://[user:password@|token@]host[:port]` or `tls://...`.
    pub url: String,
    /// A credentials (`.creds`) or NKey seed file.
    pub creds: Option<PathBuf>,
    /// The CA that signed the server's certificate (TLS required when set).
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(
        "invalid NATS URL {0:?} (expected nats://[user:password@]HOST[:PORT] or tls://HOST[:PORT])"
    )]
    Url(String),
    #[error("cannot read the NATS credentials file {path}: {reason}")]
    Creds { path: String, reason: String },
    #[error("cannot read the NATS CA file {path}: {reason}")]
    TlsCa { path: String, reason: String },
    #[error(
        "NATS at {url} refused this node's login ({reason}): check --nats-creds or the URL's user"
    )]
    Refused { url: String, reason: String },
    #[error("TLS to NATS at {url} failed: {reason}")]
    Tls { url: String, reason: String },
}

/// The URL with any password or token left out, for logs and errors.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_owned(),
        },
    }
}

/// Checks the URL (the form, not the server): `nats://`, `tls://` or a bare `host:port`.
pub fn check_url(url: &str) -> Result<ServerAddr, LinkError> {
    let bad = || LinkError::Url(redact(url));
    if url.trim().is_empty() || url.contains([' ', ',']) {
        return Err(bad());
    }
    let addr = ServerAddr::from_str(url).map_err(|_| bad())?;
    if !matches!(addr.scheme(), "nats" | "tls") || addr.host().is_empty() {
        return Err(bad());
    }
    Ok(addr)
}

/// The options for `config`, its credentials read and checked.
async fn options(config: &NatsConfig, name: &str) -> Result<ConnectOptions, LinkError> {
    let addr = check_url(&config.url)?;
    let mut options = ConnectOptions::new();
    match (addr.username(), addr.password()) {
        (Some(user), Some(password)) => {
            options = options.user_and_password(decode(user), decode(password));
        }
        (Some(token), None) => options = options.token(decode(token)),
        _ => {}
    }
    if let Some(path) = &config.creds {
        options = with_creds(options, path).await?;
    }
    if let Some(ca) = &config.tls_ca {
        // Read here so a missing file is named at start, not as a vague TLS error later.
        let pem = std::fs::read(ca).map_err(|e| LinkError::TlsCa {
            path: ca.display().to_string(),
            reason: e.to_string(),
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(LinkError::TlsCa {
                path: ca.display().to_string(),
                reason: "no PEM certificate in it".to_owned(),
            });
        }
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    Ok(options
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .ping_interval(PING_INTERVAL)
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            let ms = 100u64.saturating_mul(1 << attempts.min(5) as u64);
            Duration::from_millis(ms).min(MAX_BACKOFF)
        })
        // Large enough for a burst of events to the node's own subscriptions.
        .subscription_capacity(65_536)
        .client_capacity(8192))
}

/// Percent-decoding of a URL's user or password part.
fn decode(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn with_creds(options: ConnectOptions, path: &Path) -> Result<ConnectOptions, LinkError> {
    let failed = |reason: String| LinkError::Creds {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    if text.contains("-----BEGIN NATS USER JWT-----") {
        return options
            .credentials_file(path)
            .await
            .map_err(|e| failed(e.to_string()));
    }
    let seed = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("SU"))
        .ok_or_else(|| failed("neither a .creds file nor an NKey user seed (SU...)".to_owned()))?;
    nkeys::KeyPair::from_seed(seed).map_err(|e| failed(format!("bad NKey seed: {e}")))?;
    Ok(options.nkey(seed.to_owned()))
}

/// A live connection to NATS (reconnecting by itself) and its state.
pub struct Link {
    pub client: async_nats::Client,
    /// Whether the client is connected now; changes on every connect and disconnect.
    pub connected: watch::Receiver<bool>,
}

/// Connects to NATS as `name`. A login the server refuses, or a TLS failure, is an error; a
/// server that does not answer yet is tried again in the background.
pub async fn connect(config: &NatsConfig, name: &str) -> Result<Link, LinkError> {
    let shown = redact(&config.url);
    let (state_tx, connected) = watch::channel(false);
    let state_tx = std::sync::Arc::new(state_tx);
    let events = |options: ConnectOptions| {
        let state_tx = state_tx.clone();
        let shown = shown.clone();
        options.event_callback(move |event| {
            let state_tx = state_tx.clone();
            let shown = shown.clone();
            async move { on_event(&state_tx, &shown, event) }
        })
    };
    let first = events(options(config, name).await?)
        .connect(config.url.as_str())
        .await;
    let client = match first {
        Ok(client) => client,
        Err(error) => match error.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                return Err(LinkError::Refused {
                    url: shown,
                    reason: chargeops_core::error::chain(&error),
                });
            }
            ConnectErrorKind::ServerParse => return Err(LinkError::Url(shown)),
            // A certificate the CA does not vouch for comes back as an I/O error of the
            // handshake: it is a TLS failure all the same, and retrying will not mend it.
            kind if kind == ConnectErrorKind::Tls
                || is_certificate_error(&chargeops_core::error::chain(&error)) =>
            {
                return Err(LinkError::Tls {
                    url: shown,
                    reason: chargeops_core::error::chain(&error),
                });
            }
            _ => {
                tracing::warn!(
                    nats = %shown,
                    error = %chargeops_core::error::chain(&error),
                    "lost the NATS connection (or could not make it); serving this node's \
                     chargers alone and trying again"
                );
                events(options(config, name).await?)
                    .retry_on_initial_connect()
                    .connect(config.url.as_str())
                    .await
                    .map_err(|e| LinkError::Url(format!("{shown}: {e}")))?
            }
        },
    };
    if client.connection_state() == async_nats::connection::State::Connected {
        state_tx.send_replace(true);
        tracing::info!(nats = %shown, "connected to NATS");
    }
    Ok(Link { client, connected })
}

fn is_certificate_error(chain: &str) -> bool {
    let chain = chain.to_ascii_lowercase();
    ["certificate", "unknownissuer", "handshake"]
        .iter()
        .any(|w| chain.contains(w))
}

fn on_event(state: &watch::Sender<bool>, shown: &str, event: async_nats::Event) {
    match event {
        async_nats::Event::Connected => {
            if !state.send_replace(true) {
                tracing::info!(nats = %shown, "connected to NATS");
            }
        }
        async_nats::Event::Disconnected => {
            if state.send_replace(false) {
                tracing::warn!(
                    nats = %shown,
                    "lost the NATS connection (or could not make it); serving this node's \
                     chargers alone and trying again"
                );
            }
        }
        async_nats::Event::ServerError(async_nats::ServerError::AuthorizationViolation) => {
            tracing::error!(nats = %shown, "NATS refused this node's login (authorization violation)");
        }
        async_nats::Event::SlowConsumer(sid) => {
            tracing::warn!(nats = %shown, sid, "a cluster subscription fell behind: messages dropped (the next hello resyncs)");
        }
        other => tracing::info!(nats = %shown, event = %other, "NATS connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("nats://127.0.0.1:4222").is_ok());
        assert!(check_url("tls://nats.example:4443").is_ok());
        assert!(check_url("nats://user:pw@127.0.0.1").is_ok());
        assert!(check_url("127.0.0.1:4222").is_ok());
        for bad in ["", "http://x:1", "nats://", "nats://a b", "nats://a,b"] {
            assert!(check_url(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            redact("nats://user:secret@host:4222"),
            "nats://***@host:4222"
        );
        assert_eq!(redact("nats://host:4222"), "nats://host:4222");
        assert_eq!(decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(decode("100%"), "100%");
    }

    #[tokio::test]
    async fn credentials_files_are_checked_at_start() {
        let dir = std::env::temp_dir().join(format!("chargeops-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.creds");
        std::fs::write(&junk, "not a credential\n").unwrap();
        let config = NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            creds: Some(junk.clone()),
            tls_ca: None,
        };
        let e = options(&config, "t").await.expect_err("junk refused");
        assert!(e.to_string().contains("NKey user seed"), "{e}");
        let missing = NatsConfig {
            creds: Some(dir.join("missing.creds")),
            ..config.clone()
        };
        let e = options(&missing, "t").await.expect_err("missing refused");
        assert!(e.to_string().contains("missing.creds"), "{e}");
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        let good = dir.join("user.nk");
        std::fs::write(&good, format!("{seed}\n")).unwrap();
        let ok = NatsConfig {
            creds: Some(good),
            ..config.clone()
        };
        assert!(options(&ok, "t").await.is_ok());
        let ca = NatsConfig {
            tls_ca: Some(junk),
            creds: None,
            ..config
        };
        let e = options(&ca, "t").await.expect_err("not a CA");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
