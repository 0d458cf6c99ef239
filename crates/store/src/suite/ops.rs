//! Conformance cases of the operations loop: cases and their timeline, crews, the audit log,
//! crew tokens.

use chargeops_core::Role;
use chargeops_ops::cases::{Call, apply, open_detected, open_hotline};
use chargeops_ops::{
    Action, AuditEntry, Case, CaseKind, CaseState, Category, Crew, OpsConfig, Problem,
    TimelineEntry,
};

use super::{at, kind, with_chargers};
use crate::{CaseFilter, ErrorKind, Store};

fn problem(charger: &str, kind: CaseKind, ms: i64) -> Problem {
    Problem {
        charger_id: charger.into(),
        station_id: "S1".into(),
        kind,
        connector_id: Some(1),
        error_code: Some("GroundFailure".into()),
        detail: "connector 1 faulted (GroundFailure)".into(),
        at: at(ms),
    }
}

pub fn crew(id: &str) -> Crew {
    Crew {
        id: id.into(),
        name: format!("crew {id}"),
        skills: vec!["electrical".into(), "network".into()],
        lat: 28.2,
        lon: 112.9,
        shift_start_hour: 8,
        shift_end_hour: 20,
        speed_kmh: 70.0,
        phone: Some("+86 731 0000 0000".into()),
        simulated: false,
    }
}

pub async fn cases_round_trip_with_timeline<S: Store>(store: S) {
    with_chargers(&store).await;
    store.upsert_crew(&crew("C1")).await.expect("crew");
    let cfg = OpsConfig::default();
    let (new, first) = open_detected(&problem("CP1", CaseKind::Faulted, 1_000), &cfg);
    let mut case = store
        .insert_case(&new, std::slice::from_ref(&first))
        .await
        .expect("insert");
    assert!(case.id > 0);
    assert_eq!(
        Case {
            id: 0,
            ..case.clone()
        },
        new
    );
    assert_eq!(
        store.get_case(case.id).await.expect("get"),
        Some(case.clone())
    );

    let mut entries = Vec::new();
    for (action, t) in [
        (
            Action::Assign {
                crew_id: "C1".into(),
            },
            2_000,
        ),
        (Action::EnRoute, 3_000),
        (Action::OnSite, 4_000),
        (
            Action::Resolve {
                note: "replaced the RCD".into(),
                parts: vec!["RCD 40A".into(), "fuse".into()],
            },
            5_000,
        ),
    ] {
        let e = apply(&mut case, &action, "someone", at(t)).expect("transition");
        store
            .update_case(&case, std::slice::from_ref(&e))
            .await
            .expect("update");
        entries.push(e);
    }
    let got = store.get_case(case.id).await.expect("get").expect("exists");
    assert_eq!(got, case);
    assert_eq!(got.state, CaseState::Resolved);
    assert_eq!(got.parts_used, ["RCD 40A", "fuse"]);
    assert_eq!(got.crew_id.as_deref(), Some("C1"));
    let timeline = store.case_timeline(case.id).await.expect("timeline");
    let mut want: Vec<TimelineEntry> = vec![first];
    want.extend(entries);
    assert_eq!(timeline, want, "oldest first, every entry kept");

    // Several timeline entries in one update share its commit.
    let v = apply(&mut case, &Action::Verify, "platform", at(6_000)).expect("verify");
    let c = apply(
        &mut case,
        &Action::Close { note: None },
        "platform",
        at(6_000),
    )
    .expect("close");
    store.update_case(&case, &[v, c]).await.expect("update");
    assert_eq!(
        store.case_timeline(case.id).await.expect("timeline").len(),
        7
    );

    assert_eq!(store.get_case(9_999).await.expect("get"), None);
    assert_eq!(store.case_timeline(9_999).await.expect("timeline"), vec![]);
    let mut ghost = case.clone();
    ghost.id = 9_999;
    assert_eq!(
        kind(store.update_case(&ghost, &[]).await),
        ErrorKind::NotFound
    );
}

pub async fn cases_refuse_unknown_references<S: Store>(store: S) {
    with_chargers(&store).await;
    let cfg = OpsConfig::default();
    let call = Call {
        station_id: "nowhere".into(),
        charger_id: None,
        connector_id: None,
        category: Category::Fault,
        caller_phone: "13800001234".into(),
        description: "broken".into(),
    };
    let (c, e) = open_hotline(&call, "agent", at(1_000), &cfg);
    assert_eq!(
        kind(store.insert_case(&c, std::slice::from_ref(&e)).await),
        ErrorKind::NotFound
    );
    let (c, e) = open_detected(&problem("CP-unknown", CaseKind::Offline, 1_000), &cfg);
    assert_eq!(kind(store.insert_case(&c, &[e]).await), ErrorKind::NotFound);
    let (mut c, e) = open_detected(&problem("CP1", CaseKind::Offline, 1_000), &cfg);
    c.crew_id = Some("no-such-crew".into());
    assert_eq!(kind(store.insert_case(&c, &[e]).await), ErrorKind::NotFound);
    // Nothing was kept of the refused writes.
    assert_eq!(
        store
            .list_cases(&CaseFilter::default())
            .await
            .expect("list"),
        vec![]
    );
}

pub async fn list_cases_filters<S: Store>(store: S) {
    with_chargers(&store).await;
    store.upsert_crew(&crew("C1")).await.expect("crew");
    let cfg = OpsConfig::default();
    let mut ids = Vec::new();
    for (i, (charger, k)) in [
        ("CP1", CaseKind::Faulted),
        ("CP1", CaseKind::Offline),
        ("CP2", CaseKind::Faulted),
    ]
    .into_iter()
    .enumerate()
    {
        let (c, e) = open_detected(&problem(charger, k, 1_000 * (i as i64 + 1)), &cfg);
        ids.push(store.insert_case(&c, &[e]).await.expect("insert"));
    }
    let mut closed = ids[1].clone();
    let e = apply(&mut closed, &Action::Close { note: None }, "x", at(9_000)).expect("close");
    store.update_case(&closed, &[e]).await.expect("close");
    let mut assigned = ids[2].clone();
    let e = apply(
        &mut assigned,
        &Action::Assign {
            crew_id: "C1".into(),
        },
        "x",
        at(9_000),
    )
    .expect("assign");
    store.update_case(&assigned, &[e]).await.expect("assign");

    let list = |f: CaseFilter| {
        let store = &store;
        async move {
            store
                .list_cases(&f)
                .await
                .expect("list")
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    let (a, b, c) = (ids[0].id, ids[1].id, ids[2].id);
    assert_eq!(
        list(CaseFilter::default()).await,
        vec![c, b, a],
        "newest first"
    );
    let cp1 = || CaseFilter {
        charger_id: Some("CP1".into()),
        ..CaseFilter::default()
    };
    assert_eq!(list(cp1()).await, vec![b, a]);
    assert_eq!(
        list(CaseFilter {
            open: Some(true),
            ..cp1()
        })
        .await,
        vec![a]
    );
    assert_eq!(
        list(CaseFilter {
            open: Some(false),
            ..cp1()
        })
        .await,
        vec![b]
    );
    assert_eq!(
        list(CaseFilter {
            crew_id: Some("C1".into()),
            ..CaseFilter::default()
        })
        .await,
        vec![c]
    );
    assert_eq!(
        list(CaseFilter {
            kind: Some(CaseKind::Faulted),
            ..CaseFilter::default()
        })
        .await,
        vec![c, a]
    );
    assert_eq!(
        list(CaseFilter {
            station_id: Some("S1".into()),
            limit: Some(1),
            ..CaseFilter::default()
        })
        .await,
        vec![c]
    );
    assert_eq!(
        list(CaseFilter {
            since: Some(at(2_000)),
            ..CaseFilter::default()
        })
        .await,
        vec![c, b]
    );
}

pub async fn crews_and_crew_tokens<S: Store>(store: S) {
    assert_eq!(store.list_crews().await.expect("list"), vec![]);
    let mut c1 = crew("C1");
    store.upsert_crew(&c1).await.expect("insert");
    store.upsert_crew(&crew("C0")).await.expect("insert");
    c1.lat = 29.0;
    c1.skills = vec!["metering".into()];
    store.upsert_crew(&c1).await.expect("update");
    assert_eq!(store.get_crew("C1").await.expect("get"), Some(c1.clone()));
    assert_eq!(store.get_crew("nope").await.expect("get"), None);
    assert_eq!(
        store
            .list_crews()
            .await
            .expect("list")
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["C0", "C1"]
    );
    let mut bad = crew("C2");
    bad.lat = f64::NAN;
    assert_eq!(kind(store.upsert_crew(&bad).await), ErrorKind::Invalid);

    let t = store
        .insert_crew_token("Wang (crew C1)", Role::Crew, "digest-crew", Some("C1"))
        .await
        .expect("token");
    assert_eq!((t.role, t.crew_id.as_deref()), (Role::Crew, Some("C1")));
    assert_eq!(
        store.find_token("digest-crew").await.expect("find"),
        Some(t)
    );
    let agent = store
        .insert_token("Li (hotline)", Role::Agent, "digest-agent")
        .await
        .expect("token");
    assert_eq!(agent.crew_id, None);
    assert_eq!(
        store
            .find_token("digest-agent")
            .await
            .expect("find")
            .map(|t| t.role),
        Some(Role::Agent)
    );
}

pub async fn audit_log_appends<S: Store>(store: S) {
    assert_eq!(store.list_audit(10).await.expect("list"), vec![]);
    let mut ids = Vec::new();
    for i in 0..5 {
        let e = AuditEntry {
            id: 0,
            at: at(1_000 * i),
            actor: format!("user {i}"),
            role: "agent".into(),
            action: "POST /api/v1/cases".into(),
            status: if i % 2 == 0 { 201 } else { 400 },
            detail: format!("detail {i}"),
        };
        let id = store.record_audit(&e).await.expect("record");
        ids.push(AuditEntry { id, ..e });
    }
    let got = store.list_audit(3).await.expect("list");
    ids.reverse();
    assert_eq!(got, ids[..3].to_vec(), "newest first, limited");
}
