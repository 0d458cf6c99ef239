//! The gateway's counters, its open-connections gauge and the message handling histogram, as
//! `prometheus-client` metrics; the API registers them for `/metrics`. Every one is a plain
//! atomic, so the per-message paths that count take no lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the message handling histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A histogram of fixed buckets on atomics, encoded by `prometheus-client`. Its own
/// `Histogram` takes a lock on every observation, and this one is observed for every CALL a
/// charger sends. Clones share the counts.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    inner: Arc<HistogramCounts>,
}

#[derive(Debug, Default)]
struct HistogramCounts {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let c = &self.inner;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            c.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        c.count.fetch_add(1, Ordering::Relaxed);
        c.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.inner;
        // Per-bucket counts; the encoder makes them cumulative and adds `+Inf` (the count).
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&c.buckets)
            .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
            .collect();
        let count = c.count.load(Ordering::Relaxed);
        let sum = c.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// What [`Metrics::inc`] counts up: a counter or the open-connections gauge.
pub trait Inc {
    fn inc_one(&self);
}

impl Inc for Counter {
    fn inc_one(&self) {
        self.inc();
    }
}

impl Inc for Gauge<u64, AtomicU64> {
    fn inc_one(&self) {
        self.inc();
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: Gauge<u64, AtomicU64>,
    pub connections_total: Counter,
    pub upgrades_rejected_total: Counter,
    pub messages_received_total: Counter,
    pub messages_sent_total: Counter,
    pub call_errors_sent_total: Counter,
    pub commands_total: Counter,
    pub commands_timed_out_total: Counter,
    pub handling: Histogram,
}

impl Metrics {
    pub fn inc(metric: &impl Inc) {
        metric.inc_one();
    }

    pub fn dec(gauge: &Gauge<u64, AtomicU64>) {
        gauge.dec();
    }

    /// Registers every metric (shared with the registry, not copied) in the order `/metrics`
    /// lists them. Counters are named without `_total`: the encoder adds it.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "chargeops_ocpp_connections",
            "OCPP connections open now",
            self.connections_open.clone(),
        );
        let counters = [
            (
                "chargeops_ocpp_connections",
                "OCPP connections accepted",
                &self.connections_total,
            ),
            (
                "chargeops_ocpp_upgrades_rejected",
                "WebSocket upgrades refused (identity, credentials, policy)",
                &self.upgrades_rejected_total,
            ),
            (
                "chargeops_ocpp_messages_received",
                "OCPP frames received",
                &self.messages_received_total,
            ),
            (
                "chargeops_ocpp_messages_sent",
                "OCPP frames sent",
                &self.messages_sent_total,
            ),
            (
                "chargeops_ocpp_call_errors_sent",
                "CALLERROR frames sent to chargers",
                &self.call_errors_sent_total,
            ),
            (
                "chargeops_ocpp_commands",
                "Commands sent to chargers",
                &self.commands_total,
            ),
            (
                "chargeops_ocpp_commands_timed_out",
                "Commands chargers did not answer in time",
                &self.commands_timed_out_total,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "chargeops_ocpp_message_handling_seconds",
            "Time from receiving a charger's CALL to sending the answer",
            self.handling.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_keeps_the_names_types_and_buckets() {
        let m = Metrics::default();
        Metrics::inc(&m.connections_total);
        Metrics::inc(&m.connections_open);
        Metrics::inc(&m.connections_open);
        Metrics::dec(&m.connections_open);
        Metrics::inc(&m.messages_received_total);
        m.handling.observe(Duration::from_micros(300));
        m.handling.observe(Duration::from_millis(2));
        m.handling.observe(Duration::from_secs(9));
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).expect("encode");
        for want in [
            "# TYPE chargeops_ocpp_connections gauge\nchargeops_ocpp_connections 1\n",
            "# TYPE chargeops_ocpp_connections_total counter\nchargeops_ocpp_connections_total 1\n",
            "chargeops_ocpp_upgrades_rejected_total 0\n",
            "chargeops_ocpp_messages_received_total 1\n",
            "chargeops_ocpp_messages_sent_total 0\n",
            "chargeops_ocpp_call_errors_sent_total 0\n",
            "chargeops_ocpp_commands_total 0\n",
            "# TYPE chargeops_ocpp_commands_timed_out_total counter\n",
            "# TYPE chargeops_ocpp_message_handling_seconds histogram\n\
             chargeops_ocpp_message_handling_seconds_bucket{le=\"0.0005\"} 1\n\
             chargeops_ocpp_message_handling_seconds_bucket{le=\"0.001\"} 1\n\
             chargeops_ocpp_message_handling_seconds_bucket{le=\"0.0025\"} 2\n",
            "chargeops_ocpp_message_handling_seconds_bucket{le=\"1\"} 2\n\
             chargeops_ocpp_message_handling_seconds_bucket{le=\"5\"} 2\n\
             chargeops_ocpp_message_handling_seconds_bucket{le=\"+Inf\"} 3\n\
             chargeops_ocpp_message_handling_seconds_sum 9.0023\n\
             chargeops_ocpp_message_handling_seconds_count 3\n",
        ] {
            assert!(out.contains(want), "{want:?} not in\n{out}");
        }
        assert!(!out.contains("_total_total"), "{out}");
    }
}
