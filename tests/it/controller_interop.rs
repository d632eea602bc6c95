//! enseal-controller and the real Sealed Secrets controller (v0.40.0) on one
//! API server: keys and SealedSecrets move between them in both directions,
//! which is what replacing one with the other in a live cluster needs.

use enseal_tests::controller::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::DeleteParams;
use kube::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_sealedsecrets_move_between_sealed_secrets_and_enseal() {
    let (ns, client) = setup("ctl-interop").await;
    let n = ns.name();
    let dir = tempfile::tempdir().unwrap();

    // 1. The real controller makes its key (4096-bit) and unseals a kubeseal object.
    let mut real = RealController::start(&client, n, &[]).await;
    let real_cert = real.cert_pem();
    let cert_path = dir.path().join("real.pem");
    std::fs::write(&cert_path, &real_cert).unwrap();
    create_ss(
        &client,
        n,
        &kubeseal(
            &cert_path,
            "strict",
            &secret_json(n, "from-kubeseal", &[("k", "v1")]),
        ),
    )
    .await;
    wait_secret(&client, n, "from-kubeseal", |s| {
        value(s, "k").as_deref() == Some("v1")
    })
    .await
    .expect("the real controller unseals kubeseal's output");
    real.stop();

    // 2. enseal-controller adopts that key as it is and takes the object over.
    let ctl = Controller::start(Options::new(n)).await;
    assert_eq!(
        ctl.get("/v1/cert.pem").1,
        real_cert,
        "the Sealed Secrets key is adopted"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    secrets
        .delete("from-kubeseal", &DeleteParams::default())
        .await
        .unwrap();
    wait_secret(&client, n, "from-kubeseal", |s| {
        value(s, "k").as_deref() == Some("v1")
    })
    .await
    .expect("enseal-controller unseals an object made for Sealed Secrets");
    wait_synced(&client, n, "from-kubeseal", "True")
        .await
        .expect("Synced=True");

    // 3. A value sealed by enseal's library (the rotate endpoint re-seals with
    //    enseal's code) is opened by the real controller.
    let template = kubeseal(
        &cert_path,
        "strict",
        &secret_json(n, "from-enseal", &[("k", "v2")]),
    );
    let (code, body) = ctl.post("/v1/rotate", template.to_string().as_bytes());
    assert_eq!(code, 200, "{body}");
    let enseal_sealed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_ne!(
        enseal_sealed["spec"]["encryptedData"]["k"], template["spec"]["encryptedData"]["k"],
        "re-sealed by enseal"
    );
    drop(ctl);
    let _real = RealController::start(&client, n, &[]).await;
    create_ss(&client, n, &enseal_sealed).await;
    wait_secret(&client, n, "from-enseal", |s| {
        value(s, "k").as_deref() == Some("v2")
    })
    .await
    .expect("the real controller unseals a value sealed by enseal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_by_enseal_controller_is_used_by_sealed_secrets() {
    let (ns, client) = setup("ctl-interop-keys").await;
    let n = ns.name();
    let ctl = Controller::start(Options::new(n)).await;
    let cert = ctl.get("/v1/cert.pem").1;
    drop(ctl);
    let real = RealController::start(&client, n, &[]).await;
    assert_eq!(
        real.cert_pem(),
        cert,
        "Sealed Secrets adopts enseal's key Secret"
    );
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("c.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    create_ss(
        &client,
        n,
        &kubeseal(
            &cert_path,
            "namespace-wide",
            &secret_json(n, "x", &[("a", "b")]),
        ),
    )
    .await;
    wait_secret(&client, n, "x", |s| value(s, "a").as_deref() == Some("b"))
        .await
        .expect("the real controller unseals with enseal's key");
}
