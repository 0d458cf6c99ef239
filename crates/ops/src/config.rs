//! Detection thresholds, SLAs and dispatch settings, with defaults for a real network. Tests
//! set the thresholds low (seconds instead of minutes).

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Whether the detection task runs at all.
    pub enabled: bool,
    /// A charger disconnected this long opens an `offline` case (one, however long it stays).
    pub offline_after_secs: u64,
    /// A session in charging state with no energy increase this long opens `stuck_session`.
    pub stuck_after_secs: u64,
    /// Power above this (reported, or derived from the energy register) is implausible. The
    /// chargers' own ratings are often unknown, so one cap for the network.
    pub max_power_kw: f64,
    /// This many command rejections or timeouts within the window open `command_failures`.
    pub command_failures: u32,
    pub command_failure_window_secs: u64,
    /// This many boots within the window open `reboot_loop`.
    pub reboots: u32,
    pub reboot_window_secs: u64,
    /// A problem that comes back within this long of its case closing reopens that case.
    pub reopen_window_secs: u64,
    /// SLA by priority: time from opening to resolution.
    pub sla_high_mins: u64,
    pub sla_medium_mins: u64,
    pub sla_low_mins: u64,
    /// Questions (station or business) are answered within this.
    pub sla_question_mins: u64,
    /// Assign the proposed crew to a detected case at once (the demo's dispatcher); otherwise a
    /// dispatcher confirms each proposal.
    pub auto_assign: bool,
    /// Move simulated crews along their orders (travel, repair) on the platform clock.
    pub simulate_crews: bool,
    /// How often, in real milliseconds, time-based rules are evaluated.
    pub tick_ms: u64,
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            enabled: true,
            offline_after_secs: 15 * 60,
            stuck_after_secs: 20 * 60,
            max_power_kw: 600.0,
            command_failures: 3,
            command_failure_window_secs: 3600,
            reboots: 3,
            reboot_window_secs: 15 * 60,
            reopen_window_secs: 24 * 3600,
            sla_high_mins: 4 * 60,
            sla_medium_mins: 12 * 60,
            sla_low_mins: 48 * 60,
            sla_question_mins: 60,
            auto_assign: false,
            simulate_crews: false,
            tick_ms: 1000,
        }
    }
}

impl OpsConfig {
    /// Applies `CHARGEOPS_OPS_*` variables (`CHARGEOPS_OPS_OFFLINE_AFTER_SECS`, ...), one per
    /// key, upper-cased.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        chargeops_core::apply_env!(
            self,
            var,
            "CHARGEOPS_OPS_",
            enabled: flag,
            offline_after_secs: number,
            stuck_after_secs: number,
            max_power_kw: number,
            command_failures: number,
            command_failure_window_secs: number,
            reboots: number,
            reboot_window_secs: number,
            reopen_window_secs: number,
            sla_high_mins: number,
            sla_medium_mins: number,
            sla_low_mins: number,
            sla_question_mins: number,
            auto_assign: flag,
            simulate_crews: flag,
            tick_ms: number,
        );
        Ok(())
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.max_power_kw.is_finite() && self.max_power_kw > 0.0) {
            return Err("ops.max_power_kw must be above 0".into());
        }
        if self.command_failures == 0 || self.reboots == 0 {
            return Err("ops.command_failures and ops.reboots must be at least 1".into());
        }
        if !(10..=60_000).contains(&self.tick_ms) {
            return Err("ops.tick_ms must be between 10 and 60000".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_validation() {
        let mut c = OpsConfig::default();
        c.apply_env(|k| match k {
            "CHARGEOPS_OPS_OFFLINE_AFTER_SECS" => Some("3".into()),
            "CHARGEOPS_OPS_AUTO_ASSIGN" => Some("true".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((c.offline_after_secs, c.auto_assign), (3, true));
        assert!(
            c.apply_env(|k| (k == "CHARGEOPS_OPS_REBOOTS").then(|| "many".into()))
                .is_err()
        );
        c.tick_ms = 1;
        assert!(c.validate().is_err());
    }
}
