//! Queue numbers, wait estimates and diversion over HTTP, and the task that calls tickets when
//! connectors free up. The rules live in `chargeops-queue`; this module checks who may do what,
//! keeps the active tickets in memory (written through to the store first), and reads the live
//! network for estimates.
//!
//! Who may call what:
//! - Anyone (the public driver page, partners): take a number with a contact, follow and cancel
//!   a ticket by its id (unguessable: knowing it is the capability), start charging at the
//!   connector a called ticket reserved (with the ticket's own tag), see a station's queue
//!   (numbers and positions, never ids or contacts), its wait, a diversion ranking and a station
//!   card.
//! - Staff (`admin`, `operator`, `dispatcher` tokens): call, skip and re-queue numbers, hand out
//!   numbers without a contact, and see ids and contacts. Other roles with a token see the queue
//!   with ids and masked contacts.

mod reserve;
mod runner;
mod webhook;

pub(crate) use reserve::new_reservation_id;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use chargeops_core::network_file::{HUNAN, NetworkSpec, StationKind, parse_network};
use chargeops_core::secret::{random_hex, token_digest};
use chargeops_core::{Command, ConnectorStatus, Role};
use chargeops_queue::contact::mask;
use chargeops_queue::diversion::{self, OptionKind, StationNow, Trip};
use chargeops_queue::estimate::{self, History, Slot};
use chargeops_queue::ticket::{self, ORDER_STEP};
use chargeops_queue::{
    Contact, LogNotifier, Notification, NotificationKind, Notifier, QueueConfig, Ticket,
    TicketAction, TicketState,
};
use chargeops_store::{SessionFilter, TicketFilter};

use crate::{ApiError, AppState, Caller};

use crate::error::{ApiResult, body, query};

/// Roles that run a service area's queue.
const STAFF: &[Role] = &[Role::Admin, Role::Operator, Role::Dispatcher];
/// How long a station's session history is reused for estimates.
const HISTORY_TTL_SECS: u64 = 300;
/// A diversion is suggested only when it saves at least this much.
const MIN_SAVING_S: f64 = 10.0 * 60.0;

/// The queue's shared state inside [`AppState`].
pub struct QueueState {
    config: RwLock<QueueConfig>,
    /// Serialises every change of tickets, between the API and the queue task.
    book: tokio::sync::Mutex<Book>,
    notifier: RwLock<Arc<dyn Notifier>>,
    histories: Mutex<HashMap<String, (Instant, Arc<History>)>>,
    /// Diversion suggestions given since start, by (from, to).
    suggestions: Mutex<HashMap<(String, String), u64>>,
    /// Called tickets' reservations on the chargers, and the authority for their id tags.
    reservations: Arc<reserve::Reservations>,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            config: RwLock::new(QueueConfig::default()),
            book: tokio::sync::Mutex::new(Book::default()),
            notifier: RwLock::new(Arc::new(LogNotifier)),
            histories: Mutex::new(HashMap::new()),
            suggestions: Mutex::new(HashMap::new()),
            reservations: Arc::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl QueueState {
    pub fn config(&self) -> QueueConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn notify(&self, n: &Notification) {
        let notifier = self
            .notifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        notifier.notify(n);
    }
}

/// Active tickets by station, and which chargers each station has.
#[derive(Default)]
pub(crate) struct Book {
    loaded: bool,
    active: HashMap<String, Vec<Ticket>>,
    chargers: HashMap<String, BTreeSet<String>>,
}

impl Book {
    fn tickets(&self, station: &str) -> &[Ticket] {
        self.active.get(station).map_or(&[], Vec::as_slice)
    }

    fn put(&mut self, t: Ticket) {
        let v = self.active.entry(t.station_id.clone()).or_default();
        v.retain(|x| x.id != t.id);
        if t.state.is_active() {
            v.push(t);
        }
    }

    fn find(&self, id: &str) -> Option<&Ticket> {
        self.active.values().flatten().find(|t| t.id == id)
    }
}

/// The network file the diversion ranking and the station card read.
fn network() -> &'static NetworkSpec {
    static NET: OnceLock<NetworkSpec> = OnceLock::new();
    NET.get_or_init(|| parse_network(HUNAN).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Loading, saving, calling.

async fn ensure_loaded(state: &AppState, book: &mut Book) -> ApiResult<()> {
    if book.loaded {
        return Ok(());
    }
    for t in state
        .store
        .list_tickets(&TicketFilter {
            active: Some(true),
            limit: Some(1_000_000),
            ..TicketFilter::default()
        })
        .await?
    {
        book.put(t);
    }
    for c in state.store.list_chargers().await? {
        book.chargers.entry(c.station_id).or_default().insert(c.id);
    }
    state
        .queue
        .reservations
        .load(state.store.as_ref(), state.live.now())
        .await?;
    book.loaded = true;
    Ok(())
}

/// Stores a changed ticket, then keeps it in the book and the charger's reservation in step
/// (every change of a ticket comes through here).
async fn save(state: &AppState, book: &mut Book, t: Ticket) -> ApiResult<Ticket> {
    state.store.update_ticket(&t).await?;
    book.put(t.clone());
    state.queue.reservations.follow(state, &t).await;
    Ok(t)
}

fn notification(t: &Ticket, kind: NotificationKind, at: DateTime<Utc>) -> Notification {
    Notification {
        kind,
        ticket_id: t.id.clone(),
        number: t.number,
        station_id: t.station_id.clone(),
        contact: t.contact.clone(),
        charger_id: t.charger_id.clone(),
        connector_id: t.connector_id,
        plug_by: t.plug_by,
        at,
    }
}

/// A connector of the station as the queue sees it.
#[derive(Debug, Clone)]
struct ConnectorNow {
    charger_id: String,
    evse_id: u32,
    connector_id: u32,
    status: ConnectorStatus,
    since: DateTime<Utc>,
}

fn connectors_of(state: &AppState, book: &Book, station: &str) -> Vec<ConnectorNow> {
    let mut out = Vec::new();
    for charger in book.chargers.get(station).into_iter().flatten() {
        let Some(snap) = state.live.snapshot(charger) else {
            continue;
        };
        if snap.station_id != station {
            continue;
        }
        for c in snap.connectors {
            // OCPP 1.6 connector 0 is the whole charger, not a place to plug in.
            if c.connector_id == 0 {
                continue;
            }
            out.push(ConnectorNow {
                charger_id: charger.clone(),
                evse_id: c.evse_id,
                connector_id: c.connector_id,
                status: c.status,
                since: c.updated_at,
            });
        }
    }
    out
}

/// Calls waiting tickets to every free connector no called ticket holds. Returns the tickets
/// called. Each connector goes to one ticket, and a ticket is called once: it leaves `waiting`.
async fn dispatch(state: &AppState, book: &mut Book, station: &str) -> ApiResult<Vec<Ticket>> {
    let config = state.queue.config();
    let mut called = Vec::new();
    if ticket::next_waiting(book.tickets(station)).is_none() {
        return Ok(called);
    }
    for c in connectors_of(state, book, station) {
        if c.status != ConnectorStatus::Available {
            continue;
        }
        let held = book.tickets(station).iter().any(|t| {
            matches!(t.state, TicketState::Called | TicketState::Charging)
                && t.holds(&c.charger_id, c.evse_id, c.connector_id)
        });
        if held {
            continue;
        }
        let Some(next) = ticket::next_waiting(book.tickets(station)).cloned() else {
            break;
        };
        let now = state.live.now();
        let t = next
            .apply(
                &TicketAction::Call {
                    connector: Some((c.charger_id.clone(), c.evse_id, c.connector_id)),
                    plug_within: Duration::seconds(config.plug_in_secs as i64),
                },
                now,
            )
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let t = save(state, book, t).await?;
        tracing::info!(ticket = %t.id, number = t.number, station, charger = %c.charger_id, connector = c.connector_id, "queue number called");
        state
            .queue
            .notify(&notification(&t, NotificationKind::Called, now));
        called.push(t);
    }
    Ok(called)
}

// ---------------------------------------------------------------------------------------------
// Estimates.

async fn history(state: &AppState, station: &str) -> ApiResult<Arc<History>> {
    if let Some((at, h)) = lock(&state.queue.histories).get(station)
        && at.elapsed().as_secs() < HISTORY_TTL_SECS
    {
        return Ok(h.clone());
    }
    let sessions = state
        .store
        .list_sessions(&SessionFilter {
            station_id: Some(station.to_owned()),
            open: Some(false),
            limit: Some(300),
            ..SessionFilter::default()
        })
        .await?;
    let durations = sessions.iter().filter_map(|s| {
        s.stopped_at
            .map(|e| (e - s.started_at).num_milliseconds() as f64 / 1000.0)
    });
    let energies = sessions.iter().filter_map(|s| {
        s.energy_wh
            .or_else(|| Some(s.meter_stop_wh? - s.meter_start_wh?))
            .map(|e| e as f64)
    });
    let typical = state.queue.config().typical_session_mins as f64 * 60.0;
    let h = Arc::new(History::new(durations, energies, typical));
    lock(&state.queue.histories).insert(station.to_owned(), (Instant::now(), h.clone()));
    Ok(h)
}

/// The usable connectors of a station as estimator slots, with what the store says of the
/// sessions running on them.
async fn slots(state: &AppState, book: &Book, station: &str) -> ApiResult<Vec<Slot>> {
    let now = state.live.now();
    let conns = connectors_of(state, book, station);
    let running = if conns.iter().any(|c| {
        matches!(
            c.status,
            ConnectorStatus::Charging | ConnectorStatus::Occupied
        )
    }) {
        state
            .store
            .list_sessions(&SessionFilter {
                station_id: Some(station.to_owned()),
                open: Some(true),
                limit: Some(2000),
                ..SessionFilter::default()
            })
            .await?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for c in conns {
        let holder = book.tickets(station).iter().find(|t| {
            t.state == TicketState::Called && t.holds(&c.charger_id, c.evse_id, c.connector_id)
        });
        let slot = match c.status {
            ConnectorStatus::Available | ConnectorStatus::Reserved => match holder {
                Some(t) => Slot::Reserved {
                    plug_in_left_s: t
                        .plug_by
                        .map_or(0.0, |p| (p - now).num_seconds().max(0) as f64),
                },
                None if c.status == ConnectorStatus::Reserved => Slot::Reserved {
                    plug_in_left_s: 0.0,
                },
                None => Slot::Free,
            },
            ConnectorStatus::Charging | ConnectorStatus::Occupied => {
                let session = running.iter().find(|s| {
                    s.charger_id == c.charger_id
                        && s.connector_id == c.connector_id
                        && s.evse_id == c.evse_id
                });
                let started = session.map_or(c.since, |s| s.started_at);
                Slot::Busy {
                    elapsed_s: (now - started).num_seconds().max(0) as f64,
                    energy_wh: session
                        .and_then(|s| {
                            s.energy_wh
                                .or_else(|| Some(s.meter_stop_wh? - s.meter_start_wh?))
                        })
                        .map(|e| e as f64),
                }
            }
            ConnectorStatus::Unavailable | ConnectorStatus::Faulted | ConnectorStatus::Offline => {
                continue;
            }
        };
        out.push(slot);
    }
    Ok(out)
}

/// Wait estimates of a station's waiting tickets (by id), and of a car that joins now.
struct Estimates {
    by_ticket: HashMap<String, Option<i64>>,
    new_car: Option<i64>,
}

async fn estimates(state: &AppState, book: &Book, station: &str) -> ApiResult<Estimates> {
    let slots = slots(state, book, station).await?;
    let h = history(state, station).await?;
    let order = ticket::waiting_in_order(book.tickets(station));
    let est = |ahead: usize| estimate::wait(&slots, ahead, &h).map(|e| e.wait_s.round() as i64);
    let observed = state.live.station_waiting(station) as usize;
    Ok(Estimates {
        by_ticket: order
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), est(i)))
            .collect(),
        new_car: est(order.len().max(observed)),
    })
}

// ---------------------------------------------------------------------------------------------
// Views.

#[derive(Clone, Copy, PartialEq)]
enum Audience {
    /// The ticket's holder (knows the id), or a partner: no contact shown.
    Holder,
    Public,
    /// A token that is not staff: ids, masked contacts.
    Token,
    Staff,
}

fn view(
    t: &Ticket,
    position: Option<usize>,
    estimate: Option<i64>,
    reservation: Option<&reserve::Reservation>,
    who: Audience,
) -> Value {
    let estimated_wait_s = match t.state {
        TicketState::Waiting => estimate.map_or(Value::Null, |e| json!(e)),
        TicketState::Called | TicketState::Charging => json!(0),
        _ => Value::Null,
    };
    let mut v = json!({
        "number": t.number,
        "station_id": t.station_id,
        "position": position,
        "state": t.state.as_str(),
        "estimated_wait_s": estimated_wait_s,
        "called_at": t.called_at,
        "plug_by": t.plug_by,
        "charger_id": t.charger_id,
        "evse_id": t.evse_id,
        "connector_id": t.connector_id,
        "created_at": t.created_at,
        "ended_at": t.ended_at,
        "source": t.source,
    });
    if let Some(o) = v.as_object_mut() {
        if who != Audience::Public {
            o.insert("id".into(), json!(t.id));
        }
        match who {
            Audience::Staff => {
                o.insert("contact".into(), json!(t.contact));
            }
            Audience::Token | Audience::Holder => {
                o.insert("contact".into(), json!(t.contact.as_deref().map(mask)));
            }
            Audience::Public => {}
        }
        if who == Audience::Staff || who == Audience::Token {
            o.insert("initial_estimate_s".into(), json!(t.initial_estimate_s));
            o.insert("passes".into(), json!(t.passes));
        }
        // The id tag starts a car on the reserved connector: only the holder and staff see it.
        let with_tag = matches!(who, Audience::Staff | Audience::Holder);
        o.insert(
            "reservation".into(),
            reservation.map_or(Value::Null, |r| r.view(with_tag)),
        );
    }
    v
}

async fn ticket_view(state: &AppState, book: &Book, t: &Ticket, who: Audience) -> ApiResult<Value> {
    let position = ticket::position(book.tickets(&t.station_id), &t.id);
    let est = if t.state == TicketState::Waiting {
        estimates(state, book, &t.station_id)
            .await?
            .by_ticket
            .get(&t.id)
            .copied()
            .flatten()
    } else {
        None
    };
    let reservation = state.queue.reservations.get(&t.id);
    Ok(view(t, position, est, reservation.as_ref(), who))
}

// ---------------------------------------------------------------------------------------------
// Callers.

/// The caller when a bearer token is given; `None` without one. A token that is given but
/// unknown is refused rather than treated as public.
async fn caller(state: &AppState, headers: &HeaderMap) -> ApiResult<Option<Caller>> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = v
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let found = state
        .store
        .find_token(&token_digest(token))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Some(Caller {
        name: found.name,
        role: found.role,
        crew_id: found.crew_id,
    }))
}

async fn staff(state: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    let c = caller(state, headers)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    c.require_role(STAFF)?;
    Ok(c)
}

fn audience(c: &Option<Caller>) -> Audience {
    match c {
        Some(c) if STAFF.contains(&c.role) => Audience::Staff,
        Some(_) => Audience::Token,
        None => Audience::Public,
    }
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

fn valid_ticket_id(id: &str) -> bool {
    id.len() <= 64 && !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

// ---------------------------------------------------------------------------------------------
// Routes.

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/v1/stations/{id}/queue",
            get(station_queue).post(take_number),
        )
        .route("/api/v1/stations/{id}/wait", get(station_wait))
        .route(
            "/api/v1/queue/{ticket}",
            get(get_ticket).delete(cancel_ticket),
        )
        .route("/api/v1/queue/{ticket}/call", post(call_ticket))
        .route("/api/v1/queue/{ticket}/start", post(start_ticket))
        .route("/api/v1/queue/{ticket}/skip", post(skip_ticket))
        .route("/api/v1/queue/{ticket}/requeue", post(requeue_ticket))
        .route("/api/v1/diversion", get(diversion))
        .route("/api/v1/diversion/stats", get(diversion_stats))
        .route("/api/v1/public/stations/{id}/card", get(station_card))
}

async fn station_exists(state: &AppState, id: &str) -> ApiResult<chargeops_core::Station> {
    state
        .store
        .get_station(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("station {id} not found")))
}

async fn station_queue(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let who = audience(&caller(&state, &headers).await?);
    station_exists(&state, &id).await?;
    let mut book = state.queue.book.lock().await;
    ensure_loaded(&state, &mut book).await?;
    let est = estimates(&state, &book, &id).await?;
    let tickets = book.tickets(&id);
    let mut list: Vec<&Ticket> = tickets.iter().collect();
    list.sort_by_key(|t| {
        (
            t.state != TicketState::Charging,
            t.state != TicketState::Called,
            t.order_key,
            t.number,
        )
    });
    let views: Vec<Value> = list
        .iter()
        .map(|t| {
            view(
                t,
                ticket::position(tickets, &t.id),
                est.by_ticket.get(&t.id).copied().flatten(),
                state.queue.reservations.get(&t.id).as_ref(),
                who,
            )
        })
        .collect();
    let count = |s: TicketState| tickets.iter().filter(|t| t.state == s).count();
    let config = state.queue.config();
    Ok(Json(json!({
        "station_id": id,
        "waiting": count(TicketState::Waiting),
        "called": count(TicketState::Called),
        "charging": count(TicketState::Charging),
        "max_waiting": config.max_waiting,
        "plug_in_secs": config.plug_in_secs,
        "estimated_wait_s": est.new_car,
        "tickets": views,
        "at": state.live.now(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TakeBody {
    contact: Option<String>,
    /// The station the driver was at when a diversion sent them here.
    diverted_from: Option<String>,
}

async fn take_number(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let who = caller(&state, &headers).await?;
    let is_staff = audience(&who) == Audience::Staff;
    let b: TakeBody = body(&bytes)?;
    let contact = match b.contact.as_deref().map(str::trim) {
        None | Some("") if is_staff => None,
        None | Some("") => {
            return Err(ApiError::bad_request(
                "contact is required: a phone number or a plate",
            ));
        }
        Some(c) => Some(
            Contact::parse(c)
                .map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_contact", e.to_string())
                })?
                .as_str()
                .to_owned(),
        ),
    };
    if let Some(from) = &b.diverted_from
        && (from.len() > 64 || from.is_empty())
    {
        return Err(ApiError::bad_request("diverted_from must be a station id"));
    }
    station_exists(&state, &id).await?;
    let config = state.queue.config();
    let mut book = state.queue.book.lock().await;
    ensure_loaded(&state, &mut book).await?;
    let tickets = book.tickets(&id);
    let waiting = tickets
        .iter()
        .filter(|t| t.state == TicketState::Waiting)
        .count();
    if waiting >= config.max_waiting as usize {
        return Err(conflict(
            "queue_full",
            format!(
                "the queue at {id} is full ({} waiting); try a station nearby",
                config.max_waiting
            ),
        ));
    }
    if let Some(c) = &contact
        && tickets.iter().any(|t| t.contact.as_deref() == Some(c))
    {
        return Err(conflict(
            "already_queued",
            "this contact already holds a number at this station",
        ));
    }
    let initial = estimate_behind(&state, &book, &id).await?;
    let now = state.live.now();
    let source = if b.diverted_from.is_some() {
        "diversion"
    } else if is_staff {
        "staff"
    } else {
        "driver"
    };
    let mut t = Ticket::new(
        format!("t_{}", random_hex(16)),
        &id,
        contact,
        ticket::last_key(book.tickets(&id)) + ORDER_STEP,
        now,
        source,
    );
    t.initial_estimate_s = initial;
    let t = state.store.insert_ticket(&t).await.map_err(|e| {
        if e.kind() == chargeops_store::ErrorKind::Conflict {
            conflict(
                "already_queued",
                "this contact already holds a number at this station",
            )
        } else {
            e.into()
        }
    })?;
    book.put(t.clone());
    tracing::info!(ticket = %t.id, number = t.number, station = %id, source, "queue number taken");
    dispatch(&state, &mut book, &id).await?;
    let t = book.find(&t.id).cloned().unwrap_or(t);
    let v = ticket_view(
        &state,
        &book,
        &t,
        if is_staff {
            Audience::Staff
        } else {
            Audience::Holder
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// The estimate of a car joining behind every waiting ticket.
async fn estimate_behind(state: &AppState, book: &Book, id: &str) -> ApiResult<Option<i64>> {
    let slots = slots(state, book, id).await?;
    let h = history(state, id).await?;
    let ahead = ticket::waiting_in_order(book.tickets(id)).len();
    Ok(estimate::wait(&slots, ahead, &h).map(|e| e.wait_s.round() as i64))
}

async fn load_ticket(book: &Book, state: &AppState, id: &str) -> ApiResult<Ticket> {
    if !valid_ticket_id(id) {
        return Err(ApiError::not_found("ticket not found"));
    }
    if let Some(t) = book.find(id) {
        return Ok(t.clone());
    }
    state
        .store
        .get_ticket(id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket not found"))
}

async fn get_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let who = match audience(&caller(&state, &headers).await?) {
        Audience::Public => Audience::Holder,
        w => w,
    };
    let mut book = state.queue.book.lock().await;
    ensure_loaded(&state, &mut book).await?;
    let t = load_ticket(&book, &state, &id).await?;
    Ok(Json(ticket_view(&state, &book, &t, who).await?))
}

/// Applies `action` to ticket `id`, stores it, and calls whoever is next.
async fn act(
    state: &AppState,
    id: &str,
    who: Audience,
    make: impl FnOnce(&Book, &Ticket) -> ApiResult<TicketAction>,
) -> ApiResult<Json<Value>> {
    let mut book = state.queue.book.lock().await;
    ensure_loaded(state, &mut book).await?;
    let t = load_ticket(&book, state, id).await?;
    let action = make(&book, &t)?;
    let now = state.live.now();
    let changed = t
        .apply(&action, now)
        .map_err(|e| conflict("invalid_state", e.to_string()))?;
    let changed = save(state, &mut book, changed).await?;
    tracing::info!(ticket = %changed.id, number = changed.number, station = %changed.station_id, action = action.name(), "queue ticket changed");
    match action {
        TicketAction::Requeue { .. } => {
            state
                .queue
                .notify(&notification(&changed, NotificationKind::Requeued, now))
        }
        TicketAction::Call { .. } => {
            state
                .queue
                .notify(&notification(&changed, NotificationKind::Called, now))
        }
        _ => {}
    }
    let station = changed.station_id.clone();
    dispatch(state, &mut book, &station).await?;
    let latest = book.find(&changed.id).cloned().unwrap_or(changed);
    Ok(Json(ticket_view(state, &book, &latest, who).await?))
}

async fn cancel_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let who = match audience(&caller(&state, &headers).await?) {
        Audience::Public => Audience::Holder,
        w => w,
    };
    act(&state, &id, who, |_, _| Ok(TicketAction::Cancel)).await
}

/// `POST /api/v1/queue/{ticket}/start`: the driver of a called ticket starts charging at the
/// connector the charger reserved for it, without a card: a remote start with the ticket's own
/// tag, the one tag the reserved connector lets start. Answers like a charger command,
/// `{status, response}` with the charger's reply.
async fn start_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = {
        let mut book = state.queue.book.lock().await;
        ensure_loaded(&state, &mut book).await?;
        load_ticket(&book, &state, &id).await?
    };
    if t.state != TicketState::Called {
        return Err(conflict(
            "invalid_state",
            format!(
                "ticket {} is {}, not called to a connector",
                t.number,
                t.state.as_str()
            ),
        ));
    }
    let Some(r) = state.queue.reservations.get(&t.id).filter(|r| r.holding) else {
        return Err(conflict(
            "no_reservation",
            "the ticket has no reservation at its charger (a charger that takes none, such as a YKC one): start at the charger with your own card or app",
        ));
    };
    if !t.holds(&r.charger_id, r.evse_id, r.connector_id) {
        return Err(conflict(
            "no_reservation",
            "the ticket's reservation is for another connector",
        ));
    }
    let cmd = Command::RemoteStart {
        evse_id: Some(r.evse_id),
        connector_id: Some(r.connector_id),
        id_tag: r.id_tag.clone(),
    };
    tracing::info!(ticket = %t.id, number = t.number, charger_id = %r.charger_id, connector_id = r.connector_id, "driver starts a called ticket's charge");
    let reply = state.gateway.command(&r.charger_id, cmd).await?;
    Ok(Json(json!({
        "status": reply.status,
        "response": reply.response,
        "charger_id": r.charger_id,
        "connector_id": r.connector_id,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CallBody {
    /// A connector to reserve; otherwise a free one when there is one.
    charger_id: Option<String>,
    connector_id: Option<u32>,
}

async fn call_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    staff(&state, &headers).await?;
    let b: CallBody = body(&bytes)?;
    let plug_within = Duration::seconds(state.queue.config().plug_in_secs as i64);
    let st = state.clone();
    act(&state, &id, Audience::Staff, move |book, t| {
        let conns = connectors_of(&st, book, &t.station_id);
        let held = |c: &ConnectorNow| {
            book.tickets(&t.station_id).iter().any(|x| {
                matches!(x.state, TicketState::Called | TicketState::Charging)
                    && x.holds(&c.charger_id, c.evse_id, c.connector_id)
            })
        };
        let connector = match (&b.charger_id, b.connector_id) {
            (Some(ch), Some(cn)) => {
                let c = conns
                    .iter()
                    .find(|c| &c.charger_id == ch && c.connector_id == cn)
                    .ok_or_else(|| ApiError::bad_request("no such connector at this station"))?;
                if held(c) {
                    return Err(conflict(
                        "connector_taken",
                        "another ticket holds that connector",
                    ));
                }
                Some((c.charger_id.clone(), c.evse_id, c.connector_id))
            }
            (None, None) => conns
                .iter()
                .find(|c| c.status == ConnectorStatus::Available && !held(c))
                .map(|c| (c.charger_id.clone(), c.evse_id, c.connector_id)),
            _ => {
                return Err(ApiError::bad_request(
                    "give both charger_id and connector_id, or neither",
                ));
            }
        };
        Ok(TicketAction::Call {
            connector,
            plug_within,
        })
    })
    .await
}

async fn skip_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    staff(&state, &headers).await?;
    act(&state, &id, Audience::Staff, |book, t| {
        Ok(TicketAction::Skip {
            next_key: ticket::skip_keys(book.tickets(&t.station_id), &t.id),
        })
    })
    .await
}

async fn requeue_ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    staff(&state, &headers).await?;
    let max = state.queue.config().max_waiting as usize;
    act(&state, &id, Audience::Staff, move |book, t| {
        let waiting = book
            .tickets(&t.station_id)
            .iter()
            .filter(|x| x.state == TicketState::Waiting && x.id != t.id)
            .count();
        if waiting >= max {
            return Err(conflict("queue_full", "the queue is full"));
        }
        if let Some(c) = &t.contact
            && t.state == TicketState::Expired
            && book
                .tickets(&t.station_id)
                .iter()
                .any(|x| x.contact.as_ref() == Some(c))
        {
            return Err(conflict(
                "already_queued",
                "this contact already holds another number at this station",
            ));
        }
        Ok(TicketAction::Requeue {
            last_key: ticket::last_key(book.tickets(&t.station_id)),
        })
    })
    .await
}

#[derive(Deserialize)]
struct WaitQuery {
    /// Minutes until the car gets there; the arrival forecast fills the queue meanwhile.
    arrive_in_min: Option<f64>,
    /// Arrivals per hour while the car is on the way, when the caller has its own figure;
    /// otherwise the platform's fitted forecast for those hours is used.
    arrivals_per_hour: Option<f64>,
}

async fn station_wait(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    if let Some(m) = q.arrive_in_min
        && !(m.is_finite() && (0.0..=24.0 * 60.0).contains(&m))
    {
        return Err(ApiError::bad_request("arrive_in_min must be 0 to 1440"));
    }
    if let Some(a) = q.arrivals_per_hour
        && !(a.is_finite() && (0.0..=10_000.0).contains(&a))
    {
        return Err(ApiError::bad_request(
            "arrivals_per_hour must be 0 to 10000",
        ));
    }
    station_exists(&state, &id).await?;
    let mut book = state.queue.book.lock().await;
    ensure_loaded(&state, &mut book).await?;
    let slots = slots(&state, &book, &id).await?;
    let h = history(&state, &id).await?;
    let waiting_tickets = ticket::waiting_in_order(book.tickets(&id)).len();
    let observed = state.live.station_waiting(&id) as usize;
    // The book stays locked only for what needs it: a forecast fit may take a moment.
    drop(book);
    let mut ahead = waiting_tickets.max(observed);
    let (rate, source) = match (q.arrive_in_min, q.arrivals_per_hour) {
        (Some(_), Some(rate)) => (Some(rate), Some("caller")),
        (Some(m), None) => {
            let rate = chargeops_services::forecasts::arrivals_per_hour(
                &state.services.platform,
                &state.services.forecasts,
                &id,
                m,
            )
            .await?;
            (rate, rate.map(|_| "forecast"))
        }
        (None, _) => (None, None),
    };
    if let (Some(m), Some(rate)) = (q.arrive_in_min, rate) {
        ahead = estimate::queue_at_arrival(ahead, slots.len(), rate, m * 60.0, &h);
    }
    let est = estimate::wait(&slots, ahead, &h);
    let count = |f: fn(&Slot) -> bool| slots.iter().filter(|s| f(s)).count();
    Ok(Json(json!({
        "station_id": id,
        "estimated_wait_s": est.map(|e| e.wait_s.round() as i64),
        "waiting": waiting_tickets,
        "observed_waiting": observed,
        "ahead": ahead,
        "connectors": {
            "usable": slots.len(),
            "free": count(|s| matches!(s, Slot::Free)),
            "busy": count(|s| matches!(s, Slot::Busy { .. })),
            "reserved": count(|s| matches!(s, Slot::Reserved { .. })),
        },
        "typical_session_s": h.typical_s().round(),
        "history_sessions": h.len(),
        "arrivals_per_hour": rate.map(|r| (r * 100.0).round() / 100.0),
        "arrivals_source": source,
        "at": state.live.now(),
    })))
}

#[derive(Deserialize)]
struct DiversionQuery {
    station: Option<String>,
    direction: Option<String>,
    range_km: Option<f64>,
    energy_kwh: Option<f64>,
}

/// What the platform knows of a station for the ranking: its wait from live counts and the
/// queue, and its rated power.
fn station_now(state: &AppState, book: &Book, id: &str, power_kw: f64, typical: f64) -> StationNow {
    let c = state.live.station_counts(id).unwrap_or_default();
    let tickets = book.tickets(id);
    let waiting = ticket::waiting_in_order(tickets).len();
    // A called ticket takes one of the available connectors, unless its charger reserved the
    // connector (then the live counts have it as reserved already).
    let called_free = tickets
        .iter()
        .filter(|t| t.state == TicketState::Called)
        .filter(|t| match (&t.charger_id, t.connector_id) {
            (Some(ch), Some(cn)) => state
                .live
                .connector(ch, t.evse_id.unwrap_or(cn), cn)
                .is_none_or(|c| c.status == ConnectorStatus::Available),
            _ => true,
        })
        .count() as u64;
    let observed = state.live.station_waiting(id) as usize;
    let free = c.available.saturating_sub(called_free) as usize;
    let busy = (c.occupied + c.charging + c.reserved + c.available.min(called_free)) as usize;
    let h = History::fallback(typical);
    StationNow {
        wait_s: estimate::wait_from_counts(free, busy, waiting.max(observed), &h).map(|e| e.wait_s),
        power_kw,
    }
}

async fn diversion(
    State(state): State<Arc<AppState>>,
    q: Result<Query<DiversionQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let station = q
        .station
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("station is required"))?;
    let range_km = q
        .range_km
        .ok_or_else(|| ApiError::bad_request("range_km is required"))?;
    if !(range_km.is_finite() && (0.0..=1500.0).contains(&range_km)) {
        return Err(ApiError::bad_request(
            "range_km must be a number of km between 0 and 1500",
        ));
    }
    let config = state.queue.config();
    let energy_kwh = q.energy_kwh.unwrap_or(config.energy_kwh);
    if !(energy_kwh.is_finite() && (1.0..=200.0).contains(&energy_kwh)) {
        return Err(ApiError::bad_request("energy_kwh must be 1 to 200"));
    }
    let direction = match q.direction.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => Some(
            diversion::parse_direction(d)
                .ok_or_else(|| ApiError::bad_request("direction must be N, S, E or W"))?,
        ),
    };
    station_exists(&state, &station).await?;
    let net = network();
    let origin = diversion::origin(net, &station, direction).map_err(|e| match e {
        diversion::DiversionError::UnknownStation(_)
        | diversion::DiversionError::NotOnHighway(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_on_highway",
            format!("{e}: diversion needs a highway service area of the network file"),
        ),
        other => ApiError::bad_request(other.to_string()),
    })?;
    let trip = Trip {
        range_km,
        energy_kwh,
        speed_kmh: config.speed_kmh,
        twin_detour_km: config.twin_detour_km,
    };
    let known: std::collections::HashSet<String> = state
        .store
        .list_stations()
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let candidates: Vec<_> = diversion::candidates(net, origin, &trip)
        .into_iter()
        .filter(|c| known.contains(&c.0.id))
        .collect();
    let mut book = state.queue.book.lock().await;
    ensure_loaded(&state, &mut book).await?;
    let typical = config.typical_session_mins as f64 * 60.0;
    let ranked = diversion::rank(&candidates, &trip, |s, _| {
        station_now(&state, &book, &s.id, f64::from(s.power_kw), typical)
    });
    drop(book);
    let best = diversion::best_alternative(&ranked, MIN_SAVING_S).cloned();
    let here_total = ranked
        .iter()
        .find(|c| c.kind == OptionKind::Here)
        .map(|c| c.total_s);
    if let Some(b) = &best {
        *lock(&state.queue.suggestions)
            .entry((origin.id.clone(), b.station_id.clone()))
            .or_default() += 1;
    }
    let options: Vec<Value> = ranked
        .iter()
        .map(|c| {
            let spec = net.station(&c.station_id);
            let counts = state.live.station_counts(&c.station_id).unwrap_or_default();
            json!({
                "station_id": c.station_id,
                "name": spec.map(|s| format!("{} ({})", s.name_zh, s.name_pinyin)),
                "kind": c.kind,
                "distance_km": round1(c.distance_km),
                "detour_km": round1(c.detour_km),
                "drive_s": c.drive_s.round(),
                "wait_s": c.wait_s.round(),
                "charge_s": c.charge_s.round(),
                "total_s": c.total_s.round(),
                "available": counts.available,
                "lat": spec.map(|s| s.lat),
                "lon": spec.map(|s| s.lon),
            })
        })
        .collect();
    Ok(Json(json!({
        "station_id": origin.id,
        "asked": station,
        "direction": origin.direction.map(|d| d.as_str()),
        "range_km": range_km,
        "energy_kwh": energy_kwh,
        "options": options,
        "suggestion": best.as_ref().map(|b| json!({
            "station_id": b.station_id,
            "kind": b.kind,
            "saves_s": here_total.map(|h| (h - b.total_s).round()),
        })),
        "at": state.live.now(),
    })))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[derive(Deserialize)]
struct StatsQuery {
    hours: Option<u32>,
}

/// For the operations map: queues per station, diversion suggestions given since start, and
/// how many cars took one (tickets taken through a diversion).
async fn diversion_stats(
    State(state): State<Arc<AppState>>,
    q: Result<Query<StatsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let hours = q.hours.unwrap_or(24);
    if !(1..=24 * 14).contains(&hours) {
        return Err(ApiError::bad_request("hours must be 1 to 336"));
    }
    let since = state.live.now() - Duration::hours(i64::from(hours));
    let taken = state
        .store
        .list_tickets(&TicketFilter {
            since: Some(since),
            limit: Some(100_000),
            ..TicketFilter::default()
        })
        .await?
        .into_iter()
        .filter(|t| t.source == "diversion")
        .count();
    let mut book = state.queue.book.lock().await;
    ensure_loaded(&state, &mut book).await?;
    let mut queues: Vec<Value> = book
        .active
        .iter()
        .map(|(s, v)| {
            json!({
                "station_id": s,
                "waiting": v.iter().filter(|t| t.state == TicketState::Waiting).count(),
                "called": v.iter().filter(|t| t.state == TicketState::Called).count(),
            })
        })
        .filter(|v| v["waiting"].as_u64().unwrap_or(0) + v["called"].as_u64().unwrap_or(0) > 0)
        .collect();
    drop(book);
    queues.sort_by_key(|v| std::cmp::Reverse(v["waiting"].as_u64().unwrap_or(0)));
    let mut routes: Vec<Value> = lock(&state.queue.suggestions)
        .iter()
        .map(|((from, to), n)| json!({ "from": from, "to": to, "suggested": n }))
        .collect();
    routes.sort_by_key(|v| std::cmp::Reverse(v["suggested"].as_u64().unwrap_or(0)));
    routes.truncate(50);
    let suggested: u64 = lock(&state.queue.suggestions).values().sum();
    Ok(Json(json!({
        "suggested": suggested,
        "taken": taken,
        "hours": hours,
        "queues": queues,
        "routes": routes,
        "at": state.live.now(),
    })))
}

// ---------------------------------------------------------------------------------------------
// Station card.

#[derive(Deserialize)]
struct CardQuery {
    km: Option<f64>,
}

/// Amenities of a service area (by its `pair` key, or its id), from `data/network/amenities.csv`.
fn amenities(spec: &chargeops_core::network_file::StationSpec) -> Vec<String> {
    static TABLE: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        include_str!("../../../data/network/amenities.csv")
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (key, list) = l.split_once(',')?;
                Some((
                    key.trim().to_owned(),
                    list.split(';')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                ))
            })
            .collect()
    });
    let key = spec.pair.clone().unwrap_or_else(|| spec.id.clone());
    if let Some(v) = table.get(&key).or_else(|| table.get(&spec.id)) {
        return v.clone();
    }
    let default = match spec.kind {
        StationKind::ServiceArea => "*service_area",
        StationKind::ParkingArea => "*parking_area",
        StationKind::Urban => "*urban",
    };
    table.get(default).cloned().unwrap_or_default()
}

async fn station_card(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<CardQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let radius = q.km.unwrap_or(80.0);
    if !(radius.is_finite() && (1.0..=300.0).contains(&radius)) {
        return Err(ApiError::bad_request("km must be 1 to 300"));
    }
    let me = station_exists(&state, &id).await?;
    let net = network();
    let stations = state.store.list_stations().await?;
    // The store's position, else the network file's.
    let pos = |s: &chargeops_core::Station| {
        s.lat
            .zip(s.lon)
            .or_else(|| net.station(&s.id).map(|x| (x.lat, x.lon)))
    };
    let here = pos(&me);
    let card = |s: &chargeops_core::Station, km: Option<f64>, relation: &str| {
        let c = state.live.station_counts(&s.id).unwrap_or_default();
        let spec = net.station(&s.id);
        json!({
            "id": s.id,
            "name": s.name,
            "highway": s.highway,
            "direction": s.direction,
            "relation": relation,
            "distance_km": km.map(round1),
            "available": c.available,
            "total": c.total(),
            "busy": c.occupied + c.charging,
            "waiting": state.live.station_waiting(&s.id),
            "power_kw": spec.map(|x| x.power_kw),
            "amenities": spec.map(amenities).unwrap_or_default(),
        })
    };
    let mut nearby: Vec<(f64, Value)> = Vec::new();
    let downstream: std::collections::HashSet<&str> =
        net.downstream(&id).iter().map(|s| s.id.as_str()).collect();
    let twin = net.twin(&id).map(|t| t.id.clone());
    for s in stations.iter().filter(|s| s.id != id) {
        let km = match (
            net.station(&id).and_then(|a| a.km),
            net.station(&s.id).and_then(|b| b.km),
        ) {
            (Some(a), Some(b)) if downstream.contains(s.id.as_str()) => Some((a - b).abs()),
            _ => here
                .zip(pos(s))
                .map(|(a, b)| chargeops_services::forecasts::haversine_km(a, b)),
        };
        let Some(km) = km.filter(|k| *k <= radius) else {
            continue;
        };
        let relation = if Some(&s.id) == twin.as_ref() {
            "opposite_direction"
        } else if downstream.contains(s.id.as_str()) {
            "downstream"
        } else {
            "nearby"
        };
        nearby.push((km, card(s, Some(km), relation)));
    }
    nearby.sort_by(|a, b| a.0.total_cmp(&b.0));
    nearby.truncate(12);
    Ok(Json(json!({
        "station": card(&me, None, "here"),
        "nearby": nearby.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "at": state.live.now(),
    })))
}

/// Starts the queue task with `config` (none when disabled) and sets the notifiers: the log
/// always, the webhook when configured. The routes work either way.
pub fn start(state: &Arc<AppState>, config: QueueConfig) -> Option<tokio::task::JoinHandle<()>> {
    let mut sinks: Vec<Box<dyn Notifier>> = vec![Box::new(LogNotifier)];
    if let Some(url) = &config.webhook_url {
        match webhook::Webhook::new(url) {
            Ok(w) => sinks.push(Box::new(w)),
            Err(e) => tracing::error!(error = %e, "queue webhook disabled"),
        }
    }
    *state
        .queue
        .notifier
        .write()
        .unwrap_or_else(|e| e.into_inner()) = Arc::new(chargeops_queue::notify::Fanout(sinks));
    *state
        .queue
        .config
        .write()
        .unwrap_or_else(|e| e.into_inner()) = config.clone();
    state
        .gateway
        .set_tag_authority(state.queue.reservations.clone());
    runner::spawn(state.clone(), config)
}
