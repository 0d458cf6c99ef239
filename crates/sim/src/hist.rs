//! A fixed-size latency histogram in microseconds, shared by many tasks without a lock.
//!
//! Buckets are log-linear: exact below 64 µs, then 32 buckets per power of two, so a
//! reported quantile is within about 3% of the true value whatever the range, and the whole
//! histogram is 896 counters (7 KiB) however many samples it holds. That is what lets a load
//! test with thousands of chargers and millions of round trips keep its memory flat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Values below this are counted exactly.
const LINEAR: u64 = 64;
/// Mantissa bits per power of two above [`LINEAR`].
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for every `u32` microsecond value (over an hour); larger ones saturate.
const BUCKETS: usize = (LINEAR + (32 - 6) * SUB) as usize;

/// A concurrent latency histogram; [`Histogram::record`] takes `&self`.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    max: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("summary", &self.summary())
            .finish()
    }
}

fn bucket_of(micros: u64) -> usize {
    let v = micros.min(u64::from(u32::MAX));
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= 6
    let mantissa = (v >> (exp - SUB_BITS)) & (SUB - 1);
    (LINEAR + u64::from(exp - 6) * SUB + mantissa) as usize
}

/// The largest value that falls in bucket `i`.
fn upper_of(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let exp = (i - LINEAR) / SUB + 6;
    let mantissa = (i - LINEAR) % SUB;
    ((SUB + mantissa + 1) << (exp - u64::from(SUB_BITS))) - 1
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.record_micros(micros);
    }

    pub fn record_micros(&self, micros: u64) {
        self.counts[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(micros, Ordering::Relaxed);
        self.sum.fetch_add(micros, Ordering::Relaxed);
    }

    /// Count, mean and quantiles at this moment.
    pub fn summary(&self) -> Summary {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let max = self.max.load(Ordering::Relaxed);
        let quantile = |q: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            // The rank of the sample at quantile q, 1-based, as HdrHistogram counts it.
            let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return upper_of(i).min(max);
                }
            }
            max
        };
        Summary {
            count,
            mean_us: self
                .sum
                .load(Ordering::Relaxed)
                .checked_div(count)
                .unwrap_or(0),
            p50_us: quantile(0.50),
            p90_us: quantile(0.90),
            p99_us: quantile(0.99),
            p999_us: quantile(0.999),
            max_us: max,
        }
    }
}

/// A histogram read out, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values() {
        for v in (0..100_000u64).chain([u64::from(u32::MAX) - 1, u64::from(u32::MAX)]) {
            let i = bucket_of(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(
                upper_of(i) >= v,
                "{v} above bucket {i} upper {}",
                upper_of(i)
            );
            if i > 0 {
                assert!(upper_of(i - 1) < v, "{v} belongs below bucket {i}");
            }
            // Relative error bound: one part in 32.
            assert!(upper_of(i) - v <= v / 32 + 1, "{v}: upper {}", upper_of(i));
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record_micros(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.max_us, 10_000);
        assert_eq!(s.mean_us, 5_000);
        for (got, want) in [(s.p50_us, 5_000), (s.p90_us, 9_000), (s.p99_us, 9_900)] {
            assert!(got >= want && got <= want + want / 32, "{got} vs {want}");
        }
    }

    #[test]
    fn empty_and_huge() {
        assert_eq!(Histogram::new().summary(), Summary::default());
        let h = Histogram::new();
        h.record(Duration::from_secs(1 << 40));
        assert_eq!(h.summary().count, 1);
    }
}
