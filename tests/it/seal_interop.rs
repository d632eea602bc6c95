//! `enseal seal` and `enseal cert` against running controllers on the real API server:
//! SealedSecrets made by the enseal CLI are unsealed by the real Sealed Secrets controller
//! (v0.40.0) and by enseal-controller; the certificate comes from a URL or, through the API
//! server's service proxy, from the controller's Service.

use enseal_tests::cli::Sandbox;
use enseal_tests::cluster;
use enseal_tests::controller::*;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use serde_json::Value;

/// A sandbox whose `enseal` sees neither SEALED_SECRETS_CERT nor a kubeconfig unless a test
/// passes one.
fn sandbox() -> Sandbox {
    Sandbox::new()
}

/// `enseal seal ARGS -f secret.json -o json`, the SealedSecret it prints.
fn enseal_seal(sb: &Sandbox, secret: &Value, args: &[&str]) -> Value {
    let input = sb.write("secret.json", secret.to_string());
    let mut all = vec!["seal", "-o", "json", "-f", input.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = sb.enseal(&all);
    out.assert_success("enseal seal");
    serde_json::from_slice(&out.stdout).expect("enseal seal prints a JSON SealedSecret")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealedsecret_from_enseal_seal_is_unsealed_by_the_real_sealed_secrets_controller() {
    let (ns, client) = setup("seal-interop-real").await;
    let n = ns.name();
    let real = RealController::start(&client, n, &[]).await;
    let sb = sandbox();

    // The certificate as a file, as most teams keep it in Git.
    let cert_file = sb.write("real.pem", real.cert_pem());
    let from_file = enseal_seal(
        &sb,
        &secret_json(
            n,
            "from-enseal-file",
            &[("password", "s3cret"), ("user", "app")],
        ),
        &["--cert", cert_file.to_str().unwrap()],
    );
    assert_eq!(from_file["kind"], "SealedSecret");
    create_ss(&client, n, &from_file).await;
    wait_secret(&client, n, "from-enseal-file", |s| {
        value(s, "password").as_deref() == Some("s3cret")
            && value(s, "user").as_deref() == Some("app")
    })
    .await
    .expect("the real Sealed Secrets controller unseals enseal seal's output (--cert FILE)");

    // The certificate straight from the real controller's HTTP endpoint, every scope.
    let url = format!("http://127.0.0.1:{}/v1/cert.pem", real.http_port);
    for (name, scope) in [
        ("url-strict", "strict"),
        ("url-namespace-wide", "namespace-wide"),
        ("url-cluster-wide", "cluster-wide"),
    ] {
        let sealed = enseal_seal(
            &sb,
            &secret_json(n, name, &[("k", scope)]),
            &["--cert", &url, "--scope", scope],
        );
        create_ss(&client, n, &sealed).await;
        wait_secret(&client, n, name, |s| {
            value(s, "k").as_deref() == Some(scope)
        })
        .await
        .unwrap_or_else(|| {
            panic!("the real controller unseals enseal seal --cert URL --scope {scope}")
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enseal_cert_and_seal_take_the_certificate_from_enseal_controllers_url() {
    let (ns, client) = setup("seal-interop-url").await;
    let n = ns.name();
    let ctl = Controller::start(Options::new(n)).await;
    let (code, served) = ctl.get("/v1/cert.pem");
    assert_eq!(code, 200);
    let url = format!("http://127.0.0.1:{}/v1/cert.pem", ctl.http_port);
    let sb = sandbox();

    let printed = sb.enseal(["cert", "--cert", &url]);
    printed.assert_success("enseal cert --cert URL");
    assert_eq!(
        printed.stdout_str(),
        served,
        "enseal cert prints the controller's certificate as served"
    );

    // kubeseal's environment variable works as --cert does.
    let mut env_sb = sandbox();
    env_sb.env("SEALED_SECRETS_CERT", &url);
    let printed = env_sb.enseal(["seal", "--fetch-cert"]);
    printed.assert_success("enseal seal --fetch-cert with SEALED_SECRETS_CERT");
    assert_eq!(printed.stdout_str(), served);

    let sealed = enseal_seal(
        &sb,
        &secret_json(n, "via-url", &[("token", "abc123")]),
        &["--cert", &url],
    );
    create_ss(&client, n, &sealed).await;
    wait_secret(&client, n, "via-url", |s| {
        value(s, "token").as_deref() == Some("abc123")
    })
    .await
    .expect("enseal-controller unseals enseal seal --cert URL");
    wait_synced(&client, n, "via-url", "True")
        .await
        .expect("Synced=True");

    // A URL that serves something else than a certificate is refused, not sealed for.
    let wrong = format!("http://127.0.0.1:{}/healthz", ctl.http_port);
    let out = sb.enseal(["cert", "--cert", &wrong]);
    assert!(!out.success(), "{}", out.stdout_str());
    assert!(out.stderr_str().contains(&wrong), "{}", out.stderr_str());
    let missing = format!("http://127.0.0.1:{}/nope.pem", ctl.http_port);
    let out = sb.enseal(["cert", "--cert", &missing]);
    assert!(!out.success());
    assert!(out.stderr_str().contains("404"), "{}", out.stderr_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetching_through_the_api_server_names_a_missing_service_or_one_without_endpoints() {
    let ns = cluster::namespace("seal-fetch-cert").await;
    let n = ns.name();
    let kubeconfig = cluster::control_plane().kubeconfig().to_path_buf();
    let kubeconfig = kubeconfig.to_str().unwrap();
    let sb = sandbox();

    for args in [
        vec!["cert"],
        vec!["seal", "--fetch-cert"],
        vec!["seal", "-f", "secret.json"],
    ] {
        sb.write(
            "secret.json",
            secret_json(n, "x", &[("a", "b")]).to_string(),
        );
        let mut all = args.clone();
        all.extend_from_slice(&[
            "--kubeconfig",
            kubeconfig,
            "--controller-namespace",
            n,
            "--controller-name",
            "no-such-controller",
        ]);
        let out = sb.enseal(&all);
        assert!(!out.success(), "{args:?}");
        let err = out.stderr_str();
        assert!(
            err.contains(&format!("the Service {n}/no-such-controller was not found")),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }

    // --validate and --re-encrypt without --private-key ask the controller the same way.
    sb.write(
        "ss.json",
        serde_json::json!({"kind": "SealedSecret", "apiVersion": "bitnami.com/v1alpha1",
            "metadata": {"name": "x", "namespace": n},
            "spec": {"encryptedData": {"a": "AgB="}}})
        .to_string(),
    );
    for mode in ["--validate", "--re-encrypt"] {
        let out = sb.enseal([
            "seal",
            mode,
            "-f",
            "ss.json",
            "--kubeconfig",
            kubeconfig,
            "--controller-namespace",
            n,
            "--controller-name",
            "no-such-controller",
        ]);
        assert!(!out.success(), "{mode}");
        let err = out.stderr_str();
        assert!(
            err.contains(&format!("the Service {n}/no-such-controller was not found")),
            "{mode}: {err}"
        );
        assert!(out.stdout.is_empty(), "{mode}");
    }

    // KUBECONFIG is honoured as kubeseal honours it.
    let mut env_sb = sandbox();
    env_sb.env("KUBECONFIG", kubeconfig);
    let out = env_sb.enseal(["cert", "--controller-namespace", n]);
    assert!(!out.success());
    assert!(
        out.stderr_str().contains(&format!(
            "the Service {n}/sealed-secrets-controller was not found"
        )),
        "{}",
        out.stderr_str()
    );

    // The defaults are kubeseal's: kube-system/sealed-secrets-controller.
    let out = sb.enseal(["cert", "--kubeconfig", kubeconfig]);
    assert!(!out.success());
    assert!(
        out.stderr_str()
            .contains("the Service kube-system/sealed-secrets-controller"),
        "{}",
        out.stderr_str()
    );

    // A Service that selects no pod: the proxy has nowhere to go.
    let services: Api<Service> = Api::namespaced(ns.client(), n);
    services
        .create(
            &PostParams::default(),
            &Service {
                metadata: ObjectMeta {
                    name: Some("idle-controller".into()),
                    ..ObjectMeta::default()
                },
                spec: Some(ServiceSpec {
                    selector: Some([("app".to_owned(), "nothing-runs-here".to_owned())].into()),
                    ports: Some(vec![ServicePort {
                        name: Some("http".into()),
                        port: 8080,
                        ..ServicePort::default()
                    }]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            },
        )
        .await
        .expect("creating a Service");
    let out = sb.enseal([
        "cert",
        "--kubeconfig",
        kubeconfig,
        "--controller-namespace",
        n,
        "--controller-name",
        "idle-controller",
    ]);
    assert!(!out.success());
    let err = out.stderr_str();
    assert!(
        err.contains(&format!(
            "the Service {n}/idle-controller has no ready endpoints"
        )),
        "{err}"
    );
}
