//! TLS for OCPP security profiles 2 and 3: the server configuration read from PEM files, a
//! listener that serves the same router over TLS, and the identity a charger's client
//! certificate carries.
//!
//! Profile 2 is TLS with a server certificate plus HTTP Basic credentials; profile 3 is TLS
//! with a client certificate whose subject CommonName is the charge point's identity (OCPP
//! security whitepaper). When a client CA is configured, certificates are requested but not
//! required, so both profiles share one port: a presented certificate must chain to the CA or
//! the handshake fails; a charger without one falls back to Basic credentials at the upgrade
//! (`auth`).
//!
//! Handshakes run in their own tasks, at most [`MAX_HANDSHAKES`] at a time and each cut off
//! after [`HANDSHAKE_TIMEOUT`], so a slow, silent or garbage-speaking peer holds up neither the
//! accept loop nor anyone else's handshake.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use x509_cert::der::{Decode, Tag, Tagged};

/// Handshakes in progress at once; the accept loop waits for room beyond that, leaving
/// further connections in the kernel's backlog.
pub const MAX_HANDSHAKES: usize = 256;

/// A peer that has not completed its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the HTTP server to take them.
const READY_QUEUE: usize = 64;

/// The PEM files of the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate, followed by any intermediates.
    pub cert: PathBuf,
    /// The server certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates that sign chargers' client certificates (security profile 3); no
    /// client certificates are requested when unset.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not a PEM file: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key", path.display())]
    NoKey { path: PathBuf },
    #[error(
        "the certificate in {} and the key in {} do not go together: {reason}",
        cert.display(),
        key.display()
    )]
    CertKey {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("invalid CA certificate in {}: {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
    #[error("the TLS provider cannot be used: {0}")]
    Provider(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Every certificate in a PEM file, in order; an error when there is none.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        e => pem_error(path, e),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the files into a server configuration: the key must fit the certificate,
/// and every CA certificate must parse as a trust anchor. Each error names its file.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(&files.cert)?;
    let key = private_key(&files.key)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Provider(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca_error = |reason: String| TlsError::ClientCa {
                path: path.clone(),
                reason,
            };
            let mut roots = RootCertStore::empty();
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
            // Requested, verified when presented, not required: profile-2 chargers on the same
            // port authenticate with Basic credentials instead.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::CertKey {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        })?;
    // The router speaks HTTP/1.1 only (WebSocket upgrades need it).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The subject CommonName of a DER certificate: the charge point identity a profile-3
/// certificate carries. `None` when the certificate does not parse or its subject has no
/// CommonName, or more than one (which of them would be the identity is anyone's guess).
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let mut names = cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == x509_cert::der::oid::db::rfc4519::CN);
    let cn = names.next()?;
    if names.next().is_some() {
        return None;
    }
    let value = &cn.value;
    let text = match value.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(value).ok()?.as_str().to_owned(),
        Tag::PrintableString => PrintableStringRef::try_from(value)
            .ok()?
            .as_str()
            .to_owned(),
        Tag::Ia5String => Ia5StringRef::try_from(value).ok()?.as_str().to_owned(),
        _ => return None,
    };
    Some(text)
}

/// Who is at the other end of a TLS connection: its address and, when it presented a client
/// certificate (verified against the client CA during the handshake), the identity in it.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub addr: SocketAddr,
    pub identity: CertIdentity,
}

/// What a connection's client certificate says about who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertIdentity {
    /// No certificate was presented (or none was requested).
    None,
    /// A verified certificate whose subject has no single CommonName.
    Unnamed,
    /// A verified certificate naming this identity.
    Named(Arc<str>),
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// An `axum::serve` listener that accepts TCP connections and hands on only those whose TLS
/// handshake completed. Dropping it stops the accept loop.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener { local_addr, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends once this listener is gone, so this is not reached;
            // a listener must not return without a connection, so it would wait forever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(TlsPeer {
            addr: self.local_addr,
            identity: CertIdentity::None,
        })
    }
}

type Ready = mpsc::Sender<(TlsStream<TcpStream>, TlsPeer)>;

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, ready: Ready) {
    let room = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            () = ready.closed() => return,
            permit = room.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (tcp, addr) = tokio::select! {
            () = ready.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(conn) = handshake(&acceptor, tcp, addr).await {
                // Fails only when the server has stopped; the connection is dropped then.
                let _ = ready.send(conn).await;
            }
        });
    }
}

/// The same policy as axum's plain listener: errors about one connection are that
/// connection's; anything else (out of file descriptors) gets a pause before trying again.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "TLS accept failed; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    addr: SocketAddr,
) -> Option<(TlsStream<TcpStream>, TlsPeer)> {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let rustls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            // A certificate the CA did not sign is a charger (or someone) trying to be one:
            // worth a warning. Scanners and plain HTTP on this port are not.
            if let Some(rustls::Error::InvalidCertificate(reason)) = rustls_error {
                tracing::warn!(peer = %addr, ?reason, "TLS handshake refused: bad client certificate");
            } else {
                tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
            }
            return None;
        }
        Err(_) => {
            tracing::debug!(peer = %addr, "TLS handshake timed out");
            return None;
        }
    };
    let identity = match stream.get_ref().1.peer_certificates() {
        Some([end_entity, ..]) => match certificate_identity(end_entity) {
            Some(name) => CertIdentity::Named(name.into()),
            None => CertIdentity::Unnamed,
        },
        _ => CertIdentity::None,
    };
    Some((stream, TlsPeer { addr, identity }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            cert: PathBuf::from("/nonexistent/server.pem"),
            key: PathBuf::from("/nonexistent/server.key"),
            client_ca: None,
        };
        let e = server_config(&files).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("/nonexistent/server.pem")),
            "{e:?}"
        );
    }

    // Self-signed P-256 certificates made with `openssl req -x509` for these tests: subject
    // O=chargeops test, CN=CP-TLS-1; subject CN=CP-A, CN=CP-B; subject O=chargeops test.
    const NAMED: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBrzCCAVWgAwIBAgIUM9VBGOaslUVeIX2yTK9urDrzFYMwCgYIKoZIzj0EAwIw\n\
LDEXMBUGA1UECgwOY2hhcmdlb3BzIHRlc3QxETAPBgNVBAMMCENQLVRMUy0xMCAX\n\
DTI2MTEyOTA4MDUwNVoYDzIxMjYxMTA1MDgwNTA1WjAsMRcwFQYDVQQKDA5jaGFy\n\
Z2VvcHMgdGVzdDERMA8GA1UEAwwIQ1AtVExTLTEwWTATBgcqhkjOPQIBBggqhkjO\n\
PQMBBwNCAAR1BxNyDoIzGTL1+vHgDmK4QNOPh724QBNyhReJklwbWrreU9Joaz2O\n\
vkl1qARFrtmeI6ATbgwjjItmUGVbtJGJo1MwUTAdBgNVHQ4EFgQUxgq/pCdrDelw\n\
Tf5tUZXj8X37kXMwHwYDVR0jBBgwFoAUxgq/pCdrDelwTf5tUZXj8X37kXMwDwYD\n\
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAxO3QIenlMb51UgTmH1kL\n\
uPv2XhrebuRQXhR279Rp0mkCIF6rGkkdeidCKL6c/KtAH3Ue+vcydx5QLJA5LZtm\n\
tFiw\n\
-----END CERTIFICATE-----";
    const TWO_NAMES: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBkzCCATmgAwIBAgIUZGZanLacLWcIt0IBFqUtEuM5TnIwCgYIKoZIzj0EAwIw\n\
HjENMAsGA1UEAwwEQ1AtQTENMAsGA1UEAwwEQ1AtQjAgFw0yNjExMjkwODA1MDVa\n\
GA8yMTI2MTEwNTA4MDUwNVowHjENMAsGA1UEAwwEQ1AtQTENMAsGA1UEAwwEQ1At\n\
QjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFjuuGn4VTmpt9RHYs6GibfM59ZC\n\
Vov7T69yhlsMonsnoNmD6r9ubTwXNk9+G+FGT/I22iKbi71t2bQoJvLMfH6jUzBR\n\
MB0GA1UdDgQWBBQODOpHT1nZ8rkoRKWVKdzbtQ/qtTAfBgNVHSMEGDAWgBQODOpH\n\
T1nZ8rkoRKWVKdzbtQ/qtTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA\n\
MEUCICi7k1hyKLtvAbYkO3GKjz0IS6fshod0T62LbcRY7zyqAiEA8pGfRlH+Jpjz\n\
y0cMOXH5Ja8KxXRL1b1XoJS4Yb9xaOc=\n\
-----END CERTIFICATE-----";
    const NO_NAME: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBiDCCAS+gAwIBAgIUIbIYlyeLEuXEUXXJV4AKeqeIGjAwCgYIKoZIzj0EAwIw\n\
GTEXMBUGA1UECgwOY2hhcmdlb3BzIHRlc3QwIBcNMjYxMTI5MDgwNTA1WhgPMjEy\n\
NjExMDUwODA1MDVaMBkxFzAVBgNVBAoMDmNoYXJnZW9wcyB0ZXN0MFkwEwYHKoZI\n\
zj0CAQYIKoZIzj0DAQcDQgAEhpfISrQPNN0SN2xHyxvVeAIDYj4p7BrYA2Sp7WW0\n\
YNyaovJdQkGIGGIuSU029+e0lMDZ3qvahdF3LMU9B5mkEaNTMFEwHQYDVR0OBBYE\n\
FLwysW2WXWBFEsGya+Icx/aq4vz/MB8GA1UdIwQYMBaAFLwysW2WXWBFEsGya+Ic\n\
x/aq4vz/MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgLIp/o/Ks\n\
J62F271hEQnS3Fd+NUBdqdPnbeEA+RnrEpoCIA1FNeznss+9qLYYP52Sj2h2K20c\n\
QO+esuoMFDH4acgR\n\
-----END CERTIFICATE-----";

    fn identity(pem: &str) -> Option<String> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("test certificate");
        certificate_identity(&der)
    }

    #[test]
    fn the_common_name_is_the_identity() {
        assert_eq!(identity(NAMED).as_deref(), Some("CP-TLS-1"));
        // Two names or none: no identity, so the upgrade refuses the certificate.
        assert_eq!(identity(TWO_NAMES), None);
        assert_eq!(identity(NO_NAME), None);
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert!(certificate_identity(b"not a certificate").is_none());
        assert!(certificate_identity(&[]).is_none());
    }
}
