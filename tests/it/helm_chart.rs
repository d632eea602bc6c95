//! The Helm chart deploy/helm/enseal, rendered and installed by the real helm (built from
//! source by tests/tools/helm.sh): it lints clean, renders with default values the same objects
//! as `kubectl kustomize deploy/base` (up to the documented differences below), honours its
//! values, and as installed by `helm install` on the real API server runs the controller with
//! nothing but its ServiceAccount's token.
//!
//! Documented differences from deploy/base (values.yaml says the same):
//! - Helm's labels (app.kubernetes.io/instance, managed-by, version, helm.sh/chart) on every
//!   templated object, and app.kubernetes.io/instance in every selector, so that two releases
//!   never select each other's pods;
//! - no Namespace object (`helm install --create-namespace` makes it);
//! - the CRDs are verbatim copies of deploy/crds (Helm never templates crds/), so they lack the
//!   app.kubernetes.io/part-of label that kustomize adds to the base's copy.

use std::collections::BTreeMap;

use enseal_tests::deploy::{chart_dir, helm, helm_template, kustomize_base, of_kind, run_helm};
use enseal_tests::{cluster, peers};
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};

/// The release name the README installs with; it names every object as deploy/base does.
const RELEASE: &str = "enseal-controller";
const NAMESPACE: &str = "enseal-system";

const HELM_LABELS: [&str; 4] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
];

/// `v` without Helm's labels, wherever they appear (metadata labels, selectors, pod template
/// labels, affinity selectors). No other field of these objects uses these keys.
fn without_helm_labels(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for l in HELM_LABELS {
                    m.remove(l);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

fn key(d: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&d["kind"]),
        s(&d["metadata"]["namespace"]),
        s(&d["metadata"]["name"]),
    )
}

fn by_key(docs: Vec<Value>) -> BTreeMap<(String, String, String), Value> {
    let mut map = BTreeMap::new();
    for d in docs {
        let k = key(&d);
        assert!(map.insert(k.clone(), d).is_none(), "{k:?} rendered twice");
    }
    map
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

fn default_render() -> Vec<Value> {
    helm_template(RELEASE, NAMESPACE, &[])
}

fn args_of(docs: &[Value]) -> Vec<String> {
    of_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_owned())
        .collect()
}

fn rules_of(docs: &[Value], kind: &str) -> Value {
    of_kind(docs, kind)["rules"].clone()
}

#[test]
fn helm_lint_strict_passes() {
    let chart = chart_dir();
    let out = run_helm(["lint".as_ref(), "--strict".as_ref(), chart.as_os_str()]);
    assert!(out.contains("0 chart(s) failed"), "{out}");
    // With the non-default branches of the templates taken too.
    let out = run_helm([
        "lint".as_ref(),
        "--strict".as_ref(),
        chart.as_os_str(),
        "--set".as_ref(),
        "sopsSecrets.enabled=false,podDisruptionBudget.enabled=false,serviceAccount.create=false,\
         extraArgs={--key-renew-period=0},nodeSelector.disk=ssd,podAnnotations.a=b,\
         imagePullSecrets[0].name=regcred,fullnameOverride=x"
            .as_ref(),
    ]);
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

/// Everything `helm template` renders with the default values equals what kustomize renders
/// from deploy/base, object by object, once Helm's labels are set aside.
#[test]
fn the_default_render_is_the_kustomize_base() {
    let chart = by_key(
        default_render()
            .into_iter()
            .map(without_helm_labels)
            .collect(),
    );
    let base = by_key(
        kustomize_base()
            .into_iter()
            .filter(|d| d["kind"] != "Namespace")
            .map(|mut d| {
                if d["kind"] == "CustomResourceDefinition" {
                    let labels = d["metadata"]["labels"].as_object_mut().expect("labels");
                    assert_eq!(
                        labels.remove("app.kubernetes.io/part-of"),
                        Some(json!("enseal"))
                    );
                    if labels.is_empty() {
                        d["metadata"].as_object_mut().unwrap().remove("labels");
                    }
                }
                d
            })
            .collect(),
    );
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        base.keys().collect::<Vec<_>>(),
        "the chart and the base render different objects (kind, namespace, name)"
    );
    for (k, b) in &base {
        let c = &chart[k];
        assert!(
            c == b,
            "{k:?} differs\n--- helm template ---\n{}\n--- kubectl kustomize ---\n{}",
            pretty(c),
            pretty(b)
        );
    }
    assert_eq!(base.len(), 11, "{:?}", base.keys());
}

/// The CRDs in crds/ are verbatim copies of deploy/crds (the base's source) and are what
/// `--include-crds` renders.
#[test]
fn the_chart_crds_are_deploy_crds() {
    let root = peers::repo_root();
    for crd in [
        "bitnami.com_sealedsecrets.yaml",
        "enseal.dev_sopssecrets.yaml",
        "isindir.github.com_sopssecrets.yaml",
    ] {
        let read = |p: String| {
            std::fs::read_to_string(root.join(&p)).unwrap_or_else(|e| panic!("reading {p}: {e}"))
        };
        assert_eq!(
            read(format!("deploy/helm/enseal/crds/{crd}")),
            read(format!("deploy/crds/{crd}")),
            "{crd}"
        );
    }
    let names: Vec<String> = default_render()
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "sealedsecrets.bitnami.com",
            "sopssecrets.enseal.dev",
            "sopssecrets.isindir.github.com"
        ]
    );
}

/// What the label differences amount to: Helm's labels everywhere, and selectors that agree
/// with each other and with the pod template.
#[test]
fn helm_labels_and_selectors_are_consistent() {
    let docs = default_render();
    for d in docs
        .iter()
        .filter(|d| d["kind"] != "CustomResourceDefinition")
    {
        let labels = &d["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/managed-by"],
            "Helm",
            "{:?}",
            key(d)
        );
        assert_eq!(
            labels["app.kubernetes.io/instance"],
            RELEASE,
            "{:?}",
            key(d)
        );
        assert_eq!(labels["app.kubernetes.io/name"], "enseal-controller");
        assert_eq!(labels["app.kubernetes.io/part-of"], "enseal");
        assert_eq!(labels["helm.sh/chart"], "enseal-0.1.0");
    }
    let selector = json!({
        "app.kubernetes.io/name": "enseal-controller",
        "app.kubernetes.io/instance": RELEASE,
    });
    let dep = of_kind(&docs, "Deployment");
    assert_eq!(dep["spec"]["selector"]["matchLabels"], selector);
    assert_eq!(dep["spec"]["template"]["metadata"]["labels"], selector);
    assert_eq!(
        dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
            ["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["labelSelector"]["matchLabels"],
        selector
    );
    assert_eq!(of_kind(&docs, "Service")["spec"]["selector"], selector);
    assert_eq!(
        of_kind(&docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        selector
    );
}

/// The flags the chart passes, with extra args too, exist (a renamed flag would crash-loop).
#[test]
fn the_chart_args_are_flags_the_controller_knows() {
    let docs = helm_template(
        RELEASE,
        NAMESPACE,
        &[
            "--set",
            "extraArgs={--key-renew-period=0,--watch-namespace=apps}",
        ],
    );
    let help = std::process::Command::new(enseal_tests::deploy::controller_bin())
        .arg("--help")
        .output()
        .expect("running enseal-controller --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let args = args_of(&docs);
    assert_eq!(args.len(), 6, "{args:?}");
    for arg in &args {
        let flag = arg.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag} <")),
            "{flag} is not an enseal-controller flag"
        );
    }
}

#[test]
fn values_override_replicas_image_and_args() {
    let docs = helm_template(
        RELEASE,
        NAMESPACE,
        &[
            "--set",
            "replicas=3,image.repository=registry.example/enseal,image.tag=1.2.3,\
             image.pullPolicy=Always,logFormat=text",
            "--set",
            "extraArgs={--key-renew-period=0,--watch-namespace=apps}",
            "--set",
            "sopsSecrets.ageKeySecret=my-age-keys",
        ],
    );
    let dep = of_kind(&docs, "Deployment");
    assert_eq!(dep["spec"]["replicas"], 3);
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/enseal:1.2.3");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        args_of(&docs),
        [
            "--listen-addr=0.0.0.0:8080",
            "--metrics-addr=0.0.0.0:8081",
            "--log-format=text",
            "--sops-age-key-secret=my-age-keys",
            "--key-renew-period=0",
            "--watch-namespace=apps",
        ]
    );
    assert_eq!(
        dep["metadata"]["labels"]["app.kubernetes.io/version"], "1.2.3",
        "the version label follows the image tag"
    );
    // Without a tag the image is the chart's appVersion.
    let docs = helm_template(RELEASE, NAMESPACE, &[]);
    assert_eq!(
        of_kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/enseal/enseal-controller:0.1.0"
    );
}

/// SopsSecrets are bound to their namespace by default (issue #13 item 8): no namespace is
/// trusted unless listed in sopsSecrets.trustedNamespaces, which becomes one flag.
#[test]
fn trusted_namespaces_are_none_by_default_and_listed_in_one_flag() {
    let trusting = |args: &[String]| {
        args.iter()
            .filter(|a| a.starts_with("--sops-trusted-namespaces"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(trusting(&args_of(&default_render())).is_empty());
    let listed = helm_template(
        RELEASE,
        NAMESPACE,
        &["--set", "sopsSecrets.trustedNamespaces={team-a,team-b}"],
    );
    assert_eq!(
        trusting(&args_of(&listed)),
        ["--sops-trusted-namespaces=team-a,team-b"]
    );
    let all = helm_template(
        RELEASE,
        NAMESPACE,
        &["--set-json", "sopsSecrets.trustedNamespaces=[\"*\"]"],
    );
    assert_eq!(trusting(&args_of(&all)), ["--sops-trusted-namespaces=*"]);
}

/// sopsSecrets.enabled=false drops the flag and exactly the two enseal.dev rules; nothing else
/// changes (the CRD stays: Helm installs crds/ unconditionally).
#[test]
fn disabling_sopssecrets_drops_its_flag_and_rules_only() {
    let on = default_render();
    let off = helm_template(RELEASE, NAMESPACE, &["--set", "sopsSecrets.enabled=false"]);
    assert!(
        !args_of(&off)
            .iter()
            .any(|a| a.starts_with("--sops-age-key-secret")),
        "{:?}",
        args_of(&off)
    );
    let mut expected = rules_of(&on, "ClusterRole");
    expected
        .as_array_mut()
        .unwrap()
        .retain(|r| r["apiGroups"] != json!(["enseal.dev"]));
    assert_eq!(
        rules_of(&on, "ClusterRole").as_array().unwrap().len(),
        expected.as_array().unwrap().len() + 2
    );
    assert_eq!(rules_of(&off, "ClusterRole"), expected);
    assert_eq!(rules_of(&off, "Role"), rules_of(&on, "Role"));
    let strip = |docs: Vec<Value>| -> Vec<Value> {
        docs.into_iter()
            .filter(|d| !matches!(d["kind"].as_str(), Some("Deployment" | "ClusterRole")))
            .collect()
    };
    assert_eq!(strip(off), strip(on));
}

/// --namespace moves every namespaced object and every binding's subject there, and the
/// release name renames the objects (cluster-scoped ones included, so releases never clash).
#[test]
fn namespace_and_release_name_are_followed() {
    let docs = helm_template("prod", "secrets", &[]);
    for d in &docs {
        let kind = d["kind"].as_str().unwrap();
        let name = d["metadata"]["name"].as_str().unwrap();
        match kind {
            "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding" => {
                assert!(d["metadata"].get("namespace").is_none(), "{kind}")
            }
            _ => assert_eq!(d["metadata"]["namespace"], "secrets", "{kind}"),
        }
        match kind {
            "CustomResourceDefinition" => {}
            // Named as Sealed Secrets names its Service, whatever the release.
            "Service" => assert_eq!(name, "sealed-secrets-controller"),
            _ => assert_eq!(name, "prod-enseal", "{kind}"),
        }
        if let Some(subjects) = d.get("subjects") {
            assert_eq!(
                subjects,
                &json!([{"kind": "ServiceAccount", "name": "prod-enseal", "namespace": "secrets"}])
            );
        }
        if let Some(role_ref) = d.get("roleRef") {
            assert_eq!(role_ref["name"], "prod-enseal");
        }
    }
    let pod = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "prod-enseal");
    // fullnameOverride wins over the release name.
    let docs = helm_template("prod", "secrets", &["--set", "fullnameOverride=ctl"]);
    assert_eq!(of_kind(&docs, "ClusterRole")["metadata"]["name"], "ctl");
}

#[test]
fn optional_objects_and_pod_settings_follow_the_values() {
    let docs = helm_template(
        RELEASE,
        NAMESPACE,
        &[
            "--set",
            "podDisruptionBudget.enabled=false,serviceAccount.create=false,\
             serviceAccount.name=existing-sa,nodeSelector.disk=ssd,podAnnotations.team=infra,\
             imagePullSecrets[0].name=regcred,tolerations[0].key=dedicated,\
             tolerations[0].operator=Exists,resources.limits.memory=512Mi",
        ],
    );
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert!(!kinds.contains(&"PodDisruptionBudget"), "{kinds:?}");
    assert!(!kinds.contains(&"ServiceAccount"), "{kinds:?}");
    let pod_template = &of_kind(&docs, "Deployment")["spec"]["template"];
    let pod = &pod_template["spec"];
    assert_eq!(pod["serviceAccountName"], "existing-sa");
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        assert_eq!(of_kind(&docs, kind)["subjects"][0]["name"], "existing-sa");
    }
    assert_eq!(pod["nodeSelector"], json!({"disk": "ssd"}));
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "dedicated", "operator": "Exists"}])
    );
    assert_eq!(
        pod_template["metadata"]["annotations"],
        json!({"team": "infra"})
    );
    assert_eq!(
        pod["containers"][0]["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"},
               "limits": {"cpu": "1", "memory": "512Mi"}})
    );
    // A values file works as --set does.
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "replicas: 1\npodDisruptionBudget:\n  minAvailable: 0\nextraArgs: [\"--key-size=3072\"]\n",
    )
    .unwrap();
    let docs = helm_template(RELEASE, NAMESPACE, &["-f", values.to_str().unwrap()]);
    assert_eq!(of_kind(&docs, "Deployment")["spec"]["replicas"], 1);
    assert_eq!(
        of_kind(&docs, "PodDisruptionBudget")["spec"]["minAvailable"],
        0
    );
    assert_eq!(args_of(&docs).last().unwrap(), "--key-size=3072");
}

/// A release this test installed; a failing test uninstalls it on the way out, because its
/// ClusterRole and binding outlive the test namespaces.
struct Installed {
    release: String,
    namespace: String,
    kubeconfig: std::path::PathBuf,
    uninstalled: bool,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.uninstalled {
            let (mut cmd, _home) = helm();
            let _ = cmd
                .args(["uninstall", &self.release, "--namespace", &self.namespace])
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .output();
        }
    }
}

/// `helm install` on the real API server: the CRDs and every templated object are accepted
/// (also by a strict server-side dry run, which rejects unknown fields), and enseal-controller
/// works with nothing but the token of the ServiceAccount the release made, with the
/// Deployment's own args; `helm uninstall` removes the cluster-scoped objects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_on_the_api_server_runs_the_controller_with_the_release_role() {
    let ns = cluster::namespace("helm-chart").await;
    let n = ns.name().to_owned();
    let apps = cluster::namespace("helm-chart-apps").await;
    let admin = ns.client();
    // Unique per run: the ClusterRole and its binding are named after the release.
    let release = format!("enseal-{n}");
    let kubeconfig = cluster::control_plane().kubeconfig().to_owned();
    let chart = chart_dir();
    let helm_in_ns = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> =
            args.iter().map(|a| std::ffi::OsStr::new(*a)).collect();
        all.extend([
            "--namespace".as_ref(),
            n.as_ref(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
        ]);
        run_helm(all)
    };
    helm_in_ns(&["install", &release, chart.to_str().unwrap()]);
    let mut installed = Installed {
        release: release.clone(),
        namespace: n.clone(),
        kubeconfig: kubeconfig.clone(),
        uninstalled: false,
    };
    let manifest = helm_in_ns(&["get", "manifest", &release]);
    let deployed: Vec<Value> = enseal_tests::deploy::yaml_docs(&manifest)
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    let mut kinds: Vec<&str> = deployed.iter().filter_map(|d| d["kind"].as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    // Every object is there, and a strict dry run of the same objects passes.
    for d in &deployed {
        assert_on_server_and_strict(&admin, d, &format!("{:?}", key(d))).await;
    }
    for crd in helm_template(&release, &n, &[])
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
    {
        let name = crd["metadata"]["name"].as_str().unwrap();
        assert_on_server_and_strict(&admin, crd, &format!("CRD {name}")).await;
    }

    enseal_tests::deploy::rbac_run::the_controller_works_with_only_the_deployed_role(
        &deployed,
        &admin,
        &n,
        apps.name(),
    )
    .await;

    helm_in_ns(&["uninstall", &release]);
    installed.uninstalled = true;
    let cluster_role = deployed
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap();
    let gone = enseal_tests::deploy::rbac_run::api_for(&admin, cluster_role)
        .get_opt(cluster_role["metadata"]["name"].as_str().unwrap())
        .await
        .unwrap();
    assert!(
        gone.is_none(),
        "helm uninstall leaves the ClusterRole behind"
    );
}

/// tests/tools/helm.sh --check (what helm_bin() asks) never builds: on an empty cache it fails
/// at once saying helm is not built, so helm_bin() panics with how to build it; on the real
/// cache it names the binary of the version pinned in tests/tools/helm/go.mod.
#[test]
fn the_helm_script_checks_without_building_and_pins_the_version() {
    let script = peers::repo_root().join("tests/tools/helm.sh");
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("--check")
        .env("ENSEAL_CACHE", empty.path())
        .output()
        .expect("running tests/tools/helm.sh --check");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not built yet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "--check wrote into the cache"
    );

    let go_mod = std::fs::read_to_string(peers::repo_root().join("tests/tools/helm/go.mod"))
        .expect("reading tests/tools/helm/go.mod");
    let pinned = go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("helm.sh/helm/v4 "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("go.mod requires helm.sh/helm/v4");
    let (mut cmd, _home) = helm();
    let out = cmd
        .args(["version", "--short"])
        .output()
        .expect("helm version");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!("{pinned}+")) || version.trim() == pinned,
        "helm version {version:?}, pinned {pinned}"
    );
}

/// `d` exists on the server, and a strict server-side dry run of it as rendered passes.
async fn assert_on_server_and_strict(admin: &kube::Client, d: &Value, what: &str) {
    let name = d["metadata"]["name"].as_str().unwrap();
    let api = enseal_tests::deploy::rbac_run::api_for(admin, d);
    api.get(name)
        .await
        .unwrap_or_else(|e| panic!("{what} is not on the server: {e}"));
    api.patch(
        name,
        &PatchParams::apply("enseal-tests-dry-run")
            .force()
            .dry_run()
            .validation_strict(),
        &Patch::Apply(d),
    )
    .await
    .unwrap_or_else(|e| panic!("{what} fails a strict server-side dry run: {e}"));
}

/// shardReplicas turns on active-active replicas: the flag, and `list` and `delete` on Leases
/// (what the member Leases need: controller/src/shard.rs lists them by label and deletes those
/// of replicas long gone) in a rule of their own. Off by default: neither appears.
#[test]
fn shard_replicas_adds_its_flag_and_the_lease_verbs_it_needs() {
    let lease_rules = |docs: &[Value]| -> Vec<Value> {
        rules_of(docs, "Role")
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["resources"] == json!(["leases"]))
            .cloned()
            .collect()
    };
    let election = json!({
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    });
    let off = default_render();
    assert!(!args_of(&off).iter().any(|a| a == "--shard-replicas"));
    assert_eq!(lease_rules(&off), std::slice::from_ref(&election));

    let on = helm_template(RELEASE, NAMESPACE, &["--set", "shardReplicas=true"]);
    assert!(
        args_of(&on).iter().any(|a| a == "--shard-replicas"),
        "{:?}",
        args_of(&on)
    );
    assert_eq!(
        lease_rules(&on),
        [
            election,
            json!({
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["list", "delete"],
            }),
        ]
    );
}

/// sopsSecrets.vaultKubernetes.role turns on the Vault Kubernetes login: its flags (with the
/// release's ServiceAccount, whatever it is named) and `create` on that ServiceAccount's token
/// only; sopsSecrets.vaultAllowlist becomes SOPS_HC_VAULT_ALLOWLIST. Unset, neither appears.
#[test]
fn vault_kubernetes_login_adds_its_flags_and_only_its_own_token_rule() {
    let off = default_render();
    assert!(
        !args_of(&off).iter().any(|a| a.starts_with("--vault-")),
        "{:?}",
        args_of(&off)
    );
    let rule_for_tokens = |docs: &[Value]| -> Vec<Value> {
        rules_of(docs, "Role")
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["resources"] == json!(["serviceaccounts/token"]))
            .cloned()
            .collect()
    };
    assert!(rule_for_tokens(&off).is_empty());

    let on = helm_template(
        RELEASE,
        NAMESPACE,
        &[
            "--set",
            "sopsSecrets.vaultKubernetes.role=enseal",
            "--set",
            "sopsSecrets.vaultKubernetes.audience=openbao",
            "--set",
            "serviceAccount.name=unsealer",
            "--set",
            "sopsSecrets.vaultAllowlist={https://vault.example:8200,https://bao.example}",
        ],
    );
    let args = args_of(&on);
    for flag in [
        "--vault-kubernetes-role=enseal",
        "--vault-kubernetes-mount=kubernetes",
        "--vault-kubernetes-service-account=unsealer",
        "--vault-kubernetes-audience=openbao",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} not in {args:?}");
    }
    assert_eq!(
        rule_for_tokens(&on),
        [json!({
            "apiGroups": [""],
            "resources": ["serviceaccounts/token"],
            "resourceNames": ["unsealer"],
            "verbs": ["create"],
        })]
    );
    let env = &of_kind(&on, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    let allowlist = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SOPS_HC_VAULT_ALLOWLIST")
        .unwrap_or_else(|| panic!("no SOPS_HC_VAULT_ALLOWLIST in {env}"));
    assert_eq!(
        allowlist["value"],
        "https://vault.example:8200,https://bao.example"
    );
}
