//! Prometheus metrics, written out in the text exposition format by hand:
//! a handful of families do not justify a metrics framework.
//!
//! Two sets: enseal's own (`enseal_controller_*`) and Sealed Secrets' (`sealed_secrets_controller_*`,
//! its pkg/controller/metrics.go at v0.40.0) with the same names, labels and meanings, so that
//! dashboards and alerts made for Sealed Secrets keep working after the switch.

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

/// Sealed Secrets' `prometheus.DefBuckets`, for its HTTP request histogram.
const HTTP_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One `sealed_secrets_controller_condition_info` series: a condition of one SealedSecret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionRow {
    pub namespace: String,
    pub name: String,
    /// The condition's type (`Synced`).
    pub condition: String,
    /// The SealedSecret's `app.kubernetes.io/instance` label (empty when absent).
    pub instance: String,
    /// `True`, `False` or anything else (Unknown).
    pub status: String,
}

type ConditionSource = Box<dyn Fn() -> Vec<ConditionRow> + Send + Sync>;

#[derive(Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    /// Sealed Secrets' `unseal_requests_total`: SealedSecret reconciliations started.
    unseal_requests: AtomicU64,
    /// Sealed Secrets' `unseal_errors_total` by (reason, namespace).
    unseal_errors: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Sealed Secrets' `http_requests_total` by (path, code, method).
    http_requests: Mutex<BTreeMap<(&'static str, u16, String), u64>>,
    /// Sealed Secrets' `http_request_duration_seconds` by (path, method).
    http_durations: Mutex<BTreeMap<(&'static str, String), HttpHistogram>>,
    /// Where `condition_info` reads the SealedSecrets' conditions; unset with
    /// `--metrics-omit-secret-labels`.
    conditions: std::sync::OnceLock<ConditionSource>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    duration: Mutex<Histogram>,
    /// The objects whose last reconciliation failed, by (kind, namespace, name): one series
    /// each only while they fail, so the per-object metric stays as small as the trouble.
    unsynced: Mutex<BTreeMap<(String, String, String), Unsynced>>,
    /// With --shard-replicas: the members of the view this replica acts on (0 while it acts
    /// on none). Unset without it, and the family is left out.
    shard_members: std::sync::OnceLock<AtomicU64>,
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

#[derive(Default)]
struct HttpHistogram {
    counts: [u64; HTTP_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Why a SealedSecret failed, in Sealed Secrets' words (the `reason` label of
/// `unseal_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsealError {
    /// Decrypting or rendering failed (`unseal`).
    Unseal,
    /// Reading or writing the Secret failed (`update`).
    Update,
    /// A Secret of that name exists and is not the SealedSecret's (`unmanaged`).
    Unmanaged,
    /// Writing the SealedSecret's status failed (`status`).
    Status,
}

impl UnsealError {
    fn label(self) -> &'static str {
        match self {
            UnsealError::Unseal => "unseal",
            UnsealError::Update => "update",
            UnsealError::Unmanaged => "unmanaged",
            UnsealError::Status => "status",
        }
    }
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

    /// A SealedSecret reconciliation started (Sealed Secrets' `unseal_requests_total`).
    pub fn unseal_requested(&self) {
        self.unseal_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A SealedSecret in `namespace` failed (Sealed Secrets' `unseal_errors_total`).
    pub fn unseal_failed(&self, reason: UnsealError, namespace: &str) {
        if let Ok(mut e) = self.unseal_errors.lock() {
            *e.entry((reason.label(), namespace.to_owned())).or_default() += 1;
        }
    }

    /// One request to one of the public paths Sealed Secrets instruments.
    pub fn http_request(&self, path: &'static str, method: &str, code: u16, took: Duration) {
        // promhttp's label for the standard methods: lower case.
        let method = method.to_ascii_lowercase();
        if let Ok(mut r) = self.http_requests.lock() {
            *r.entry((path, code, method.clone())).or_default() += 1;
        }
        if let Ok(mut d) = self.http_durations.lock() {
            let h = d.entry((path, method)).or_default();
            let secs = took.as_secs_f64();
            for (i, le) in HTTP_BUCKETS.iter().enumerate() {
                if secs <= *le {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// Where `condition_info` reads conditions from (set once, at start).
    pub fn set_condition_source(&self, source: ConditionSource) {
        let _ = self.conditions.set(source);
    }

    /// The replica acts on a view of `members` (0: on none, its view changing or its member
    /// Lease not renewed).
    pub fn shard_members(&self, members: usize) {
        self.shard_members
            .get_or_init(AtomicU64::default)
            .store(members as u64, Ordering::Relaxed);
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
        if let Some(members) = self.shard_members.get() {
            let _ = writeln!(
                out,
                "# HELP enseal_controller_shard_members Replicas sharing the objects in the view this replica acts on (0: it acts on none now).\n\
                 # TYPE enseal_controller_shard_members gauge\n\
                 enseal_controller_shard_members {}",
                members.load(Ordering::Relaxed)
            );
        }
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
        self.render_sealed_secrets(&mut out);
        out
    }

    /// Sealed Secrets' families. As client_golang does, a family with no series yet is left
    /// out entirely.
    fn render_sealed_secrets(&self, out: &mut String) {
        const NS: &str = "sealed_secrets_controller";
        let _ = writeln!(
            out,
            "# HELP {NS}_build_info Build information.\n\
             # TYPE {NS}_build_info gauge\n\
             {NS}_build_info{{revision=\"{}\"}} 1",
            label(env!("CARGO_PKG_VERSION"))
        );
        let _ = writeln!(
            out,
            "# HELP {NS}_unseal_requests_total Total number of sealed secret unseal requests\n\
             # TYPE {NS}_unseal_requests_total counter\n\
             {NS}_unseal_requests_total {}",
            self.unseal_requests.load(Ordering::Relaxed)
        );
        if let Ok(e) = self.unseal_errors.lock() {
            if !e.is_empty() {
                let _ = writeln!(
                    out,
                    "# HELP {NS}_unseal_errors_total Total number of sealed secret unseal errors by reason\n\
                     # TYPE {NS}_unseal_errors_total counter"
                );
            }
            for ((reason, namespace), n) in e.iter() {
                let _ = writeln!(
                    out,
                    "{NS}_unseal_errors_total{{namespace=\"{}\",reason=\"{reason}\"}} {n}",
                    label(namespace)
                );
            }
        }
        let rows = self.conditions.get().map(|f| f()).unwrap_or_default();
        if !rows.is_empty() {
            let _ = writeln!(
                out,
                "# HELP {NS}_condition_info Current SealedSecret condition status. Values are -1 (false), 0 (unknown or absent), 1 (true)\n\
                 # TYPE {NS}_condition_info gauge"
            );
        }
        for r in rows {
            let value = match r.status.as_str() {
                "True" => 1,
                "False" => -1,
                _ => 0,
            };
            let _ = writeln!(
                out,
                "{NS}_condition_info{{condition=\"{}\",name=\"{}\",namespace=\"{}\",ss_app_kubernetes_io_instance=\"{}\"}} {value}",
                label(&r.condition),
                label(&r.name),
                label(&r.namespace),
                label(&r.instance)
            );
        }
        if let Ok(r) = self.http_requests.lock() {
            if !r.is_empty() {
                let _ = writeln!(
                    out,
                    "# HELP {NS}_http_requests_total A counter for requests to the wrapped handler.\n\
                     # TYPE {NS}_http_requests_total counter"
                );
            }
            for ((path, code, method), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "{NS}_http_requests_total{{code=\"{code}\",method=\"{}\",path=\"{path}\"}} {n}",
                    label(method)
                );
            }
        }
        if let Ok(d) = self.http_durations.lock() {
            if !d.is_empty() {
                let _ = writeln!(
                    out,
                    "# HELP {NS}_http_request_duration_seconds A histogram of latencies for requests.\n\
                     # TYPE {NS}_http_request_duration_seconds histogram"
                );
            }
            for ((path, method), h) in d.iter() {
                let labels = format!("method=\"{}\",path=\"{path}\"", label(method));
                for (i, le) in HTTP_BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{NS}_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "{NS}_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                     {NS}_http_request_duration_seconds_sum{{{labels}}} {}\n\
                     {NS}_http_request_duration_seconds_count{{{labels}}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
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
    fn sealed_secrets_families_have_its_names_and_labels() {
        let m = Metrics::default();
        let text = m.render(None, 0, false);
        // Before anything happened: build info and the request counter only.
        assert!(text.contains("sealed_secrets_controller_build_info{revision=\""));
        assert!(text.contains("sealed_secrets_controller_unseal_requests_total 0\n"));
        assert!(!text.contains("unseal_errors_total"), "{text}");
        m.unseal_requested();
        m.unseal_failed(UnsealError::Unseal, "team-a");
        m.unseal_failed(UnsealError::Unseal, "team-a");
        m.unseal_failed(UnsealError::Unmanaged, "team-b");
        m.http_request("/v1/cert.pem", "GET", 200, Duration::from_millis(2));
        m.set_condition_source(Box::new(|| {
            vec![ConditionRow {
                namespace: "team-a".into(),
                name: "db".into(),
                condition: "Synced".into(),
                instance: "app".into(),
                status: "False".into(),
            }]
        }));
        let text = m.render(None, 0, false);
        for line in [
            "sealed_secrets_controller_unseal_requests_total 1\n",
            "sealed_secrets_controller_unseal_errors_total{namespace=\"team-a\",reason=\"unseal\"} 2\n",
            "sealed_secrets_controller_unseal_errors_total{namespace=\"team-b\",reason=\"unmanaged\"} 1\n",
            "sealed_secrets_controller_condition_info{condition=\"Synced\",name=\"db\",namespace=\"team-a\",ss_app_kubernetes_io_instance=\"app\"} -1\n",
            "sealed_secrets_controller_http_requests_total{code=\"200\",method=\"get\",path=\"/v1/cert.pem\"} 1\n",
            "sealed_secrets_controller_http_request_duration_seconds_bucket{method=\"get\",path=\"/v1/cert.pem\",le=\"0.005\"} 1\n",
            "sealed_secrets_controller_http_request_duration_seconds_bucket{method=\"get\",path=\"/v1/cert.pem\",le=\"1\"} 1\n",
            "sealed_secrets_controller_http_request_duration_seconds_count{method=\"get\",path=\"/v1/cert.pem\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
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

    #[test]
    fn the_shard_gauge_is_there_only_with_sharding() {
        let m = Metrics::default();
        assert!(!m.render(None, 0, false).contains("shard_members"));
        m.shard_members(3);
        assert!(m
            .render(None, 0, false)
            .contains("\nenseal_controller_shard_members 3\n"));
    }
}
