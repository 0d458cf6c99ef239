//! When to re-plan: why a plan is asked for (triggers), what the current plan was made from,
//! and whether new forecasts or live capacity change it enough to plan again.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use chargeops_forecast::SiteForecast;

use super::problem::Inputs;

/// A change of a station-hour's shortfall (cars/h) that is worth a new plan; smaller changes
/// are forecast noise and would only churn the plan the crews follow.
const MATERIAL_CARS_PER_H: f64 = 0.5;

/// Why a re-plan was asked for; several before the task runs make one plan.
#[derive(Debug, Clone)]
pub(super) struct Trigger {
    pub reason: &'static str,
    pub detail: String,
}

/// Reason codes, most telling first: a plan made for several reasons is named after the first.
const REASONS: &[&str] = &[
    "unit_report",
    "unit_removed",
    "unit_added",
    "request",
    "forecast",
    "capacity",
    "hourly",
    "start",
];

impl Trigger {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Trigger {
        Trigger {
            reason,
            detail: detail.into(),
        }
    }

    /// The first plan since the platform started.
    pub fn start() -> Trigger {
        Trigger::new("start", "first plan since the platform started")
    }

    /// The reason a plan made for all of `triggers` is named after, and their details in a
    /// sentence.
    pub fn named(triggers: &[Trigger]) -> (&'static str, String) {
        let reason = REASONS
            .iter()
            .find(|r| triggers.iter().any(|t| t.reason == **r))
            .copied()
            .unwrap_or("start");
        let detail = triggers
            .iter()
            .map(|t| t.detail.as_str())
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        (reason, detail)
    }
}

/// What the current plan was made from, to tell whether new forecasts change it.
pub(super) struct Basis {
    pub origin: DateTime<Utc>,
    pub horizon: usize,
    /// Wall time the plan took, and when it was made: automatic re-plans wait for twice that
    /// after it, so the planner uses at most a third of a core however busy the network is.
    pub took: std::time::Duration,
    pub made: std::time::Instant,
    pub planned_at: DateTime<Utc>,
    pub fits: HashMap<String, Arc<SiteForecast>>,
    pub shortfall: HashMap<String, Vec<f64>>,
}

impl Basis {
    /// Whether an automatic re-plan must still wait.
    pub fn resting(&self) -> bool {
        self.made.elapsed() < self.took * 2
    }
}

/// Why the task should plan now on `inp`, if it should: no plan yet, other stations or another
/// horizon, or [`worth_replanning`].
pub(super) fn why_plan(basis: Option<&Basis>, inp: &Inputs) -> Option<Trigger> {
    match basis {
        None => Some(Trigger::start()),
        Some(b)
            if inp.horizon != b.horizon
                || b.shortfall.len() != inp.sites.len()
                || inp.sites.iter().any(|s| !b.shortfall.contains_key(&s.id)) =>
        {
            Some(Trigger::new(
                "forecast",
                "the stations or the horizon changed",
            ))
        }
        Some(b) => worth_replanning(b, inp),
    }
}

/// Why new inputs call for a new plan, if they do: the hour moved on, the forecasts were
/// refitted and moved a station-hour's shortfall materially, or live capacity did.
fn worth_replanning(basis: &Basis, inp: &Inputs) -> Option<Trigger> {
    let shift = (inp.origin - basis.origin).num_hours();
    let mut worst: Option<(f64, &str, usize)> = None;
    for s in &inp.sites {
        let old = basis.shortfall.get(&s.id);
        for (h, &new) in s.shortfall.iter().enumerate() {
            let was = old.and_then(|o| {
                usize::try_from(h as i64 + shift)
                    .ok()
                    .and_then(|i| o.get(i).copied())
            });
            let Some(was) = was else {
                // An hour (or a station) the last plan did not cover.
                if new > MATERIAL_CARS_PER_H && worst.is_none() {
                    worst = Some((new, &s.id, h));
                }
                continue;
            };
            let d = (new.max(0.0) - was.max(0.0)).abs();
            if d > MATERIAL_CARS_PER_H && worst.is_none_or(|w| d > w.0) {
                worst = Some((d, &s.id, h));
            }
        }
    }
    let refitted = inp
        .fits
        .iter()
        .any(|(id, f)| basis.fits.get(id).is_none_or(|old| !Arc::ptr_eq(old, f)));
    if let Some((d, id, h)) = worst {
        let at = inp.origin + Duration::hours(h as i64);
        let what = format!(
            "the shortfall at {id} at {} moved by {d:.1} cars/h",
            at.format("%Y-%m-%d %H:00Z")
        );
        return Some(if refitted {
            Trigger::new("forecast", format!("forecasts refitted: {what}"))
        } else {
            Trigger::new("capacity", format!("live capacity changed: {what}"))
        });
    }
    if shift > 0 || inp.now - basis.planned_at >= Duration::hours(1) {
        return Some(Trigger::new("hourly", "a new hour"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargeops_dispatch::province::Site;

    fn basis(shortfall: Vec<f64>) -> Basis {
        let origin = DateTime::from_timestamp(1_800_000_000 / 3600 * 3600, 0).expect("t");
        Basis {
            origin,
            horizon: shortfall.len(),
            took: std::time::Duration::ZERO,
            made: std::time::Instant::now(),
            planned_at: origin,
            fits: HashMap::new(),
            shortfall: HashMap::from([("a".to_owned(), shortfall)]),
        }
    }

    fn inputs_with(b: &Basis, shift_h: i64, shortfall: Vec<f64>) -> Inputs {
        let origin = b.origin + Duration::hours(shift_h);
        Inputs {
            now: origin + Duration::minutes(5),
            origin,
            horizon: shortfall.len(),
            stations: Vec::new(),
            places: Vec::new(),
            sites: vec![Site {
                id: "a".into(),
                shortfall,
                queue: 0.0,
            }],
            fits: HashMap::new(),
        }
    }

    #[test]
    fn small_changes_and_spare_capacity_do_not_churn_the_plan() {
        let b = basis(vec![-3.0, 1.0, 2.0, -1.0]);
        // Within half a car an hour, and changes while there is spare capacity: no new plan.
        assert!(worth_replanning(&b, &inputs_with(&b, 0, vec![-1.0, 1.3, 2.2, -4.0])).is_none());
        // A short hour got shorter by more than that.
        let t = worth_replanning(&b, &inputs_with(&b, 0, vec![-3.0, 1.0, 3.0, -1.0]))
            .expect("a re-plan");
        assert_eq!(
            t.reason, "capacity",
            "no fit changed: the live capacity did"
        );
        assert!(t.detail.contains("at a at"), "{}", t.detail);
        // An hour later the same forecast, shifted: only the hourly re-plan.
        let t =
            worth_replanning(&b, &inputs_with(&b, 1, vec![1.0, 2.0, -1.0, -2.0])).expect("hourly");
        assert_eq!(t.reason, "hourly");
        // A new last hour that is short counts as a change.
        let t =
            worth_replanning(&b, &inputs_with(&b, 1, vec![1.0, 2.0, -1.0, 4.0])).expect("new hour");
        assert_eq!(t.reason, "capacity");
    }
}
