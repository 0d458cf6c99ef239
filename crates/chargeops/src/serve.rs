//! `chargeops serve`: opens the store, loads the network into memory, starts HTTP and OCPP.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use chargeops_core::{Clock, Live};
use chargeops_gateway::Gateway;
use chargeops_gateway::tls::{TlsListener, TlsPeer};
use chargeops_store::{PostgresStore, SqliteStore, Store};

use crate::config::Config;

pub fn init_tracing(filter: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal; log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads stations, chargers and last known connector statuses into the live state.
async fn load_network(store: &dyn Store, live: &Live) -> Result<(usize, usize)> {
    let stations = store.list_stations().await?;
    for s in &stations {
        live.add_station(&s.id);
    }
    let mut connectors: std::collections::HashMap<String, Vec<_>> = Default::default();
    for (charger_id, state) in store.list_connectors().await? {
        connectors.entry(charger_id).or_default().push(state);
    }
    let chargers = store.list_chargers().await?;
    for c in &chargers {
        let conns = connectors.remove(&c.id).unwrap_or_default();
        live.upsert_charger(&c.id, &c.station_id, c.protocol, conns);
    }
    Ok((stations.len(), chargers.len()))
}

/// The store `config` names: PostgreSQL at `database_url` when set, else SQLite in the data
/// directory.
async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    if let Some(url) = &config.database_url {
        let target = chargeops_store::postgres::redact_url(url);
        let schema = config.database_schema.as_deref();
        let store = match schema {
            Some(schema) => PostgresStore::connect_with_schema(url, schema).await,
            None => PostgresStore::connect(url).await,
        }
        .with_context(|| format!("failed to open the PostgreSQL store at {target}"))?;
        tracing::info!(
            backend = "postgresql",
            url = %target,
            schema = schema.unwrap_or("(search_path)"),
            "store opened"
        );
        return Ok(Arc::new(store));
    }
    let store = SqliteStore::open_dir(&config.data_dir).with_context(|| {
        format!(
            "failed to open the database in {}",
            config.data_dir.display()
        )
    })?;
    tracing::info!(backend = "sqlite", path = %store.path().display(), "store opened");
    Ok(Arc::new(store))
}

/// A running platform: HTTP and OCPP on `addr` (and over TLS on `tls_addr`), until
/// [`Platform::stop`].
pub struct Platform {
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub live: Arc<Live>,
    /// The API's state, for in-process simulators (the demo's mobile units report through it).
    pub state: Arc<chargeops_api::AppState>,
    /// Stops both listeners (a watch, so each server waits on its own receiver).
    stop: tokio::sync::watch::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Platform {
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        // The duties end first, then the cluster lets their lease go for the next node.
        self.state
            .services
            .duties
            .stop(std::time::Duration::from_secs(5))
            .await;
        if let Some(cluster) = self.state.gateway.cluster() {
            cluster.leave().await;
        }
        self.server
            .await
            .context("server task failed")?
            .context("server failed")?;
        tracing::info!("chargeops stopped");
        Ok(())
    }
}

/// Opens the store, loads the network into memory and starts serving, on `clock`.
pub async fn start(config: &Config, clock: Clock) -> Result<Platform> {
    // The TLS files are read first: a missing or bad one stops the start before anything opens.
    let tls = match config.tls() {
        Some(files) => {
            Some(chargeops_gateway::tls::server_config(&files).context("failed to set up TLS")?)
        }
        None => None,
    };
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "failed to create data directory {}",
            config.data_dir.display()
        )
    })?;
    let store = open_store(config).await?;
    let live = Arc::new(Live::with_clock(clock));
    let (stations, chargers) = load_network(store.as_ref(), &live).await?;
    tracing::info!(stations, chargers, data_dir = %config.data_dir.display(), "network loaded");

    if let Some(token) =
        chargeops_api::bootstrap_admin_token(store.as_ref(), config.admin_token.as_deref()).await?
    {
        // Printed once, on the terminal only: the store keeps just its digest.
        eprintln!(
            "\nA new admin API token was generated (it is not shown again):\n\n    {token}\n"
        );
        eprintln!("Set CHARGEOPS_ADMIN_TOKEN to choose your own instead.\n");
    }

    let gateway = Gateway::new(store.clone(), live.clone(), config.gateway());
    let cluster = match config.cluster() {
        Some(cluster) => {
            let node = cluster.node_id.clone();
            Some(
                chargeops_gateway::cluster::start(&gateway, cluster)
                    .await
                    .with_context(|| format!("failed to join the cluster as node {node}"))?,
            )
        }
        None => None,
    };
    if let Some(ykc_addr) = config.ykc_listen {
        let ykc = tokio::net::TcpListener::bind(ykc_addr)
            .await
            .with_context(|| format!("failed to listen for YKC on {ykc_addr}"))?;
        tokio::spawn(chargeops_gateway::serve_ykc(
            gateway.clone(),
            ykc,
            config.ykc(),
        ));
    }
    let services = chargeops_services::Services::new(chargeops_services::Platform::new(
        store,
        live.clone(),
        gateway.clone(),
    ));
    let state = chargeops_api::AppState::new(services);
    let duties = chargeops_services::DutiesConfig {
        ops: config.ops.clone(),
        queue: config.queue.clone(),
        lots: config.lots(),
    };
    if config.background_tasks {
        match &cluster {
            // Every node may run them; the lease says which one does.
            Some(cluster) => state
                .services
                .start_under_lease(duties, cluster.duties_lease().watch()),
            None => state.services.start(duties),
        }
    } else if cluster.is_some() {
        tracing::info!(
            "background tasks off (background_tasks = false): this node never takes the duties lease; their APIs go to the node that holds it"
        );
    } else {
        tracing::info!(
            "background tasks off (background_tasks = false): no fault detection, queue calling, robot dispatch or unit planning on this node"
        );
    }
    let app = gateway.router().merge(chargeops_api::router(state.clone()));
    if let Some(cluster) = &cluster {
        cluster.serve_http(app.clone());
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, registration = ?config.registration, "chargeops listening");
    let tls_listener = match (tls, config.tls_listen) {
        (Some(tls), Some(tls_addr)) => {
            let tcp = tokio::net::TcpListener::bind(tls_addr)
                .await
                .with_context(|| format!("failed to listen for TLS on {tls_addr}"))?;
            Some(TlsListener::new(tcp, tls)?)
        }
        _ => None,
    };
    let tls_addr = match &tls_listener {
        Some(l) => Some(axum::serve::Listener::local_addr(l)?.addr),
        None => None,
    };
    tracing::info!(
        plain = %addr,
        plain_ocpp = if config.ocpp_require_tls {
            "refused (ocpp_require_tls)"
        } else {
            "security profile 1 (ws://, Basic auth)"
        },
        tls = %tls_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        tls_ocpp = match (tls_addr, &config.tls_client_ca) {
            (None, _) => "none",
            (Some(_), None) => "security profile 2 (wss://, Basic auth)",
            (Some(_), Some(_)) => {
                "security profiles 2 and 3 (wss://, Basic auth or client certificate)"
            }
        },
        "chargeops listeners"
    );
    let (stop, stopped) = tokio::sync::watch::channel(());
    let shutdown = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
        // Ends on a stop or when the platform is dropped.
        let _ = stopped.changed().await;
    };
    let plain = axum::serve(
        listener,
        app.clone()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown(stopped.clone()))
    .into_future();
    let server = match tls_listener {
        None => tokio::spawn(plain),
        Some(tls_listener) => {
            let tls = axum::serve(
                tls_listener,
                app.into_make_service_with_connect_info::<TlsPeer>(),
            )
            .with_graceful_shutdown(shutdown(stopped))
            .into_future();
            tokio::spawn(async move { tokio::try_join!(plain, tls).map(|_| ()) })
        }
    };
    Ok(Platform {
        addr,
        tls_addr,
        live,
        state,
        stop,
        server,
    })
}

pub async fn run(config: Config) -> Result<()> {
    let platform = start(&config, Clock::real()).await?;
    let addr = platform.addr;
    eprintln!("chargeops listening on http://{addr}  (OCPP: ws://{addr}/ocpp/{{chargerId}})");
    if let Some(tls) = platform.tls_addr {
        eprintln!("chargeops listening on https://{tls}  (OCPP: wss://{tls}/ocpp/{{chargerId}})");
    }
    shutdown_signal().await;
    platform.stop().await
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
