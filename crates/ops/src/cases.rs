//! The case book's rules: what a detected problem does to the cases already there, how an
//! action changes a case, and when a case counts as verified working again.
//!
//! - One open case per charger and problem kind: the same problem detected again is noted on
//!   the open case ([`Decision::Duplicate`]).
//! - An open hotline fault report for the same station (for the same charger, or for no charger
//!   in particular) becomes the detected problem's case ([`Decision::Merge`]): the caller and the
//!   charger told us about one fault.
//! - A problem that comes back within the reopen window of its case closing reopens that case
//!   ([`Decision::Reopen`]) rather than starting a fresh history.
//! - Verified working again: the problem is no longer going on, and a session that started after
//!   the problem was last seen delivered energy on the outlet concerned.

use chrono::{DateTime, Duration, Utc};

use crate::config::OpsConfig;
use crate::detect::Problem;
use crate::model::{
    Case, CaseKind, CaseState, Category, PLATFORM, Priority, Source, TimelineEntry,
};
use crate::state::{Action, TransitionError, next_state};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Duplicate(i64),
    Merge(i64),
    Reopen(i64),
    Open,
}

/// Decides what `problem` does, given the open cases of its station and the recently closed
/// cases of its charger (`candidates`, in any order).
pub fn decide(
    problem: &Problem,
    candidates: &[Case],
    now: DateTime<Utc>,
    config: &OpsConfig,
) -> Decision {
    let same_charger = |c: &&Case| c.charger_id.as_deref() == Some(problem.charger_id.as_str());
    if let Some(c) = candidates
        .iter()
        .filter(same_charger)
        .find(|c| c.state.is_open() && c.kind == problem.kind)
    {
        return Decision::Duplicate(c.id);
    }
    if problem.kind == CaseKind::Faulted || problem.kind == CaseKind::Offline {
        // Reports for this very charger first, then station-wide ones; the oldest call first.
        let mut hotline: Vec<&Case> = candidates
            .iter()
            .filter(|c| {
                c.state.is_open()
                    && c.kind == CaseKind::Hotline
                    && c.category == Category::Fault
                    && c.station_id == problem.station_id
                    && c.charger_id
                        .as_deref()
                        .is_none_or(|id| id == problem.charger_id)
                    && (c.connector_id.is_none()
                        || problem.connector_id.is_none()
                        || c.connector_id == problem.connector_id)
            })
            .collect();
        hotline.sort_by_key(|c| (c.charger_id.is_none(), c.opened_at, c.id));
        if let Some(c) = hotline.first() {
            return Decision::Merge(c.id);
        }
    }
    let window =
        Duration::seconds(i64::try_from(config.reopen_window_secs).unwrap_or(i64::MAX / 2_000));
    candidates
        .iter()
        .filter(same_charger)
        .filter(|c| {
            c.kind == problem.kind
                && c.state == CaseState::Closed
                && c.closed_at.is_some_and(|t| now - t <= window)
        })
        .max_by_key(|c| c.closed_at)
        .map_or(Decision::Open, |c| Decision::Reopen(c.id))
}

/// When a case of `priority` (or a question) opened at `opened` is due.
pub fn sla_due(
    priority: Priority,
    category: Category,
    opened: DateTime<Utc>,
    config: &OpsConfig,
) -> DateTime<Utc> {
    let mins = match (category, priority) {
        (Category::StationQuestion | Category::BusinessQuestion, _) => config.sla_question_mins,
        (_, Priority::High) => config.sla_high_mins,
        (_, Priority::Medium) => config.sla_medium_mins,
        (_, Priority::Low) => config.sla_low_mins,
    };
    opened + Duration::minutes(i64::try_from(mins).unwrap_or(i64::MAX / 120_000))
}

/// A new case for a detected problem (id 0 until stored) and its first timeline entry.
pub fn open_detected(problem: &Problem, config: &OpsConfig) -> (Case, TimelineEntry) {
    let priority = problem.kind.priority();
    let case = Case {
        id: 0,
        kind: problem.kind,
        state: CaseState::New,
        source: Source::Detected,
        category: Category::Fault,
        priority,
        station_id: problem.station_id.clone(),
        charger_id: Some(problem.charger_id.clone()),
        connector_id: problem.connector_id,
        title: problem.detail.clone(),
        description: None,
        error_code: problem.error_code.clone(),
        caller_phone: None,
        crew_id: None,
        opened_at: problem.at,
        state_since: problem.at,
        last_seen_at: problem.at,
        sla_due_at: sla_due(priority, Category::Fault, problem.at, config),
        sla_breached: false,
        resolved_at: None,
        closed_at: None,
        reopened: 0,
        resolution_note: None,
        parts_used: Vec::new(),
    };
    let entry = TimelineEntry::new(
        problem.at,
        PLATFORM,
        "opened",
        CaseState::New,
        format!("detected: {}", problem.detail),
    );
    (case, entry)
}

/// What a hotline agent enters for a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub station_id: String,
    pub charger_id: Option<String>,
    pub connector_id: Option<u32>,
    pub category: Category,
    pub caller_phone: String,
    pub description: String,
}

pub fn open_hotline(
    call: &Call,
    agent: &str,
    now: DateTime<Utc>,
    config: &OpsConfig,
) -> (Case, TimelineEntry) {
    let priority = match call.category {
        Category::Fault => Priority::High,
        _ => Priority::Low,
    };
    let first_line: String = call
        .description
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect();
    let title = match call.category {
        Category::Fault => format!("fault reported by a caller: {first_line}"),
        Category::StationQuestion => format!("station question: {first_line}"),
        Category::BusinessQuestion => format!("business question: {first_line}"),
    };
    let case = Case {
        id: 0,
        kind: CaseKind::Hotline,
        state: CaseState::New,
        source: Source::Hotline,
        category: call.category,
        priority,
        station_id: call.station_id.clone(),
        charger_id: call.charger_id.clone(),
        connector_id: call.connector_id,
        title,
        description: Some(call.description.clone()),
        error_code: None,
        caller_phone: Some(call.caller_phone.clone()),
        crew_id: None,
        opened_at: now,
        state_since: now,
        last_seen_at: now,
        sla_due_at: sla_due(priority, call.category, now, config),
        sla_breached: false,
        resolved_at: None,
        closed_at: None,
        reopened: 0,
        resolution_note: None,
        parts_used: Vec::new(),
    };
    let entry = TimelineEntry::new(
        now,
        agent,
        "opened",
        CaseState::New,
        format!(
            "call from {}: {}",
            mask_phone(&call.caller_phone),
            call.category
        ),
    );
    (case, entry)
}

/// Whether a hotline report of a fault on `charger` matches an open detected case there, so the
/// call joins it instead of opening a second case.
pub fn matching_detected<'a>(call: &Call, open: &'a [Case]) -> Option<&'a Case> {
    if call.category != Category::Fault {
        return None;
    }
    let charger = call.charger_id.as_deref()?;
    open.iter()
        .filter(|c| {
            c.state.is_open()
                && c.kind.is_detected()
                && c.charger_id.as_deref() == Some(charger)
                && (call.connector_id.is_none()
                    || c.connector_id.is_none()
                    || c.connector_id == call.connector_id)
        })
        .min_by_key(|c| (c.opened_at, c.id))
}

/// A phone number with all but its last four digits hidden, for timelines and lists.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let keep = digits.len().saturating_sub(4);
    let tail: String = digits[keep..].iter().collect();
    format!("***{tail}")
}

/// Checks a caller's phone number: digits with an optional leading `+`, and spaces or dashes
/// between groups; 5 to 15 digits (E.164 allows 15; 5 covers short service numbers).
pub fn valid_phone(phone: &str) -> bool {
    let p = phone.trim();
    let body = p.strip_prefix('+').unwrap_or(p);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
        && body.starts_with(|c: char| c.is_ascii_digit())
        && (5..=15).contains(&digits)
}

/// Applies `action` by `actor` at `now`: the new state and everything that goes with it. The
/// returned entry is the case's new timeline line.
pub fn apply(
    case: &mut Case,
    action: &Action,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<TimelineEntry, TransitionError> {
    let next = next_state(case.state, action)?;
    let detail = match action {
        Action::Assign { crew_id } => {
            let detail = match &case.crew_id {
                Some(old) if old != crew_id => {
                    format!("reassigned from crew {old} to crew {crew_id}")
                }
                _ => format!("assigned to crew {crew_id}"),
            };
            case.crew_id = Some(crew_id.clone());
            detail
        }
        Action::Accept => "crew accepted the order".to_owned(),
        Action::EnRoute => "crew on the way".to_owned(),
        Action::OnSite => "crew on site".to_owned(),
        Action::Resolve { note, parts } => {
            case.resolved_at = Some(now);
            case.resolution_note = Some(note.clone());
            case.parts_used = parts.clone();
            if parts.is_empty() {
                note.clone()
            } else {
                format!("{note} (parts: {})", parts.join(", "))
            }
        }
        Action::Verify => "verified working again".to_owned(),
        Action::Close { note } => {
            case.closed_at = Some(now);
            note.clone().unwrap_or_else(|| "closed".to_owned())
        }
        Action::Reopen => {
            case.reopened += 1;
            case.closed_at = None;
            case.resolved_at = None;
            case.crew_id = None;
            case.sla_breached = false;
            "reopened".to_owned()
        }
        Action::Note { text } => text.clone(),
    };
    if next != case.state {
        case.state = next;
        case.state_since = now;
    }
    Ok(TimelineEntry::new(now, actor, action.name(), next, detail))
}

/// Joins a detected problem onto an open hotline report: the case becomes the problem's kind
/// and names the charger, keeping the call's history.
pub fn merge(case: &mut Case, problem: &Problem) -> TimelineEntry {
    case.kind = problem.kind;
    case.charger_id = Some(problem.charger_id.clone());
    if case.connector_id.is_none() {
        case.connector_id = problem.connector_id;
    }
    case.error_code = problem.error_code.clone();
    case.last_seen_at = problem.at;
    case.title = format!("{} (also reported by a caller)", problem.detail);
    TimelineEntry::new(
        problem.at,
        PLATFORM,
        "merged",
        case.state,
        format!(
            "charger {} confirms: {}",
            problem.charger_id, problem.detail
        ),
    )
}

/// Notes a problem detected again on its open case.
pub fn duplicate(case: &mut Case, problem: &Problem) -> TimelineEntry {
    case.last_seen_at = problem.at;
    if problem.error_code.is_some() {
        case.error_code = problem.error_code.clone();
    }
    TimelineEntry::new(
        problem.at,
        PLATFORM,
        "detected_again",
        case.state,
        problem.detail.clone(),
    )
}

/// Reopens a recently closed case for its problem come back.
pub fn reopen(
    case: &mut Case,
    problem: &Problem,
    config: &OpsConfig,
) -> Result<TimelineEntry, TransitionError> {
    let mut entry = apply(case, &Action::Reopen, PLATFORM, problem.at)?;
    case.last_seen_at = problem.at;
    case.error_code = problem.error_code.clone();
    case.title = problem.detail.clone();
    case.sla_due_at = sla_due(case.priority, case.category, problem.at, config);
    entry.detail = format!("the problem is back: {}", problem.detail);
    Ok(entry)
}

/// Evidence that a charger works: a session on `connector_id` that started at `started_at`
/// and delivered energy.
#[derive(Debug, Clone, PartialEq)]
pub struct Working {
    pub charger_id: String,
    pub connector_id: u32,
    pub started_at: DateTime<Utc>,
}

/// Whether `working` verifies `case`, given whether its problem is still going on.
pub fn verifies(case: &Case, working: &Working, problem_active: bool) -> bool {
    case.state.is_open()
        && case.state != CaseState::Verified
        && case.category == Category::Fault
        && case.charger_id.as_deref() == Some(working.charger_id.as_str())
        && !problem_active
        && case.connector_id.is_none_or(|c| c == working.connector_id)
        && working.started_at > case.last_seen_at
        // A caller's report that no detection confirmed needs a crew's word that it is fixed.
        && (case.kind != CaseKind::Hotline || case.state == CaseState::Resolved)
}

/// Whether the case has just gone past its SLA unresolved (it is flagged once).
pub fn breaches_sla(case: &Case, now: DateTime<Utc>) -> bool {
    !case.sla_breached
        && matches!(
            case.state,
            CaseState::New | CaseState::Assigned | CaseState::EnRoute | CaseState::OnSite
        )
        && now > case.sla_due_at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2027-02-05T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
            + Duration::minutes(min)
    }

    fn problem(kind: CaseKind, charger: &str, at: i64) -> Problem {
        Problem {
            charger_id: charger.into(),
            station_id: "S1".into(),
            kind,
            connector_id: Some(1),
            error_code: Some("GroundFailure".into()),
            detail: "connector 1 faulted (GroundFailure)".into(),
            at: t(at),
        }
    }

    fn case(id: i64, p: &Problem) -> Case {
        let (mut c, _) = open_detected(p, &OpsConfig::default());
        c.id = id;
        c
    }

    fn call(charger: Option<&str>) -> Call {
        Call {
            station_id: "S1".into(),
            charger_id: charger.map(Into::into),
            connector_id: None,
            category: Category::Fault,
            caller_phone: "+86 138 0000 1234".into(),
            description: "the screen is dark and it will not start".into(),
        }
    }

    #[test]
    fn dedup_merge_reopen_open() {
        let cfg = OpsConfig::default();
        let p = problem(CaseKind::Faulted, "CP1", 0);
        assert_eq!(decide(&p, &[], t(0), &cfg), Decision::Open);

        let open = case(1, &p);
        assert_eq!(
            decide(
                &problem(CaseKind::Faulted, "CP1", 5),
                std::slice::from_ref(&open),
                t(5),
                &cfg
            ),
            Decision::Duplicate(1)
        );
        // Another kind on the same charger, or the same kind elsewhere, is another case.
        assert_eq!(
            decide(
                &problem(CaseKind::Offline, "CP1", 5),
                std::slice::from_ref(&open),
                t(5),
                &cfg
            ),
            Decision::Open
        );
        assert_eq!(
            decide(
                &problem(CaseKind::Faulted, "CP2", 5),
                std::slice::from_ref(&open),
                t(5),
                &cfg
            ),
            Decision::Open
        );

        // A caller reported a fault at the station first: the detection joins the call.
        let (mut hot, _) = open_hotline(&call(None), "agent", t(0), &cfg);
        hot.id = 2;
        let (mut hot_cp1, _) = open_hotline(&call(Some("CP1")), "agent", t(1), &cfg);
        hot_cp1.id = 3;
        assert_eq!(
            decide(&p, &[hot.clone(), hot_cp1.clone()], t(2), &cfg),
            Decision::Merge(3),
            "the report naming the charger wins"
        );
        assert_eq!(decide(&p, &[hot.clone()], t(2), &cfg), Decision::Merge(2));
        let (mut question, _) = open_hotline(
            &Call {
                category: Category::StationQuestion,
                ..call(None)
            },
            "agent",
            t(0),
            &cfg,
        );
        question.id = 4;
        assert_eq!(decide(&p, &[question], t(2), &cfg), Decision::Open);

        // Closed an hour ago: the fault is back, the case reopens; after the window, a new case.
        let mut closed = case(5, &p);
        closed.state = CaseState::Closed;
        closed.closed_at = Some(t(60));
        assert_eq!(
            decide(
                &problem(CaseKind::Faulted, "CP1", 120),
                &[closed.clone()],
                t(120),
                &cfg
            ),
            Decision::Reopen(5)
        );
        let late = t(60) + Duration::seconds(cfg.reopen_window_secs as i64 + 60);
        assert_eq!(
            decide(&problem(CaseKind::Faulted, "CP1", 0), &[closed], late, &cfg),
            Decision::Open
        );
    }

    #[test]
    fn merge_keeps_the_call() {
        let cfg = OpsConfig::default();
        let (mut hot, _) = open_hotline(&call(None), "agent", t(0), &cfg);
        hot.id = 9;
        let p = problem(CaseKind::Faulted, "CP1", 3);
        let entry = merge(&mut hot, &p);
        assert_eq!(hot.kind, CaseKind::Faulted);
        assert_eq!(hot.source, Source::Hotline);
        assert_eq!(hot.charger_id.as_deref(), Some("CP1"));
        assert_eq!(hot.caller_phone.as_deref(), Some("+86 138 0000 1234"));
        assert_eq!(entry.action, "merged");
        // And the reverse: a call about a charger with an open detected case joins it.
        let open = vec![hot.clone()];
        assert_eq!(
            matching_detected(&call(Some("CP1")), &open).map(|c| c.id),
            Some(9)
        );
        assert_eq!(matching_detected(&call(Some("CP2")), &open), None);
    }

    #[test]
    fn verification_rules() {
        let p = problem(CaseKind::Faulted, "CP1", 0);
        let mut c = case(1, &p);
        let w = |conn, start| Working {
            charger_id: "CP1".into(),
            connector_id: conn,
            started_at: t(start),
        };
        assert!(verifies(&c, &w(1, 10), false));
        assert!(!verifies(&c, &w(1, 10), true), "still faulted");
        assert!(!verifies(&c, &w(2, 10), false), "another outlet");
        assert!(!verifies(&c, &w(1, -5), false), "started before the fault");
        c.state = CaseState::Closed;
        assert!(!verifies(&c, &w(1, 10), false));

        let cfg = OpsConfig::default();
        let (mut hot, _) = open_hotline(&call(Some("CP1")), "agent", t(0), &cfg);
        assert!(
            !verifies(&hot, &w(1, 10), false),
            "unconfirmed report needs the crew"
        );
        hot.state = CaseState::Resolved;
        assert!(verifies(&hot, &w(1, 10), false));
    }

    #[test]
    fn apply_records_who_and_what() {
        let p = problem(CaseKind::Faulted, "CP1", 0);
        let mut c = case(1, &p);
        let e = apply(
            &mut c,
            &Action::Assign {
                crew_id: "crew-a".into(),
            },
            "disp",
            t(1),
        )
        .unwrap();
        assert_eq!(
            (e.action.as_str(), e.state, e.actor.as_str()),
            ("assign", CaseState::Assigned, "disp")
        );
        let e = apply(
            &mut c,
            &Action::Assign {
                crew_id: "crew-b".into(),
            },
            "disp",
            t(2),
        )
        .unwrap();
        assert_eq!(e.detail, "reassigned from crew crew-a to crew crew-b");
        assert!(apply(&mut c, &Action::Verify, "x", t(3)).is_ok());
        assert!(
            apply(
                &mut c,
                &Action::Resolve {
                    note: "n".into(),
                    parts: vec![]
                },
                "x",
                t(4)
            )
            .is_err()
        );
        let e = apply(&mut c, &Action::Close { note: None }, PLATFORM, t(5)).unwrap();
        assert_eq!((c.state, c.closed_at), (CaseState::Closed, Some(t(5))));
        assert_eq!(e.state, CaseState::Closed);
        let e = reopen(
            &mut c,
            &problem(CaseKind::Faulted, "CP1", 30),
            &OpsConfig::default(),
        )
        .unwrap();
        assert_eq!(
            (c.state, c.reopened, c.closed_at, c.crew_id.clone()),
            (CaseState::New, 1, None, None)
        );
        assert!(e.detail.starts_with("the problem is back"));
    }

    #[test]
    fn sla_and_phone() {
        let p = problem(CaseKind::Faulted, "CP1", 0);
        let mut c = case(1, &p);
        assert_eq!(c.sla_due_at, t(240));
        assert!(!breaches_sla(&c, t(200)));
        assert!(breaches_sla(&c, t(241)));
        c.sla_breached = true;
        assert!(!breaches_sla(&c, t(300)), "flagged once");
        assert!(valid_phone("+86 138-0000-1234"));
        assert!(valid_phone("12345"));
        assert!(!valid_phone("call me"));
        assert!(!valid_phone("+"));
        assert!(!valid_phone("1234"));
        assert!(!valid_phone("1234567890123456"));
        assert_eq!(mask_phone("+86 138 0000 1234"), "***1234");
    }
}
