//! enseal-controller against the real API server: SealedSecrets made by the
//! real kubeseal become native Secrets, with Sealed Secrets' ownership,
//! status and Event behaviour. Fails (never skips) when the control plane or
//! kubeseal is missing.

use enseal_tests::cluster;
use enseal_tests::controller::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

async fn adopted_key_and_controller(
    prefix: &str,
) -> (cluster::TestNamespace, kube::Client, TestKey, Controller) {
    let (ns, client) = setup(prefix).await;
    let key = TestKey::generate(2048);
    key.store(&client, ns.name(), "sealed-secrets-keyadopted")
        .await;
    let ctl = Controller::start(Options::new(ns.name())).await;
    (ns, client, key, ctl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_delete_follow_the_sealedsecret() {
    let (ns, client, key, _ctl) = adopted_key_and_controller("ctl-lifecycle").await;
    let n = ns.name();
    let sealed = kubeseal(
        &key.cert_path(),
        "strict",
        &secret_json(n, "db", &[("user", "admin"), ("pass", "s3cr3t")]),
    );
    let created = create_ss(&client, n, &sealed).await;
    let uid = created.metadata.uid.clone().unwrap();

    let secret = wait_secret(&client, n, "db", |s| {
        value(s, "pass").as_deref() == Some("s3cr3t")
    })
    .await
    .expect("the Secret appears with the unsealed values");
    assert_eq!(value(&secret, "user").as_deref(), Some("admin"));
    let owner = &secret
        .metadata
        .owner_references
        .as_ref()
        .expect("an ownerReference")[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        ("SealedSecret", "db", uid.as_str(), Some(true))
    );
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let cond = wait_synced(&client, n, "db", "True")
        .await
        .expect("Synced=True");
    assert!(
        cond["lastTransitionTime"].is_string() && cond["lastUpdateTime"].is_string(),
        "{cond}"
    );
    let obj = ss_api(&client, n).get("db").await.unwrap();
    assert_eq!(
        obj.data.pointer("/status/observedGeneration"),
        obj.metadata
            .generation
            .map(serde_json::Value::from)
            .as_ref()
    );
    wait_event(&client, n, "db", "Unsealed")
        .await
        .expect("an Unsealed Event");

    // Update: a new value sealed for the same object replaces the old one.
    let resealed = kubeseal(
        &key.cert_path(),
        "strict",
        &secret_json(n, "db", &[("pass", "rotated")]),
    );
    let mut obj = ss_api(&client, n).get("db").await.unwrap();
    obj.data["spec"]["encryptedData"] = resealed["spec"]["encryptedData"].clone();
    ss_api(&client, n)
        .replace("db", &PostParams::default(), &obj)
        .await
        .unwrap();
    let secret = wait_secret(&client, n, "db", |s| {
        value(s, "pass").as_deref() == Some("rotated")
    })
    .await
    .expect("the Secret follows the update");
    assert_eq!(
        value(&secret, "user"),
        None,
        "a key dropped from the SealedSecret leaves the Secret"
    );

    // Delete: the garbage collector removes the Secret through the ownerReference.
    ss_api(&client, n)
        .delete("db", &DeleteParams::background())
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let gone = cluster::eventually(WAIT, || async {
        secrets
            .get_opt("db")
            .await
            .ok()
            .and_then(|s| s.is_none().then_some(()))
    })
    .await;
    assert!(
        gone.is_some(),
        "the Secret is garbage-collected with its SealedSecret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scope_opens_and_a_value_moved_out_of_its_scope_is_refused() {
    let (ns, client, key, _ctl) = adopted_key_and_controller("ctl-scopes").await;
    let n = ns.name();
    for (scope, name) in [
        ("strict", "s-strict"),
        ("namespace-wide", "s-nswide"),
        ("cluster-wide", "s-cwide"),
    ] {
        let sealed = kubeseal(
            &key.cert_path(),
            scope,
            &secret_json(n, name, &[("k", scope)]),
        );
        create_ss(&client, n, &sealed).await;
    }
    for (scope, name) in [
        ("strict", "s-strict"),
        ("namespace-wide", "s-nswide"),
        ("cluster-wide", "s-cwide"),
    ] {
        wait_secret(&client, n, name, |s| {
            value(s, "k").as_deref() == Some(scope)
        })
        .await
        .unwrap_or_else(|| panic!("{scope} value not unsealed"));
    }

    // A strict value copied under another name must not open.
    let mut moved = kubeseal(
        &key.cert_path(),
        "strict",
        &secret_json(n, "original", &[("k", "v")]),
    );
    moved["metadata"]["name"] = json!("renamed");
    create_ss(&client, n, &moved).await;
    let cond = wait_synced(&client, n, "renamed", "False")
        .await
        .expect("Synced=False for a renamed strict object");
    assert_eq!(cond["reason"], "DecryptFailed", "{cond}");
    let msg = cond["message"].as_str().unwrap();
    assert!(
        msg.contains("encryptedData[k]") && msg.contains("strict"),
        "{msg}"
    );
    wait_event(&client, n, "renamed", "ErrUnsealFailed")
        .await
        .expect("an ErrUnsealFailed Event");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    assert!(secrets.get_opt("renamed").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_metadata_type_immutable_and_data_shape_the_secret() {
    let (ns, client, key, _ctl) = adopted_key_and_controller("ctl-template").await;
    let n = ns.name();
    let mut sealed = kubeseal(
        &key.cert_path(),
        "strict",
        &secret_json(n, "web", &[("user", "u"), ("password", "p")]),
    );
    sealed["spec"]["template"] = json!({
        "metadata": {"name": "web", "namespace": n, "labels": {"app": "web"}, "annotations": {"team": "a"}},
        "type": "kubernetes.io/basic-auth",
        "immutable": true,
        "data": {"literal": "plain text", "dsn": "postgres://{{ .user }}:{{ index . \"password\" }}@db"}
    });
    create_ss(&client, n, &sealed).await;
    let s = wait_secret(&client, n, "web", |_| true)
        .await
        .expect("the Secret appears");
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    assert_eq!(s.immutable, Some(true));
    assert_eq!(s.metadata.labels.as_ref().unwrap()["app"], "web");
    assert_eq!(s.metadata.annotations.as_ref().unwrap()["team"], "a");
    assert_eq!(value(&s, "literal").as_deref(), Some("plain text"));
    assert_eq!(value(&s, "dsn").as_deref(), Some("postgres://u:p@db"));
    assert_eq!(value(&s, "user").as_deref(), Some("u"));
    wait_synced(&client, n, "web", "True")
        .await
        .expect("Synced=True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_secret_is_left_alone_unless_it_says_managed_or_patch() {
    let (ns, client, key, _ctl) = adopted_key_and_controller("ctl-foreign").await;
    let n = ns.name();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let foreign = |name: &str, annotations: &[(&str, &str)]| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        data: Some(
            [
                ("mine".to_owned(), ByteString(b"keep".to_vec())),
                ("k".to_owned(), ByteString(b"old".to_vec())),
            ]
            .into(),
        ),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &foreign("plain", &[]))
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &foreign("managed", &[("sealedsecrets.bitnami.com/managed", "true")]),
        )
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &foreign("patched", &[("sealedsecrets.bitnami.com/patch", "true")]),
        )
        .await
        .unwrap();
    for name in ["plain", "managed", "patched"] {
        create_ss(
            &client,
            n,
            &kubeseal(
                &key.cert_path(),
                "strict",
                &secret_json(n, name, &[("k", "new")]),
            ),
        )
        .await;
    }

    let cond = wait_synced(&client, n, "plain", "False")
        .await
        .expect("Synced=False for a foreign Secret");
    assert_eq!(cond["reason"], "SecretNotOwned", "{cond}");
    assert!(cond["message"]
        .as_str()
        .unwrap()
        .contains("not managed by SealedSecret"));
    wait_event(&client, n, "plain", "ErrUpdateFailed")
        .await
        .expect("an ErrUpdateFailed Event");
    let plain = secrets.get("plain").await.unwrap();
    assert_eq!(
        value(&plain, "k").as_deref(),
        Some("old"),
        "a foreign Secret is not overwritten"
    );
    assert!(plain.metadata.owner_references.is_none());

    let managed = wait_secret(&client, n, "managed", |s| {
        value(s, "k").as_deref() == Some("new")
    })
    .await
    .expect("managed is taken over");
    assert_eq!(value(&managed, "mine"), None, "take-over replaces the data");
    assert!(
        managed.metadata.owner_references.is_some(),
        "take-over sets the ownerReference"
    );

    let patched = wait_secret(&client, n, "patched", |s| {
        value(s, "k").as_deref() == Some("new")
    })
    .await
    .expect("patch merges");
    assert_eq!(
        value(&patched, "mine").as_deref(),
        Some("keep"),
        "patch keeps the other keys"
    );
    assert!(
        patched.metadata.owner_references.is_none(),
        "patch alone sets no ownerReference"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_edited_or_deleted_by_hand_is_restored() {
    let (ns, client, key, _ctl) = adopted_key_and_controller("ctl-drift").await;
    let n = ns.name();
    create_ss(
        &client,
        n,
        &kubeseal(
            &key.cert_path(),
            "strict",
            &secret_json(n, "app", &[("token", "t0k3n")]),
        ),
    )
    .await;
    wait_secret(&client, n, "app", |s| {
        value(s, "token").as_deref() == Some("t0k3n")
    })
    .await
    .expect("unsealed");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);

    secrets
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"token": "aGFja2Vk", "extra": "eA=="}})),
        )
        .await
        .unwrap();
    wait_secret(&client, n, "app", |s| {
        value(s, "token").as_deref() == Some("t0k3n") && value(s, "extra").is_none()
    })
    .await
    .expect("a hand edit is reverted");

    secrets
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    wait_secret(&client, n, "app", |s| {
        value(s, "token").as_deref() == Some("t0k3n")
    })
    .await
    .expect("a deleted Secret is recreated");
}

/// Issue 16: the Secret is created by a server-side apply under the SealedSecret kind's field
/// manager, not a POST, so it carries one `Apply` entry and nothing else of ours. That is what
/// makes the next process's apply of the same content (after a restart or failover) write
/// nothing (pinned by `controller_faults`), and what lets a label or annotation dropped from
/// the template leave the Secret: a POST's `Update` entry kept owning them after any apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_is_created_by_apply_so_metadata_dropped_from_the_template_leaves_it() {
    let (ns, client, key, _ctl) = adopted_key_and_controller("ctl-apply").await;
    let n = ns.name();
    let mut sealed = kubeseal(
        &key.cert_path(),
        "strict",
        &secret_json(n, "cfg", &[("token", "t0k3n")]),
    );
    sealed["spec"]["template"] = json!({
        "metadata": {
            "name": "cfg", "namespace": n,
            "labels": {"app": "cfg", "tier": "gold"},
            "annotations": {"team": "a", "note": "temporary"}
        }
    });
    create_ss(&client, n, &sealed).await;
    let s = wait_secret(&client, n, "cfg", |s| {
        value(s, "token").as_deref() == Some("t0k3n")
    })
    .await
    .expect("the Secret appears");
    let entries: Vec<(Option<&str>, Option<&str>)> = s
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.as_deref(), m.operation.as_deref()))
        .collect();
    assert_eq!(
        entries,
        [(Some("enseal-controller-sealedsecret"), Some("Apply"))],
        "the Secret's managedFields"
    );
    wait_synced(&client, n, "cfg", "True")
        .await
        .expect("Synced=True");

    ss_api(&client, n)
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {
                "labels": {"tier": null},
                "annotations": {"note": null}
            }}}})),
        )
        .await
        .unwrap();
    let s = wait_secret(&client, n, "cfg", |s| {
        let labels = s.metadata.labels.clone().unwrap_or_default();
        let annotations = s.metadata.annotations.clone().unwrap_or_default();
        !labels.contains_key("tier") && !annotations.contains_key("note")
    })
    .await
    .expect("the label and annotation dropped from the template leave the Secret");
    assert_eq!(s.metadata.labels.as_ref().unwrap()["app"], "cfg");
    assert_eq!(s.metadata.annotations.as_ref().unwrap()["team"], "a");
    assert_eq!(value(&s, "token").as_deref(), Some("t0k3n"));
}

/// The API server behaviour the controller's create relies on (`ABSENT` in
/// controller/src/status.rs): a server-side apply carrying a resourceVersion that no object
/// can have creates a Secret that is absent, and fails with 409 Conflict, writing nothing, on
/// one that exists, as a POST would. Without it, a Secret created by someone else between the
/// controller's check and its write would be taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_with_an_impossible_resource_version_creates_only() {
    let (ns, client) = setup("ctl-absent").await;
    let secrets: Api<Secret> = Api::namespaced(client, ns.name());
    let only_create = |name: &str| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "resourceVersion": "18446744073709551615"},
            "data": {"token": "dDBrM24="}
        })
    };
    let params = PatchParams::apply("enseal-test").force();
    let created = secrets
        .patch("fresh", &params, &Patch::Apply(only_create("fresh")))
        .await
        .expect("an absent Secret is created");
    assert_eq!(value(&created, "token").as_deref(), Some("t0k3n"));

    let theirs = secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("theirs".into()),
                    ..ObjectMeta::default()
                },
                data: Some([("mine".to_owned(), ByteString(b"not yours".to_vec()))].into()),
                ..Secret::default()
            },
        )
        .await
        .unwrap();
    let refused = secrets
        .patch("theirs", &params, &Patch::Apply(only_create("theirs")))
        .await
        .expect_err("an existing Secret is not written");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 409),
        "{refused}"
    );
    let after = secrets.get("theirs").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        theirs.metadata.resource_version
    );
    assert_eq!(value(&after, "token"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_are_reported_and_other_objects_still_reconcile() {
    let (ns, client, key, ctl) = adopted_key_and_controller("ctl-malformed").await;
    let n = ns.name();
    let mut bad = kubeseal(
        &key.cert_path(),
        "strict",
        &secret_json(n, "bad", &[("k", "v")]),
    );
    bad["spec"]["encryptedData"]["k"] = json!("bm90IGEgc2VhbGVkIHZhbHVl");
    bad["spec"]["encryptedData"]["notbase64"] = json!("%%%");
    create_ss(&client, n, &bad).await;
    // Sealed for someone else's key entirely.
    let other = TestKey::generate(2048);
    create_ss(
        &client,
        n,
        &kubeseal(
            &other.cert_path(),
            "strict",
            &secret_json(n, "wrongkey", &[("k", "v")]),
        ),
    )
    .await;
    create_ss(
        &client,
        n,
        &kubeseal(
            &key.cert_path(),
            "strict",
            &secret_json(n, "good", &[("k", "n0t-1n-l0gs")]),
        ),
    )
    .await;

    let cond = wait_synced(&client, n, "bad", "False")
        .await
        .expect("Synced=False for a malformed value");
    assert_eq!(cond["reason"], "MalformedValue", "{cond}");
    wait_event(&client, n, "bad", "ErrUnsealFailed")
        .await
        .expect("an ErrUnsealFailed Event");
    let cond = wait_synced(&client, n, "wrongkey", "False")
        .await
        .expect("Synced=False for another key");
    assert_eq!(cond["reason"], "DecryptFailed", "{cond}");
    wait_secret(&client, n, "good", |s| {
        value(s, "k").as_deref() == Some("n0t-1n-l0gs")
    })
    .await
    .expect("the good object still reconciles");

    let metrics = ctl.metrics();
    assert!(
        metrics.contains("enseal_controller_reconcile_errors_total{reason=\"MalformedValue\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("enseal_controller_reconcile_errors_total{reason=\"DecryptFailed\"}"),
        "{metrics}"
    );
    // No value ever reaches the log.
    let log = ctl.log_text();
    assert!(
        !log.contains("n0t-1n-l0gs"),
        "a secret value was logged:\n{log}"
    );
}

/// The deprecated single-blob `spec.data` (the whole Secret sealed as one value): the
/// controller and `enseal unseal` of a backup give the same Secret, because both go through
/// enseal_sealing's one unseal; and both refuse `spec.data` beside `encryptedData`, as Sealed
/// Secrets does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_blob_unseals_the_same_in_the_cli_and_the_controller() {
    use enseal_sealing::{keys, manifest, Scope};
    let (ns, client, key, _ctl) = adopted_key_and_controller("ctl-legacy").await;
    let n = ns.name();
    let cert = keys::parse_certificate_pem(key.cert_pem.as_bytes()).unwrap();
    let blob_for = |name: &str| {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": n, "labels": {"from": "blob"}},
            "type": "Opaque", "data": {"a": "eA=="}, "stringData": {"b": "y"}});
        enseal_sealing::seal_base64(
            &cert.public_key,
            &Scope::Strict.label(n, name),
            secret.to_string().as_bytes(),
        )
        .unwrap()
    };
    let legacy = json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "legacy", "namespace": n},
        // The CRD requires encryptedData; empty, the blob is read.
        "spec": {"data": blob_for("legacy"), "encryptedData": {}}});
    let both = json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "both", "namespace": n},
        "spec": {"data": blob_for("both"),
                 "encryptedData": kubeseal(&key.cert_path(), "strict",
                     &secret_json(n, "both", &[("c", "z")]))["spec"]["encryptedData"]}});
    create_ss(&client, n, &legacy).await;
    create_ss(&client, n, &both).await;

    let in_cluster = wait_secret(&client, n, "legacy", |s| {
        value(s, "a").as_deref() == Some("x")
    })
    .await
    .expect("the controller unseals a legacy blob");
    let cluster_values: std::collections::BTreeMap<String, String> = ["a", "b"]
        .iter()
        .map(|k| (k.to_string(), value(&in_cluster, k).unwrap_or_default()))
        .collect();
    assert_eq!(in_cluster.metadata.labels.as_ref().unwrap()["from"], "blob");
    let cond = wait_synced(&client, n, "both", "False")
        .await
        .expect("Synced=False for spec.data beside encryptedData");
    assert_eq!(cond["reason"], "MalformedValue", "{cond}");

    let sb = enseal_tests::cli::Sandbox::new();
    let key_path = key.key_path();
    let key_path = key_path.to_str().unwrap();
    sb.write("legacy.json", legacy.to_string());
    let out = sb.enseal(["unseal", "--private-key", key_path, "legacy.json"]);
    out.assert_success("enseal unseal of a legacy blob");
    let doc = manifest::parse_documents(&out.stdout).unwrap().remove(0);
    let from_cli: enseal_sealing::Secret = manifest::decode(0, doc, "Secret").unwrap();
    // The API server merges stringData into data; the CLI prints the Secret as sealed.
    let cli_values: std::collections::BTreeMap<String, String> = from_cli
        .data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .chain(
            from_cli
                .string_data
                .iter()
                .map(|(k, v)| (k.clone(), v.0.to_string())),
        )
        .collect();
    assert_eq!(cli_values, cluster_values, "CLI and controller agree");
    assert_eq!(from_cli.metadata.labels["from"], "blob");
    assert_eq!(from_cli.metadata.name.as_deref(), Some("legacy"));

    sb.write("both.json", both.to_string());
    let out = sb.enseal(["unseal", "--private-key", key_path, "both.json"]);
    assert!(!out.success());
    assert!(
        out.stderr_str().contains("cannot be used at the same time"),
        "{}",
        out.stderr_str()
    );
}
