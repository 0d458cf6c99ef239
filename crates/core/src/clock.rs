//! The platform's clock. Normally the wall clock; in the demo, simulated time running `speed`
//! times faster from a chosen start, shared by the simulator and the server so that every
//! timestamp (sessions, statuses, "today", "the last hours") is in the same time.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor_real: Instant,
    anchor: DateTime<Utc>,
    speed: f64,
    simulated: bool,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::real()
    }
}

impl Clock {
    /// The wall clock.
    pub fn real() -> Clock {
        Clock {
            anchor_real: Instant::now(),
            anchor: Utc::now(),
            speed: 1.0,
            simulated: false,
        }
    }

    /// Simulated time: `start` now, then `speed` simulated seconds per real second.
    pub fn simulated(start: DateTime<Utc>, speed: f64) -> Clock {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Clock {
            anchor_real: Instant::now(),
            anchor: start,
            speed,
            simulated: true,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        if !self.simulated {
            return Utc::now();
        }
        let real = self.anchor_real.elapsed().as_secs_f64() * self.speed;
        self.anchor + Duration::microseconds((real * 1e6) as i64)
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn is_simulated(&self) -> bool {
        self.simulated
    }

    /// Real time to wait for `d` of clock time to pass.
    pub fn real_duration(&self, d: Duration) -> std::time::Duration {
        let secs = d.num_milliseconds().max(0) as f64 / 1000.0 / self.speed;
        std::time::Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_time_runs_faster() {
        let start = DateTime::parse_from_rfc3339("2027-02-03T06:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        let c = Clock::simulated(start, 600.0);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let elapsed = c.now() - start;
        assert!(
            elapsed >= Duration::seconds(29) && elapsed < Duration::seconds(120),
            "{elapsed}"
        );
        assert_eq!(
            c.real_duration(Duration::minutes(10)),
            std::time::Duration::from_secs(1)
        );
        let r = Clock::real();
        assert!((r.now() - Utc::now()).num_seconds().abs() < 2);
    }
}
