//! Gateway counters, rendered in Prometheus text format by the API.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the message handling histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub upgrades_rejected_total: AtomicU64,
    pub messages_received_total: AtomicU64,
    pub messages_sent_total: AtomicU64,
    pub call_errors_sent_total: AtomicU64,
    pub commands_total: AtomicU64,
    pub commands_timed_out_total: AtomicU64,
    pub handling: Histogram,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String) {
        let counters: [(&str, &str, &str, &AtomicU64); 8] = [
            (
                "chargeops_ocpp_connections",
                "gauge",
                "OCPP connections open now",
                &self.connections_open,
            ),
            (
                "chargeops_ocpp_connections_total",
                "counter",
                "OCPP connections accepted",
                &self.connections_total,
            ),
            (
                "chargeops_ocpp_upgrades_rejected_total",
                "counter",
                "WebSocket upgrades refused (identity, credentials, policy)",
                &self.upgrades_rejected_total,
            ),
            (
                "chargeops_ocpp_messages_received_total",
                "counter",
                "OCPP frames received",
                &self.messages_received_total,
            ),
            (
                "chargeops_ocpp_messages_sent_total",
                "counter",
                "OCPP frames sent",
                &self.messages_sent_total,
            ),
            (
                "chargeops_ocpp_call_errors_sent_total",
                "counter",
                "CALLERROR frames sent to chargers",
                &self.call_errors_sent_total,
            ),
            (
                "chargeops_ocpp_commands_total",
                "counter",
                "Commands sent to chargers",
                &self.commands_total,
            ),
            (
                "chargeops_ocpp_commands_timed_out_total",
                "counter",
                "Commands chargers did not answer in time",
                &self.commands_timed_out_total,
            ),
        ];
        for (name, kind, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        self.handling.render(
            "chargeops_ocpp_message_handling_seconds",
            "Time from receiving a charger's CALL to sending the answer",
            out,
        );
    }
}
