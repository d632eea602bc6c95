//! Runs enseal-controller with nothing but a token of a deployed ServiceAccount, the way the
//! deployment manifests (deploy/base or the Helm chart) run it, and checks that it works and is
//! refused what its role does not grant. Shared by deploy_rbac.rs (kustomize base) and
//! helm_chart.rs (the chart as Helm installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cli::Sandbox;
use crate::controller::{
    self, free_port, http, install_crd, value, wait_event, wait_secret, wait_synced,
};
use crate::deploy::{controller_bin, of_kind};
use crate::{cluster, peers};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::ByteString;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch,
    PatchParams, PostParams,
};
use kube::config::Kubeconfig;
use kube::{Api, Client};
use serde_json::{json, Value};

pub const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "Role",
    "ClusterRoleBinding",
    "RoleBinding",
];

/// An `Api` for the rendered object `obj` (its kind, version and namespace).
pub fn api_for(client: &Client, obj: &Value) -> Api<DynamicObject> {
    let api_version = obj["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = obj["kind"].as_str().expect("kind");
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Server-side apply of one rendered object.
pub async fn apply(client: &Client, obj: &Value) {
    let kind = obj["kind"].as_str().expect("kind");
    let name = obj["metadata"]["name"].as_str().expect("name");
    api_for(client, obj)
        .patch(
            name,
            &PatchParams::apply("enseal-tests").force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

/// The admin kubeconfig with its user replaced by the bare token (no client certificate).
fn token_kubeconfig(token: &str, dir: &Path) -> PathBuf {
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

/// Applies deploy/crds' SopsSecret CRD and waits until it is served.
pub async fn install_sops_crd(client: &Client) {
    let path = peers::repo_root().join("deploy/crds/enseal.dev_sopssecrets.yaml");
    let text = std::fs::read_to_string(path).expect("reading the SopsSecret CRD");
    let crd: CustomResourceDefinition =
        serde_json::from_value(controller::yaml_to_json(&text)).expect("a CRD");
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            "sopssecrets.enseal.dev",
            &PatchParams::apply("enseal-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("applying the SopsSecret CRD");
    wait_sopssecrets_served(client).await;
}

/// Waits until the API server serves sopssecrets (a fresh CRD takes a moment).
pub async fn wait_sopssecrets_served(client: &Client) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &cluster::sops_secret_resource());
    let served = cluster::eventually(Duration::from_secs(60), || async {
        api.list(&ListParams::default()).await.ok()
    })
    .await;
    assert!(served.is_some(), "sopssecrets are never served");
}

struct Running {
    child: std::process::Child,
    log: PathBuf,
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

/// The controller container's args in the rendered Deployment, with the listen addresses
/// moved to free loopback ports (the pod's 0.0.0.0:8080/8081 would clash between tests).
fn deployment_args(deployed: &[Value], http_port: u16, metrics_port: u16) -> Vec<String> {
    let c = &of_kind(deployed, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    c["args"]
        .as_array()
        .expect("the Deployment's container has args")
        .iter()
        .map(|a| {
            let a = a.as_str().expect("string args");
            if a.starts_with("--listen-addr=") {
                format!("--listen-addr=127.0.0.1:{http_port}")
            } else if a.starts_with("--metrics-addr=") {
                format!("--metrics-addr=127.0.0.1:{metrics_port}")
            } else {
                a.to_owned()
            }
        })
        .collect()
}

/// `deployed` are the rendered objects of one deployment (deploy/base or the chart), targeted
/// at namespace `ns` and already on the server (at least its ServiceAccount and RBAC objects).
/// Runs enseal-controller out of cluster with the Deployment's own args and nothing but a token
/// of the Deployment's ServiceAccount, watching `apps`: it makes its key, unseals a
/// SealedSecret (Secret, status, Event), decrypts a SopsSecret with the age key Secret the
/// Deployment names, holds the Lease, logs nothing forbidden, and is refused what the role does
/// not grant. Cluster-scoped objects are left to the caller to remove.
pub async fn the_controller_works_with_only_the_deployed_role(
    deployed: &[Value],
    admin: &Client,
    ns: &str,
    apps: &str,
) {
    for d in deployed {
        if let Some(subjects) = d.get("subjects").and_then(Value::as_array) {
            for s in subjects {
                assert_eq!(s["namespace"], ns, "{} subjects", d["kind"]);
            }
        }
    }
    install_crd(admin).await;
    install_sops_crd(admin).await;
    let dir = tempfile::tempdir().unwrap();
    let (http_port, metrics_port) = (free_port(), free_port());
    let args = deployment_args(deployed, http_port, metrics_port);
    let key_secret = args
        .iter()
        .find_map(|a| a.strip_prefix("--sops-age-key-secret="))
        .expect("the Deployment turns SopsSecrets on with --sops-age-key-secret=NAME")
        .to_owned();
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
    Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &keys)
        .await
        .expect("storing the age key Secret");

    let pod = &of_kind(deployed, "Deployment")["spec"]["template"]["spec"];
    let service_account = pod["serviceAccountName"]
        .as_str()
        .expect("the Deployment names its ServiceAccount");
    let token = cluster::service_account_token(admin, ns, service_account).await;
    let kubeconfig = token_kubeconfig(&token, dir.path());
    let log = dir.path().join("controller.log");
    let _ctl = Running {
        child: Command::new(controller_bin())
            .args(&args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            // In the pod these come from POD_NAMESPACE and the default of every namespace.
            .args(["--namespace", ns, "--watch-namespace", apps])
            .args(["--key-size", "2048"])
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
        "metadata": {"name": "db", "namespace": apps},
        "stringData": {"password": "s3cr3t"}});
    let sealed = sb.run_with_stdin(
        crate::cli::enseal_bin(),
        ["seal", "--cert", cert_file.to_str().unwrap(), "-o", "json"],
        plain.to_string().as_bytes(),
    );
    sealed.assert_success("enseal seal");
    let obj: DynamicObject = serde_json::from_slice(&sealed.stdout).expect("a SealedSecret");
    controller::ss_api(admin, apps)
        .create(&PostParams::default(), &obj)
        .await
        .expect("creating the SealedSecret");

    let secret = wait_secret(admin, apps, "db", |s| {
        value(s, "password").as_deref() == Some("s3cr3t")
    })
    .await
    .expect("the Secret appears, written with the role only");
    assert!(secret.metadata.owner_references.is_some());
    wait_synced(admin, apps, "db", "True")
        .await
        .expect("Synced=True (status subresource)");
    wait_event(admin, apps, "db", "Unsealed")
        .await
        .expect("an Unsealed Event");

    // A SopsSecret elsewhere: get/list/watch on sopssecrets, the key Secret read through the
    // Role, the Secret written through the ClusterRole, Synced through sopssecrets/status. The
    // file is a Secret manifest naming that namespace: with the deployed args no namespace is
    // trusted, so the controller's keys open only files bound to theirs.
    let plain = sb.write(
        "app.yaml",
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  namespace: {apps}\nstringData:\n  token: s0ps-t0ken\n"
        ),
    );
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
        apps,
        "-o",
        "json",
    ]);
    out.assert_success("enseal sops-secret");
    let obj: DynamicObject = serde_json::from_slice(&out.stdout).expect("a SopsSecret");
    let name = obj.metadata.name.clone().expect("a name");
    let sops: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), apps, &cluster::sops_secret_resource());
    sops.create(&PostParams::default(), &obj)
        .await
        .expect("creating the SopsSecret");
    wait_secret(admin, apps, "app", |s| {
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

    // A tenant's own key Secret (spec.decryption.secretRef), read with `get` in the
    // SopsSecret's namespace through the ClusterRole; a flat file needs no binding then.
    let tenant_keys = Secret {
        metadata: ObjectMeta {
            name: Some("tenant-keys".into()),
            ..ObjectMeta::default()
        },
        data: Some(
            [(
                "b.agekey".to_owned(),
                ByteString(peers::identities(&["b"]).into_bytes()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(admin.clone(), apps)
        .create(&PostParams::default(), &tenant_keys)
        .await
        .expect("storing the tenant's key Secret");
    let plain = sb.write("tenant.yaml", "token: t3nant-t0ken\n");
    let enc = sb.enseal([
        "encrypt",
        "--age",
        &peers::recipient("b"),
        plain.to_str().unwrap(),
    ]);
    enc.assert_success("enseal encrypt");
    sb.write("tenant.enc.yaml", &enc.stdout);
    let out = sb.enseal([
        "sops-secret",
        sb.file("tenant.enc.yaml").to_str().unwrap(),
        "--namespace",
        apps,
        "--name",
        "tenant",
        "--key-secret",
        "tenant-keys",
        "-o",
        "json",
    ]);
    out.assert_success("enseal sops-secret --key-secret");
    let obj: DynamicObject = serde_json::from_slice(&out.stdout).expect("a SopsSecret");
    sops.create(&PostParams::default(), &obj)
        .await
        .expect("creating the tenant's SopsSecret");
    wait_secret(admin, apps, "tenant", |s| {
        value(s, "token").as_deref() == Some("t3nant-t0ken")
    })
    .await
    .expect("the tenant's Secret appears, its key Secret read with the role only");

    let leases: Api<Lease> = Api::namespaced(admin.clone(), ns);
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
        Api::<Secret>::namespaced(sa.clone(), apps)
            .delete("db", &DeleteParams::default())
            .await
    ));
    assert!(is_forbidden(
        Api::<Pod>::namespaced(sa.clone(), ns)
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
}
