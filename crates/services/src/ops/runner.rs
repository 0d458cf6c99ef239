//! The detection duty: reads the event bus, ticks on the platform clock, and turns the
//! detector's signals into cases (open, merge, reopen, verify and close), flags SLA breaches,
//! and, in the demo, moves simulated crews along their orders.
//!
//! It holds the cases lock only around its own read-modify-write of cases, and reads the store
//! only for chargers that have a case, so a busy network's events cost a hash lookup each.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::broadcast::error::RecvError;

use chargeops_core::{Event, Registration};
use chargeops_ops::cases::{self, Decision, Working};
use chargeops_ops::dispatch;
use chargeops_ops::{
    Action, Case, CaseKind, CaseState, Detector, OpsConfig, PLATFORM, Problem, Signal,
    TimelineEntry,
};
use chargeops_store::CaseFilter;

use super::Operations;
use crate::{Error, Result};

/// The actor name of automatic dispatch.
const AUTO_DISPATCH: &str = "platform (auto-dispatch)";
/// Slow work (SLA, simulated crews, the open-charger set) runs every this many ticks.
const SLOW_EVERY: u64 = 5;

/// Runs detection on `events` (subscribed before the duty started) and the clock's ticks.
pub(super) async fn run(
    ops: Arc<Operations>,
    config: OpsConfig,
    mut events: tokio::sync::broadcast::Receiver<Event>,
) {
    let ops = &*ops;
    refresh_open_chargers(ops).await;
    let mut detector = Detector::new(config.clone());
    assume_absent_offline(ops, &mut detector).await;
    // Faults standing now are news to a fresh detector (a node taking the duties over from
    // one that died mid-way): each is matched against the open cases, so it opens one only
    // where none is open.
    let standing = standing_faults(ops).await;
    if !standing.is_empty() {
        tracing::info!(
            faults = standing.len(),
            "faulted connectors at start checked against open cases"
        );
    }
    for event in standing {
        let now = ops.platform.now();
        let signals = detector.on_event(&event, now);
        handle(ops, &detector, &config, signals).await;
    }
    let mut tick = tokio::time::interval(StdDuration::from_millis(config.tick_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ticks = 0u64;
    tracing::info!(
        offline_after_secs = config.offline_after_secs,
        stuck_after_secs = config.stuck_after_secs,
        auto_assign = config.auto_assign,
        simulate_crews = config.simulate_crews,
        "operations detection started"
    );
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if matches!(event, Event::CaseChanged { .. } | Event::QueueChanged { .. }) {
                        continue;
                    }
                    let now = ops.platform.now();
                    let signals = detector.on_event(&event, now);
                    handle(ops, &detector, &config, signals).await;
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "operations detection fell behind the event bus; some events were missed");
                }
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                let now = ops.platform.now();
                let signals = detector.tick(now);
                handle(ops, &detector, &config, signals).await;
                ticks += 1;
                if ticks % SLOW_EVERY == 0 {
                    if let Err(e) = slow_work(ops, &config, now).await {
                        tracing::warn!(error = %e.message, "operations periodic work failed");
                    }
                }
            }
        }
    }
}

async fn handle(ops: &Operations, detector: &Detector, config: &OpsConfig, signals: Vec<Signal>) {
    for signal in signals {
        let result = match signal {
            Signal::Problem(p) => on_problem(ops, config, p).await,
            Signal::Cleared {
                charger_id,
                kind,
                connector_id,
                detail,
                at,
            } => on_cleared(ops, &charger_id, kind, connector_id, &detail, at).await,
            Signal::Working {
                charger_id,
                connector_id,
                session_id,
                started_at,
                energy_wh,
                at,
            } => {
                on_working(
                    ops,
                    detector,
                    &charger_id,
                    connector_id,
                    session_id,
                    started_at,
                    energy_wh,
                    at,
                )
                .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(code = e.code, error = %e.message, "operations signal not applied");
        }
    }
}

async fn on_problem(ops: &Operations, config: &OpsConfig, p: Problem) -> Result<()> {
    let _guard = ops.cases.lock().await;
    let mut candidates = ops
        .platform
        .store
        .list_cases(&CaseFilter {
            station_id: Some(p.station_id.clone()),
            open: Some(true),
            ..CaseFilter::default()
        })
        .await?;
    candidates.extend(
        ops.platform
            .store
            .list_cases(&CaseFilter {
                charger_id: Some(p.charger_id.clone()),
                kind: Some(p.kind),
                open: Some(false),
                limit: Some(3),
                ..CaseFilter::default()
            })
            .await?,
    );
    let find = |id: i64| candidates.iter().find(|c| c.id == id).cloned();
    let decision = cases::decide(&p, &candidates, p.at, config);
    let case = match decision {
        Decision::Duplicate(id) => {
            let Some(mut case) = find(id) else {
                return Ok(());
            };
            let entry = cases::duplicate(&mut case, &p);
            ops.save(&case, &[entry]).await?;
            return Ok(());
        }
        Decision::Merge(id) => {
            let Some(mut case) = find(id) else {
                return Ok(());
            };
            let entry = cases::merge(&mut case, &p);
            ops.save(&case, &[entry]).await?;
            tracing::info!(case_id = case.id, charger_id = %p.charger_id, kind = %p.kind, "detected problem merged into a hotline case");
            case
        }
        Decision::Reopen(id) => {
            let Some(mut case) = find(id) else {
                return Ok(());
            };
            let entry =
                cases::reopen(&mut case, &p, config).map_err(|e| Error::internal(e.to_string()))?;
            ops.save(&case, &[entry]).await?;
            tracing::info!(case_id = case.id, charger_id = %p.charger_id, kind = %p.kind, "case reopened");
            case
        }
        Decision::Open => {
            let (case, entry) = cases::open_detected(&p, config);
            let case = ops.insert(&case, &[entry]).await?;
            tracing::info!(case_id = case.id, charger_id = %p.charger_id, kind = %p.kind, detail = %p.detail, "case opened");
            case
        }
    };
    if config.auto_assign && case.state == CaseState::New {
        auto_assign(ops, case).await?;
    }
    Ok(())
}

async fn auto_assign(ops: &Operations, mut case: Case) -> Result<()> {
    let ranked = ops.proposals_for(&case).await?;
    let Some(best) = ranked.first() else {
        return Ok(());
    };
    let now = ops.platform.now();
    let mut entry = cases::apply(
        &mut case,
        &Action::Assign {
            crew_id: best.crew_id.clone(),
        },
        AUTO_DISPATCH,
        now,
    )
    .map_err(|e| Error::internal(e.to_string()))?;
    entry.detail = format!("{} ({}; {})", entry.detail, best.crew_name, best.reason);
    ops.save(&case, &[entry]).await
}

async fn on_cleared(
    ops: &Operations,
    charger_id: &str,
    kind: CaseKind,
    connector_id: Option<u32>,
    detail: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    if !ops.has_open_case(charger_id) {
        return Ok(());
    }
    let _guard = ops.cases.lock().await;
    for case in ops.open_cases_of(charger_id).await? {
        if case.kind == kind && (connector_id.is_none() || case.connector_id == connector_id) {
            let entry = TimelineEntry::new(at, PLATFORM, "cleared", case.state, detail);
            ops.platform.fence()?;
            ops.platform.store.update_case(&case, &[entry]).await?;
        }
    }
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one signal's fields, passed on as they come"
)]
async fn on_working(
    ops: &Operations,
    detector: &Detector,
    charger_id: &str,
    connector_id: u32,
    session_id: i64,
    started_at: Option<DateTime<Utc>>,
    energy_wh: i64,
    at: DateTime<Utc>,
) -> Result<()> {
    if !ops.has_open_case(charger_id) {
        return Ok(());
    }
    let started_at = match started_at {
        Some(t) => t,
        None => match ops.platform.store.get_session(session_id).await? {
            Some(s) => s.started_at,
            None => return Ok(()),
        },
    };
    let working = Working {
        charger_id: charger_id.to_owned(),
        connector_id,
        started_at,
    };
    let _guard = ops.cases.lock().await;
    let open = ops.open_cases_of(charger_id).await?;
    if open.is_empty() {
        ops.note_open(charger_id, false);
    }
    for mut case in open {
        let active = detector.is_active(charger_id, case.kind, case.connector_id);
        if !cases::verifies(&case, &working, active) {
            continue;
        }
        let mut verify = cases::apply(&mut case, &Action::Verify, PLATFORM, at)
            .map_err(|e| Error::internal(e.to_string()))?;
        verify.detail = format!(
            "verified working again: session {session_id} on connector {connector_id} delivered {:.1} kWh",
            energy_wh as f64 / 1000.0
        );
        let close = cases::apply(
            &mut case,
            &Action::Close {
                note: Some("closed automatically after verification".into()),
            },
            PLATFORM,
            at,
        )
        .map_err(|e| Error::internal(e.to_string()))?;
        ops.save(&case, &[verify, close]).await?;
        tracing::info!(case_id = case.id, charger_id, "case verified and closed");
    }
    Ok(())
}

/// SLA breaches, simulated crews, and dropping chargers whose cases are all closed.
async fn slow_work(ops: &Operations, config: &OpsConfig, now: DateTime<Utc>) -> Result<()> {
    let open = ops
        .platform
        .store
        .list_cases(&CaseFilter {
            open: Some(true),
            ..CaseFilter::default()
        })
        .await?;
    {
        let chargers: std::collections::HashSet<String> =
            open.iter().filter_map(|c| c.charger_id.clone()).collect();
        let mut set = ops.open_chargers.lock().unwrap_or_else(|e| e.into_inner());
        // Keep what was added since the read; drop only what is known closed.
        set.retain(|c| chargers.contains(c));
        set.extend(chargers);
    }
    for case in &open {
        if cases::breaches_sla(case, now) {
            let _guard = ops.cases.lock().await;
            let Some(mut current) = ops.platform.store.get_case(case.id).await? else {
                continue;
            };
            if !cases::breaches_sla(&current, now) {
                continue;
            }
            current.sla_breached = true;
            let entry = TimelineEntry::new(
                now,
                PLATFORM,
                "sla_breached",
                current.state,
                format!(
                    "not resolved by {} (SLA {} min)",
                    current.sla_due_at.format("%Y-%m-%d %H:%M UTC"),
                    (current.sla_due_at - current.opened_at).num_minutes()
                ),
            );
            ops.save(&current, &[entry]).await?;
        }
    }
    if config.simulate_crews {
        simulate_crews(ops, &open, now).await?;
    }
    Ok(())
}

/// At start the detector has seen nothing: every accepted charger that is not connected yet is
/// taken as offline from now, so a charger that went dark while the platform was down (or never
/// comes back after a restart) still gets its case.
async fn assume_absent_offline(ops: &Operations, detector: &mut Detector) {
    let now = ops.platform.now();
    match ops.platform.store.list_chargers().await {
        Ok(chargers) => {
            let mut absent = 0usize;
            for c in chargers
                .iter()
                .filter(|c| c.registration == Registration::Accepted)
            {
                if !ops.platform.live.snapshot(&c.id).is_some_and(|s| s.online) {
                    detector.assume_offline(&c.id, &c.station_id, now);
                    absent += 1;
                }
            }
            tracing::debug!(
                absent,
                "chargers not connected at start are watched as offline"
            );
        }
        Err(e) => tracing::warn!(error = %e, "could not list chargers for offline detection"),
    }
}

/// A status event for every connector that is faulted now, from the live state.
async fn standing_faults(ops: &Operations) -> Vec<Event> {
    let chargers = match ops.platform.store.list_chargers().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not list chargers for standing faults");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for c in chargers {
        let Some(snapshot) = ops.platform.live.snapshot(&c.id) else {
            continue;
        };
        for k in snapshot
            .connectors
            .iter()
            .filter(|k| k.status == chargeops_core::ConnectorStatus::Faulted)
        {
            out.push(Event::StatusChanged {
                charger_id: c.id.clone(),
                station_id: snapshot.station_id.clone(),
                evse_id: k.evse_id,
                connector_id: k.connector_id,
                status: k.status,
                previous: None,
                error_code: k.error_code.clone(),
                at: k.updated_at,
            });
        }
    }
    out
}

async fn refresh_open_chargers(ops: &Operations) {
    match ops
        .platform
        .store
        .list_cases(&CaseFilter {
            open: Some(true),
            ..CaseFilter::default()
        })
        .await
    {
        Ok(open) => {
            for c in open.iter().filter_map(|c| c.charger_id.as_deref()) {
                ops.note_open(c, true);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read open cases"),
    }
}

/// Minutes a simulated crew spends on site for a case: 20 to 79, the same for the same case.
fn repair_minutes(case_id: i64) -> i64 {
    20 + (case_id.wrapping_mul(37)).rem_euclid(60)
}

/// What the simulated crew writes on resolving.
fn simulated_fix(kind: CaseKind) -> (&'static str, Vec<String>) {
    match kind {
        CaseKind::Faulted | CaseKind::Hotline => (
            "replaced the faulty module and tested a charge (simulated crew)",
            vec!["power module".into()],
        ),
        CaseKind::StuckSession => (
            "reseated the contactor (simulated crew)",
            vec!["contactor".into()],
        ),
        CaseKind::MeterAnomaly => (
            "replaced the energy meter (simulated crew)",
            vec!["energy meter".into()],
        ),
        CaseKind::Offline | CaseKind::CommandFailures | CaseKind::RebootLoop => (
            "replaced the 4G router and reflashed the controller (simulated crew)",
            vec!["4G router".into()],
        ),
    }
}

/// Moves the demo's simulated crews along their orders on the platform clock: accept and set
/// off a few minutes after assignment, arrive after the road travel time, resolve after the
/// repair time. Resolving tells the event bus, and the demo's fleet repairs the charger.
async fn simulate_crews(ops: &Operations, open: &[Case], now: DateTime<Utc>) -> Result<()> {
    let crews = ops.platform.store.list_crews().await?;
    for case in open {
        let Some(crew) = case
            .crew_id
            .as_deref()
            .and_then(|id| crews.iter().find(|c| c.id == id && c.simulated))
        else {
            continue;
        };
        if case.charger_id.is_none() {
            continue;
        }
        let waited = now - case.state_since;
        let due = match case.state {
            CaseState::Assigned => waited >= Duration::minutes(3),
            CaseState::EnRoute => {
                let station = ops.platform.store.get_station(&case.station_id).await?;
                let travel = station
                    .and_then(|s| Some(dispatch::travel_minutes(crew, s.lat?, s.lon?)))
                    .unwrap_or(60.0);
                waited >= Duration::minutes(travel.round() as i64)
            }
            CaseState::OnSite => waited >= Duration::minutes(repair_minutes(case.id)),
            _ => false,
        };
        if !due {
            continue;
        }
        let _guard = ops.cases.lock().await;
        let Some(mut current) = ops.platform.store.get_case(case.id).await? else {
            continue;
        };
        if current.state != case.state || current.crew_id != case.crew_id {
            continue;
        }
        let actions = match current.state {
            CaseState::Assigned => vec![Action::Accept, Action::EnRoute],
            CaseState::EnRoute => vec![Action::OnSite],
            CaseState::OnSite => {
                let (note, parts) = simulated_fix(current.kind);
                vec![Action::Resolve {
                    note: note.into(),
                    parts,
                }]
            }
            _ => Vec::new(),
        };
        let mut entries = Vec::new();
        for action in &actions {
            match cases::apply(&mut current, action, &crew.name, now) {
                Ok(e) => entries.push(e),
                Err(e) => {
                    tracing::warn!(case_id = current.id, error = %e, "simulated crew step refused");
                    break;
                }
            }
        }
        if entries.is_empty() {
            continue;
        }
        ops.save(&current, &entries).await?;
        if current.state == CaseState::OnSite {
            ops.move_crew_to_station(&crew.id, &current.station_id)
                .await;
        }
    }
    Ok(())
}
