//! deploy/base renders with kubectl's built-in kustomize into the objects the issue asks for,
//! with the hardening the Deployment promises. No cluster needed.

use std::process::Command;

use enseal_tests::peers;
use serde_json::Value;

use enseal_tests::deploy::{kustomize_base, of_kind};

#[test]
fn the_base_renders_every_object_once() {
    let docs = kustomize_base();
    let mut kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "Namespace",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    );
    for d in &docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        let cluster_scoped = matches!(
            kind,
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        );
        if !cluster_scoped {
            assert_eq!(d["metadata"]["namespace"], "enseal-system", "{kind}");
        }
    }
    let mut crds: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    crds.sort_unstable();
    assert_eq!(
        crds,
        [
            "sealedsecrets.bitnami.com",
            "sopssecrets.enseal.dev",
            "sopssecrets.isindir.github.com"
        ]
    );
}

/// The base turns SopsSecrets on, so its ClusterRole must carry exactly what that reconciler
/// calls (the key Secret is read through the Role's Secrets rule in the controller's namespace).
#[test]
fn the_base_grants_what_sopssecrets_need() {
    let docs = kustomize_base();
    let has = |kind: &str, group: &str, resource: &str, verbs: &[&str]| {
        of_kind(&docs, kind)["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .any(|r| {
                r["apiGroups"] == serde_json::json!([group])
                    && r["resources"] == serde_json::json!([resource])
                    && r["verbs"] == serde_json::json!(verbs)
            })
    };
    assert!(has(
        "ClusterRole",
        "enseal.dev",
        "sopssecrets",
        &["get", "list", "watch"]
    ));
    assert!(has(
        "ClusterRole",
        "enseal.dev",
        "sopssecrets/status",
        &["patch"]
    ));
    assert!(has(
        "Role",
        "",
        "secrets",
        &["get", "list", "watch", "create"]
    ));
}

#[test]
fn rbac_has_no_wildcards_and_no_admin_role() {
    let docs = kustomize_base();
    for kind in ["ClusterRole", "Role"] {
        let role = of_kind(&docs, kind);
        for rule in role["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs"] {
                for v in rule[field].as_array().expect(field) {
                    assert_ne!(v, "*", "{kind} has a wildcard in {field}: {rule}");
                }
            }
            for verb in rule["verbs"].as_array().unwrap() {
                assert!(
                    !matches!(
                        verb.as_str(),
                        Some("delete" | "deletecollection" | "escalate" | "bind" | "impersonate")
                    ),
                    "{kind} grants {verb}: {rule}"
                );
            }
        }
    }
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let b = of_kind(&docs, kind);
        assert_eq!(b["roleRef"]["name"], "enseal-controller", "{kind}");
        assert_eq!(b["subjects"][0]["name"], "enseal-controller");
        assert_eq!(b["subjects"][0]["namespace"], "enseal-system");
    }
}

#[test]
fn the_deployment_is_hardened_and_probed() {
    let docs = kustomize_base();
    let d = of_kind(&docs, "Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "enseal-controller");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for r in ["requests", "limits"] {
        for k in ["cpu", "memory"] {
            assert!(c["resources"][r][k].is_string(), "{r}.{k} missing");
        }
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["containerPort"].clone())
    };
    assert_eq!(port("http"), Some(Value::from(8080)));
    assert_eq!(port("metrics"), Some(Value::from(8081)));
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--listen-addr=0.0.0.0:8080"), "{args:?}");
    assert!(args.contains(&"--metrics-addr=0.0.0.0:8081"), "{args:?}");
    assert!(
        args.contains(&"--sops-age-key-secret=enseal-age-keys"),
        "{args:?}"
    );
    // SopsSecrets stay bound to their namespace (issue #13 item 8): no namespace is trusted.
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--sops-trusted-namespaces")),
        "{args:?}"
    );

    let svc = of_kind(&docs, "Service");
    let ports: Vec<(String, i64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["port"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [("http".to_owned(), 8080), ("metrics".to_owned(), 8081)]
    );
    assert_eq!(
        of_kind(&docs, "PodDisruptionBudget")["spec"]["minAvailable"],
        1
    );
}

/// The controller flags the manifests pass exist (a renamed flag would crash-loop the pods).
#[test]
fn the_deployment_args_are_flags_the_controller_knows() {
    let docs = kustomize_base();
    let c = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    // The flags (and the environment variables they read) are declared in flags.rs.
    let main = std::fs::read_to_string(peers::repo_root().join("controller/src/flags.rs"))
        .expect("reading controller/src/flags.rs");
    let help = Command::new(enseal_tests::deploy::controller_bin())
        .arg("--help")
        .output()
        .expect("running enseal-controller --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for arg in c["args"].as_array().unwrap() {
        let flag = arg.as_str().unwrap().split('=').next().unwrap();
        assert!(
            help.contains(flag),
            "{flag} is not an enseal-controller flag"
        );
    }
    for env in c["env"].as_array().unwrap() {
        let name = env["name"].as_str().unwrap();
        assert!(
            main.contains(&format!("env = \"{name}\"")),
            "{name} is not read"
        );
    }
}

// The Helm chart is checked by tests/it/helm_chart.rs with the real helm (built from source
// by tests/tools/helm.sh): the whole default render (rules, Deployment, Service, PDB, CRDs)
// equals this base's, the crds/ copies equal deploy/crds byte for byte, `helm lint --strict`
// passes, and `helm install` on the real API server runs the controller with the release's
// role. That replaced a text comparison of the templates' rule blocks made here when no helm
// binary was at hand.
