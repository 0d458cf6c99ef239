//! Conformance cases of queue tickets: numbering per station, one active number per contact,
//! state changes round trip, active tickets listed in call order.

use chrono::Duration;

use chargeops_queue::ticket::ORDER_STEP;
use chargeops_queue::{Ticket, TicketAction, TicketState};

use super::{at, kind, station, with_chargers};
use crate::{ErrorKind, Store, TicketFilter};

fn new_ticket(id: &str, station_id: &str, contact: Option<&str>, key: i64, ms: i64) -> Ticket {
    Ticket::new(
        id.into(),
        station_id,
        contact.map(str::to_owned),
        key,
        at(ms),
        "driver",
    )
}

pub async fn tickets_numbered_per_station_and_round_trip<S: Store>(store: S) {
    with_chargers(&store).await;
    store.upsert_station(&station("S2")).await.expect("station");
    let a = store
        .insert_ticket(&new_ticket(
            "ta",
            "S1",
            Some("13800138000"),
            ORDER_STEP,
            1_000,
        ))
        .await
        .expect("insert");
    let b = store
        .insert_ticket(&new_ticket(
            "tb",
            "S1",
            Some("湘A12345"),
            2 * ORDER_STEP,
            2_000,
        ))
        .await
        .expect("insert");
    let c = store
        .insert_ticket(&new_ticket("tc", "S2", None, ORDER_STEP, 3_000))
        .await
        .expect("insert");
    assert_eq!((a.number, b.number, c.number), (1, 2, 1));
    assert_eq!(store.get_ticket("tb").await.expect("get"), Some(b.clone()));
    assert_eq!(store.get_ticket("nope").await.expect("get"), None);

    // Called to a connector, plugged, done: every field comes back.
    let mut t = a
        .apply(
            &TicketAction::Call {
                connector: Some(("CP1".into(), 1, 1)),
                plug_within: Duration::seconds(300),
            },
            at(5_000),
        )
        .expect("call");
    t.initial_estimate_s = Some(1234);
    store.update_ticket(&t).await.expect("update");
    assert_eq!(store.get_ticket("ta").await.expect("get"), Some(t.clone()));
    let t = t
        .apply(&TicketAction::Plugged, at(6_000))
        .and_then(|t| t.apply(&TicketAction::Finished, at(9_000)))
        .expect("plug and finish");
    store.update_ticket(&t).await.expect("update");
    let back = store.get_ticket("ta").await.expect("get").expect("present");
    assert_eq!(back, t);
    assert_eq!(back.state, TicketState::Done);

    // Unknown station, unknown ticket, duplicate id.
    assert_eq!(
        kind(
            store
                .insert_ticket(&new_ticket("tx", "nowhere", None, 1, 0))
                .await
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            store
                .update_ticket(&new_ticket("ghost", "S1", None, 1, 0))
                .await
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            store
                .insert_ticket(&new_ticket("tb", "S1", None, 9, 0))
                .await
        ),
        ErrorKind::Conflict
    );
    // Nothing changed by the refusals.
    assert_eq!(store.get_ticket("tb").await.expect("get"), Some(b));
}

pub async fn tickets_one_active_per_contact<S: Store>(store: S) {
    with_chargers(&store).await;
    store.upsert_station(&station("S2")).await.expect("station");
    let first = store
        .insert_ticket(&new_ticket("t1", "S1", Some("13800138000"), 1, 0))
        .await
        .expect("insert");
    assert_eq!(
        kind(
            store
                .insert_ticket(&new_ticket("t2", "S1", Some("13800138000"), 2, 0))
                .await
        ),
        ErrorKind::Conflict
    );
    // Another station is fine, and so are numbers without a contact.
    store
        .insert_ticket(&new_ticket("t3", "S2", Some("13800138000"), 1, 0))
        .await
        .expect("other station");
    for id in ["t4", "t5"] {
        store
            .insert_ticket(&new_ticket(id, "S1", None, 3, 0))
            .await
            .expect("no contact");
    }
    // Once the first is cancelled the contact may take a new number; the old one cannot come
    // back while the new one is active.
    let cancelled = first.apply(&TicketAction::Cancel, at(10)).expect("cancel");
    store.update_ticket(&cancelled).await.expect("update");
    let again = store
        .insert_ticket(&new_ticket("t6", "S1", Some("13800138000"), 9, 20))
        .await
        .expect("new number");
    assert_eq!(again.number, 4, "numbers are never reused");
    let mut revived = cancelled.clone();
    revived.state = TicketState::Waiting;
    assert_eq!(
        kind(store.update_ticket(&revived).await),
        ErrorKind::Conflict
    );
    assert_eq!(
        store.get_ticket("t1").await.expect("get").map(|t| t.state),
        Some(TicketState::Cancelled)
    );
}

pub async fn tickets_list_active_in_call_order<S: Store>(store: S) {
    with_chargers(&store).await;
    store.upsert_station(&station("S2")).await.expect("station");
    for (id, st, key, ms) in [
        ("a", "S1", 30, 1),
        ("b", "S1", 10, 2),
        ("c", "S1", 20, 3),
        ("d", "S2", 5, 4),
    ] {
        store
            .insert_ticket(&new_ticket(id, st, None, key, ms))
            .await
            .expect("insert");
    }
    let done = store
        .get_ticket("c")
        .await
        .expect("get")
        .expect("c")
        .apply(&TicketAction::Cancel, at(50))
        .expect("cancel");
    store.update_ticket(&done).await.expect("update");
    let ids = |v: Vec<Ticket>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let active = store
        .list_tickets(&TicketFilter {
            station_id: Some("S1".into()),
            active: Some(true),
            ..TicketFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(active), vec!["b", "a"]);
    let all_active = store
        .list_tickets(&TicketFilter {
            active: Some(true),
            ..TicketFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(all_active), vec!["b", "a", "d"]);
    let ended = store
        .list_tickets(&TicketFilter {
            active: Some(false),
            ..TicketFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(ended), vec!["c"]);
    let recent = store
        .list_tickets(&TicketFilter {
            since: Some(at(2)),
            limit: Some(2),
            ..TicketFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(recent), vec!["d", "c"]);
}
