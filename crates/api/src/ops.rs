//! The operations loop over HTTP: cases (hotline, board, crew orders), crews, the FAQ, tokens
//! per person, the audit log. The rules live in `chargeops-ops`; this module checks who may do
//! what, stores the outcome and tells the event bus.
//!
//! Roles: `agent` (hotline) opens and follows cases and closes questions; `dispatcher` assigns
//! crews and closes or reopens cases; `crew` works its own crew's orders (accept, en route, on
//! site, resolve, remote reset and unlock); `operator` and `admin` may do all of that, and only
//! `admin` makes tokens and reads the audit log. `viewer` reads.

mod audit;
pub mod runner;

use std::collections::HashSet;
use std::sync::{Arc, OnceLock, RwLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use chargeops_core::secret::{random_hex, token_digest};
use chargeops_core::{Command, Event, Role};
use chargeops_gateway::valid_charger_id;
use chargeops_ops::cases::{self, Call};
use chargeops_ops::dispatch;
use chargeops_ops::faq::{self, FaqEntry};
use chargeops_ops::stats;
use chargeops_ops::{Action, Case, CaseKind, CaseState, Category, Crew, OpsConfig, TimelineEntry};
use chargeops_store::CaseFilter;

pub(crate) use audit::audit;

use crate::{ApiError, AppState, Caller};

use crate::error::{ApiResult, body, query};

/// Longest description or note accepted, in bytes: a call's notes, not a document.
pub const MAX_TEXT_BYTES: usize = 4096;
const MAX_PARTS: usize = 20;

/// The operations loop's shared state inside [`AppState`].
#[derive(Default)]
pub struct OpsState {
    config: RwLock<OpsConfig>,
    /// Serialises every read-modify-write of cases, between the API and the detection task.
    pub(crate) cases: tokio::sync::Mutex<()>,
    /// Chargers with an open case, so the common event (a session on a healthy charger) needs
    /// no store read.
    open_chargers: std::sync::Mutex<HashSet<String>>,
}

impl OpsState {
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

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

const MANAGERS: &[Role] = &[Role::Dispatcher, Role::Operator, Role::Admin];

// ---------------------------------------------------------------------------------------------
// Saving and showing cases.

/// Stores a changed case with its new timeline entries and tells everyone.
pub(crate) async fn save(
    state: &AppState,
    case: &Case,
    entries: &[TimelineEntry],
) -> ApiResult<()> {
    state.store.update_case(case, entries).await?;
    announce(state, case);
    Ok(())
}

pub(crate) async fn insert(
    state: &AppState,
    case: &Case,
    entries: &[TimelineEntry],
) -> ApiResult<Case> {
    let case = state.store.insert_case(case, entries).await?;
    announce(state, &case);
    Ok(case)
}

fn announce(state: &AppState, case: &Case) {
    if let Some(charger) = &case.charger_id {
        let still_open = case.state.is_open();
        if still_open {
            state.ops.note_open(charger, true);
        }
        // Closing one case leaves the charger in the set; the detection task's refresh drops
        // it once no case is open, and a stale entry only costs one store read.
    }
    state.live.publish(Event::CaseChanged {
        case_id: case.id,
        station_id: case.station_id.clone(),
        charger_id: case.charger_id.clone(),
        kind: case.kind.as_str().to_owned(),
        state: case.state.as_str().to_owned(),
        crew_id: case.crew_id.clone(),
        at: state.live.now(),
    });
}

/// A case as the API shows it to `caller`: with the time left on its SLA, and the caller's
/// phone number hidden from crews and viewers.
fn view(case: &Case, now: DateTime<Utc>, caller: &Caller) -> Value {
    let mut v = serde_json::to_value(case).unwrap_or_else(|_| json!({}));
    let open_work = matches!(
        case.state,
        CaseState::New | CaseState::Assigned | CaseState::EnRoute | CaseState::OnSite
    );
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "sla_left_min".into(),
            if open_work {
                json!((case.sla_due_at - now).num_minutes())
            } else {
                Value::Null
            },
        );
        o.insert(
            "sla_breached".into(),
            json!(case.sla_breached || (open_work && now > case.sla_due_at)),
        );
        if matches!(caller.role, Role::Crew | Role::Viewer)
            && let Some(phone) = &case.caller_phone
        {
            o.insert("caller_phone".into(), json!(cases::mask_phone(phone)));
        }
    }
    v
}

async fn load(state: &AppState, id: &str) -> ApiResult<Case> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("case id must be an integer"))?;
    state
        .store
        .get_case(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("case {id} not found")))
}

/// A crew member sees and works only their own crew's orders.
fn own_order(caller: &Caller, case: &Case) -> ApiResult<()> {
    if caller.role != Role::Crew {
        return Ok(());
    }
    match (&caller.crew_id, &case.crew_id) {
        (Some(mine), Some(theirs)) if mine == theirs => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_your_order",
            format!("case {} is not assigned to your crew", case.id),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Listing and reading cases.

#[derive(Deserialize)]
pub(crate) struct CaseQuery {
    charger: Option<String>,
    station: Option<String>,
    crew: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn list_cases(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<CaseQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<Value>>> {
    let q = query(q)?;
    let open = match q.state.as_deref().unwrap_or("all") {
        "open" => Some(true),
        "closed" => Some(false),
        "all" => None,
        other => {
            return Err(ApiError::bad_request(format!(
                "state must be open, closed or all, not {other:?}"
            )));
        }
    };
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(
            CaseKind::parse(k)
                .ok_or_else(|| ApiError::bad_request(format!("unknown case kind {k:?}")))?,
        ),
    };
    let crew_id = if caller.role == Role::Crew {
        Some(caller.crew_id.clone().ok_or_else(ApiError::forbidden)?)
    } else {
        q.crew
    };
    let cases = state
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
    let now = state.live.now();
    Ok(Json(cases.iter().map(|c| view(c, now, &caller)).collect()))
}

pub(crate) async fn get_case(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let case = load(&state, &id).await?;
    own_order(&caller, &case)?;
    let timeline = state.store.case_timeline(case.id).await?;
    let mut v = view(&case, state.live.now(), &caller);
    if let Some(o) = v.as_object_mut() {
        o.insert("timeline".into(), json!(timeline));
    }
    Ok(Json(v))
}

// ---------------------------------------------------------------------------------------------
// The hotline.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCall {
    station_id: String,
    charger_id: Option<String>,
    connector_id: Option<u32>,
    category: String,
    caller_phone: String,
    description: String,
}

fn check_text(field: &str, text: &str) -> ApiResult<()> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(format!("{field} must not be empty")));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_long",
            format!(
                "{field} must be at most {MAX_TEXT_BYTES} bytes, got {}",
                text.len()
            ),
        ));
    }
    Ok(())
}

pub(crate) async fn create_case(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<Response> {
    caller.require_role(&[Role::Agent, Role::Dispatcher, Role::Operator, Role::Admin])?;
    let new: NewCall = body(&bytes)?;
    let category = Category::parse(&new.category).ok_or_else(|| {
        ApiError::bad_request(format!(
            "category must be fault, station_question or business_question, not {:?}",
            new.category
        ))
    })?;
    if !cases::valid_phone(&new.caller_phone) {
        return Err(ApiError::bad_request(
            "caller_phone must be a phone number: 5 to 15 digits, optionally a leading + and spaces or dashes",
        ));
    }
    check_text("description", &new.description)?;
    if new.connector_id.is_some_and(|c| c == 0 || c > 99) {
        return Err(ApiError::bad_request("connector_id must be 1 to 99"));
    }
    if new.connector_id.is_some() && new.charger_id.is_none() {
        return Err(ApiError::bad_request("connector_id needs charger_id"));
    }
    if !valid_charger_id(&new.station_id)
        || state.store.get_station(&new.station_id).await?.is_none()
    {
        return Err(ApiError::not_found(format!(
            "station {:?} not found",
            new.station_id
        )));
    }
    if let Some(charger_id) = &new.charger_id {
        let charger = state.store.get_charger(charger_id).await?;
        match charger {
            None => {
                return Err(ApiError::not_found(format!(
                    "charger {charger_id:?} not found"
                )));
            }
            Some(c) if c.station_id != new.station_id => {
                return Err(ApiError::bad_request(format!(
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
    let now = state.live.now();
    let config = state.ops.config();
    let _guard = state.ops.cases.lock().await;
    // A call about a fault the charger already told us of joins that case.
    if let Some(charger_id) = &call.charger_id {
        let open = state
            .store
            .list_cases(&CaseFilter {
                charger_id: Some(charger_id.clone()),
                open: Some(true),
                ..CaseFilter::default()
            })
            .await?;
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
            save(&state, &case, &[entry]).await?;
            tracing::info!(case_id = case.id, by = %caller.name, "hotline call merged into an open case");
            let mut v = view(&case, now, &caller);
            if let Some(o) = v.as_object_mut() {
                o.insert("merged".into(), json!(true));
            }
            return Ok((StatusCode::OK, Json(v)).into_response());
        }
    }
    let (case, entry) = cases::open_hotline(&call, &caller.name, now, &config);
    let case = insert(&state, &case, &[entry]).await?;
    tracing::info!(case_id = case.id, station_id = %case.station_id, category = %case.category, by = %caller.name, "hotline case opened");
    let mut v = view(&case, now, &caller);
    if let Some(o) = v.as_object_mut() {
        o.insert("merged".into(), json!(false));
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

// ---------------------------------------------------------------------------------------------
// Dispatch and crew actions.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    crew_id: Option<String>,
    note: Option<String>,
    parts: Option<Vec<String>>,
}

pub(crate) async fn case_action(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let b: ActionBody = body(&bytes)?;
    let note = b.note.filter(|n| !n.trim().is_empty());
    if let Some(n) = &note {
        check_text("note", n)?;
    }
    let action = match name.as_str() {
        "assign" => Action::Assign {
            crew_id: b
                .crew_id
                .ok_or_else(|| ApiError::bad_request("assign needs `crew_id`"))?,
        },
        "accept" => Action::Accept,
        "en_route" => Action::EnRoute,
        "on_site" => Action::OnSite,
        "resolve" => {
            let parts = b.parts.unwrap_or_default();
            if parts.len() > MAX_PARTS || parts.iter().any(|p| p.trim().is_empty() || p.len() > 100)
            {
                return Err(ApiError::bad_request(format!(
                    "parts must be at most {MAX_PARTS} names of 1 to 100 bytes"
                )));
            }
            Action::Resolve {
                note: note.clone().ok_or_else(|| {
                    ApiError::bad_request("resolve needs a `note` saying what was done")
                })?,
                parts,
            }
        }
        "close" => Action::Close { note: note.clone() },
        "reopen" => Action::Reopen,
        "note" => Action::Note {
            text: note
                .clone()
                .ok_or_else(|| ApiError::bad_request("note needs a `note`"))?,
        },
        other => {
            return Err(ApiError::not_found(format!(
                "unknown action {other:?}; known: assign, accept, en_route, on_site, resolve, close, reopen, note"
            )));
        }
    };
    let _guard = state.ops.cases.lock().await;
    let mut case = load(&state, &id).await?;
    match &action {
        Action::Assign { .. } | Action::Reopen => caller.require_role(MANAGERS)?,
        Action::Accept | Action::EnRoute | Action::OnSite | Action::Resolve { .. } => {
            caller.require_role(&[Role::Crew, Role::Dispatcher, Role::Operator, Role::Admin])?;
            own_order(&caller, &case)?;
        }
        Action::Close { .. } => {
            // An agent closes a question answered on the call, never a fault.
            let agent_may = caller.role == Role::Agent && case.category != Category::Fault;
            if !agent_may {
                caller.require_role(MANAGERS)?;
            }
        }
        Action::Note { .. } => {
            caller.require_role(&[
                Role::Agent,
                Role::Crew,
                Role::Dispatcher,
                Role::Operator,
                Role::Admin,
            ])?;
            own_order(&caller, &case)?;
        }
        Action::Verify => return Err(ApiError::forbidden()),
    }
    let now = state.live.now();
    let crew = match &action {
        Action::Assign { crew_id } => Some(
            state
                .store
                .get_crew(crew_id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("crew {crew_id:?} not found")))?,
        ),
        _ => None,
    };
    let mut entry = cases::apply(&mut case, &action, &caller.name, now)
        .map_err(|e| conflict("invalid_transition", e.to_string()))?;
    if let (Some(crew), Action::Assign { .. }) = (&crew, &action) {
        entry.detail = format!("{} ({})", entry.detail, crew.name);
    }
    if let (Action::Close { .. }, Some(n)) = (&action, &note) {
        entry.detail = n.clone();
    }
    save(&state, &case, &[entry]).await?;
    // A crew on site is where the station is: the next proposal starts from there.
    if action == Action::OnSite
        && let Some(crew_id) = &case.crew_id
    {
        move_crew_to_station(&state, crew_id, &case.station_id).await;
    }
    tracing::info!(case_id = case.id, action = action.name(), state = %case.state, by = %caller.name, "case changed");
    Ok(Json(view(&case, now, &caller)))
}

pub(crate) async fn move_crew_to_station(state: &AppState, crew_id: &str, station_id: &str) {
    let (Ok(Some(mut crew)), Ok(Some(station))) = (
        state.store.get_crew(crew_id).await,
        state.store.get_station(station_id).await,
    ) else {
        return;
    };
    if let (Some(lat), Some(lon)) = (station.lat, station.lon) {
        crew.lat = lat;
        crew.lon = lon;
        if let Err(e) = state.store.upsert_crew(&crew).await {
            tracing::warn!(crew_id, error = %e, "could not record the crew's position");
        }
    }
}

/// Open orders per crew, for proposals.
pub(crate) async fn open_orders(
    state: &AppState,
) -> ApiResult<std::collections::HashMap<String, usize>> {
    let open = state
        .store
        .list_cases(&CaseFilter {
            open: Some(true),
            ..CaseFilter::default()
        })
        .await?;
    let mut counts = std::collections::HashMap::new();
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

pub(crate) async fn proposals_for(
    state: &AppState,
    case: &Case,
) -> ApiResult<Vec<dispatch::Proposal>> {
    let crews = state.store.list_crews().await?;
    let station = state.store.get_station(&case.station_id).await?;
    let position = station.and_then(|s| Some((s.lat?, s.lon?)));
    let mut orders = open_orders(state).await?;
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
        state.live.now(),
    ))
}

pub(crate) async fn proposals(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_role(MANAGERS)?;
    let case = load(&state, &id).await?;
    let ranked = proposals_for(&state, &case).await?;
    Ok(Json(json!({
        "case_id": case.id,
        "proposed": ranked.first().map(|p| p.crew_id.clone()),
        "crews": ranked,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RemoteBody {
    connector_id: Option<u32>,
    hard: Option<bool>,
}

/// Remote actions a crew may trigger on its order's charger: reset and unlock, through the same
/// command path as the operators' (`Gateway::command`), written to the case's timeline.
pub(crate) async fn remote(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require_role(&[Role::Crew, Role::Operator, Role::Admin])?;
    let b: RemoteBody = body(&bytes)?;
    let case = load(&state, &id).await?;
    own_order(&caller, &case)?;
    if !case.state.is_open() {
        return Err(conflict(
            "case_closed",
            format!("case {} is closed", case.id),
        ));
    }
    let charger_id = case
        .charger_id
        .clone()
        .ok_or_else(|| ApiError::bad_request("this case names no charger"))?;
    let command = match name.as_str() {
        "reset" => Command::Reset {
            hard: b.hard.unwrap_or(false),
        },
        "unlock-connector" => Command::UnlockConnector {
            evse_id: None,
            connector_id: b
                .connector_id
                .or(case.connector_id)
                .ok_or_else(|| ApiError::bad_request("unlock-connector needs `connector_id`"))?,
        },
        other => {
            return Err(ApiError::not_found(format!(
                "unknown remote action {other:?}; known: reset, unlock-connector"
            )));
        }
    };
    tracing::info!(case_id = case.id, charger_id, command = name, by = %caller.name, "remote action requested");
    let result = state.gateway.command(&charger_id, command).await;
    let detail = match &result {
        Ok(reply) => format!("{name} sent to {charger_id}: {}", reply.status),
        Err(e) => format!("{name} to {charger_id} failed: {e}"),
    };
    {
        let _guard = state.ops.cases.lock().await;
        if let Ok(Some(current)) = state.store.get_case(case.id).await {
            let entry = TimelineEntry::new(
                state.live.now(),
                caller.name.clone(),
                "remote_command",
                current.state,
                detail,
            );
            state.store.update_case(&current, &[entry]).await?;
        }
    }
    let reply = result?;
    Ok(Json(
        json!({ "status": reply.status, "response": reply.response }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Statistics.

async fn stat_rows(state: &AppState, caller: &Caller) -> ApiResult<Vec<stats::Row>> {
    caller.require_role(&[
        Role::Agent,
        Role::Dispatcher,
        Role::Operator,
        Role::Admin,
        Role::Viewer,
    ])?;
    let all = state.store.list_cases(&CaseFilter::default()).await?;
    Ok(stats::summarize(&all))
}

pub(crate) async fn case_stats(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<stats::Row>>> {
    Ok(Json(stat_rows(&state, &caller).await?))
}

pub(crate) async fn case_stats_csv(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    let rows = stat_rows(&state, &caller).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"case-stats.csv\"",
            ),
        ],
        stats::to_csv(&rows),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Crews, FAQ, tokens, audit.

pub(crate) async fn list_crews(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Crew>>> {
    Ok(Json(state.store.list_crews().await?))
}

pub(crate) async fn upsert_crew(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Crew>)> {
    caller.require_role(MANAGERS)?;
    let crew: Crew = body(&bytes)?;
    if !valid_charger_id(&crew.id) {
        return Err(ApiError::bad_request(
            "crew id must be 1-48 characters of letters, digits, '-', '_', '.', ':'",
        ));
    }
    if crew.name.trim().is_empty() || crew.name.len() > 200 {
        return Err(ApiError::bad_request("crew name must be 1 to 200 bytes"));
    }
    if !((-90.0..=90.0).contains(&crew.lat) && (-180.0..=180.0).contains(&crew.lon)) {
        return Err(ApiError::bad_request(
            "lat must be within -90..90 and lon within -180..180",
        ));
    }
    if crew.shift_start_hour > 24 || crew.shift_end_hour > 24 {
        return Err(ApiError::bad_request("shift hours must be 0 to 24"));
    }
    if !(5.0..=200.0).contains(&crew.speed_kmh) {
        return Err(ApiError::bad_request("speed_kmh must be 5 to 200"));
    }
    if crew.skills.len() > 20 || crew.skills.iter().any(|s| s.is_empty() || s.len() > 40) {
        return Err(ApiError::bad_request(
            "skills must be at most 20 names of 1 to 40 bytes",
        ));
    }
    state.store.upsert_crew(&crew).await?;
    Ok((StatusCode::CREATED, Json(crew)))
}

#[derive(Deserialize)]
pub(crate) struct FaqQuery {
    q: Option<String>,
}

pub(crate) async fn faq(
    q: Result<Query<FaqQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<FaqEntry>>> {
    let q = query(q)?;
    let text = q.q.unwrap_or_default();
    if text.len() > 200 {
        return Err(ApiError::bad_request("q must be at most 200 bytes"));
    }
    Ok(Json(
        faq::search(faq_entries(), &text)
            .into_iter()
            .cloned()
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: String,
    crew_id: Option<String>,
}

/// An admin makes a token for one person; it is shown once and stored as a digest.
pub(crate) async fn create_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_role(&[Role::Admin])?;
    let new: NewToken = body(&bytes)?;
    let role = Role::parse(&new.role).ok_or_else(|| {
        ApiError::bad_request("role must be admin, operator, viewer, agent, dispatcher or crew")
    })?;
    if new.name.trim().is_empty() || new.name.len() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 bytes"));
    }
    match (role, &new.crew_id) {
        (Role::Crew, None) => return Err(ApiError::bad_request("a crew token needs `crew_id`")),
        (Role::Crew, Some(crew)) => {
            if state.store.get_crew(crew).await?.is_none() {
                return Err(ApiError::not_found(format!("crew {crew:?} not found")));
            }
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request("only a crew token names a `crew_id`"));
        }
        (_, None) => {}
    }
    let token = format!("co_{}", random_hex(24));
    let saved = state
        .store
        .insert_crew_token(
            new.name.trim(),
            role,
            &token_digest(&token),
            new.crew_id.as_deref(),
        )
        .await?;
    tracing::info!(token_id = saved.id, role = role.as_str(), by = %caller.name, "api token created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": saved.id,
            "name": saved.name,
            "role": role.as_str(),
            "crew_id": saved.crew_id,
            "token": token,
        })),
    ))
}

pub(crate) async fn me(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({ "name": caller.name, "role": caller.role.as_str(), "crew_id": caller.crew_id }))
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<u32>,
}

pub(crate) async fn list_audit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<chargeops_ops::AuditEntry>>> {
    caller.require_role(&[Role::Admin])?;
    let q = query(q)?;
    Ok(Json(
        state
            .store
            .list_audit(q.limit.unwrap_or(200).clamp(1, 10_000))
            .await?,
    ))
}

/// Starts the detection task with `config` (none when disabled); the routes work either way.
pub fn start(state: &Arc<AppState>, config: OpsConfig) -> Option<tokio::task::JoinHandle<()>> {
    state.ops.set_config(config.clone());
    runner::spawn(state.clone(), config)
}
