//! enseal-controller's reconciler for sops-secrets-operator's SopsSecret (isindir.github.com)
//! against the real API server: whole objects encrypted by the real sops 3.11 and 3.13.3 as
//! that operator's README tells users to (`sops -e --encrypted-suffix Templates`), created
//! through each served version, become the Secrets the operator makes; and unlike it, the MAC
//! is checked on what the API server gives back. Fails (never skips) when the control plane,
//! the binaries or sops are missing.

use enseal_tests::cli::Sandbox;
use enseal_tests::cluster;
use enseal_tests::controller::*;
use enseal_tests::peers::{self, SopsRelease};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::ByteString;
use kube::api::{
    ApiResource, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{json, Value};

const KEY_SECRET: &str = "sops-age";
const GROUP: &str = "isindir.github.com";

fn resource(version: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: version.into(),
        api_version: format!("{GROUP}/{version}"),
        kind: "SopsSecret".into(),
        plural: "sopssecrets".into(),
    }
}

fn api(client: &Client, ns: &str, version: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource(version))
}

/// Test namespace, the CRDs, the age key Secret (test key `a`), admin client.
async fn setup_isindir(prefix: &str) -> (cluster::TestNamespace, Client) {
    let (ns, client) = setup(prefix).await;
    let text = std::fs::read_to_string(
        repo_root().join("deploy/crds/isindir.github.com_sopssecrets.yaml"),
    )
    .expect("reading the isindir SopsSecret CRD");
    let crd: CustomResourceDefinition =
        serde_json::from_value(yaml_to_json(&text)).expect("the CRD YAML is a CRD");
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            "sopssecrets.isindir.github.com",
            &PatchParams::apply("enseal-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("applying the isindir SopsSecret CRD");
    for version in ["v1alpha1", "v1alpha2", "v1alpha3"] {
        let api = api(&client, ns.name(), version);
        let served = cluster::eventually(WAIT, || async {
            api.list(&ListParams::default()).await.ok()
        })
        .await;
        assert!(served.is_some(), "{version} sopssecrets are never served");
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(KEY_SECRET.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            [(
                "a.agekey".to_string(),
                ByteString(peers::identities(&["a"]).into_bytes()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns.name())
        .create(&PostParams::default(), &secret)
        .await
        .expect("storing the age key Secret");
    (ns, client)
}

async fn start(ns: &str, extra: &[&str]) -> Controller {
    let mut opts = Options::new(ns);
    opts.extra = vec![
        "--sops-age-key-secret".into(),
        KEY_SECRET.into(),
        "--isindir-sops-secrets".into(),
    ];
    opts.extra.extend(extra.iter().map(|a| a.to_string()));
    Controller::start(opts).await
}

/// `sops -e --age <a> --encrypted-suffix Templates` of `plain` by `release`, as JSON.
fn sops_encrypt(sb: &Sandbox, release: SopsRelease, name: &str, plain: &str) -> Value {
    let path = sb.write(name, plain);
    let out = sb.sops_of(
        release,
        [
            "-e".as_ref(),
            "--age".as_ref(),
            peers::recipient("a").as_ref(),
            "--encrypted-suffix".as_ref(),
            "Templates".as_ref(),
            path.as_os_str(),
        ],
    );
    out.assert_success("sops -e");
    yaml_to_json(&out.stdout_str())
}

/// Creates `obj` through the version its apiVersion names, as `kubectl apply` would.
async fn create(client: &Client, ns: &str, obj: &Value) {
    let version = obj["apiVersion"]
        .as_str()
        .and_then(|v| v.strip_prefix("isindir.github.com/"))
        .expect("an isindir apiVersion")
        .to_owned();
    let dynamic: DynamicObject = serde_json::from_value(obj.clone()).expect("an object");
    api(client, ns, &version)
        .create(&PostParams::default(), &dynamic)
        .await
        .unwrap_or_else(|e| panic!("creating {version} SopsSecret: {e}"));
}

/// The status once its message is `message` (and, when given, Synced has `reason`).
async fn wait_status(
    client: &Client,
    ns: &str,
    name: &str,
    message: &str,
    reason: Option<&str>,
) -> Value {
    let api = api(client, ns, "v1alpha3");
    let last = std::sync::Mutex::new(Value::Null);
    let found = cluster::eventually(WAIT, || async {
        let status = api.get(name).await.ok()?.data.get("status")?.clone();
        *last.lock().unwrap() = status.clone();
        let synced = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Synced"))
            .map(|c| c["reason"].clone());
        (status["message"] == message && reason.is_none_or(|r| synced == Some(Value::from(r))))
            .then_some(status)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "SopsSecret {name}: never {message:?} ({reason:?}); last status: {}",
            last.lock().unwrap()
        )
    })
}

fn data(secret: &Secret) -> Vec<(String, String)> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// The README's example for each version (v1alpha1 with its secret_templates and text data).
fn object(version: &str, name: &str, ns: &str) -> String {
    let templates = if version == "v1alpha1" {
        "  secret_templates:\n    - name: NAME-jenkins\n      labels:\n        \"jenkins.io/credentials-type\": \"usernamePassword\"\n      annotations:\n        \"jenkins.io/credentials-description\": \"credentials from Kubernetes\"\n      data:\n        username: myUsername\n        password: 'Pa$$word'\n    - name: NAME-docker\n      type: 'kubernetes.io/dockerconfigjson'\n      data:\n        .dockerconfigjson: '{\"auths\":{}}'\n".to_owned()
    } else {
        "  suspend: false\n  secretTemplates:\n    - name: NAME-jenkins\n      labels:\n        \"jenkins.io/credentials-type\": \"usernamePassword\"\n      annotations:\n        \"jenkins.io/credentials-description\": \"credentials from Kubernetes\"\n      stringData:\n        username: myUsername\n        password: 'Pa$$word'\n      data:\n        token: ZGF0YS12YWx1ZTE=\n    - name: NAME-docker\n      type: 'kubernetes.io/dockerconfigjson'\n      stringData:\n        .dockerconfigjson: '{\"auths\":{}}'\n".to_owned()
    };
    format!(
        "apiVersion: isindir.github.com/{version}\nkind: SopsSecret\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{}",
        templates.replace("NAME", name)
    )
}

/// Two templates of one value each: a small object, so that a refusal (which hashes every
/// key order of every guess) is quick in a debug build.
fn small(name: &str, ns: &str) -> String {
    format!(
        "apiVersion: isindir.github.com/v1alpha3\nkind: SopsSecret\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  secretTemplates:\n    - name: {name}-jenkins\n      stringData:\n        username: myUsername\n    - name: {name}-docker\n      stringData:\n        username: other\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_encrypted_by_real_sops_become_the_operators_secrets_in_every_version() {
    let (ns, client) = setup_isindir("isindir-versions").await;
    let n = ns.name();
    let _ctl = start(n, &[]).await;
    let sb = Sandbox::new();
    let mut made = Vec::new();
    for release in SopsRelease::ALL {
        for version in ["v1alpha1", "v1alpha2", "v1alpha3"] {
            let name = format!("s{}-{version}", release.name().replace('.', ""));
            let enc = sops_encrypt(
                &sb,
                release,
                &format!("{name}.yaml"),
                &object(version, &name, n),
            );
            create(&client, n, &enc).await;
            made.push((name, version));
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    for (name, version) in &made {
        let status = wait_status(&client, n, name, "Healthy", Some("Decrypted")).await;
        let uid = api(&client, n, "v1alpha3")
            .get(name)
            .await
            .unwrap()
            .metadata
            .uid
            .unwrap();
        assert_eq!(
            status["secrets"],
            json!([format!("{name}-jenkins"), format!("{name}-docker")]),
            "{name}"
        );
        let jenkins = secrets.get(&format!("{name}-jenkins")).await.unwrap();
        let mut want = vec![
            ("password".to_string(), "Pa$$word".to_string()),
            ("username".to_string(), "myUsername".to_string()),
        ];
        if *version != "v1alpha1" {
            want.insert(1, ("token".into(), "data-value1".into()));
        }
        assert_eq!(data(&jenkins), want, "{name}");
        assert_eq!(jenkins.type_.as_deref(), Some("Opaque"));
        assert_eq!(
            jenkins.metadata.labels.unwrap_or_default()["jenkins.io/credentials-type"],
            "usernamePassword"
        );
        assert_eq!(
            jenkins.metadata.annotations.unwrap_or_default()["jenkins.io/credentials-description"],
            "credentials from Kubernetes"
        );
        // The operator's owner reference: its storage version, controller, blocking deletion.
        let owner = &jenkins.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str()
            ),
            (
                "isindir.github.com/v1alpha3",
                "SopsSecret",
                name.as_str(),
                uid.as_str()
            )
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        let docker = secrets.get(&format!("{name}-docker")).await.unwrap();
        assert_eq!(
            docker.type_.as_deref(),
            Some("kubernetes.io/dockerconfigjson")
        );
        assert_eq!(
            data(&docker),
            [(
                ".dockerconfigjson".to_string(),
                "{\"auths\":{}}".to_string()
            )]
        );
    }
}

fn swap_names(enc: &mut Value) {
    let templates = &mut enc["spec"]["secretTemplates"];
    let first = templates[0]["name"].clone();
    assert!(first.as_str().unwrap().starts_with("ENC["), "{first}");
    templates[0]["name"] = templates[1]["name"].clone();
    templates[1]["name"] = first;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_value_is_refused_unless_the_admin_lets_the_annotation_skip_the_mac() {
    let (ns, client) = setup_isindir("isindir-mac").await;
    let n = ns.name();
    let _ctl = start(
        n,
        &[
            &format!("--sops-trusted-namespaces={n}"),
            &format!("--isindir-unverified-mac-namespaces={n}"),
        ],
    )
    .await;
    let sb = Sandbox::new();
    for (i, release) in SopsRelease::ALL.into_iter().enumerate() {
        let name = format!("tampered-{i}");
        let mut enc = sops_encrypt(&sb, release, "t.yaml", &small(&name, n));
        // The two templates' names swapped: each still decrypts (its additional data is its
        // path, the same for both), so the jenkins values would land in the docker Secret;
        // only the MAC notices.
        swap_names(&mut enc);
        create(&client, n, &enc).await;
        let status = wait_status(&client, n, &name, "Decryption error", Some("MacMismatch")).await;
        assert!(!status.to_string().contains("myUsername"), "{status}");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
        assert!(secrets
            .get_opt(&format!("{name}-jenkins"))
            .await
            .unwrap()
            .is_none());

        // The opt-out, where the admin allows it: the operator's behaviour.
        let skipped = format!("skipped-{i}");
        let mut enc = sops_encrypt(&sb, release, "s.yaml", &small(&skipped, n));
        enc["metadata"]["annotations"] = json!({"enseal.dev/unverified-mac": "true"});
        swap_names(&mut enc);
        create(&client, n, &enc).await;
        wait_status(&client, n, &skipped, "Healthy", Some("Decrypted")).await;
        // What the operator would write: the swap went through.
        let docker = secrets.get(&format!("{skipped}-docker")).await.unwrap();
        assert_eq!(docker.data.unwrap()["username"].0, b"myUsername");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_existing_secrets_follow_the_operators_rules() {
    let (ns, client) = setup_isindir("isindir-own").await;
    let n = ns.name();
    let _ctl = start(n, &[]).await;
    let sb = Sandbox::new();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);

    // Suspended: nothing decrypted or written.
    let text = object("v1alpha3", "paused", n).replace("suspend: false", "suspend: true");
    create(
        &client,
        n,
        &sops_encrypt(&sb, SopsRelease::V3_13, "p.yaml", &text),
    )
    .await;
    wait_status(&client, n, "paused", "Reconciliation is suspended", None).await;
    assert!(secrets.get_opt("paused-jenkins").await.unwrap().is_none());

    // A Secret made by hand is not taken ...
    let existing: Secret =
        serde_json::from_value(secret_json(n, "mine-jenkins", &[("old", "value")])).unwrap();
    secrets
        .create(&PostParams::default(), &existing)
        .await
        .unwrap();
    let enc = sops_encrypt(
        &sb,
        SopsRelease::V3_11,
        "m.yaml",
        &object("v1alpha2", "mine", n),
    );
    create(&client, n, &enc).await;
    wait_status(
        &client,
        n,
        "mine",
        "Child secret is not owned by controller error",
        Some("SecretNotOwned"),
    )
    .await;
    let kept = secrets.get("mine-jenkins").await.unwrap();
    assert_eq!(data(&kept), [("old".to_string(), "value".to_string())]);
    assert!(
        secrets.get_opt("mine-docker").await.unwrap().is_none(),
        "one foreign Secret stops all"
    );

    // ... until it is annotated sopssecret/managed: "true"; then it is the object's alone.
    secrets
        .patch(
            "mine-jenkins",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"sopssecret/managed": "true"}}})),
        )
        .await
        .unwrap();
    wait_status(&client, n, "mine", "Healthy", Some("Decrypted")).await;
    let taken = secrets.get("mine-jenkins").await.unwrap();
    assert_eq!(
        data(&taken).into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
        ["password", "token", "username"]
    );
    let owners = taken.metadata.owner_references.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].name.as_str()),
        ("SopsSecret", "mine")
    );

    // enforceOwnership (under the MAC) takes one over without the annotation.
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(secret_json(n, "forced-jenkins", &[("old", "value")])).unwrap(),
        )
        .await
        .unwrap();
    let text = object("v1alpha3", "forced", n).replace(
        "  suspend: false\n",
        "  suspend: false\n  enforceOwnership: true\n",
    );
    create(
        &client,
        n,
        &sops_encrypt(&sb, SopsRelease::V3_13, "f.yaml", &text),
    )
    .await;
    wait_status(&client, n, "forced", "Healthy", Some("Decrypted")).await;
    let forced = secrets.get("forced-jenkins").await.unwrap();
    assert!(
        data(&forced).iter().all(|(k, _)| k != "old"),
        "{:?}",
        data(&forced)
    );
}

/// The controller's keys open an object outside --sops-trusted-namespaces only when its
/// verified metadata.namespace names the namespace: a tenant's copy of another team's object
/// (namespace rewritten, or dropped) makes no Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_move_another_namespaces_object_into_theirs() {
    let (ns, client) = setup_isindir("isindir-tenant").await;
    let n = ns.name();
    let _ctl = start(n, &[]).await;
    let sb = Sandbox::new();
    let other = format!("{n}-other");
    let mut enc = sops_encrypt(&sb, SopsRelease::V3_13, "o.yaml", &small("copied", &other));
    enc["metadata"]["namespace"] = json!(n);
    create(&client, n, &enc).await;
    let status = wait_status(
        &client,
        n,
        "copied",
        "Decryption error",
        Some("MacMismatch"),
    )
    .await;
    assert!(!status.to_string().contains("myUsername"), "{status}");

    // Encrypted without a namespace: verified, but bound to none.
    let text = small("unbound", n).replace(&format!("  namespace: {n}\n"), "");
    create(
        &client,
        n,
        &sops_encrypt(&sb, SopsRelease::V3_11, "u.yaml", &text),
    )
    .await;
    wait_status(
        &client,
        n,
        "unbound",
        "Decryption error",
        Some("NamespaceNotBound"),
    )
    .await;
    // The opt-out annotation, where the admin has not listed the namespace: ignored, the
    // changed object is refused.
    let mut enc = sops_encrypt(&sb, SopsRelease::V3_13, "a.yaml", &small("annotated", n));
    enc["metadata"]["annotations"] = json!({"enseal.dev/unverified-mac": "true"});
    swap_names(&mut enc);
    create(&client, n, &enc).await;
    wait_status(
        &client,
        n,
        "annotated",
        "Decryption error",
        Some("MacMismatch"),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    for s in ["copied-jenkins", "unbound-jenkins", "annotated-docker"] {
        assert!(secrets.get_opt(s).await.unwrap().is_none(), "{s}");
    }
}
