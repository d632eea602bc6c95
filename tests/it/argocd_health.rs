//! Argo CD's health of the objects enseal-controller reconciles, computed as Argo CD computes
//! it: Argo CD's own built-in check for bitnami.com/SealedSecret
//! (resource_customizations/bitnami.com/SealedSecret/health.lua of the pinned Argo CD release,
//! fetched by tests/tools/argocd-health.sh; ENSEAL_ARGOCD_RESOURCE_CUSTOMIZATIONS) run by
//! gopher-lua, the Lua VM Argo CD embeds (its glua command, built by tests/tools/glua.sh;
//! ENSEAL_GLUA_BIN), on the objects as the API server holds them after enseal-controller wrote
//! their status. The object is handed to the script as Argo CD's util/lua does: the whole
//! object as the global table `obj`, and the table the script returns is the health.
//!
//! SopsSecrets have the same status shape (a `Synced` condition with status, reason and
//! message): Argo CD's SealedSecret script gives them the same health, and so does
//! deploy/argocd/sopssecret-health.lua, the check the README has users add to argocd-cm for
//! enseal.dev/SopsSecret (Argo CD has none built in); both are run on them here.

use std::path::PathBuf;
use std::process::Command;

use enseal_tests::cli::Sandbox;
use enseal_tests::controller::*;
use enseal_tests::{cluster, peers};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::ByteString;
use kube::api::{DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::Value;

fn env_path(var: &str, script: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{var} is not set: run `bash tests/tools/{script}` (scripts/test.sh does it) and \
                 set it to the path it prints"
            )
        });
    assert!(p.exists(), "{var}={} does not exist", p.display());
    p
}

fn sealed_secret_health_lua() -> PathBuf {
    env_path("ENSEAL_ARGOCD_RESOURCE_CUSTOMIZATIONS", "argocd-health.sh")
        .join("bitnami.com/SealedSecret/health.lua")
}

/// `v` as a Lua expression, as Argo CD's decodeValue turns JSON into Lua values (objects and
/// arrays into tables, arrays from index 1, null into nil).
fn lua_value(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(lua_value).collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// A Lua string literal: every byte outside printable ASCII, and the quote and backslash, as
/// a decimal escape.
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\{b:03}"));
        }
    }
    out.push('"');
    out
}

/// Argo CD's health (status, message) of `obj` by `script`.
fn argocd_health(script: &std::path::Path, obj: &Value) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let driver = dir.path().join("driver.lua");
    std::fs::write(
        &driver,
        format!(
            "obj = {}\nlocal hs = dofile({})\nprint(hs.status)\nprint(hs.message or \"\")\n",
            lua_value(obj),
            lua_string(&script.display().to_string())
        ),
    )
    .unwrap();
    let out = Command::new(env_path("ENSEAL_GLUA_BIN", "glua.sh"))
        .arg(&driver)
        .output()
        .expect("running glua");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.contains("stack traceback"),
        "glua failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let message = lines.collect::<Vec<_>>().join("\n");
    (status, message)
}

fn synced_message(obj: &Value) -> String {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Synced"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn lua_literals_carry_any_text() {
    assert_eq!(lua_string("a\"b\\c\nd"), "\"a\\034b\\092c\\010d\"");
    assert_eq!(
        lua_value(&serde_json::json!({"a": [1, null, "x"], "b": true})),
        "{[\"a\"] = {1, nil, \"x\"}, [\"b\"] = true}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_shows_sealedsecrets_progressing_then_healthy_or_degraded() {
    let script = sealed_secret_health_lua();
    let (ns, client) = setup("argocd-ss").await;
    let n = ns.name();
    // The controller's key exists before the objects (an install that already has its key);
    // the objects exist before the controller runs, as after `kubectl apply` of an app whose
    // controller is still starting.
    let key = TestKey::generate(2048);
    key.store(&client, n, "sealing-key").await;
    create_ss(
        &client,
        n,
        &kubeseal(
            &key.cert_path(),
            "strict",
            &secret_json(n, "good", &[("k", "v")]),
        ),
    )
    .await;
    let stranger = TestKey::generate(2048);
    create_ss(
        &client,
        n,
        &kubeseal(
            &stranger.cert_path(),
            "strict",
            &secret_json(n, "bad", &[("k", "v")]),
        ),
    )
    .await;
    let api = ss_api(&client, n);
    let get = |name: &'static str| {
        let api = api.clone();
        async move { serde_json::to_value(api.get(name).await.unwrap()).unwrap() }
    };
    for name in ["good", "bad"] {
        assert_eq!(
            argocd_health(&script, &get(name).await),
            (
                "Progressing".into(),
                "Waiting for Sealed Secret to be decrypted".into()
            ),
            "{name} before any controller ran"
        );
    }

    let ctl = Controller::start(Options::new(n)).await;
    wait_synced(&client, n, "good", "True")
        .await
        .expect("good: Synced=True");
    wait_synced(&client, n, "bad", "False")
        .await
        .expect("bad: Synced=False");
    let good = get("good").await;
    assert_eq!(
        argocd_health(&script, &good),
        ("Healthy".into(), String::new())
    );
    let bad = get("bad").await;
    let (status, message) = argocd_health(&script, &bad);
    assert_eq!(status, "Degraded");
    assert_eq!(message, synced_message(&bad));
    assert!(message.contains("Failed to unseal"), "{message}");
    drop(ctl);
}

const SOPS_KEY_SECRET: &str = "sops-age";

async fn install_sops_crd(client: &Client, ns: &str) -> Api<DynamicObject> {
    let text = std::fs::read_to_string(repo_root().join("deploy/crds/enseal.dev_sopssecrets.yaml"))
        .expect("reading the SopsSecret CRD");
    let crd: CustomResourceDefinition = serde_json::from_value(yaml_to_json(&text)).unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            "sopssecrets.enseal.dev",
            &PatchParams::apply("enseal-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("applying the SopsSecret CRD");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &cluster::sops_secret_resource());
    let served = cluster::eventually(WAIT, || async {
        api.list(&ListParams::default()).await.ok()
    })
    .await;
    assert!(served.is_some(), "sopssecrets are never served");
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sopssecrets_have_the_status_shape_argo_cd_reads() {
    let scripts = [
        sealed_secret_health_lua(),
        repo_root().join("deploy/argocd/sopssecret-health.lua"),
    ];
    let (ns, client) = setup("argocd-sops").await;
    let n = ns.name();
    let api = install_sops_crd(&client, n).await;
    let key_secret = Secret {
        metadata: ObjectMeta {
            name: Some(SOPS_KEY_SECRET.into()),
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
    Api::<Secret>::namespaced(client.clone(), n)
        .create(&PostParams::default(), &key_secret)
        .await
        .unwrap();

    // One file the controller's key opens, one encrypted only for another recipient.
    let sb = Sandbox::new();
    for (name, recipient) in [("good", "a"), ("bad", "b")] {
        let plain = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {n}\nstringData:\n  k: v\n"
        );
        let path = sb.write(&format!("{name}.yaml"), &plain);
        let out = sb.enseal([
            "encrypt",
            "--age",
            peers::recipient(recipient).as_str(),
            path.to_str().unwrap(),
        ]);
        out.assert_success("enseal encrypt");
        sb.write(&format!("{name}.yaml"), out.stdout_str());
        let out = sb.enseal(["sops-secret", path.to_str().unwrap(), "--namespace", n]);
        out.assert_success("enseal sops-secret");
        let obj: DynamicObject = serde_json::from_value(yaml_to_json(&out.stdout_str())).unwrap();
        let created = api.create(&PostParams::default(), &obj).await.unwrap();
        let value = serde_json::to_value(&created).unwrap();
        for script in &scripts {
            assert_eq!(
                argocd_health(script, &value).0,
                "Progressing",
                "{name} before any controller ran ({})",
                script.display()
            );
        }
    }

    let mut opts = Options::new(n);
    opts.extra = vec!["--sops-age-key-secret".into(), SOPS_KEY_SECRET.into()];
    let _ctl = Controller::start(opts).await;
    let settled = |name: &'static str, status: &'static str| {
        let api = api.clone();
        cluster::eventually(WAIT, move || {
            let api = api.clone();
            async move {
                let obj = serde_json::to_value(api.get(name).await.ok()?).ok()?;
                let synced = obj
                    .pointer("/status/conditions")?
                    .as_array()?
                    .iter()
                    .any(|c| c["type"] == "Synced" && c["status"] == status);
                synced.then_some(obj)
            }
        })
    };
    let good = settled("good", "True").await.expect("good: Synced=True");
    let bad = settled("bad", "False").await.expect("bad: Synced=False");
    for script in &scripts {
        assert_eq!(
            argocd_health(script, &good),
            ("Healthy".into(), String::new()),
            "{}",
            script.display()
        );
        let (status, message) = argocd_health(script, &bad);
        assert_eq!(status, "Degraded", "{}", script.display());
        assert_eq!(message, synced_message(&bad));
        assert!(!message.is_empty());
    }
}
