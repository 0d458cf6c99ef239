//! The queue-number service: every station's active tickets (kept in memory, written through to
//! the store first), calling them as connectors free up, holding a called ticket's connector on
//! the charger itself, wait estimates from the live network and session history, the diversion
//! ranking, and the station card. The rules are `chargeops-queue`'s; this service keeps the
//! state, reads the platform and decides who sees what ([`Audience`]).
//!
//! Who may do what:
//! - Anyone (the public driver page, partners): take a number with a contact, follow and cancel
//!   a ticket by its id (unguessable: knowing it is the capability), start charging at the
//!   connector a called ticket reserved (with the ticket's own tag), see a station's queue
//!   (numbers and positions, never ids or contacts), its wait, a diversion ranking and a station
//!   card.
//! - Staff ([`STAFF`] roles): call, skip and re-queue numbers, hand out numbers without a
//!   contact, and see ids and contacts. Other roles with a token see the queue with ids and
//!   masked contacts.
//!
//! Background duties: the caller ([`caller`]: calls tickets on connector events, expires
//! no-shows) and the reservation workers ([`reserve`]: ReserveNow and CancelReservation, one
//! worker per charger), both run through [`Duties`].

mod caller;
mod card;
mod diversion;
mod reserve;
mod view;
mod webhook;

pub use card::{CardStation, StationCard};
pub use diversion::{
    Diversion, DiversionOption, DiversionRequest, DiversionStats, QueueCount, Route, Suggestion,
};
pub use reserve::new_reservation_id;
pub use view::{
    Audience, ReservationView, STAFF, Started, StationQueue, TicketView, WaitConnectors,
    WaitEstimate,
};

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

use chargeops_core::network_file::{HUNAN, NetworkSpec, parse_network};
use chargeops_core::secret::random_hex;
use chargeops_core::{Command, ConnectorStatus, Station};
use chargeops_queue::estimate::{self, History, Slot};
use chargeops_queue::ticket::{self, ORDER_STEP};
use chargeops_queue::{
    Contact, LogNotifier, Notification, NotificationKind, Notifier, QueueConfig, Ticket,
    TicketAction, TicketState,
};
use chargeops_store::{SessionFilter, TicketFilter};

use crate::forecasts::{self, Forecasts};
use crate::{Duties, Error, ErrorKind, Platform, Result};

/// How long a station's session history is reused for estimates.
const HISTORY_TTL_SECS: u64 = 300;

/// The queue-number service.
pub struct Queue {
    platform: Platform,
    forecasts: Arc<Forecasts>,
    /// Where the reservation workers run: started when a charger first has work, on any node
    /// that changes tickets (with or without the caller duty).
    duties: Arc<Duties>,
    config: RwLock<QueueConfig>,
    /// Serialises every change of tickets, between requests and the caller duty.
    book: tokio::sync::Mutex<Book>,
    notifier: RwLock<Arc<dyn Notifier>>,
    histories: Mutex<HashMap<String, (Instant, Arc<History>)>>,
    /// Diversion suggestions given since start, by (from, to).
    suggestions: Mutex<HashMap<(String, String), u64>>,
    /// Called tickets' reservations on the chargers, and the authority for their id tags.
    reservations: Arc<reserve::Reservations>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Active tickets by station, and which chargers each station has.
#[derive(Default)]
struct Book {
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

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn conflict(code: &'static str, message: impl Into<String>) -> Error {
    Error::conflict(code, message)
}

fn valid_ticket_id(id: &str) -> bool {
    id.len() <= 64 && !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A number to take at a station.
#[derive(Debug, Clone, Default)]
pub struct TakeRequest {
    /// A phone number or a plate; staff may hand out numbers without one.
    pub contact: Option<String>,
    /// The station the driver was at when a diversion sent them here.
    pub diverted_from: Option<String>,
}

/// Which connector staff call a ticket to.
#[derive(Debug, Clone, Default)]
pub struct CallRequest {
    /// A connector to reserve (both or neither); otherwise a free one when there is one.
    pub charger_id: Option<String>,
    pub connector_id: Option<u32>,
}

/// The wait at a station for a car that is on its way.
#[derive(Debug, Clone, Copy, Default)]
pub struct WaitRequest {
    /// Minutes until the car gets there; the arrival forecast fills the queue meanwhile.
    pub arrive_in_min: Option<f64>,
    /// Arrivals per hour while the car is on the way, when the caller has its own figure;
    /// otherwise the platform's fitted forecast for those hours is used.
    pub arrivals_per_hour: Option<f64>,
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

/// Wait estimates of a station's waiting tickets (by id), and of a car that joins now.
struct Estimates {
    by_ticket: HashMap<String, Option<i64>>,
    new_car: Option<i64>,
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

impl Queue {
    /// The service with the default settings and the log notifier; [`Queue::start`] sets the
    /// configured ones. Requests are served either way.
    pub fn new(platform: Platform, forecasts: Arc<Forecasts>, duties: Arc<Duties>) -> Arc<Self> {
        Arc::new(Queue {
            platform,
            forecasts,
            duties,
            config: RwLock::new(QueueConfig::default()),
            book: tokio::sync::Mutex::new(Book::default()),
            notifier: RwLock::new(Arc::new(LogNotifier)),
            histories: Mutex::new(HashMap::new()),
            suggestions: Mutex::new(HashMap::new()),
            reservations: Arc::default(),
        })
    }

    /// Sets the notifiers (the log always, the webhook when configured) and `config`, makes
    /// the gateway accept called tickets' tags, and starts the caller duty unless disabled.
    pub(crate) fn start(self: &Arc<Self>, duties: &Duties, config: QueueConfig) {
        let mut sinks: Vec<Box<dyn Notifier>> = vec![Box::new(LogNotifier)];
        if let Some(url) = &config.webhook_url {
            match webhook::Webhook::new(url) {
                Ok(w) => sinks.push(Box::new(w)),
                Err(e) => tracing::error!(error = %e, "queue webhook disabled"),
            }
        }
        *self.notifier.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(chargeops_queue::notify::Fanout(sinks));
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config.clone();
        self.platform
            .gateway
            .set_tag_authority(self.reservations.clone());
        if !config.enabled {
            tracing::info!("queue task is disabled");
            return;
        }
        let queue = self.clone();
        duties.start("queue caller", move |_stop| {
            // Subscribed here, before the duty's first poll, so no event after start is missed.
            let events = queue.platform.events();
            caller::run(queue.clone(), config.clone(), events)
        });
    }

    /// Drops the tickets read from the store (the duties moved to or from this node); the
    /// next use reads them again.
    pub(crate) async fn forget(&self) {
        *self.book.lock().await = Book::default();
        self.reservations.forget();
    }

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

    // -----------------------------------------------------------------------------------------
    // Loading, saving, calling.

    async fn ensure_loaded(&self, book: &mut Book) -> Result<()> {
        if book.loaded {
            return Ok(());
        }
        let store = &self.platform.store;
        for t in store
            .list_tickets(&TicketFilter {
                active: Some(true),
                limit: Some(1_000_000),
                ..TicketFilter::default()
            })
            .await?
        {
            book.put(t);
        }
        for c in store.list_chargers().await? {
            book.chargers.entry(c.station_id).or_default().insert(c.id);
        }
        self.reservations
            .load(store.as_ref(), self.platform.now())
            .await?;
        book.loaded = true;
        Ok(())
    }

    /// Stores a changed ticket, then keeps it in the book and the charger's reservation in
    /// step (every change of a ticket comes through here).
    async fn save(&self, book: &mut Book, t: Ticket) -> Result<Ticket> {
        self.platform.fence()?;
        self.platform.store.update_ticket(&t).await?;
        book.put(t.clone());
        self.reservations
            .follow(&self.platform, &self.duties, &t)
            .await;
        Ok(t)
    }

    fn connectors_of(&self, book: &Book, station: &str) -> Vec<ConnectorNow> {
        let mut out = Vec::new();
        for charger in book.chargers.get(station).into_iter().flatten() {
            let Some(snap) = self.platform.live.snapshot(charger) else {
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

    /// Calls waiting tickets to every free connector no called ticket holds. Returns the
    /// tickets called. Each connector goes to one ticket, and a ticket is called once: it
    /// leaves `waiting`.
    async fn dispatch(&self, book: &mut Book, station: &str) -> Result<Vec<Ticket>> {
        let config = self.config();
        let mut called = Vec::new();
        if ticket::next_waiting(book.tickets(station)).is_none() {
            return Ok(called);
        }
        for c in self.connectors_of(book, station) {
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
            let now = self.platform.now();
            let t = next
                .apply(
                    &TicketAction::Call {
                        connector: Some((c.charger_id.clone(), c.evse_id, c.connector_id)),
                        plug_within: Duration::seconds(config.plug_in_secs as i64),
                    },
                    now,
                )
                .map_err(|e| Error::internal(e.to_string()))?;
            let t = self.save(book, t).await?;
            tracing::info!(ticket = %t.id, number = t.number, station, charger = %c.charger_id, connector = c.connector_id, "queue number called");
            self.notify(&notification(&t, NotificationKind::Called, now));
            called.push(t);
        }
        Ok(called)
    }

    // -----------------------------------------------------------------------------------------
    // Estimates.

    async fn history(&self, station: &str) -> Result<Arc<History>> {
        if let Some((at, h)) = lock(&self.histories).get(station)
            && at.elapsed().as_secs() < HISTORY_TTL_SECS
        {
            return Ok(h.clone());
        }
        let sessions = self
            .platform
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
        let typical = self.config().typical_session_mins as f64 * 60.0;
        let h = Arc::new(History::new(durations, energies, typical));
        lock(&self.histories).insert(station.to_owned(), (Instant::now(), h.clone()));
        Ok(h)
    }

    /// The usable connectors of a station as estimator slots, with what the store says of the
    /// sessions running on them.
    async fn slots(&self, book: &Book, station: &str) -> Result<Vec<Slot>> {
        let now = self.platform.now();
        let conns = self.connectors_of(book, station);
        let running = if conns.iter().any(|c| {
            matches!(
                c.status,
                ConnectorStatus::Charging | ConnectorStatus::Occupied
            )
        }) {
            self.platform
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
                ConnectorStatus::Unavailable
                | ConnectorStatus::Faulted
                | ConnectorStatus::Offline => {
                    continue;
                }
            };
            out.push(slot);
        }
        Ok(out)
    }

    async fn estimates(&self, book: &Book, station: &str) -> Result<Estimates> {
        let slots = self.slots(book, station).await?;
        let h = self.history(station).await?;
        let order = ticket::waiting_in_order(book.tickets(station));
        let est = |ahead: usize| estimate::wait(&slots, ahead, &h).map(|e| e.wait_s.round() as i64);
        let observed = self.platform.live.station_waiting(station) as usize;
        Ok(Estimates {
            by_ticket: order
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.clone(), est(i)))
                .collect(),
            new_car: est(order.len().max(observed)),
        })
    }

    /// The estimate of a car joining behind every waiting ticket.
    async fn estimate_behind(&self, book: &Book, id: &str) -> Result<Option<i64>> {
        let slots = self.slots(book, id).await?;
        let h = self.history(id).await?;
        let ahead = ticket::waiting_in_order(book.tickets(id)).len();
        Ok(estimate::wait(&slots, ahead, &h).map(|e| e.wait_s.round() as i64))
    }

    async fn ticket_view(&self, book: &Book, t: &Ticket, who: Audience) -> Result<TicketView> {
        let position = ticket::position(book.tickets(&t.station_id), &t.id);
        let est = if t.state == TicketState::Waiting {
            self.estimates(book, &t.station_id)
                .await?
                .by_ticket
                .get(&t.id)
                .copied()
                .flatten()
        } else {
            None
        };
        let reservation = self.reservations.get(&t.id);
        Ok(TicketView::new(t, position, est, reservation.as_ref(), who))
    }

    async fn station_exists(&self, id: &str) -> Result<Station> {
        self.platform
            .store
            .get_station(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("station {id} not found")))
    }

    async fn load_ticket(&self, book: &Book, id: &str) -> Result<Ticket> {
        if !valid_ticket_id(id) {
            return Err(Error::not_found("ticket not found"));
        }
        if let Some(t) = book.find(id) {
            return Ok(t.clone());
        }
        self.platform
            .store
            .get_ticket(id)
            .await?
            .ok_or_else(|| Error::not_found("ticket not found"))
    }

    // -----------------------------------------------------------------------------------------
    // The interface.

    /// A station's active tickets, charging and called first, then in call order.
    pub async fn station_queue(&self, station: &str, who: Audience) -> Result<StationQueue> {
        self.station_exists(station).await?;
        let mut book = self.book.lock().await;
        self.ensure_loaded(&mut book).await?;
        let est = self.estimates(&book, station).await?;
        let tickets = book.tickets(station);
        let mut list: Vec<&Ticket> = tickets.iter().collect();
        list.sort_by_key(|t| {
            (
                t.state != TicketState::Charging,
                t.state != TicketState::Called,
                t.order_key,
                t.number,
            )
        });
        let views = list
            .iter()
            .map(|t| {
                TicketView::new(
                    t,
                    ticket::position(tickets, &t.id),
                    est.by_ticket.get(&t.id).copied().flatten(),
                    self.reservations.get(&t.id).as_ref(),
                    who,
                )
            })
            .collect();
        let count = |s: TicketState| tickets.iter().filter(|t| t.state == s).count();
        let config = self.config();
        Ok(StationQueue {
            station_id: station.to_owned(),
            waiting: count(TicketState::Waiting),
            called: count(TicketState::Called),
            charging: count(TicketState::Charging),
            max_waiting: config.max_waiting,
            plug_in_secs: config.plug_in_secs,
            estimated_wait_s: est.new_car,
            tickets: views,
            at: self.platform.now(),
        })
    }

    /// Takes a number at `station` (staff may give no contact), and calls it at once when a
    /// connector is free. The answer is the holder's view (staff's for staff).
    pub async fn take_number(
        &self,
        station: &str,
        req: TakeRequest,
        who: Audience,
    ) -> Result<TicketView> {
        let is_staff = who == Audience::Staff;
        let contact = match req.contact.as_deref().map(str::trim) {
            None | Some("") if is_staff => None,
            None | Some("") => {
                return Err(Error::invalid(
                    "contact is required: a phone number or a plate",
                ));
            }
            Some(c) => Some(
                Contact::parse(c)
                    .map_err(|e| Error::new(ErrorKind::Invalid, "invalid_contact", e.to_string()))?
                    .as_str()
                    .to_owned(),
            ),
        };
        if let Some(from) = &req.diverted_from
            && (from.len() > 64 || from.is_empty())
        {
            return Err(Error::invalid("diverted_from must be a station id"));
        }
        self.station_exists(station).await?;
        let config = self.config();
        let mut book = self.book.lock().await;
        self.ensure_loaded(&mut book).await?;
        let tickets = book.tickets(station);
        let waiting = tickets
            .iter()
            .filter(|t| t.state == TicketState::Waiting)
            .count();
        if waiting >= config.max_waiting as usize {
            return Err(conflict(
                "queue_full",
                format!(
                    "the queue at {station} is full ({} waiting); try a station nearby",
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
        let initial = self.estimate_behind(&book, station).await?;
        let now = self.platform.now();
        let source = if req.diverted_from.is_some() {
            "diversion"
        } else if is_staff {
            "staff"
        } else {
            "driver"
        };
        let mut t = Ticket::new(
            format!("t_{}", random_hex(16)),
            station,
            contact,
            ticket::last_key(book.tickets(station)) + ORDER_STEP,
            now,
            source,
        );
        t.initial_estimate_s = initial;
        self.platform.fence()?;
        let t = self.platform.store.insert_ticket(&t).await.map_err(|e| {
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
        tracing::info!(ticket = %t.id, number = t.number, station, source, "queue number taken");
        self.dispatch(&mut book, station).await?;
        let t = book.find(&t.id).cloned().unwrap_or(t);
        let who = if is_staff {
            Audience::Staff
        } else {
            Audience::Holder
        };
        self.ticket_view(&book, &t, who).await
    }

    /// A ticket by its id. Knowing the id makes an anonymous caller its holder.
    pub async fn ticket(&self, id: &str, who: Audience) -> Result<TicketView> {
        let who = who.knowing_the_id();
        let mut book = self.book.lock().await;
        self.ensure_loaded(&mut book).await?;
        let t = self.load_ticket(&book, id).await?;
        self.ticket_view(&book, &t, who).await
    }

    /// Cancels a ticket (whoever knows its id may), and calls whoever is next.
    pub async fn cancel(&self, id: &str, who: Audience) -> Result<TicketView> {
        self.act(id, who.knowing_the_id(), |_, _| Ok(TicketAction::Cancel))
            .await
    }

    /// Staff call a ticket: to the connector asked for, or to a free one when there is one.
    pub async fn call(&self, id: &str, req: CallRequest) -> Result<TicketView> {
        let plug_within = Duration::seconds(self.config().plug_in_secs as i64);
        self.act(id, Audience::Staff, move |book, t| {
            let conns = self.connectors_of(book, &t.station_id);
            let held = |c: &ConnectorNow| {
                book.tickets(&t.station_id).iter().any(|x| {
                    matches!(x.state, TicketState::Called | TicketState::Charging)
                        && x.holds(&c.charger_id, c.evse_id, c.connector_id)
                })
            };
            let connector = match (&req.charger_id, req.connector_id) {
                (Some(ch), Some(cn)) => {
                    let c = conns
                        .iter()
                        .find(|c| &c.charger_id == ch && c.connector_id == cn)
                        .ok_or_else(|| Error::invalid("no such connector at this station"))?;
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
                    return Err(Error::invalid(
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

    /// Staff pass a ticket's turn to the next waiting one.
    pub async fn skip(&self, id: &str) -> Result<TicketView> {
        self.act(id, Audience::Staff, |book, t| {
            Ok(TicketAction::Skip {
                next_key: ticket::skip_keys(book.tickets(&t.station_id), &t.id),
            })
        })
        .await
    }

    /// Staff put a ticket back at the end of its queue.
    pub async fn requeue(&self, id: &str) -> Result<TicketView> {
        let max = self.config().max_waiting as usize;
        self.act(id, Audience::Staff, move |book, t| {
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

    /// Applies the action `make` gives for ticket `id`, stores it, and calls whoever is next.
    async fn act(
        &self,
        id: &str,
        who: Audience,
        make: impl FnOnce(&Book, &Ticket) -> Result<TicketAction>,
    ) -> Result<TicketView> {
        let mut book = self.book.lock().await;
        self.ensure_loaded(&mut book).await?;
        let t = self.load_ticket(&book, id).await?;
        let action = make(&book, &t)?;
        let now = self.platform.now();
        let changed = t
            .apply(&action, now)
            .map_err(|e| conflict("invalid_state", e.to_string()))?;
        let changed = self.save(&mut book, changed).await?;
        tracing::info!(ticket = %changed.id, number = changed.number, station = %changed.station_id, action = action.name(), "queue ticket changed");
        match action {
            TicketAction::Requeue { .. } => {
                self.notify(&notification(&changed, NotificationKind::Requeued, now))
            }
            TicketAction::Call { .. } => {
                self.notify(&notification(&changed, NotificationKind::Called, now))
            }
            _ => {}
        }
        let station = changed.station_id.clone();
        self.dispatch(&mut book, &station).await?;
        let latest = book.find(&changed.id).cloned().unwrap_or(changed);
        self.ticket_view(&book, &latest, who).await
    }

    /// The driver of a called ticket starts charging at the connector the charger reserved
    /// for it, without a card: a remote start with the ticket's own tag, the one tag the
    /// reserved connector lets start. Answers with the charger's reply.
    pub async fn start_charging(&self, id: &str) -> Result<Started> {
        let t = {
            let mut book = self.book.lock().await;
            self.ensure_loaded(&mut book).await?;
            self.load_ticket(&book, id).await?
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
        let Some(r) = self.reservations.get(&t.id).filter(|r| r.holding) else {
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
        let reply = self.platform.gateway.command(&r.charger_id, cmd).await?;
        Ok(Started {
            status: reply.status,
            response: reply.response,
            charger_id: r.charger_id,
            connector_id: r.connector_id,
        })
    }

    /// The wait at a station now, or for a car arriving in `arrive_in_min` minutes (the
    /// queue meanwhile from the caller's arrival rate or the fitted forecast).
    pub async fn wait(&self, station: &str, req: WaitRequest) -> Result<WaitEstimate> {
        if let Some(m) = req.arrive_in_min
            && !(m.is_finite() && (0.0..=24.0 * 60.0).contains(&m))
        {
            return Err(Error::invalid("arrive_in_min must be 0 to 1440"));
        }
        if let Some(a) = req.arrivals_per_hour
            && !(a.is_finite() && (0.0..=10_000.0).contains(&a))
        {
            return Err(Error::invalid("arrivals_per_hour must be 0 to 10000"));
        }
        self.station_exists(station).await?;
        let mut book = self.book.lock().await;
        self.ensure_loaded(&mut book).await?;
        let slots = self.slots(&book, station).await?;
        let h = self.history(station).await?;
        let waiting_tickets = ticket::waiting_in_order(book.tickets(station)).len();
        let observed = self.platform.live.station_waiting(station) as usize;
        // The book stays locked only for what needs it: a forecast fit may take a moment.
        drop(book);
        let mut ahead = waiting_tickets.max(observed);
        let (rate, source) = match (req.arrive_in_min, req.arrivals_per_hour) {
            (Some(_), Some(rate)) => (Some(rate), Some("caller")),
            (Some(m), None) => {
                let rate =
                    forecasts::arrivals_per_hour(&self.platform, &self.forecasts, station, m)
                        .await?;
                (rate, rate.map(|_| "forecast"))
            }
            (None, _) => (None, None),
        };
        if let (Some(m), Some(rate)) = (req.arrive_in_min, rate) {
            ahead = estimate::queue_at_arrival(ahead, slots.len(), rate, m * 60.0, &h);
        }
        let est = estimate::wait(&slots, ahead, &h);
        let count = |f: fn(&Slot) -> bool| slots.iter().filter(|s| f(s)).count();
        Ok(WaitEstimate {
            station_id: station.to_owned(),
            estimated_wait_s: est.map(|e| e.wait_s.round() as i64),
            waiting: waiting_tickets,
            observed_waiting: observed,
            ahead,
            connectors: WaitConnectors {
                usable: slots.len(),
                free: count(|s| matches!(s, Slot::Free)),
                busy: count(|s| matches!(s, Slot::Busy { .. })),
                reserved: count(|s| matches!(s, Slot::Reserved { .. })),
            },
            typical_session_s: h.typical_s().round(),
            history_sessions: h.len(),
            arrivals_per_hour: rate.map(|r| (r * 100.0).round() / 100.0),
            arrivals_source: source,
            at: self.platform.now(),
        })
    }
}
