//! deploy/monitoring: the PrometheusRule's alerts checked and unit-tested with the real
//! promtool (built from Go source by tests/tools/promtool.sh; scripts/test.sh exports
//! ENSEAL_PROMTOOL_BIN), and the Grafana dashboard's queries. That every metric the rules and
//! the dashboard name is one enseal-controller exposes is pinned beside the metrics, in
//! controller/src/metrics.rs.

use std::path::PathBuf;
use std::process::Command;

use enseal_tests::manifest::yaml_to_json;
use enseal_tests::peers::repo_root;

fn promtool() -> PathBuf {
    let p = std::env::var_os("ENSEAL_PROMTOOL_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "ENSEAL_PROMTOOL_BIN is not set: run `bash tests/tools/promtool.sh` (builds the \
                 pinned promtool from Go source once; scripts/test.sh does it) and set it to \
                 the path it prints"
            )
        });
    assert!(
        p.is_file(),
        "ENSEAL_PROMTOOL_BIN={} is not a file",
        p.display()
    );
    p
}

fn monitoring() -> PathBuf {
    repo_root().join("deploy/monitoring")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The PrometheusRule's `.spec` is a Prometheus rule file: promtool checks it and runs the unit
/// tests of rules_test.yaml against it (every alert fires when it should, with the labels and
/// text an on-call person reads, and stays quiet on a healthy controller).
#[test]
fn the_alerts_pass_promtools_checks_and_unit_tests() {
    let text = std::fs::read_to_string(monitoring().join("prometheusrule.yaml"))
        .expect("reading deploy/monitoring/prometheusrule.yaml");
    let rule = yaml_to_json(&text);
    assert_eq!(rule["kind"], "PrometheusRule");
    let alerts: Vec<&str> = rule["spec"]["groups"]
        .as_array()
        .expect("spec.groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    for wanted in [
        "EnsealControllerDown",
        "EnsealControllerNoLeader",
        "EnsealObjectNotSynced",
        "EnsealReconcileErrors",
        "EnsealSealingKeyRenewalOverdue",
        "EnsealSealingKeyNearExpiry",
    ] {
        assert!(alerts.contains(&wanted), "{wanted} is missing: {alerts:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    // JSON is YAML: the rule groups as promtool reads them.
    std::fs::write(&rules, serde_json::to_string_pretty(&rule["spec"]).unwrap()).unwrap();
    std::fs::copy(
        monitoring().join("rules_test.yaml"),
        dir.path().join("rules_test.yaml"),
    )
    .unwrap();
    let checked = run(Command::new(promtool())
        .args(["check", "rules"])
        .arg(&rules));
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");
    let tested = run(Command::new(promtool()).current_dir(dir.path()).args([
        "test",
        "rules",
        "rules_test.yaml",
    ]));
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The dashboard is Grafana JSON whose every query promtool can parse as PromQL (through a rule
/// file of recording rules made from them).
#[test]
fn the_dashboard_queries_are_valid_promql() {
    let text = std::fs::read_to_string(monitoring().join("grafana-dashboard.json"))
        .expect("reading deploy/monitoring/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "enseal-controller");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").iter())
        .map(|t| t["expr"].as_str().expect("expr"))
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");
    let records: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": e}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yaml");
    let groups = serde_json::json!({"groups": [{"name": "dashboard", "rules": records}]});
    std::fs::write(&file, groups.to_string()).unwrap();
    run(Command::new(promtool()).args(["check", "rules"]).arg(&file));
}
