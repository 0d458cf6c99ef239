//! Configuration in layers: defaults, then a TOML file, then `CHARGEOPS_*` environment
//! variables, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use chargeops_gateway::tls::TlsFiles;
use chargeops_gateway::{GatewayConfig, RegistrationPolicy, TariffSpec, YkcConfig};
use chargeops_ykc::CrcOrder;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// One address for OCPP WebSocket and HTTP.
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// PostgreSQL connection string; when set the store is that database instead of SQLite in
    /// `data_dir`. A password is better given in the environment than written in a file.
    pub database_url: Option<String>,
    /// Schema of that database for chargeops' tables, created if missing (several platforms
    /// can share one database); unset: the connection's `search_path`, usually `public`.
    pub database_schema: Option<String>,
    /// NATS server (`nats://host:port`); when set this node joins the cluster of nodes on it:
    /// commands reach chargers held by another node, and every node shows the whole network.
    pub nats_url: Option<String>,
    /// This node's name in the cluster; unset: `<hostname>-<pid>`.
    pub node_id: Option<String>,
    /// NATS credentials: a `.creds` file (user JWT and NKey seed) or an NKey user seed file.
    /// A user and password, or a token, go in the URL (`nats://user:password@host`).
    pub nats_creds: Option<PathBuf>,
    /// The CA that signed the NATS server's certificate; TLS to NATS is required when set.
    pub nats_tls_ca: Option<PathBuf>,
    /// The cluster's name, the first token of its NATS subjects (several clusters can share
    /// one NATS server); unset: `chargeops`.
    pub cluster_name: Option<String>,
    pub registration: RegistrationPolicy,
    pub command_timeout_secs: u64,
    pub heartbeat_interval_secs: u64,
    pub max_frame_bytes: usize,
    pub ping_interval_secs: u64,
    /// `tracing` filter, e.g. "info" or "chargeops_gateway=debug,info".
    pub log: String,
    /// Admin API token; prefer the environment variable over writing it in a file.
    pub admin_token: Option<String>,
    /// Address of the YKC (云快充) TCP listener; no listener when unset.
    pub ykc_listen: Option<SocketAddr>,
    /// A YKC connection silent this long is closed and its charger shown offline (three
    /// missed 10-second heartbeats).
    pub ykc_heartbeat_timeout_secs: u64,
    /// CRC byte order on YKC frames we send: "low-first" (the protocol text) or "high-first".
    /// Both are accepted from chargers.
    pub ykc_crc_order: String,
    /// Seconds between time syncs (0x56) sent to each logged-in YKC charger, after the one at
    /// login.
    pub ykc_time_sync_secs: u64,
    /// The time-of-use tariff YKC chargers bill with and records are priced by
    /// (`[ykc_tariff]` in TOML: model, sharp/peak/flat/valley and service in yuan/kWh, and
    /// `hours`, 24 letters s/p/f/v).
    pub ykc_tariff: TariffSpec,
    /// The operations loop: detection thresholds, SLAs, dispatch (`[ops]` in TOML,
    /// `CHARGEOPS_OPS_*` in the environment).
    pub ops: chargeops_ops::OpsConfig,
    /// Queue numbers: plug-in window, queue size, webhook (`[queue]` in TOML,
    /// `CHARGEOPS_QUEUE_*` in the environment).
    pub queue: chargeops_queue::QueueConfig,
    /// Seconds of platform time after which a robot of a robot lot that has not reported is
    /// offline and its car goes back to waiting.
    pub robot_timeout_secs: u64,
    /// Address of a second listener serving the same OCPP and HTTP over TLS (OCPP security
    /// profiles 2 and 3); no TLS listener when unset.
    pub tls_listen: Option<SocketAddr>,
    /// The TLS listener's certificate (PEM, followed by any intermediates).
    pub tls_cert: Option<PathBuf>,
    /// The TLS listener's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that sign chargers' client certificates: when set, the TLS
    /// listener asks for a client certificate (security profile 3), verifies one when
    /// presented, and lets a charger without one use Basic credentials (profile 2).
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse OCPP on the plain listener, so chargers must use TLS (no security profile 1).
    pub ocpp_require_tls: bool,
    /// Run the platform's background tasks here: fault detection, calling queue numbers,
    /// robot dispatch, mobile-unit planning. In a cluster every node that may run them competes
    /// for the duties lease and one runs them at a time; false keeps a node out of it.
    pub background_tasks: bool,
}

impl Default for Config {
    fn default() -> Self {
        let gw = GatewayConfig::default();
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8180)),
            data_dir: PathBuf::from("chargeops-data"),
            database_url: None,
            database_schema: None,
            nats_url: None,
            node_id: None,
            nats_creds: None,
            nats_tls_ca: None,
            cluster_name: None,
            registration: gw.registration,
            command_timeout_secs: gw.command_timeout.as_secs(),
            heartbeat_interval_secs: gw.heartbeat_interval.as_secs(),
            max_frame_bytes: gw.max_frame_bytes,
            ping_interval_secs: gw.ping_interval.as_secs(),
            log: "info".to_owned(),
            admin_token: None,
            ykc_listen: None,
            ykc_heartbeat_timeout_secs: YkcConfig::default().heartbeat_timeout.as_secs(),
            ykc_crc_order: "low-first".to_owned(),
            ykc_time_sync_secs: YkcConfig::default().time_sync_every.as_secs(),
            ykc_tariff: TariffSpec::default(),
            ops: chargeops_ops::OpsConfig::default(),
            queue: chargeops_queue::QueueConfig::default(),
            robot_timeout_secs: chargeops_services::lots::LotsConfig::default().timeout_secs,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            ocpp_require_tls: false,
            background_tasks: true,
        }
    }
}

/// Flags that override the file and the environment; `None` leaves the value alone.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Address for OCPP and HTTP [default: 127.0.0.1:8180]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded database [default: ./chargeops-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep everything in PostgreSQL instead of SQLite in the data directory, e.g.
    /// postgres://chargeops@db.example:5432/chargeops (key=value strings work too; the
    /// password is never logged) [default: SQLite]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// PostgreSQL schema for chargeops' tables, created if missing, so several platforms can
    /// share one database [default: the connection's search_path, usually public]
    #[arg(long, value_name = "NAME")]
    pub database_schema: Option<String>,
    /// Join the cluster of nodes on this NATS server, e.g. nats://127.0.0.1:4222: commands
    /// reach chargers held by another node and every node shows the whole network (use with
    /// --database-url) [default: off, a single node]
    #[arg(long, value_name = "URL")]
    pub nats_url: Option<String>,
    /// This node's name in the cluster (letters, digits, - and _) [default: hostname-pid]
    #[arg(long, value_name = "NAME")]
    pub node_id: Option<String>,
    /// NATS credentials file: a .creds file (JWT and NKey seed) or an NKey user seed
    /// (user and password, or a token, go in --nats-url: nats://user:password@host)
    #[arg(long, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate (PEM) of the NATS server; makes TLS to NATS required
    #[arg(long, value_name = "FILE")]
    pub nats_tls_ca: Option<PathBuf>,
    /// The cluster's name on NATS, so several clusters can share one server (letters,
    /// digits, - and _) [default: chargeops]
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// TOML configuration file
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do with unknown chargers: open, pending or closed [default: pending]
    #[arg(long, value_name = "POLICY")]
    pub registration: Option<RegistrationPolicy>,
    /// Seconds a charger has to answer a command [default: 30]
    #[arg(long, value_name = "SECS")]
    pub command_timeout_secs: Option<u64>,
    /// Heartbeat interval given to chargers at boot [default: 300]
    #[arg(long, value_name = "SECS")]
    pub heartbeat_interval_secs: Option<u64>,
    /// Listen for YKC (云快充) chargers over TCP on this address [default: off]
    #[arg(long, value_name = "ADDR:PORT")]
    pub ykc_listen: Option<SocketAddr>,
    /// Seconds of silence after which a YKC charger is disconnected and shown offline [default: 30]
    #[arg(long, value_name = "SECS")]
    pub ykc_heartbeat_timeout_secs: Option<u64>,
    /// Seconds after which a robot that has not reported is offline [default: 30]
    #[arg(long, value_name = "SECS")]
    pub robot_timeout_secs: Option<u64>,
    /// Also serve OCPP and HTTP over TLS on this address (wss://, https://) [default: off]
    #[arg(long, value_name = "ADDR:PORT")]
    pub tls_listen: Option<SocketAddr>,
    /// The TLS server certificate, PEM (a chain allowed)
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS server certificate's private key, PEM
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates, PEM, for chargers' client certificates (security profile 3) [default: none]
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse OCPP without TLS on the plain listener [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub ocpp_require_tls: Option<bool>,
    /// Run fault detection, queue calling, robot dispatch and unit planning on this node; in a
    /// cluster, nodes with true take turns under a lease [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub background_tasks: Option<bool>,
}

impl Config {
    pub fn load(o: &Overrides) -> Result<Config> {
        let mut config = match &o.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        if let Some(v) = o.listen {
            config.listen = v;
        }
        if let Some(v) = &o.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &o.database_url {
            config.database_url = Some(v.clone());
        }
        if let Some(v) = &o.database_schema {
            config.database_schema = Some(v.clone());
        }
        if let Some(v) = &o.nats_url {
            config.nats_url = Some(v.clone());
        }
        if let Some(v) = &o.node_id {
            config.node_id = Some(v.clone());
        }
        if let Some(v) = &o.nats_creds {
            config.nats_creds = Some(v.clone());
        }
        if let Some(v) = &o.nats_tls_ca {
            config.nats_tls_ca = Some(v.clone());
        }
        if let Some(v) = &o.cluster_name {
            config.cluster_name = Some(v.clone());
        }
        if let Some(v) = o.registration {
            config.registration = v;
        }
        if let Some(v) = o.command_timeout_secs {
            config.command_timeout_secs = v;
        }
        if let Some(v) = o.heartbeat_interval_secs {
            config.heartbeat_interval_secs = v;
        }
        if let Some(v) = o.ykc_listen {
            config.ykc_listen = Some(v);
        }
        if let Some(v) = o.ykc_heartbeat_timeout_secs {
            config.ykc_heartbeat_timeout_secs = v;
        }
        if let Some(v) = o.robot_timeout_secs {
            config.robot_timeout_secs = v;
        }
        if let Some(v) = o.tls_listen {
            config.tls_listen = Some(v);
        }
        if let Some(v) = &o.tls_cert {
            config.tls_cert = Some(v.clone());
        }
        if let Some(v) = &o.tls_key {
            config.tls_key = Some(v.clone());
        }
        if let Some(v) = &o.tls_client_ca {
            config.tls_client_ca = Some(v.clone());
        }
        if let Some(v) = o.ocpp_require_tls {
            config.ocpp_require_tls = v;
        }
        if let Some(v) = o.background_tasks {
            config.background_tasks = v;
        }
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, v: String) -> Result<T>
        where
            T::Err: std::fmt::Display,
        {
            v.parse::<T>()
                .map_err(|e| anyhow::anyhow!("invalid {name}={v:?}: {e}"))
        }
        if let Some(v) = var("CHARGEOPS_LISTEN") {
            self.listen = parse("CHARGEOPS_LISTEN", v)?;
        }
        if let Some(v) = var("CHARGEOPS_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = var("CHARGEOPS_DATABASE_URL").filter(|v| !v.is_empty()) {
            self.database_url = Some(v);
        }
        if let Some(v) = var("CHARGEOPS_DATABASE_SCHEMA").filter(|v| !v.is_empty()) {
            self.database_schema = Some(v);
        }
        if let Some(v) = var("CHARGEOPS_NATS_URL").filter(|v| !v.is_empty()) {
            self.nats_url = Some(v);
        }
        if let Some(v) = var("CHARGEOPS_NODE_ID").filter(|v| !v.is_empty()) {
            self.node_id = Some(v);
        }
        if let Some(v) = var("CHARGEOPS_NATS_CREDS").filter(|v| !v.is_empty()) {
            self.nats_creds = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CHARGEOPS_NATS_TLS_CA").filter(|v| !v.is_empty()) {
            self.nats_tls_ca = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CHARGEOPS_CLUSTER_NAME").filter(|v| !v.is_empty()) {
            self.cluster_name = Some(v);
        }
        if let Some(v) = var("CHARGEOPS_REGISTRATION") {
            self.registration = parse("CHARGEOPS_REGISTRATION", v)?;
        }
        if let Some(v) = var("CHARGEOPS_COMMAND_TIMEOUT_SECS") {
            self.command_timeout_secs = parse("CHARGEOPS_COMMAND_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("CHARGEOPS_HEARTBEAT_INTERVAL_SECS") {
            self.heartbeat_interval_secs = parse("CHARGEOPS_HEARTBEAT_INTERVAL_SECS", v)?;
        }
        if let Some(v) = var("CHARGEOPS_MAX_FRAME_BYTES") {
            self.max_frame_bytes = parse("CHARGEOPS_MAX_FRAME_BYTES", v)?;
        }
        if let Some(v) = var("CHARGEOPS_YKC_LISTEN").filter(|v| !v.is_empty()) {
            self.ykc_listen = Some(parse("CHARGEOPS_YKC_LISTEN", v)?);
        }
        if let Some(v) = var("CHARGEOPS_YKC_HEARTBEAT_TIMEOUT_SECS") {
            self.ykc_heartbeat_timeout_secs = parse("CHARGEOPS_YKC_HEARTBEAT_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("CHARGEOPS_YKC_TIME_SYNC_SECS") {
            self.ykc_time_sync_secs = parse("CHARGEOPS_YKC_TIME_SYNC_SECS", v)?;
        }
        if let Some(v) = var("CHARGEOPS_YKC_CRC_ORDER") {
            self.ykc_crc_order = v;
        }
        if let Some(v) = var("CHARGEOPS_ROBOT_TIMEOUT_SECS") {
            self.robot_timeout_secs = parse("CHARGEOPS_ROBOT_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("CHARGEOPS_TLS_LISTEN").filter(|v| !v.is_empty()) {
            self.tls_listen = Some(parse("CHARGEOPS_TLS_LISTEN", v)?);
        }
        if let Some(v) = var("CHARGEOPS_TLS_CERT").filter(|v| !v.is_empty()) {
            self.tls_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CHARGEOPS_TLS_KEY").filter(|v| !v.is_empty()) {
            self.tls_key = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CHARGEOPS_TLS_CLIENT_CA").filter(|v| !v.is_empty()) {
            self.tls_client_ca = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CHARGEOPS_OCPP_REQUIRE_TLS") {
            self.ocpp_require_tls = parse("CHARGEOPS_OCPP_REQUIRE_TLS", v)?;
        }
        if let Some(v) = var("CHARGEOPS_BACKGROUND_TASKS") {
            self.background_tasks = parse("CHARGEOPS_BACKGROUND_TASKS", v)?;
        }
        if let Some(v) = var("CHARGEOPS_LOG") {
            self.log = v;
        }
        if let Some(v) = var("CHARGEOPS_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
            self.admin_token = Some(v);
        }
        self.ops.apply_env(&var).map_err(anyhow::Error::msg)?;
        self.queue.apply_env(&var).map_err(anyhow::Error::msg)?;
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        if self.database_schema.is_some() && self.database_url.is_none() {
            bail!("database_schema is set but database_url is not (--database-url URL)");
        }
        if self.command_timeout_secs == 0 {
            bail!("command_timeout_secs must be at least 1");
        }
        if let Some(id) = &self.node_id {
            if self.nats_url.is_none() {
                bail!("node_id is set but nats_url is not (--nats-url URL)");
            }
            if !chargeops_gateway::cluster::valid_node_id(id) {
                bail!("invalid node_id {id:?}: letters, digits, '-' and '_', at most 64");
            }
        }
        let cluster_only = [
            ("nats_creds", self.nats_creds.is_some()),
            ("nats_tls_ca", self.nats_tls_ca.is_some()),
            ("cluster_name", self.cluster_name.is_some()),
        ];
        for (name, set) in cluster_only {
            if set && self.nats_url.is_none() {
                bail!("{name} is set but nats_url is not (--nats-url URL)");
            }
        }
        if let Some(url) = &self.nats_url {
            chargeops_gateway::cluster::check_url(url).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        if let Some(name) = &self.cluster_name
            && !chargeops_gateway::cluster::valid_name(name)
        {
            bail!("invalid cluster_name {name:?}: letters, digits, '-' and '_', at most 32");
        }
        if self.heartbeat_interval_secs == 0 {
            bail!("heartbeat_interval_secs must be at least 1");
        }
        if self.ykc_heartbeat_timeout_secs == 0 {
            bail!("ykc_heartbeat_timeout_secs must be at least 1");
        }
        if let Err(e) = self.ykc_crc_order.parse::<CrcOrder>() {
            bail!("invalid ykc_crc_order: {e}");
        }
        if self.ykc_time_sync_secs == 0 {
            bail!("ykc_time_sync_secs must be at least 1");
        }
        if let Err(e) = self.ykc_tariff.to_tariff() {
            bail!("invalid [ykc_tariff]: {e}");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_frame_bytes) {
            bail!("max_frame_bytes must be between 1 KiB and 16 MiB");
        }
        if let Some(t) = &self.admin_token
            && t.len() < 16
        {
            bail!("the admin token must be at least 16 characters");
        }
        if !(1..=86_400).contains(&self.robot_timeout_secs) {
            bail!("robot_timeout_secs must be 1-86400");
        }
        self.ops.validate().map_err(anyhow::Error::msg)?;
        self.queue.validate().map_err(anyhow::Error::msg)?;
        self.validate_tls()?;
        Ok(())
    }

    /// The TLS settings make sense together; the files themselves are read at start.
    fn validate_tls(&self) -> Result<()> {
        if self.tls_listen.is_some() {
            if self.tls_cert.is_none() || self.tls_key.is_none() {
                bail!("tls_listen needs tls_cert and tls_key (--tls-cert, --tls-key)");
            }
        } else {
            let set = [
                ("tls_cert", self.tls_cert.is_some()),
                ("tls_key", self.tls_key.is_some()),
                ("tls_client_ca", self.tls_client_ca.is_some()),
                ("ocpp_require_tls", self.ocpp_require_tls),
            ];
            if let Some((name, _)) = set.iter().find(|(_, on)| *on) {
                bail!("{name} is set but tls_listen is not (--tls-listen ADDR:PORT)");
            }
        }
        Ok(())
    }

    /// The TLS listener's files, when there is one.
    pub fn tls(&self) -> Option<TlsFiles> {
        self.tls_listen?;
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// The YKC listener's settings.
    pub fn ykc(&self) -> YkcConfig {
        YkcConfig {
            heartbeat_timeout: Duration::from_secs(self.ykc_heartbeat_timeout_secs.max(1)),
            crc_order: self.ykc_crc_order.parse().unwrap_or_default(),
            time_sync_every: Duration::from_secs(self.ykc_time_sync_secs.max(1)),
            // Validated at load; a default stands in only for a config built without it.
            tariff: self.ykc_tariff.to_tariff().unwrap_or_default(),
            ..YkcConfig::default()
        }
    }

    /// The robot lots' task settings.
    pub fn lots(&self) -> chargeops_services::lots::LotsConfig {
        chargeops_services::lots::LotsConfig {
            timeout_secs: self.robot_timeout_secs,
            ..Default::default()
        }
    }

    /// The cluster to join, when `nats_url` is set.
    pub fn cluster(&self) -> Option<chargeops_gateway::cluster::ClusterConfig> {
        let url = self.nats_url.clone()?;
        let node_id = self
            .node_id
            .clone()
            .unwrap_or_else(chargeops_gateway::cluster::default_node_id);
        Some(chargeops_gateway::cluster::ClusterConfig {
            nats: chargeops_gateway::cluster::NatsConfig {
                url,
                creds: self.nats_creds.clone(),
                tls_ca: self.nats_tls_ca.clone(),
            },
            node_id,
            name: self
                .cluster_name
                .clone()
                .unwrap_or_else(|| chargeops_gateway::cluster::DEFAULT_NAME.to_owned()),
        })
    }

    pub fn gateway(&self) -> GatewayConfig {
        GatewayConfig {
            registration: self.registration,
            command_timeout: Duration::from_secs(self.command_timeout_secs),
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval_secs),
            max_frame_bytes: self.max_frame_bytes,
            ping_interval: Duration::from_secs(self.ping_interval_secs.max(1)),
            require_tls: self.ocpp_require_tls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let mut c: Config =
            toml::from_str("listen = \"127.0.0.1:9000\"\nregistration = \"open\"\n").unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.registration, RegistrationPolicy::Open);
        c.apply_env(|k| (k == "CHARGEOPS_REGISTRATION").then(|| "closed".to_owned()))
            .unwrap();
        assert_eq!(c.registration, RegistrationPolicy::Closed);
        assert!(
            c.apply_env(|k| (k == "CHARGEOPS_LISTEN").then(|| "nope".to_owned()))
                .is_err()
        );
    }

    #[test]
    fn ykc_settings() {
        let mut c = Config::default();
        assert_eq!(c.ykc_listen, None);
        c.apply_env(|k| match k {
            "CHARGEOPS_YKC_LISTEN" => Some("127.0.0.1:8767".to_owned()),
            "CHARGEOPS_YKC_CRC_ORDER" => Some("high-first".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.ykc_listen.map(|a| a.port()), Some(8767));
        assert_eq!(c.ykc().crc_order, CrcOrder::HighFirst);
        c.ykc_crc_order = "sideways".to_owned();
        assert!(c.validate().is_err());
    }

    #[test]
    fn ykc_tariff_from_toml() {
        let c: Config = toml::from_str(
            "[ykc_tariff]\nmodel = 7\npeak = 1.2\nhours = \"ffffffffffffffffffffffpp\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        let t = c.ykc().tariff;
        assert_eq!(t.model, [0x00, 0x07]);
        assert_eq!(t.rates[1].energy, 120_000);
        assert_eq!(t.periods[47], 1);
        let bad: Config = toml::from_str("[ykc_tariff]\nhours = \"nope\"\n").unwrap();
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("[ykc_tariff]") && e.contains("24 letters"),
            "{e}"
        );
    }

    #[test]
    fn tls_settings_come_together() {
        let mut c: Config = toml::from_str(
            "tls_listen = \"127.0.0.1:8443\"\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.tls().map(|f| f.client_ca), Some(None));
        assert!(!c.gateway().require_tls);
        c.apply_env(|k| match k {
            "CHARGEOPS_TLS_CLIENT_CA" => Some("ca.pem".to_owned()),
            "CHARGEOPS_OCPP_REQUIRE_TLS" => Some("true".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            c.tls().and_then(|f| f.client_ca),
            Some(PathBuf::from("ca.pem"))
        );
        assert!(c.gateway().require_tls);
        c.tls_key = None;
        assert!(c.validate().is_err(), "a TLS listener needs its key");
        let lonely: Config = toml::from_str("ocpp_require_tls = true\n").unwrap();
        let e = lonely.validate().unwrap_err().to_string();
        assert!(
            e.contains("ocpp_require_tls") && e.contains("tls_listen"),
            "{e}"
        );
    }

    #[test]
    fn database_settings() {
        let mut c: Config = toml::from_str("database_url = \"postgres://a@h/db\"\n").unwrap();
        c.apply_env(|k| (k == "CHARGEOPS_DATABASE_SCHEMA").then(|| "node2".to_owned()))
            .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://a@h/db"));
        assert_eq!(c.database_schema.as_deref(), Some("node2"));
        c.validate().unwrap();
        c.database_url = None;
        assert!(c.validate().is_err(), "a schema without a database");
    }

    #[test]
    fn cluster_settings() {
        let mut c: Config = toml::from_str("nats_url = \"nats://127.0.0.1:4222\"\n").unwrap();
        c.apply_env(|k| (k == "CHARGEOPS_NODE_ID").then(|| "gw-b".to_owned()))
            .unwrap();
        assert_eq!(c.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));
        assert_eq!(c.node_id.as_deref(), Some("gw-b"));
        c.validate().unwrap();
        assert_eq!(c.cluster().map(|k| k.node_id), Some("gw-b".to_owned()));
        c.node_id = Some("gw.b".to_owned());
        assert!(c.validate().is_err(), "a dot splits the subject");
        c.node_id = Some("gw-b".to_owned());
        c.apply_env(|k| match k {
            "CHARGEOPS_NATS_CREDS" => Some("/etc/chargeops/node.creds".to_owned()),
            "CHARGEOPS_NATS_TLS_CA" => Some("/etc/chargeops/nats-ca.pem".to_owned()),
            "CHARGEOPS_CLUSTER_NAME" => Some("hunan".to_owned()),
            _ => None,
        })
        .unwrap();
        c.validate().unwrap();
        let k = c.cluster().unwrap();
        assert_eq!(k.name, "hunan");
        assert_eq!(
            k.nats.creds.as_deref(),
            Some(std::path::Path::new("/etc/chargeops/node.creds"))
        );
        assert!(k.nats.tls_ca.is_some());
        c.cluster_name = Some("hu.nan".to_owned());
        assert!(c.validate().is_err(), "a dot in the cluster name");
        c.cluster_name = None;
        c.nats_url = Some("http://127.0.0.1:4222".to_owned());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("invalid NATS URL"), "{e}");
        c.nats_url = None;
        c.node_id = None;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("nats_creds is set but nats_url is not"), "{e}");
        c.nats_creds = None;
        c.nats_tls_ca = None;
        assert!(c.cluster().is_none());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }
}
