//! enseal-controller started the way an existing Sealed Secrets install starts its controller:
//! with the args the Sealed Secrets v0.40.0 Helm chart renders (the real chart from the
//! release's sources, rendered by the real helm), or with controller.yaml's (none: its
//! container is `command: [controller]`, controller-norbac.jsonnet) and Sealed Secrets'
//! `SEALED_SECRETS_*` environment variables. Each flag keeps its meaning; the one deliberate
//! difference, `--max-unseal-retries` never giving an object up, is pinned here too.

use std::time::Duration;

use enseal_tests::cluster;
use enseal_tests::controller::*;
use enseal_tests::deploy::{of_kind, run_helm};
use enseal_tests::manifest::yaml_docs;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;
use serde_json::{json, Value};

/// The Sealed Secrets chart at the pinned release, from the Go module cache (the same module
/// the test set-up builds the real controller from, tests/cluster/go/sealed-secrets/go.mod).
fn sealed_secrets_chart() -> std::path::PathBuf {
    let module = repo_root().join("tests/cluster/go/sealed-secrets");
    let out = std::process::Command::new("go")
        .args([
            "mod",
            "download",
            "-json",
            "github.com/bitnami/sealed-secrets",
        ])
        .current_dir(&module)
        .env("GOFLAGS", "-mod=readonly")
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("running go mod download");
    assert!(
        out.status.success(),
        "go mod download: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Version"], "v0.40.0", "{info}");
    let chart = std::path::Path::new(info["Dir"].as_str().unwrap()).join("helm/sealed-secrets");
    assert!(chart.join("Chart.yaml").is_file(), "{}", chart.display());
    chart
}

/// Seals `values` for `ns/name` with the real kubeseal and the certificate `cert`.
async fn seal_into(
    client: &kube::Client,
    cert: &str,
    ns: &str,
    name: &str,
    values: &[(&str, &str)],
) {
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, cert).unwrap();
    create_ss(
        client,
        ns,
        &kubeseal(&cert_path, "strict", &secret_json(ns, name, values)),
    )
    .await;
}

async fn secret_absent(client: &kube::Client, ns: &str, name: &str) -> bool {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
        .is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sealed_secrets_helm_charts_args_run_enseal_controller_unchanged() {
    let (own, client) = setup("ss-chart").await;
    let extra = cluster::namespace("ss-chart-extra").await;
    let other = cluster::namespace("ss-chart-other").await;
    let (http_port, metrics_port) = (free_port(), free_port());

    // The chart's values a Sealed Secrets user sets; the ports only so that tests running side
    // by side do not collide, and one additional namespace so that this controller (like a
    // chart install with `additionalNamespaces`) watches its own namespace and that one only.
    let chart = sealed_secrets_chart();
    let sets = [
        format!("containerPorts.http={http_port}"),
        format!("containerPorts.metrics={metrics_port}"),
        format!("additionalNamespaces={{{}}}", extra.name()),
        "keycutofftime=Mon\\, 14 Oct 2024 21:45:30 +0200".to_owned(),
        "keyrenewperiod=720h30m".to_owned(),
        "keyttl=8760h00m00s".to_owned(),
        "rateLimit=5".to_owned(),
        "rateLimitBurst=4".to_owned(),
        "privateKeyLabels.team=security".to_owned(),
        "privateKeyAnnotations.owner=ops".to_owned(),
        "logInfoStdout=true".to_owned(),
        "logLevel=INFO".to_owned(),
        "logFormat=json".to_owned(),
        "maxRetries=3".to_owned(),
        "watchForSecrets=true".to_owned(),
        "kubeClientQPS=-1".to_owned(),
        "kubeClientBurst=20".to_owned(),
    ];
    let mut helm_args = vec![
        "template".to_owned(),
        "sealed-secrets".to_owned(),
        chart.display().to_string(),
        "--namespace".to_owned(),
        own.name().to_owned(),
    ];
    for s in &sets {
        helm_args.push("--set-string".to_owned());
        helm_args.push(s.clone());
    }
    let docs: Vec<Value> = yaml_docs(&run_helm(&helm_args))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    let container = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], json!(["controller"]));
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("the chart renders args")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    // What the chart renders, so that this test notices when a chart release changes it.
    for flag in [
        "--update-status",
        "--key-renew-period",
        "--key-ttl",
        "--key-cutoff-time",
        "--rate-limit",
        "--rate-limit-burst",
        "--key-prefix",
        "--additional-namespaces",
        "--privatekey-annotations",
        "--privatekey-labels",
        "--log-info-stdout",
        "--log-level",
        "--log-format",
        "--listen-addr",
        "--listen-metrics-addr",
        "--max-unseal-retries",
        "--watch-for-secrets",
        "--kubeclient-qps",
        "--kubeclient-burst",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} not in {args:?}");
    }

    // The pod's namespace as the Deployment's service account would give it; 2048-bit keys
    // (the chart sets no --key-size, and an environment variable only applies to a flag the
    // args leave out) so that a debug build makes its key in moments.
    let ctl = Controller::start_exactly(
        &args,
        &[
            ("POD_NAMESPACE", own.name()),
            ("SEALED_SECRETS_KEY_SIZE", "2048"),
        ],
        http_port,
        metrics_port,
    )
    .await;
    let (code, cert) = ctl.get("/v1/cert.pem");
    assert_eq!(code, 200);

    // --privatekey-labels and --privatekey-annotations land on the key it made.
    let keys = Api::<Secret>::namespaced(client.clone(), own.name())
        .list(&ListParams::default().labels("sealedsecrets.bitnami.com/sealed-secrets-key=active"))
        .await
        .unwrap();
    assert_eq!(keys.items.len(), 1);
    let key = &keys.items[0].metadata;
    assert_eq!(key.labels.as_ref().unwrap()["team"], "security");
    assert_eq!(key.annotations.as_ref().unwrap()["owner"], "ops");
    assert!(
        key.generate_name.as_deref() == Some("sealed-secrets-key"),
        "{key:?}"
    );

    // Its own namespace and the additional one are reconciled; any other is not.
    for ns in [own.name(), extra.name(), other.name()] {
        seal_into(&client, &cert, ns, "db", &[("password", ns)]).await;
    }
    for ns in [own.name(), extra.name()] {
        wait_secret(&client, ns, "db", |s| {
            value(s, "password").as_deref() == Some(ns)
        })
        .await
        .unwrap_or_else(|| panic!("no Secret in {ns}; log:\n{}", ctl.log_text()));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        secret_absent(&client, other.name(), "db").await,
        "a namespace outside --additional-namespaces was reconciled"
    );
    // --log-format json from the chart.
    let first = ctl.log_text();
    let line = first.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<Value>(line).is_ok(),
        "not a JSON log line: {line}"
    );
    // And /metrics on the chart's metrics port.
    assert!(ctl
        .metrics()
        .contains("sealed_secrets_controller_build_info"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_yaml_with_sealed_secrets_environment_variables() {
    // controller.yaml runs `controller` with no args at all: every namespace. Sealed Secrets'
    // environment variables (pflagenv, SEALED_SECRETS_<FLAG>) narrow it to this test's
    // objects by label and move its ports, which keeps the args exactly controller.yaml's.
    let (ns, client) = setup("ss-env").await;
    let n = ns.name();
    let (http_port, metrics_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{http_port}");
    let listen_metrics = format!("127.0.0.1:{metrics_port}");
    let selector = format!("enseal.dev/test-run={n}");
    let ctl = Controller::start_exactly(
        &[],
        &[
            ("POD_NAMESPACE", n),
            ("SEALED_SECRETS_LISTEN_ADDR", &listen),
            ("SEALED_SECRETS_LISTEN_METRICS_ADDR", &listen_metrics),
            ("SEALED_SECRETS_LABEL_SELECTOR", &selector),
            ("SEALED_SECRETS_KEY_SIZE", "2048"),
            ("SEALED_SECRETS_UPDATE_STATUS", "false"),
        ],
        http_port,
        metrics_port,
    )
    .await;
    let cert = ctl.get("/v1/cert.pem").1;
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    for (name, labelled) in [("selected", true), ("ignored", false)] {
        let mut ss = kubeseal(&cert_path, "strict", &secret_json(n, name, &[("k", name)]));
        if labelled {
            ss["metadata"]["labels"] = json!({ "enseal.dev/test-run": n });
        }
        create_ss(&client, n, &ss).await;
    }
    wait_secret(&client, n, "selected", |s| {
        value(s, "k").as_deref() == Some("selected")
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the labelled object is not unsealed; log:\n{}",
            ctl.log_text()
        )
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        secret_absent(&client, n, "ignored").await,
        "an object outside SEALED_SECRETS_LABEL_SELECTOR was unsealed"
    );
    // SEALED_SECRETS_UPDATE_STATUS=false: the object's status is left alone.
    let obj = ss_api(&client, n).get("selected").await.unwrap();
    assert!(
        obj.data.get("status").is_none_or(Value::is_null),
        "status written despite update-status=false: {:?}",
        obj.data.get("status")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_failing_past_max_unseal_retries_is_still_retried() {
    // Sealed Secrets forgets an object after --max-unseal-retries failures (5 by default, all
    // within a second), and its Secret then stays unwritten until the object itself changes
    // (sealed-secrets #1599). Here the retries only slow down.
    let (ns, client) = setup("ss-retries").await;
    let n = ns.name();
    let mut opts = Options::new(n);
    opts.extra = vec!["--max-unseal-retries".into(), "1".into()];
    let ctl = Controller::start(opts).await;
    // A Secret of the same name that someone else made: the SealedSecret cannot take it over.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let mut foreign = Secret::default();
    foreign.metadata.name = Some("app".into());
    foreign.string_data = Some([("k".to_owned(), "theirs".to_owned())].into());
    secrets
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let cert = ctl.get("/v1/cert.pem").1;
    seal_into(&client, &cert, n, "app", &[("k", "ours")]).await;
    wait_synced(&client, n, "app", "False")
        .await
        .expect("Synced=False while the Secret is someone else's");
    // Past the one quick retry, then the Secret is freed: the object is still retried.
    tokio::time::sleep(Duration::from_secs(3)).await;
    secrets
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    wait_secret(&client, n, "app", |s| {
        value(s, "k").as_deref() == Some("ours")
    })
    .await
    .unwrap_or_else(|| panic!("never retried; log:\n{}", ctl.log_text()));
}
