//! enseal-controller's SopsSecrets (enseal.dev/v1alpha1) against the real API server: files
//! encrypted by the real `enseal` CLI, wrapped by `enseal sops-secret`, decrypted in the cluster
//! with age keys from a key Secret or with KMS (a local moto server). Fails (never skips) when
//! the control plane, the binaries or moto are missing.

use enseal_tests::cli::Sandbox;
use enseal_tests::controller::*;
use enseal_tests::{cluster, moto, peers};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::ByteString;
use kube::api::{DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

const KEY_SECRET: &str = "sops-age";

fn sops_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &cluster::sops_secret_resource())
}

/// Test namespace, both CRDs, admin client.
async fn setup_sops(prefix: &str) -> (cluster::TestNamespace, Client) {
    let (ns, client) = setup(prefix).await;
    let text = std::fs::read_to_string(repo_root().join("deploy/crds/enseal.dev_sopssecrets.yaml"))
        .expect("reading the SopsSecret CRD");
    let crd: CustomResourceDefinition =
        serde_json::from_value(yaml_to_json(&text)).expect("the CRD YAML is a CRD");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "sopssecrets.enseal.dev",
        &PatchParams::apply("enseal-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("applying the SopsSecret CRD");
    let api = sops_api(&client, ns.name());
    let served = cluster::eventually(WAIT, || async {
        api.list(&ListParams::default()).await.ok()
    })
    .await;
    assert!(served.is_some(), "sopssecrets are never served");
    (ns, client)
}

async fn store_age_keys(client: &Client, ns: &str, entries: &[(&str, String)]) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(KEY_SECRET.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            KEY_SECRET,
            &PatchParams::apply("enseal-tests").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("storing the age key Secret");
}

/// The controller with the age key Secret and the default tenancy: its keys open only files
/// bound to the namespace (Secret manifests naming it).
async fn start(ns: &str, env: Vec<(String, String)>) -> Controller {
    start_with(ns, env, &[], "enseal-controller").await
}

/// The controller trusting `ns` (`--sops-trusted-namespaces`): its keys open files that name
/// no namespace there, as flat files, dotenv and JSON do. For the tests whose subject is not
/// the namespace binding.
async fn start_trusting(ns: &str, env: Vec<(String, String)>) -> Controller {
    start_with(
        ns,
        env,
        &[&format!("--sops-trusted-namespaces={ns}")],
        "enseal-controller",
    )
    .await
}

async fn start_with(
    ns: &str,
    env: Vec<(String, String)>,
    extra: &[&str],
    lease: &str,
) -> Controller {
    let mut opts = Options::new(ns);
    opts.extra = vec!["--sops-age-key-secret".into(), KEY_SECRET.into()];
    opts.extra.extend(extra.iter().map(|a| a.to_string()));
    opts.env = env;
    opts.lease_name = lease;
    Controller::start(opts).await
}

/// `enseal encrypt ARGS FILE` of `plain` written as `name`; the encrypted text.
fn encrypt(sb: &Sandbox, name: &str, plain: &str, args: &[&str]) -> String {
    let path = sb.write(name, plain);
    let mut all: Vec<String> = vec!["encrypt".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.push(path.display().to_string());
    let out = sb.enseal(&all);
    out.assert_success("enseal encrypt");
    let text = out.stdout_str();
    sb.write(name, &text);
    text
}

/// `enseal sops-secret FILE --namespace NS` (YAML), parsed.
fn manifest(sb: &Sandbox, name: &str, ns: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "sops-secret".to_string(),
        sb.file(name).display().to_string(),
        "--namespace".into(),
        ns.into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let out = sb.enseal(&args);
    out.assert_success("enseal sops-secret");
    yaml_to_json(&out.stdout_str())
}

async fn create(client: &Client, ns: &str, manifest: &Value) -> DynamicObject {
    let obj: DynamicObject = serde_json::from_value(manifest.clone()).expect("a SopsSecret");
    sops_api(client, ns)
        .create(&PostParams::default(), &obj)
        .await
        .expect("creating the SopsSecret as enseal sops-secret printed it")
}

/// The `Synced` condition once it has `status` and `reason`.
async fn wait_condition(
    client: &Client,
    ns: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> Value {
    wait_condition_within(WAIT, client, ns, name, status, reason).await
}

async fn wait_condition_within(
    wait: std::time::Duration,
    client: &Client,
    ns: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> Value {
    let api = sops_api(client, ns);
    let last = std::sync::Mutex::new(Value::Null);
    let found = cluster::eventually(wait, || async {
        let obj = api.get(name).await.ok()?;
        let cond = obj
            .data
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Synced")?
            .clone();
        *last.lock().unwrap() = cond.clone();
        (cond["status"] == status && cond["reason"] == reason).then_some(cond)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "SopsSecret {name}: never Synced={status} ({reason}); last condition: {}",
            last.lock().unwrap()
        )
    })
}

fn owner_of(secret: &Secret) -> (String, String, String, Option<bool>) {
    let o = &secret
        .metadata
        .owner_references
        .as_ref()
        .expect("an ownerReference")[0];
    (
        o.api_version.clone(),
        o.kind.clone(),
        o.uid.clone(),
        o.controller,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_key_from_the_key_secret_decrypts_a_secret_stream_and_repairs_drift() {
    let (ns, client) = setup_sops("sops-age").await;
    let n = ns.name();
    store_age_keys(&client, n, &[("a.agekey", peers::identities(&["a"]))]).await;
    let ctl = start(n, vec![]).await;

    let sb = Sandbox::new();
    // Both manifests name the namespace: the controller's keys open a file bound to it.
    let plain = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {n}\n  labels:\n    app: shop\ntype: kubernetes.io/basic-auth\nstringData:\n  username: admin\n  password: s3cr3t-pw\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: {n}\ndata:\n  token: dG9rLTEyMw==\n");
    encrypt(&sb, "app.yaml", &plain, &["--age", &peers::recipient("a")]);
    let m = manifest(&sb, "app.yaml", n, &[]);
    assert_eq!(m["metadata"]["name"], "app");
    assert!(
        !m.to_string().contains("s3cr3t-pw"),
        "the manifest holds no plaintext"
    );
    let created = create(&client, n, &m).await;
    let uid = created.metadata.uid.clone().unwrap();

    let db = wait_secret(&client, n, "db", |s| {
        value(s, "password").as_deref() == Some("s3cr3t-pw")
    })
    .await
    .expect("Secret db appears with the decrypted values");
    assert_eq!(value(&db, "username").as_deref(), Some("admin"));
    assert_eq!(db.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    assert_eq!(db.metadata.labels.as_ref().unwrap()["app"], "shop");
    assert_eq!(
        owner_of(&db),
        (
            "enseal.dev/v1alpha1".into(),
            "SopsSecret".into(),
            uid.clone(),
            Some(true)
        )
    );
    let api_secret = wait_secret(&client, n, "api", |s| {
        value(s, "token").as_deref() == Some("tok-123")
    })
    .await
    .expect("Secret api appears (second document of the stream)");
    assert_eq!(owner_of(&api_secret).2, uid);
    let cond = wait_condition(&client, n, "app", "True", "Decrypted").await;
    assert!(cond["lastTransitionTime"].is_string(), "{cond}");
    let obj = sops_api(&client, n).get("app").await.unwrap();
    assert_eq!(
        obj.data.pointer("/status/observedGeneration"),
        obj.metadata.generation.map(Value::from).as_ref()
    );
    assert_eq!(
        obj.data.pointer("/status/secrets"),
        Some(&json!(["db", "api"]))
    );
    wait_event(&client, n, "app", "Decrypted")
        .await
        .expect("a Decrypted Event");

    // Drift: a hand edit of a value and an added key are put back.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    secrets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"password": "aGFja2Vk", "extra": "eA=="}})),
        )
        .await
        .unwrap();
    wait_secret(&client, n, "db", |s| {
        value(s, "password").as_deref() == Some("s3cr3t-pw") && value(s, "extra").is_none()
    })
    .await
    .expect("the hand-edited Secret is repaired");
    // Deleted by hand: recreated.
    secrets.delete("api", &Default::default()).await.unwrap();
    wait_secret(&client, n, "api", |s| {
        value(s, "token").as_deref() == Some("tok-123")
    })
    .await
    .expect("the deleted Secret is recreated");

    let log = ctl.log_text();
    for v in ["s3cr3t-pw", "tok-123", "AGE-SECRET-KEY"] {
        assert!(!log.contains(v), "the controller log holds {v:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_keys_are_used_through_the_aws_environment() {
    let (ns, client) = setup_sops("sops-kms").await;
    let n = ns.name();
    let moto = moto::moto();
    let arn = moto.create_key(moto::REGION);
    let mut env: Vec<(String, String)> = moto
        .aws_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    for var in ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"] {
        env.push((
            var.into(),
            scratch.path().join("none").display().to_string(),
        ));
    }
    // No age key Secret at all: only KMS can open the file.
    let _ctl = start_trusting(n, env.clone()).await;

    let mut sb = Sandbox::new();
    for (k, v) in &env {
        sb.env(k, v);
    }
    encrypt(
        &sb,
        "service.env",
        "DB_PASSWORD=kms-s3cret\nMODE=prod\n",
        &["--kms", &arn],
    );
    let m = manifest(&sb, "service.env", n, &["--name", "svc"]);
    assert_eq!(m["spec"]["format"], "dotenv");
    create(&client, n, &m).await;
    let secret = wait_secret(&client, n, "svc", |s| {
        value(s, "DB_PASSWORD").as_deref() == Some("kms-s3cret")
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the KMS-encrypted file is decrypted; moto log:\n{}",
            moto.log_text()
        )
    });
    assert_eq!(value(&secret, "MODE").as_deref(), Some("prod"));
    wait_condition(&client, n, "svc", "True", "Decrypted").await;
}

/// Replaces the `data:` of the first ENC[...] value with other valid base64.
fn tamper_first_value(encrypted: &str) -> String {
    let start = encrypted
        .find("ENC[AES256_GCM,data:")
        .expect("an encrypted value")
        + 20;
    let mut bytes = encrypted.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_resources_are_refused_and_make_no_secret() {
    let (ns, client) = setup_sops("sops-tamper").await;
    let n = ns.name();
    store_age_keys(&client, n, &[("a.agekey", peers::identities(&["a"]))]).await;
    let _ctl = start_trusting(n, vec![]).await;

    let sb = Sandbox::new();
    let text = encrypt(
        &sb,
        "t.yaml",
        "password: tamper-s3cret\nuser: bob\n",
        &["--age", &peers::recipient("a")],
    );
    let base = manifest(&sb, "t.yaml", n, &[]);

    // One ENC value changed: it no longer opens.
    let mut changed = base.clone();
    changed["metadata"]["name"] = json!("changed");
    changed["spec"]["encrypted"] = json!(tamper_first_value(&text));
    create(&client, n, &changed).await;
    let cond = wait_condition(&client, n, "changed", "False", "DecryptFailed").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(msg.contains("password"), "names the value's key: {msg}");
    assert!(
        !msg.contains("tamper-s3cret") && !msg.contains("bob"),
        "{msg}"
    );

    // One value dropped: the rest opens, the MAC does not match.
    let mut dropped = base.clone();
    dropped["metadata"]["name"] = json!("dropped");
    let without_user: String = text
        .lines()
        .filter(|l| !l.starts_with("user:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without_user, text);
    dropped["spec"]["encrypted"] = json!(without_user);
    create(&client, n, &dropped).await;
    wait_condition(&client, n, "dropped", "False", "MacMismatch").await;
    wait_event(&client, n, "dropped", "MacMismatch")
        .await
        .expect("a MacMismatch Event");

    // The untouched file still works, so the refusals above are the tampering's doing.
    create(&client, n, &base).await;
    wait_condition(&client, n, "t", "True", "Decrypted").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    for name in ["changed", "dropped"] {
        assert!(
            secrets.get_opt(name).await.unwrap().is_none(),
            "no Secret {name} from a tampered file"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_is_reported_and_a_key_added_later_is_used_without_restart() {
    let (ns, client) = setup_sops("sops-late").await;
    let n = ns.name();
    // The key Secret does not exist yet.
    let ctl = start_trusting(n, vec![]).await;

    let sb = Sandbox::new();
    encrypt(
        &sb,
        "late.yaml",
        "token: late-s3cret\n",
        &["--age", &peers::recipient("b")],
    );
    create(&client, n, &manifest(&sb, "late.yaml", n, &[])).await;
    let cond = wait_condition(&client, n, "late", "False", "NoKeys").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&peers::recipient("b")),
        "names the recipient needed: {msg}"
    );

    // A wrong key: tried and named.
    store_age_keys(&client, n, &[("a.agekey", peers::identities(&["a"]))]).await;
    let cond = wait_condition(&client, n, "late", "False", "DecryptFailed").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(msg.contains(&peers::recipient("b")), "{msg}");

    // The right key added to the same Secret: picked up by the running controller.
    let pid = ctl.pid();
    store_age_keys(
        &client,
        n,
        &[
            ("a.agekey", peers::identities(&["a"])),
            ("b.agekey", peers::identities(&["b"])),
        ],
    )
    .await;
    wait_condition(&client, n, "late", "True", "Decrypted").await;
    let secret = wait_secret(&client, n, "late", |s| {
        value(s, "token").as_deref() == Some("late-s3cret")
    })
    .await
    .expect("the Secret appears once the key is there");
    assert!(secret.metadata.owner_references.is_some());
    assert_eq!(ctl.pid(), pid);
    assert!(!ctl.log_text().contains("late-s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_someone_else_owns_is_left_alone() {
    let (ns, client) = setup_sops("sops-foreign").await;
    let n = ns.name();
    store_age_keys(&client, n, &[("a.agekey", peers::identities(&["a"]))]).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("taken".into()),
                    ..ObjectMeta::default()
                },
                data: Some([("mine".to_owned(), ByteString(b"keep".to_vec()))].into()),
                ..Secret::default()
            },
        )
        .await
        .unwrap();
    let _ctl = start_trusting(n, vec![]).await;

    let sb = Sandbox::new();
    encrypt(
        &sb,
        "taken.json",
        "{\"k\": \"v-s3cret\"}",
        &["--age", &peers::recipient("a")],
    );
    let out = sb.enseal(["sops-secret", "taken.json", "--namespace", n, "-o", "json"]);
    out.assert_success("enseal sops-secret -o json");
    let m: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(m["spec"]["format"], "json");
    create(&client, n, &m).await;
    let cond = wait_condition(&client, n, "taken", "False", "SecretNotOwned").await;
    assert!(
        cond["message"]
            .as_str()
            .unwrap_or_default()
            .contains("taken"),
        "{cond}"
    );
    let s = secrets.get("taken").await.unwrap();
    assert_eq!(value(&s, "mine").as_deref(), Some("keep"));
    assert!(value(&s, "k").is_none());
}

/// Issue #13 item 9: `spec.encrypted` is parsed before any key or MAC check, so its size is
/// what a tenant controls. Over 1 MiB it is refused unparsed, with a condition and an Event,
/// and the controller (same process) goes on serving and reconciling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_file_is_refused_unparsed_and_the_controller_carries_on() {
    let (ns, client) = setup_sops("sops-big").await;
    let n = ns.name();
    store_age_keys(&client, n, &[("a.agekey", peers::identities(&["a"]))]).await;
    let ctl = start_trusting(n, vec![]).await;
    let pid = ctl.pid();

    let sb = Sandbox::new();
    let text = encrypt(
        &sb,
        "big.yaml",
        "token: big-s3cret\n",
        &["--age", &peers::recipient("a")],
    );
    let mut big = manifest(&sb, "big.yaml", n, &[]);
    // Still a valid encrypted file (a trailing comment), just over the limit.
    let padding = format!("#{}\n", "x".repeat(1024 * 1024));
    big["spec"]["encrypted"] = json!(format!("{text}{padding}"));
    create(&client, n, &big).await;
    let cond = wait_condition(&client, n, "big", "False", "TooLarge").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(msg.contains("1048576"), "names the limit: {msg}");
    wait_event(&client, n, "big", "TooLarge")
        .await
        .expect("a TooLarge Event");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    assert!(secrets.get_opt("big").await.unwrap().is_none());

    // The same file within the limit decrypts, in the same process.
    encrypt(
        &sb,
        "small.yaml",
        "token: small-s3cret\n",
        &["--age", &peers::recipient("a")],
    );
    create(&client, n, &manifest(&sb, "small.yaml", n, &[])).await;
    wait_condition(&client, n, "small", "True", "Decrypted").await;
    assert_eq!(ctl.pid(), pid);
    assert_eq!(ctl.get("/healthz").0, 200);
    assert!(!ctl.log_text().contains("s3cret"));
}

/// Issue #13 item 11: both kinds used one field manager, so a SealedSecret with
/// skip-set-owner-references took the manager entry a SopsSecret left on its Secret for its
/// own, and overwrote that Secret. Each kind now has its own manager and refuses a Secret
/// another object controls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealedsecret_cannot_take_over_a_sopssecrets_secret() {
    let (ns, client) = setup_sops("sops-takeover").await;
    let n = ns.name();
    store_age_keys(&client, n, &[("a.agekey", peers::identities(&["a"]))]).await;
    let ctl = start_trusting(n, vec![]).await;

    let sb = Sandbox::new();
    encrypt(
        &sb,
        "shared.yaml",
        "token: sops-s3cret\n",
        &["--age", &peers::recipient("a")],
    );
    create(&client, n, &manifest(&sb, "shared.yaml", n, &[])).await;
    wait_secret(&client, n, "shared", |s| {
        value(s, "token").as_deref() == Some("sops-s3cret")
    })
    .await
    .expect("the SopsSecret's Secret");

    // A SealedSecret of the same name, sealed for this controller, asking for no owner.
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, ctl.get("/v1/cert.pem").1).unwrap();
    let mut ss = kubeseal(
        &cert,
        "strict",
        &secret_json(n, "shared", &[("token", "sealed-value")]),
    );
    ss["spec"]["template"]["metadata"]["annotations"] =
        json!({"sealedsecrets.bitnami.com/skip-set-owner-references": "true"});
    create_ss(&client, n, &ss).await;
    let cond = wait_synced(&client, n, "shared", "False")
        .await
        .expect("the SealedSecret is refused");
    assert_eq!(cond["reason"], "SecretNotOwned", "{cond}");
    wait_event(&client, n, "shared", "ErrUpdateFailed")
        .await
        .expect("an ErrUpdateFailed Event");
    let after = Api::<Secret>::namespaced(client.clone(), n)
        .get("shared")
        .await
        .unwrap();
    assert_eq!(value(&after, "token").as_deref(), Some("sops-s3cret"));
    assert_eq!(owner_of(&after).1, "SopsSecret");
    // And the SopsSecret still holds it, under its kind's own manager.
    wait_condition(&client, n, "shared", "True", "Decrypted").await;
    let managers: Vec<String> = after
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "enseal-controller-sopssecret"),
        "written under the SopsSecret kind's own manager: {managers:?}"
    );
}

/// A Secret manifest for namespace `ns` holding `password`.
fn secret_for(ns: &str, password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {ns}\nstringData:\n  password: {password}\n"
    )
}

/// Issue #13 item 8: team A's file (in Git, encrypted for the controller's key) copied into a
/// SopsSecret in team B's namespace became a Secret in B, readable by B: metadata.namespace was
/// ignored. Now the file is refused with a condition and an Event, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_teams_file_copied_into_this_namespace_is_refused() {
    let (ns, client) = setup_sops("sops-team-b").await;
    let team_a = cluster::namespace("sops-team-a").await;
    let n = ns.name();
    store_age_keys(&client, n, &[("a.agekey", peers::identities(&["a"]))]).await;
    let ctl = start(n, vec![]).await;

    let sb = Sandbox::new();
    encrypt(
        &sb,
        "team-a.yaml",
        &secret_for(team_a.name(), "team-a-s3cret"),
        &["--age", &peers::recipient("a")],
    );
    // The tenant of B wraps A's file for their own namespace.
    create(&client, n, &manifest(&sb, "team-a.yaml", n, &[])).await;
    let cond = wait_condition(&client, n, "team-a", "False", "NamespaceMismatch").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(msg.contains(n) && msg.contains("document 1"), "{msg}");
    assert!(!msg.contains("team-a-s3cret"), "{msg}");
    assert!(
        !msg.contains(team_a.name()),
        "the namespace the file names is not quoted (it may be encrypted): {msg}"
    );
    wait_event(&client, n, "team-a", "NamespaceMismatch")
        .await
        .expect("a NamespaceMismatch Event");

    // The same key opens a file bound to this namespace: the refusal is the binding's doing.
    encrypt(
        &sb,
        "own.yaml",
        &secret_for(n, "team-b-s3cret"),
        &["--age", &peers::recipient("a")],
    );
    create(&client, n, &manifest(&sb, "own.yaml", n, &[])).await;
    wait_condition(&client, n, "own", "True", "Decrypted").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let db = secrets.get("db").await.expect("the bound file's Secret");
    assert_eq!(value(&db, "password").as_deref(), Some("team-b-s3cret"));
    // Nothing of A's file anywhere: not in B (the Secret db is the bound file's), not in A.
    let a_secrets: Api<Secret> = Api::namespaced(client.clone(), team_a.name());
    assert!(a_secrets.get_opt("db").await.unwrap().is_none());
    let cond = wait_condition(&client, n, "team-a", "False", "NamespaceMismatch").await;
    assert_eq!(cond["status"], "False");
    assert!(!ctl.log_text().contains("s3cret"));
}

/// Issue #13 item 8: a flat file names no namespace, so the controller's keys do not open it
/// for a SopsSecret, unless the admin lists the namespace in --sops-trusted-namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flat_file_is_decrypted_by_the_controllers_keys_only_in_a_trusted_namespace() {
    let (ns, client) = setup_sops("sops-unbound").await;
    let n = ns.name();
    store_age_keys(&client, n, &[("a.agekey", peers::identities(&["a"]))]).await;
    let ctl = start(n, vec![]).await;

    let sb = Sandbox::new();
    encrypt(
        &sb,
        "flat.yaml",
        "token: flat-s3cret\n",
        &["--age", &peers::recipient("a")],
    );
    create(&client, n, &manifest(&sb, "flat.yaml", n, &[])).await;
    let cond = wait_condition(&client, n, "flat", "False", "NamespaceNotBound").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    for advice in [
        "metadata.namespace",
        "spec.decryption.secretRef",
        "--sops-trusted-namespaces",
    ] {
        assert!(msg.contains(advice), "says what to do ({advice}): {msg}");
    }
    assert!(!msg.contains("flat-s3cret"), "{msg}");
    wait_event(&client, n, "flat", "NamespaceNotBound")
        .await
        .expect("a NamespaceNotBound Event");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    assert!(secrets.get_opt("flat").await.unwrap().is_none());
    assert!(!ctl.log_text().contains("flat-s3cret"));
    drop(ctl);

    // The admin trusts the namespace (in a list): the same object decrypts.
    let trusted = format!("--sops-trusted-namespaces=other,{n}");
    let _ctl = start_with(n, vec![], &[&trusted], "enseal-controller-trusting").await;
    wait_condition(&client, n, "flat", "True", "Decrypted").await;
    let secret = secrets.get("flat").await.unwrap();
    assert_eq!(value(&secret, "token").as_deref(), Some("flat-s3cret"));
}

/// Issue #13 item 8: with spec.decryption.secretRef the file is opened with the age identities
/// of that Secret in the SopsSecret's namespace, and with nothing else: a file only the
/// controller's key opens is refused, even one bound to the namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_key_secret_opens_the_tenants_files_and_nothing_else() {
    let (ns, client) = setup_sops("sops-nskey").await;
    let n = ns.name();
    // The controller's key is a; the tenant's is b, in a Secret of their namespace.
    store_age_keys(&client, n, &[("a.agekey", peers::identities(&["a"]))]).await;
    let ctl = start(n, vec![]).await;
    let tenant_keys = |name: &str| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
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
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    secrets
        .create(&PostParams::default(), &tenant_keys("tenant-keys"))
        .await
        .unwrap();

    let sb = Sandbox::new();
    // The tenant's own flat file: no namespace binding needed with the tenant's key.
    encrypt(
        &sb,
        "mine.env",
        "TOKEN=tenant-s3cret\n",
        &["--age", &peers::recipient("b")],
    );
    let mine = manifest(&sb, "mine.env", n, &["--key-secret", "tenant-keys"]);
    assert_eq!(
        mine["spec"]["decryption"],
        json!({"secretRef": {"name": "tenant-keys"}})
    );
    create(&client, n, &mine).await;
    wait_condition(&client, n, "mine", "True", "Decrypted").await;
    let secret = secrets.get("mine").await.unwrap();
    assert_eq!(value(&secret, "TOKEN").as_deref(), Some("tenant-s3cret"));

    // A file for the controller's key only, bound to this namespace (the controller's keys
    // would open it without secretRef): with secretRef it is not opened.
    encrypt(
        &sb,
        "cluster.yaml",
        &secret_for(n, "cluster-s3cret"),
        &["--age", &peers::recipient("a")],
    );
    create(
        &client,
        n,
        &manifest(&sb, "cluster.yaml", n, &["--key-secret", "tenant-keys"]),
    )
    .await;
    let cond = wait_condition(&client, n, "cluster", "False", "NoKeys").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(msg.contains("tenant-keys"), "{msg}");
    assert!(!msg.contains("cluster-s3cret"), "{msg}");
    assert!(secrets.get_opt("db").await.unwrap().is_none());

    // A key Secret that does not exist yet: said so; once created it is used on the periodic
    // retry (a minute), without any change to the SopsSecret.
    let late = manifest(
        &sb,
        "mine.env",
        n,
        &["--key-secret", "late-keys", "--name", "late"],
    );
    create(&client, n, &late).await;
    wait_condition(&client, n, "late", "False", "KeySecretMissing").await;
    secrets
        .create(&PostParams::default(), &tenant_keys("late-keys"))
        .await
        .unwrap();
    wait_condition_within(
        std::time::Duration::from_secs(120),
        &client,
        n,
        "late",
        "True",
        "Decrypted",
    )
    .await;
    let log = ctl.log_text();
    for v in ["tenant-s3cret", "cluster-s3cret", "AGE-SECRET-KEY"] {
        assert!(!log.contains(v), "the controller log holds {v:?}:\n{log}");
    }
}

/// Issue #14, Flux's layout: a file sops 3.13.3 encrypted for a GnuPG key only (no age) opens in
/// the controller, whose image has no gpg, with the armored secret key as an `*.asc` entry of
/// the key Secret. Without it the condition names the PGP key the file needs; with the wrong
/// key it names the key again and quotes no key text; the right key added later is used by the
/// running controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pgp_only_file_from_sops_opens_with_an_asc_entry_of_the_key_secret() {
    let (ns, client) = setup_sops("sops-pgp").await;
    let n = ns.name();
    let ctl = start(n, vec![]).await;

    let mut sb = Sandbox::new();
    let home = enseal_tests::gnupg::GnupgHome::new(&sb.path().parent().unwrap().join("g"));
    let right = home.generate("right");
    let wrong = home.generate("wrong");
    sb.env("GNUPGHOME", home.path())
        .env("SOPS_AGE_KEY_FILE", "/dev/null");
    let path = sb.write("db.yaml", secret_for(n, "pgp-native-s3cret"));
    let out = sb.sops_of(
        peers::SopsRelease::V3_13,
        [
            "--disable-version-check",
            "encrypt",
            "--pgp",
            &right,
            &path.display().to_string(),
        ],
    );
    out.assert_success("sops 3.13.3 encrypt --pgp");
    assert!(!out.stdout_str().contains("age1"), "a PGP-only file");
    sb.write("db.yaml", &out.stdout);
    create(&client, n, &manifest(&sb, "db.yaml", n, &[])).await;

    let cond = wait_condition(&client, n, "db", "False", "NoKeys").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("pgp {right}")),
        "names the PGP key needed: {msg}"
    );

    let wrong_key = String::from_utf8(home.export_secret(&wrong)).unwrap();
    store_age_keys(&client, n, &[("wrong.asc", wrong_key.clone())]).await;
    let cond = wait_condition(&client, n, "db", "False", "DecryptFailed").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(msg.contains(&right), "{msg}");
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");

    let pid = ctl.pid();
    let right_key = String::from_utf8(home.export_secret(&right)).unwrap();
    store_age_keys(
        &client,
        n,
        &[("wrong.asc", wrong_key), ("right.asc", right_key.clone())],
    )
    .await;
    wait_condition(&client, n, "db", "True", "Decrypted").await;
    wait_secret(&client, n, "db", |s| {
        value(s, "password").as_deref() == Some("pgp-native-s3cret")
    })
    .await
    .expect("the Secret appears once the .asc key is there");
    assert_eq!(ctl.pid(), pid, "picked up without a restart");
    let log = ctl.log_text();
    assert!(
        !log.contains("pgp-native-s3cret"),
        "the log holds the value"
    );
    let key_line = right_key
        .lines()
        .find(|l| l.len() > 40)
        .expect("a base64 line of the key");
    assert!(!log.contains(key_line), "the log holds key text");
}

/// Flux's `sops.gcp-kms` entry: the key Secret holds a service account's credentials JSON, and
/// the controller (with no Google credentials of its own) opens a file encrypted for a GCP KMS
/// key through the fake Cloud KMS, exchanging that account's signed JWT for a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_kms_keys_open_with_the_sops_gcp_kms_entry_of_the_key_secret() {
    let (ns, client) = setup_sops("sops-gcp").await;
    let n = ns.name();
    let fake = enseal_tests::fake_gcp_kms::FakeGcpKms::start_tls();
    let id = fake.create_key("controller");
    let account = fake.service_account("controller");
    let json = std::fs::read_to_string(&account).unwrap();
    store_age_keys(&client, n, &[("sops.gcp-kms", json)]).await;
    let _ctl = start_trusting(n, fake.env()).await;

    let mut sb = Sandbox::new();
    for (k, v) in fake.env() {
        sb.env(k, v);
    }
    sb.env("GOOGLE_APPLICATION_CREDENTIALS", &account);
    encrypt(
        &sb,
        "service.env",
        "DB_PASSWORD=gcp-s3cret\nMODE=prod\n",
        &["--gcp-kms", &id],
    );
    let m = manifest(&sb, "service.env", n, &["--name", "svc"]);
    create(&client, n, &m).await;
    let secret = wait_secret(&client, n, "svc", |s| {
        value(s, "DB_PASSWORD").as_deref() == Some("gcp-s3cret")
    })
    .await
    .unwrap_or_else(|| panic!("the GCP KMS file is decrypted; fake log: {:?}", fake.log()));
    assert_eq!(value(&secret, "MODE").as_deref(), Some("prod"));
    wait_condition(&client, n, "svc", "True", "Decrypted").await;
    // The encrypt and the controller's decrypt each exchanged a JWT for a token.
    let tokens = fake
        .log()
        .iter()
        .filter(|l| *l == "POST /token -> 200")
        .count();
    assert!(tokens >= 2, "{:?}", fake.log());
}

/// Issue #17 review: the controller keeps its GCP KMS client (and the token it got) between
/// decryptions: three files opened through the key Secret's `sops.gcp-kms` entry cost one
/// token exchange, not one each (that a changed entry makes a new client is a unit test in
/// controller/src/sops_secret/keys.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_kms_files_share_one_token_of_the_controller() {
    let (ns, client) = setup_sops("sops-gcpkept").await;
    let n = ns.name();
    let fake = enseal_tests::fake_gcp_kms::FakeGcpKms::start_tls();
    let id = fake.create_key("kept");
    let account = fake.service_account("kept");
    let json = std::fs::read_to_string(&account).unwrap();
    store_age_keys(&client, n, &[("sops.gcp-kms", json)]).await;
    let mut sb = Sandbox::new();
    for (k, v) in fake.env() {
        sb.env(k, v);
    }
    sb.env("GOOGLE_APPLICATION_CREDENTIALS", &account);
    let tokens = || {
        fake.log()
            .iter()
            .filter(|l| *l == "POST /token -> 200")
            .count()
    };
    let mut files = Vec::new();
    for name in ["one", "two", "three"] {
        let file = format!("{name}.env");
        encrypt(
            &sb,
            &file,
            &format!("VALUE={name}-s3cret\n"),
            &["--gcp-kms", &id],
        );
        files.push((name, file));
    }
    let before = tokens();
    let _ctl = start_trusting(n, fake.env()).await;
    for (name, file) in &files {
        create(&client, n, &manifest(&sb, file, n, &["--name", name])).await;
        wait_condition(&client, n, name, "True", "Decrypted").await;
    }
    assert_eq!(tokens() - before, 1, "{:?}", fake.log());
}

/// A Secret `name` in `ns` holding `entries` (a namespace key Secret).
async fn store_namespace_keys(client: &Client, ns: &str, name: &str, entries: &[(&str, String)]) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("storing a namespace key Secret");
}

/// Flux's `sops.azure-kv` entry (a service principal with its `authorityHost`), in the
/// controller's key Secret and in a namespace key Secret: the controller, which has no Azure
/// credentials and no AZURE_AUTHORITY_HOST of its own, opens files encrypted for a key of the
/// fake Key Vault through the entry, whose token request goes to the entry's authority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_kv_keys_open_with_the_sops_azure_kv_entry_of_a_key_secret() {
    use enseal_tests::fake_azure_kv::{FakeAzure, AUTHORITY, TENANT};
    const CLIENT: &str = "flux-entry-client";
    const SECRET: &str = "azure-client-S3CRET";
    let (ns, client) = setup_sops("sops-azure").await;
    let n = ns.name();
    let fake = FakeAzure::start();
    fake.add_secret_client(CLIENT, SECRET);
    let url = fake.create_key("sops-ctl", "k");
    // Flux's layout: YAML or JSON, camelCase fields.
    let entry = format!(
        "{{\"tenantId\": \"{TENANT}\", \"clientId\": \"{CLIENT}\", \"clientSecret\": \"{SECRET}\", \"authorityHost\": \"{AUTHORITY}\"}}"
    );
    store_age_keys(&client, n, &[("sops.azure-kv", entry.clone())]).await;
    // The fake is reached through its proxy, named in HTTPS_PROXY as a deployment behind a
    // proxy names it. The controller's kube client honours it too (kube's `http-proxy`
    // feature): NO_PROXY sends the API server's address past it, as with client-go.
    let env: Vec<(String, String)> = fake
        .env()
        .into_iter()
        .filter(|(k, _)| k != "AZURE_AUTHORITY_HOST")
        .map(|(k, v)| match k.as_str() {
            "NO_PROXY" => (k, "127.0.0.1".to_string()),
            _ => (k, v),
        })
        .collect();
    let ctl = start_with(
        n,
        env,
        &[
            &format!("--sops-trusted-namespaces={n}"),
            "--sops-namespace-key-services",
        ],
        "enseal-controller",
    )
    .await;

    let mut sb = Sandbox::new();
    for (k, v) in fake.env() {
        sb.env(k, v);
    }
    sb.env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", CLIENT)
        .env("AZURE_CLIENT_SECRET", SECRET);
    encrypt(
        &sb,
        "service.env",
        "DB_PASSWORD=azure-s3cret\n",
        &["--azure-kv", &url],
    );
    create(
        &client,
        n,
        &manifest(&sb, "service.env", n, &["--name", "svc"]),
    )
    .await;
    let secret = wait_secret(&client, n, "svc", |s| {
        value(s, "DB_PASSWORD").as_deref() == Some("azure-s3cret")
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the Key Vault file is decrypted; fake log: {:?}",
            fake.log()
        )
    });
    assert_eq!(
        value(&secret, "DB_PASSWORD").as_deref(),
        Some("azure-s3cret")
    );

    // The same entry as the only content of a namespace key Secret.
    store_namespace_keys(&client, n, "team-azure", &[("sops.azure-kv", entry)]).await;
    create(
        &client,
        n,
        &manifest(
            &sb,
            "service.env",
            n,
            &["--name", "tenant", "--key-secret", "team-azure"],
        ),
    )
    .await;
    wait_condition(&client, n, "tenant", "True", "Decrypted").await;
    let log = ctl.log_text();
    for v in [SECRET, "azure-s3cret"] {
        assert!(!log.contains(v), "the controller log holds {v:?}:\n{log}");
    }
}

/// Flux's `sops.vault-token` entry against the real OpenBao; the server is the file's
/// `vault_address`. In a namespace key Secret the token is the tenant's and goes where the
/// tenant's file says. The controller's own token (its key Secret's entry) would go wherever
/// any tenant's file says, so it is sent only to servers SOPS_HC_VAULT_ALLOWLIST lists: without
/// it the file is refused, naming the variable and not the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_keys_open_with_the_sops_vault_token_entry_of_a_key_secret() {
    let (ns, client) = setup_sops("sops-vault").await;
    let n = ns.name();
    // Over https: the controller sends nothing a tenant's file names over plain http, not
    // even to a loopback address.
    let bao = enseal_tests::openbao::OpenBao::start_tls();
    let uri = bao.create_key("flux");
    let ca: Vec<(String, String)> = bao
        .env()
        .into_iter()
        .filter(|(k, _)| *k == "VAULT_CACERT")
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(ca.len(), 1, "the TLS dev server names its CA");
    let address = uri.split("/v1/").next().unwrap().to_string();
    let token = bao.token_with_policy(
        "flux-decrypt",
        "path \"transit/decrypt/flux\" { capabilities = [\"update\"] }\n",
    );
    // As `kubectl create secret --from-file` stores a file written by `echo`.
    store_age_keys(&client, n, &[("sops.vault-token", format!("{token}\n"))]).await;
    let ctl = start(n, ca.clone()).await;

    let mut sb = Sandbox::new();
    for (k, v) in bao.env() {
        sb.env(k, v);
    }
    encrypt(
        &sb,
        "db.yaml",
        &secret_for(n, "vault-cluster-s3cret"),
        &["--hc-vault-transit", &uri],
    );
    create(&client, n, &manifest(&sb, "db.yaml", n, &[])).await;
    let cond = wait_condition(&client, n, "db", "False", "DecryptFailed").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("SOPS_HC_VAULT_ALLOWLIST") && msg.contains(&address),
        "{msg}"
    );
    assert!(!msg.contains(&token), "{msg}");

    // The tenant's token, in their namespace's key Secret.
    encrypt(
        &sb,
        "app.env",
        "TOKEN=vault-tenant-s3cret\n",
        &["--hc-vault-transit", &uri],
    );
    store_namespace_keys(
        &client,
        n,
        "team-vault",
        &[("sops.vault-token", token.clone())],
    )
    .await;
    create(
        &client,
        n,
        &manifest(&sb, "app.env", n, &["--key-secret", "team-vault"]),
    )
    .await;
    // Not without --sops-namespace-key-services: the file's metadata names the server the
    // token would be sent to, and a tenant writes the file.
    let cond = wait_condition(&client, n, "app", "False", "NoKeys").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(msg.contains("--sops-namespace-key-services"), "{msg}");
    assert!(!msg.contains(&token), "{msg}");
    let log = ctl.log_text();
    drop(ctl);

    // The admin lists the server and lets tenants use their credentials: the controller's
    // token opens the bound file, the tenant's token the tenant's.
    let ctl = start_with(
        n,
        [
            ca,
            vec![("SOPS_HC_VAULT_ALLOWLIST".into(), address.clone())],
        ]
        .concat(),
        &["--sops-namespace-key-services"],
        "enseal-controller-vault-allowed",
    )
    .await;
    wait_condition(&client, n, "app", "True", "Decrypted").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let app = secrets.get("app").await.unwrap();
    assert_eq!(value(&app, "TOKEN").as_deref(), Some("vault-tenant-s3cret"));
    wait_condition(&client, n, "db", "True", "Decrypted").await;
    let db = secrets.get("db").await.unwrap();
    assert_eq!(
        value(&db, "password").as_deref(),
        Some("vault-cluster-s3cret")
    );
    let log = log + &ctl.log_text();
    for v in [
        token.as_str(),
        "vault-cluster-s3cret",
        "vault-tenant-s3cret",
    ] {
        assert!(!log.contains(v), "the controller log holds {v:?}:\n{log}");
    }
}

/// Flux's `sops.aws-kms` entry (static keys) against moto. The controller has no AWS
/// credentials of its own: a KMS file fails until the entry is added to its key Secret, and
/// then opens without a restart; the same entry in a namespace key Secret opens the tenant's
/// file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_kms_keys_open_with_the_sops_aws_kms_entry_of_a_key_secret() {
    let (ns, client) = setup_sops("sops-awsentry").await;
    let n = ns.name();
    let moto = moto::moto();
    let arn = moto.create_key(moto::REGION);
    let scratch = tempfile::tempdir().unwrap();
    let none = scratch.path().join("none").display().to_string();
    let aws = moto.aws_env();
    let endpoint = aws.iter().find(|(k, _)| *k == "AWS_ENDPOINT_URL").unwrap();
    // Everything but credentials: where KMS is, and no file, variable or metadata server
    // that could give the controller an identity.
    let env: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.1.clone()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), none.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), none),
        ("AWS_ACCESS_KEY_ID".into(), String::new()),
        ("AWS_SECRET_ACCESS_KEY".into(), String::new()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE".into(), String::new()),
    ];
    store_age_keys(&client, n, &[]).await;
    let ctl = start_with(
        n,
        env,
        &[
            &format!("--sops-trusted-namespaces={n}"),
            "--sops-namespace-key-services",
        ],
        "enseal-controller",
    )
    .await;

    let mut sb = Sandbox::new();
    for (k, v) in &aws {
        sb.env(k, v);
    }
    encrypt(
        &sb,
        "service.env",
        "DB_PASSWORD=aws-entry-s3cret\n",
        &["--kms", &arn],
    );
    create(
        &client,
        n,
        &manifest(&sb, "service.env", n, &["--name", "svc"]),
    )
    .await;
    wait_condition(&client, n, "svc", "False", "DecryptFailed").await;

    let entry = "aws_access_key_id: AKIAFLUXENTRY\naws_secret_access_key: aws-key-S3CRET\n";
    let pid = ctl.pid();
    store_age_keys(&client, n, &[("sops.aws-kms", entry.into())]).await;
    wait_condition(&client, n, "svc", "True", "Decrypted").await;
    assert_eq!(ctl.pid(), pid, "picked up without a restart");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let svc = secrets.get("svc").await.unwrap();
    assert_eq!(
        value(&svc, "DB_PASSWORD").as_deref(),
        Some("aws-entry-s3cret")
    );

    store_namespace_keys(&client, n, "team-aws", &[("sops.aws-kms", entry.into())]).await;
    create(
        &client,
        n,
        &manifest(
            &sb,
            "service.env",
            n,
            &["--name", "tenant", "--key-secret", "team-aws"],
        ),
    )
    .await;
    wait_condition(&client, n, "tenant", "True", "Decrypted").await;
    let log = ctl.log_text();
    for v in ["aws-key-S3CRET", "aws-entry-s3cret"] {
        assert!(!log.contains(v), "the controller log holds {v:?}:\n{log}");
    }
}

/// Issue #17: the controller logs in to OpenBao with its own ServiceAccount (Kubernetes auth),
/// against the real API server: OpenBao checks the JWT with TokenReview, the role is bound to
/// the controller's ServiceAccount, namespace and audience, and its policy allows transit
/// decrypt only. The controller's VAULT_TOKEN is a wrong one, so only the login can open the
/// file; the JWT goes only to allowlisted servers; one login serves every file; an account
/// the role is not bound to is refused, with OpenBao's reason in the condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_keys_open_with_the_controllers_service_account_login() {
    use base64::Engine as _;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};

    let (ns, client) = setup_sops("sops-vaultk8s").await;
    let n = ns.name();
    let bao = enseal_tests::openbao::OpenBao::start();
    let uri = bao.create_key("k8s");
    let address = uri.split("/v1/").next().unwrap().to_string();

    // Two accounts: the controller's (bound to the role) and OpenBao's reviewer, which may
    // call TokenReview (system:auth-delegator).
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), n);
    for name in ["enseal-controller", "other-controller", "bao-reviewer"] {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        sas.create(&PostParams::default(), &sa).await.unwrap();
    }
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    let crb_name = format!("{n}-bao-reviewer");
    crbs.create(
        &PostParams::default(),
        &ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(crb_name.clone()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: "system:auth-delegator".into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: "bao-reviewer".into(),
                namespace: Some(n.into()),
                ..Subject::default()
            }]),
        },
    )
    .await
    .unwrap();
    let reviewer_jwt = cluster::service_account_token(&client, n, "bao-reviewer").await;

    // OpenBao reaches the test API server at its address, trusting its CA.
    let config = cluster::config().await;
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster::control_plane().kubeconfig())
        .expect("reading the admin kubeconfig");
    let ca_data = kubeconfig.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.certificate_authority_data.clone())
        .expect("the admin kubeconfig carries the CA");
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_data)
        .expect("certificate-authority-data is base64");
    let scratch = tempfile::tempdir().unwrap();
    let ca_file = scratch.path().join("kube-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let policy = scratch.path().join("k8s-decrypt.hcl");
    std::fs::write(
        &policy,
        "path \"transit/decrypt/k8s\" { capabilities = [\"update\"] }\n",
    )
    .unwrap();
    bao.bao(&["policy", "write", "k8s-decrypt", &policy.to_string_lossy()]);
    bao.bao(&["auth", "enable", "kubernetes"]);
    bao.bao(&[
        "write",
        "auth/kubernetes/config",
        &format!(
            "kubernetes_host={}",
            config.cluster_url.to_string().trim_end_matches('/')
        ),
        &format!("kubernetes_ca_cert=@{}", ca_file.display()),
        &format!("token_reviewer_jwt={reviewer_jwt}"),
    ]);
    bao.bao(&[
        "write",
        "auth/kubernetes/role/enseal",
        "bound_service_account_names=enseal-controller",
        &format!("bound_service_account_namespaces={n}"),
        "audience=openbao",
        "token_policies=k8s-decrypt",
        "token_ttl=1h",
    ]);

    let mut sb = Sandbox::new();
    for (k, v) in bao.env() {
        sb.env(k, v);
    }
    encrypt(
        &sb,
        "db.yaml",
        &secret_for(n, "vault-k8s-s3cret"),
        &["--hc-vault-transit", &uri],
    );
    encrypt(
        &sb,
        "cache.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cache\n  namespace: {n}\nstringData:\n  password: vault-k8s-cache-s3cret\n"
        ),
        &["--hc-vault-transit", &uri],
    );
    store_age_keys(&client, n, &[]).await;
    let login_flags = |account: &str| {
        vec![
            "--vault-kubernetes-role=enseal".to_string(),
            "--vault-kubernetes-audience=openbao".to_string(),
            format!("--vault-kubernetes-service-account={account}"),
        ]
    };
    let wrong_token = ("VAULT_TOKEN".to_string(), "not-a-vault-token".to_string());

    // No allowlist: the JWT is sent nowhere, and the condition says what to set.
    let flags = login_flags("enseal-controller");
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let ctl = start_with(n, vec![wrong_token.clone()], &args, "enseal-controller").await;
    create(&client, n, &manifest(&sb, "db.yaml", n, &[])).await;
    let cond = wait_condition(&client, n, "db", "False", "DecryptFailed").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("SOPS_HC_VAULT_ALLOWLIST") && msg.contains(&address),
        "{msg}"
    );
    let mut log = ctl.log_text();
    assert!(!log.contains("logged in to Vault"), "{log}");
    drop(ctl);

    // An account the role is not bound to: OpenBao refuses the login, and says why.
    let allow = ("SOPS_HC_VAULT_ALLOWLIST".to_string(), address.clone());
    let flags = login_flags("other-controller");
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let ctl = start_with(
        n,
        vec![wrong_token.clone(), allow.clone()],
        &args,
        "enseal-controller-other",
    )
    .await;
    let cond = wait_condition_message(&client, n, "db", "auth/kubernetes/login").await;
    let msg = cond["message"].as_str().unwrap_or_default();
    assert_eq!(cond["reason"], "DecryptFailed", "{cond}");
    assert!(msg.contains("not authorized"), "{msg}");
    log += &ctl.log_text();
    drop(ctl);

    // The bound account: both files open, with one login.
    let flags = login_flags("enseal-controller");
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let ctl = start_with(
        n,
        vec![wrong_token, allow],
        &args,
        "enseal-controller-bound",
    )
    .await;
    wait_condition(&client, n, "db", "True", "Decrypted").await;
    create(&client, n, &manifest(&sb, "cache.yaml", n, &[])).await;
    wait_condition(&client, n, "cache", "True", "Decrypted").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let db = secrets.get("db").await.unwrap();
    assert_eq!(value(&db, "password").as_deref(), Some("vault-k8s-s3cret"));
    let cache = secrets.get("cache").await.unwrap();
    assert_eq!(
        value(&cache, "password").as_deref(),
        Some("vault-k8s-cache-s3cret")
    );
    let bound_log = ctl.log_text();
    assert_eq!(
        bound_log.matches("logged in to Vault").count(),
        1,
        "one login serves both files:\n{bound_log}"
    );
    log += &bound_log;
    for v in [
        reviewer_jwt.as_str(),
        "vault-k8s-s3cret",
        "vault-k8s-cache-s3cret",
    ] {
        assert!(!log.contains(v), "the controller log holds {v:?}:\n{log}");
    }
    drop(ctl);
    let _ = crbs.delete(&crb_name, &Default::default()).await;
}

/// Waits until the Synced condition of SopsSecret `name` has a message containing `part`.
async fn wait_condition_message(client: &Client, ns: &str, name: &str, part: &str) -> Value {
    let api = sops_api(client, ns);
    let last = std::sync::Mutex::new(Value::Null);
    let found = cluster::eventually(WAIT, || async {
        let obj = api.get(name).await.ok()?;
        let cond = obj
            .data
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Synced")?
            .clone();
        *last.lock().unwrap() = cond.clone();
        cond["message"]
            .as_str()?
            .contains(part)
            .then_some(cond.clone())
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "SopsSecret {name}: no Synced message with {part:?}; last condition: {}",
            last.lock().unwrap()
        )
    })
}
