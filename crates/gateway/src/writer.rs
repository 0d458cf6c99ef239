//! The changes to a charger's live state a connection makes, in one place. The connection
//! task that holds the charger calls them after its store write; the cluster calls them to
//! apply a change another node's connection made and announced (the store write was that
//! node's). Either way the charger has one writer: the connection that holds it, on whichever
//! node.

use chargeops_core::{ConnectorState, Event, Live, Protocol};

/// Where a change was made, which decides whom the event is told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// By a connection on this node: the event goes to this node's bus and on to the cluster.
    Local,
    /// By another node: the event goes to this node's bus only, and only when it changed
    /// something here (a node re-announcing its chargers repeats itself).
    Remote,
}

fn publish(live: &Live, origin: Origin, event: Event) {
    match origin {
        Origin::Local => live.publish(event),
        Origin::Remote => live.publish_remote(event),
    }
}

/// Marks a charger connected, registering it in the live map if it was not there.
pub(crate) fn charger_online(
    live: &Live,
    charger_id: &str,
    station_id: &str,
    protocol: Protocol,
    origin: Origin,
) {
    let was_online =
        origin == Origin::Remote && live.snapshot(charger_id).is_some_and(|s| s.online);
    if !live.set_online(charger_id, true, Some(protocol)) {
        live.upsert_charger(charger_id, station_id, Some(protocol), Vec::new());
        live.set_online(charger_id, true, Some(protocol));
    }
    if origin == Origin::Local || !was_online {
        publish(
            live,
            origin,
            Event::ChargerOnline {
                charger_id: charger_id.to_owned(),
                station_id: station_id.to_owned(),
                protocol: protocol.as_str().to_owned(),
                at: live.now(),
            },
        );
    }
}

/// Marks a charger not connected.
pub(crate) fn charger_offline(live: &Live, charger_id: &str, station_id: &str, origin: Origin) {
    let was_online =
        origin == Origin::Remote && live.snapshot(charger_id).is_some_and(|s| s.online);
    live.set_online(charger_id, false, None);
    if origin == Origin::Local || was_online {
        publish(
            live,
            origin,
            Event::ChargerOffline {
                charger_id: charger_id.to_owned(),
                station_id: station_id.to_owned(),
                at: live.now(),
            },
        );
    }
}

/// Records a connector's status in the live map and announces it when it changed.
pub(crate) fn connector_status(
    live: &Live,
    charger_id: &str,
    station_id: &str,
    state: ConnectorState,
    origin: Origin,
) {
    let (evse_id, connector_id, status) = (state.evse_id, state.connector_id, state.status);
    let (error_code, at) = (state.error_code.clone(), state.updated_at);
    let previous = match live.set_status(charger_id, state.clone()) {
        Ok(previous) => previous,
        Err(_) => {
            // A charger registered on another node after this one loaded the network.
            live.upsert_charger(charger_id, station_id, None, Vec::new());
            live.set_status(charger_id, state).ok().flatten()
        }
    };
    if previous != Some(status) {
        publish(
            live,
            origin,
            Event::StatusChanged {
                charger_id: charger_id.to_owned(),
                station_id: station_id.to_owned(),
                evse_id,
                connector_id,
                status,
                previous,
                error_code,
                at,
            },
        );
    }
}
