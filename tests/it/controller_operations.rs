//! enseal-controller's keys, HTTP endpoints, leader election and interop
//! with the real Sealed Secrets controller, on the real API server.

use std::time::{Duration, Instant};

use enseal_tests::cluster;
use enseal_tests::controller::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::Api;

const KEY_SELECTOR: &str = "sealedsecrets.bitnami.com/sealed-secrets-key=active";

async fn key_secrets(client: &kube::Client, ns: &str) -> Vec<Secret> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut keys = api
        .list(&ListParams::default().labels(KEY_SELECTOR))
        .await
        .unwrap()
        .items;
    keys.sort_by_key(|s| s.metadata.creation_timestamp.clone().map(|t| t.0));
    keys
}

fn write_cert(dir: &tempfile::TempDir, name: &str, pem: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_key_one_is_made_in_sealed_secrets_layout_and_served() {
    let (ns, client) = setup("ctl-keygen").await;
    let n = ns.name();
    let ctl = Controller::start(Options::new(n)).await;
    let keys = key_secrets(&client, n).await;
    assert_eq!(keys.len(), 1, "exactly one key is made");
    let key = &keys[0];
    assert!(key
        .metadata
        .name
        .as_deref()
        .unwrap()
        .starts_with("sealed-secrets-key"));
    assert_eq!(
        key.metadata.generate_name.as_deref(),
        Some("sealed-secrets-key")
    );
    assert_eq!(key.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = key.data.as_ref().unwrap();
    let tls_key = String::from_utf8_lossy(&data["tls.key"].0).into_owned();
    assert!(
        tls_key.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "PKCS#1 PEM"
    );
    let tls_crt = String::from_utf8_lossy(&data["tls.crt"].0).into_owned();
    let (code, served) = ctl.get("/v1/cert.pem");
    assert_eq!(code, 200);
    assert_eq!(served, tls_crt, "/v1/cert.pem serves the key's certificate");

    // kubeseal accepts the certificate and the controller opens the result.
    let dir = tempfile::tempdir().unwrap();
    let cert = write_cert(&dir, "cert.pem", &served);
    create_ss(
        &client,
        n,
        &kubeseal(&cert, "strict", &secret_json(n, "x", &[("a", "b")])),
    )
    .await;
    wait_secret(&client, n, "x", |s| value(s, "a").as_deref() == Some("b"))
        .await
        .expect("unsealed with the generated key");

    // The text log goes to a file here, as to `kubectl logs`: no colour escape codes in it
    // (issue 15: they were written whatever the output was).
    let log = ctl.log_text();
    assert!(log.contains("INFO"), "the controller logged: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour escape codes in a log that is not a terminal: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_renewed_and_added_without_restart_and_old_objects_still_open() {
    let (ns, client) = setup("ctl-renew").await;
    let n = ns.name();
    let first = TestKey::generate(2048);
    first.store(&client, n, "sealed-secrets-keyfirst").await;
    let mut opts = Options::new(n);
    opts.extra = vec!["--key-renew-period".into(), "20s".into()];
    let ctl = Controller::start(opts).await;
    assert_eq!(
        ctl.get("/v1/cert.pem").1,
        first.cert_pem,
        "the adopted key seals first"
    );
    create_ss(
        &client,
        n,
        &kubeseal(
            &first.cert_path(),
            "strict",
            &secret_json(n, "old", &[("v", "1")]),
        ),
    )
    .await;
    wait_secret(&client, n, "old", |s| value(s, "v").as_deref() == Some("1"))
        .await
        .expect("unsealed with the adopted key");

    // Renewal: a second key appears once the first is older than the period.
    let renewed = cluster::eventually(Duration::from_secs(120), || async {
        let keys = key_secrets(&client, n).await;
        (keys.len() >= 2).then_some(keys)
    })
    .await
    .expect("a new key after the renew period");
    let newest = renewed.last().unwrap();
    let newest_crt =
        String::from_utf8_lossy(&newest.data.as_ref().unwrap()["tls.crt"].0).into_owned();
    let served = cluster::eventually(WAIT, || async {
        let (_, c) = ctl.get("/v1/cert.pem");
        (c == newest_crt).then_some(())
    })
    .await;
    assert!(
        served.is_some(),
        "the newest key's certificate is served after renewal"
    );
    assert!(
        key_secrets(&client, n)
            .await
            .iter()
            .any(|k| k.metadata.name.as_deref() == Some("sealed-secrets-keyfirst")),
        "old keys are kept"
    );

    // Old objects still open (touch one to force a reconcile) and new ones
    // sealed with the new certificate open too.
    let dir = tempfile::tempdir().unwrap();
    let new_cert = write_cert(&dir, "new.pem", &newest_crt);
    create_ss(
        &client,
        n,
        &kubeseal(&new_cert, "strict", &secret_json(n, "new", &[("v", "2")])),
    )
    .await;
    wait_secret(&client, n, "new", |s| value(s, "v").as_deref() == Some("2"))
        .await
        .expect("unsealed with the renewed key");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    secrets.delete("old", &Default::default()).await.unwrap();
    wait_secret(&client, n, "old", |s| value(s, "v").as_deref() == Some("1"))
        .await
        .expect("an old object still unseals after renewal");

    // A key added by hand (as after a restore from backup) is used without a restart.
    let added = TestKey::generate(2048);
    added.store(&client, n, "sealed-secrets-keyrestored").await;
    create_ss(
        &client,
        n,
        &kubeseal(
            &added.cert_path(),
            "namespace-wide",
            &secret_json(n, "restored", &[("v", "3")]),
        ),
    )
    .await;
    wait_secret(&client, n, "restored", |s| {
        value(s, "v").as_deref() == Some("3")
    })
    .await
    .expect("a key added at run time is used");
    let metrics = ctl.metrics();
    assert!(
        metrics.contains("enseal_controller_key_age_seconds "),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_rotate_endpoints() {
    let (ns, client) = setup("ctl-http").await;
    let n = ns.name();
    let old = TestKey::generate(2048);
    old.store(&client, n, "sealed-secrets-keyold").await;
    // What the endpoints answer, not their rate limit (its own test below), is tested here.
    let mut opts = Options::new(n);
    opts.extra = vec!["--rate-limit-burst".into(), "100".into()];
    let ctl = Controller::start(opts).await;
    assert_eq!(ctl.get("/healthz").0, 200);
    assert_eq!(ctl.get("/readyz").0, 200);
    let sealed = kubeseal(
        &old.cert_path(),
        "strict",
        &secret_json(n, "r", &[("k", "v")]),
    );
    let (code, _) = ctl.post("/v1/verify", sealed.to_string().as_bytes());
    assert_eq!(code, 200, "verify accepts what opens");
    let stranger = TestKey::generate(2048);
    let foreign = kubeseal(
        &stranger.cert_path(),
        "strict",
        &secret_json(n, "r", &[("k", "v")]),
    );
    let (code, body) = ctl.post("/v1/verify", foreign.to_string().as_bytes());
    assert_eq!(code, 409, "verify refuses what does not open: {body}");
    assert_eq!(ctl.post("/v1/verify", b"not json").0, 400);

    // Rotate onto a newer key: the result opens, and only with the new key.
    // Keys are ordered by their certificate's NotBefore (Sealed Secrets' default
    // --key-order-priority), which has 1 s resolution, as has the Secret's creationTimestamp:
    // the newer key is made more than a second after the old one, or the two can tie.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newer = TestKey::generate(2048);
    newer.store(&client, n, "sealed-secrets-keynewer").await;
    let served = cluster::eventually(WAIT, || async {
        (ctl.get("/v1/cert.pem").1 == newer.cert_pem).then_some(())
    })
    .await;
    assert!(served.is_some(), "the newer key is picked up");
    let (code, body) = ctl.post("/v1/rotate", sealed.to_string().as_bytes());
    assert_eq!(code, 200, "{body}");
    let rotated: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_ne!(
        rotated["spec"]["encryptedData"]["k"],
        sealed["spec"]["encryptedData"]["k"]
    );
    assert_eq!(ctl.post("/v1/verify", body.as_bytes()).0, 200);
    create_ss(&client, n, &rotated).await;
    wait_secret(&client, n, "r", |s| value(s, "k").as_deref() == Some("v"))
        .await
        .expect("a rotated object unseals");
}

/// Issue #13 item 10: anyone who reaches the port could make the controller spend minutes of
/// CPU per request. Oversized bodies and requests with too many values are refused before any
/// decryption, a client past its rate gets 429, and the controller keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_rotate_refuse_oversized_and_too_frequent_requests() {
    let (ns, client) = setup("ctl-http-limits").await;
    let n = ns.name();
    let key = TestKey::generate(2048);
    key.store(&client, n, "sealed-secrets-keylimits").await;
    let ctl = Controller::start(Options::new(n)).await;
    let port = ctl.http_port;

    // More than 1 MiB: 413, whatever the content.
    let big = vec![b' '; 1024 * 1024 + 4096];
    let (code, body) = post_while_writing(port, "/v1/verify", big).expect("POST a big body");
    assert_eq!(code, 413, "an oversized body is refused: {body}");
    assert_eq!(ctl.get("/healthz").0, 200);

    // More than 256 values in a small body: 413 before any decryption.
    tokio::time::sleep(Duration::from_secs(2)).await; // a full bucket again
    let mut many = kubeseal(
        &key.cert_path(),
        "strict",
        &secret_json(n, "many", &[("k", "v")]),
    );
    let one = many["spec"]["encryptedData"]["k"].clone();
    for i in 0..300 {
        many["spec"]["encryptedData"][format!("k{i}")] = one.clone();
    }
    let (code, body) = ctl.post("/v1/verify", many.to_string().as_bytes());
    assert_eq!(code, 413, "too many values are refused: {body}");
    assert!(body.contains("256"), "{body}");

    // Past the rate (2/s, burst 2, as Sealed Secrets): 429, and /healthz is still served.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let codes: Vec<u16> = (0..6).map(|_| ctl.post("/v1/verify", b"{}").0).collect();
    assert!(codes.contains(&429), "a burst of 6 is limited: {codes:?}");
    assert_eq!(&codes[..2], [200, 200], "within the burst: {codes:?}");
    assert_eq!(ctl.get("/healthz").0, 200);
    assert_eq!(
        ctl.get("/v1/cert.pem").0,
        200,
        "only verify and rotate are limited"
    );

    // After a pause the client is served again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sealed = kubeseal(
        &key.cert_path(),
        "strict",
        &secret_json(n, "ok", &[("k", "v")]),
    );
    assert_eq!(ctl.post("/v1/verify", sealed.to_string().as_bytes()).0, 200);
}

async fn lease_holder(client: &kube::Client, ns: &str, lease: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    api.get_opt(lease).await.ok()??.spec?.holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_leader_and_fast_failover() {
    let (ns, client) = setup("ctl-ha").await;
    let n = ns.name();
    let key = TestKey::generate(2048);
    key.store(&client, n, "sealed-secrets-keyha").await;
    let start = |id: &str| {
        let mut o = Options::new(n);
        o.lease_name = "ha";
        o.extra = vec!["--identity".into(), id.into()];
        Controller::start(o)
    };
    let mut a = start("replica-a").await;
    let mut b = start("replica-b").await;
    let holder = cluster::eventually(WAIT, || lease_holder(&client, n, "ha"))
        .await
        .expect("a leader is elected");
    assert!(holder == "replica-a" || holder == "replica-b", "{holder}");
    // Every replica serves the certificate.
    assert_eq!(a.get("/v1/cert.pem").1, key.cert_pem);
    assert_eq!(b.get("/v1/cert.pem").1, key.cert_pem);
    create_ss(
        &client,
        n,
        &kubeseal(
            &key.cert_path(),
            "strict",
            &secret_json(n, "one", &[("k", "1")]),
        ),
    )
    .await;
    wait_secret(&client, n, "one", |s| value(s, "k").as_deref() == Some("1"))
        .await
        .expect("the leader reconciles");
    let leader_metric = |c: &Controller| c.metrics().contains("enseal_controller_leader 1");
    assert_ne!(
        leader_metric(&a),
        leader_metric(&b),
        "exactly one replica leads"
    );

    // SIGKILL the leader: the lease is not released, so the survivor waits
    // out one lease duration (15 s) and takes over.
    let (leader, survivor, survivor_id) = if holder == "replica-a" {
        (&mut a, &b, "replica-b")
    } else {
        (&mut b, &a, "replica-a")
    };
    leader.kill();
    let killed_at = Instant::now();
    let took_over = cluster::eventually(Duration::from_secs(40), || async {
        (lease_holder(&client, n, "ha").await.as_deref() == Some(survivor_id)).then_some(())
    })
    .await;
    let failover = killed_at.elapsed();
    assert!(took_over.is_some(), "the survivor never took the lease");
    assert!(
        failover < Duration::from_secs(25),
        "failover took {failover:?}"
    );
    create_ss(
        &client,
        n,
        &kubeseal(
            &key.cert_path(),
            "strict",
            &secret_json(n, "two", &[("k", "2")]),
        ),
    )
    .await;
    wait_secret(&client, n, "two", |s| value(s, "k").as_deref() == Some("2"))
        .await
        .expect("the new leader reconciles");
    eprintln!("failover after SIGKILL: {failover:?}");
    let _ = survivor;

    // SIGTERM releases the lease: a fresh replica takes over at once.
    let mut c = start("replica-c").await;
    let survivor = if survivor_id == "replica-a" {
        &mut a
    } else {
        &mut b
    };
    let stopped_at = Instant::now();
    assert_eq!(survivor.terminate(), Some(0), "clean exit on SIGTERM");
    let took_over = cluster::eventually(Duration::from_secs(20), || async {
        (lease_holder(&client, n, "ha").await.as_deref() == Some("replica-c")).then_some(())
    })
    .await;
    let handover = stopped_at.elapsed();
    assert!(
        took_over.is_some(),
        "replica-c never took the released lease"
    );
    assert!(
        handover < Duration::from_secs(6),
        "hand-over after SIGTERM took {handover:?}"
    );
    eprintln!("hand-over after SIGTERM: {handover:?}");
    assert!(!c.exited());
}
