//! Partner platforms over OCPI 2.2.1, the platform as the CPO: registrations, the credentials
//! handshake, and the network as Locations.
//!
//! - An admin makes a registration for a partner: a token A (shown once; the store keeps its
//!   digest) and the versions URL.
//! - The partner registers with token A: it posts its credentials (its token B, its versions
//!   URL, its roles). The platform reads the partner's versions and the 2.2.1 endpoints with
//!   token B, keeps them, answers with its own credentials carrying a new token C, and retires
//!   A. From then on the partner uses C; PUT exchanges it for a new one, DELETE unregisters.
//! - Partners are store documents (kind `ocpi_partner`), so every node of a cluster knows them.
//!   Token B is kept as given (the platform needs it to call the partner); A and C only as
//!   digests. No token is logged.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use chargeops_core::secret::{random_hex, token_digest};
use chargeops_ocpi::envelope::{StatusCode, authorization};
use chargeops_ocpi::network::{self, ChargerView, Equipment, Party};
use chargeops_ocpi::objects::{
    BusinessDetails, Credentials, CredentialsRole, Endpoint, Evse, InterfaceRole, Location,
    Version, VersionDetails,
};

use crate::{Caller, Error, Platform, Result};

const KIND: &str = "ocpi_partner";
/// How long a call to a partner's versions may take during the handshake.
const PARTNER_TIMEOUT: Duration = Duration::from_secs(10);

/// A partner as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Partner {
    pub id: String,
    pub name: String,
    /// The registration token's digest, until the partner registers with it.
    #[serde(default)]
    token_a: Option<String>,
    /// The digest of the token the partner uses now.
    #[serde(default)]
    token_c: Option<String>,
    /// The partner's token for calling it (its credentials' token).
    #[serde(default)]
    token_b: Option<String>,
    #[serde(default)]
    pub versions_url: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub roles: Vec<CredentialsRole>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub registered_at: Option<DateTime<Utc>>,
}

/// Which of a partner's tokens a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The registration token: good for the versions and for registering, nothing else.
    Registration,
    /// The token of a registered partner.
    Registered,
}

/// A made registration: the token A (shown once) and where to start.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewRegistration {
    pub id: String,
    pub name: String,
    /// CREDENTIALS_TOKEN_A, for the partner to register with; not shown again.
    pub token: String,
    pub versions_url: String,
}

/// An OCPI refusal: the HTTP status and the envelope's status code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub http: u16,
    pub code: StatusCode,
    pub message: String,
}

impl Refusal {
    fn new(http: u16, code: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            http,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Refusal {
        Refusal::new(
            401,
            StatusCode::CLIENT_ERROR,
            "missing or unknown credentials token",
        )
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        Refusal::new(200, StatusCode::SERVER_ERROR, e.message)
    }
}

/// The OCPI side of the platform.
pub struct Partners {
    platform: Platform,
    party: Party,
    /// Bumped by every registration change here, so the push duty reads the partners again at
    /// once (changes made on another node reach it within [`RECEIVERS_EVERY`]).
    generation: std::sync::atomic::AtomicU64,
    /// How the pushes to each partner go, by partner id.
    pushes: std::sync::Mutex<std::collections::HashMap<String, PushStats>>,
}

/// How the pushes to one partner go.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PushStats {
    /// PATCHes the partner accepted.
    pub delivered: u64,
    /// Tries that failed (each is tried again).
    pub failed: u64,
    /// EVSEs whose latest status waits for the partner now.
    pub queued: usize,
    pub last_delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// A partner as an admin sees it: never a token.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartnerView {
    pub id: String,
    pub name: String,
    /// `ocpi`.
    pub standard: &'static str,
    /// `CPO` is this platform's role; the partner's roles as it registered them.
    pub roles: Vec<String>,
    pub registered: bool,
    pub registered_at: Option<DateTime<Utc>>,
    pub versions_url: Option<String>,
    /// The partner's modules, `identifier:ROLE`.
    pub endpoints: Vec<String>,
    pub pushes: PushStats,
}

/// How often the push duty reads the registered partners again.
const RECEIVERS_EVERY: Duration = Duration::from_secs(2);

impl Partners {
    pub fn new(platform: Platform) -> Self {
        Partners {
            platform,
            party: Party::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
            pushes: std::sync::Mutex::default(),
        }
    }

    pub fn party(&self) -> &Party {
        &self.party
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, PushStats>> {
        self.pushes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every partner with how its pushes go (admins).
    pub async fn list(&self, by: &Caller) -> Result<Vec<PartnerView>> {
        by.require_role(&[chargeops_core::Role::Admin])?;
        let mut all = self.all().await?;
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        let stats = self.stats().clone();
        Ok(all
            .into_iter()
            .map(|p| PartnerView {
                pushes: stats.get(&p.id).cloned().unwrap_or_default(),
                standard: "ocpi",
                roles: p.roles.iter().map(|r| r.role.clone()).collect(),
                registered: p.token_c.is_some(),
                registered_at: p.registered_at,
                versions_url: p.versions_url.clone(),
                endpoints: p
                    .endpoints
                    .iter()
                    .map(|e| format!("{}:{:?}", e.identifier, e.role).to_ascii_uppercase())
                    .collect(),
                id: p.id,
                name: p.name,
            })
            .collect())
    }

    /// Push counters by partner id, for `/metrics`.
    pub fn push_stats(&self) -> Vec<(String, PushStats)> {
        let mut v: Vec<_> = self
            .stats()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    async fn all(&self) -> Result<Vec<Partner>> {
        self.platform.documents(KIND).await
    }

    async fn save(&self, p: &Partner) -> Result<()> {
        let body =
            serde_json::to_string(p).map_err(|_| Error::internal("failed to encode a partner"))?;
        self.platform.store.put_document(KIND, &p.id, &body).await?;
        self.changed();
        Ok(())
    }

    fn changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An admin makes a registration for partner `name`; `base` is the platform's public URL.
    pub async fn create(&self, by: &Caller, name: &str, base: &str) -> Result<NewRegistration> {
        by.require_role(&[chargeops_core::Role::Admin])?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("name must be 1 to 100 characters"));
        }
        let token = format!("ocpi_a_{}", random_hex(24));
        let p = Partner {
            id: format!("p_{}", random_hex(8)),
            name: name.to_owned(),
            token_a: Some(token_digest(&token)),
            token_c: None,
            token_b: None,
            versions_url: None,
            endpoints: Vec::new(),
            roles: Vec::new(),
            created_at: self.platform.now(),
            registered_at: None,
        };
        self.save(&p).await?;
        tracing::info!(partner = %p.id, name = %p.name, by = %by.name, "OCPI registration made");
        Ok(NewRegistration {
            id: p.id,
            name: p.name,
            token,
            versions_url: format!("{base}/ocpi/versions"),
        })
    }

    /// The partner a token belongs to, and which of its tokens it is.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
    ) -> std::result::Result<(Partner, TokenKind), Refusal> {
        let token = token.ok_or_else(Refusal::unauthorized)?;
        let digest = token_digest(token);
        for p in self.all().await? {
            if p.token_c.as_deref() == Some(&digest) {
                return Ok((p, TokenKind::Registered));
            }
            if p.token_a.as_deref() == Some(&digest) {
                return Ok((p, TokenKind::Registration));
            }
        }
        Err(Refusal::unauthorized())
    }

    /// `GET /ocpi/versions`.
    pub fn versions(&self, base: &str) -> Vec<Version> {
        vec![Version {
            version: chargeops_ocpi::VERSION.to_owned(),
            url: format!("{base}/ocpi/{}", chargeops_ocpi::VERSION),
        }]
    }

    /// `GET /ocpi/2.2.1`.
    pub fn details(&self, base: &str) -> VersionDetails {
        let url = |m: &str| format!("{base}/ocpi/{}/{m}", chargeops_ocpi::VERSION);
        VersionDetails {
            version: chargeops_ocpi::VERSION.to_owned(),
            endpoints: vec![
                Endpoint {
                    identifier: "credentials".into(),
                    role: InterfaceRole::Sender,
                    url: url("credentials"),
                },
                Endpoint {
                    identifier: "credentials".into(),
                    role: InterfaceRole::Receiver,
                    url: url("credentials"),
                },
                Endpoint {
                    identifier: "locations".into(),
                    role: InterfaceRole::Sender,
                    url: url("locations"),
                },
            ],
        }
    }

    fn ours(&self, token: String, base: &str) -> Credentials {
        Credentials {
            token,
            url: format!("{base}/ocpi/versions"),
            roles: vec![CredentialsRole {
                role: "CPO".into(),
                business_details: BusinessDetails {
                    name: self.party.operator.clone(),
                    website: None,
                },
                party_id: self.party.party_id.clone(),
                country_code: self.party.country_code.clone(),
            }],
        }
    }

    /// `GET /credentials`: the platform's credentials, with the token the partner uses now.
    pub fn credentials(&self, token: &str, base: &str) -> Credentials {
        self.ours(token.to_owned(), base)
    }

    /// `POST /credentials` (register, with token A) and `PUT /credentials` (update, with token
    /// C): reads the partner's versions with its token B, keeps them, answers a new token C.
    pub async fn register(
        &self,
        mut partner: Partner,
        kind: TokenKind,
        theirs: Credentials,
        update: bool,
        base: &str,
    ) -> std::result::Result<Credentials, Refusal> {
        match (update, kind) {
            (false, TokenKind::Registered) => {
                return Err(Refusal::new(
                    405,
                    StatusCode::CLIENT_ERROR,
                    "already registered: update with PUT, or DELETE first",
                ));
            }
            (true, TokenKind::Registration) => {
                return Err(Refusal::new(
                    405,
                    StatusCode::CLIENT_ERROR,
                    "not registered yet: register with POST",
                ));
            }
            _ => {}
        }
        if let Some(problem) = theirs.problem() {
            return Err(Refusal::new(200, StatusCode::INVALID_PARAMETERS, problem));
        }
        let endpoints = fetch_endpoints(&theirs).await.map_err(|m| {
            tracing::warn!(partner = %partner.id, reason = %m, "OCPI partner's versions not readable");
            Refusal::new(200, StatusCode::UNABLE_TO_USE_CLIENT_API, m)
        })?;
        let token_c = format!("ocpi_c_{}", random_hex(24));
        partner.token_a = None;
        partner.token_c = Some(token_digest(&token_c));
        partner.token_b = Some(theirs.token.clone());
        partner.versions_url = Some(theirs.url.clone());
        partner.endpoints = endpoints;
        partner.roles = theirs.roles.clone();
        partner.registered_at = Some(self.platform.now());
        self.save(&partner).await?;
        tracing::info!(partner = %partner.id, name = %partner.name, update, "OCPI partner registered");
        Ok(self.ours(token_c, base))
    }

    /// `DELETE /credentials`: the partner is unregistered; its tokens stop working.
    pub async fn unregister(
        &self,
        partner: Partner,
        kind: TokenKind,
    ) -> std::result::Result<(), Refusal> {
        if kind != TokenKind::Registered {
            return Err(Refusal::new(
                405,
                StatusCode::CLIENT_ERROR,
                "not registered",
            ));
        }
        self.platform
            .store
            .delete_document(KIND, &partner.id)
            .await
            .map_err(Error::from)?;
        self.changed();
        tracing::info!(partner = %partner.id, name = %partner.name, "OCPI partner unregistered");
        Ok(())
    }

    /// Every Location of the network, in station id order.
    pub async fn locations(&self) -> Result<Vec<Location>> {
        let mut stations = self.platform.store.list_stations().await?;
        stations.sort_by(|a, b| a.id.cmp(&b.id));
        let chargers = self.platform.store.list_chargers().await?;
        let mut by_station: std::collections::HashMap<&str, Vec<&chargeops_core::Charger>> =
            Default::default();
        for c in &chargers {
            by_station.entry(c.station_id.as_str()).or_default().push(c);
        }
        Ok(stations
            .iter()
            .filter_map(|s| {
                let held = by_station.get(s.id.as_str()).map_or(&[][..], Vec::as_slice);
                self.location_of(s, held)
            })
            .collect())
    }

    /// The Location of `station` with its `chargers`, their connectors as they are now.
    fn location_of(
        &self,
        station: &chargeops_core::Station,
        chargers: &[&chargeops_core::Charger],
    ) -> Option<Location> {
        let connectors: Vec<Vec<chargeops_core::ConnectorState>> = chargers
            .iter()
            .map(|c| {
                self.platform
                    .live
                    .snapshot(&c.id)
                    .map(|s| s.connectors)
                    .unwrap_or_default()
            })
            .collect();
        let views: Vec<ChargerView<'_>> = chargers
            .iter()
            .zip(&connectors)
            .map(|(c, connectors)| ChargerView {
                id: &c.id,
                connectors,
                equipment: Equipment::default(),
                updated_at: c.last_boot_at.unwrap_or(c.created_at),
            })
            .collect();
        let earliest = chargers
            .iter()
            .map(|c| c.created_at)
            .min()
            .unwrap_or_else(|| self.platform.now());
        network::location(&self.party, station, &views, earliest)
    }

    /// One Location; `Refusal` 404 / 2003 when there is none.
    pub async fn location(&self, id: &str) -> std::result::Result<Location, Refusal> {
        let unknown = || {
            Refusal::new(
                404,
                StatusCode::UNKNOWN_LOCATION,
                format!("unknown location {id:?}"),
            )
        };
        let station = self
            .platform
            .store
            .get_station(id)
            .await
            .map_err(Error::from)?
            .ok_or_else(unknown)?;
        let chargers = self
            .platform
            .store
            .list_chargers()
            .await
            .map_err(Error::from)?;
        let held: Vec<&chargeops_core::Charger> =
            chargers.iter().filter(|c| c.station_id == id).collect();
        self.location_of(&station, &held).ok_or_else(unknown)
    }

    pub async fn evse(&self, id: &str, uid: &str) -> std::result::Result<Evse, Refusal> {
        self.location(id)
            .await?
            .evses
            .into_iter()
            .find(|e| e.uid == uid)
            .ok_or_else(|| {
                Refusal::new(
                    404,
                    StatusCode::UNKNOWN_LOCATION,
                    format!("unknown EVSE {uid:?} at {id:?}"),
                )
            })
    }
}

/// Reads a partner's versions and its 2.2.1 endpoints with its token.
async fn fetch_endpoints(theirs: &Credentials) -> std::result::Result<Vec<Endpoint>, String> {
    #[derive(Deserialize)]
    struct Reply<T> {
        data: Option<T>,
        status_code: u16,
    }
    let client = reqwest::Client::builder()
        .timeout(PARTNER_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let auth = authorization(&theirs.token);
    let get = |url: String| {
        let (client, auth) = (client.clone(), auth.clone());
        async move {
            let resp = client
                .get(&url)
                .header("Authorization", auth)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {}", chargeops_core::error::chain(&e)))?;
            if !resp.status().is_success() {
                return Err(format!("GET {url}: HTTP {}", resp.status()));
            }
            resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))
        }
    };
    let body = get(theirs.url.clone()).await?;
    let versions: Reply<Vec<Version>> =
        serde_json::from_slice(&body).map_err(|e| format!("the versions are not OCPI: {e}"))?;
    if versions.status_code != 1000 {
        return Err(format!(
            "the versions answered status {}",
            versions.status_code
        ));
    }
    let url = versions
        .data
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.version == chargeops_ocpi::VERSION)
        .map(|v| v.url)
        .ok_or_else(|| format!("the partner offers no version {}", chargeops_ocpi::VERSION))?;
    let body = get(url).await?;
    let details: Reply<VersionDetails> = serde_json::from_slice(&body)
        .map_err(|e| format!("the version details are not OCPI: {e}"))?;
    Ok(details.data.map(|d| d.endpoints).unwrap_or_default())
}

/// A status change waiting to reach one partner: the latest for its EVSE only.
struct Push {
    url: String,
    token: String,
    body: serde_json::Value,
    /// Bumped when a newer status replaces the body.
    version: u64,
    in_flight: bool,
    attempts: u32,
    due: std::time::Instant,
}

/// The partners the pushes go to, as last read.
struct Receivers {
    /// (partner id, the EVSE PATCH base URL, token B).
    list: Vec<(String, String, String)>,
    generation: u64,
    read_at: std::time::Instant,
}

/// What one send came back with.
struct Sent {
    key: (String, String),
    version: u64,
    result: std::result::Result<(), String>,
}

/// The longest wait between two tries of a push to a partner that does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Partners {
    /// Starts the push duty: every EVSE status change goes to each registered partner that
    /// receives locations, as a PATCH of the EVSE. It runs beside the charger's path (the bus),
    /// never in it; a partner that is down gets the latest status of each EVSE when it is back
    /// (pushes coalesce per partner and EVSE, so memory stays bounded by the EVSEs), retried
    /// with backoff up to a minute.
    pub fn start(self: &std::sync::Arc<Self>, duties: &crate::Duties) {
        let me = self.clone();
        duties.start("partner pushes", move |_stop| {
            let events = me.platform.events();
            me.clone().push_loop(events)
        });
    }

    async fn read_receivers(&self) -> Receivers {
        Receivers {
            generation: self.generation(),
            list: self.receivers().await,
            read_at: std::time::Instant::now(),
        }
    }

    /// Reads the receivers again when a registration changed here, or every
    /// [`RECEIVERS_EVERY`] (a change made on another node).
    async fn refresh(&self, r: &mut Receivers) {
        if r.generation != self.generation() || r.read_at.elapsed() >= RECEIVERS_EVERY {
            *r = self.read_receivers().await;
        }
    }

    /// The registered partners that receive locations: (id, the EVSE PATCH base, token B).
    async fn receivers(&self) -> Vec<(String, String, String)> {
        match self.all().await {
            Ok(all) => all
                .into_iter()
                .filter_map(|p| {
                    let token = p.token_b.clone()?;
                    p.token_c.as_ref()?;
                    let url = p
                        .endpoints
                        .iter()
                        .find(|e| e.identifier == "locations" && e.role == InterfaceRole::Receiver)?
                        .url
                        .trim_end_matches('/')
                        .to_owned();
                    Some((p.id, url, token))
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e.message, "OCPI partners not readable; pushes wait");
                Vec::new()
            }
        }
    }

    /// The EVSE of `charger_id` numbered `evse_id`, as a partner sees it now.
    fn evse_now(&self, charger_id: &str, evse_id: u32) -> Option<Evse> {
        let snapshot = self.platform.live.snapshot(charger_id)?;
        let view = ChargerView {
            id: charger_id,
            connectors: &snapshot.connectors,
            equipment: Equipment::default(),
            updated_at: snapshot
                .connectors
                .iter()
                .map(|c| c.updated_at)
                .min()
                .unwrap_or_else(|| self.platform.now()),
        };
        let uid = network::evse_uid(charger_id, evse_id);
        network::evses(&self.party, &view)
            .into_iter()
            .find(|e| e.uid == uid)
    }

    async fn push_loop(
        self: std::sync::Arc<Self>,
        mut events: tokio::sync::broadcast::Receiver<chargeops_core::Event>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        let client = match reqwest::Client::builder().timeout(PARTNER_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "OCPI pushes off: no HTTP client");
                return;
            }
        };
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Sent>();
        let mut pending: std::collections::HashMap<(String, String), Push> = Default::default();
        let mut receivers = self.read_receivers().await;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(chargeops_core::Event::StatusChanged { charger_id, station_id, evse_id, .. }) => {
                        self.refresh(&mut receivers).await;
                        if receivers.list.is_empty() {
                            continue;
                        }
                        let Some(evse) = self.evse_now(&charger_id, evse_id) else { continue };
                        let body = serde_json::json!({"status": evse.status, "last_updated": evse.last_updated});
                        for (partner, base, token) in &receivers.list {
                            let url = format!(
                                "{base}/{}/{}/{station_id}/{}",
                                self.party.country_code, self.party.party_id, evse.uid
                            );
                            let key = (partner.clone(), format!("{station_id}/{}", evse.uid));
                            let entry = pending.entry(key).or_insert_with(|| Push {
                                url: url.clone(),
                                token: token.clone(),
                                body: serde_json::Value::Null,
                                version: 0,
                                in_flight: false,
                                attempts: 0,
                                due: std::time::Instant::now(),
                            });
                            entry.url = url;
                            entry.token = token.clone();
                            entry.body = body.clone();
                            entry.version += 1;
                            // A partner being retried keeps its backoff: the newer status
                            // goes with the next try.
                        }
                        // At once, not at the next tick: a status is news for a few seconds.
                        send_due(&mut pending, &client, &done_tx);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "OCPI pushes fell behind the event bus; some status changes go out only with the next change");
                    }
                    Err(RecvError::Closed) => return,
                },
                Some(sent) = done_rx.recv() => {
                    let now = self.platform.now();
                    {
                        let mut stats = self.stats();
                        let st = stats.entry(sent.key.0.clone()).or_default();
                        match &sent.result {
                            Ok(()) => {
                                st.delivered += 1;
                                st.last_delivered_at = Some(now);
                            }
                            Err(reason) => {
                                st.failed += 1;
                                st.last_error = Some(reason.clone());
                                st.last_error_at = Some(now);
                            }
                        }
                    }
                    let Some(p) = pending.get_mut(&sent.key) else { continue };
                    p.in_flight = false;
                    match sent.result {
                        Ok(()) if p.version == sent.version => {
                            pending.remove(&sent.key);
                        }
                        // The partner is up; the newer status goes now.
                        Ok(()) => {
                            p.attempts = 0;
                            p.due = std::time::Instant::now();
                        }
                        Err(reason) => {
                            p.attempts += 1;
                            let wait = Duration::from_secs(1 << p.attempts.min(6)).min(MAX_BACKOFF);
                            p.due = std::time::Instant::now() + wait;
                            if p.attempts.is_power_of_two() {
                                tracing::warn!(partner = %sent.key.0, evse = %sent.key.1, attempts = p.attempts, %reason, "OCPI push not delivered; trying again");
                            }
                        }
                    }
                    send_due(&mut pending, &client, &done_tx);
                }
                _ = tick.tick() => {
                    {
                        let mut stats = self.stats();
                        for st in stats.values_mut() {
                            st.queued = 0;
                        }
                        for (partner, _) in pending.keys() {
                            stats.entry(partner.clone()).or_default().queued += 1;
                        }
                    }
                    self.refresh(&mut receivers).await;
                    send_due(&mut pending, &client, &done_tx);
                }
            }
        }
    }
}

/// Sends every push that is due and not on its way, each on a task of its own; the outcome
/// comes back on `done`.
fn send_due(
    pending: &mut std::collections::HashMap<(String, String), Push>,
    client: &reqwest::Client,
    done: &tokio::sync::mpsc::UnboundedSender<Sent>,
) {
    let now = std::time::Instant::now();
    for (key, p) in pending
        .iter_mut()
        .filter(|(_, p)| !p.in_flight && p.due <= now)
    {
        p.in_flight = true;
        let done = done.clone();
        let (key, version) = (key.clone(), p.version);
        let request = client
            .patch(&p.url)
            .header("Authorization", authorization(&p.token))
            .json(&p.body);
        tokio::spawn(async move {
            let result = match request.send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(chargeops_core::error::chain(&e)),
            };
            let _ = done.send(Sent {
                key,
                version,
                result,
            });
        });
    }
}
