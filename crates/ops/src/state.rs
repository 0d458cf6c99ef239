//! The case state machine. Every change to a case's state goes through [`next_state`], so the
//! API, the detection task and the simulated crews all obey the same rules.
//!
//! ```text
//! new ──assign──▶ assigned ──en_route──▶ en_route ──on_site──▶ on_site ──resolve──▶ resolved
//!  ▲                 ▲ (reassign from any dispatched state)                             │
//!  │                 └──────────────────────────────────────────                        ▼
//!  └──────reopen (fault back within the window)──── closed ◀──close── verified ◀──verify─┘
//! ```
//!
//! Verification (the charger is seen working) is allowed from any open state, so a problem that
//! clears by itself closes without a visit; closing by hand is allowed from any open state.

use thiserror::Error;

use crate::model::CaseState;

/// Something a person or the platform does to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Assign { crew_id: String },
    Accept,
    EnRoute,
    OnSite,
    Resolve { note: String, parts: Vec<String> },
    Verify,
    Close { note: Option<String> },
    Reopen,
    Note { text: String },
}

impl Action {
    /// The action's name in URLs and timelines.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Assign { .. } => "assign",
            Action::Accept => "accept",
            Action::EnRoute => "en_route",
            Action::OnSite => "on_site",
            Action::Resolve { .. } => "resolve",
            Action::Verify => "verify",
            Action::Close { .. } => "close",
            Action::Reopen => "reopen",
            Action::Note { .. } => "note",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot {action} a case that is {state}")]
pub struct TransitionError {
    pub action: &'static str,
    pub state: CaseState,
}

/// The state after `action` on a case in `state`, or why it is not allowed.
pub fn next_state(state: CaseState, action: &Action) -> Result<CaseState, TransitionError> {
    use CaseState::*;
    let refused = || TransitionError {
        action: action.name(),
        state,
    };
    Ok(match action {
        Action::Assign { .. } => match state {
            New | Assigned | EnRoute | OnSite => Assigned,
            _ => return Err(refused()),
        },
        Action::Accept => match state {
            Assigned => Assigned,
            _ => return Err(refused()),
        },
        Action::EnRoute => match state {
            Assigned => EnRoute,
            _ => return Err(refused()),
        },
        Action::OnSite => match state {
            Assigned | EnRoute => OnSite,
            _ => return Err(refused()),
        },
        // A remote reset can fix a charger before anyone travels.
        Action::Resolve { .. } => match state {
            Assigned | EnRoute | OnSite => Resolved,
            _ => return Err(refused()),
        },
        Action::Verify => match state {
            Closed | Verified => return Err(refused()),
            _ => Verified,
        },
        Action::Close { .. } => match state {
            Closed => return Err(refused()),
            _ => Closed,
        },
        Action::Reopen => match state {
            Resolved | Verified | Closed => New,
            _ => return Err(refused()),
        },
        Action::Note { .. } => state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use CaseState::*;

    fn resolve() -> Action {
        Action::Resolve {
            note: "replaced contactor".into(),
            parts: vec!["contactor".into()],
        }
    }

    #[test]
    fn the_whole_loop() {
        let mut s = New;
        for (action, want) in [
            (
                Action::Assign {
                    crew_id: "c1".into(),
                },
                Assigned,
            ),
            (Action::Accept, Assigned),
            (Action::EnRoute, EnRoute),
            (Action::OnSite, OnSite),
            (resolve(), Resolved),
            (Action::Verify, Verified),
            (Action::Close { note: None }, Closed),
            (Action::Reopen, New),
        ] {
            s = next_state(s, &action).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s, want, "after {}", action.name());
        }
    }

    #[test]
    fn refusals() {
        // Nothing to resolve before a crew has it; nothing to accept after it is on site.
        assert!(next_state(New, &resolve()).is_err());
        assert!(next_state(OnSite, &Action::Accept).is_err());
        assert!(next_state(New, &Action::EnRoute).is_err());
        assert!(next_state(Resolved, &Action::OnSite).is_err());
        assert!(
            next_state(
                Closed,
                &Action::Assign {
                    crew_id: "c".into()
                }
            )
            .is_err()
        );
        assert!(next_state(Closed, &Action::Close { note: None }).is_err());
        assert!(next_state(Closed, &Action::Verify).is_err());
        assert!(next_state(Assigned, &Action::Reopen).is_err());
        let e = next_state(Closed, &Action::Verify).unwrap_err();
        assert_eq!(e.to_string(), "cannot verify a case that is closed");
    }

    #[test]
    fn reassign_and_self_healing() {
        assert_eq!(
            next_state(
                EnRoute,
                &Action::Assign {
                    crew_id: "c2".into()
                }
            ),
            Ok(Assigned)
        );
        // A fault that clears by itself verifies without a visit.
        assert_eq!(next_state(New, &Action::Verify), Ok(Verified));
        assert_eq!(
            next_state(OnSite, &Action::Note { text: "x".into() }),
            Ok(OnSite)
        );
    }
}
