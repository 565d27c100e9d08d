//! Why this exists: operators ask "how long do jobs take, and how long do they wait?" as
//! percentiles, which Prometheus computes from histogram buckets (`histogram_quantile`), not
//! from a sum and a count. A [`Histogram`] is fixed buckets of atomics: one atomic add per
//! observation, no metrics dependency.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket bounds in seconds for job durations and queue waits: from a tiny-model job on a GPU
/// (a fraction of a second) to a 1024² batch on a CPU (tens of minutes).
pub const SECONDS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A Prometheus histogram over [`SECONDS`].
#[derive(Default)]
pub struct Histogram {
    /// Observations `<=` each bound (not cumulative; summed when rendered).
    buckets: [AtomicU64; SECONDS.len()],
    count: AtomicU64,
    micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = SECONDS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Appends the exposition of metric `name` with `help`.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in SECONDS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inf_counts_everything() {
        let h = Histogram::default();
        for ms in [50, 300, 300, 7_200_000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut s = String::new();
        h.render(&mut s, "x_seconds", "x");
        assert!(s.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"0.5\"} 3\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"3600\"} 3\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"+Inf\"} 4\n"), "{s}");
        assert!(
            s.contains("x_seconds_count 4\n") && s.contains("# TYPE x_seconds histogram"),
            "{s}"
        );
    }
}
