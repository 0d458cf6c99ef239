//! The caller duty: reads the event bus and ticks on the platform clock.
//!
//! - A connector becoming available: a charging ticket on it is done; then, if no called ticket
//!   holds it, the next waiting ticket of the station is called and the connector reserved.
//! - A connector becoming occupied or charging: the called ticket holding it is charging.
//! - A session starting on a held connector (with the ticket's reservation tag or not; a
//!   charger may say nothing of its status first): the called ticket holding it is charging.
//! - A held connector faulting or going offline: its called ticket goes back to the front.
//! - A called ticket past its plug-in window: expired, and the connector goes to the next.
//!
//! Every change happens under the book's lock and is stored before the next one, so two
//! connectors freeing at once call two different tickets.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::sync::broadcast::error::RecvError;

use chargeops_core::{ConnectorStatus, Event};
use chargeops_queue::{NotificationKind, QueueConfig, TicketAction, TicketState};

use crate::{Error, Result};

use super::{Queue, notification};

pub(super) async fn run(
    queue: Arc<Queue>,
    config: QueueConfig,
    mut events: tokio::sync::broadcast::Receiver<Event>,
) {
    {
        let mut book = queue.book.lock().await;
        if let Err(e) = queue.ensure_loaded(&mut book).await {
            tracing::warn!(error = %e.message, "queue tickets not loaded yet; retrying on the next event");
        }
        // Connectors may have freed while the platform was down.
        let stations: Vec<String> = book.active.keys().cloned().collect();
        for s in stations {
            if let Err(e) = queue.dispatch(&mut book, &s).await {
                tracing::warn!(error = %e.message, station = %s, "queue dispatch failed");
            }
        }
    }
    let mut tick = tokio::time::interval(StdDuration::from_millis(config.tick_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tracing::info!(
        plug_in_secs = config.plug_in_secs,
        max_waiting = config.max_waiting,
        webhook = config.webhook_url.is_some(),
        "queue task started"
    );
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::StatusChanged { charger_id, station_id, evse_id, connector_id, status, .. }) => {
                    if let Err(e) = on_status(&queue, &charger_id, &station_id, evse_id, connector_id, status).await {
                        tracing::warn!(code = e.code, error = %e.message, "queue event not applied");
                    }
                }
                Ok(Event::SessionStarted { charger_id, station_id, evse_id, connector_id, id_tag, .. }) => {
                    if let Err(e) = on_session(&queue, &charger_id, &station_id, evse_id, connector_id, id_tag.as_deref()).await {
                        tracing::warn!(code = e.code, error = %e.message, "queue event not applied");
                    }
                }
                Ok(Event::ChargerOnline { charger_id, station_id, .. }) => {
                    let mut book = queue.book.lock().await;
                    book.chargers.entry(station_id).or_default().insert(charger_id);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "queue task fell behind the event bus; re-checking every queue");
                    recheck_all(&queue).await;
                }
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if let Err(e) = expire_no_shows(&queue).await {
                    tracing::warn!(code = e.code, error = %e.message, "queue no-show check failed");
                }
            }
        }
    }
}

async fn recheck_all(queue: &Queue) {
    let mut book = queue.book.lock().await;
    let stations: Vec<String> = book.active.keys().cloned().collect();
    for s in stations {
        if let Err(e) = queue.dispatch(&mut book, &s).await {
            tracing::warn!(error = %e.message, station = %s, "queue dispatch failed");
        }
    }
}

async fn on_status(
    queue: &Queue,
    charger_id: &str,
    station_id: &str,
    evse_id: u32,
    connector_id: u32,
    status: ConnectorStatus,
) -> Result<()> {
    let mut book = queue.book.lock().await;
    queue.ensure_loaded(&mut book).await?;
    book.chargers
        .entry(station_id.to_owned())
        .or_default()
        .insert(charger_id.to_owned());
    if book.tickets(station_id).is_empty() {
        return Ok(());
    }
    let now = queue.platform.now();
    let holder = book
        .tickets(station_id)
        .iter()
        .find(|t| {
            matches!(t.state, TicketState::Called | TicketState::Charging)
                && t.holds(charger_id, evse_id, connector_id)
        })
        .cloned();
    match (status, holder) {
        (ConnectorStatus::Occupied | ConnectorStatus::Charging, Some(t))
            if t.state == TicketState::Called =>
        {
            let t = t
                .apply(&TicketAction::Plugged, now)
                .map_err(|e| Error::internal(e.to_string()))?;
            tracing::info!(ticket = %t.id, number = t.number, "queue number plugged in");
            queue.save(&mut book, t).await?;
        }
        (ConnectorStatus::Available, Some(t)) if t.state == TicketState::Charging => {
            let t = t
                .apply(&TicketAction::Finished, now)
                .map_err(|e| Error::internal(e.to_string()))?;
            queue.save(&mut book, t).await?;
        }
        (
            ConnectorStatus::Faulted | ConnectorStatus::Unavailable | ConnectorStatus::Offline,
            Some(t),
        ) if t.state == TicketState::Called => {
            let t = t
                .apply(&TicketAction::Release, now)
                .map_err(|e| Error::internal(e.to_string()))?;
            tracing::info!(ticket = %t.id, number = t.number, "reserved connector went out of service; back to the front");
            queue.save(&mut book, t).await?;
        }
        _ => {}
    }
    queue.dispatch(&mut book, station_id).await?;
    Ok(())
}

async fn on_session(
    queue: &Queue,
    charger_id: &str,
    station_id: &str,
    evse_id: u32,
    connector_id: u32,
    id_tag: Option<&str>,
) -> Result<()> {
    let mut book = queue.book.lock().await;
    queue.ensure_loaded(&mut book).await?;
    let ticket = book
        .tickets(station_id)
        .iter()
        .find(|t| t.state == TicketState::Called && t.holds(charger_id, evse_id, connector_id))
        .cloned();
    let Some(t) = ticket else {
        return Ok(());
    };
    let by_reservation = queue
        .reservations
        .get(&t.id)
        .is_some_and(|r| id_tag == Some(r.id_tag.as_str()));
    let t = t
        .apply(&TicketAction::Plugged, queue.platform.now())
        .map_err(|e| Error::internal(e.to_string()))?;
    tracing::info!(ticket = %t.id, number = t.number, by_reservation, "queue number started charging");
    queue.save(&mut book, t).await?;
    queue.dispatch(&mut book, station_id).await?;
    Ok(())
}

async fn expire_no_shows(queue: &Queue) -> Result<()> {
    let mut book = queue.book.lock().await;
    if !book.loaded {
        queue.ensure_loaded(&mut book).await?;
    }
    let now = queue.platform.now();
    let due: Vec<_> = book
        .active
        .values()
        .flatten()
        .filter(|t| t.state == TicketState::Called && t.plug_by.is_some_and(|p| p <= now))
        .cloned()
        .collect();
    let mut stations = Vec::new();
    for t in due {
        let t = t
            .apply(&TicketAction::NoShow, now)
            .map_err(|e| Error::internal(e.to_string()))?;
        tracing::info!(ticket = %t.id, number = t.number, station = %t.station_id, "queue number expired: nobody plugged in");
        queue.notify(&notification(&t, NotificationKind::Expired, now));
        stations.push(t.station_id.clone());
        queue.save(&mut book, t).await?;
    }
    stations.dedup();
    for s in stations {
        queue.dispatch(&mut book, &s).await?;
    }
    Ok(())
}
