//! The real Sealed Secrets controller (v0.40.0) and enseal-controller, one after the other, on
//! the same SealedSecrets (one that unseals, one sealed for another key) and the same HTTP
//! requests: the `sealed_secrets_controller_*` metrics they expose have the same names, types
//! and label names, and for the success and the failure the same series say the same thing,
//! so that Sealed Secrets' dashboards and alerts read enseal-controller unchanged. Counts may
//! differ (when each controller reconciles is its own business); what they mean may not.

use std::collections::{BTreeMap, BTreeSet};

use enseal_tests::cluster;
use enseal_tests::controller::*;
use serde_json::json;

/// One scrape: per family its TYPE, and every sample as (name, labels) -> value.
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: BTreeMap<(String, BTreeMap<String, String>), f64>,
}

impl Scrape {
    /// The text exposition format, only the `sealed_secrets_controller_` families (Sealed
    /// Secrets also serves Go's go_*, process_* and promhttp_* collectors, which describe the
    /// Go runtime).
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                let (Some(name), Some(ty)) = (parts.next(), parts.next()) else {
                    continue;
                };
                if name.starts_with("sealed_secrets_controller_") {
                    s.types.insert(name.to_owned(), ty.to_owned());
                }
                continue;
            }
            if line.starts_with('#') || !line.starts_with("sealed_secrets_controller_") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("closing brace"))),
                None => (series, BTreeMap::new()),
            };
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            s.samples.insert((name.to_owned(), labels), value);
        }
        s
    }

    /// Per family (histogram samples under their family's name), the label-name sets of its
    /// series, `le` aside.
    fn label_names(&self) -> BTreeMap<String, BTreeSet<Vec<String>>> {
        let mut out: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (name, labels) in self.samples.keys() {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|f| self.types.get(*f).map(String::as_str) == Some("histogram"))
                })
                .unwrap_or(name);
            let names: Vec<String> = labels.keys().filter(|k| *k != "le").cloned().collect();
            out.entry(family.to_owned()).or_default().insert(names);
        }
        out
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_owned(), labels)).copied()
    }
}

/// `a="x",b="y\"z"` (the exposition format's escapes: \\, \", \n).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end..].trim_start_matches(',');
    }
    out
}

/// Scrapes until `ready` accepts the scrape (the controller has reconciled both objects).
async fn scrape_until(get: impl Fn() -> String, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = String::new();
    let found = cluster::eventually(WAIT, || {
        let text = get();
        last.clone_from(&text);
        let s = Scrape::parse(&text);
        std::future::ready(ready(&s).then_some(s))
    })
    .await;
    found.unwrap_or_else(|| panic!("the metrics never showed both objects:\n{last}"))
}

/// Both objects reconciled: one Synced=True, one Synced=False in condition_info, and the
/// failure counted under Sealed Secrets' `unseal` reason.
fn both_seen(ns: &str) -> impl Fn(&Scrape) -> bool + '_ {
    move |s: &Scrape| {
        let cond = |name: &str, instance: &str| {
            s.value(
                "sealed_secrets_controller_condition_info",
                &[
                    ("condition", "Synced"),
                    ("name", name),
                    ("namespace", ns),
                    ("ss_app_kubernetes_io_instance", instance),
                ],
            )
        };
        cond("good", "shop") == Some(1.0)
            && cond("bad", "") == Some(-1.0)
            && s.value(
                "sealed_secrets_controller_unseal_errors_total",
                &[("namespace", ns), ("reason", "unseal")],
            )
            .is_some_and(|n| n >= 1.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_secrets_metrics_have_the_same_names_labels_and_meaning() {
    let (ns, client) = setup("ss-metrics").await;
    let n = ns.name();
    let dir = tempfile::tempdir().unwrap();

    let mut real = RealController::start(&client, n, &[]).await;
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, real.cert_pem()).unwrap();
    let mut good = kubeseal(&cert, "strict", &secret_json(n, "good", &[("k", "v")]));
    good["metadata"]["labels"] = json!({ "app.kubernetes.io/instance": "shop" });
    create_ss(&client, n, &good).await;
    // Sealed for a key neither controller has: unsealing fails.
    let stranger = TestKey::generate(2048);
    create_ss(
        &client,
        n,
        &kubeseal(
            &stranger.cert_path(),
            "strict",
            &secret_json(n, "bad", &[("k", "v")]),
        ),
    )
    .await;

    // The same requests to both: a certificate fetch and a verification.
    let good_json = good.to_string();
    let requests = |port: u16| {
        assert_eq!(http("GET", port, "/v1/cert.pem", b"").unwrap().0, 200);
        assert_eq!(
            http("POST", port, "/v1/verify", good_json.as_bytes())
                .unwrap()
                .0,
            200
        );
    };
    requests(real.http_port);
    let real_scrape = scrape_until(|| real.metrics(), both_seen(n)).await;
    real.stop();

    let ctl = Controller::start(Options::new(n)).await;
    requests(ctl.http_port);
    let ours = scrape_until(|| ctl.metrics(), both_seen(n)).await;

    // Names and types: every family Sealed Secrets defines (pkg/controller/metrics.go) shows up
    // in this scenario, so the comparison below covers them all.
    let families: Vec<&str> = real_scrape.types.keys().map(String::as_str).collect();
    assert_eq!(
        families,
        [
            "sealed_secrets_controller_build_info",
            "sealed_secrets_controller_condition_info",
            "sealed_secrets_controller_http_request_duration_seconds",
            "sealed_secrets_controller_http_requests_total",
            "sealed_secrets_controller_unseal_errors_total",
            "sealed_secrets_controller_unseal_requests_total",
        ]
    );
    assert_eq!(
        ours.types, real_scrape.types,
        "families and their types differ (left: enseal, right: Sealed Secrets)"
    );
    // Label names per family.
    assert_eq!(
        ours.label_names(),
        real_scrape.label_names(),
        "label names differ (left: enseal, right: Sealed Secrets)"
    );
    // The series a dashboard reads, with the same meaning on both.
    for s in [&real_scrape, &ours] {
        assert!(
            s.value("sealed_secrets_controller_unseal_requests_total", &[])
                .is_some_and(|v| v >= 2.0),
            "{s:?}"
        );
        for (path, method) in [("/v1/cert.pem", "get"), ("/v1/verify", "post")] {
            assert!(
                s.value(
                    "sealed_secrets_controller_http_requests_total",
                    &[("code", "200"), ("method", method), ("path", path)],
                )
                .is_some_and(|v| v >= 1.0),
                "{path}: {s:?}"
            );
            assert!(
                s.value(
                    "sealed_secrets_controller_http_request_duration_seconds_count",
                    &[("method", method), ("path", path)],
                )
                .is_some_and(|v| v >= 1.0),
                "{path}: {s:?}"
            );
        }
        assert_eq!(
            s.value(
                "sealed_secrets_controller_unseal_errors_total",
                &[("namespace", n), ("reason", "unmanaged")],
            ),
            None,
            "no Secret was someone else's"
        );
    }
}
