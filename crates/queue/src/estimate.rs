//! Honest wait estimates from the live state: the connectors in use (how long each session has
//! run, and its energy so far), the connectors already promised to called tickets, the cars
//! ahead, and the station's own history of session lengths.
//!
//! The method is list scheduling: every usable connector has a time at which it is expected to
//! be free (now for a free one; the expected remaining time of its session for a busy one; a
//! called ticket's plug-in plus a typical session for a reserved one). Each car ahead takes the
//! earliest connector and holds it for a typical session; the estimate is when the earliest
//! connector is free after them. Expected remaining time comes from the history: the mean
//! residual `E[D - e | D > e]` of past session lengths `D` for a session `e` seconds old,
//! blended with what the energy delivered so far says about how far along the session is.

use serde::Serialize;

/// Session lengths (and energies) of a station's recent past.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Lengths of finished sessions, seconds, sorted ascending.
    durations_s: Vec<f64>,
    /// Mean energy of a finished session, Wh, when known.
    mean_energy_wh: Option<f64>,
    /// Used when there is no history.
    fallback_s: f64,
}

impl History {
    /// From finished sessions' lengths (seconds) and energies (Wh, where known); sessions
    /// shorter than a minute or longer than 12 h are left out as not charging stops.
    pub fn new(
        durations_s: impl IntoIterator<Item = f64>,
        energies_wh: impl IntoIterator<Item = f64>,
        fallback_s: f64,
    ) -> History {
        let mut durations_s: Vec<f64> = durations_s
            .into_iter()
            .filter(|d| d.is_finite() && (60.0..=12.0 * 3600.0).contains(d))
            .collect();
        durations_s.sort_by(f64::total_cmp);
        let energies: Vec<f64> = energies_wh
            .into_iter()
            .filter(|e| e.is_finite() && *e > 100.0)
            .collect();
        let mean_energy_wh =
            (energies.len() >= 3).then(|| energies.iter().sum::<f64>() / energies.len() as f64);
        History {
            durations_s,
            mean_energy_wh,
            fallback_s: fallback_s.max(60.0),
        }
    }

    /// No history: every session is taken to last `typical_s`.
    pub fn fallback(typical_s: f64) -> History {
        History::new([], [], typical_s)
    }

    pub fn len(&self) -> usize {
        self.durations_s.len()
    }

    pub fn is_empty(&self) -> bool {
        self.durations_s.is_empty()
    }

    /// Mean session length.
    pub fn typical_s(&self) -> f64 {
        if self.durations_s.len() < 3 {
            return self.fallback_s;
        }
        self.durations_s.iter().sum::<f64>() / self.durations_s.len() as f64
    }

    /// Expected remaining time of a session that has run `elapsed_s` (and delivered
    /// `energy_wh`, when known).
    pub fn remaining_s(&self, elapsed_s: f64, energy_wh: Option<f64>) -> f64 {
        let elapsed_s = elapsed_s.max(0.0);
        let typical = self.typical_s();
        // A floor: a session past every one seen still takes a few minutes to wrap up.
        let floor = (typical * 0.1).clamp(60.0, 600.0);
        let by_time = if self.durations_s.len() >= 3 {
            let start = self.durations_s.partition_point(|d| *d <= elapsed_s);
            let longer = &self.durations_s[start..];
            if longer.is_empty() {
                floor
            } else {
                longer.iter().map(|d| d - elapsed_s).sum::<f64>() / longer.len() as f64
            }
        } else {
            (typical - elapsed_s).max(floor)
        };
        let by_energy = match (energy_wh, self.mean_energy_wh) {
            (Some(e), Some(mean)) if e > 0.0 && elapsed_s > 60.0 => {
                let done = (e / mean).clamp(0.05, 0.98);
                Some(elapsed_s * (1.0 - done) / done)
            }
            _ => None,
        };
        match by_energy {
            Some(b) => ((by_time + b) / 2.0).max(floor),
            None => by_time.max(floor),
        }
    }
}

/// One usable connector as the estimator sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    Free,
    /// A session running for `elapsed_s`, with `energy_wh` so far when known.
    Busy {
        elapsed_s: f64,
        energy_wh: Option<f64>,
    },
    /// Promised to a called ticket that has `plug_in_left_s` left to plug in.
    Reserved {
        plug_in_left_s: f64,
    },
}

/// What a wait estimate says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WaitEstimate {
    /// Expected seconds until a connector is free for the car behind `ahead` cars.
    pub wait_s: f64,
    /// Usable connectors the estimate counted (faulted and offline ones are not).
    pub connectors: usize,
    pub ahead: usize,
    pub typical_session_s: f64,
}

/// The wait of a car that has `ahead` cars before it, at a station whose usable connectors
/// are `slots`. `None` when no connector is usable (no honest number exists).
pub fn wait(slots: &[Slot], ahead: usize, history: &History) -> Option<WaitEstimate> {
    if slots.is_empty() {
        return None;
    }
    let typical = history.typical_s();
    let mut free_at: Vec<f64> = slots
        .iter()
        .map(|s| match *s {
            Slot::Free => 0.0,
            Slot::Busy {
                elapsed_s,
                energy_wh,
            } => history.remaining_s(elapsed_s, energy_wh),
            // On average the called car arrives halfway through its window.
            Slot::Reserved { plug_in_left_s } => plug_in_left_s.max(0.0) / 2.0 + typical,
        })
        .collect();
    for _ in 0..ahead {
        let (i, t) = earliest(&free_at);
        free_at[i] = t + typical;
    }
    Some(WaitEstimate {
        wait_s: earliest(&free_at).1,
        connectors: slots.len(),
        ahead,
        typical_session_s: typical,
    })
}

fn earliest(v: &[f64]) -> (usize, f64) {
    v.iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

/// The wait from station counts alone (no per-connector detail, as for a neighbouring station):
/// busy connectors are taken to be halfway through a typical session.
pub fn wait_from_counts(
    free: usize,
    busy: usize,
    ahead: usize,
    history: &History,
) -> Option<WaitEstimate> {
    let typical = history.typical_s();
    let mut slots = vec![Slot::Free; free];
    slots.extend((0..busy).map(|_| Slot::Busy {
        elapsed_s: typical / 2.0,
        energy_wh: None,
    }));
    wait(&slots, ahead, history)
}

/// The queue a car arriving in `in_s` seconds finds: today's queue, plus the forecast arrivals
/// meanwhile, less the cars the connectors serve meanwhile (never below zero).
pub fn queue_at_arrival(
    queue_now: usize,
    connectors: usize,
    arrivals_per_hour: f64,
    in_s: f64,
    history: &History,
) -> usize {
    let hours = in_s.max(0.0) / 3600.0;
    let served_per_hour = connectors as f64 * 3600.0 / history.typical_s();
    let net = (arrivals_per_hour.max(0.0) - served_per_hour) * hours;
    (queue_now as f64 + net).max(0.0).round() as usize
}

/// Expected wait from a load forecast alone (Erlang C), for an hour with `busy` expected busy
/// connectors out of `connectors`: what the station looks like to someone not there yet.
pub fn forecast_wait_s(connectors: u32, busy: f64, history: &History) -> f64 {
    chargeops_forecast::queue::estimate(connectors, busy, history.typical_s() / 3600.0)
        .expected_wait_minutes
        * 60.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist() -> History {
        // Sessions of 20, 30, 40 minutes, 30 kWh each.
        History::new(
            [1200.0, 1800.0, 2400.0, 1200.0, 1800.0, 2400.0],
            [30_000.0; 6],
            2100.0,
        )
    }

    #[test]
    fn free_connector_means_no_wait() {
        let h = hist();
        let e = wait(
            &[
                Slot::Free,
                Slot::Busy {
                    elapsed_s: 10.0,
                    energy_wh: None,
                },
            ],
            0,
            &h,
        )
        .expect("estimate");
        assert_eq!(e.wait_s, 0.0);
        // One car ahead takes the free one; then the busy one frees first.
        let e = wait(
            &[
                Slot::Free,
                Slot::Busy {
                    elapsed_s: 600.0,
                    energy_wh: None,
                },
            ],
            1,
            &h,
        )
        .expect("estimate");
        // Residual of {1200,1800,2400} after 600 s: mean 1200.
        assert!((e.wait_s - 1200.0).abs() < 1.0, "{e:?}");
        assert_eq!(wait(&[], 0, &h), None);
    }

    #[test]
    fn remaining_time_uses_history_and_energy() {
        let h = hist();
        assert!((h.typical_s() - 1800.0).abs() < 1e-9);
        // Past every session seen: the floor.
        assert_eq!(h.remaining_s(5000.0, None), 180.0);
        // Energy says 90 % done after 1000 s: about 111 s left by energy, 1000 s by time.
        let r = h.remaining_s(1000.0, Some(27_000.0));
        let by_time =
            ((1200.0 - 1000.0) * 2.0 + (1800.0 - 1000.0) * 2.0 + (2400.0 - 1000.0) * 2.0) / 6.0;
        assert!(
            (r - (by_time + 1000.0 * 0.1 / 0.9) / 2.0).abs() < 1.0,
            "{r}"
        );
    }

    #[test]
    fn more_cars_ahead_wait_longer() {
        let h = hist();
        let slots = [Slot::Busy {
            elapsed_s: 100.0,
            energy_wh: None,
        }; 4];
        let mut last = -1.0;
        for ahead in 0..12 {
            let w = wait(&slots, ahead, &h).expect("estimate").wait_s;
            assert!(w >= last);
            last = w;
        }
        // Eleven cars ahead on four connectors: three rounds, the first one a residual.
        assert!(last > 2.5 * 1800.0 && last < 4.0 * 1800.0, "{last}");
        assert_eq!(queue_at_arrival(5, 4, 0.0, 1800.0, &h), 1);
        assert_eq!(queue_at_arrival(5, 4, 20.0, 1800.0, &h), 11);
        assert!(forecast_wait_s(4, 3.9, &h) > forecast_wait_s(4, 2.0, &h));
    }
}
