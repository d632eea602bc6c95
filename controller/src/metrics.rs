//! Prometheus metrics, written out in the text exposition format by hand:
//! a handful of families do not justify a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// An object is forgotten when it has not been reconciled for this long: a failing object is
/// retried at least hourly (the longest retry, status::Failure), so only a deleted one goes
/// this long unseen (kube-runtime does not reconcile an object once it is gone).
const FORGET_AFTER: Duration = Duration::from_secs(3 * 3600);

#[derive(Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    duration: Mutex<Histogram>,
    /// The objects whose last reconciliation failed, by (kind, namespace, name): one series
    /// each only while they fail, so the per-object metric stays as small as the trouble.
    unsynced: Mutex<BTreeMap<(String, String, String), Unsynced>>,
}

struct Unsynced {
    /// When the object stopped being in sync (its first failure after a success, as this
    /// replica saw it).
    since: Instant,
    last_attempt: Instant,
    reason: &'static str,
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

    /// The object's Secret(s) are as it says: it leaves the unsynced list.
    pub fn object_synced(&self, kind: &str, namespace: &str, name: &str) {
        if let Ok(mut u) = self.unsynced.lock() {
            u.remove(&(kind.to_owned(), namespace.to_owned(), name.to_owned()));
        }
    }

    /// The object's reconciliation failed with `reason`.
    pub fn object_failed(&self, kind: &str, namespace: &str, name: &str, reason: &'static str) {
        let now = Instant::now();
        if let Ok(mut u) = self.unsynced.lock() {
            let entry = u
                .entry((kind.to_owned(), namespace.to_owned(), name.to_owned()))
                .or_insert(Unsynced {
                    since: now,
                    last_attempt: now,
                    reason,
                });
            entry.last_attempt = now;
            entry.reason = reason;
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
        let _ = writeln!(
            out,
            "# HELP enseal_controller_object_unsynced_seconds How long an object whose last reconciliation failed has been out of sync, with that failure's reason (no series while it is in sync).\n\
             # TYPE enseal_controller_object_unsynced_seconds gauge"
        );
        if let Ok(mut u) = self.unsynced.lock() {
            let now = Instant::now();
            u.retain(|_, o| now.duration_since(o.last_attempt) < FORGET_AFTER);
            for ((kind, namespace, name), o) in u.iter() {
                let _ = writeln!(
                    out,
                    "enseal_controller_object_unsynced_seconds{{kind=\"{}\",namespace=\"{}\",name=\"{}\",reason=\"{}\"}} {}",
                    label(kind),
                    label(namespace),
                    label(name),
                    o.reason,
                    now.duration_since(o.since).as_secs_f64()
                );
            }
        }
        out
    }
}

/// A label value in the exposition format: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// deploy/monitoring's alerts and dashboard query only metrics this controller exposes (a
    /// renamed metric would silence an alert without any error).
    #[test]
    fn the_shipped_alerts_and_dashboard_name_only_exposed_metrics() {
        let exposed = Metrics::default().render(Some(Timestamp::now()), 1, true);
        let families: Vec<&str> = exposed
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for (file, text) in [
            (
                "prometheusrule.yaml",
                include_str!("../../deploy/monitoring/prometheusrule.yaml"),
            ),
            (
                "grafana-dashboard.json",
                include_str!("../../deploy/monitoring/grafana-dashboard.json"),
            ),
        ] {
            let mut named = 0;
            for (at, _) in text.match_indices("enseal_controller_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name);
                assert!(
                    families.contains(&family),
                    "{file} names {name}, which the controller does not expose ({families:?})"
                );
                named += 1;
            }
            assert!(named >= 5, "{file} names {named} metrics");
        }
    }

    #[test]
    fn an_object_has_an_unsynced_series_only_while_it_fails() {
        let m = Metrics::default();
        m.object_failed("SopsSecret", "team-a", "db", "MacMismatch");
        m.object_failed("SealedSecret", "team-b", "x\"y", "DecryptFailed");
        let text = m.render(None, 0, false);
        assert!(text.contains(
            "enseal_controller_object_unsynced_seconds{kind=\"SopsSecret\",namespace=\"team-a\",name=\"db\",reason=\"MacMismatch\"} "
        ));
        assert!(text.contains("name=\"x\\\"y\""), "{text}");
        m.object_synced("SopsSecret", "team-a", "db");
        let text = m.render(None, 0, false);
        assert!(!text.contains("team-a"));
        assert!(text.contains("team-b"));
    }

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
