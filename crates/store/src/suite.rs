//! The conformance suite: what every `Store` backend must do, written once and run against each
//! (SQLite in `tests/sqlite.rs`, PostgreSQL in `tests/postgres.rs`), as Quickwit runs its
//! `metastore_test_suite!` against every metastore.
//!
//! A backend's test binary expands the suite with a constructor of empty stores; each case becomes
//! its own `#[tokio::test]`, so a failure names the case:
//!
//! ```text
//! chargeops_store::store_conformance_suite!(async { my_backend::open_empty().await });
//! ```
//!
//! The expression is evaluated once per case and must give a fresh, empty store. The calling crate
//! needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
//!
//! Cases use millisecond-precision timestamps: that is the precision every backend keeps.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use chargeops_core::{
    BootInfo, Charger, ConnectorState, ConnectorStatus, IdTag, IdTagStatus, MeterSample,
    NewSession, Protocol, Registration, Role, Session, SessionStop, Station,
};

use crate::{ErrorKind, ImportedSession, SessionFilter, SessionSpan, Store};

mod ops;
pub use ops::*;
mod queue;
pub use queue::*;

/// Expands into one `#[tokio::test]` per conformance case, each given a store from `$make`
/// (an expression of a future that yields a fresh, empty store).
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        $crate::store_conformance_suite!(@cases $make;
            station_upsert_get_list,
            charger_insert_conflict_and_missing_station,
            charger_boot_registration_password_round_trip,
            status_current_and_history,
            start_session_is_idempotent_ocpp16,
            start_session_is_idempotent_ocpp201,
            stop_session_applies_once,
            update_session_energy_keeps_order_and_ignores_stopped,
            list_sessions_filters,
            import_sessions_in_bulk_and_read_spans,
            meter_samples_round_trip,
            id_tags_crud,
            api_tokens,
            concurrent_starts_get_distinct_ids,
            concurrent_replayed_starts_create_one_session,
            failing_writes_do_not_fail_concurrent_writes,
            cases_round_trip_with_timeline,
            cases_refuse_unknown_references,
            list_cases_filters,
            crews_and_crew_tokens,
            audit_log_appends,
            tickets_numbered_per_station_and_round_trip,
            tickets_one_active_per_contact,
            tickets_list_active_in_call_order,
            documents_round_trip,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::suite::$case($make.await).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// 2025-06-01T08:00:00Z plus `ms` milliseconds.
pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_748_764_800_000 + ms).expect("timestamp in range")
}

pub fn station(id: &str) -> Station {
    Station {
        id: id.into(),
        name: format!("{id} service area"),
        lat: Some(30.25),
        lon: Some(120.5),
        highway: Some("G60".into()),
        direction: Some("eastbound".into()),
    }
}

pub fn charger(id: &str, station_id: &str) -> Charger {
    Charger {
        id: id.into(),
        station_id: station_id.into(),
        protocol: Some(Protocol::Ocpp16),
        vendor: None,
        model: None,
        serial_number: None,
        firmware_version: None,
        registration: Registration::Pending,
        password_hash: Some("$argon2id$fixture".into()),
        created_at: at(0),
        last_boot_at: None,
    }
}

/// An OCPP 1.6 start: the store assigns the transaction id.
pub fn start16(charger_id: &str, connector: u32, started_ms: i64, meter: i64) -> NewSession {
    NewSession {
        charger_id: charger_id.into(),
        evse_id: connector,
        connector_id: connector,
        transaction_ref: None,
        id_tag: Some("TAG-1".into()),
        started_at: at(started_ms),
        meter_start_wh: Some(meter),
        seq_no: None,
    }
}

/// An OCPP 2.0.1 start: the charger names the transaction.
pub fn start201(charger_id: &str, evse: u32, transaction_ref: &str, started_ms: i64) -> NewSession {
    NewSession {
        charger_id: charger_id.into(),
        evse_id: evse,
        connector_id: 1,
        transaction_ref: Some(transaction_ref.into()),
        id_tag: Some("TAG-2".into()),
        started_at: at(started_ms),
        meter_start_wh: None,
        seq_no: Some(0),
    }
}

pub fn state(evse: u32, status: ConnectorStatus, ms: i64) -> ConnectorState {
    ConnectorState {
        evse_id: evse,
        connector_id: evse,
        status,
        raw_status: Some(format!("{status:?}")),
        error_code: Some("NoError".into()),
        updated_at: at(ms),
    }
}

pub fn stop(stopped_ms: i64, meter_stop: Option<i64>) -> SessionStop {
    SessionStop {
        stopped_at: at(stopped_ms),
        meter_stop_wh: meter_stop,
        energy_wh: None,
        reason: Some("Local".into()),
        seq_no: None,
    }
}

/// A store holding station `S1` with chargers `CP1` and `CP2`.
async fn with_chargers<S: Store>(store: &S) {
    store.upsert_station(&station("S1")).await.expect("station");
    for id in ["CP1", "CP2"] {
        store
            .insert_charger(&charger(id, "S1"))
            .await
            .expect("charger");
    }
}

fn kind<T: std::fmt::Debug>(r: crate::Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind(),
    }
}

// ---------------------------------------------------------------------------------------------
// Stations and chargers.

/// What [`write_before_reopen`] wrote, for [`check_after_reopen`] to find again.
pub struct Written {
    pub running: chargeops_core::Session,
    pub done: chargeops_core::Session,
}

/// The first half of "acknowledged writes survive": a station, a charger, a status, a running
/// and a stopped session, each acknowledged. The backend's own test then drops the store and
/// opens it again (a reopened file, a reconnected server) for [`check_after_reopen`].
pub async fn write_before_reopen(store: &dyn Store) -> Written {
    store.upsert_station(&station("S1")).await.expect("station");
    store
        .insert_charger(&charger("CP1", "S1"))
        .await
        .expect("charger");
    store
        .record_status("CP1", &state(1, ConnectorStatus::Charging, 1_000))
        .await
        .expect("status");
    let running = store
        .start_session(&start16("CP1", 1, 0, 100))
        .await
        .expect("start")
        .session;
    let done = store
        .start_session(&start16("CP1", 2, 0, 100))
        .await
        .expect("start")
        .session;
    let done = store
        .stop_session(done.id, &stop(60_000, Some(600)))
        .await
        .expect("stop")
        .session;
    Written { running, done }
}

/// The second half: everything written is there, a replayed start finds its session, and ids
/// are never reused.
pub async fn check_after_reopen(store: &dyn Store, written: &Written) {
    let Written { running, done } = written;
    assert_eq!(
        store.get_charger("CP1").await.expect("get"),
        Some(charger("CP1", "S1"))
    );
    assert_eq!(
        store.list_connectors().await.expect("connectors"),
        vec![(
            "CP1".to_string(),
            state(1, ConnectorStatus::Charging, 1_000)
        )]
    );
    assert_eq!(
        store.get_session(running.id).await.expect("get"),
        Some(running.clone())
    );
    assert_eq!(
        store.get_session(done.id).await.expect("get"),
        Some(done.clone())
    );
    let again = store
        .start_session(&start16("CP1", 1, 0, 100))
        .await
        .expect("start again");
    assert!(!again.created);
    assert_eq!(again.session.id, running.id);
    let next = store
        .start_session(&start16("CP1", 3, 0, 100))
        .await
        .expect("start")
        .session;
    assert!(next.id > running.id.max(done.id));
}

pub async fn station_upsert_get_list<S: Store>(store: S) {
    assert_eq!(store.get_station("S1").await.expect("get"), None);
    assert!(store.list_stations().await.expect("list").is_empty());

    let s1 = station("S1");
    let s2 = Station {
        lat: None,
        lon: None,
        highway: None,
        direction: None,
        ..station("S2")
    };
    store.upsert_station(&s2).await.expect("upsert S2");
    store.upsert_station(&s1).await.expect("upsert S1");
    assert_eq!(
        store.get_station("S1").await.expect("get"),
        Some(s1.clone())
    );
    assert_eq!(
        store.get_station("S2").await.expect("get"),
        Some(s2.clone())
    );

    // Upserting again replaces every field, absent ones included.
    let s1b = Station {
        name: "renamed".into(),
        lat: None,
        direction: Some("westbound".into()),
        ..s1
    };
    store.upsert_station(&s1b).await.expect("upsert again");
    let mut all = store.list_stations().await.expect("list");
    all.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(all, vec![s1b, s2]);
}

pub async fn charger_insert_conflict_and_missing_station<S: Store>(store: S) {
    let cp = charger("CP1", "S1");
    assert_eq!(kind(store.insert_charger(&cp).await), ErrorKind::NotFound);
    assert_eq!(store.get_charger("CP1").await.expect("get"), None);

    store.upsert_station(&station("S1")).await.expect("station");
    store.insert_charger(&cp).await.expect("insert");
    assert_eq!(
        store.get_charger("CP1").await.expect("get"),
        Some(cp.clone())
    );

    let again = Charger {
        station_id: "S1".into(),
        vendor: Some("other".into()),
        ..cp.clone()
    };
    assert_eq!(
        kind(store.insert_charger(&again).await),
        ErrorKind::Conflict
    );
    assert_eq!(store.list_chargers().await.expect("list"), vec![cp]);
}

pub async fn charger_boot_registration_password_round_trip<S: Store>(store: S) {
    with_chargers(&store).await;
    let info = BootInfo {
        vendor: Some("ABB".into()),
        model: Some("Terra 184".into()),
        serial_number: Some("SN-42".into()),
        firmware_version: Some("1.8.3".into()),
    };
    store
        .record_boot("CP1", Protocol::Ocpp201, &info, at(60_000))
        .await
        .expect("boot");
    store
        .set_registration("CP1", Registration::Accepted)
        .await
        .expect("registration");
    store
        .set_charger_password("CP1", Some("$argon2id$new"))
        .await
        .expect("password");

    let cp = store
        .get_charger("CP1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        cp,
        Charger {
            protocol: Some(Protocol::Ocpp201),
            vendor: info.vendor.clone(),
            model: info.model.clone(),
            serial_number: info.serial_number.clone(),
            firmware_version: info.firmware_version.clone(),
            registration: Registration::Accepted,
            password_hash: Some("$argon2id$new".into()),
            last_boot_at: Some(at(60_000)),
            ..charger("CP1", "S1")
        }
    );

    // A later boot replaces what the charger said of itself, absent fields included.
    let info2 = BootInfo {
        firmware_version: None,
        ..info
    };
    store
        .record_boot("CP1", Protocol::Ocpp16, &info2, at(120_000))
        .await
        .expect("boot again");
    store
        .set_charger_password("CP1", None)
        .await
        .expect("clear password");
    let cp = store
        .get_charger("CP1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(cp.protocol, Some(Protocol::Ocpp16));
    assert_eq!(cp.firmware_version, None);
    assert_eq!(cp.last_boot_at, Some(at(120_000)));
    assert_eq!(cp.password_hash, None);
    assert_eq!(cp.registration, Registration::Accepted);

    // A YKC 3DES key is kept apart from the charger's record and can be replaced and cleared.
    assert_eq!(store.charger_ykc_key("CP1").await.expect("key"), None);
    let key = "00112233445566778899aabbccddeeff";
    store
        .set_charger_ykc_key("CP1", Some(key))
        .await
        .expect("set key");
    assert_eq!(
        store.charger_ykc_key("CP1").await.expect("key").as_deref(),
        Some(key)
    );
    store
        .set_charger_ykc_key("CP1", None)
        .await
        .expect("clear key");
    assert_eq!(store.charger_ykc_key("CP1").await.expect("key"), None);
    assert_eq!(store.charger_ykc_key("nope").await.expect("key"), None);

    // The other charger is untouched.
    assert_eq!(
        store.get_charger("CP2").await.expect("get"),
        Some(charger("CP2", "S1"))
    );

    for r in [
        store
            .record_boot("nope", Protocol::Ocpp16, &BootInfo::default(), at(0))
            .await,
        store.set_registration("nope", Registration::Rejected).await,
        store.set_charger_password("nope", None).await,
        store.set_charger_ykc_key("nope", None).await,
    ] {
        assert_eq!(kind(r), ErrorKind::NotFound);
    }
}

// ---------------------------------------------------------------------------------------------
// Connector status.

pub async fn status_current_and_history<S: Store>(store: S) {
    use ConnectorStatus::*;
    with_chargers(&store).await;
    let reports = [
        ("CP1", state(1, Available, 1_000)),
        ("CP1", state(2, Available, 2_000)),
        ("CP1", state(1, Occupied, 3_000)),
        ("CP2", state(1, Faulted, 3_500)),
        ("CP1", state(1, Charging, 4_000)),
    ];
    for (cp, s) in &reports {
        store.record_status(cp, s).await.expect("status");
    }
    // A replay of an earlier report, and a report that arrives after a newer one: both leave the
    // current status alone, the replay adds no history, the late one does.
    store
        .record_status("CP1", &state(1, Occupied, 3_000))
        .await
        .expect("replay");
    store
        .record_status("CP1", &state(1, Faulted, 3_800))
        .await
        .expect("late");

    let mut current = store.list_connectors().await.expect("connectors");
    current.sort_by(|a, b| (&a.0, a.1.evse_id).cmp(&(&b.0, b.1.evse_id)));
    assert_eq!(
        current,
        vec![
            ("CP1".to_string(), state(1, Charging, 4_000)),
            ("CP1".to_string(), state(2, Available, 2_000)),
            ("CP2".to_string(), state(1, Faulted, 3_500)),
        ]
    );

    let history = store.status_history("CP1", None).await.expect("history");
    assert_eq!(
        history,
        vec![
            state(1, Available, 1_000),
            state(2, Available, 2_000),
            state(1, Occupied, 3_000),
            state(1, Faulted, 3_800),
            state(1, Charging, 4_000),
        ]
    );
    let since = store
        .status_history("CP1", Some(at(3_000)))
        .await
        .expect("history since");
    assert_eq!(since, history[2..].to_vec());
    assert!(
        store
            .status_history("nope", None)
            .await
            .expect("history")
            .is_empty()
    );

    assert_eq!(
        kind(store.record_status("nope", &state(1, Available, 0)).await),
        ErrorKind::NotFound
    );
}

// ---------------------------------------------------------------------------------------------
// Sessions.

pub async fn start_session_is_idempotent_ocpp16<S: Store>(store: S) {
    with_chargers(&store).await;
    let new = start16("CP1", 1, 10_000, 1_000);
    let first = store.start_session(&new).await.expect("start");
    assert!(first.created);
    let s = &first.session;
    assert_eq!(s.transaction_ref, s.id.to_string());
    assert!(i32::try_from(s.id).is_ok(), "1.6 transaction ids are i32");
    assert_eq!(
        (s.charger_id.as_str(), s.evse_id, s.connector_id),
        ("CP1", 1, 1)
    );
    assert_eq!(s.id_tag.as_deref(), Some("TAG-1"));
    assert_eq!(s.started_at, at(10_000));
    assert_eq!(s.meter_start_wh, Some(1_000));
    assert_eq!(
        (s.stopped_at, s.meter_stop_wh, s.energy_wh),
        (None, None, None)
    );

    // The charger retries after a reconnect: same session, nothing new.
    let again = store.start_session(&new).await.expect("start again");
    assert!(!again.created);
    assert_eq!(again.session, first.session);

    assert_eq!(store.get_session(s.id).await.expect("get"), Some(s.clone()));
    assert_eq!(
        store
            .find_session("CP1", &s.transaction_ref)
            .await
            .expect("find"),
        Some(s.clone())
    );

    // Any difference in the key is a different session.
    let variants = [
        NewSession {
            meter_start_wh: Some(1_001),
            ..new.clone()
        },
        NewSession {
            id_tag: None,
            ..new.clone()
        },
        NewSession {
            started_at: at(10_001),
            ..new.clone()
        },
        NewSession {
            evse_id: 2,
            connector_id: 2,
            ..new.clone()
        },
        NewSession {
            charger_id: "CP2".into(),
            ..new.clone()
        },
    ];
    let mut ids = HashSet::from([s.id]);
    for v in &variants {
        let started = store.start_session(v).await.expect("variant");
        assert!(started.created, "{v:?}");
        assert_eq!(
            started.session.transaction_ref,
            started.session.id.to_string()
        );
        ids.insert(started.session.id);
    }
    assert_eq!(ids.len(), variants.len() + 1);

    assert_eq!(
        store.get_session(i64::from(i32::MAX)).await.expect("get"),
        None
    );
    assert_eq!(
        kind(store.start_session(&start16("nope", 1, 0, 0)).await),
        ErrorKind::NotFound
    );
}

pub async fn start_session_is_idempotent_ocpp201<S: Store>(store: S) {
    with_chargers(&store).await;
    let new = start201("CP1", 1, "tx-abc", 10_000);
    let first = store.start_session(&new).await.expect("start");
    assert!(first.created);
    assert_eq!(first.session.transaction_ref, "tx-abc");
    assert_eq!(first.session.last_seq_no, Some(0));

    // The transaction id alone identifies it, whatever else the replay says.
    let replay = NewSession {
        started_at: at(99_000),
        seq_no: Some(5),
        ..new.clone()
    };
    let again = store.start_session(&replay).await.expect("start again");
    assert!(!again.created);
    assert_eq!(again.session, first.session);

    // Transaction ids are per charger.
    let other = store
        .start_session(&start201("CP2", 1, "tx-abc", 10_000))
        .await
        .expect("other charger");
    assert!(other.created);
    assert_ne!(other.session.id, first.session.id);

    assert_eq!(
        store.find_session("CP1", "tx-abc").await.expect("find"),
        Some(first.session.clone())
    );
    assert_eq!(
        store.find_session("CP2", "tx-abc").await.expect("find"),
        Some(other.session)
    );
    assert_eq!(
        store.find_session("CP1", "tx-zzz").await.expect("find"),
        None
    );
}

pub async fn stop_session_applies_once<S: Store>(store: S) {
    with_chargers(&store).await;
    let s = store
        .start_session(&start16("CP1", 1, 0, 1_000))
        .await
        .expect("start")
        .session;

    let first = store
        .stop_session(s.id, &stop(3_600_000, Some(1_500)))
        .await
        .expect("stop");
    assert!(first.applied);
    let expected = Session {
        stopped_at: Some(at(3_600_000)),
        meter_stop_wh: Some(1_500),
        energy_wh: Some(500),
        stop_reason: Some("Local".into()),
        ..s.clone()
    };
    assert_eq!(first.session, expected);

    // A replayed (or contradictory) stop changes nothing.
    let replay = SessionStop {
        stopped_at: at(7_200_000),
        meter_stop_wh: Some(9_999),
        energy_wh: Some(1),
        reason: Some("Remote".into()),
        seq_no: Some(9),
    };
    let second = store.stop_session(s.id, &replay).await.expect("stop again");
    assert!(!second.applied);
    assert_eq!(second.session, expected);
    assert_eq!(store.get_session(s.id).await.expect("get"), Some(expected));

    // Energy the charger reports wins over the registers.
    let s2 = store
        .start_session(&start16("CP1", 2, 0, 1_000))
        .await
        .expect("start")
        .session;
    let reported = SessionStop {
        energy_wh: Some(480),
        ..stop(60_000, Some(1_500))
    };
    let stopped = store.stop_session(s2.id, &reported).await.expect("stop");
    assert_eq!(stopped.session.energy_wh, Some(480));

    // Without registers, the last running value stays.
    let s3 = store
        .start_session(&start201("CP2", 1, "tx-1", 0))
        .await
        .expect("start")
        .session;
    store
        .update_session_energy(s3.id, Some(730), Some(1))
        .await
        .expect("energy");
    let stopped = store
        .stop_session(
            s3.id,
            &SessionStop {
                seq_no: Some(2),
                ..stop(60_000, None)
            },
        )
        .await
        .expect("stop");
    assert_eq!(stopped.session.energy_wh, Some(730));
    assert_eq!(stopped.session.last_seq_no, Some(2));

    assert_eq!(
        kind(store.stop_session(123_456, &stop(0, None)).await),
        ErrorKind::NotFound
    );
}

pub async fn update_session_energy_keeps_order_and_ignores_stopped<S: Store>(store: S) {
    with_chargers(&store).await;
    let s = store
        .start_session(&start201("CP1", 1, "tx-1", 0))
        .await
        .expect("start")
        .session;
    let get = |id| {
        let store = &store;
        async move { store.get_session(id).await.expect("get").expect("exists") }
    };

    store
        .update_session_energy(s.id, Some(100), Some(2))
        .await
        .expect("update");
    let now = get(s.id).await;
    assert_eq!((now.energy_wh, now.last_seq_no), (Some(100), Some(2)));

    // An event older than one applied arrives late: ignored. A replay of the same one: harmless.
    store
        .update_session_energy(s.id, Some(50), Some(1))
        .await
        .expect("late update");
    store
        .update_session_energy(s.id, Some(100), Some(2))
        .await
        .expect("replayed update");
    let now = get(s.id).await;
    assert_eq!((now.energy_wh, now.last_seq_no), (Some(100), Some(2)));

    // Without a sequence number (OCPP 1.6) the value is taken and the sequence kept.
    store
        .update_session_energy(s.id, Some(150), None)
        .await
        .expect("update");
    let now = get(s.id).await;
    assert_eq!((now.energy_wh, now.last_seq_no), (Some(150), Some(2)));

    let stopped = store
        .stop_session(
            s.id,
            &SessionStop {
                seq_no: Some(3),
                ..stop(60_000, None)
            },
        )
        .await
        .expect("stop")
        .session;
    store
        .update_session_energy(s.id, Some(999), Some(4))
        .await
        .expect("update after stop is not an error");
    assert_eq!(get(s.id).await, stopped);
    assert_eq!(
        (stopped.energy_wh, stopped.last_seq_no),
        (Some(150), Some(3))
    );

    assert_eq!(
        kind(store.update_session_energy(123_456, Some(1), None).await),
        ErrorKind::NotFound
    );
}

pub async fn list_sessions_filters<S: Store>(store: S) {
    with_chargers(&store).await;
    store.upsert_station(&station("S2")).await.expect("station");
    store
        .insert_charger(&charger("CP3", "S2"))
        .await
        .expect("charger");

    // Started one minute apart, in this order; every other one stopped.
    let mut sessions = Vec::new();
    for (i, cp) in ["CP1", "CP2", "CP3", "CP1", "CP3", "CP1"]
        .iter()
        .enumerate()
    {
        let minute = i64::try_from(i).expect("small") * 60_000;
        let mut s = store
            .start_session(&start16(cp, 1, minute, 0))
            .await
            .expect("start")
            .session;
        if i % 2 == 0 {
            s = store
                .stop_session(s.id, &stop(minute + 30_000, Some(10)))
                .await
                .expect("stop")
                .session;
        }
        sessions.push(s);
    }
    let ids = |list: Vec<Session>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let pick = |idx: &[usize]| idx.iter().map(|&i| sessions[i].id).collect::<Vec<_>>();
    let list = |f: SessionFilter| {
        let store = &store;
        async move { ids(store.list_sessions(&f).await.expect("list")) }
    };

    let all = store
        .list_sessions(&SessionFilter::default())
        .await
        .expect("list");
    let mut newest_first = sessions.clone();
    newest_first.reverse();
    assert_eq!(all, newest_first, "every session, newest first");

    let by_charger = SessionFilter {
        charger_id: Some("CP1".into()),
        ..Default::default()
    };
    assert_eq!(list(by_charger.clone()).await, pick(&[5, 3, 0]));
    let by_station = SessionFilter {
        station_id: Some("S2".into()),
        ..Default::default()
    };
    assert_eq!(list(by_station).await, pick(&[4, 2]));
    let open = SessionFilter {
        open: Some(true),
        ..Default::default()
    };
    assert_eq!(list(open).await, pick(&[5, 3, 1]));
    let finished = SessionFilter {
        open: Some(false),
        ..Default::default()
    };
    assert_eq!(list(finished).await, pick(&[4, 2, 0]));
    let since = SessionFilter {
        since: Some(at(3 * 60_000)),
        ..Default::default()
    };
    assert_eq!(list(since).await, pick(&[5, 4, 3]));
    let limited = SessionFilter {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(list(limited).await, pick(&[5, 4]));
    let combined = SessionFilter {
        open: Some(true),
        limit: Some(1),
        ..by_charger
    };
    assert_eq!(list(combined).await, pick(&[5]));
    let nobody = SessionFilter {
        charger_id: Some("CP2".into()),
        station_id: Some("S2".into()),
        ..Default::default()
    };
    assert_eq!(list(nobody).await, Vec::<i64>::new());
}

fn imported(charger_id: &str, n: i64, started_ms: i64, minutes: Option<i64>) -> ImportedSession {
    ImportedSession {
        charger_id: charger_id.into(),
        evse_id: 1,
        connector_id: 1,
        transaction_ref: format!("hist-{n}"),
        id_tag: Some("TAG1".into()),
        started_at: at(started_ms),
        stopped_at: minutes.map(|m| at(started_ms + m * 60_000)),
        energy_wh: minutes.map(|m| m * 500),
        stop_reason: minutes.map(|_| "EVDisconnected".into()),
    }
}

pub async fn import_sessions_in_bulk_and_read_spans<S: Store>(store: S) {
    with_chargers(&store).await;
    store.upsert_station(&station("S2")).await.expect("station");
    store
        .insert_charger(&charger("CP3", "S2"))
        .await
        .expect("charger");
    // Enough rows for a backend's batching to matter; every third one on the other station,
    // the last one still running.
    let n = 2_500;
    let batch: Vec<ImportedSession> = (0..n)
        .map(|i| {
            let cp = ["CP1", "CP2", "CP3"][(i % 3) as usize];
            imported(cp, i, i * 60_000, (i != n - 1).then_some(30))
        })
        .collect();
    assert_eq!(store.import_sessions(&batch).await.expect("import"), 2_500);
    assert_eq!(store.import_sessions(&[]).await.expect("empty"), 0);
    // Importing the same sessions again, or overlapping ones, adds only the new.
    let again: Vec<ImportedSession> = (n - 10..n + 5)
        .map(|i| {
            imported(
                ["CP1", "CP2", "CP3"][(i % 3) as usize],
                i,
                i * 60_000,
                Some(30),
            )
        })
        .collect();
    assert_eq!(store.import_sessions(&again).await.expect("re-import"), 5);

    // Imported sessions are ordinary sessions to every reader.
    let last = store
        .list_sessions(&SessionFilter {
            charger_id: Some("CP3".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(last[0].transaction_ref, format!("hist-{}", n + 4));
    assert_eq!(last[0].energy_wh, Some(15_000));
    let open = store
        .list_sessions(&SessionFilter {
            open: Some(true),
            ..Default::default()
        })
        .await
        .expect("open");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].started_at, at((n - 1) * 60_000));

    // Spans: a half-open window of start times, oldest first, per station or all.
    let spans = store
        .session_spans(None, at(10 * 60_000), at(20 * 60_000))
        .await
        .expect("spans");
    assert_eq!(spans.len(), 10);
    assert_eq!(
        spans[0],
        SessionSpan {
            station_id: "S1".into(),
            charger_id: "CP2".into(),
            evse_id: 1,
            connector_id: 1,
            started_at: at(10 * 60_000),
            stopped_at: Some(at(40 * 60_000)),
        }
    );
    assert!(spans.windows(2).all(|w| w[0].started_at <= w[1].started_at));
    let s2 = store
        .session_spans(Some("S2"), at(0), at(30 * 60_000))
        .await
        .expect("spans S2");
    assert_eq!(s2.len(), 10);
    assert!(
        s2.iter()
            .all(|s| s.station_id == "S2" && s.charger_id == "CP3")
    );
    let all = store
        .session_spans(None, at(0), at((n + 10) * 60_000))
        .await
        .expect("all spans");
    assert_eq!(all.len(), 2_505);
    assert_eq!(all.iter().filter(|s| s.stopped_at.is_none()).count(), 1);
    let none = store
        .session_spans(Some("nowhere"), at(0), at(n * 60_000))
        .await
        .expect("unknown station");
    assert!(none.is_empty());

    // A bad row fails its whole call and keeps nothing of it.
    let unknown = vec![
        imported("CP1", 900_001, 0, Some(5)),
        imported("NOPE", 900_002, 0, Some(5)),
    ];
    assert_eq!(
        kind(store.import_sessions(&unknown).await),
        ErrorKind::NotFound
    );
    let backwards = vec![imported("CP1", 900_003, 60_000, Some(-1))];
    assert_eq!(
        kind(store.import_sessions(&backwards).await),
        ErrorKind::Invalid
    );
    let mut digits = imported("CP1", 900_004, 0, Some(5));
    digits.transaction_ref = "12345".into();
    assert_eq!(
        kind(store.import_sessions(&[digits]).await),
        ErrorKind::Invalid
    );
    assert_eq!(
        store
            .session_spans(None, at(0), at((n + 10) * 60_000))
            .await
            .expect("after failures")
            .len(),
        2_505
    );

    // Live OCPP 1.6 sessions still get their own numeric ids next to imported ones.
    let live = store
        .start_session(&start16("CP1", 1, 10_000_000, 0))
        .await
        .expect("start after import");
    assert!(live.created);
    assert_eq!(live.session.transaction_ref, live.session.id.to_string());
}

// ---------------------------------------------------------------------------------------------
// Meter samples.

pub async fn meter_samples_round_trip<S: Store>(store: S) {
    with_chargers(&store).await;
    let s = store
        .start_session(&start16("CP1", 1, 0, 0))
        .await
        .expect("start")
        .session;
    let sample = |ms: i64, measurand: &str, phase: Option<&str>, value: f64| MeterSample {
        charger_id: "CP1".into(),
        evse_id: 1,
        connector_id: 1,
        session_id: Some(s.id),
        at: at(ms),
        measurand: measurand.into(),
        phase: phase.map(Into::into),
        unit: Some("Wh".into()),
        value,
    };
    let batch = vec![
        sample(60_000, "Energy.Active.Import.Register", None, 120.0),
        sample(60_000, "Current.Import", Some("L1"), 16.0),
        sample(60_000, "Current.Import", Some("L2"), 15.5),
        sample(120_000, "Energy.Active.Import.Register", None, 240.5),
    ];
    let unattached = MeterSample {
        session_id: None,
        ..sample(90_000, "Voltage", Some("L1-N"), 230.0)
    };
    store.record_meter_samples(&batch).await.expect("record");
    store
        .record_meter_samples(std::slice::from_ref(&unattached))
        .await
        .expect("record without session");
    // A replayed MeterValues message adds nothing.
    store.record_meter_samples(&batch).await.expect("replay");
    store.record_meter_samples(&[]).await.expect("nothing");

    let mut got = store.meter_samples(s.id).await.expect("samples");
    let order = |a: &MeterSample, b: &MeterSample| {
        (a.at, &a.measurand, &a.phase).cmp(&(b.at, &b.measurand, &b.phase))
    };
    got.sort_by(order);
    let mut want = batch.clone();
    want.sort_by(order);
    assert_eq!(got, want);
    assert!(got.windows(2).all(|w| w[0].at <= w[1].at));

    assert!(
        store
            .meter_samples(s.id + 1000)
            .await
            .expect("none")
            .is_empty()
    );
    let orphan = MeterSample {
        session_id: Some(s.id + 1000),
        ..sample(1, "Energy.Active.Import.Register", None, 1.0)
    };
    assert_eq!(
        kind(store.record_meter_samples(&[orphan]).await),
        ErrorKind::NotFound
    );
}

// ---------------------------------------------------------------------------------------------
// Authorization list and API tokens.

pub async fn id_tags_crud<S: Store>(store: S) {
    let tag = |id: &str, status, expiry: Option<i64>, parent: Option<&str>| IdTag {
        id_tag: id.into(),
        status,
        expiry: expiry.map(at),
        parent_id_tag: parent.map(Into::into),
    };
    assert_eq!(store.get_id_tag("A").await.expect("get"), None);
    let a = tag("A", IdTagStatus::Accepted, Some(86_400_000), Some("FLEET"));
    let b = tag("B", IdTagStatus::Blocked, None, None);
    store.upsert_id_tag(&a).await.expect("upsert");
    store.upsert_id_tag(&b).await.expect("upsert");
    assert_eq!(store.get_id_tag("A").await.expect("get"), Some(a));

    let a2 = tag("A", IdTagStatus::Expired, None, None);
    store.upsert_id_tag(&a2).await.expect("replace");
    let mut all = store.list_id_tags().await.expect("list");
    all.sort_by(|x, y| x.id_tag.cmp(&y.id_tag));
    assert_eq!(all, vec![a2, b.clone()]);

    store.delete_id_tag("A").await.expect("delete");
    assert_eq!(store.get_id_tag("A").await.expect("get"), None);
    assert_eq!(kind(store.delete_id_tag("A").await), ErrorKind::NotFound);
    assert_eq!(store.list_id_tags().await.expect("list"), vec![b]);
}

pub async fn api_tokens<S: Store>(store: S) {
    assert_eq!(store.count_tokens().await.expect("count"), 0);
    let admin = store
        .insert_token("bootstrap", Role::Admin, "digest-1")
        .await
        .expect("insert");
    assert_eq!(
        (admin.name.as_str(), admin.role, admin.token_hash.as_str()),
        ("bootstrap", Role::Admin, "digest-1")
    );
    assert_eq!(
        store.find_token("digest-1").await.expect("find"),
        Some(admin.clone())
    );
    assert_eq!(store.find_token("digest-x").await.expect("find"), None);

    assert_eq!(
        kind(store.insert_token("again", Role::Viewer, "digest-1").await),
        ErrorKind::Conflict
    );
    let viewer = store
        .insert_token("wall screen", Role::Viewer, "digest-2")
        .await
        .expect("insert");
    assert_ne!(viewer.id, admin.id);
    assert_eq!(store.count_tokens().await.expect("count"), 2);
}

// ---------------------------------------------------------------------------------------------
// Concurrency: many callers at once, as a connect storm makes them.

pub async fn concurrent_starts_get_distinct_ids<S: Store>(store: S) {
    const N: u32 = 200;
    with_chargers(&store).await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let new = if i % 2 == 0 {
                    start16("CP1", i, i64::from(i), 0)
                } else {
                    start201("CP2", i, &format!("tx-{i}"), i64::from(i))
                };
                store.start_session(&new).await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let started = task.await.expect("task").expect("start");
        assert!(started.created);
        ids.insert(started.session.id);
    }
    assert_eq!(ids.len(), N as usize);
    let listed = store
        .list_sessions(&SessionFilter::default())
        .await
        .expect("list");
    assert_eq!(listed.len(), N as usize);
}

pub async fn concurrent_replayed_starts_create_one_session<S: Store>(store: S) {
    const N: usize = 200;
    with_chargers(&store).await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let new = if i % 2 == 0 {
                    start16("CP1", 1, 5_000, 42)
                } else {
                    start201("CP2", 1, "tx-storm", 5_000)
                };
                store.start_session(&new).await
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        let started = task.await.expect("task").expect("start");
        created += usize::from(started.created);
        ids.insert(started.session.id);
    }
    assert_eq!(created, 2, "one per charger");
    assert_eq!(ids.len(), 2);
    let listed = store
        .list_sessions(&SessionFilter::default())
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
}

pub async fn failing_writes_do_not_fail_concurrent_writes<S: Store>(store: S) {
    const N: u32 = 120;
    with_chargers(&store).await;
    let store = Arc::new(store);
    // Good and bad writes interleaved, so that a backend that batches puts them together.
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                match i % 4 {
                    0 => (
                        Some(ErrorKind::Conflict),
                        store.insert_charger(&charger("CP1", "S1")).await,
                    ),
                    1 => (
                        Some(ErrorKind::NotFound),
                        store
                            .start_session(&start16("ghost", 1, 0, 0))
                            .await
                            .map(drop),
                    ),
                    _ => (
                        None,
                        store
                            .record_status(
                                "CP1",
                                &state(i, ConnectorStatus::Available, i64::from(i)),
                            )
                            .await,
                    ),
                }
            })
        })
        .collect();
    for task in tasks {
        match task.await.expect("task") {
            (None, r) => r.expect("good write"),
            (Some(want), r) => assert_eq!(kind(r), want),
        }
    }
    let connectors = store.list_connectors().await.expect("connectors");
    assert_eq!(connectors.len(), (N / 2) as usize);
    let history = store.status_history("CP1", None).await.expect("history");
    assert_eq!(history.len(), (N / 2) as usize);
    assert_eq!(store.list_chargers().await.expect("list").len(), 2);
    assert!(
        store
            .list_sessions(&SessionFilter::default())
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn documents_round_trip<S: Store>(store: S) {
    assert!(
        store
            .list_documents("lot")
            .await
            .expect("document store")
            .is_empty()
    );
    store
        .put_document("lot", "B", r#"{"bays":2}"#)
        .await
        .expect("document store");
    store
        .put_document("lot", "A", r#"{"bays":1}"#)
        .await
        .expect("document store");
    store
        .put_document("unit", "A", r#"[1,2]"#)
        .await
        .expect("document store");
    store
        .put_document("lot", "A", r#"{"bays":3}"#)
        .await
        .expect("document store");
    assert_eq!(
        store.list_documents("lot").await.expect("document store"),
        vec![
            ("A".to_owned(), r#"{"bays":3}"#.to_owned()),
            ("B".to_owned(), r#"{"bays":2}"#.to_owned()),
        ]
    );
    assert_eq!(
        kind(store.put_document("lot", "C", "{not json").await),
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(store.put_document("", "C", "{}").await),
        ErrorKind::Invalid
    );
    let big = format!("[{}0]", "0,".repeat(600_000));
    assert_eq!(
        kind(store.put_document("lot", "C", &big).await),
        ErrorKind::Invalid
    );
    assert!(
        store
            .delete_document("lot", "B")
            .await
            .expect("document store")
    );
    assert!(
        !store
            .delete_document("lot", "B")
            .await
            .expect("document store")
    );
    assert_eq!(
        store
            .list_documents("lot")
            .await
            .expect("document store")
            .len(),
        1
    );
    assert_eq!(
        store
            .list_documents("unit")
            .await
            .expect("document store")
            .len(),
        1
    );
}
