//! The operations service: cases (hotline, board, crew orders), crews, the FAQ, API tokens per
//! person and the audit log, and the detection duty ([`runner`]) that opens, merges, verifies
//! and closes cases from the event bus. The rules of cases live in `chargeops-ops`; this
//! service decides who may do what to a case, keeps cases in the store and tells the event bus.
//!
//! Roles: `agent` (hotline) opens and follows cases and closes questions; `dispatcher` assigns
//! crews and closes or reopens cases; `crew` works its own crew's orders (accept, en route, on
//! site, resolve, remote reset and unlock); `operator` and `admin` may do all of that, and only
//! `admin` makes tokens and reads the audit log. `viewer` reads.
//!
//! Every read-modify-write of cases, from a caller or from the detection duty, holds one lock,
//! so two changes to a case never interleave.

mod runner;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use chargeops_core::secret::{random_hex, token_digest};
use chargeops_core::{Command, CommandReply, Event, Role};
use chargeops_gateway::valid_charger_id;
use chargeops_ops::cases::{self, Call};
use chargeops_ops::dispatch::{self, Proposal};
use chargeops_ops::faq::{self, FaqEntry};
use chargeops_ops::stats;
use chargeops_ops::{
    Action, AuditEntry, Case, CaseKind, CaseState, Category, Crew, OpsConfig, TimelineEntry,
};
use chargeops_store::CaseFilter;

use crate::{Caller, Duties, Error, ErrorKind, Platform, Result};

/// Longest description or note accepted, in bytes: a call's notes, not a document.
pub const MAX_TEXT_BYTES: usize = 4096;
const MAX_PARTS: usize = 20;

/// Who assigns crews, reopens cases and sees proposals.
pub const MANAGERS: &[Role] = &[Role::Dispatcher, Role::Operator, Role::Admin];
/// Who opens cases from calls.
pub const HOTLINE: &[Role] = &[Role::Agent, Role::Dispatcher, Role::Operator, Role::Admin];
/// Who sends a remote command to a case's charger.
pub const REMOTE: &[Role] = &[Role::Crew, Role::Operator, Role::Admin];
/// Who reads the case statistics.
pub const STATS_READERS: &[Role] = &[
    Role::Agent,
    Role::Dispatcher,
    Role::Operator,
    Role::Admin,
    Role::Viewer,
];
/// Who makes API tokens and reads the audit log.
pub const ADMINS: &[Role] = &[Role::Admin];
/// Who works an order on site.
const CREW_WORK: &[Role] = &[Role::Crew, Role::Dispatcher, Role::Operator, Role::Admin];
/// Who writes a note on a case.
const NOTE_TAKERS: &[Role] = &[
    Role::Agent,
    Role::Crew,
    Role::Dispatcher,
    Role::Operator,
    Role::Admin,
];

/// The operations loop of the platform.
pub struct Operations {
    platform: Platform,
    config: RwLock<OpsConfig>,
    /// Serialises every read-modify-write of cases, between callers and the detection duty.
    cases: tokio::sync::Mutex<()>,
    /// Chargers with an open case, so the common event (a session on a healthy charger) needs
    /// no store read.
    open_chargers: Mutex<HashSet<String>>,
}

/// A case as it is shown to one caller: with the time left on its SLA, whether it is breached
/// by now, and the caller's phone number masked for crews and viewers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CaseView {
    #[serde(flatten)]
    pub case: Case,
    /// Minutes to the SLA deadline while work is open (negative once past it).
    pub sla_left_min: Option<i64>,
    /// On a case made from a call: whether the call joined a case already open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<bool>,
    /// On a single case: its history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineEntry>>,
}

/// What cases to list. `state` is `open`, `closed` or `all` (the default).
#[derive(Debug, Default, Deserialize)]
pub struct CaseQuery {
    pub charger: Option<String>,
    pub station: Option<String>,
    pub crew: Option<String>,
    pub state: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<u32>,
}

/// A hotline call as the agent records it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCall {
    pub station_id: String,
    pub charger_id: Option<String>,
    pub connector_id: Option<u32>,
    pub category: String,
    pub caller_phone: String,
    pub description: String,
}

/// What an action on a case may carry.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionInput {
    pub crew_id: Option<String>,
    pub note: Option<String>,
    pub parts: Option<Vec<String>>,
}

/// What a remote command on a case's charger may carry.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteInput {
    pub connector_id: Option<u32>,
    pub hard: Option<bool>,
}

/// The crews proposed for a case, best first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Proposals {
    pub case_id: i64,
    pub proposed: Option<String>,
    pub crews: Vec<Proposal>,
}

/// An API token for one person.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: String,
    pub crew_id: Option<String>,
}

/// A new API token: the secret is shown this once; the store keeps only its digest.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    pub id: i64,
    pub name: String,
    pub role: &'static str,
    pub crew_id: Option<String>,
    pub token: String,
}

/// A case id as it is written in a path.
pub fn case_id(text: &str) -> Result<i64> {
    text.parse()
        .map_err(|_| Error::invalid("case id must be an integer"))
}

fn faq_entries() -> &'static [FaqEntry] {
    static FAQ: OnceLock<Vec<FaqEntry>> = OnceLock::new();
    FAQ.get_or_init(|| {
        serde_json::from_str(include_str!("../../../data/ops/faq.json")).unwrap_or_else(|e| {
            tracing::error!(error = %e, "data/ops/faq.json is invalid; the FAQ is empty");
            Vec::new()
        })
    })
}

fn check_text(field: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid(format!("{field} must not be empty")));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Error::new(
            ErrorKind::Invalid,
            "too_long",
            format!(
                "{field} must be at most {MAX_TEXT_BYTES} bytes, got {}",
                text.len()
            ),
        ));
    }
    Ok(())
}

/// The action `name` with what it carries, checked.
pub fn parse_action(name: &str, input: ActionInput) -> Result<Action> {
    let note = input.note.filter(|n| !n.trim().is_empty());
    if let Some(n) = &note {
        check_text("note", n)?;
    }
    Ok(match name {
        "assign" => Action::Assign {
            crew_id: input
                .crew_id
                .ok_or_else(|| Error::invalid("assign needs `crew_id`"))?,
        },
        "accept" => Action::Accept,
        "en_route" => Action::EnRoute,
        "on_site" => Action::OnSite,
        "resolve" => {
            let parts = input.parts.unwrap_or_default();
            if parts.len() > MAX_PARTS || parts.iter().any(|p| p.trim().is_empty() || p.len() > 100)
            {
                return Err(Error::invalid(format!(
                    "parts must be at most {MAX_PARTS} names of 1 to 100 bytes"
                )));
            }
            Action::Resolve {
                note: note
                    .ok_or_else(|| Error::invalid("resolve needs a `note` saying what was done"))?,
                parts,
            }
        }
        "close" => Action::Close { note },
        "reopen" => Action::Reopen,
        "note" => Action::Note {
            text: note.ok_or_else(|| Error::invalid("note needs a `note`"))?,
        },
        other => {
            return Err(Error::not_found(format!(
                "unknown action {other:?}; known: assign, accept, en_route, on_site, resolve, close, reopen, note"
            )));
        }
    })
}

/// A crew member sees and works only their own crew's orders.
fn own_order(caller: &Caller, case: &Case) -> Result<()> {
    if caller.role != Role::Crew {
        return Ok(());
    }
    match (&caller.crew_id, &case.crew_id) {
        (Some(mine), Some(theirs)) if mine == theirs => Ok(()),
        _ => Err(Error::new(
            ErrorKind::Forbidden,
            "not_your_order",
            format!("case {} is not assigned to your crew", case.id),
        )),
    }
}

/// May `caller` do `action` to `case`?
fn may_act(caller: &Caller, case: &Case, action: &Action) -> Result<()> {
    match action {
        Action::Assign { .. } | Action::Reopen => caller.require_role(MANAGERS),
        Action::Accept | Action::EnRoute | Action::OnSite | Action::Resolve { .. } => {
            caller.require_role(CREW_WORK)?;
            own_order(caller, case)
        }
        Action::Close { .. } => {
            // An agent closes a question answered on the call, never a fault.
            let agent_may = caller.role == Role::Agent && case.category != Category::Fault;
            if agent_may {
                Ok(())
            } else {
                caller.require_role(MANAGERS)
            }
        }
        Action::Note { .. } => {
            caller.require_role(NOTE_TAKERS)?;
            own_order(caller, case)
        }
        // Only the platform verifies, after a session proves the repair.
        Action::Verify => Err(Error::forbidden()),
    }
}

/// `case` as `caller` may see it at `now`.
fn view(case: &Case, now: DateTime<Utc>, caller: &Caller) -> CaseView {
    let open_work = matches!(
        case.state,
        CaseState::New | CaseState::Assigned | CaseState::EnRoute | CaseState::OnSite
    );
    let mut shown = case.clone();
    shown.sla_breached = case.sla_breached || (open_work && now > case.sla_due_at);
    if matches!(caller.role, Role::Crew | Role::Viewer)
        && let Some(phone) = &case.caller_phone
    {
        shown.caller_phone = Some(cases::mask_phone(phone));
    }
    CaseView {
        case: shown,
        sla_left_min: open_work.then(|| (case.sla_due_at - now).num_minutes()),
        merged: None,
        timeline: None,
    }
}

fn open_filter() -> CaseFilter {
    CaseFilter {
        open: Some(true),
        ..CaseFilter::default()
    }
}

impl Operations {
    pub fn new(platform: Platform) -> Arc<Self> {
        Arc::new(Operations {
            platform,
            config: RwLock::new(OpsConfig::default()),
            cases: tokio::sync::Mutex::new(()),
            open_chargers: Mutex::new(HashSet::new()),
        })
    }

    /// Takes `config` (SLAs, thresholds) and starts the detection duty unless it is disabled;
    /// cases can be worked either way.
    pub(crate) fn start(self: &Arc<Self>, duties: &Duties, config: OpsConfig) {
        self.set_config(config.clone());
        if !config.enabled {
            tracing::info!("operations detection is disabled");
            return;
        }
        let ops = self.clone();
        duties.start("ops-detection", move |_stop| {
            // Subscribed before the duty runs, so no event after the start is missed.
            let events = ops.platform.events();
            runner::run(ops.clone(), config.clone(), events)
        });
    }

    /// Drops the set of chargers with an open case (the duties moved); the detection duty
    /// reads it again from the store when it starts.
    pub(crate) fn forget(&self) {
        self.open_chargers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn config(&self) -> OpsConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_config(&self, config: OpsConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    fn has_open_case(&self, charger_id: &str) -> bool {
        self.open_chargers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(charger_id)
    }

    fn note_open(&self, charger_id: &str, open: bool) {
        let mut set = self.open_chargers.lock().unwrap_or_else(|e| e.into_inner());
        if open {
            set.insert(charger_id.to_owned());
        } else {
            set.remove(charger_id);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Saving cases.

    /// Stores a changed case with its new timeline entries and tells everyone.
    async fn save(&self, case: &Case, entries: &[TimelineEntry]) -> Result<()> {
        self.platform.fence()?;
        self.platform.store.update_case(case, entries).await?;
        self.announce(case);
        Ok(())
    }

    async fn insert(&self, case: &Case, entries: &[TimelineEntry]) -> Result<Case> {
        self.platform.fence()?;
        let case = self.platform.store.insert_case(case, entries).await?;
        self.announce(&case);
        Ok(case)
    }

    fn announce(&self, case: &Case) {
        if let Some(charger) = &case.charger_id {
            if case.state.is_open() {
                self.note_open(charger, true);
            }
            // Closing one case leaves the charger in the set; the detection duty's refresh
            // drops it once no case is open, and a stale entry only costs one store read.
        }
        self.platform.publish(Event::CaseChanged {
            case_id: case.id,
            station_id: case.station_id.clone(),
            charger_id: case.charger_id.clone(),
            kind: case.kind.as_str().to_owned(),
            state: case.state.as_str().to_owned(),
            crew_id: case.crew_id.clone(),
            at: self.platform.now(),
        });
    }

    async fn load(&self, id: i64) -> Result<Case> {
        self.platform
            .store
            .get_case(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("case {id} not found")))
    }

    async fn open_cases_of(&self, charger_id: &str) -> Result<Vec<Case>> {
        Ok(self
            .platform
            .store
            .list_cases(&CaseFilter {
                charger_id: Some(charger_id.to_owned()),
                ..open_filter()
            })
            .await?)
    }

    // -----------------------------------------------------------------------------------------
    // Listing and reading cases.

    /// Cases matching `q`, newest first; a crew sees only its own orders.
    pub async fn list(&self, caller: &Caller, q: CaseQuery) -> Result<Vec<CaseView>> {
        let open = match q.state.as_deref().unwrap_or("all") {
            "open" => Some(true),
            "closed" => Some(false),
            "all" => None,
            other => {
                return Err(Error::invalid(format!(
                    "state must be open, closed or all, not {other:?}"
                )));
            }
        };
        let kind = match q.kind.as_deref() {
            None => None,
            Some(k) => Some(
                CaseKind::parse(k)
                    .ok_or_else(|| Error::invalid(format!("unknown case kind {k:?}")))?,
            ),
        };
        let crew_id = if caller.role == Role::Crew {
            Some(caller.crew_id.clone().ok_or_else(Error::forbidden)?)
        } else {
            q.crew
        };
        let cases = self
            .platform
            .store
            .list_cases(&CaseFilter {
                charger_id: q.charger,
                station_id: q.station,
                crew_id,
                kind,
                open,
                since: None,
                limit: Some(q.limit.unwrap_or(500).min(10_000)),
            })
            .await?;
        let now = self.platform.now();
        Ok(cases.iter().map(|c| view(c, now, caller)).collect())
    }

    /// One case with its timeline.
    pub async fn get(&self, caller: &Caller, id: i64) -> Result<CaseView> {
        let case = self.load(id).await?;
        own_order(caller, &case)?;
        let timeline = self.platform.store.case_timeline(case.id).await?;
        let mut v = view(&case, self.platform.now(), caller);
        v.timeline = Some(timeline);
        Ok(v)
    }

    // -----------------------------------------------------------------------------------------
    // The hotline.

    /// Opens a case from a call, or adds the call to the open case of the same fault the
    /// charger already told of (`merged` says which).
    pub async fn create_from_call(&self, caller: &Caller, new: NewCall) -> Result<CaseView> {
        caller.require_role(HOTLINE)?;
        let category = Category::parse(&new.category).ok_or_else(|| {
            Error::invalid(format!(
                "category must be fault, station_question or business_question, not {:?}",
                new.category
            ))
        })?;
        if !cases::valid_phone(&new.caller_phone) {
            return Err(Error::invalid(
                "caller_phone must be a phone number: 5 to 15 digits, optionally a leading + and spaces or dashes",
            ));
        }
        check_text("description", &new.description)?;
        if new.connector_id.is_some_and(|c| c == 0 || c > 99) {
            return Err(Error::invalid("connector_id must be 1 to 99"));
        }
        if new.connector_id.is_some() && new.charger_id.is_none() {
            return Err(Error::invalid("connector_id needs charger_id"));
        }
        let store = &self.platform.store;
        if !valid_charger_id(&new.station_id) || store.get_station(&new.station_id).await?.is_none()
        {
            return Err(Error::not_found(format!(
                "station {:?} not found",
                new.station_id
            )));
        }
        if let Some(charger_id) = &new.charger_id {
            match store.get_charger(charger_id).await? {
                None => {
                    return Err(Error::not_found(format!(
                        "charger {charger_id:?} not found"
                    )));
                }
                Some(c) if c.station_id != new.station_id => {
                    return Err(Error::invalid(format!(
                        "charger {charger_id} is at station {}, not {}",
                        c.station_id, new.station_id
                    )));
                }
                Some(_) => {}
            }
        }
        let call = Call {
            station_id: new.station_id,
            charger_id: new.charger_id,
            connector_id: new.connector_id,
            category,
            caller_phone: new.caller_phone.trim().to_owned(),
            description: new.description,
        };
        let now = self.platform.now();
        let config = self.config();
        let _guard = self.cases.lock().await;
        // A call about a fault the charger already told us of joins that case.
        if let Some(charger_id) = &call.charger_id {
            let open = self.open_cases_of(charger_id).await?;
            if let Some(existing) = cases::matching_detected(&call, &open) {
                let mut case = existing.clone();
                if case.caller_phone.is_none() {
                    case.caller_phone = Some(call.caller_phone.clone());
                }
                if case.description.is_none() {
                    case.description = Some(call.description.clone());
                }
                let entry = TimelineEntry::new(
                    now,
                    caller.name.clone(),
                    "merged",
                    case.state,
                    format!(
                        "call from {} about the same fault: {}",
                        cases::mask_phone(&call.caller_phone),
                        call.description.chars().take(200).collect::<String>()
                    ),
                );
                self.save(&case, &[entry]).await?;
                tracing::info!(case_id = case.id, by = %caller.name, "hotline call merged into an open case");
                let mut v = view(&case, now, caller);
                v.merged = Some(true);
                return Ok(v);
            }
        }
        let (case, entry) = cases::open_hotline(&call, &caller.name, now, &config);
        let case = self.insert(&case, &[entry]).await?;
        tracing::info!(case_id = case.id, station_id = %case.station_id, category = %case.category, by = %caller.name, "hotline case opened");
        let mut v = view(&case, now, caller);
        v.merged = Some(false);
        Ok(v)
    }

    // -----------------------------------------------------------------------------------------
    // Dispatch and crew actions.

    /// Does `action` to case `id` as `caller`, if their role allows it on this case.
    pub async fn act(&self, caller: &Caller, id: i64, action: Action) -> Result<CaseView> {
        let _guard = self.cases.lock().await;
        let mut case = self.load(id).await?;
        may_act(caller, &case, &action)?;
        let now = self.platform.now();
        let crew = match &action {
            Action::Assign { crew_id } => Some(
                self.platform
                    .store
                    .get_crew(crew_id)
                    .await?
                    .ok_or_else(|| Error::not_found(format!("crew {crew_id:?} not found")))?,
            ),
            _ => None,
        };
        let mut entry = cases::apply(&mut case, &action, &caller.name, now)
            .map_err(|e| Error::conflict("invalid_transition", e.to_string()))?;
        if let Some(crew) = &crew {
            entry.detail = format!("{} ({})", entry.detail, crew.name);
        }
        if let Action::Close { note: Some(n) } = &action {
            entry.detail = n.clone();
        }
        self.save(&case, &[entry]).await?;
        // A crew on site is where the station is: the next proposal starts from there.
        if action == Action::OnSite
            && let Some(crew_id) = &case.crew_id
        {
            self.move_crew_to_station(crew_id, &case.station_id).await;
        }
        tracing::info!(case_id = case.id, action = action.name(), state = %case.state, by = %caller.name, "case changed");
        Ok(view(&case, now, caller))
    }

    async fn move_crew_to_station(&self, crew_id: &str, station_id: &str) {
        let store = &self.platform.store;
        let (Ok(Some(mut crew)), Ok(Some(station))) = (
            store.get_crew(crew_id).await,
            store.get_station(station_id).await,
        ) else {
            return;
        };
        if let (Some(lat), Some(lon)) = (station.lat, station.lon) {
            crew.lat = lat;
            crew.lon = lon;
            if let Err(e) = store.upsert_crew(&crew).await {
                tracing::warn!(crew_id, error = %e, "could not record the crew's position");
            }
        }
    }

    /// Open orders per crew, for proposals.
    async fn open_orders(&self) -> Result<HashMap<String, usize>> {
        let open = self.platform.store.list_cases(&open_filter()).await?;
        let mut counts = HashMap::new();
        for c in open.iter().filter(|c| {
            matches!(
                c.state,
                CaseState::Assigned | CaseState::EnRoute | CaseState::OnSite
            )
        }) {
            if let Some(crew) = &c.crew_id {
                *counts.entry(crew.clone()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    async fn proposals_for(&self, case: &Case) -> Result<Vec<Proposal>> {
        let store = &self.platform.store;
        let crews = store.list_crews().await?;
        let station = store.get_station(&case.station_id).await?;
        let position = station.and_then(|s| Some((s.lat?, s.lon?)));
        let mut orders = self.open_orders().await?;
        // The case's own crew is not busier for having it.
        if let Some(mine) = &case.crew_id
            && let Some(n) = orders.get_mut(mine)
        {
            *n = n.saturating_sub(1);
        }
        Ok(dispatch::rank(
            case,
            position,
            &crews,
            |id| orders.get(id).copied().unwrap_or(0),
            self.platform.now(),
        ))
    }

    /// The crews to propose for case `id`, best first.
    pub async fn proposals(&self, caller: &Caller, id: i64) -> Result<Proposals> {
        caller.require_role(MANAGERS)?;
        let case = self.load(id).await?;
        let ranked = self.proposals_for(&case).await?;
        Ok(Proposals {
            case_id: case.id,
            proposed: ranked.first().map(|p| p.crew_id.clone()),
            crews: ranked,
        })
    }

    /// A remote action a crew may trigger on its order's charger (`reset`, `unlock-connector`),
    /// through the same command path as the operators', written to the case's timeline
    /// whatever the charger answers.
    pub async fn remote(
        &self,
        caller: &Caller,
        id: i64,
        name: &str,
        input: RemoteInput,
    ) -> Result<CommandReply> {
        caller.require_role(REMOTE)?;
        let case = self.load(id).await?;
        own_order(caller, &case)?;
        if !case.state.is_open() {
            return Err(Error::conflict(
                "case_closed",
                format!("case {} is closed", case.id),
            ));
        }
        let charger_id = case
            .charger_id
            .clone()
            .ok_or_else(|| Error::invalid("this case names no charger"))?;
        let command = match name {
            "reset" => Command::Reset {
                hard: input.hard.unwrap_or(false),
            },
            "unlock-connector" => Command::UnlockConnector {
                evse_id: None,
                connector_id: input
                    .connector_id
                    .or(case.connector_id)
                    .ok_or_else(|| Error::invalid("unlock-connector needs `connector_id`"))?,
            },
            other => {
                return Err(Error::not_found(format!(
                    "unknown remote action {other:?}; known: reset, unlock-connector"
                )));
            }
        };
        tracing::info!(case_id = case.id, charger_id, command = name, by = %caller.name, "remote action requested");
        let result = self.platform.gateway.command(&charger_id, command).await;
        let detail = match &result {
            Ok(reply) => format!("{name} sent to {charger_id}: {}", reply.status),
            Err(e) => format!("{name} to {charger_id} failed: {e}"),
        };
        {
            let _guard = self.cases.lock().await;
            if let Ok(Some(current)) = self.platform.store.get_case(case.id).await {
                let entry = TimelineEntry::new(
                    self.platform.now(),
                    caller.name.clone(),
                    "remote_command",
                    current.state,
                    detail,
                );
                // The case itself is unchanged: a timeline line only, nothing to announce.
                self.platform.fence()?;
                self.platform.store.update_case(&current, &[entry]).await?;
            }
        }
        Ok(result?)
    }

    // -----------------------------------------------------------------------------------------
    // Statistics.

    /// Counts and mean time to repair per station and per kind, over every case.
    pub async fn stats(&self, caller: &Caller) -> Result<Vec<stats::Row>> {
        caller.require_role(STATS_READERS)?;
        let all = self
            .platform
            .store
            .list_cases(&CaseFilter::default())
            .await?;
        Ok(stats::summarize(&all))
    }

    /// [`Operations::stats`] as CSV.
    pub async fn stats_csv(&self, caller: &Caller) -> Result<String> {
        Ok(stats::to_csv(&self.stats(caller).await?))
    }

    // -----------------------------------------------------------------------------------------
    // Crews, FAQ, tokens, audit.

    pub async fn crews(&self) -> Result<Vec<Crew>> {
        Ok(self.platform.store.list_crews().await?)
    }

    /// Adds or replaces a crew after checking what it says of itself.
    pub async fn upsert_crew(&self, caller: &Caller, crew: Crew) -> Result<Crew> {
        caller.require_role(MANAGERS)?;
        if !valid_charger_id(&crew.id) {
            return Err(Error::invalid(
                "crew id must be 1-48 characters of letters, digits, '-', '_', '.', ':'",
            ));
        }
        if crew.name.trim().is_empty() || crew.name.len() > 200 {
            return Err(Error::invalid("crew name must be 1 to 200 bytes"));
        }
        if !((-90.0..=90.0).contains(&crew.lat) && (-180.0..=180.0).contains(&crew.lon)) {
            return Err(Error::invalid(
                "lat must be within -90..90 and lon within -180..180",
            ));
        }
        if crew.shift_start_hour > 24 || crew.shift_end_hour > 24 {
            return Err(Error::invalid("shift hours must be 0 to 24"));
        }
        if !(5.0..=200.0).contains(&crew.speed_kmh) {
            return Err(Error::invalid("speed_kmh must be 5 to 200"));
        }
        if crew.skills.len() > 20 || crew.skills.iter().any(|s| s.is_empty() || s.len() > 40) {
            return Err(Error::invalid(
                "skills must be at most 20 names of 1 to 40 bytes",
            ));
        }
        self.platform.store.upsert_crew(&crew).await?;
        Ok(crew)
    }

    /// The hotline's answers matching `text` (every answer for an empty text).
    pub fn faq(&self, text: &str) -> Result<Vec<FaqEntry>> {
        if text.len() > 200 {
            return Err(Error::invalid("q must be at most 200 bytes"));
        }
        Ok(faq::search(faq_entries(), text)
            .into_iter()
            .cloned()
            .collect())
    }

    /// An admin makes a token for one person; it is shown once and stored as a digest.
    pub async fn create_token(&self, caller: &Caller, new: NewToken) -> Result<IssuedToken> {
        caller.require_role(ADMINS)?;
        let role = Role::parse(&new.role).ok_or_else(|| {
            Error::invalid("role must be admin, operator, viewer, agent, dispatcher or crew")
        })?;
        if new.name.trim().is_empty() || new.name.len() > 100 {
            return Err(Error::invalid("name must be 1 to 100 bytes"));
        }
        let store = &self.platform.store;
        match (role, &new.crew_id) {
            (Role::Crew, None) => return Err(Error::invalid("a crew token needs `crew_id`")),
            (Role::Crew, Some(crew)) => {
                if store.get_crew(crew).await?.is_none() {
                    return Err(Error::not_found(format!("crew {crew:?} not found")));
                }
            }
            (_, Some(_)) => {
                return Err(Error::invalid("only a crew token names a `crew_id`"));
            }
            (_, None) => {}
        }
        let token = format!("co_{}", random_hex(24));
        let saved = store
            .insert_crew_token(
                new.name.trim(),
                role,
                &token_digest(&token),
                new.crew_id.as_deref(),
            )
            .await?;
        tracing::info!(token_id = saved.id, role = role.as_str(), by = %caller.name, "api token created");
        Ok(IssuedToken {
            id: saved.id,
            name: saved.name,
            role: role.as_str(),
            crew_id: saved.crew_id,
            token,
        })
    }

    /// Writes one line of the audit log: `caller` (or `unknown` when no one was recognised)
    /// asked for `action`, and it came to `status` with `detail`. A failed write is logged,
    /// never the caller's problem.
    pub async fn record_audit(
        &self,
        caller: Option<&Caller>,
        action: String,
        status: u16,
        detail: &str,
    ) {
        let (actor, role) = caller.map_or(("unknown".to_owned(), "none".to_owned()), |c| {
            (c.name.clone(), c.role.as_str().to_owned())
        });
        let entry = AuditEntry {
            id: 0,
            at: self.platform.now(),
            actor,
            role,
            action,
            status,
            detail: detail.chars().take(300).collect(),
        };
        if let Err(e) = self.platform.store.record_audit(&entry).await {
            tracing::error!(error = %e, action = %entry.action, "could not write the audit log");
        }
    }

    /// The newest `limit` lines of the audit log (200 unless said, at most 10,000).
    pub async fn audit_entries(
        &self,
        caller: &Caller,
        limit: Option<u32>,
    ) -> Result<Vec<AuditEntry>> {
        caller.require_role(ADMINS)?;
        Ok(self
            .platform
            .store
            .list_audit(limit.unwrap_or(200).clamp(1, 10_000))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, crew_id: Option<&str>) -> Caller {
        Caller {
            name: "someone".into(),
            role,
            crew_id: crew_id.map(str::to_owned),
        }
    }

    #[test]
    fn the_faq_loads() {
        assert!(!faq_entries().is_empty(), "data/ops/faq.json parses");
    }

    #[test]
    fn actions_are_parsed_with_what_they_carry() {
        assert!(parse_action("assign", ActionInput::default()).is_err());
        assert_eq!(
            parse_action("close", ActionInput::default()).ok(),
            Some(Action::Close { note: None })
        );
        let unknown = parse_action("explode", ActionInput::default()).err();
        assert_eq!(unknown.map(|e| e.kind), Some(ErrorKind::NotFound));
        let long = ActionInput {
            note: Some("x".repeat(MAX_TEXT_BYTES + 1)),
            ..ActionInput::default()
        };
        assert_eq!(
            parse_action("note", long).err().map(|e| e.code),
            Some("too_long")
        );
    }

    #[test]
    fn a_crew_acts_only_on_its_own_orders() {
        let mine = caller(Role::Crew, Some("c1"));
        let other = caller(Role::Crew, Some("c2"));
        let agent = caller(Role::Agent, None);
        let case = Case {
            crew_id: Some("c1".into()),
            ..sample_case()
        };
        assert!(may_act(&mine, &case, &Action::Accept).is_ok());
        assert_eq!(
            may_act(&other, &case, &Action::Accept)
                .err()
                .map(|e| e.code),
            Some("not_your_order")
        );
        assert!(may_act(&agent, &case, &Action::Accept).is_err());
        assert!(
            may_act(&agent, &case, &Action::Close { note: None }).is_err(),
            "an agent never closes a fault"
        );
        let question = Case {
            category: Category::StationQuestion,
            ..case.clone()
        };
        assert!(may_act(&agent, &question, &Action::Close { note: None }).is_ok());
        assert!(may_act(&caller(Role::Admin, None), &case, &Action::Verify).is_err());
    }

    #[test]
    fn crews_and_viewers_see_a_masked_phone() {
        let case = Case {
            caller_phone: Some("13800138000".into()),
            ..sample_case()
        };
        let now = case.opened_at;
        let agent = view(&case, now, &caller(Role::Agent, None));
        assert_eq!(agent.case.caller_phone.as_deref(), Some("13800138000"));
        let crew = view(&case, now, &caller(Role::Crew, Some("c1")));
        assert_ne!(crew.case.caller_phone.as_deref(), Some("13800138000"));
        assert!(agent.sla_left_min.is_some());
    }

    fn sample_case() -> Case {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        Case {
            id: 7,
            kind: CaseKind::Faulted,
            state: CaseState::Assigned,
            source: chargeops_ops::Source::Detected,
            category: Category::Fault,
            priority: chargeops_ops::Priority::High,
            station_id: "S1".into(),
            charger_id: Some("CP1".into()),
            connector_id: Some(1),
            title: "connector 1 faulted".into(),
            description: None,
            error_code: None,
            caller_phone: None,
            crew_id: None,
            opened_at: at,
            state_since: at,
            last_seen_at: at,
            sla_due_at: at + chrono::Duration::hours(4),
            sla_breached: false,
            resolved_at: None,
            closed_at: None,
            reopened: 0,
            resolution_note: None,
            parts_used: Vec::new(),
        }
    }
}
