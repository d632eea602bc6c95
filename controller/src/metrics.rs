//! Prometheus metrics, written out in the text exposition format by hand:
//! four families do not justify a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    duration: Mutex<Histogram>,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Ok(mut h) = self.duration.lock() {
            for (i, le) in BUCKETS.iter().enumerate() {
                if secs <= *le {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    pub fn error(&self, reason: &'static str) {
        if let Ok(mut e) = self.errors.lock() {
            *e.entry(reason).or_default() += 1;
        }
    }

    /// The exposition text; `newest_key` is the creation time of the key
    /// that seals (absent until one is loaded).
    pub fn render(&self, newest_key: Option<Timestamp>, keys: usize, leader: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP enseal_controller_reconciles_total SealedSecret reconciliations run.\n\
             # TYPE enseal_controller_reconciles_total counter\n\
             enseal_controller_reconciles_total {}",
            self.reconciles.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP enseal_controller_reconcile_errors_total Failed reconciliations by reason.\n\
             # TYPE enseal_controller_reconcile_errors_total counter"
        );
        if let Ok(e) = self.errors.lock() {
            for (reason, n) in e.iter() {
                let _ = writeln!(
                    out,
                    "enseal_controller_reconcile_errors_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP enseal_controller_reconcile_duration_seconds Time one reconciliation took.\n\
             # TYPE enseal_controller_reconcile_duration_seconds histogram"
        );
        if let Ok(h) = self.duration.lock() {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "enseal_controller_reconcile_duration_seconds_bucket{{le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "enseal_controller_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}\n\
                 enseal_controller_reconcile_duration_seconds_sum {}\n\
                 enseal_controller_reconcile_duration_seconds_count {}",
                h.count, h.sum, h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP enseal_controller_key_age_seconds Age of the newest sealing key.\n\
             # TYPE enseal_controller_key_age_seconds gauge"
        );
        if let Some(created) = newest_key {
            let age = Timestamp::now()
                .duration_since(created)
                .as_secs_f64()
                .max(0.0);
            let _ = writeln!(out, "enseal_controller_key_age_seconds {age}");
        }
        let _ = writeln!(
            out,
            "# HELP enseal_controller_keys Sealing keys loaded.\n\
             # TYPE enseal_controller_keys gauge\n\
             enseal_controller_keys {keys}\n\
             # HELP enseal_controller_leader Whether this replica holds the leader lease.\n\
             # TYPE enseal_controller_leader gauge\n\
             enseal_controller_leader {}",
            u8::from(leader)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_errors_labelled() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(3));
        m.reconciled(Duration::from_millis(300));
        m.error("DecryptFailed");
        let text = m.render(Some(Timestamp::now()), 1, true);
        assert!(text.contains("enseal_controller_reconciles_total 2\n"));
        assert!(text.contains("_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("_bucket{le=\"+Inf\"} 2\n"));
        assert!(
            text.contains("enseal_controller_reconcile_errors_total{reason=\"DecryptFailed\"} 1\n")
        );
        assert!(text.contains("enseal_controller_key_age_seconds "));
        assert!(text.contains("enseal_controller_leader 1"));
    }
}
