//! deploy/base's RBAC on the real API server: enseal-controller runs with nothing but a token
//! of the deployed ServiceAccount, makes its key, unseals a SealedSecret into a Secret with
//! status and Events, decrypts a SopsSecret with the age key Secret the Deployment names (its
//! flag taken from deploy/base), and is refused what the role does not grant.

mod controller_support;
mod deploy_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use controller_support::{http, install_crd, value, wait_event, wait_secret, wait_synced};
use deploy_support::{kustomize_base, of_kind};
use enseal_tests::cli::Sandbox;
use enseal_tests::{cluster, peers};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::ByteString;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch,
    PatchParams, PostParams,
};
use kube::config::Kubeconfig;
use kube::{Api, Client};
use serde_json::{json, Value};

const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "Role",
    "ClusterRoleBinding",
    "RoleBinding",
];

/// deploy/base's RBAC objects retargeted at namespace `ns`; cluster-scoped names get `ns` as a
/// suffix so that runs side by side (or a shared cluster) never collide.
fn rbac_for(ns: &str) -> Vec<Value> {
    let cluster_name = format!("enseal-controller-{ns}");
    kustomize_base()
        .into_iter()
        .filter(|d| RBAC_KINDS.contains(&d["kind"].as_str().unwrap_or_default()))
        .map(|mut d| {
            match d["kind"].as_str().unwrap_or_default() {
                "ClusterRole" => d["metadata"]["name"] = json!(cluster_name),
                "ClusterRoleBinding" => {
                    d["metadata"]["name"] = json!(cluster_name);
                    d["roleRef"]["name"] = json!(cluster_name);
                }
                _ => d["metadata"]["namespace"] = json!(ns),
            }
            if let Some(subjects) = d.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    assert_eq!(s["namespace"], "enseal-system");
                    s["namespace"] = json!(ns);
                }
            }
            d
        })
        .collect()
}

async fn apply(client: &Client, obj: &Value) {
    let api_version = obj["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = obj["kind"].as_str().expect("kind");
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let name = obj["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        name,
        &PatchParams::apply("enseal-tests").force(),
        &Patch::Apply(obj),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

async fn token_for(client: &Client, ns: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    sas.create_token_request(
        "enseal-controller",
        &PostParams::default(),
        &TokenRequest {
            metadata: ObjectMeta::default(),
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            status: None,
        },
    )
    .await
    .expect("requesting a ServiceAccount token")
    .status
    .and_then(|s| s.token)
    .expect("a token")
}

/// The admin kubeconfig with its user replaced by the bare token (no client certificate).
fn token_kubeconfig(token: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let admin = cluster::control_plane().kubeconfig();
    let kc = Kubeconfig::read_from(admin).expect("reading the admin kubeconfig");
    let mut text = serde_json::to_value(&kc).expect("kubeconfig serializes");
    // The cluster entries stay (server, CA); the user is the bare token, no client certificate.
    text["users"] = json!([{"name": "sa", "user": {"token": token}}]);
    for ctx in text["contexts"].as_array_mut().expect("contexts") {
        ctx["context"]["user"] = json!("sa");
    }
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text.to_string()).expect("writing the token kubeconfig");
    assert!(
        !text.to_string().contains("client-certificate"),
        "the kubeconfig must carry the token only"
    );
    path
}

/// The Deployment's `--sops-age-key-secret` value in deploy/base, so that the test runs the
/// controller the way the manifests do.
fn base_age_key_secret() -> String {
    let docs = kustomize_base();
    let args = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"];
    args.as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("--sops-age-key-secret="))
        .expect("deploy/base turns SopsSecrets on with --sops-age-key-secret=NAME")
        .to_owned()
}

fn sops_resource() -> ApiResource {
    ApiResource {
        group: "enseal.dev".into(),
        version: "v1alpha1".into(),
        api_version: "enseal.dev/v1alpha1".into(),
        kind: "SopsSecret".into(),
        plural: "sopssecrets".into(),
    }
}

async fn install_sops_crd(client: &Client) {
    let path = enseal_tests::peers::repo_root().join("deploy/crds/enseal.dev_sopssecrets.yaml");
    let text = std::fs::read_to_string(path).expect("reading the SopsSecret CRD");
    let crd: CustomResourceDefinition =
        serde_json::from_value(controller_support::yaml_to_json(&text)).expect("a CRD");
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            "sopssecrets.enseal.dev",
            &PatchParams::apply("enseal-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("applying the SopsSecret CRD");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &sops_resource());
    let served = cluster::eventually(Duration::from_secs(60), || async {
        api.list(&ListParams::default()).await.ok()
    })
    .await;
    assert!(served.is_some(), "sopssecrets are never served");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Running {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- enseal-controller log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn is_forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(ref e)) if e.code == 403)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_works_with_only_the_deployed_role_and_nothing_more() {
    let ns = cluster::namespace("deploy-rbac").await;
    let n = ns.name().to_owned();
    // The SealedSecret lives elsewhere than the controller, so that only the ClusterRole (not
    // the Role of the controller's own namespace) can let it work there.
    let apps = cluster::namespace("deploy-rbac-apps").await;
    let a = apps.name().to_owned();
    let admin = ns.client();
    install_crd(&admin).await;
    install_sops_crd(&admin).await;
    let key_secret = base_age_key_secret();
    let keys = Secret {
        metadata: ObjectMeta {
            name: Some(key_secret.clone()),
            ..ObjectMeta::default()
        },
        data: Some(
            [(
                "a.agekey".to_owned(),
                ByteString(peers::identities(&["a"]).into_bytes()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(admin.clone(), &n)
        .create(&PostParams::default(), &keys)
        .await
        .expect("storing the age key Secret");
    let objects = rbac_for(&n);
    assert_eq!(objects.len(), RBAC_KINDS.len());
    for obj in &objects {
        apply(&admin, obj).await;
    }

    let token = token_for(&admin, &n).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = token_kubeconfig(&token, dir.path());
    let (http_port, metrics_port) = (free_port(), free_port());
    let log = dir.path().join("controller.log");
    let _ctl = Running {
        child: Command::new(deploy_support::controller_bin())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--namespace", &n, "--watch-namespace", &a])
            .args(["--listen-addr", &format!("127.0.0.1:{http_port}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--key-size", "2048"])
            .args(["--sops-age-key-secret", &key_secret])
            .env("RUST_LOG", "info")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting enseal-controller"),
        log: log.clone(),
    };

    // Ready means it made (Role: create secrets) and loaded (list/watch) its key.
    let cert = cluster::eventually(Duration::from_secs(120), || async move {
        match http("GET", http_port, "/v1/cert.pem", b"") {
            Ok((200, body)) if body.contains("BEGIN CERTIFICATE") => Some(body),
            _ => None,
        }
    })
    .await
    .expect("the controller serves its certificate");

    let sb = Sandbox::new();
    let cert_file = sb.write("cert.pem", &cert);
    let plain = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": a},
        "stringData": {"password": "s3cr3t"}});
    let sealed = sb.run_with_stdin(
        enseal_tests::cli::enseal_bin(),
        ["seal", "--cert", cert_file.to_str().unwrap(), "-o", "json"],
        plain.to_string().as_bytes(),
    );
    sealed.assert_success("enseal seal");
    let obj: DynamicObject = serde_json::from_slice(&sealed.stdout).expect("a SealedSecret");
    controller_support::ss_api(&admin, &a)
        .create(&PostParams::default(), &obj)
        .await
        .expect("creating the SealedSecret");

    let secret = wait_secret(&admin, &a, "db", |s| {
        value(s, "password").as_deref() == Some("s3cr3t")
    })
    .await
    .expect("the Secret appears, written with the role only");
    assert!(secret.metadata.owner_references.is_some());
    wait_synced(&admin, &a, "db", "True")
        .await
        .expect("Synced=True (status subresource)");
    wait_event(&admin, &a, "db", "Unsealed")
        .await
        .expect("an Unsealed Event");

    // A SopsSecret elsewhere: get/list/watch on sopssecrets, the key Secret read through the
    // Role, the Secret written through the ClusterRole, Synced through sopssecrets/status.
    let plain = sb.write("app.yaml", "token: s0ps-t0ken\n");
    let enc = sb.enseal([
        "encrypt",
        "--age",
        &peers::recipient("a"),
        plain.to_str().unwrap(),
    ]);
    enc.assert_success("enseal encrypt");
    sb.write("app.enc.yaml", &enc.stdout);
    let file = sb.file("app.enc.yaml");
    let out = sb.enseal([
        "sops-secret",
        file.to_str().unwrap(),
        "--namespace",
        &a,
        "-o",
        "json",
    ]);
    out.assert_success("enseal sops-secret");
    let obj: DynamicObject = serde_json::from_slice(&out.stdout).expect("a SopsSecret");
    let name = obj.metadata.name.clone().expect("a name");
    let sops: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &a, &sops_resource());
    sops.create(&PostParams::default(), &obj)
        .await
        .expect("creating the SopsSecret");
    wait_secret(&admin, &a, &name, |s| {
        value(s, "token").as_deref() == Some("s0ps-t0ken")
    })
    .await
    .expect("the SopsSecret's Secret appears, decrypted with the role only");
    let synced = cluster::eventually(Duration::from_secs(60), || {
        let sops = sops.clone();
        let name = name.clone();
        async move {
            let o = sops.get(&name).await.ok()?;
            o.data["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Synced" && c["status"] == "True")
                .then_some(())
        }
    })
    .await;
    assert!(
        synced.is_some(),
        "SopsSecret Synced=True (status subresource)"
    );

    let leases: Api<Lease> = Api::namespaced(admin.clone(), &n);
    assert!(
        leases.get_opt("enseal-controller").await.unwrap().is_some(),
        "the leader Lease exists"
    );
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !log_text.contains("forbidden") && !log_text.contains("Forbidden"),
        "the controller hit a permission it lacks:\n{log_text}"
    );

    // Outside the role: refused.
    let sa = cluster::client_with_token(&token).await;
    assert!(is_forbidden(
        Api::<Node>::all(sa.clone())
            .delete("any-node", &DeleteParams::default())
            .await
    ));
    assert!(is_forbidden(
        Api::<Secret>::namespaced(sa.clone(), &a)
            .delete("db", &DeleteParams::default())
            .await
    ));
    assert!(is_forbidden(
        Api::<Pod>::namespaced(sa.clone(), &n)
            .list(&ListParams::default())
            .await
    ));
    assert!(is_forbidden(
        Api::<Lease>::namespaced(sa.clone(), "default")
            .list(&ListParams::default())
            .await
    ));
    assert!(is_forbidden(
        Api::<ClusterRole>::all(sa.clone())
            .list(&ListParams::default())
            .await
    ));

    // Cluster-scoped objects outlive the namespace; remove them (matters on a shared cluster).
    let name = format!("enseal-controller-{n}");
    let _ = Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(&name, &DeleteParams::default())
        .await;
    let _ = Api::<ClusterRole>::all(admin.clone())
        .delete(&name, &DeleteParams::default())
        .await;
}
