//! Holding a called ticket's connector on the charger itself: OCPP ReserveNow when the ticket is
//! called, CancelReservation when it stops holding the connector without the car starting.
//!
//! Each called ticket gets a reservation with an id tag of its own (`Q` and 18 hex digits: fits
//! OCPP 1.6's 20 characters and 2.0.1's 36). The charger lets only that tag start on the
//! reserved connector; the platform accepts it, through the gateway's [`TagAuthority`], at that
//! charger only and only while the ticket is called or charging there. The holder of the ticket
//! (who knows its id) and staff see the tag in the ticket's `reservation`.
//!
//! The charger is asked off the book's lock, by one worker per charger so that a reservation and
//! its cancellation reach the charger in order: a slow or silent charger never holds up the
//! queue, and whatever it answers (Rejected, Occupied, offline...) is only recorded; the
//! platform-side hold is the queue's rule either way. The workers belong to one duty,
//! `queue reservations`, started through [`Duties`] when the first job comes (on whichever
//! node changes a ticket, so also where the caller duty does not run); a worker ends after a
//! minute without work. YKC chargers have no reservations: their
//! tickets work as before, with no `reservation`.
//!
//! Reservations are store documents (kind `queue_reservation`, by ticket id) rather than ticket
//! columns, so the tickets table and every store backend stay as they are. One ended more than a
//! day ago is forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use chargeops_core::secret::random_hex;
use chargeops_core::{Command, CommandError, Live, Protocol};
use chargeops_gateway::TagAuthority;
use chargeops_queue::{Ticket, TicketState};
use chargeops_store::Store;

use crate::{Duties, Error, Platform};

use super::view::ReservationView;

/// Store document kind of a ticket's reservation.
pub(crate) const KIND: &str = "queue_reservation";
/// How long an ended reservation is kept to show on its ticket.
const KEEP_ENDED_HOURS: i64 = 24;
/// A charger's worker ends after this long without work.
const WORKER_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// A ticket's reservation on a charger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reservation {
    pub ticket_id: String,
    pub charger_id: String,
    pub evse_id: u32,
    pub connector_id: u32,
    pub reservation_id: i32,
    pub id_tag: String,
    pub expiry: DateTime<Utc>,
    /// The charger's answer to ReserveNow in lower case (`accepted`, `faulted`, `occupied`,
    /// `rejected`, `unavailable`), or `pending` until it answers, or what kept it from
    /// answering (`offline`, `timeout`, `error`).
    pub status: String,
    /// Whether the platform holds the connector for the ticket: its tag is accepted there.
    pub holding: bool,
    /// Why the platform stopped holding it: `charging` (the car started), `cancelled`,
    /// `no_show`, `returned` (skipped, re-queued, or the connector went out of service).
    pub ended: Option<String>,
    /// The answer to CancelReservation, when one was sent (`pending` until it answers).
    pub cancel_status: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl Reservation {
    /// What a ticket shows of it; the tag only to those who may start with it.
    pub fn view(&self, with_tag: bool) -> ReservationView {
        ReservationView {
            status: self.status.clone(),
            reservation_id: self.reservation_id,
            charger_id: self.charger_id.clone(),
            evse_id: self.evse_id,
            connector_id: self.connector_id,
            expiry: self.expiry,
            holding: self.holding,
            ended: self.ended.clone(),
            cancel_status: self.cancel_status.clone(),
            id_tag: with_tag.then(|| self.id_tag.clone()),
        }
    }

    /// Whether the charger may still hold it, so that cancelling it means something.
    fn on_charger(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "accepted" | "timeout")
    }
}

/// Work for a charger's worker.
enum Job {
    Reserve(Reservation),
    Cancel {
        ticket_id: String,
        reservation_id: i32,
    },
}

/// Every ticket's reservation, and the way to the workers that talk to chargers.
#[derive(Default)]
pub(crate) struct Reservations {
    records: Mutex<HashMap<String, Reservation>>,
    /// Jobs, by charger, for the running `queue reservations` duty (none before it starts).
    jobs: Mutex<Option<mpsc::UnboundedSender<(String, Job)>>>,
    /// Held while the duty is being started, so that it starts once.
    starting: Mutex<()>,
    /// Serialises document writes, each of which takes the record as it is then, so the last
    /// write is the latest state.
    persisting: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The handles a worker needs, without the whole service.
#[derive(Clone)]
struct Link {
    platform: Platform,
    reservations: Arc<Reservations>,
}

impl TagAuthority for Reservations {
    /// A ticket's tag is good at its charger while the ticket is called or charging there.
    fn accepts(&self, charger_id: &str, id_tag: &str) -> bool {
        lock(&self.records)
            .values()
            .any(|r| r.holding && r.id_tag == id_tag && r.charger_id == charger_id)
    }
}

pub use chargeops_core::command::new_reservation_id;

fn new_id_tag() -> String {
    format!("Q{}", random_hex(9).to_uppercase())
}

/// The lower-case status recorded for a command's outcome.
fn outcome(result: &Result<chargeops_core::CommandReply, CommandError>) -> String {
    match result {
        Ok(reply) => reply.status.to_ascii_lowercase(),
        Err(CommandError::Offline(_) | CommandError::Closed) => "offline".to_owned(),
        Err(CommandError::Timeout(_)) => "timeout".to_owned(),
        Err(_) => "error".to_owned(),
    }
}

impl Reservations {
    /// Drops every record (a node whose duties moved elsewhere); [`Reservations::load`]
    /// reads them again.
    pub fn forget(&self) {
        lock(&self.records).clear();
    }

    /// Reads the stored reservations (at the queue's first load), dropping long-ended ones.
    pub async fn load(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<(), Error> {
        let mut stale = Vec::new();
        let mut records = HashMap::new();
        for (id, body) in store.list_documents(KIND).await? {
            match serde_json::from_str::<Reservation>(&body) {
                Ok(r) if r.holding || r.updated_at > now - Duration::hours(KEEP_ENDED_HOURS) => {
                    records.insert(id, r);
                }
                Ok(_) => stale.push(id),
                Err(e) => {
                    tracing::warn!(ticket = %id, error = %e, "unreadable queue reservation dropped");
                    stale.push(id);
                }
            }
        }
        for id in stale {
            store.delete_document(KIND, &id).await?;
        }
        *lock(&self.records) = records;
        Ok(())
    }

    pub fn get(&self, ticket_id: &str) -> Option<Reservation> {
        lock(&self.records).get(ticket_id).cloned()
    }

    /// Keeps the charger in step with a ticket that changed from `old` to `new` (already
    /// stored): reserves a newly called ticket's connector, cancels a reservation the ticket
    /// no longer uses. Never fails the ticket's change: problems are logged and recorded.
    pub async fn follow(self: &Arc<Self>, platform: &Platform, duties: &Duties, new: &Ticket) {
        let now = platform.now();
        let mut jobs = Vec::new();
        let mut changed = false;
        let mut tag = None;
        {
            let mut records = lock(&self.records);
            if let Some(r) = records.get_mut(&new.id).filter(|r| r.holding) {
                tag = Some(r.id_tag.clone());
                let same = new.holds(&r.charger_id, r.evse_id, r.connector_id);
                let ended = match new.state {
                    TicketState::Called if same => None,
                    TicketState::Charging if same => {
                        (r.ended.is_none()).then(|| "charging".to_owned())
                    }
                    TicketState::Done if r.ended.as_deref() == Some("charging") => {
                        Some("charging".to_owned())
                    }
                    TicketState::Cancelled => Some("cancelled".to_owned()),
                    TicketState::Expired => Some("no_show".to_owned()),
                    _ => Some("returned".to_owned()),
                };
                if let Some(why) = ended {
                    changed = true;
                    r.updated_at = now;
                    // The car started: the charger used the reservation up, and the tag stays
                    // good there until the ticket is done.
                    r.holding = new.state == TicketState::Charging && same;
                    let started = why == "charging";
                    if !started && r.on_charger() && r.cancel_status.is_none() {
                        r.cancel_status = Some("pending".to_owned());
                        jobs.push((
                            r.charger_id.clone(),
                            Job::Cancel {
                                ticket_id: r.ticket_id.clone(),
                                reservation_id: r.reservation_id,
                            },
                        ));
                        tracing::info!(ticket = %r.ticket_id, charger = %r.charger_id, reservation_id = r.reservation_id, why, "cancelling the ticket's reservation");
                    }
                    r.ended = Some(why);
                }
            }
            let holding = records.get(&new.id).is_some_and(|r| r.holding);
            if let (TicketState::Called, Some(charger), Some(evse), Some(connector), Some(plug_by)) = (
                new.state,
                &new.charger_id,
                new.evse_id,
                new.connector_id,
                new.plug_by,
            ) && !holding
                && reservable(&platform.live, charger)
            {
                let r = Reservation {
                    ticket_id: new.id.clone(),
                    charger_id: charger.clone(),
                    evse_id: evse,
                    connector_id: connector,
                    reservation_id: new_reservation_id(),
                    id_tag: tag
                        .or_else(|| records.get(&new.id).map(|r| r.id_tag.clone()))
                        .unwrap_or_else(new_id_tag),
                    expiry: plug_by,
                    status: "pending".to_owned(),
                    holding: true,
                    ended: None,
                    cancel_status: None,
                    updated_at: now,
                };
                tracing::info!(ticket = %r.ticket_id, charger = %r.charger_id, connector = r.connector_id, reservation_id = r.reservation_id, expiry = %r.expiry, "reserving the called ticket's connector");
                jobs.push((r.charger_id.clone(), Job::Reserve(r.clone())));
                records.insert(new.id.clone(), r);
                changed = true;
            }
            if changed {
                prune(&mut records, now);
            }
        }
        if changed {
            self.persist(platform.store.as_ref(), &new.id).await;
        }
        for (charger, job) in jobs {
            self.enqueue(platform, duties, charger, job);
        }
    }

    /// Writes a ticket's reservation as it is now (or deletes it once forgotten).
    async fn persist(&self, store: &dyn Store, ticket_id: &str) {
        let _turn = self.persisting.lock().await;
        let record = self.get(ticket_id);
        let written = match record {
            Some(r) => match serde_json::to_string(&r) {
                Ok(body) => store.put_document(KIND, ticket_id, &body).await,
                Err(e) => {
                    tracing::error!(ticket = %ticket_id, error = %e, "queue reservation not serialisable");
                    return;
                }
            },
            None => store.delete_document(KIND, ticket_id).await.map(|_| ()),
        };
        if let Err(e) = written {
            // The charger and the live hold are right; only a restart would forget this.
            tracing::warn!(ticket = %ticket_id, error = %e, "queue reservation not stored");
        }
    }

    /// Hands a job to the running duty; gives it back when no duty takes it.
    fn send(&self, item: (String, Job)) -> Option<(String, Job)> {
        match lock(&self.jobs).as_ref() {
            Some(tx) => tx.send(item).err().map(|mpsc::error::SendError(item)| item),
            None => Some(item),
        }
    }

    /// Hands a job to its charger's worker, starting the reservations duty when it is not
    /// running.
    fn enqueue(self: &Arc<Self>, platform: &Platform, duties: &Duties, charger: String, job: Job) {
        let Some(item) = self.send((charger, job)) else {
            return;
        };
        let _turn = lock(&self.starting);
        // Another change may have started it meanwhile.
        let Some(item) = self.send(item) else {
            return;
        };
        let link = Link {
            platform: platform.clone(),
            reservations: self.clone(),
        };
        duties.start("queue reservations", move |_stop| {
            let (tx, rx) = mpsc::unbounded_channel();
            *lock(&link.reservations.jobs) = Some(tx);
            supervise(link.clone(), rx)
        });
        if let Some((charger, _)) = self.send(item) {
            // Only once every duty is stopped, when the process ends.
            tracing::warn!(charger = %charger, "queue reservation not sent: the platform is stopping");
        }
    }

    /// Records the charger's answer to a ticket's ReserveNow, if the reservation is still
    /// that one.
    fn answered(&self, ticket_id: &str, reservation_id: i32, status: &str, now: DateTime<Utc>) {
        if let Some(r) = lock(&self.records)
            .get_mut(ticket_id)
            .filter(|r| r.reservation_id == reservation_id)
        {
            r.status = status.to_owned();
            r.updated_at = now;
        }
    }

    fn cancel_answered(
        &self,
        ticket_id: &str,
        reservation_id: i32,
        status: &str,
        now: DateTime<Utc>,
    ) {
        if let Some(r) = lock(&self.records)
            .get_mut(ticket_id)
            .filter(|r| r.reservation_id == reservation_id)
        {
            r.cancel_status = Some(status.to_owned());
            r.updated_at = now;
        }
    }
}

/// Whether the charger can be asked for a reservation: OCPP, or not known yet (it is asked, and
/// the answer recorded). YKC has no reservations.
fn reservable(live: &Live, charger: &str) -> bool {
    live.snapshot(charger)
        .is_none_or(|s| s.protocol != Some(Protocol::Ykc))
}

fn prune(records: &mut HashMap<String, Reservation>, now: DateTime<Utc>) {
    let horizon = now - Duration::hours(KEEP_ENDED_HOURS);
    // The documents of pruned records go when the queue next loads.
    records.retain(|_, r| r.holding || r.updated_at > horizon);
}

/// The `queue reservations` duty: hands each job to its charger's worker, starting one when
/// the charger has none. A worker idle for [`WORKER_IDLE`] hands its channel back and ends,
/// unless a job came in meanwhile; the workers end with the duty.
async fn supervise(link: Link, mut jobs: mpsc::UnboundedReceiver<(String, Job)>) {
    let mut workers: HashMap<String, mpsc::UnboundedSender<Job>> = HashMap::new();
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            next = jobs.recv() => {
                let Some((charger, job)) = next else {
                    return;
                };
                let job = match workers.get(&charger) {
                    Some(tx) => match tx.send(job) {
                        Ok(()) => continue,
                        // Its worker is gone (it panicked): a new one takes over.
                        Err(mpsc::error::SendError(job)) => job,
                    },
                    None => job,
                };
                let (tx, rx) = mpsc::unbounded_channel();
                // A fresh channel's receiver is alive: this send cannot fail.
                let _ = tx.send(job);
                workers.insert(charger.clone(), tx);
                running.spawn(work(link.clone(), charger, rx));
            }
            Some(done) = running.join_next(), if !running.is_empty() => match done {
                // Only this task sends to the workers, so nothing can slip in after this check.
                Ok((charger, rx)) if rx.is_empty() => {
                    workers.remove(&charger);
                }
                Ok((charger, rx)) => {
                    running.spawn(work(link.clone(), charger, rx));
                }
                Err(e) => tracing::error!(error = %e, "queue reservation worker failed"),
            },
        }
    }
}

/// One charger's worker: sends its jobs in order and records the answers. Ends when idle,
/// handing back its channel.
async fn work(
    link: Link,
    charger: String,
    mut rx: mpsc::UnboundedReceiver<Job>,
) -> (String, mpsc::UnboundedReceiver<Job>) {
    loop {
        let job = match tokio::time::timeout(WORKER_IDLE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) | Err(_) => return (charger, rx),
        };
        let ticket_id = match job {
            Job::Reserve(r) => {
                let result = link
                    .platform
                    .gateway
                    .command(
                        &charger,
                        Command::ReserveNow {
                            evse_id: Some(r.evse_id),
                            connector_id: Some(r.connector_id),
                            id_tag: r.id_tag.clone(),
                            expiry: r.expiry,
                            reservation_id: r.reservation_id,
                        },
                    )
                    .await;
                let status = outcome(&result);
                match &result {
                    Ok(_) if status == "accepted" => {
                        tracing::info!(ticket = %r.ticket_id, charger = %charger, reservation_id = r.reservation_id, "charger reserved the connector")
                    }
                    Ok(_) => {
                        tracing::warn!(ticket = %r.ticket_id, charger = %charger, reservation_id = r.reservation_id, status, "charger refused the reservation; the queue holds the connector itself")
                    }
                    Err(e) => {
                        tracing::warn!(ticket = %r.ticket_id, charger = %charger, reservation_id = r.reservation_id, error = %e, "reservation not made; the queue holds the connector itself")
                    }
                }
                link.reservations.answered(
                    &r.ticket_id,
                    r.reservation_id,
                    &status,
                    link.platform.now(),
                );
                r.ticket_id
            }
            Job::Cancel {
                ticket_id,
                reservation_id,
            } => {
                let result = link
                    .platform
                    .gateway
                    .command(&charger, Command::CancelReservation { reservation_id })
                    .await;
                let status = outcome(&result);
                if let Err(e) = &result {
                    tracing::warn!(ticket = %ticket_id, charger = %charger, reservation_id, error = %e, "reservation not cancelled; it ends at its expiry");
                } else {
                    tracing::info!(ticket = %ticket_id, charger = %charger, reservation_id, status, "reservation cancelled");
                }
                link.reservations.cancel_answered(
                    &ticket_id,
                    reservation_id,
                    &status,
                    link.platform.now(),
                );
                ticket_id
            }
        };
        link.reservations
            .persist(link.platform.store.as_ref(), &ticket_id)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tags_fit_both_ocpp_versions() {
        for _ in 0..200 {
            let id = new_reservation_id();
            assert!(id > 0);
            let tag = new_id_tag();
            assert_eq!(tag.len(), 19);
            assert!(tag.starts_with('Q'));
        }
        assert_ne!(new_id_tag(), new_id_tag());
    }

    #[test]
    fn ykc_chargers_are_not_asked() {
        let live = Live::new();
        live.upsert_charger("Y1", "S1", Some(Protocol::Ykc), Vec::new());
        live.upsert_charger("O1", "S1", Some(Protocol::Ocpp16), Vec::new());
        live.upsert_charger("O2", "S1", Some(Protocol::Ocpp201), Vec::new());
        assert!(!reservable(&live, "Y1"));
        assert!(reservable(&live, "O1") && reservable(&live, "O2"));
        // Never seen: asked, and its silence recorded.
        assert!(reservable(&live, "new"));
    }

    #[test]
    fn the_tag_is_good_only_where_and_while_held() {
        let rs = Reservations::default();
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let r = Reservation {
            ticket_id: "t_1".into(),
            charger_id: "CP1".into(),
            evse_id: 1,
            connector_id: 1,
            reservation_id: 7,
            id_tag: "QABC".into(),
            expiry: now,
            status: "occupied".into(),
            holding: true,
            ended: None,
            cancel_status: None,
            updated_at: now,
        };
        lock(&rs.records).insert("t_1".into(), r);
        assert!(rs.accepts("CP1", "QABC"));
        assert!(!rs.accepts("CP2", "QABC"), "another charger");
        assert!(!rs.accepts("CP1", "QABD"));
        if let Some(r) = lock(&rs.records).get_mut("t_1") {
            r.holding = false;
        }
        assert!(!rs.accepts("CP1", "QABC"), "after the ticket let go");
        assert_eq!(
            rs.get("t_1")
                .map(|r| serde_json::to_value(r.view(false))
                    .is_ok_and(|v| v.get("id_tag").is_none())),
            Some(true)
        );
    }
}
