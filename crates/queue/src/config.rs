//! Queue settings, with defaults for a real service area. Tests set the plug-in window low.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Whether the queue task runs (calls tickets on connector events). The API answers either way.
    pub enabled: bool,
    /// Time a called driver has to plug in before the number passes to the next car.
    pub plug_in_secs: u64,
    /// Waiting tickets one station takes at most.
    pub max_waiting: u32,
    /// How often, in real milliseconds, no-shows are looked for.
    pub tick_ms: u64,
    /// Session length assumed when a station has no history yet.
    pub typical_session_mins: u64,
    /// Where call notifications are POSTed as JSON (`http://` only); the log sink always runs.
    pub webhook_url: Option<String>,
    /// Average highway speed for diversion driving times.
    pub speed_kmh: f64,
    /// Extra driving to reach the opposite-direction side (to the next interchange and back).
    pub twin_detour_km: f64,
    /// Energy a diverted car is assumed to need when the caller does not say.
    pub energy_kwh: f64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            plug_in_secs: 5 * 60,
            max_waiting: 200,
            tick_ms: 1000,
            typical_session_mins: 35,
            webhook_url: None,
            speed_kmh: 90.0,
            twin_detour_km: 20.0,
            energy_kwh: 40.0,
        }
    }
}

impl QueueConfig {
    /// Applies `CHARGEOPS_QUEUE_*` variables, one per key, upper-cased.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        chargeops_core::apply_env!(
            self,
            var,
            "CHARGEOPS_QUEUE_",
            enabled: flag,
            plug_in_secs: number,
            max_waiting: number,
            tick_ms: number,
            typical_session_mins: number,
            speed_kmh: number,
            twin_detour_km: number,
            energy_kwh: number,
        );
        if let Some(v) = var("CHARGEOPS_QUEUE_WEBHOOK_URL") {
            self.webhook_url = Some(v).filter(|v| !v.trim().is_empty());
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.plug_in_secs == 0 {
            return Err("queue.plug_in_secs must be at least 1".into());
        }
        if self.max_waiting == 0 {
            return Err("queue.max_waiting must be at least 1".into());
        }
        if !(10..=60_000).contains(&self.tick_ms) {
            return Err("queue.tick_ms must be between 10 and 60000".into());
        }
        if self.typical_session_mins == 0 {
            return Err("queue.typical_session_mins must be at least 1".into());
        }
        for (name, v) in [
            ("speed_kmh", self.speed_kmh),
            ("energy_kwh", self.energy_kwh),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("queue.{name} must be above 0"));
            }
        }
        if !(self.twin_detour_km.is_finite() && self.twin_detour_km >= 0.0) {
            return Err("queue.twin_detour_km must not be negative".into());
        }
        if let Some(url) = &self.webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err("queue.webhook_url must be an http:// or https:// URL".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_validation() {
        let mut c = QueueConfig::default();
        c.apply_env(|k| match k {
            "CHARGEOPS_QUEUE_PLUG_IN_SECS" => Some("3".into()),
            "CHARGEOPS_QUEUE_WEBHOOK_URL" => Some("http://127.0.0.1:9/hook".into()),
            _ => None,
        })
        .expect("env");
        assert_eq!(c.plug_in_secs, 3);
        assert!(c.validate().is_ok());
        assert!(
            c.apply_env(|k| (k == "CHARGEOPS_QUEUE_MAX_WAITING").then(|| "lots".into()))
                .is_err()
        );
        c.webhook_url = Some("https://partner.example/hook".into());
        assert!(c.validate().is_ok());
        c.webhook_url = Some("ftp://x".into());
        assert!(c.validate().is_err());
    }
}
