//! `chargeops serve`: opens the store, loads the network into memory, starts HTTP and OCPP.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use chargeops_core::{Clock, Live};
use chargeops_gateway::Gateway;
use chargeops_store::{SqliteStore, Store};

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

/// A running platform: HTTP and OCPP on `addr`, until [`Platform::stop`].
pub struct Platform {
    pub addr: SocketAddr,
    pub live: Arc<Live>,
    /// The API's state, for in-process simulators (the demo's mobile units report through it).
    pub state: Arc<chargeops_api::AppState>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Platform {
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
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
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "failed to create data directory {}",
            config.data_dir.display()
        )
    })?;
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_dir(&config.data_dir).with_context(|| {
            format!(
                "failed to open the database in {}",
                config.data_dir.display()
            )
        })?);
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
    let state = chargeops_api::AppState::new(store, live.clone(), gateway.clone());
    chargeops_api::ops::start(&state, config.ops.clone());
    chargeops_api::queue::start(&state, config.queue.clone());
    chargeops_api::robots::start(&state, config.robots());
    chargeops_api::units::start(&state);
    let app = gateway.router().merge(chargeops_api::router(state.clone()));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, registration = ?config.registration, "chargeops listening");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .into_future(),
    );
    Ok(Platform {
        addr,
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
