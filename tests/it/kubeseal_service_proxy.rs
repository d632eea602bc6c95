//! kubeseal and `enseal seal`/`enseal cert` reaching enseal-controller the way they do in a
//! cluster: by its Service, through the API server's service proxy
//! (`/api/v1/namespaces/NS/services/http:NAME:PORT/proxy/v1/...`), with kubeseal's
//! `--controller-namespace`/`--controller-name`.
//!
//! The API server only proxies to endpoints that are pods' addresses, never to loopback, so
//! the controller runs in a network namespace of the test's own with an address of its own
//! (a private /30 on a veth pair); a Pod object (never run: the test control plane has no
//! kubelet) carries that address as its pod IP, and an EndpointSlice of a selector-less
//! Service points at it. Inside the namespace the controller reaches the API server (which
//! listens on 127.0.0.1 only) through a TCP forwarder on the host's end of the pair, verifying
//! the server's certificate for 127.0.0.1 (`tls-server-name`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::cluster;
use enseal_tests::controller::*;
use enseal_tests::netns::NetNs;
use enseal_tests::tcp_forward::TcpForward;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Api, Client};
use serde_json::{json, Value};

/// The Service's name, and the name of its port (kubeseal proxies to the first port by name).
const SERVICE: &str = "enseal-controller";
const PORT_NAME: &str = "http";

/// The admin kubeconfig, pointed at `server` and still verifying the API server's certificate
/// for 127.0.0.1 (one of its SANs) rather than for the forwarder's address.
fn kubeconfig_through(server: SocketAddr, dir: &Path) -> std::path::PathBuf {
    let path = cluster::control_plane().kubeconfig();
    let mut kc = Kubeconfig::read_from(path).expect("reading the admin kubeconfig");
    for named in &mut kc.clusters {
        let c = named.cluster.as_mut().expect("a cluster entry");
        c.server = Some(format!("https://{server}"));
        c.tls_server_name = Some("127.0.0.1".into());
    }
    let out = dir.join("through-forwarder.kubeconfig");
    // JSON is YAML; kube's Kubeconfig serializes its credentials in full.
    std::fs::write(&out, serde_json::to_vec(&kc).unwrap()).unwrap();
    out
}

/// Makes the API server route `SERVICE`'s `PORT_NAME` port to `ip:port`: a Pod object whose
/// status says it has `ip` (the proxy only goes to pods' addresses), a Service without a
/// selector, and an EndpointSlice naming the Pod. Returns once a request through the proxy
/// reaches the controller.
async fn route_service_to(client: &Client, ns: &str, ip: IpAddr, port: u16) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "enseal-controller-0", "labels": {"app": "enseal-controller"}},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "controller", "image": "enseal-controller:test"}]
        }
    }))
    .unwrap();
    // The namespace's default ServiceAccount (which admission looks up) is made by the
    // controller manager shortly after the namespace.
    let created = cluster::eventually(WAIT, || async {
        pods.create(&PostParams::default(), &pod).await.ok()
    })
    .await;
    assert!(created.is_some(), "creating the Pod object never succeeded");
    pods.patch_status(
        "enseal-controller-0",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]}}),
        ),
    )
    .await
    .expect("giving the Pod object the namespace's address");

    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE},
        "spec": {"ports": [{"name": PORT_NAME, "port": 8080, "targetPort": port}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &service)
        .await
        .expect("creating the Service");

    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{SERVICE}-netns"),
            "labels": {
                "kubernetes.io/service-name": SERVICE,
                "endpointslice.kubernetes.io/managed-by": "enseal-tests"
            }
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [ip.to_string()],
            "conditions": {"ready": true},
            "targetRef": {"kind": "Pod", "namespace": ns, "name": "enseal-controller-0"}
        }],
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]
    }))
    .unwrap();
    Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &slice)
        .await
        .expect("creating the EndpointSlice");

    // The API server reads EndpointSlices from its informer: it sees the new one a moment
    // later.
    let proxy = kube::core::Request::new(format!(
        "/api/v1/namespaces/{ns}/services/http:{SERVICE}:{PORT_NAME}/proxy"
    ));
    let reached = cluster::eventually(WAIT, || async {
        let request = proxy.get("healthz", &Default::default()).unwrap();
        client.request_text(request).await.ok()
    })
    .await;
    assert!(
        reached.is_some(),
        "the API server never proxied to the controller at {ip}:{port}"
    );
}

/// kubeseal's and enseal's flags for finding the controller by its Service.
fn by_service<'a>(kubeconfig: &'a str, ns: &'a str) -> [&'a str; 6] {
    [
        "--kubeconfig",
        kubeconfig,
        "--controller-namespace",
        ns,
        "--controller-name",
        SERVICE,
    ]
}

fn sealed_of(out: &Output, who: &str) -> Value {
    out.assert_success(who);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{who} prints a JSON SealedSecret: {e}"))
}

fn encrypted_data(ss: &Value) -> &serde_json::Map<String, Value> {
    ss.pointer("/spec/encryptedData")
        .and_then(Value::as_object)
        .expect("spec.encryptedData")
}

/// `ss` with one character of `key`'s sealed value changed (in the AES part, near the end).
fn tampered(ss: &Value, key: &str) -> Value {
    let mut ss = ss.clone();
    let value = ss["spec"]["encryptedData"][key]
        .as_str()
        .expect("a sealed value")
        .to_owned();
    let i = value.trim_end_matches('=').len() - 3;
    let flipped = if value.as_bytes()[i] == b'A' {
        "B"
    } else {
        "A"
    };
    let mut changed = value.clone();
    changed.replace_range(i..i + 1, flipped);
    ss["spec"]["encryptedData"][key] = Value::String(changed);
    ss
}

/// Creates `ss` and waits for the controller to make its Secret with `expected`.
async fn assert_unsealed(client: &Client, ns: &str, ss: &Value, expected: &[(&str, &str)]) {
    let name = ss["metadata"]["name"].as_str().expect("a name").to_owned();
    create_ss(client, ns, ss).await;
    let secret = wait_secret(client, ns, &name, |s| {
        expected
            .iter()
            .all(|(k, v)| value(s, k).as_deref() == Some(*v))
    })
    .await;
    assert!(
        secret.is_some(),
        "enseal-controller never unsealed {ns}/{name} into the expected Secret"
    );
}

/// enseal-controller in a network namespace of its own, reachable by its Service through the
/// API server. Fields drop in order: the controller before the forwarder it uses, and both
/// before the namespace.
struct ByService {
    ctl: Controller,
    _forward: TcpForward,
    _netns: NetNs,
    _dir: tempfile::TempDir,
    client: Client,
    ns: cluster::TestNamespace,
    kubeconfig: String,
}

impl ByService {
    async fn start(prefix: &str, rate_limit: [&str; 2]) -> ByService {
        let (ns, client) = setup(prefix).await;
        let netns = NetNs::create();
        let api = cluster::config().await.cluster_url;
        let api_addr: SocketAddr = format!(
            "{}:{}",
            api.host().expect("the API server's host"),
            api.port_u16().unwrap_or(443)
        )
        .parse()
        .expect("the test API server listens on an IP address");
        let forward = TcpForward::start(SocketAddr::new(netns.host_ip().into(), 0), api_addr);
        let dir = tempfile::tempdir().unwrap();

        let mut opts = Options::new(ns.name());
        opts.kubeconfig = Some(kubeconfig_through(forward.addr(), dir.path()));
        opts.netns = Some((netns.name().to_owned(), netns.ns_ip().into()));
        opts.extra = vec![
            "--rate-limit".into(),
            rate_limit[0].into(),
            "--rate-limit-burst".into(),
            rate_limit[1].into(),
        ];
        let ctl = Controller::start(opts).await;
        route_service_to(&client, ns.name(), ctl.host, ctl.http_port).await;
        ByService {
            ctl,
            _forward: forward,
            _netns: netns,
            _dir: dir,
            client,
            ns,
            kubeconfig: cluster::control_plane()
                .kubeconfig()
                .to_str()
                .unwrap()
                .to_owned(),
        }
    }

    /// `first` followed by the flags that find the controller by its Service.
    fn with(&self, first: &[&str]) -> Vec<String> {
        first
            .iter()
            .chain(by_service(&self.kubeconfig, self.ns.name()).iter())
            .map(|s| s.to_string())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeseal_and_enseal_reach_enseal_controller_by_its_service_through_the_api_server() {
    // Through the proxy every request comes from the API server's one address, so all of
    // this test's /v1/verify and /v1/rotate calls share one rate-limit bucket; a generous one
    // keeps this test about the proxy (the limit through it has a test of its own).
    let fx = ByService::start("kubeseal-proxy", ["100", "100"]).await;
    let (client, n) = (&fx.client, fx.ns.name());
    let (code, served) = fx.ctl.get("/v1/cert.pem");
    assert_eq!(code, 200, "the controller serves its certificate: {served}");
    let sb = Sandbox::new();
    let with = |first: &[&str]| fx.with(first);

    // The certificate, as each client fetches it through the proxy.
    let out = sb.kubeseal(with(&["--fetch-cert"]));
    out.assert_success("kubeseal --fetch-cert through the service proxy");
    assert_eq!(
        out.stdout_str(),
        served,
        "kubeseal fetches the controller's own certificate"
    );
    let out = sb.enseal(with(&["cert"]));
    out.assert_success("enseal cert through the service proxy");
    assert_eq!(out.stdout_str(), served, "enseal cert prints it as served");
    let out = sb.enseal(with(&["seal", "--fetch-cert"]));
    out.assert_success("enseal seal --fetch-cert through the service proxy");
    assert_eq!(out.stdout_str(), served);

    // Sealing for the certificate found by Service.
    sb.write(
        "by-kubeseal.json",
        secret_json(n, "by-kubeseal", &[("password", "k-s3cret")]).to_string(),
    );
    let by_kubeseal = sealed_of(
        &sb.kubeseal(with(&["-o", "json", "-f", "by-kubeseal.json"])),
        "kubeseal sealing through the service proxy",
    );
    sb.write(
        "by-enseal.json",
        secret_json(n, "by-enseal", &[("password", "e-s3cret")]).to_string(),
    );
    let by_enseal = sealed_of(
        &sb.enseal(with(&["seal", "-o", "json", "-f", "by-enseal.json"])),
        "enseal seal through the service proxy",
    );

    // --validate: the controller's /v1/verify answers 200 or 409 through the proxy, and both
    // clients tell the two apart (409 is "unable to decrypt", not a transport failure).
    sb.write("good.json", by_kubeseal.to_string());
    sb.write(
        "tampered.json",
        tampered(&by_kubeseal, "password").to_string(),
    );
    sb.kubeseal(with(&["--validate", "-f", "good.json"]))
        .assert_success("kubeseal --validate of an intact SealedSecret through the proxy");
    let out = sb.kubeseal(with(&["--validate", "-f", "tampered.json"]));
    assert!(
        !out.success(),
        "kubeseal --validate passed a tampered value"
    );
    assert!(
        out.stderr_str()
            .contains("unable to decrypt sealed secret: by-kubeseal"),
        "kubeseal reads the controller's 409 as invalid: {}",
        out.stderr_str()
    );
    sb.write("good-enseal.json", by_enseal.to_string());
    sb.enseal(with(&["seal", "--validate", "-f", "good-enseal.json"]))
        .assert_success("enseal seal --validate of an intact SealedSecret through the proxy");
    let out = sb.enseal(with(&["seal", "--validate", "-f", "tampered.json"]));
    assert!(
        !out.success(),
        "enseal seal --validate passed a tampered value"
    );
    assert!(
        out.stderr_str().contains("unable to decrypt sealed secret"),
        "enseal reads the controller's 409 as invalid: {}",
        out.stderr_str()
    );
    assert!(out.stdout.is_empty());

    // The controller unseals what both clients sealed.
    assert_unsealed(client, n, &by_kubeseal, &[("password", "k-s3cret")]).await;
    assert_unsealed(client, n, &by_enseal, &[("password", "e-s3cret")]).await;

    // --re-encrypt: the controller's /v1/rotate through the proxy. Objects sealed but not yet
    // created, so that the re-encrypted ones can be, under their own names.
    for (name, secret_value) in [("rotated-by-kubeseal", "rk"), ("rotated-by-enseal", "re")] {
        let file = format!("{name}.json");
        sb.write(
            &file,
            secret_json(n, name, &[("token", secret_value)]).to_string(),
        );
        let original = sealed_of(
            &sb.kubeseal(with(&["-o", "json", "-f", &file])),
            "kubeseal sealing through the service proxy",
        );
        let original_file = format!("{name}.sealed.json");
        sb.write(&original_file, original.to_string());
        // -w: kubeseal --re-encrypt with -f alone rewrites the input file in place.
        let rotated_file = format!("{name}.rotated.json");
        let args = [
            "--re-encrypt",
            "-o",
            "json",
            "-f",
            &original_file,
            "-w",
            &rotated_file,
        ];
        let out = if name.ends_with("kubeseal") {
            sb.kubeseal(with(&args))
        } else {
            sb.enseal(with(&[&["seal"][..], &args].concat()))
        };
        out.assert_success(&format!("--re-encrypt for {name} through the proxy"));
        let rotated: Value = serde_json::from_slice(&sb.read(&rotated_file))
            .unwrap_or_else(|e| panic!("--re-encrypt for {name} writes a JSON SealedSecret: {e}"));
        assert_eq!(rotated["metadata"]["name"], name);
        assert_eq!(
            encrypted_data(&rotated).keys().collect::<Vec<_>>(),
            vec!["token"]
        );
        assert_ne!(
            encrypted_data(&rotated)["token"],
            encrypted_data(&original)["token"],
            "{name}: the controller sealed the value afresh"
        );
        assert_unsealed(client, n, &rotated, &[("token", secret_value)]).await;
    }
}

/// Through the proxy, every client's /v1/verify and /v1/rotate come from the API server's
/// address, so they share one rate-limit bucket: a refusal (429, `Retry-After: 1`) is what a
/// busy team sees, not a sign of abuse. kubeseal (client-go) waits and asks again, up to 10
/// times; enseal must too, instead of failing the user's command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_request_through_the_proxy_is_retried_as_kubeseal_retries_it() {
    // One request, then one every 5 s: the second of two back-to-back requests is refused.
    let fx = ByService::start("kubeseal-proxy-limit", ["0.2", "1"]).await;
    let n = fx.ns.name();
    let sb = Sandbox::new();
    sb.write(
        "secret.json",
        secret_json(n, "limited", &[("k", "v")]).to_string(),
    );
    let sealed = sealed_of(
        &sb.kubeseal(fx.with(&["-o", "json", "-f", "secret.json"])),
        "kubeseal sealing through the service proxy",
    );
    sb.write("sealed.json", sealed.to_string());

    sb.kubeseal(fx.with(&["--validate", "-f", "sealed.json"]))
        .assert_success("kubeseal --validate, the bucket's one request");
    sb.enseal(fx.with(&["seal", "--validate", "-f", "sealed.json"]))
        .assert_success("enseal seal --validate right after, refused once and retried");
    sb.kubeseal(fx.with(&["--validate", "-f", "sealed.json"]))
        .assert_success("kubeseal --validate right after, refused once and retried");
    sb.write("rotate.json", sealed.to_string());
    let out = sb.enseal(fx.with(&["seal", "--re-encrypt", "-o", "json", "-f", "rotate.json"]));
    let rotated = sealed_of(&out, "enseal seal --re-encrypt right after, retried");
    assert_unsealed(&fx.client, n, &rotated, &[("k", "v")]).await;
    // The four requests above came back to back at one every 5 s at most: some were refused
    // and retried (only a machine stalled for 15 s in all would let them all through at once).
    let refused: u64 = fx
        .ctl
        .metrics()
        .lines()
        .filter(|l| l.contains("http_requests_total{") && l.contains("code=\"429\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum();
    assert!(
        refused >= 1,
        "the controller never refused a request: {}",
        fx.ctl.metrics()
    );
}
